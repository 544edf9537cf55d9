"""Paired image-to-image data for pix2pix (Isola et al., "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017).

Pairs are decoded once (in a thread pool: PIL releases the GIL while decoding and resizing),
resized once and kept in memory as uint8. Training uses the paper's random jitter (Sec. 6.2):
resize to ``load_size`` (286), random crop to ``resolution`` (256), random horizontal flip; the
crop and the flip are drawn once per pair and applied to both images, so input and target stay
pixel-aligned. Validation and test pairs are resized straight to ``resolution`` and never augmented.

Two on-disk formats are read:

* :func:`load_aligned`: the pix2pix release format, one image per pair holding A | B side by side
  in ``root/<split>/``.
* :func:`load_pair_folders`: two folders ``a/`` and ``b/`` (or ``A/``, ``B/``) whose files match
  by stem, either per split (``root/<split>/a``) or once for the whole set (then a fixed split by
  sorted stem: the last 10% is ``val``).

The shared helpers live in :mod:`.images` (decoding, resizing) and :mod:`.base` (crop/flip, device copies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .base import Batch, DataInfo, DeviceCopies, crop_flip, to_unit_range
from .errors import DataError
from .images import (
    ImageReadError,
    SkipReport,
    decode_many,
    list_images,
    open_image,
    resize_square,
    stack_square,
    to_rgb,
)

__all__ = [
    "PairedDataset",
    "load_aligned",
    "load_pair_folders",
    "DIRECTIONS",
    "PAIR_FOLDER_VAL_FRACTION",
]

DIRECTIONS = ("AtoB", "BtoA")
PAIR_FOLDER_VAL_FRACTION = 0.1
"""Without split folders, :func:`load_pair_folders` puts the last 10% (by sorted stem) in ``val``."""

# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


class PairedDataset:
    """Aligned (A, B) image pairs held in memory as uint8; implements the ``TrainSet`` protocol.

    ``batch`` returns ``{"input", "target"}`` in [-1, 1] of shape (N, C, resolution, resolution).
    ``direction="BtoA"`` makes B the input and A the target. In training mode the pairs are stored
    at ``load_size`` and each batch is randomly cropped to ``resolution`` (and flipped if ``flip``)
    with one crop/flip per pair; called with ``generator=None`` a training set gives the centre
    crop, unflipped. Out of training mode the pairs are stored at ``resolution``.
    """

    def __init__(
        self,
        a: Tensor | Sequence[Tensor],
        b: Tensor | Sequence[Tensor],
        *,
        resolution: int,
        load_size: int = 0,
        train: bool = True,
        flip: bool = True,
        direction: str = "AtoB",
        names: Sequence[str] | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        load_size = load_size or resolution
        if load_size < resolution:
            raise ValueError(f"load_size ({load_size}) must be >= resolution ({resolution})")
        if len(a) != len(b):
            raise ValueError(f"{len(a)} A images for {len(b)} B images")
        if len(a) == 0:
            raise DataError("a paired dataset needs at least one pair")
        self.resolution, self.train, self.flip, self.direction = resolution, train, flip, direction
        self.load_size = load_size if train else resolution
        self.a = stack_square(a, self.load_size, "a")
        self.b = stack_square(b, self.load_size, "b")
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.a))]
        if len(self.names) != len(self.a):
            raise ValueError(f"{len(self.names)} names for {len(self.a)} pairs")
        inputs, targets = (self.a, self.b) if direction == "AtoB" else (self.b, self.a)
        self._split = inputs.shape[1]
        # Inputs and targets side by side along C, so one gather crops and flips both identically.
        self._joint = DeviceCopies(torch.cat([inputs, targets], dim=1))
        self.info = DataInfo(channels=targets.shape[1], resolution=resolution, in_channels=inputs.shape[1], space="rgb")

    def __len__(self) -> int:
        return len(self.a)

    def subset(self, n: int) -> PairedDataset:
        """The first ``n`` pairs (for quick runs)."""
        return PairedDataset(
            self.a[:n],
            self.b[:n],
            resolution=self.resolution,
            load_size=self.load_size,
            train=self.train,
            flip=self.flip,
            direction=self.direction,
            names=self.names[:n],
        )

    def batch(self, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None) -> Batch:
        src = self._joint.get(device)
        x = src[index.to(src.device)]
        x = crop_flip(x, self.resolution, generator if self.train else None, flip=self.flip)
        x = to_unit_range(x.to(device, non_blocking=True))
        return {"input": x[:, : self._split].contiguous(), "target": x[:, self._split :].contiguous()}


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------


def _missing_split(root: Path, split: str) -> DataError:
    if not root.is_dir():
        return DataError(f"dataset folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    listing = ", ".join(found) or "none"
    return DataError(f"no folder {root / split} for split {split!r} (subfolders of {root}: {listing})")


def _finish(
    a: list[Tensor],
    b: list[Tensor],
    names: list[str],
    report: SkipReport,
    folder: Path,
    log: Callable[[str], None],
    **kwargs: object,
) -> PairedDataset:
    if report.total:
        log(report.summary())
    if not a:
        raise DataError(f"no usable image pairs in {folder}" + (f" ({report.summary()})" if report.total else ""))
    return PairedDataset(a, b, names=names, **kwargs)  # type: ignore[arg-type]


def load_aligned(
    root: str | Path,
    split: str = "train",
    *,
    resolution: int = 256,
    load_size: int = 0,
    flip: bool = True,
    direction: str = "AtoB",
    train: bool | None = None,
    max_images: int = 0,
    workers: int = 0,
    log: Callable[[str], None] = print,
) -> PairedDataset:
    """Read ``root/<split>/*`` where every image is A | B side by side (the pix2pix release format).

    ``train`` defaults to ``split == "train"`` (random crop from ``load_size`` and flips); other
    splits are resized to ``resolution``. Images with an odd width cannot be cut into equal halves
    and are skipped, as are unreadable files; one summary line goes to ``log``. ``max_images`` > 0
    keeps the first files by name.
    """
    root = Path(root)
    folder = root / split
    if not folder.is_dir():
        raise _missing_split(root, split)
    files = list_images(folder, recursive=False)
    if not files:
        raise DataError(f"no image files in {folder} (expected A|B side-by-side pairs, e.g. 512x256 jpgs)")
    if max_images > 0:
        files = files[:max_images]
    train = split == "train" if train is None else train
    size = (load_size or resolution) if train else resolution

    def decode(path: Path) -> tuple[Tensor, Tensor]:
        img = to_rgb(open_image(path))
        w, h = img.size
        if w % 2:
            raise ImageReadError(path, "odd width", f"{w}x{h} cannot be cut into equal A|B halves")
        return resize_square(img.crop((0, 0, w // 2, h)), size), resize_square(img.crop((w // 2, 0, w, h)), size)

    report = SkipReport(f"{folder}")
    done = decode_many(files, decode, report=report, desc=f"decoding {folder.name}", workers=workers)
    return _finish(
        [r[0] for _, r in done],
        [r[1] for _, r in done],
        [files[i].name for i, _ in done],
        report,
        folder,
        log,
        resolution=resolution,
        load_size=load_size,
        train=train,
        flip=flip,
        direction=direction,
    )


def _pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    for a, b in (("a", "b"), ("A", "B")):
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder / a, folder / b
    return None


def _by_stem(folder: Path) -> dict[str, Path]:
    files = list_images(folder, recursive=False)
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DataError(f"two files with the stem {f.stem!r} in {folder}: {stems[f.stem].name} and {f.name}")
        stems[f.stem] = f
    return stems


def _check_partners(a: dict[str, Path], b: dict[str, Path], a_dir: Path, b_dir: Path) -> None:
    for have, other, other_dir in ((a, b, b_dir), (b, a, a_dir)):
        missing = sorted(set(have) - set(other))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(
                f"{have[missing[0]]} has no partner in {other_dir} (expected a file named {missing[0]}.*){more}"
            )


def load_pair_folders(
    root: str | Path,
    split: str = "train",
    *,
    resolution: int = 256,
    load_size: int = 0,
    flip: bool = True,
    direction: str = "AtoB",
    train: bool | None = None,
    max_images: int = 0,
    workers: int = 0,
    log: Callable[[str], None] = print,
) -> PairedDataset:
    """Read pairs from two folders ``a/`` and ``b/`` (or ``A/``, ``B/``) whose files match by stem.

    With split folders the pairs come from ``root/<split>/a`` and ``root/<split>/b``. Without them
    (``root/a``, ``root/b`` only) the split is fixed by sorted stem: the last
    ``PAIR_FOLDER_VAL_FRACTION`` (10%, at least one pair) is ``val`` and the rest ``train``;
    ``test`` then means the same pairs as ``val`` (a note goes to ``log``).

    A file without a partner, or partners of different sizes, raise :class:`DataError` naming the
    files; unreadable files skip their pair (counted in one summary line).
    """
    root = Path(root)
    train = split == "train" if train is None else train
    dirs = _pair_dirs(root / split)
    whole_set = False
    if dirs is None:
        dirs = _pair_dirs(root)
        if dirs is None:
            if (root / split).is_dir():
                raise DataError(f"{root / split} has no a/ and b/ subfolders (expected {root / split}/a and /b)")
            if not root.is_dir() or any((root / s).is_dir() for s in ("train", "val", "test")):
                raise _missing_split(root, split)
            raise DataError(
                f"{root} has no a/ and b/ subfolders (expected {root}/a and {root}/b, or {root}/<split>/a and /b)"
            )
        whole_set = True
    a_dir, b_dir = dirs
    a_files, b_files = _by_stem(a_dir), _by_stem(b_dir)
    _check_partners(a_files, b_files, a_dir, b_dir)
    stems = sorted(a_files)
    if not stems:
        raise DataError(f"no image files in {a_dir} and {b_dir}")
    if whole_set:
        n_val = max(1, round(len(stems) * PAIR_FOLDER_VAL_FRACTION)) if len(stems) > 1 else 0
        if split == "train":
            stems = stems[: len(stems) - n_val]
        elif split in ("val", "test"):
            if split == "test":
                log(f"{root}: no split folders, so 'test' uses the validation pairs (last {n_val} by name)")
            stems = stems[len(stems) - n_val :]
        else:
            raise DataError(f"unknown split {split!r} for {root} (no split folders: use train, val or test)")
        if not stems:
            raise DataError(f"split {split!r} of {root} is empty ({len(a_files)} pairs in all)")
    if max_images > 0:
        stems = stems[:max_images]
    size = (load_size or resolution) if train else resolution

    def decode(stem: str) -> tuple[Tensor, Tensor]:
        pa, pb = a_files[stem], b_files[stem]
        ia, ib = to_rgb(open_image(pa)), to_rgb(open_image(pb))
        if ia.size != ib.size:
            raise DataError(
                f"partners differ in size: {pa} is {ia.size[0]}x{ia.size[1]} but {pb} is {ib.size[0]}x{ib.size[1]}"
            )
        return resize_square(ia, size), resize_square(ib, size)

    report = SkipReport(f"{a_dir.parent}")
    done = decode_many(stems, decode, report=report, desc=f"decoding {a_dir.parent.name}", workers=workers)
    return _finish(
        [r[0] for _, r in done],
        [r[1] for _, r in done],
        [a_files[stems[i]].name for i, _ in done],
        report,
        a_dir.parent,
        log,
        resolution=resolution,
        load_size=load_size,
        train=train,
        flip=flip,
        direction=direction,
    )
