"""Data for the baselines: the Dataset classes the seed/reference code reads its data with, and
synthetic stand-ins for the real data sets (written to disk once, so gankit reads them too).

Each baseline pipeline is the published one, built from the same torchvision classes:

* Fashion-MNIST (course notes' GAN/cGAN; ``dcgan-fmnist``): ``torchvision.datasets.FashionMNIST``
  itself (one PIL image per item, ``ToTensor`` + ``Normalize((0.5,), (0.5,))``), reading an
  uncompressed copy of the IDX files in torchvision's ``FashionMNIST/raw`` layout (:func:`fashion_mnist`);
* folders of photos (``pytorch/examples/dcgan``, ``--dataset folder``): ``torchvision.datasets.ImageFolder``
  with ``Resize(64)``, ``CenterCrop(64)``, ``ToTensor``, ``Normalize`` (:func:`dcgan_image_folder`);
* aligned pairs (``junyanz/pytorch-CycleGAN-and-pix2pix``, ``data/aligned_dataset.py`` +
  ``data/base_dataset.py``, ``--preprocess resize_and_crop``): :class:`SeedAligned`;
* colour photos (same repository, ``data/colorization_dataset.py``): :class:`SeedColorization`.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import os
import random
import shutil
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


def _torchvision_layout(gz_root: Path) -> Path:
    """A root holding ``FashionMNIST/raw/<name>-ubyte``: the four IDX files of ``gz_root`` uncompressed
    (torchvision reads the raw files; it only decompresses what it downloaded itself). Written once."""
    key = f"{gz_root.name}-{hashlib.sha1(str(gz_root.resolve()).encode()).hexdigest()[:8]}"
    root = CACHE_DIR / "torchvision" / key
    raw = root / "FashionMNIST" / "raw"
    names = [f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k") for k, d in (("images", 3), ("labels", 1))]
    if not all((raw / n).is_file() for n in names):
        raw.mkdir(parents=True, exist_ok=True)
        for n in names:
            with gzip.open(gz_root / f"{n}.gz", "rb") as f:
                data = f.read()
            tmp = raw / f"{n}.{os.getpid()}.tmp"  # contestants start in parallel
            tmp.write_bytes(data)
            tmp.replace(raw / n)
    return root


def fashion_mnist(gz_root: Path, transform: transforms.Compose) -> Dataset:
    """``torchvision.datasets.FashionMNIST`` (train split) over the IDX files of ``gz_root``."""
    from torchvision import datasets

    return datasets.FashionMNIST(str(_torchvision_layout(gz_root)), train=True, download=False, transform=transform)


def mnist_transform(resolution: int = 28) -> transforms.Compose:
    """The notes' transform (``ToTensor`` + ``Normalize((0.5,), (0.5,))``); with ``Resize`` first for the
    DCGAN example's ``--dataset mnist`` branch."""
    steps = [transforms.Resize(resolution)] if resolution != 28 else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


class InMemoryLoader:
    """Shuffled batches sliced from one pre-normalized tensor (no per-sample work)."""

    def __init__(self, ds: Any, batch_size: int) -> None:
        self.images = ds.data.float().div(127.5).sub(1.0).unsqueeze(1)
        self.labels = ds.targets
        self.batch_size = batch_size

    def __iter__(self):
        perm = torch.randperm(len(self.images))
        for i in range(0, len(perm) - self.batch_size + 1, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.images[idx], self.labels[idx]


def mnist_seed_loader(name: str, root: Path, batch_size: int) -> Any:
    """The baseline's batches for contestant ``name``: "seed in-memory" or "seed nw=K" (the notes'
    ``DataLoader(dataset, batch_size, shuffle=True)`` over torchvision's ``FashionMNIST``)."""
    ds = fashion_mnist(root, mnist_transform())
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
        # built aside and renamed into place: the contestants start in parallel and may all get here
        tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i in range(n):
            f = files[i % len(files)]
            (tmp / f"{i:06d}{f.suffix}").symlink_to(f.resolve())
        if dst.is_dir() and len(list(dst.iterdir())) != n:
            shutil.rmtree(dst, ignore_errors=True)
        try:
            tmp.rename(dst)
        except OSError:  # another contestant's copy is already in place
            shutil.rmtree(tmp, ignore_errors=True)
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


def dcgan_image_folder(flat: Path, resolution: int = 64) -> Dataset:
    """``torchvision.datasets.ImageFolder`` with the DCGAN example's transform, over a flat folder of
    images (ImageFolder wants class subfolders: a one-class root whose only class links to ``flat``)."""
    from torchvision import datasets

    root = flat.parent / f"{flat.name}.imagefolder"
    if not (root / "images").exists():
        root.mkdir(parents=True, exist_ok=True)
        try:
            (root / "images").symlink_to(flat.resolve(), target_is_directory=True)
        except FileExistsError:  # made by a contestant starting at the same time
            pass
    transform = transforms.Compose(
        [
            transforms.Resize(resolution),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )
    return datasets.ImageFolder(root=str(root), transform=transform)


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


def _crop_at(img: Image.Image, pos: tuple[int, int], size: int) -> Image.Image:
    x, y = pos
    if img.width > size or img.height > size:
        return img.crop((x, y, x + size, y + size))
    return img


class SeedAligned(Dataset):
    """As pix2pix's ``AlignedDataset`` with its defaults (``--preprocess resize_and_crop``, load 286,
    crop 256, flip): split A|B, draw one crop position and flip (``get_params``), then per half the
    ``get_transform`` pipeline: ``Resize([286, 286], BICUBIC)``, crop, flip, ``ToTensor``, ``Normalize``."""

    def __init__(self, root: Path, *, load_size: int = 286, crop_size: int = 256) -> None:
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        self.load_size, self.crop_size = load_size, crop_size

    def __len__(self) -> int:
        return len(self.files)

    def _transform(self, pos: tuple[int, int], flip: bool) -> transforms.Compose:
        steps: list[Any] = [
            transforms.Resize([self.load_size, self.load_size], transforms.InterpolationMode.BICUBIC),
            transforms.Lambda(lambda img: _crop_at(img, pos, self.crop_size)),
        ]
        if flip:
            steps.append(transforms.Lambda(lambda img: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        steps += [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
        return transforms.Compose(steps)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ab = Image.open(self.files[i]).convert("RGB")
        w, h = ab.size
        a, b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        # get_params: one crop position and one flip for both halves
        x = random.randint(0, max(0, self.load_size - self.crop_size))
        y = random.randint(0, max(0, self.load_size - self.crop_size))
        flip = random.random() > 0.5
        t = self._transform((x, y), flip)
        return {"A": t(a), "B": t(b), "A_paths": str(self.files[i]), "B_paths": str(self.files[i])}


# ---------------------------------------------------------------------------------------------
# Colour photos (Lab colorization)
# ---------------------------------------------------------------------------------------------


def colorization_root(data_root: Path, synthetic: bool) -> Path:
    """A folder with ``train/`` and ``val/`` colour photos: BSDS500, or random 481x321 jpgs."""
    if not synthetic:
        return data_root / "bsds500-color"
    return _synthetic_splits("colorization", 481, 321, {"train": 200, "val": 20})


class SeedColorization(Dataset):
    """As pix2pix's ``ColorizationDataset`` with its defaults: ``get_transform(convert=False)``
    (``Resize([286, 286], BICUBIC)``, ``RandomCrop(256)``, ``RandomHorizontalFlip``), then
    ``skimage.color.rgb2lab`` per image, ``ToTensor``, L/50 - 1 and ab/110."""

    def __init__(self, root: Path, *, load_size: int = 286, crop_size: int = 256, flip: bool = True) -> None:
        import skimage.color  # noqa: F401  (imported once here, not in every DataLoader worker)

        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        steps: list[Any] = [
            transforms.Resize([load_size, load_size], transforms.InterpolationMode.BICUBIC),
            transforms.RandomCrop(crop_size),
        ]
        if flip:
            steps.append(transforms.RandomHorizontalFlip())
        self.transform = transforms.Compose(steps)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from skimage import color

        path = self.files[i]
        im = self.transform(Image.open(path).convert("RGB"))
        lab = color.rgb2lab(np.array(im)).astype(np.float32)
        lab_t = transforms.ToTensor()(lab)
        return {"A": lab_t[[0], ...] / 50.0 - 1.0, "B": lab_t[[1, 2], ...] / 110.0, "A_paths": str(path)}
