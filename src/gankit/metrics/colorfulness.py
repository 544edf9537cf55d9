"""Colourfulness (Hasler & Süsstrunk, "Measuring colourfulness in natural images", SPIE 2003).

On 0..255 sRGB, with the opponent channels ``rg = R - G`` and ``yb = (R + G) / 2 - B``:
``M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 * sqrt(mu_rg^2 + mu_yb^2)`` per image (population std over
the pixels). A gray image scores 0; the paper's scale calls ~33 "moderately" and ~59 "quite"
colourful. Colorization GANs are compared by the colourfulness of their outputs against that of
the ground truth: a model that plays safe with brownish averages scores well below the photos.
"""

from __future__ import annotations

import torch
from torch import Tensor


def colorfulness(rgb: Tensor) -> Tensor:
    """Per-image colourfulness (N,) of RGB images (N, 3, H, W) in [0, 1]."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got {tuple(rgb.shape)}")
    r, g, b = (rgb.to(torch.float64) * 255).flatten(2).unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1).square() + yb.mean(1).square()).sqrt()
    return std + 0.3 * mean
