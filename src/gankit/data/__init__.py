"""Datasets by name. :func:`build_dataset` turns a :class:`~gankit.config.DataConfig` into a TrainSet.

What ``--data`` names is what is trained on, or it is a one-line error (:func:`infer_dataset_name`):
a dataset name; a folder, whose kind is read from its content (IDX files identified as MNIST,
Fashion-MNIST or generic IDX by :func:`gankit.data.mnist.identify_idx`; an image folder; a paired
layout); never a file, and never data found elsewhere in its place. Every dataset records in its
:class:`DataInfo` what was actually loaded: ``dataset``, ``source``, ``num_images`` and, for paired
data, ``val_source`` (the validation rule of :mod:`gankit.data.splits`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gankit.catalog import DATASETS
from gankit.config import DataConfig
from gankit.data.errors import DataError

if TYPE_CHECKING:
    from gankit.data.base import Batch, DataInfo, EpochSampler, ImageTensorDataset, TrainSet

_FROM_BASE = ("Batch", "DataInfo", "EpochSampler", "ImageTensorDataset", "TrainSet")


def __getattr__(name: str) -> Any:
    # torch-backed names load on first use, so that `gankit list` (DATASETS) starts without torch
    if name in _FROM_BASE:
        from gankit.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PAIRED = ("aligned", "pair-folders", "facades")
IDX_NAMES = ("fashion-mnist", "mnist", "idx")


def _is_idx_file(path: Path) -> bool:
    name = path.name.lower()
    return "idx" in name and "ubyte" in name


def _has_idx(path: Path) -> bool:
    from gankit.data.mnist import find_idx_files

    return path.is_dir() and (find_idx_files(path, "train") or find_idx_files(path, "test")) is not None


def _record(
    ds: TrainSet,
    dataset: str,
    source: str,
    log: Callable[[str], None] = lambda m: None,
    split: str = "train",
    given: str | None = None,
) -> TrainSet:
    """Write what was loaded into ``ds.info`` (``source``: the dataset's root, not the split folder;
    ``given``: the path the user named, kept when it is not ``source``), and say how its storage was chosen."""
    ds.info.dataset, ds.info.source, ds.info.num_images = dataset, source, len(ds)
    if given:
        given = str(Path(given).expanduser().resolve())
        ds.info.given = given if given != source else ""
    store = getattr(ds, "store", None)
    ds.info.storage = store.kind if store is not None else "memory"
    choice = getattr(ds, "storage_choice", "")
    if choice and (split == "train" or ds.info.storage != "memory"):
        log(f"{choice} ({split} split)")
    return ds


def _build_idx(cfg: DataConfig, split: str, log: Callable[[str], None]) -> TrainSet:
    from gankit.data.base import ImageTensorDataset
    from gankit.data.mnist import DIGIT_CLASSES, FASHION_CLASSES, IDX_CLASSES, identify_idx, load_idx
    from gankit.paths import cache_dir

    name = cfg.name
    loaded = load_idx(name, cfg.path, split="test" if split != "train" else "train")
    folder = loaded.files[0].parent
    ident = identify_idx(folder)
    if name != "idx" and ident.kind != name:
        if ident.kind != "idx":  # the files are the other standard data set
            raise DataError(
                f"{folder} holds {IDX_CLASSES[ident.kind]}, not {IDX_CLASSES[name]} ({ident.how}); "
                f"use data.name={ident.kind} (or pass --data {folder} alone)"
            )
        if split == "train":
            log(f"{folder}: {ident.how}; treated as {name}, as data.name says")
    names = {"fashion-mnist": FASHION_CLASSES, "mnist": DIGIT_CLASSES}.get(name)
    if cfg.storage in ("mmap", "stream") and split == "train":
        log(f"{name}: IDX data are small and held in memory (data.storage={cfg.storage} applies to image files)")
    ds = ImageTensorDataset(
        loaded.images, loaded.labels, resolution=cfg.resolution, channels=cfg.channels, class_names=names
    )
    ds = ds.subset(cfg.max_images) if cfg.max_images else ds
    source = f"torchvision download into {cache_dir() / name}" if loaded.downloaded else str(folder.resolve())
    return _record(ds, name, source)


def build_dataset(cfg: DataConfig, split: str = "train", *, log: Callable[[str], None] = print) -> TrainSet:
    """The dataset named by ``cfg.name`` (train/val/test split), ready for :class:`EpochSampler`.

    Its ``info`` says what was loaded (``dataset``, ``source``, ``num_images``, ``val_source``).
    """
    name = cfg.name
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(DATASETS)}"
        raise DataError(f"unknown dataset '{name}'{hint}")
    if name in IDX_NAMES:
        return _build_idx(cfg, split, log)
    if name in ("folder", "celeba"):
        from gankit.data.folders import find_celeba, load_image_folder

        if name == "folder" and not cfg.path:
            raise DataError("dataset 'folder' needs a path: --data FOLDER")
        root = find_celeba(cfg.path) if name == "celeba" else Path(cfg.path)  # type: ignore[arg-type]
        if root.is_file():
            raise DataError(f"{root} " + _file_not_folder(root, name))
        ds = load_image_folder(
            root,
            resolution=cfg.resolution or 64,
            channels=cfg.channels or 3,
            max_images=cfg.max_images,
            storage=cfg.storage,
            workers=cfg.workers,
            log=log,
        )
        ds.resolution = ds.info.resolution = cfg.resolution or 64
        return _record(ds, name, str(root.resolve()), log, split)
    if name in PAIRED:
        from gankit.data import paired

        common = dict(
            resolution=cfg.resolution or 256,
            load_size=cfg.load_size,
            flip=cfg.flip,
            direction=cfg.direction,
            train=split == "train",
            max_images=cfg.max_images if split == "train" else 0,
            storage=cfg.storage,
            workers=cfg.workers,
            log=log,
        )
        if name == "facades":
            from gankit.data.facades import facades_layout, find_facades

            root = find_facades(cfg.path, log=log)
            # data.direction=AtoB means label map -> photo, whichever side the files keep it on
            found = facades_layout(root)
            natural = found.direction
            common["direction"] = natural if cfg.direction == "AtoB" else ("AtoB" if natural == "BtoA" else "BtoA")
            if split == "train":
                log(f"facades in {root}: {found.how}; labels -> photo is {natural}")
            load = paired.load_pair_folders if found.layout == "pair-folders" else paired.load_aligned
            return _record(load(root, split, **common), name, str(root.resolve()), log, split, given=cfg.path)
        if not cfg.path:
            raise DataError(f"dataset '{name}' needs a path: --data FOLDER")
        load = paired.load_aligned if name == "aligned" else paired.load_pair_folders
        return _record(load(cfg.path, split, **common), name, str(Path(cfg.path).resolve()), log, split)
    # colorization
    from gankit.data.colorization import load_colorization

    if not cfg.path:
        raise DataError("dataset 'colorization' needs a path: --data FOLDER of colour photos")
    ds = load_colorization(
        cfg.path,
        split,
        resolution=cfg.resolution or 256,
        load_size=cfg.load_size,
        flip=cfg.flip,
        max_images=cfg.max_images if split == "train" else 0,
        storage=cfg.storage,
        workers=cfg.workers,
        log=log,
    )
    return _record(ds, name, str(Path(cfg.path).resolve()), log, split)


def _paired_kind(p: Path, default: str) -> str:
    """aligned, pair-folders or facades for a folder given to a paired preset."""
    from gankit.data.facades import facades_layout, is_cmp_base
    from gankit.data.paired import pair_dirs

    split_root = next((p / s for s in ("train", "val", "test") if (p / s).is_dir()), p)
    layout = "pair-folders" if pair_dirs(split_root) is not None else "aligned" if split_root != p else ""
    if default != "facades":
        return layout or default
    if not layout or is_cmp_base(p):
        return "facades"  # find_facades builds from CMP, descends into facades/, or explains
    # Facades only when the manifest or the colours say so: another data set keeps the direction asked for.
    return "facades" if facades_layout(p).certain else layout


def _file_not_folder(p: Path, default: str) -> str:
    """Why a file cannot be the data of a preset whose dataset is ``default``, and what to pass.

    The parent folder is suggested only for IDX files: an image's folder may be a photo folder, the
    home folder or /tmp, which training would search recursively."""
    from gankit.data.images import IMAGE_EXTENSIONS

    if _is_idx_file(p):
        return f"is an IDX file, not a folder; pass the folder that holds it: --data {p.parent}"
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        return "is a file, not a folder; pass the folder of the data set"
    use = {"colorization": "colorize"}.get(default, "translate" if default in PAIRED else "")
    run = f"; to {use} this one image with a trained run: gankit {use} RUN {p}" if use else ""
    return f"is one image, not a folder of training images; pass a folder that holds only training images{run}"


def infer_dataset_name(data: str, default: str) -> tuple[str, str | None]:
    """Interpret ``--data`` for a preset whose dataset is ``default``: ``(data.name, data.path)``.

    A dataset name is taken as it is. A folder's kind is read from its content: IDX files are
    mnist, fashion-mnist or idx by :func:`gankit.data.mnist.identify_idx` (whatever the preset's
    default); for a paired preset, the layout (aligned A|B files, a/ + b/ folders per split or once,
    facades); otherwise an image folder. Raises :class:`DataError` (one line) for a path that does
    not exist, a file, and an IDX folder given to a preset that needs colour images.
    """
    if data in DATASETS:
        return data, None
    p = Path(data).expanduser()
    if not p.exists():
        close = difflib.get_close_matches(data, DATASETS, n=1, cutoff=0.75)
        hint = f"; did you mean the dataset '{close[0]}'?" if close else f" (datasets: {', '.join(DATASETS)})"
        raise DataError(f"--data {data}: no such file or folder, nor a dataset name{hint}")
    if p.is_file():
        raise DataError(f"--data {data} " + _file_not_folder(p, default))
    if _has_idx(p):
        from gankit.data.mnist import identify_idx

        kind = identify_idx(p).kind
        if default in ("celeba", "folder"):
            raise DataError(
                f"--data {data} holds IDX files ({kind}: 1-channel 28x28), but this preset trains on colour "
                f"image folders; for DCGAN on them use: gankit train dcgan-fmnist --data {data}"
            )
        if default in (*PAIRED, "colorization"):
            raise DataError(f"--data {data} holds IDX files ({kind}), not images for an image-to-image preset")
        return kind, data
    if default in PAIRED:
        return _paired_kind(p, default), data
    if default == "colorization":
        return "colorization", data
    return "folder", data


__all__ = [
    "Batch",
    "DATASETS",
    "DataError",
    "DataInfo",
    "EpochSampler",
    "ImageTensorDataset",
    "TrainSet",
    "build_dataset",
    "infer_dataset_name",
]
