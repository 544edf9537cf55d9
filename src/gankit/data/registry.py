"""Dataset kinds by name: what ``data.name`` takes, how each kind is loaded and recognized.

As families (:mod:`gankit.families`) and metrics (:mod:`gankit.metrics`) are, a dataset kind is one
loader and one :func:`register_dataset` call; :func:`gankit.data.build_dataset`,
:func:`gankit.data.infer_dataset_name` and ``gankit list`` (:mod:`gankit.catalog`) all
read :data:`DATASETS`. gankit's own kinds are registered in :mod:`gankit.data.kinds`.

This module imports no torch, and a registration need not either: a loader imports its dataset
module (torch, PIL) when it is called, so the names are known to ``gankit list`` and ``--help``,
which answer before torch loads.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gankit.data.errors import DataError

if TYPE_CHECKING:
    from gankit.config import DataConfig
    from gankit.data.base import TrainSet

Loader = Callable[["DataConfig", str, Callable[[str], None]], "TrainSet"]
"""``load(cfg, split, log)``: the ``split`` (train, val or test) of the data ``cfg`` names, as a TrainSet
whose ``info.source`` says where it came from (``build_dataset`` fills in the rest of ``info``)."""

Detector = Callable[[Path], bool]
"""``detect(folder)``: whether a folder given as ``--data`` holds this kind, by its content."""

KINDS = ("noise", "paired")


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset kind."""

    name: str
    kind: str
    """noise (it feeds noise-to-image families) or paired (image-to-image), as :attr:`Family.kind`."""
    description: str
    """One line for ``gankit list``."""
    load: Loader
    accepts: str
    """What a folder of it holds: ``idx`` (IDX files), ``images`` (image files), ``pairs`` (an image-pair
    layout), or a new kind's own word. ``infer_dataset_name`` says so when a folder does not fit a preset."""
    detect: Detector | None = None
    """Recognizes a folder of this kind by content. Kinds without one are taken from the preset's
    default (an image folder, or a paired layout that :func:`gankit.data.infer_dataset_name` reads)."""
    needs_path: str = ""
    """What ``--data`` must name when ``data.path`` is required ("FOLDER of colour photos"); "" when a
    path is optional (the data can be found or downloaded)."""


DATASETS: dict[str, DatasetEntry] = {}
"""Every registered dataset kind, in registration order (the order detection tries them in)."""


def register_dataset(
    name: str,
    *,
    kind: str,
    description: str,
    load: Loader,
    accepts: str,
    detect: Detector | None = None,
    needs_path: str = "",
) -> DatasetEntry:
    """Register the dataset kind ``name``: ``data.name=name`` then trains on what ``load`` returns."""
    if name in DATASETS:
        raise ValueError(f"dataset '{name}' registered twice")
    if kind not in KINDS:
        raise ValueError(f"dataset '{name}': kind must be one of {KINDS}, got {kind!r}")
    entry = DatasetEntry(name, kind, description, load, accepts, detect, needs_path)
    DATASETS[name] = entry
    return entry


def unregister_dataset(name: str) -> None:
    """Forget ``name`` (for tests that register a kind of their own)."""
    DATASETS.pop(name, None)


def get_dataset(name: str) -> DatasetEntry:
    """The entry of ``name``; a one-line :class:`DataError` (with the closest name) when unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(DATASETS)}"
        raise DataError(f"unknown dataset '{name}'{hint}") from None


def list_datasets() -> list[str]:
    """The registered names, in registration order."""
    return list(DATASETS)


def detect_dataset(folder: Path) -> DatasetEntry | None:
    """The first registered kind whose ``detect`` recognizes ``folder``, or None."""
    return next((e for e in DATASETS.values() if e.detect is not None and e.detect(folder)), None)
