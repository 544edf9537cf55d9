"""What ``gankit list`` shows, importable without torch (the CLI answers before torch loads).

Datasets are read from their registry (:mod:`gankit.data.registry`), which registers without torch
(a loader imports its module when called); ``DATASETS`` is looked up when asked for, so that a kind
registered after this import is listed too, and importing this module loads nothing. Families are
listed from their own registry (:mod:`gankit.families` loads no torch at import).
"""

from __future__ import annotations

from typing import Any


def datasets() -> dict[str, str]:
    """name -> description of every registered dataset kind (what ``data.name`` takes), in registration order."""
    from gankit.data.registry import DATASETS as registered

    return {name: entry.description for name, entry in registered.items()}


def __getattr__(name: str) -> Any:
    # ``DATASETS`` is read from the registry when asked for, so a kind registered later is listed too
    if name == "DATASETS":
        return datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
