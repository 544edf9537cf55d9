"""Datasets by name. :func:`build_dataset` turns a :class:`~gankit.config.DataConfig` into a TrainSet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gankit.config import DataConfig
from gankit.data.base import Batch, DataInfo, EpochSampler, ImageTensorDataset, TrainSet
from gankit.data.errors import DataError

DATASETS: dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST IDX files (60k/10k, 28x28, 10 classes); Debian: dataset-fashion-mnist",
    "mnist": "MNIST IDX files (60k/10k, 28x28, 10 digits)",
    "folder": "any folder of images, flat or one subfolder per class (resize + center crop)",
    "celeba": "CelebA aligned faces (img_align_celeba), a folder of images",
    "aligned": "pix2pix format: A|B side by side in train/ val/ test/",
    "pair-folders": "two folders a/ and b/ with matching file names",
    "facades": "CMP Facade base set (label map -> photo), built into the aligned format",
    "colorization": "any folder of colour photos (COCO-like); L -> ab in Lab space",
}

PAIRED = ("aligned", "pair-folders", "facades")


def _looks_like_idx_folder(path: Path) -> bool:
    return path.is_dir() and any(p.name.startswith(("train-images", "t10k-images")) for p in path.rglob("*idx*"))


def build_dataset(cfg: DataConfig, split: str = "train", *, log: Callable[[str], None] = print) -> TrainSet:
    """The dataset named by ``cfg.name`` (train/val/test split), ready for :class:`EpochSampler`."""
    name = cfg.name
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    if name in ("fashion-mnist", "mnist"):
        from gankit.data.mnist import DIGIT_CLASSES, FASHION_CLASSES, load_mnist_like

        images, labels = load_mnist_like(name, cfg.path, split="test" if split != "train" else "train")
        ds = ImageTensorDataset(
            images,
            labels,
            resolution=cfg.resolution,
            channels=cfg.channels,
            class_names=FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES,
        )
        return ds.subset(cfg.max_images) if cfg.max_images else ds
    if name in ("folder", "celeba"):
        from gankit.data.folders import find_celeba, load_image_folder

        if name == "folder" and not cfg.path:
            raise DataError("dataset 'folder' needs a path: --data FOLDER")
        root = find_celeba(cfg.path) if name == "celeba" else Path(cfg.path)  # type: ignore[arg-type]
        ds = load_image_folder(
            root, resolution=cfg.resolution or 64, channels=cfg.channels or 3, max_images=cfg.max_images, log=log
        )
        ds.resolution = ds.info.resolution = cfg.resolution or 64
        return ds
    if name in PAIRED:
        from gankit.data import paired

        common = dict(
            resolution=cfg.resolution or 256,
            load_size=cfg.load_size,
            flip=cfg.flip,
            direction=cfg.direction,
            train=split == "train",
            max_images=cfg.max_images if split == "train" else 0,
            log=log,
        )
        if name == "facades":
            from gankit.data.facades import facades_direction, find_facades

            root = find_facades(cfg.path, log=log)
            # data.direction=AtoB means label map -> photo, whichever side the files keep it on
            natural = facades_direction(root)
            common["direction"] = natural if cfg.direction == "AtoB" else ("AtoB" if natural == "BtoA" else "BtoA")
            return paired.load_aligned(root, split, **common)
        if not cfg.path:
            raise DataError(f"dataset '{name}' needs a path: --data FOLDER")
        if name == "aligned":
            return paired.load_aligned(cfg.path, split, **common)
        return paired.load_pair_folders(cfg.path, split, **common)
    # colorization
    from gankit.data.colorization import load_colorization

    if not cfg.path:
        raise DataError("dataset 'colorization' needs a path: --data FOLDER of colour photos")
    return load_colorization(
        cfg.path,
        split,
        resolution=cfg.resolution or 256,
        load_size=cfg.load_size,
        flip=cfg.flip,
        max_images=cfg.max_images if split == "train" else 0,
        log=log,
    )


def infer_dataset_name(data: str, default: str) -> tuple[str, str | None]:
    """Interpret ``--data``: a dataset name, or a path whose kind is guessed (IDX files, images)."""
    if data in DATASETS:
        return data, None
    p = Path(data)
    if default in ("fashion-mnist", "mnist") and not _looks_like_idx_folder(p) and p.is_dir():
        return "folder", data
    if default == "celeba":
        return "folder", data
    if default in PAIRED and p.is_dir():
        lower = {c.name.lower() for c in p.iterdir() if c.is_dir()}
        if {"a", "b"} <= lower:
            return "pair-folders", data
        if "train" in lower and not any(p.glob("cmp_b*.png")) and default != "facades":
            return "aligned", data
    return default, data


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
