"""Colour photos for Lab colorization: predict a*b* from L* (Isola et al., "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017, Sec. 4.7; Zhang et al., "Colorful
Image Colorization", ECCV 2016).

Photos are decoded once, squashed to ``load_size`` x ``load_size`` (a plain square resize, as the
reference colorization code does: aspect ratio is not kept) and converted to Lab once, at load
(:mod:`gankit.color`, in chunks). Random crops and flips move pixels without changing them and
sRGB -> Lab is a per-pixel map, so cropping/flipping the converted photos gives the same batches as
converting each cropped batch; a training batch is then an index, a crop/flip and a cast: about 11x
faster than converting per batch on a CPU and about 30x faster than the reference pipeline
(BENCHMARKS.md). The cache holds the model-scaled values (L/50 - 1, ab/110) in float16: 6 bytes a
pixel (393 KB a 256x256 photo, twice a uint8 RGB cache), rounding L* by at most 0.013 and a*, b* by
0.03, far below the 8-bit quantization of the photos themselves.

That is the ``memory`` storage path (:mod:`.storage`), right for a CPU and for sets that fit in RAM:
the Lab is a :class:`LabCache` kept over the store of uint8 photos, which stays what it is.
With ``mmap`` or ``stream`` storage (large sets: COCO, ImageNet) the photos stay uint8 RGB, 3 bytes a
pixel, and each batch is converted on the training device (cheap on a GPU), then rounded to
float16 exactly as the cache is, so every backend gives the same batches.

Grayscale photos carry no colour to learn and are skipped, as are unreadable and tiny files; one
summary line reports how many.

Validation follows the one rule of :mod:`.splits`: a ``val/`` folder if there is one; otherwise
every 10th photo of the training photos (by sorted path) is held out; with fewer than 10 photos
(a handful of one's own), validation uses the training photos themselves. The log says which,
and so does ``info.val_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from ..color import rgb_to_model
from .base import Batch, DataInfo, crop_flip
from .errors import DataError
from .images import (
    ImageReadError,
    is_grayscale,
    list_images,
    open_image,
    resize_square,
    stack_square,
    to_rgb,
)
from .splits import VAL_SPLIT, describe, describe_subset, holdout, seeded_subset
from .storage import DeviceCopies, ItemSource, MemoryStore, Store, open_store

__all__ = ["ColorizationDataset", "LabCache", "load_colorization", "to_lab_cache", "MIN_PHOTO_SIDE", "LAB_CACHE_DTYPE"]

MIN_PHOTO_SIDE = 32
"""Photos whose shorter side is below this are skipped: upscaling them would teach only blur."""


LAB_CACHE_DTYPE = torch.float16
_CONVERT_CHUNK = 16
"""Photos converted to Lab at a time while loading (bounds the float32 working memory)."""


class LabCache:
    """A derived cache over a store of uint8 RGB photos: every photo as model-scaled float16 Lab.

    Item ``i`` is the Lab of the store's item ``i``, computed once (:func:`to_lab_cache`); the store
    itself is left as it is (its item ``i`` stays the uint8 photo, as :mod:`.storage` promises). Kept
    beside a ``memory`` store, where it makes a training batch an index, a crop/flip and a cast.
    """

    def __init__(self, lab: Tensor) -> None:
        self.lab = lab
        self._copies = DeviceCopies(lab)

    @classmethod
    def of(cls, store: Store) -> LabCache:
        """The Lab of every photo of ``store`` (converted in chunks: bounded float32 working memory)."""
        return cls(to_lab_cache(store.pixels))

    def __len__(self) -> int:
        return len(self.lab)

    def gather(self, index: Tensor, device: torch.device) -> Tensor:
        """The float16 Lab of the photos ``index``, on ``device``."""
        src = self._copies.get(device)
        return src[index.to(src.device)].to(device, non_blocking=True)

    def head(self, n: int) -> LabCache:
        return LabCache(self.lab[:n])


class ColorizationDataset:
    """Colour photos for Lab colorization; implements the ``TrainSet`` protocol.

    Built from uint8 RGB photos (a (N, 3, H, W) tensor or a list of (3, H, W); resized to
    ``load_size`` if needed), or with :meth:`from_store` from a store of uint8 RGB photos.
    ``batch`` crops to ``resolution`` (random with a generator, centred without), flips at random
    when ``flip`` and a generator are given, and returns
    ``{"input": L / 50 - 1 (N, 1, R, R), "target": ab / 110 (N, 2, R, R)}`` in float32.

    With ``lab_at_load`` (photos in memory) a :class:`LabCache` is computed once over the store and
    ``batch`` reads it; otherwise (mmap and stream storage: 3 bytes a pixel) each batch is converted
    on the training device and rounded to float16 the same way, so both give identical batches.
    """

    def __init__(
        self,
        images: Tensor | Sequence[Tensor],
        *,
        resolution: int,
        load_size: int = 0,
        flip: bool = True,
        names: Sequence[str] | None = None,
    ) -> None:
        load_size = load_size or resolution
        if load_size < resolution:
            raise ValueError(f"load_size ({load_size}) must be >= resolution ({resolution})")
        if len(images) == 0:
            raise DataError("a colorization dataset needs at least one photo")
        rgb = stack_square(images, load_size, "images")
        if rgb.shape[1] != 3:
            raise ValueError(f"colorization needs RGB photos, got {rgb.shape[1]} channels")
        self._init(MemoryStore(rgb), resolution=resolution, flip=flip, names=names, lab_at_load=True)

    @classmethod
    def from_store(
        cls,
        store: Store,
        *,
        resolution: int,
        flip: bool = True,
        names: Sequence[str] | None = None,
        lab_at_load: bool | None = None,
    ) -> ColorizationDataset:
        """Photos whose uint8 RGB items are in ``store``; ``lab_at_load`` defaults to memory storage."""
        ds = cls.__new__(cls)
        at_load = store.kind == "memory" if lab_at_load is None else lab_at_load
        ds._init(store, resolution=resolution, flip=flip, names=names, lab_at_load=at_load)
        return ds

    def _init(
        self, store: Store, *, resolution: int, flip: bool, names: Sequence[str] | None, lab_at_load: bool
    ) -> None:
        self.store = store
        self.resolution, self.load_size, self.flip = resolution, store.item_shape[-1], flip
        if self.load_size < resolution:
            raise ValueError(f"load_size ({self.load_size}) must be >= resolution ({resolution})")
        self.names = list(names) if names is not None else [str(i) for i in range(len(store))]
        if len(self.names) != len(store):
            raise ValueError(f"{len(self.names)} names for {len(store)} photos")
        self.lab_cache = LabCache.of(store) if lab_at_load else None
        self.info = DataInfo(channels=2, resolution=resolution, in_channels=1, space="lab")

    @property
    def lab_at_load(self) -> bool:
        """Whether the photos were converted to Lab once, at load (a :class:`LabCache` is kept)."""
        return self.lab_cache is not None

    @property
    def lab(self) -> Tensor:
        """All photos as model-scaled float16 Lab (N, 3, load_size, load_size) (computed if not cached)."""
        return self.lab_cache.lab if self.lab_cache is not None else to_lab_cache(self.store.pixels)

    def __len__(self) -> int:
        return len(self.store)

    def subset(self, n: int) -> ColorizationDataset:
        """The first ``n`` photos (for quick runs)."""
        ds = ColorizationDataset.__new__(ColorizationDataset)
        ds.store, ds.resolution, ds.load_size, ds.flip = self.store.head(n), self.resolution, self.load_size, self.flip
        ds.names = self.names[:n]
        ds.lab_cache = self.lab_cache.head(n) if self.lab_cache is not None else None
        ds.info = replace(self.info, num_images=len(ds) if self.info.num_images else 0)
        return ds

    def batch(self, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None) -> Batch:
        if self.lab_cache is not None:
            x = crop_flip(self.lab_cache.gather(index, device), self.resolution, generator, flip=self.flip)
            x = x.to(device, non_blocking=True).float()
            return {"input": x[:, :1], "target": x[:, 1:]}
        return self.from_pixels(self.store.gather(index, device), index, device=device, generator=generator)

    def from_pixels(
        self, pixels: Tensor, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None
    ) -> Batch:
        """The batch of the photos ``index`` from their uint8 RGB ``pixels``, converted to Lab here."""
        x = crop_flip(pixels.to(device, non_blocking=True), self.resolution, generator, flip=self.flip)
        L, ab = rgb_to_model(x.float().div_(255.0))
        return {"input": L.to(LAB_CACHE_DTYPE).float(), "target": ab.to(LAB_CACHE_DTYPE).float()}


def to_lab_cache(rgb: Tensor) -> Tensor:
    """uint8 RGB (N, 3, H, W) -> model-scaled Lab (L/50 - 1, ab/110) as float16 (N, 3, H, W)."""
    out = torch.empty(rgb.shape, dtype=LAB_CACHE_DTYPE)
    for start in range(0, len(rgb), _CONVERT_CHUNK):
        L, ab = rgb_to_model(rgb[start : start + _CONVERT_CHUNK].float().div_(255.0))
        out[start : start + len(L), :1] = L
        out[start : start + len(L), 1:] = ab
    return out


def load_colorization(
    root: str | Path,
    split: str = "train",
    *,
    resolution: int = 256,
    load_size: int = 0,
    flip: bool = True,
    max_images: int = 0,
    val_fraction: float = 0.1,
    min_side: int = MIN_PHOTO_SIDE,
    storage: str = "auto",
    workers: int = 0,
    log: Callable[[str], None] = print,
) -> ColorizationDataset:
    """Colour photos under ``root`` (searched recursively) for one split.

    If ``root`` has a ``train/`` subfolder, ``root/<split>`` is used, except that without ``val/``
    the validation photos are held out of ``train/``. Otherwise (a plain folder of photos) the
    split is fixed by sorted path: with ``val_fraction`` 0.1 every 10th file (index % 10 == 9) is
    ``val`` and the rest ``train``; ``test`` then means the ``val`` files (a note goes to ``log``).
    With too few photos to hold one out, ``val`` is the training photos (:mod:`.splits`).

    Only ``train`` is augmented (random ``load_size`` -> ``resolution`` crop, flips); other splits are
    resized straight to ``resolution`` and never flipped. ``max_images`` > 0 keeps that many photos
    of the split, a seeded subset (:func:`.splits.seeded_subset`).
    """
    folder, files, val_source = _split_photos(Path(root), split, val_fraction, log)
    subset = describe_subset(len(files), max_images)
    files = [files[i] for i in seeded_subset(len(files), max_images)]

    train = split == "train"
    size = (load_size or resolution) if train else resolution

    source = ItemSource(
        kind="photos",
        root=folder,
        items=files,
        decode=partial(_decode_photo, size=size, min_side=min_side),
        shape=(3, size, size),
        params=f"{size}px-rgb",
        what="colour photos",
        persist=True,  # the next start reads the decoded photos instead of decoding them
    )
    # in memory a LabCache of float16 Lab is kept over the store: 2 bytes for every decoded byte; the
    # store then reads the mapped uint8 cache, so no private uint8 copy sits in RAM beside the Lab
    stored = open_store(source, storage, log=log, workers=workers, memory_factor=2.0, memory_copy=False)
    ds = ColorizationDataset.from_store(
        stored.store,
        resolution=resolution,
        flip=flip and train,
        names=[str(files[i].relative_to(folder)) for i in stored.kept],
    )
    ds.info.source, ds.info.val_source = str(folder.resolve()), val_source
    ds.info.storage_choice, ds.info.subset = stored.choice, subset
    return ds


def _split_photos(
    root: Path, split: str, val_fraction: float, log: Callable[[str], None]
) -> tuple[Path, list[Path], str]:
    """``(folder, files, val_source)`` of ``split`` under ``root`` (see :func:`load_colorization`)."""
    if root.is_file():
        raise DataError(f"{root} is a file, not a folder; pass the folder that holds it ({root.parent})")
    if not root.is_dir():
        raise DataError(f"photo folder {root} does not exist")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    split_folders = (root / "train").is_dir()
    if split_folders and ((root / "val").is_dir() or split not in ("train", "val")):
        folder = root / split
        if not folder.is_dir():
            found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
            raise DataError(f"no folder {folder} for split {split!r} (subfolders of {root}: {found})")
        files = list_images(folder)
        val_source = VAL_SPLIT if (root / "val").is_dir() else ""
    else:
        folder = root / "train" if split_folders else root
        every = list_images(folder)
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split {split!r} for {root} (no split folders: use train, val or test)")
        plan = holdout(len(every), val_fraction, what="photos")
        val_source = plan.source
        if split == "val" and every:  # said when validation data are loaded (once per run)
            log(describe(plan.source, str(root)))
        if split == "test":
            log(f"{root}: no train/ and val/ subfolders, so 'test' uses the validation photos")
        files = [every[i] for i in (plan.train if split == "train" else plan.val)]
    if not files:
        raise DataError(f"no image files for split {split!r} in {folder}")
    return folder, files, val_source


def _decode_photo(path: Path, size: int, min_side: int) -> Tensor:
    img = open_image(path)
    if min(img.size) < min_side:
        raise ImageReadError(path, "too small", f"{img.size[0]}x{img.size[1]}, need a side >= {min_side}")
    if is_grayscale(img):
        raise ImageReadError(path, "grayscale")
    return resize_square(to_rgb(img), size)
