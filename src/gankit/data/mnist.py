"""MNIST and Fashion-MNIST from their IDX files (LeCun et al. 1998; Xiao, Rasul & Vollgraf 2017).

The files are looked for, in order, in: the given path, ``$GANKIT_DATA/<name>``, ``$GANKIT_DATA``,
the user cache ``~/.cache/gankit/<name>``, ``/usr/share/datasets/fashion-mnist`` (the Debian
package ``dataset-fashion-mnist``), and only then downloaded with torchvision into the cache.
Each location may hold the four files plainly, gzipped, or in torchvision's ``<Name>/raw`` layout.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gankit.data.errors import DataError

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(i) for i in range(10)]

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_DIRS = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
    "mnist": [Path("/usr/share/datasets/mnist")],
}
TORCHVISION_DIRS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped), checking the magic number and the body length."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX body has {len(data) - header} bytes, header shape {shape} needs {expected} "
            "(truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / cand).is_file():
            return folder / cand
    return None


def _candidates(name: str, path: str | Path | None) -> list[Path]:
    dirs: list[Path] = []
    if path:
        dirs.append(Path(path))
    env = os.environ.get("GANKIT_DATA")
    if env:
        dirs += [Path(env) / name, Path(env)]
    dirs.append(cache_dir() / name)
    dirs += SYSTEM_DIRS.get(name, [])
    # torchvision's layout below any of them
    return [d for base in dirs for d in (base, base / TORCHVISION_DIRS[name] / "raw", base / "raw")]


def cache_dir() -> Path:
    """Where gankit keeps downloaded and prepared datasets (``$XDG_CACHE_HOME/gankit``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gankit"


def locate(name: str, path: str | Path | None = None, *, split: str = "train") -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split``, or None when none of the usual places has them."""
    img_stem, lbl_stem = SPLIT_FILES[split]
    for d in _candidates(name, path):
        img, lbl = _find_file(d, img_stem), _find_file(d, lbl_stem)
        if img and lbl:
            return img, lbl
    return None


def download(name: str) -> Path:
    """Download ``name`` with torchvision into the user cache (needs internet)."""
    from torchvision import datasets

    root = cache_dir() / name
    cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
    for train in (True, False):
        cls(str(root), train=train, download=True)
    return root


def missing_message(name: str, path: str | Path | None) -> str:
    looked = "\n  ".join(str(p) for p in _candidates(name, path)[::3])
    hint = ""
    if name == "fashion-mnist":
        hint = "  or install the Debian package:  sudo apt-get install dataset-fashion-mnist\n"
    return (
        f"{name} not found and could not be downloaded. Looked in:\n  {looked}\n"
        f"Put train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and "
        f"t10k-labels-idx1-ubyte(.gz) in one of them (or pass --data FOLDER / set GANKIT_DATA),\n{hint}"
    )


def load_mnist_like(
    name: str, path: str | Path | None = None, *, split: str = "train", allow_download: bool = True
) -> tuple[Tensor, Tensor]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of MNIST or Fashion-MNIST."""
    if name not in TORCHVISION_DIRS:
        raise DataError(f"unknown IDX dataset '{name}' (expected mnist or fashion-mnist)")
    if path is not None and not Path(path).exists():
        raise DataError(f"--data {path}: no such file or folder")
    files = locate(name, path, split=split)
    if files is None and allow_download and path is None:
        try:
            download(name)
        except Exception:  # no network, proxy, checksum: the message below says what to do
            pass
        files = locate(name, path, split=split)
    if files is None:
        raise DataError(missing_message(name, path))
    images, labels = (read_idx(f) for f in files)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{files[0]}: expected images (N, H, W) and N labels, got {images.shape} and {labels.shape}")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
