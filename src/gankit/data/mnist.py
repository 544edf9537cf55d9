"""MNIST and Fashion-MNIST from their IDX files (LeCun et al. 1998; Xiao, Rasul & Vollgraf 2017).

The files are looked for, in order, in: the given path, ``$GANKIT_DATA/<name>``, ``$GANKIT_DATA``,
the user cache ``~/.cache/gankit/<name>``, ``/usr/share/datasets/fashion-mnist`` (the Debian
package ``dataset-fashion-mnist``), and only then downloaded with torchvision into the cache.
Each location may hold the four files plainly, gzipped, or in torchvision's ``<Name>/raw`` layout.
A given path is the only place looked in: files elsewhere never stand in for it. A damaged
(e.g. truncated) file is a one-line error naming it and the fix, except in the download's own
folder, where it is downloaded again.

Which data set a folder of IDX files holds is decided by content (:func:`identify_idx`), never by
the folder's name: first the md5 of the decompressed ``train-images`` file against the published
MNIST and Fashion-MNIST values (hashing the decompressed bytes, because torchvision's md5s of the
``.gz`` files change whenever a file is re-compressed, as Debian's ``dataset-fashion-mnist`` is);
failing that, for a subset of at least 1,000 28x28 images with labels 0-9, the mean pixel value
(MNIST's is 33.3/255, Fashion-MNIST's 72.9/255; random 1,000-image subsets stay within
32.1-34.3 and 69.8-76.2). Anything else is a generic ``idx`` data set, recorded as such.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gankit.data.errors import DataError
from gankit.locks import lock_file
from gankit.paths import cache_dir

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
    except (OSError, EOFError, zlib.error) as e:
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


IMAGES_MD5: dict[str, tuple[str, str]] = {
    # md5 of the decompressed IDX file -> (data set, split); the values published with the data
    # (e.g. in the Fashion-MNIST README, and for MNIST in many loaders' checksum tables).
    "6bbc9ace898e44ae57da46a324031adb": ("mnist", "train"),
    "2646ac647ad5339dbf082846283269ea": ("mnist", "test"),
    "f4a8712d7a061bf5bd6d2ca38dc4d50a": ("fashion-mnist", "train"),
    "8181f5470baa50b63fa0f6fddb340f0a": ("fashion-mnist", "test"),
}
MEAN_PIXEL = {"mnist": (31.0, 36.0), "fashion-mnist": (67.0, 79.0)}
"""Train-image mean pixel (0-255) ranges accepted by the statistics fallback of :func:`identify_idx`."""
MIN_IMAGES_FOR_STATISTICS = 1000
IDX_CLASSES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "idx": "generic IDX"}


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / cand).is_file():
            return folder / cand
    return None


def _bases(name: str, path: str | Path | None) -> list[Path]:
    """The folders searched for ``name``: only ``path`` when one is given."""
    if path:
        return [Path(path).expanduser()]
    dirs: list[Path] = []
    env = os.environ.get("GANKIT_DATA")
    if env:
        dirs += [Path(env) / name, Path(env)]
    dirs.append(cache_dir() / name)
    dirs += SYSTEM_DIRS.get(name, [])
    return dirs


def _candidates(name: str, path: str | Path | None) -> list[Path]:
    subs = [TORCHVISION_DIRS[name]] if name in TORCHVISION_DIRS else list(TORCHVISION_DIRS.values())
    # torchvision's layout below any of them
    return [d for base in _bases(name, path) for d in (base, *(base / s / "raw" for s in subs), base / "raw")]


def locate(name: str, path: str | Path | None = None, *, split: str = "train") -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split``, or None when none of the usual places has them."""
    img_stem, lbl_stem = SPLIT_FILES[split]
    for d in _candidates(name, path):
        img, lbl = _find_file(d, img_stem), _find_file(d, lbl_stem)
        if img and lbl:
            return img, lbl
    return None


def download_folder(name: str) -> Path:
    """Where :func:`download` puts the files of ``name``: torchvision's ``<Name>/raw`` in the user cache."""
    return cache_dir() / name / TORCHVISION_DIRS[name] / "raw"


def _damage_fix(file: Path) -> str:
    """What to do about a damaged IDX file: fetch it again if gankit downloaded it, else replace it."""
    for name in TORCHVISION_DIRS:
        if file.parent == download_folder(name):
            return f"delete it, and gankit downloads {name} again"
    return "replace it with a whole copy, or delete it"


def _whole(folder: Path) -> bool:
    """True if ``folder`` holds all four files of the data set, each one readable to its end."""
    try:
        for split in SPLIT_FILES:
            files = locate("idx", folder, split=split)
            if files is None:
                return False
            for f in files:
                read_idx(f)
    except DataError:
        return False
    return True


def _fetch(name: str, root: Path) -> None:
    """Download ``name`` with torchvision into ``root`` (``root/<Name>/raw``)."""
    from torchvision import datasets

    cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
    for train in (True, False):
        cls(str(root), train=train, download=True)


def download(name: str, *, log: Callable[[str], None] = print) -> Path:
    """Download ``name`` with torchvision into the user cache (needs internet); returns ``cache/<name>``.

    The files are downloaded into a temporary folder beside and then renamed into place, so an
    interrupted download leaves nothing that looks finished; a damaged earlier download is replaced.
    A second process downloading ``name`` meanwhile waits, then uses the first one's files.
    """
    root = cache_dir() / name
    final = download_folder(name)
    lock = cache_dir() / f".{name}.lock"
    with lock_file(
        lock,
        on_wait=lambda holder: log(f"waiting for another process downloading {name} into {root} ({holder}) ..."),
        note=f"downloading {name}",
        remove=True,
    ):
        if _whole(final):  # downloaded by the process this one waited for
            return root
        for old in cache_dir().glob(f".{name}.download-*"):  # left by killed downloads (none runs: locked)
            shutil.rmtree(old, ignore_errors=True)
        tmp = cache_dir() / f".{name}.download-{os.getpid()}"
        try:
            _fetch(name, tmp)
            fetched = tmp / TORCHVISION_DIRS[name] / "raw"
            if not _whole(fetched):
                raise DataError(f"the {name} download into {fetched} is incomplete")
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # damaged: moved aside first, so that the folder is replaced in one rename
                os.replace(final, tmp / "damaged")
            os.replace(fetched, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def missing_message(name: str, path: str | Path | None) -> str:
    looked = "\n  ".join(str(p) for p in _bases(name, path))
    hint = ""
    if name == "fashion-mnist":
        hint = "  or install the Debian package:  sudo apt-get install dataset-fashion-mnist\n"
    return (
        f"{name} not found and could not be downloaded. Looked in:\n  {looked}\n"
        f"Put train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and "
        f"t10k-labels-idx1-ubyte(.gz) in one of them (or pass --data FOLDER / set GANKIT_DATA),\n{hint}"
    )


@dataclass(frozen=True)
class IdxIdentity:
    """What :func:`identify_idx` found: ``kind`` (mnist, fashion-mnist or idx) and how it knows."""

    kind: str
    how: str


@lru_cache(maxsize=16)
def _identify_file(path: str, size: int, mtime_ns: int) -> IdxIdentity:
    # size and mtime are part of the key so that a replaced file is looked at again
    p = Path(path)
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        digest = hashlib.md5(usedforsecurity=False)
        with opener(p, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{p}: cannot read IDX file ({e})") from None
    known = IMAGES_MD5.get(digest.hexdigest())
    if known is not None:
        return IdxIdentity(known[0], f"{p.name} is the published {IDX_CLASSES[known[0]]} {known[1]} file (by md5)")
    images = read_idx(p)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) < MIN_IMAGES_FOR_STATISTICS:
        shape = "x".join(map(str, images.shape))
        return IdxIdentity("idx", f"{p.name} is not a standard MNIST or Fashion-MNIST file (md5 differs; {shape})")
    mean = float(images.mean(dtype=np.float64))
    for kind, (lo, hi) in MEAN_PIXEL.items():
        if lo <= mean <= hi:
            return IdxIdentity(
                kind,
                f"{p.name} is not the standard file (md5 differs), but its mean pixel {mean:.1f}/255 over "
                f"{len(images)} images is {IDX_CLASSES[kind]}'s",
            )
    return IdxIdentity("idx", f"{p.name}: md5 and mean pixel {mean:.1f}/255 match neither MNIST nor Fashion-MNIST")


def find_idx_files(folder: str | Path, split: str = "train") -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` in ``folder`` itself (or its torchvision ``raw`` layout)."""
    return locate("idx", folder, split=split)


def identify_idx(folder: str | Path) -> IdxIdentity:
    """Which data set the IDX files in ``folder`` hold, by content (see the module docstring)."""
    files = find_idx_files(folder, "train") or find_idx_files(folder, "test")
    if files is None:
        raise DataError(f"{folder}: no train-images-idx3-ubyte(.gz) / train-labels-idx1-ubyte(.gz) files")
    img = files[0]
    st = img.stat()
    try:
        ident = _identify_file(str(img), st.st_size, st.st_mtime_ns)
        labels = read_idx(files[1]) if ident.kind != "idx" else None
    except DataError as e:
        raise DataError(f"{e}; {_damage_fix(img)}") from None
    if labels is not None:
        if labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
            return IdxIdentity("idx", f"{files[1].name} holds labels outside 0-9")
    return ident


@dataclass
class IdxData:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of one split, and where they were read from."""

    images: Tensor
    labels: Tensor
    files: tuple[Path, Path]
    downloaded: bool = False


def load_idx(
    name: str, path: str | Path | None = None, *, split: str = "train", allow_download: bool = True
) -> IdxData:
    """One split of MNIST, Fashion-MNIST or (``name="idx"``, ``path`` required) any IDX image folder."""
    if name not in (*TORCHVISION_DIRS, "idx"):
        raise DataError(f"unknown IDX dataset '{name}' (expected mnist, fashion-mnist or idx)")
    if path is not None and not Path(path).exists():
        raise DataError(f"--data {path}: no such file or folder")
    if path is not None and Path(path).is_file():
        raise DataError(f"--data {path} is a file, not a folder; pass the folder that holds it ({Path(path).parent})")
    if name == "idx" and path is None:
        raise DataError("dataset 'idx' needs a path: --data FOLDER of IDX files")
    files = locate(name, path, split=split)
    downloaded = False
    if files is None and allow_download and path is None:
        try:
            download(name)
            downloaded = True
        except Exception:  # no network, proxy, checksum: the message below says what to do
            pass
        files = locate(name, path, split=split)
    if files is None:
        if name == "idx":
            img_stem, lbl_stem = SPLIT_FILES[split]
            raise DataError(f"{path}: no {img_stem}(.gz) and {lbl_stem}(.gz) for the {split} split")
        raise DataError(missing_message(name, path))
    try:
        images, labels = (read_idx(f) for f in files)
    except DataError as e:
        own = name in TORCHVISION_DIRS and files[0].parent == download_folder(name)
        if not (own and allow_download and path is None):
            raise DataError(f"{e}; {_damage_fix(files[0])}") from None
        print(f"{e}; downloading {name} again")
        try:
            download(name)
        except Exception as err:  # no network: say what to do instead
            why = ([line for line in str(err).splitlines() if line.strip()] or [type(err).__name__])[-1][:200]
            raise DataError(
                f"{e}; could not download {name} again ({why}); put whole files in {files[0].parent}"
            ) from None
        downloaded = True
        images, labels = (read_idx(f) for f in files)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{files[0]}: expected images (N, H, W) and N labels, got {images.shape} and {labels.shape}")
    if images.dtype != np.uint8:
        raise DataError(f"{files[0]}: expected uint8 pixels, got {images.dtype}")
    return IdxData(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        files,
        downloaded and cache_dir() / name in (files[0].parent, *files[0].parents),
    )


def load_mnist_like(
    name: str, path: str | Path | None = None, *, split: str = "train", allow_download: bool = True
) -> tuple[Tensor, Tensor]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of MNIST or Fashion-MNIST."""
    if name not in TORCHVISION_DIRS:
        raise DataError(f"unknown IDX dataset '{name}' (expected mnist or fashion-mnist)")
    d = load_idx(name, path, split=split, allow_download=allow_download)
    return d.images, d.labels
