"""What ``gankit list`` shows, importable without torch (the CLI answers before torch loads).

Datasets are read from their registry (:mod:`gankit.data.registry`), which registers without torch
(a loader imports its module when called); ``DATASETS`` is looked up when asked for, so that a kind
registered after this import is listed too, and importing this module loads nothing.

The family registry (:mod:`gankit.families`) builds models and so imports torch; its names and
descriptions are repeated in :data:`FAMILIES`, and a test checks that they match it.
"""

from __future__ import annotations

from typing import Any

FAMILIES: dict[str, tuple[str, str]] = {
    "gan": ("noise", "MLP GAN (Goodfellow et al. 2014), Fashion-MNIST"),
    "cgan": ("noise", "class-conditional MLP GAN (Mirza & Osindero 2014)"),
    "dcgan": ("noise", "DCGAN (Radford et al. 2016), 64x64 faces or any folder"),
    "pix2pix": ("paired", "pix2pix (Isola et al. 2017): U-Net + PatchGAN, adversarial + L1"),
    "colorize": ("paired", "pix2pix in Lab space: L -> ab colorization"),
}
"""name -> (kind, description), as registered in gankit.families."""


def datasets() -> dict[str, str]:
    """name -> description of every registered dataset kind (what ``data.name`` takes), in registration order."""
    from gankit.data.registry import DATASETS as registered

    return {name: entry.description for name, entry in registered.items()}


def __getattr__(name: str) -> Any:
    # ``DATASETS`` is read from the registry when asked for, so a kind registered later is listed too
    if name == "DATASETS":
        return datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
