"""Any folder of images (flat, or one subfolder per class) as an in-memory dataset.

Images are decoded once, resized so the shorter side equals the resolution and center-cropped
(as the PyTorch DCGAN example does), and kept as uint8. The decoded tensor is cached on disk
(keyed by the file list, sizes and resolution), so the next run on the same folder starts at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from gankit.data.base import ImageTensorDataset
from gankit.data.errors import DataError
from gankit.data.images import ImageReadError, SkipReport, list_images, open_image, pil_to_tensor, to_rgb
from gankit.data.mnist import cache_dir


def _resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _decode(path: Path, size: int, channels: int) -> Tensor:
    img = to_rgb(open_image(path))
    if channels == 1:
        img = img.convert("L")
    return pil_to_tensor(_resize_center_crop(img, size))


def _classes(root: Path, files: list[Path]) -> tuple[list[str], list[int]] | None:
    """Class names and per-file labels when every image lies in a first-level subfolder."""
    parents = [f.relative_to(root).parts for f in files]
    if not parents or any(len(p) < 2 for p in parents):
        return None
    names = sorted({p[0] for p in parents})
    if len(names) < 2:
        return None
    index = {n: i for i, n in enumerate(names)}
    return names, [index[p[0]] for p in parents]


def load_image_folder(
    root: str | Path,
    *,
    resolution: int,
    channels: int = 3,
    max_images: int = 0,
    use_cache: bool = True,
    log: Callable[[str], None] = print,
) -> ImageTensorDataset:
    """Decode every image under ``root`` to ``channels`` x ``resolution`` x ``resolution`` uint8."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    files = list_images(root)
    if max_images:
        files = files[:max_images]
    if not files:
        raise DataError(f"{root}: no image files found (looked for .jpg, .png, .bmp, .webp, .tif)")
    channels = channels or 3
    classes = _classes(root, files)

    key = hashlib.sha1(
        f"{root.resolve()}|{resolution}|{channels}|".encode()
        + "".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files).encode()
    ).hexdigest()[:16]
    cache_file = cache_dir() / "folders" / f"{root.name}-{resolution}px-{channels}c-{key}.pt"
    if use_cache and cache_file.is_file():
        try:
            blob = torch.load(cache_file, weights_only=True)
            if blob.get("skipped"):
                log(blob["skipped"])
            return ImageTensorDataset(blob["images"], blob.get("labels"), class_names=blob.get("class_names") or None)
        except Exception:  # a stale or damaged cache is rebuilt below
            pass

    report = SkipReport(str(root))
    images: list[Tensor] = []
    kept: list[int] = []

    def work(i: int) -> tuple[int, Tensor | ImageReadError]:
        try:
            return i, _decode(files[i], resolution, channels)
        except ImageReadError as e:
            return i, e

    workers = min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        results = pool.map(work, range(len(files)))
        quiet = True if len(files) < 500 else None  # None: a bar only on a terminal
        for i, res in tqdm(results, total=len(files), desc=f"decoding {root.name}", disable=quiet, unit="img"):
            if isinstance(res, ImageReadError):
                report.add(res)
            else:
                images.append(res)
                kept.append(i)
    if report.total:
        log(report.summary())
    if not images:
        raise DataError(f"{root}: none of the {len(files)} image files could be used")
    stacked = torch.stack(images)
    labels = torch.tensor([classes[1][i] for i in kept]) if classes else None
    names = classes[0] if classes else None
    if use_cache:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            torch.save({"images": stacked, "labels": labels, "class_names": names, "skipped": report.summary()}, tmp)
            os.replace(tmp, cache_file)
        except OSError:
            pass  # caching is an optimization only
    return ImageTensorDataset(stacked, labels, class_names=names)


def find_celeba(path: str | Path | None) -> Path:
    """The folder of aligned CelebA images: ``path``, ``$GANKIT_DATA/celeba``, or the cache."""
    cands = [Path(path)] if path else []
    if os.environ.get("GANKIT_DATA"):
        cands.append(Path(os.environ["GANKIT_DATA"]) / "celeba")
    cands.append(cache_dir() / "celeba")
    for c in cands:
        for d in (c, c / "img_align_celeba", c / "celeba" / "img_align_celeba"):
            if d.is_dir() and any(d.iterdir()):
                return d
    if not path:
        try:  # the real download, for machines with internet (torchvision fetches from Google Drive)
            from torchvision import datasets

            datasets.CelebA(str(cache_dir() / "celeba"), split="all", download=True)
            return cache_dir() / "celeba" / "celeba" / "img_align_celeba"
        except Exception:
            pass
    raise DataError(
        "CelebA not found. Put the aligned images (img_align_celeba/*.jpg) in "
        f"{cache_dir() / 'celeba'} or $GANKIT_DATA/celeba, or pass --data FOLDER (any folder of images works)."
    )
