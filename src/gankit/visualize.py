"""Turning model tensors into viewable RGB images and captioned grids."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

GRID_MIN_WIDTH = 512
"""Grids narrower than this are upscaled (nearest neighbour, whole factors) so 28x28 samples stay legible."""


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

    from gankit.locks import atomic_path

    arr = image.detach().cpu().permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:  # a run stopped mid-write leaves no torn file
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(tmp, format="png")


def image_format(path: str | Path) -> str:
    """PIL format name from a file name: .jpg/.jpeg -> JPEG, .png (or anything else) -> PNG."""
    return "JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG"


def save_grid(
    images: Tensor,
    path: str | Path,
    *,
    nrow: int = 8,
    padding: int = 2,
    caption: str = "",
    column_labels: list[str] | None = None,
    min_width: int = GRID_MIN_WIDTH,
) -> Image.Image:
    """Save RGB [0, 1] images as one grid image (PNG, or JPEG for .jpg names), written atomically.

    Small grids are upscaled by a whole factor to at least ``min_width`` pixels; ``caption`` is
    written above the grid and ``column_labels`` (class names, "input | output | target") above
    its columns.
    """
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid  # imported here: torchvision is slow to import

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    factor = max(1, -(-min_width // grid.shape[-1]))  # ceil division
    arr = grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr)
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    if caption or column_labels:
        font = ImageFont.load_default(size=14)
        line = 20
        top = line * (bool(caption) + bool(column_labels)) + 4
        canvas = Image.new("RGB", (img.width, img.height + top), "white")
        canvas.paste(img, (0, top))
        draw = ImageDraw.Draw(canvas)
        if caption:
            draw.text((4, 3), caption, fill="black", font=font)
        if column_labels:
            cell = (images.shape[-1] + padding) * factor
            y = 3 + line * bool(caption)
            for i, label in enumerate(column_labels[:nrow]):
                x0 = padding * factor + i * cell
                text = _fit(draw, label, font, cell - 4)
                w = draw.textlength(text, font=font)
                draw.text((x0 + max(0, (cell - padding * factor - w) / 2), y), text, fill="black", font=font)
        img = canvas
    fmt = image_format(path)
    tmp = path.with_name(".tmp_" + path.name)
    img.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    tmp.replace(path)
    return img


def _fit(draw, text: str, font, width: float) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def paired_triplets(inputs: Tensor, outputs: Tensor, targets: Tensor, space: str = "rgb") -> Tensor:
    """Interleave (input | output | target) rows for a side-by-side grid with ``nrow=3``."""
    if space == "lab":
        a, b, c = lab_to_display(inputs, None), lab_to_display(inputs, outputs), lab_to_display(inputs, targets)
    else:
        a, b, c = to_display(inputs), to_display(outputs), to_display(targets)
    return torch.stack([a, b, c], dim=1).flatten(0, 1)
