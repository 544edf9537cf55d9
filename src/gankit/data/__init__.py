"""Datasets by name. :func:`build_dataset` turns a :class:`~gankit.config.DataConfig` into a TrainSet.

The dataset kinds that ``data.name`` takes are a registry (:mod:`.registry`: one loader and one
``register_dataset`` each; gankit's own are in :mod:`.kinds`). What ``--data`` names is what is
trained on, or it is a one-line error (:func:`infer_dataset_name`, :mod:`.infer`): a dataset name; a
folder, whose kind is read from its content (IDX files identified as MNIST, Fashion-MNIST or
generic IDX by :func:`gankit.data.mnist.identify_idx`; an image folder; a paired layout); never a
file, and never data found elsewhere in its place. Every dataset records in its :class:`DataInfo`
what was actually loaded: ``dataset``, ``source``, ``num_images``, ``storage`` (and how it was
chosen), the ``data.max_images`` ``subset`` (:func:`gankit.data.splits.seeded_subset`) and, for
paired data, ``val_source`` (the validation rule of :mod:`gankit.data.splits`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gankit.data import kinds as _kinds  # noqa: F401  (registers gankit's dataset kinds)
from gankit.data.errors import DataError
from gankit.data.infer import infer_dataset_name
from gankit.data.registry import DATASETS, DatasetEntry, get_dataset, list_datasets, register_dataset

if TYPE_CHECKING:
    from gankit.config import DataConfig
    from gankit.data.base import Batch, DataInfo, EpochSampler, ImageTensorDataset, TrainSet

_FROM_BASE = ("Batch", "DataInfo", "EpochSampler", "ImageTensorDataset", "TrainSet")


def __getattr__(name: str) -> Any:
    # torch-backed names load on first use, so that `gankit list` (the registry) starts without torch
    if name in _FROM_BASE:
        from gankit.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_dataset(cfg: DataConfig, split: str = "train", *, log: Callable[[str], None] = print) -> TrainSet:
    """The dataset named by ``cfg.name`` (train/val/test split), ready for :class:`EpochSampler`.

    Its ``info`` says what was loaded (``dataset``, ``source``, ``num_images``, ``storage``,
    ``val_source``); how the storage was chosen goes to ``log`` (for the training split, and for
    any split not held in memory).
    """
    entry = get_dataset(cfg.name)
    if entry.needs_path and not cfg.path:
        raise DataError(f"dataset '{cfg.name}' needs a path: --data {entry.needs_path}")
    ds = entry.load(cfg, split, log)
    ds.info.dataset, ds.info.num_images = cfg.name, len(ds)
    ds.info.storage = ds.store.kind
    if ds.info.storage_choice and (split == "train" or ds.info.storage != "memory"):
        log(f"{ds.info.storage_choice} ({split} split)")
    if ds.info.subset and split == "train":
        log(f"data.max_images={cfg.max_images}: training on {ds.info.subset} {cfg.name} items (the same every run)")
    return ds


__all__ = [
    "Batch",
    "DATASETS",
    "DataError",
    "DataInfo",
    "DatasetEntry",
    "EpochSampler",
    "ImageTensorDataset",
    "TrainSet",
    "build_dataset",
    "get_dataset",
    "infer_dataset_name",
    "list_datasets",
    "register_dataset",
]
