"""Paired image-to-image data for pix2pix (Isola et al., "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017).

Pairs are decoded once (in a thread pool: PIL releases the GIL while decoding and resizing),
resized once and kept in memory as uint8. Training uses the paper's random jitter (Sec. 6.2):
resize to ``load_size`` (286), random crop to ``resolution`` (256), random horizontal flip; the
crop and the flip are drawn once per pair and applied to both images, so input and target stay
pixel-aligned. Validation and test pairs are resized straight to ``resolution`` and never augmented.

Two on-disk layouts are read, both through :func:`load_pairs` (a layout only says how a split's
pairs are found; ``max_images``, decoding, storage and the dataset are one code path):

* :func:`load_aligned`: the pix2pix release format, one image per pair holding A | B side by side
  in ``root/<split>/``.
* :func:`load_pair_folders`: two folders ``a/`` and ``b/`` (or ``A/``, ``B/``) whose files match
  by stem, either per split (``root/<split>/a``, as the facades release of the course notes:
  ``train/a``, ``train/b``, ``test/a``, ``test/b``) or once for the whole set (``root/a``, ``root/b``).

Without a ``val`` split (no ``val/``, or no split folders at all) validation pairs are held out of
the training pairs by the one rule of :mod:`.splits`: every 10th pair by sorted name, or, with
fewer than 10 pairs, the training pairs themselves; the log says which, and so does
``info.val_source``.

The shared helpers live in :mod:`.images` (decoding, resizing) and :mod:`.base` (crop/flip, device copies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..formatting import image_size
from .base import Batch, DataInfo, crop_flip, to_unit_range
from .errors import DataError
from .images import (
    ImageReadError,
    list_images,
    open_image,
    resize_square,
    stack_square,
    to_rgb,
)
from .splits import HOLDOUT_FRACTION, VAL_SPLIT, Holdout, describe, describe_subset, holdout, seeded_subset
from .storage import ItemSource, MemoryStore, Store, open_store

__all__ = [
    "PairedDataset",
    "load_pairs",
    "load_aligned",
    "load_pair_folders",
    "DIRECTIONS",
    "PAIR_FOLDER_VAL_FRACTION",
]

DIRECTIONS = ("AtoB", "BtoA")
PAIR_FOLDER_VAL_FRACTION = float(HOLDOUT_FRACTION)
"""Without a val split, every 10th pair (by sorted name) is held out for ``val`` (:mod:`.splits`)."""

# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


class PairedDataset:
    """Aligned (A, B) image pairs as uint8, in any storage backend; implements the ``TrainSet`` protocol.

    ``batch`` returns ``{"input", "target"}`` in [-1, 1] of shape (N, C, resolution, resolution).
    ``direction="BtoA"`` makes B the input and A the target. In training mode the pairs are stored
    at ``load_size`` and each batch is randomly cropped to ``resolution`` (and flipped if ``flip``)
    with one crop/flip per pair; called with ``generator=None`` a training set gives the centre
    crop, unflipped. Out of training mode the pairs are stored at ``resolution``.

    Built from ``a`` and ``b`` images (tensors or lists, held in memory), or with
    :meth:`from_store` from a store whose items are A and B stacked along the channels.
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
        load_size = load_size or resolution
        if load_size < resolution:
            raise ValueError(f"load_size ({load_size}) must be >= resolution ({resolution})")
        if len(a) != len(b):
            raise ValueError(f"{len(a)} A images for {len(b)} B images")
        if len(a) == 0:
            raise DataError("a paired dataset needs at least one pair")
        size = load_size if train else resolution
        a_t, b_t = stack_square(a, size, "a"), stack_square(b, size, "b")
        # A and B side by side along C, so one gather crops and flips both identically.
        store = MemoryStore(torch.cat([a_t, b_t], dim=1))
        self._init(store, a_t.shape[1], resolution=resolution, train=train, flip=flip, direction=direction, names=names)

    @classmethod
    def from_store(
        cls,
        store: Store,
        a_channels: int,
        *,
        resolution: int,
        train: bool = True,
        flip: bool = True,
        direction: str = "AtoB",
        names: Sequence[str] | None = None,
    ) -> PairedDataset:
        """Pairs whose items in ``store`` are A (``a_channels``) and B stacked along the channels."""
        ds = cls.__new__(cls)
        ds._init(store, a_channels, resolution=resolution, train=train, flip=flip, direction=direction, names=names)
        return ds

    def _init(
        self,
        store: Store,
        a_channels: int,
        *,
        resolution: int,
        train: bool,
        flip: bool,
        direction: str,
        names: Sequence[str] | None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.store, self.a_channels = store, a_channels
        channels, side, _ = store.item_shape
        self.resolution, self.train, self.flip, self.direction = resolution, train, flip, direction
        self.load_size = side
        self.names = list(names) if names is not None else [str(i) for i in range(len(store))]
        if len(self.names) != len(store):
            raise ValueError(f"{len(self.names)} names for {len(store)} pairs")
        a_ch, b_ch = a_channels, channels - a_channels
        in_ch, out_ch = (a_ch, b_ch) if direction == "AtoB" else (b_ch, a_ch)
        self.info = DataInfo(channels=out_ch, resolution=resolution, in_channels=in_ch, space="rgb")

    @property
    def a(self) -> Tensor:
        """All A images, uint8 (memory and mmap storage)."""
        return self.store.pixels[:, : self.a_channels]

    @property
    def b(self) -> Tensor:
        """All B images, uint8 (memory and mmap storage)."""
        return self.store.pixels[:, self.a_channels :]

    def __len__(self) -> int:
        return len(self.store)

    def subset(self, n: int) -> PairedDataset:
        """The first ``n`` pairs (for quick runs)."""
        ds = PairedDataset.from_store(
            self.store.head(n),
            self.a_channels,
            resolution=self.resolution,
            train=self.train,
            flip=self.flip,
            direction=self.direction,
            names=self.names[:n],
        )
        ds.info = replace(self.info, num_images=len(ds) if self.info.num_images else 0)
        return ds

    def batch(self, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None) -> Batch:
        return self.from_pixels(self.store.gather(index, device), index, device=device, generator=generator)

    def from_pixels(
        self, pixels: Tensor, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None
    ) -> Batch:
        """The batch of the pairs ``index`` whose uint8 A|B items are ``pixels`` (see :mod:`.feed`)."""
        x = crop_flip(pixels, self.resolution, generator if self.train else None, flip=self.flip)
        x = to_unit_range(x.to(device, non_blocking=True))
        a, b = x[:, : self.a_channels], x[:, self.a_channels :]
        inputs, targets = (a, b) if self.direction == "AtoB" else (b, a)
        return {"input": inputs.contiguous(), "target": targets.contiguous()}


# ---------------------------------------------------------------------------------------------
# Loaders: one path for both layouts, which differ only in how a split's pairs are found
# ---------------------------------------------------------------------------------------------

LAYOUTS = ("aligned", "pair-folders")
"""The on-disk layouts of paired data (:func:`load_pairs`)."""


@dataclass(frozen=True)
class _Found:
    """The pairs of one split, as a layout finds them (before ``max_images`` and decoding)."""

    kind: str
    """The :class:`ItemSource` kind (part of the cache key)."""
    root: Path
    """The folder the items come from (the cache is named after it)."""
    items: list
    names: list[str]
    val_source: str
    decode: Callable[..., Tensor]
    """Decodes one item at ``size``: ``decode(item, size=size)``."""


def load_pairs(
    root: str | Path,
    split: str = "train",
    *,
    layout: str,
    resolution: int = 256,
    load_size: int = 0,
    flip: bool = True,
    direction: str = "AtoB",
    train: bool | None = None,
    max_images: int = 0,
    storage: str = "auto",
    workers: int = 0,
    log: Callable[[str], None] = print,
) -> PairedDataset:
    """The pairs of ``split`` under ``root`` in ``layout`` (see :func:`load_aligned`, :func:`load_pair_folders`).

    ``train`` defaults to ``split == "train"`` (random crop from ``load_size`` and flips); other
    splits are resized to ``resolution``. ``max_images`` > 0 keeps that many pairs, a seeded subset
    (:func:`.splits.seeded_subset`).
    ``storage`` and ``workers``: :func:`.storage.open_store`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    root = Path(root)
    train = split == "train" if train is None else train
    found = (_find_aligned if layout == "aligned" else _find_pair_folders)(root, split, log)
    subset = describe_subset(len(found.items), max_images)
    keep = seeded_subset(len(found.items), max_images)
    items, names = [found.items[i] for i in keep], [found.names[i] for i in keep]
    size = (load_size or resolution) if train else resolution
    source = ItemSource(
        kind=found.kind,
        root=found.root,
        items=items,
        decode=partial(found.decode, size=size),
        shape=(6, size, size),
        params=f"{size}px",
        what="image pairs",
        persist=True,  # the next start reads the decoded pairs instead of decoding them
    )
    stored = open_store(source, storage, log=log, workers=workers)
    ds = PairedDataset.from_store(
        stored.store,
        3,
        resolution=resolution,
        train=train,
        flip=flip,
        direction=direction,
        names=[names[i] for i in stored.kept],
    )
    ds.info.source, ds.info.val_source = str(found.root.resolve()), found.val_source
    ds.info.storage_choice, ds.info.subset = stored.choice, subset
    return ds


def load_aligned(root: str | Path, split: str = "train", **options: Any) -> PairedDataset:
    """Read ``root/<split>/*`` where every image is A | B side by side (the pix2pix release format).

    Without ``root/val`` the validation pairs are held out of ``root/train`` (:mod:`.splits`).
    Images with an odd width cannot be cut into equal halves and are skipped, as are unreadable
    files; one summary line goes to ``log``. ``options``: those of :func:`load_pairs`.
    """
    return load_pairs(root, split, layout="aligned", **options)


def load_pair_folders(root: str | Path, split: str = "train", **options: Any) -> PairedDataset:
    """Read pairs from two folders ``a/`` and ``b/`` (or ``A/``, ``B/``) whose files match by stem.

    With split folders the pairs come from ``root/<split>/a`` and ``root/<split>/b``. Without a val
    split (``root/train/{a,b}`` but no ``root/val/{a,b}``, or only ``root/a``, ``root/b``) the
    validation pairs are held out of the training pairs by the rule of :mod:`.splits` (every 10th
    by sorted stem; with fewer than 10 pairs, validation uses the training pairs), said once in
    ``log``. Without split folders ``test`` means the validation pairs (a note goes to ``log``).

    A file without a partner, or partners of different sizes, raise :class:`DataError` naming the
    files; unreadable files skip their pair (counted in one summary line). ``options``: those of
    :func:`load_pairs`.
    """
    return load_pairs(root, split, layout="pair-folders", **options)


def _missing_split(root: Path, split: str) -> DataError:
    if not root.is_dir():
        return DataError(f"dataset folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    listing = ", ".join(found) or "none"
    return DataError(f"no folder {root / split} for split {split!r} (subfolders of {root}: {listing})")


def _held_out(items: list, split: str, where: Path, log: Callable[[str], None]) -> tuple[list, Holdout]:
    """The items of ``split`` ("train" or "val") when validation is held out of ``items`` (sorted).

    Building the ``val`` split says where validation comes from (once per run: the loop builds it once).
    """
    plan = holdout(len(items), what="pairs")
    if split == "val":
        log(describe(plan.source, str(where)))
    return [items[i] for i in (plan.train if split == "train" else plan.val)], plan


def _find_aligned(root: Path, split: str, log: Callable[[str], None]) -> _Found:
    """A|B files of ``root/<split>``; without ``root/val``, train and val share ``root/train``."""
    held_out = split in ("train", "val") and (root / "train").is_dir() and not (root / "val").is_dir()
    folder = root / ("train" if held_out else split)
    if not folder.is_dir():
        raise _missing_split(root, split)
    files = list_images(folder, recursive=False)
    if not files:
        if pair_dirs(folder) is not None:
            raise DataError(
                f"{folder} holds a/ and b/ subfolders, not A|B side-by-side images: "
                "that is the pair-folders layout (data.name=pair-folders)"
            )
        why = f" (no {root / 'val'} either, so validation pairs would be held out of it)" if split == "val" else ""
        raise DataError(f"no image files in {folder} (expected A|B side-by-side pairs, e.g. 512x256 jpgs){why}")
    if held_out:
        files, plan = _held_out(files, split, root, log)
        val_source = plan.source
    else:
        val_source = VAL_SPLIT if (root / "val").is_dir() else ""
    return _Found("aligned-pairs", folder, files, [f.name for f in files], val_source, _decode_aligned)


def _find_pair_folders(root: Path, split: str, log: Callable[[str], None]) -> _Found:
    """Partner files of ``a/`` and ``b/``, per split or once for the whole set."""
    held_out = split in ("train", "val") and pair_dirs(root / "train") is not None
    held_out = held_out and pair_dirs(root / "val") is None
    dirs = pair_dirs(root / ("train" if held_out else split))
    whole_set = dirs is None
    if dirs is None:
        dirs = pair_dirs(root)
        if dirs is None:
            if (root / split).is_dir():
                raise DataError(f"{root / split} has no a/ and b/ subfolders (expected {root / split}/a and /b)")
            if not root.is_dir() or any((root / s).is_dir() for s in ("train", "val", "test")):
                raise _missing_split(root, split)
            raise DataError(
                f"{root} has no a/ and b/ subfolders (expected {root}/a and {root}/b, or {root}/<split>/a and /b)"
            )
    a_dir, b_dir = dirs
    a_files, b_files = _by_stem(a_dir), _by_stem(b_dir)
    _check_partners(a_files, b_files, a_dir, b_dir)
    stems = sorted(a_files)
    if not stems:
        raise DataError(f"no image files in {a_dir} and {b_dir}")
    val_source = VAL_SPLIT if pair_dirs(root / "val") is not None else ""
    if whole_set or held_out:
        if split == "test":  # only reached without split folders: a test/ split is used as it is
            log(f"{root}: no split folders, so 'test' uses the validation pairs")
        elif split not in ("train", "val"):
            raise DataError(f"unknown split {split!r} for {root} (no split folders: use train, val or test)")
        quiet = split == "test"  # the note above says it
        stems, plan = _held_out(stems, "val" if quiet else split, a_dir.parent, (lambda m: None) if quiet else log)
        val_source = plan.source
    items = [(a_files[st], b_files[st]) for st in stems]
    return _Found("pair-folders", a_dir.parent, items, [a_files[st].name for st in stems], val_source, _decode_pair)


def _decode_aligned(path: Path, size: int) -> Tensor:
    """One A|B side-by-side file -> A and B stacked along the channels (6, size, size)."""
    img = to_rgb(open_image(path))
    w, h = img.size
    if w % 2:
        raise ImageReadError(path, "odd width", f"{image_size(w, h)} cannot be cut into equal A|B halves")
    return torch.cat(
        [resize_square(img.crop((0, 0, w // 2, h)), size), resize_square(img.crop((w // 2, 0, w, h)), size)]
    )


def _decode_pair(paths: tuple[Path, Path], size: int) -> Tensor:
    """Partner files A and B -> stacked along the channels (6, size, size)."""
    pa, pb = paths
    ia, ib = to_rgb(open_image(pa)), to_rgb(open_image(pb))
    if ia.size != ib.size:
        raise DataError(f"partners differ in size: {pa} is {image_size(*ia.size)} but {pb} is {image_size(*ib.size)}")
    return torch.cat([resize_square(ia, size), resize_square(ib, size)])


def pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    """The A and B folders of a pair-folders layout (``a/`` + ``b/``, or ``A/`` + ``B/``), else None."""
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
