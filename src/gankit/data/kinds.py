"""gankit's own dataset kinds: for each, one loader and one :func:`~gankit.data.registry.register_dataset`.

A loader maps a :class:`~gankit.config.DataConfig` onto its dataset module's function and says where the
data came from (``info.source``); it imports that module when called, so registering stays free of
torch (``gankit list``). The order of registration is the order ``gankit list`` shows and the order
detection tries (:func:`~gankit.data.registry.detect_dataset`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gankit.data.errors import DataError
from gankit.data.infer import file_not_folder
from gankit.data.registry import register_dataset

if TYPE_CHECKING:
    from gankit.config import DataConfig
    from gankit.data.base import TrainSet

Log = Callable[[str], None]


def _sourced(ds: TrainSet, root: Path, given: str | None = None) -> TrainSet:
    """Record the dataset's root as ``info.source`` (not the split folder) and, when it differs, the
    path the user named as ``info.given``."""
    ds.info.source = str(root.resolve())
    if given:
        named = str(Path(given).expanduser().resolve())
        ds.info.given = named if named != ds.info.source else ""
    return ds


# ---------------------------------------------------------------------------------------------
# IDX files: MNIST, Fashion-MNIST, any other
# ---------------------------------------------------------------------------------------------


def idx_kind(folder: Path) -> str | None:
    """mnist, fashion-mnist or idx for a folder of IDX files (by content), None for any other folder."""
    from gankit.data.mnist import find_idx_files, identify_idx

    if not folder.is_dir() or (find_idx_files(folder, "train") or find_idx_files(folder, "test")) is None:
        return None
    return identify_idx(folder).kind


def load_idx_kind(cfg: DataConfig, split: str, log: Log) -> TrainSet:
    """IDX images and labels (held in memory: they are small), checked to be the set ``cfg.name`` says."""
    from gankit.data.base import ImageTensorDataset
    from gankit.data.mnist import DIGIT_CLASSES, FASHION_CLASSES, IDX_CLASSES, identify_idx, load_idx
    from gankit.data.splits import describe_subset, seeded_subset
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
    subset = describe_subset(len(ds), cfg.max_images)
    if subset:  # the same seeded choice as every other kind, not the first N images
        ds = ds.select(seeded_subset(len(ds), cfg.max_images))
        ds.info.subset = subset
    if loaded.downloaded:
        ds.info.source = f"torchvision download into {cache_dir() / name}"
        return ds
    return _sourced(ds, folder)


register_dataset(
    "fashion-mnist",
    kind="noise",
    description="Fashion-MNIST IDX files (60k/10k, 28x28, 10 classes); Debian: dataset-fashion-mnist",
    load=load_idx_kind,
    accepts="idx",
    detect=lambda folder: idx_kind(folder) == "fashion-mnist",
)
register_dataset(
    "mnist",
    kind="noise",
    description="MNIST IDX files (60k/10k, 28x28, 10 digits)",
    load=load_idx_kind,
    accepts="idx",
    detect=lambda folder: idx_kind(folder) == "mnist",
)
register_dataset(
    "idx",
    kind="noise",
    description="any other folder of IDX files (train-images/-labels, t10k-...): no domain classifier",
    load=load_idx_kind,
    accepts="idx",
    detect=lambda folder: idx_kind(folder) == "idx",
    needs_path="FOLDER of IDX files",
)


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


def load_folder_kind(cfg: DataConfig, split: str, log: Log) -> TrainSet:
    """Every image under the folder (CelebA: found where it is kept), resized and centre-cropped."""
    from gankit.data.folders import find_celeba, load_image_folder

    root = find_celeba(cfg.path) if cfg.name == "celeba" else Path(cfg.path)  # type: ignore[arg-type]
    if root.is_file():
        raise DataError(f"{root} " + file_not_folder(root, cfg.name))
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
    return _sourced(ds, root)


register_dataset(
    "folder",
    kind="noise",
    description="any folder of images, flat or one subfolder per class (resize + center crop)",
    load=load_folder_kind,
    accepts="images",
    needs_path="FOLDER",
)
register_dataset(
    "celeba",
    kind="noise",
    description="CelebA aligned faces (img_align_celeba), a folder of images",
    load=load_folder_kind,
    accepts="images",
)


# ---------------------------------------------------------------------------------------------
# Image pairs: aligned A|B files, a/ + b/ folders, facades
# ---------------------------------------------------------------------------------------------


def _pair_options(cfg: DataConfig, split: str, log: Log, direction: str) -> dict[str, Any]:
    return dict(
        resolution=cfg.resolution or 256,
        load_size=cfg.load_size,
        flip=cfg.flip,
        direction=direction,
        train=split == "train",
        max_images=cfg.max_images if split == "train" else 0,
        storage=cfg.storage,
        workers=cfg.workers,
        log=log,
    )


def load_pairs_kind(cfg: DataConfig, split: str, log: Log) -> TrainSet:
    """Pairs in the layout ``cfg.name`` names (aligned or pair-folders)."""
    from gankit.data.paired import load_pairs

    ds = load_pairs(cfg.path, split, layout=cfg.name, **_pair_options(cfg, split, log, cfg.direction))  # type: ignore[arg-type]
    return _sourced(ds, Path(cfg.path))  # type: ignore[arg-type]


def load_facades_kind(cfg: DataConfig, split: str, log: Log) -> TrainSet:
    """Facades in either layout; ``data.direction=AtoB`` means label map -> photo, whichever side the files
    keep it on."""
    from gankit.data.facades import facades_layout, find_facades
    from gankit.data.paired import load_pairs

    root = find_facades(cfg.path, log=log)
    found = facades_layout(root)
    natural = found.direction
    direction = natural if cfg.direction == "AtoB" else ("AtoB" if natural == "BtoA" else "BtoA")
    if split == "train":
        log(f"facades in {root}: {found.how}; labels -> photo is {natural}")
    layout = "pair-folders" if found.layout == "pair-folders" else "aligned"
    ds = load_pairs(root, split, layout=layout, **_pair_options(cfg, split, log, direction))
    return _sourced(ds, root, given=cfg.path)


register_dataset(
    "aligned",
    kind="paired",
    description="pix2pix format: A|B side by side in train/ val/ test/",
    load=load_pairs_kind,
    accepts="pairs",
    needs_path="FOLDER",
)
register_dataset(
    "pair-folders",
    kind="paired",
    description="two folders a/ and b/ with matching file names (or train/a, train/b, ...)",
    load=load_pairs_kind,
    accepts="pairs",
    needs_path="FOLDER",
)
register_dataset(
    "facades",
    kind="paired",
    description="CMP Facade base set or the pix2pix facades release (aligned, or train/a, train/b, ...)",
    load=load_facades_kind,
    accepts="pairs",
)


# ---------------------------------------------------------------------------------------------
# Colour photos for colorization
# ---------------------------------------------------------------------------------------------


def load_colorization_kind(cfg: DataConfig, split: str, log: Log) -> TrainSet:
    """Colour photos, L -> ab in Lab space."""
    from gankit.data.colorization import load_colorization

    ds = load_colorization(
        cfg.path,  # type: ignore[arg-type]
        split,
        resolution=cfg.resolution or 256,
        load_size=cfg.load_size,
        flip=cfg.flip,
        max_images=cfg.max_images if split == "train" else 0,
        storage=cfg.storage,
        workers=cfg.workers,
        log=log,
    )
    return _sourced(ds, Path(cfg.path))  # type: ignore[arg-type]


register_dataset(
    "colorization",
    kind="paired",
    description="any folder of colour photos (COCO-like); L -> ab in Lab space",
    load=load_colorization_kind,
    accepts="images",
    needs_path="FOLDER of colour photos",
)
