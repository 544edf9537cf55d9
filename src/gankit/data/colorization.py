"""Colour photos for Lab colorization: predict a*b* from L* (Isola et al., "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017, Sec. 4.7; Zhang et al., "Colorful
Image Colorization", ECCV 2016).

Photos are decoded once, squashed to ``load_size`` x ``load_size`` (a plain square resize, as the
reference colorization code does: aspect ratio is not kept) and held in memory as uint8 RGB. The
Lab conversion happens per batch on the training device (:mod:`gankit.color`), so the cache stays
small (uint8, 3 bytes a pixel) and the CPU does no per-pixel work during training.

Grayscale photos carry no colour to learn and are skipped, as are unreadable and tiny files; one
summary line reports how many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor

from ..color import rgb_to_model
from .base import Batch, DataInfo
from .errors import DataError
from .images import ImageReadError, SkipReport, is_grayscale, list_images, open_image, to_rgb
from .paired import _DeviceCopies, _resize_pil, _stack_resized, crop_flip, decode_many

__all__ = ["ColorizationDataset", "load_colorization", "MIN_PHOTO_SIDE"]

MIN_PHOTO_SIDE = 32
"""Photos whose shorter side is below this are skipped: upscaling them would teach only blur."""


class ColorizationDataset:
    """RGB photos held as uint8 (N, 3, load_size, load_size); implements the ``TrainSet`` protocol.

    ``batch`` crops to ``resolution`` (random with a generator, centred without), flips at random
    when ``flip`` and a generator are given, converts to Lab on the device and returns
    ``{"input": L / 50 - 1 (N, 1, R, R), "target": ab / 110 (N, 2, R, R)}``.
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
        self.resolution, self.load_size, self.flip = resolution, load_size, flip
        self.images = _stack_resized(images, load_size, "images")
        if self.images.shape[1] != 3:
            raise ValueError(f"colorization needs RGB photos, got {self.images.shape[1]} channels")
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.images))]
        if len(self.names) != len(self.images):
            raise ValueError(f"{len(self.names)} names for {len(self.images)} photos")
        self._source = _DeviceCopies(self.images)
        self.info = DataInfo(channels=2, resolution=resolution, in_channels=1, space="lab")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, n: int) -> ColorizationDataset:
        """The first ``n`` photos (for quick runs)."""
        return ColorizationDataset(
            self.images[:n], resolution=self.resolution, load_size=self.load_size, flip=self.flip,
            names=self.names[:n],
        )

    def batch(self, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None) -> Batch:
        src = self._source.get(device)
        x = crop_flip(src[index.to(src.device)], self.resolution, generator, flip=self.flip)
        rgb = x.to(device, non_blocking=True).float().div_(255.0)
        L, ab = rgb_to_model(rgb)
        return {"input": L, "target": ab}


def _is_val(i: int, fraction: Fraction) -> bool:
    # Item i is in val when the running count floor(k * fraction) steps up at k = i + 1:
    # evenly spread, and for 1/10 exactly "every 10th file" (i % 10 == 9). Integer maths, no float drift.
    return (i + 1) * fraction.numerator // fraction.denominator > i * fraction.numerator // fraction.denominator


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
    workers: int = 0,
    log: Callable[[str], None] = print,
) -> ColorizationDataset:
    """Colour photos under ``root`` (searched recursively) for one split.

    If ``root`` has ``train/`` and ``val/`` subfolders, ``root/<split>`` is used. Otherwise the split
    is fixed by sorted path: with ``val_fraction`` 0.1 every 10th file (index % 10 == 9) is ``val``
    and the rest ``train``; ``test`` then means the ``val`` files (a note goes to ``log``).

    Only ``train`` is augmented (random ``load_size`` -> ``resolution`` crop, flips); other splits are
    resized straight to ``resolution`` and never flipped. ``max_images`` > 0 keeps the first photos
    of the split by name.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"photo folder {root} does not exist")
    if (root / "train").is_dir() and (root / "val").is_dir():
        folder = root / split
        if not folder.is_dir():
            found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
            raise DataError(f"no folder {folder} for split {split!r} (subfolders of {root}: {found})")
        files = list_images(folder)
    else:
        folder = root
        every = list_images(root)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        frac = Fraction(val_fraction).limit_denominator(1000)
        if split == "train":
            files = [f for i, f in enumerate(every) if not _is_val(i, frac)]
        elif split in ("val", "test"):
            if split == "test":
                log(f"{root}: no train/ and val/ subfolders, so 'test' uses the validation photos")
            files = [f for i, f in enumerate(every) if _is_val(i, frac)]
        else:
            raise DataError(f"unknown split {split!r} for {root} (no split folders: use train, val or test)")
    if not files:
        raise DataError(f"no image files for split {split!r} in {folder}")
    if max_images > 0:
        files = files[:max_images]

    train = split == "train"
    size = (load_size or resolution) if train else resolution

    def decode(path: Path) -> Tensor:
        img = open_image(path)
        if min(img.size) < min_side:
            raise ImageReadError(path, "too small", f"{img.size[0]}x{img.size[1]}, need a side >= {min_side}")
        if is_grayscale(img):
            raise ImageReadError(path, "grayscale")
        return _resize_pil(to_rgb(img), size)

    report = SkipReport(f"{folder}")
    done = decode_many(files, decode, report=report, desc=f"decoding {folder.name or folder}", workers=workers)
    if report.total:
        log(report.summary())
    if not done:
        raise DataError(f"no usable colour photo in {folder}" + (f" ({report.summary()})" if report.total else ""))
    return ColorizationDataset(
        [img for _, img in done], resolution=resolution, load_size=size, flip=flip and train,
        names=[str(files[i].relative_to(folder)) for i, _ in done],
    )
