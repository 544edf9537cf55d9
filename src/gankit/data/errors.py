"""Errors raised while locating or loading a dataset."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset cannot be used as given: a missing or empty folder, unmatched pairs, a failed download.

    Unlike :class:`gankit.data.images.ImageReadError` (one bad file, skipped and counted), a
    ``DataError`` stops the run; its message names the folder or files involved and what to change.
    """
