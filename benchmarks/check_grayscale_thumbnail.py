"""Does ``is_grayscale``'s faster thumbnail (``reducing_gap=2.0``) decide as plain bicubic did?

Every photo of the shared BSDS500 and CelebA samples and of bench_storage's COCO-sized synthetic set,
plus, for the first 100, three near-grey variants (G channel off by up to 1, 2, 3 levels) and a pure grey
copy: the decision and the time per thumbnail, for plain bicubic (gankit <= 0.2) and reducing_gap 2 and 3.

    python benchmarks/check_grayscale_thumbnail.py
"""

from __future__ import annotations

import glob
import time

import numpy as np
from gankit.data.images import open_image, to_rgb
from PIL import Image

SOURCES = (
    "/work/shared/data/bsds500-color/**/*.jpg",
    "/tmp/gankit-bench-storage/decode-640x480/**/*.jpg",
    "/work/shared/data/celeba-tiny/*.jpg",
)


def grey(rgb: Image.Image, **kw: float) -> bool:
    small = np.asarray(rgb.resize((64, 64), **kw), dtype=np.int16)
    return (
        int(np.abs(small[..., 0] - small[..., 1]).max()) <= 2 and int(np.abs(small[..., 1] - small[..., 2]).max()) <= 2
    )


def main() -> None:
    files = [f for pattern in SOURCES for f in sorted(glob.glob(pattern, recursive=True))]
    photos = [to_rgb(open_image(f)) for f in files]
    rng = np.random.default_rng(0)
    for im in photos[:100]:
        g = np.asarray(im.convert("L")).astype(np.int16)
        for noise in (1, 2, 3):
            off = np.clip(g + rng.integers(-noise, noise + 1, g.shape), 0, 255)
            photos.append(Image.fromarray(np.stack([g, off, g], -1).astype(np.uint8)))
        photos.append(im.convert("L").convert("RGB"))
    base = None
    for kw in ({}, {"reducing_gap": 2.0}, {"reducing_gap": 3.0}):
        t = time.perf_counter()
        decided = [grey(im, **kw) for im in photos]
        ms = (time.perf_counter() - t) / len(photos) * 1000
        base = decided if base is None else base
        differ = sum(a != b for a, b in zip(decided, base, strict=True))
        print(
            f"{kw or 'plain bicubic'}: {ms:.2f} ms a thumbnail, {sum(decided)} grey, {differ} of {len(photos)} differ"
        )


if __name__ == "__main__":
    main()
