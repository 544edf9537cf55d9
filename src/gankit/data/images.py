"""Decoding image files robustly: every failure becomes an :class:`ImageReadError` naming the file.

Conversions that have one obvious meaning are done on opening (16-bit and float -> 8-bit, CMYK and
other colour spaces -> RGB) or by :func:`to_rgb` (RGBA/LA/P composited on white). Files that cannot
be used are reported by callers through :class:`SkipReport`, which prints one summary line instead
of stopping a long run on one bad file.

The declared size is checked before any pixel is decoded, so a decompression bomb (a tiny file that
declares a gigapixel image) costs a header read, not gigabytes of memory.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor
from tqdm import tqdm

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MAX_PIXELS = 12_000 * 12_000
"""Images declaring more pixels than this are refused before decoding (decompression bombs).

It lies below PIL's own hard limit (``2 * Image.MAX_IMAGE_PIXELS``, about 179 Mpx), so this check
(which names the declared size) is the one that normally fires; PIL's still guards larger sizes."""
MIN_SIDE = 8
"""Images with a side shorter than this are refused (too small to train on)."""

_PLAIN_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
"""Modes :func:`open_image` returns as they are; :func:`to_rgb` turns each of them into RGB."""
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})

# The warning filters are process-wide, so concurrent catch_warnings() blocks (the data loaders
# decode in threads) would undo each other's filters. Image.open only parses the header (pure
# Python, under the GIL anyway), so serializing it costs nothing measurable.
_OPEN_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """An image file could not be used; ``reason`` is a short category for summaries."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted as paths sort (part by part), for a stable order."""
    return [Path(p) for p in find_images(folder, recursive=recursive)]


def find_images(folder: str | Path, *, recursive: bool = True) -> list[str]:
    """:func:`list_images` as strings: for folders of 100,000s of files, where making ``Path`` objects
    costs more than finding the files.

    Walks with :func:`os.scandir`, whose entries know their type without a ``stat`` per file
    (50,000 files: 0.4 s, where ``Path.rglob`` + ``is_file`` took 0.7 s and more).
    """
    found: list[str] = []
    stack = [os.fspath(folder)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if recursive and e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                    found.append(e.path)
            except OSError:
                continue
    found.sort(key=lambda p: p.split(os.sep))  # the order of sorted(Path, ...): part by part
    return found


def _first_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip()
    return (text.splitlines()[0][:limit] if text else "") or type(e).__name__


def _open_header(f: BinaryIO) -> Image.Image:
    with _OPEN_LOCK, warnings.catch_warnings():
        # PIL's soft limit only warns (once, on stderr); MAX_PIXELS below is the limit that counts.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(f)


def _plain_mode(img: Image.Image, path: Path) -> Image.Image:
    """16-bit / 32-bit / float -> L (scaled, not clipped); CMYK, YCbCr and the like -> RGB."""
    if img.mode in _PLAIN_MODES:
        return img
    if img.mode in _HIGH_DEPTH_MODES:
        arr = np.asarray(img).astype(np.float64)
        # I;16 is 16-bit by definition; mode I holds 16-bit data too unless every value fits in 8 bits
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if arr.size and 0.0 <= arr.min() and arr.max() <= 1.0 else 1.0  # [0, 1] floats
        return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8))
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as e:  # e.g. LAB, which PIL cannot convert without a colour profile
        raise ImageReadError(path, "unsupported colour mode", f"{img.mode}: {_first_line(e)}") from None


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` (EXIF orientation applied), with size checks before decoding.

    Returns an image in one of the modes 1, L, LA, P, PA, RGB or RGBA. Raises
    :class:`ImageReadError` (with a short ``reason``) for anything that cannot be used.
    """
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed by the with below
    except OSError as e:
        raise ImageReadError(path, "unreadable", e.strerror or _first_line(e)) from None
    with f:
        try:
            if os.fstat(f.fileno()).st_size == 0:
                raise ImageReadError(path, "empty file")
            img = _open_header(f)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageReadError(path, "too large", f"declares {w}x{h} pixels, more than {MAX_PIXELS}")
            if min(w, h) < MIN_SIDE:
                raise ImageReadError(path, "too small", f"{w}x{h}, need a side >= {MIN_SIDE}")
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            return _plain_mode(img, path)
        except ImageReadError:
            raise
        except Image.DecompressionBombError:
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise ImageReadError(path, "too large", f"declares more than {limit} pixels") from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(path, "not an image") from None
        except MemoryError:
            raise ImageReadError(path, "too large", "out of memory while decoding") from None
        except Exception as e:  # noqa: BLE001 -- PIL raises OSError, SyntaxError, EOFError, struct.error ...
            raise ImageReadError(path, "corrupt or truncated", _first_line(e)) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB from any mode; transparent pixels are composited on white."""
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def is_grayscale(img: Image.Image, tol: int = 2) -> bool:
    """True for single-channel images and for RGB images whose channels are (nearly) equal."""
    if img.mode in ("L", "1", "LA", "I", "I;16", "F"):
        return True
    rgb = img if img.mode == "RGB" else to_rgb(img)
    # reducing_gap: a box reduction first, then bicubic; half the time on photos, and the same answer
    # as plain bicubic on 1,000 test photos (400 of them grey or near-grey), BENCHMARKS.md
    small = np.asarray(rgb.resize((64, 64), reducing_gap=2.0), dtype=np.int16)
    return (
        int(np.abs(small[..., 0] - small[..., 1]).max()) <= tol
        and int(np.abs(small[..., 1] - small[..., 2]).max()) <= tol
    )


def pil_to_tensor(img: Image.Image) -> Tensor:
    """PIL image (L or RGB) -> uint8 tensor (C, H, W)."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_image(path: str | Path, channels: int = 3) -> Tensor:
    """Decode ``path`` to a uint8 tensor (channels, H, W) with ``channels`` 1 or 3."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    img = to_rgb(open_image(path))
    return pil_to_tensor(img if channels == 3 else img.convert("L"))


class SkipReport:
    """Counts skipped or converted files by reason and prints one summary line."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.reasons: Counter[str] = Counter()
        self.examples: dict[str, Path] = {}

    def add(self, err: ImageReadError) -> None:
        self.reasons[err.reason] += 1
        self.examples.setdefault(err.reason, err.path)

    def extend(self, errors: Iterable[ImageReadError]) -> None:
        for e in errors:
            self.add(e)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def summary(self) -> str:
        if not self.total:
            return ""
        parts = ", ".join(f"{n} {r} (e.g. {self.examples[r].name})" for r, n in self.reasons.most_common())
        return f"{self.what}: skipped {self.total} file(s): {parts}"


# ---------------------------------------------------------------------------------------------
# Decoding many files, resizing
# ---------------------------------------------------------------------------------------------

PROGRESS_MIN_FILES = 100
"""A progress bar is shown when decoding more files than this."""

T = TypeVar("T")
R = TypeVar("R")


def decode_many(
    items: Sequence[T],
    fn: Callable[[T], R],
    *,
    report: SkipReport,
    desc: str,
    workers: int = 0,
) -> list[tuple[int, R]]:
    """Run ``fn`` over ``items`` in a thread pool and return ``(index, result)`` for those that worked, in order.

    An :class:`ImageReadError` skips that item (counted in ``report``); any other exception stops
    the whole run, as it means the data set itself is unusable (e.g. a :class:`DataError`).
    """
    if not items:
        return []
    workers = workers or min(16, os.cpu_count() or 1)
    out: list[tuple[int, R]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures: list[Future[R]] = [pool.submit(fn, item) for item in items]
        try:
            quiet = True if len(items) <= PROGRESS_MIN_FILES else None  # None: a bar only on a terminal
            with tqdm(total=len(futures), desc=desc, unit="file", disable=quiet, leave=False) as bar:
                for i, fut in enumerate(futures):
                    try:
                        out.append((i, fut.result()))
                    except ImageReadError as e:
                        report.add(e)
                    bar.update()
        except BaseException:
            # Do not decode hundreds more files only to throw them away.
            for fut in futures:
                fut.cancel()
            raise
    return out


def resize_square(img: Image.Image, size: int) -> Tensor:
    """A PIL image squashed to ``size`` x ``size`` (aspect ratio not kept) -> uint8 (C, size, size)."""
    # Bicubic, as the pix2pix code (transforms.Resize(..., BICUBIC)); PIL antialiases when shrinking.
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return pil_to_tensor(img)


def resize_square_tensor(x: Tensor, size: int) -> Tensor:
    """uint8 (C, H, W) -> uint8 (C, size, size), bicubic with antialiasing (close to PIL's)."""
    if x.dtype != torch.uint8 or x.dim() != 3:
        raise ValueError(f"expected a uint8 (C, H, W) image, got {x.dtype} {tuple(x.shape)}")
    if x.shape[-2:] == (size, size):
        return x
    y = F.interpolate(x[None].float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return y[0].round_().clamp_(0, 255).to(torch.uint8)


def stack_square(images: Tensor | Sequence[Tensor], size: int, what: str) -> Tensor:
    """uint8 images (a (N, C, H, W) tensor or a list of (C, H, W)) -> uint8 (N, C, size, size)."""
    if isinstance(images, Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"{what} must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if images.shape[-2:] == (size, size):
            return images.contiguous()
    return torch.stack([resize_square_tensor(x, size) for x in images])
