"""What every gankit dataset provides to the training loop.

A dataset keeps its images as decoded uint8 items in a store (:mod:`.storage`: RAM, a memory-mapped
cache, or streamed from the files; this module sits above that one, never the other way round) and
hands out whole batches that are already on the training device and normalized to [-1, 1].
Batches are chosen by :class:`EpochSampler`, whose order depends only on (seed, epoch): the loop can
therefore resume in the middle of an epoch without saving any data-loader state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Protocol

import torch
from torch import Tensor

from ..formatting import image_size
from .storage import MemoryStore, Store


@dataclass
class DataInfo:
    """Shape facts a dataset tells the models."""

    channels: int
    """Channels of the generated image (image-to-image: of the target)."""
    resolution: int
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    in_channels: int = 0
    """Image-to-image only: channels of the input image."""
    space: str = "rgb"
    """rgb, or lab for colorization (input L, output ab)."""
    # What was actually loaded (recorded in the run folder and in every checkpoint). The defaults
    # keep checkpoints written before these fields existed loadable with ``DataInfo(**d)``.
    dataset: str = ""
    """The kind of data loaded: mnist, fashion-mnist, idx (other IDX files), folder, celeba, aligned,
    pair-folders, facades or colorization. "" in checkpoints older than this field."""
    source: str = ""
    """Where it came from: a resolved absolute path, or e.g. "torchvision download into ~/.cache/gankit/mnist"."""
    given: str = ""
    """What ``data.path`` named, resolved, when it is not ``source``: the CMP folder a facades set was
    built from into the cache, or a folder holding ``facades/``. "" when the data were read where given."""
    num_images: int = 0
    """Items in this split (pairs for paired data), after ``data.max_images``."""
    subset: str = ""
    """The ``data.max_images`` subset, when it left items out: "1,000 of 60,000, seeded (seed 0)"
    (:func:`gankit.data.splits.seeded_subset`); "" when every item was used, and in older checkpoints."""
    storage: str = ""
    """Where the decoded images lived: memory, mmap or stream (:mod:`.storage`); "" in older checkpoints."""
    storage_choice: str = ""
    """How ``storage`` was chosen, as the load logged it ("data.storage=auto -> mmap: 50,000 images decode
    to ..."); "" for data that are always held in memory (IDX) and in older checkpoints."""
    val_source: str = ""
    """Paired data: where validation comes from ("val/ split", "held out every 10th pair of train
    (40 of 400, deterministic by name)", "train (too few photos to hold out: 6 < 10)"); see
    :mod:`gankit.data.splits`. "" for noise-to-image data."""

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        """Rebuild from ``dataclasses.asdict`` output, ignoring keys a newer gankit may have added."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


Batch = dict[str, Tensor]
"""Noise-to-image batches hold ``image`` (and ``label``); image-to-image ones ``input`` and ``target``."""


class TrainSet(Protocol):
    """What a dataset offers the loop: its uint8 items in a store, and what they mean as a batch.

    ``store`` (:mod:`.storage`) holds the decoded uint8 items, whatever the backend; ``from_pixels``
    is the meaning: the batch of the items ``index`` from their uint8 ``pixels`` (crop, flip,
    normalization, Lab), on ``device``; ``batch`` does both for a batch the store can hand out at
    once, and may read a derived cache kept over the store instead (colorization's Lab in memory).
    :func:`gankit.data.feed.batches` calls ``batch``, except for a ``stream`` store, whose items it
    decodes ahead in worker processes and hands to ``from_pixels``.
    """

    info: DataInfo
    store: Store

    def __len__(self) -> int: ...

    def batch(self, index: Tensor, *, device: torch.device, generator: torch.Generator | None) -> Batch:
        """Return the items at ``index`` as a batch on ``device``; ``generator`` drives augmentation."""
        ...

    def from_pixels(
        self, pixels: Tensor, index: Tensor, *, device: torch.device, generator: torch.Generator | None
    ) -> Batch:
        """The batch of the items ``index`` whose uint8 pixels (as ``store`` keeps them) are ``pixels``."""
        ...


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped)."""
    return images.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


class ImageTensorDataset:
    """Images (N, C, H, W uint8) and optional labels, in any storage backend (:mod:`.storage`).

    ``images`` is a uint8 tensor (held in memory) or a store from :func:`.storage.open_store`.
    Resizing to the model resolution happens per batch on the device (antialiased bilinear), so a
    28x28 dataset can feed a 64x64 DCGAN without storing a 64x64 copy.
    """

    def __init__(
        self,
        images: Tensor | Store,
        labels: Tensor | None = None,
        *,
        resolution: int = 0,
        channels: int = 0,
        class_names: list[str] | None = None,
    ) -> None:
        if isinstance(images, Tensor):
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
            images = MemoryStore(images)
        self.store = images
        n = len(images)
        if labels is not None and len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} images")
        self.labels = labels.long() if labels is not None else None
        in_channels, _, side = images.item_shape
        self.out_channels = channels or in_channels
        if self.out_channels not in (1, 3) or in_channels not in (1, 3):
            raise ValueError(f"only 1- or 3-channel images are supported, got {in_channels} -> {self.out_channels}")
        self.resolution = resolution or side
        names = class_names or []
        num_classes = int(labels.max()) + 1 if labels is not None and len(labels) else 0
        self.info = DataInfo(
            channels=self.out_channels,
            resolution=self.resolution,
            num_classes=max(num_classes, len(names)) if labels is not None else 0,
            class_names=names,
        )

    @property
    def images(self) -> Tensor:
        """All images, uint8 (N, C, H, W) (memory and mmap storage)."""
        return self.store.pixels

    def __len__(self) -> int:
        return len(self.store)

    def subset(self, n: int) -> ImageTensorDataset:
        """The first ``n`` items (for quick runs); a mapped store stays mapped."""
        return self._derived(self.store.head(n), self.labels[:n] if self.labels is not None else None)

    def select(self, indices: list[int]) -> ImageTensorDataset:
        """The items at ``indices`` (held in memory), keeping this dataset's classes and facts."""
        at = torch.tensor(indices, dtype=torch.long)
        return self._derived(self.store.pixels[at], self.labels[at] if self.labels is not None else None)

    def _derived(self, store: Tensor | Store, labels: Tensor | None) -> ImageTensorDataset:
        """A dataset of some of these items: same resolution, channels and facts; the classes are those
        of the whole set, even when the items miss the last one."""
        ds = ImageTensorDataset(
            store, labels, resolution=self.resolution, channels=self.out_channels, class_names=self.info.class_names
        )
        ds.info = replace(self.info, num_images=len(ds) if self.info.num_images else 0)
        return ds

    def batch(self, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None) -> Batch:
        return self.from_pixels(self.store.gather(index, device), index, device=device)

    def from_pixels(
        self, pixels: Tensor, index: Tensor, *, device: torch.device, generator: torch.Generator | None = None
    ) -> Batch:
        """The batch of the items ``index`` whose uint8 pixels are ``pixels`` (see :mod:`.feed`)."""
        x = to_unit_range(pixels.to(device, non_blocking=True))
        x = adapt_images(x, self.out_channels, self.resolution)
        out: Batch = {"image": x}
        if self.labels is not None:
            out["label"] = self.labels[index].to(device)
        return out


def adapt_images(x: Tensor, channels: int, resolution: int) -> Tensor:
    """Convert a float batch to ``channels`` (1 <-> 3) and a square ``resolution``."""
    if x.shape[1] != channels:
        if channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        else:
            x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = torch.nn.functional.interpolate(
            x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
        )
    return x.contiguous()


class EpochSampler:
    """Deterministic batches: the order of epoch ``e`` is a permutation seeded by ``(seed, e)``.

    With ``world_size > 1`` each rank takes a disjoint, equally sized shard of every epoch.
    Incomplete final batches are dropped (BatchNorm and exact resume both prefer equal batches).
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = n // (batch_size * world_size)
        if self.steps_per_epoch == 0:
            most = max(1, n // world_size)
            raise ValueError(
                f"dataset of {n} items is smaller than one global batch "
                f"({batch_size} x {world_size} processes); lower train.batch_size (--batch-size {most} or less)"
            )
        self._epoch = -1
        self._perm: Tensor | None = None

    def indices(self, step: int) -> Tensor:
        """Item indices of global step ``step`` for this rank."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g)
            self._epoch = epoch
        assert self._perm is not None
        start = (i * self.world_size + self.rank) * self.batch_size
        return self._perm[start : start + self.batch_size]

    def augment_generator(self, step: int) -> torch.Generator:
        """A generator for this step's augmentation, so random crops/flips survive a resume."""
        return torch.Generator().manual_seed((self.seed * 7_919 + step) * self.world_size + self.rank)


def crop_flip(x: Tensor, size: int, generator: torch.Generator | None, *, flip: bool) -> Tensor:
    """Crop (N, C, S, S) images to ``size`` x ``size``, and flip them horizontally at random.

    With a ``generator``, each image gets its own random crop offset and (if ``flip``) a coin-flip
    mirror; without one, the crop is centred and nothing is flipped. All channels of an image share
    one crop and one flip: concatenate images along C to augment them jointly. The random numbers
    are drawn on the CPU generator, so the result does not depend on the device.
    """
    n, _, h, w = x.shape
    if h < size or w < size:
        raise ValueError(f"cannot crop {image_size(w, h)} images to {size}x{size}")
    if generator is None:
        top, left = (h - size) // 2, (w - size) // 2
        return x[..., top : top + size, left : left + size]
    top = torch.randint(0, h - size + 1, (n,), generator=generator)
    left = torch.randint(0, w - size + 1, (n,), generator=generator)
    mirror = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    if (h, w) == (size, size):  # nothing to crop: copy only the mirrored images
        if not bool(mirror.any()):
            return x
        chosen = mirror.nonzero().flatten().to(x.device)
        out = x.clone()
        out[chosen] = x[chosen].flip(-1)
        return out
    ar = torch.arange(size)
    rows = top[:, None] + ar  # (n, size)
    cols = left[:, None] + ar
    cols = torch.where(mirror[:, None], cols.flip(1), cols)
    rows, cols = rows.to(x.device), cols.to(x.device)
    # One gather for the whole batch: per-image crops without a Python loop.
    batch_idx = torch.arange(n, device=x.device)[:, None, None, None]
    chan_idx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]
