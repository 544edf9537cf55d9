"""What ``gankit list`` shows, importable without torch (the CLI answers before torch loads).

The dataset table (:mod:`gankit.data`) stays the source of truth; a test checks that this catalog
matches it. Families are listed from their registry (:mod:`gankit.families` loads no torch).
"""

from __future__ import annotations

DATASETS: dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST IDX files (60k/10k, 28x28, 10 classes); Debian: dataset-fashion-mnist",
    "mnist": "MNIST IDX files (60k/10k, 28x28, 10 digits)",
    "idx": "any other folder of IDX files (train-images/-labels, t10k-...): no domain classifier",
    "folder": "any folder of images, flat or one subfolder per class (resize + center crop)",
    "celeba": "CelebA aligned faces (img_align_celeba), a folder of images",
    "aligned": "pix2pix format: A|B side by side in train/ val/ test/",
    "pair-folders": "two folders a/ and b/ with matching file names (or train/a, train/b, ...)",
    "facades": "CMP Facade base set or the pix2pix facades release (aligned, or train/a, train/b, ...)",
    "colorization": "any folder of colour photos (COCO-like); L -> ab in Lab space",
}
"""name -> description of the dataset kinds ``data.name`` takes."""


STORAGES = ("auto", "memory", "mmap", "stream")
"""The values of ``data.storage`` (:mod:`gankit.data.storage`); here so that config validation needs no torch."""
