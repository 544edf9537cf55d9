"""Decoding image files robustly: every failure becomes an :class:`ImageReadError` naming the file.

Conversions that have one obvious meaning are done silently (RGBA/LA/P -> RGB, 16-bit -> 8-bit,
CMYK -> RGB). Files that cannot be used are reported by callers through :class:`SkipReport`, which
prints one summary line instead of stopping a long run on one bad file.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MAX_PIXELS = 16_000 * 16_000
"""Images declaring more pixels than this are refused before decoding (decompression bombs)."""
MIN_SIDE = 8
"""Images with a side shorter than this are refused (too small to train on)."""


class ImageReadError(ValueError):
    """An image file could not be used; ``reason`` is a short category for summaries."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, sorted for a stable order)."""
    root = Path(folder)
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _to_8bit(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    return img


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` (EXIF orientation applied), with size checks before decoding."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(path, "empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageReadError(path, "too large", f"declares {w}x{h} pixels")
            if min(w, h) < MIN_SIDE:
                raise ImageReadError(path, "too small", f"{w}x{h}")
            img.load()
        img = ImageOps.exif_transpose(img)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(path, "too large", str(e)) from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(path, "not an image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(path, "corrupt or truncated", str(e)) from None
    return _to_8bit(img)


def is_grayscale(img: Image.Image, tol: int = 2) -> bool:
    """True for single-channel images and for RGB images whose channels are (nearly) equal."""
    if img.mode in ("L", "1", "LA"):
        return True
    if img.mode != "RGB":
        img = img.convert("RGB")
    small = np.asarray(img.resize((64, 64)), dtype=np.int16)
    return int(np.abs(small[..., 0] - small[..., 1]).max()) <= tol and int(
        np.abs(small[..., 1] - small[..., 2]).max()
    ) <= tol


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB from any mode; transparent pixels are composited on white."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def pil_to_tensor(img: Image.Image) -> Tensor:
    """PIL image (L or RGB) -> uint8 tensor (C, H, W)."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_image(path: str | Path, channels: int = 3) -> Tensor:
    """Decode ``path`` to a uint8 tensor (channels, H, W) with ``channels`` 1 or 3."""
    img = open_image(path)
    img = to_rgb(img) if channels == 3 else to_rgb(img).convert("L")
    return pil_to_tensor(img)


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
