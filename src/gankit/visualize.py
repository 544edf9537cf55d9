"""Turning model tensors into viewable RGB images and grids."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def to_display(x: Tensor) -> Tensor:
    """Model-range [-1, 1] images (1 or 3 channels) -> float RGB in [0, 1]."""
    x = x.detach().float().add(1).div(2).clamp(0, 1)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def lab_to_display(L: Tensor, ab: Tensor | None) -> Tensor:
    """Scaled Lab (L/50-1, ab/110) -> RGB [0, 1]; ``ab=None`` shows the gray input."""
    from gankit.color import model_to_rgb

    if ab is None:
        ab = torch.zeros(L.shape[0], 2, *L.shape[2:], device=L.device)
    return model_to_rgb(L.float(), ab.float()).clamp(0, 1)


def save_png(image: Tensor, path: str | Path) -> None:
    """Save one uint8 (C, H, W) image (C = 1 or 3) as PNG."""
    from PIL import Image

    arr = image.detach().cpu().permute(1, 2, 0).numpy()
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path, format="png")


def save_grid(images: Tensor, path: str | Path, *, nrow: int = 8, padding: int = 2) -> None:
    """Save RGB [0, 1] images as one PNG grid (written atomically)."""
    from torchvision.utils import make_grid, save_image  # imported here: torchvision is slow to import

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp_" + path.name)
    save_image(make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=1.0), tmp, format="png")
    tmp.replace(path)


def paired_triplets(inputs: Tensor, outputs: Tensor, targets: Tensor, space: str = "rgb") -> Tensor:
    """Interleave (input | output | target) rows for a side-by-side grid with ``nrow=3``."""
    if space == "lab":
        a, b, c = lab_to_display(inputs, None), lab_to_display(inputs, outputs), lab_to_display(inputs, targets)
    else:
        a, b, c = to_display(inputs), to_display(outputs), to_display(targets)
    return torch.stack([a, b, c], dim=1).flatten(0, 1)
