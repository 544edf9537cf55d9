"""Data for the baselines: per-sample ``Dataset`` classes as the seed/reference code reads its data,
and synthetic stand-ins for the real data sets (written to disk once, so gankit reads them too).

The per-sample pipelines follow the published code paths they stand for:

* :class:`SeedMNIST`: torchvision's ``FashionMNIST`` (uint8 array in memory, one PIL image per item,
  ``ToTensor`` + ``Normalize``);
* :class:`SeedImageFolder`: ``ImageFolder`` + ``Resize(64)``, ``CenterCrop(64)`` of the PyTorch DCGAN example;
* :class:`SeedAligned`: the pix2pix ``AlignedDataset`` (A|B jpg, split, resize 286 bicubic, shared
  random crop 256 and flip, ``ToTensor`` + ``Normalize``);
* :class:`SeedColorization`: the pix2pix ``ColorizationDataset`` (PIL resize, ``skimage.color.rgb2lab``
  per image, L/50 - 1 and ab/110).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import common
from common import CACHE_DIR, use_bench_cache

SYNTH_DIR = CACHE_DIR / "synthetic"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")


# ---------------------------------------------------------------------------------------------
# MNIST-like IDX files
# ---------------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fashion_mnist_root(data_root: Path, synthetic: bool) -> Path:
    """Folder with the four IDX .gz files: the real Fashion-MNIST or a random 60k/10k stand-in."""
    if not synthetic:
        return data_root / "fashion-mnist"
    root = SYNTH_DIR / "fashion-mnist"
    if not (root / "t10k-labels-idx1-ubyte.gz").is_file():
        root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for split, n in (("train", 60_000), ("t10k", 10_000)):
            _write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            _write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))
    return root


class SeedMNIST(Dataset):
    """As ``torchvision.datasets.FashionMNIST``: a PIL image per item, then the transform."""

    def __init__(self, root: Path, transform: transforms.Compose) -> None:
        self.images = torch.from_numpy(read_idx(root / "train-images-idx3-ubyte.gz").copy())
        self.labels = torch.from_numpy(read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i].numpy())
        return self.transform(img), int(self.labels[i])


def mnist_transform(resolution: int = 28) -> transforms.Compose:
    steps = [transforms.Resize(resolution)] if resolution != 28 else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


class InMemoryLoader:
    """Shuffled batches sliced from one pre-normalized tensor (no per-sample work)."""

    def __init__(self, ds: SeedMNIST, batch_size: int) -> None:
        self.images = ds.images.float().div(127.5).sub(1.0).unsqueeze(1)
        self.labels = ds.labels
        self.batch_size = batch_size

    def __iter__(self):
        perm = torch.randperm(len(self.images))
        for i in range(0, len(perm) - self.batch_size + 1, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.images[idx], self.labels[idx]


def mnist_seed_loader(name: str, root: Path, batch_size: int) -> Any:
    """The baseline's batches for contestant ``name``: "seed in-memory" or "seed nw=K" (a DataLoader)."""
    ds = SeedMNIST(root, mnist_transform())
    if name == "seed in-memory":
        return InMemoryLoader(ds, batch_size)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers_of(name), drop_last=True)


def mnist_build(
    preset: str, seed_step: Callable[[torch.device], Callable[[Any], None]], name: str, args: argparse.Namespace
) -> common.Runner:
    """Contestant ``name`` of an MLP benchmark on Fashion-MNIST: gankit's ``preset`` or the seed step."""
    root = fashion_mnist_root(args.data_root, args.synthetic)
    if name.startswith("gankit"):
        return common.gankit_runner(preset, name, args, {"data.path": str(root)})
    loader = mnist_seed_loader(name, root, args.batch_size)
    return common.BaselineRunner(loader, seed_step(torch.device(args.device)), args.batch_size)


def mnist_main(
    doc: str, preset: str, title: str, seed_step: Callable[[torch.device], Callable[[Any], None]], *, steps: int
) -> None:
    """Command line, contestants and report of an MLP benchmark (bench_gan, bench_cgan)."""
    p = common.base_parser(
        doc.splitlines()[0],
        batch_size=100,
        num_workers="0",
        rounds=5,
        steps=steps,
        warmup=10,
        options="default,compile",
    )
    args = p.parse_args()
    names = common.contestant_names(args, compute_baseline=True)
    results = common.run_contestants(functools.partial(mnist_build, preset, seed_step), names, args)
    data = "synthetic" if args.synthetic else "fashion-mnist"
    common.report(f"{preset} ({title}, {data}, batch {args.batch_size}, {args.device})", results, args)


def workers_of(name: str) -> int:
    """DataLoader workers of a baseline contestant named "seed nw=K"."""
    return int(name.split("nw=")[1])


# ---------------------------------------------------------------------------------------------
# Image folders (DCGAN)
# ---------------------------------------------------------------------------------------------


def _random_photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth random colours (upsampled noise): decodes like a photo, unlike pure noise."""
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


def _synthetic_splits(name: str, w: int, h: int, counts: dict[str, int]) -> Path:
    """``SYNTH_DIR/name/<split>/NNNN.jpg`` random photos of w x h, written once."""
    root = SYNTH_DIR / name
    if not (root / list(counts)[-1]).is_dir():
        rng = np.random.default_rng(0)
        for split, n in counts.items():
            (root / split).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _random_photo(rng, w, h).save(root / split / f"{i:04d}.jpg", quality=95)
    return root


def repeated_folder(src: Path, n: int, name: str) -> Path:
    """A folder of ``n`` links cycling over the images of ``src`` (e.g. 2048 from the 32 CelebA files)."""
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    dst = CACHE_DIR / "repeated" / f"{name}-{n}"
    if not dst.is_dir() or len(list(dst.iterdir())) != n:
        dst.mkdir(parents=True, exist_ok=True)
        for old in dst.iterdir():
            old.unlink()
        for i in range(n):
            f = files[i % len(files)]
            (dst / f"{i:06d}{f.suffix}").symlink_to(f.resolve())
    return dst


def celeba_folder(data_root: Path, synthetic: bool, n: int = 2048) -> Path:
    """``n`` CelebA-like 178x218 jpgs: the 32 celeba-tiny files repeated, or random ones."""
    if not synthetic:
        return repeated_folder(data_root / "celeba-tiny" / "img_align_celeba", n, "celeba-tiny")
    src = SYNTH_DIR / "celeba"
    if not src.is_dir():
        src.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(32):
            _random_photo(rng, 178, 218).save(src / f"{i:06d}.jpg", quality=95)
    return repeated_folder(src, n, "celeba-synthetic")


class SeedImageFolder(Dataset):
    """As ``ImageFolder`` (PIL open + convert RGB) with the DCGAN example's transform."""

    def __init__(self, root: Path, resolution: int = 64, channels: int = 3) -> None:
        self.files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        self.transform = transforms.Compose(
            [
                transforms.Resize(resolution),
                transforms.CenterCrop(resolution),
                transforms.ToTensor(),
                transforms.Normalize((0.5,) * channels, (0.5,) * channels),
            ]
        )
        self.channels = channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with open(self.files[i], "rb") as f:
            img = Image.open(f).convert("RGB" if self.channels == 3 else "L")
        return self.transform(img), 0


# ---------------------------------------------------------------------------------------------
# Aligned pairs (pix2pix)
# ---------------------------------------------------------------------------------------------


def facades_root(data_root: Path, synthetic: bool) -> Path:
    """An aligned folder (``train/`` of A|B jpgs): gankit's build of CMP facades, or random pairs."""
    use_bench_cache()
    if not synthetic:
        from gankit.data.facades import find_facades

        return find_facades(data_root / "cmp-facades-base", log=lambda msg: None)
    return _synthetic_splits("facades", 512, 256, {"train": 400, "val": 20})


class SeedAligned(Dataset):
    """As pix2pix's ``AlignedDataset`` with ``--preprocess resize_and_crop`` (load 286, crop 256, flip)."""

    def __init__(self, root: Path, *, load_size: int = 286, crop_size: int = 256) -> None:
        self.files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        self.load_size, self.crop_size = load_size, crop_size
        self.normalize = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.files)

    def _transform(self, img: Image.Image, x: int, y: int, flip: bool) -> torch.Tensor:
        img = img.resize((self.load_size, self.load_size), Image.Resampling.BICUBIC)
        img = img.crop((x, y, x + self.crop_size, y + self.crop_size))
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return self.normalize(img)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ab = Image.open(self.files[i]).convert("RGB")
        w, h = ab.size
        a, b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        # one crop position and one flip for both halves
        x = random.randint(0, max(0, self.load_size - self.crop_size))
        y = random.randint(0, max(0, self.load_size - self.crop_size))
        flip = random.random() > 0.5
        return {"A": self._transform(a, x, y, flip), "B": self._transform(b, x, y, flip)}


# ---------------------------------------------------------------------------------------------
# Colour photos (Lab colorization)
# ---------------------------------------------------------------------------------------------


def colorization_root(data_root: Path, synthetic: bool) -> Path:
    """A folder with ``train/`` and ``val/`` colour photos: BSDS500, or random 481x321 jpgs."""
    if not synthetic:
        return data_root / "bsds500-color"
    return _synthetic_splits("colorization", 481, 321, {"train": 200, "val": 20})


class SeedColorization(Dataset):
    """As pix2pix's ``ColorizationDataset``: PIL resize (+ crop, flip), ``skimage.color.rgb2lab`` per image."""

    def __init__(self, root: Path, *, load_size: int = 256, crop_size: int = 256, flip: bool = True) -> None:
        import skimage.color  # noqa: F401  (imported once here, not in every DataLoader worker)

        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from skimage import color

        im = Image.open(self.files[i]).convert("RGB")
        im = im.resize((self.load_size, self.load_size), Image.Resampling.BICUBIC)
        if self.load_size > self.crop_size:
            x = random.randint(0, self.load_size - self.crop_size)
            y = random.randint(0, self.load_size - self.crop_size)
            im = im.crop((x, y, x + self.crop_size, y + self.crop_size))
        if self.flip and random.random() > 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        lab = color.rgb2lab(np.array(im)).astype(np.float32)
        lab_t = transforms.ToTensor()(lab)
        return {"A": lab_t[[0], ...] / 50.0 - 1.0, "B": lab_t[[1, 2], ...] / 110.0}
