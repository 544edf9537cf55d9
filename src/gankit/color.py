"""sRGB <-> CIE L*a*b* in torch: batched, on any device, differentiable.

Colorization GANs (Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017, Sec. 4.7; after Zhang et al., "Colorful Image Colorization", ECCV 2016)
predict the a*b* chroma of a photo from its L* lightness. The conversion follows
``skimage.color.rgb2lab`` / ``lab2rgb`` exactly (sRGB companding of IEC 61966-2-1, the same
RGB->XYZ matrix, D65 white point for the 2 degree observer, CIE 1976 L*a*b* with the
0.008856 / 7.787 linear segment), so numbers agree with skimage to ~1e-4 in float32.

A self-written conversion rather than kornia: kornia 0.9 uses the same constants, but it would add
two dependencies (kornia, kornia_rs) for forty lines of arithmetic.

Model scaling (:func:`rgb_to_model`): L/50 - 1 and ab/110 both lie in [-1, 1], the range of a
tanh generator. 110 bounds |a|, |b| over the sRGB gamut (a in [-86.2, 98.2], b in [-107.9, 94.5]).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_lab", "lab_to_rgb", "rgb_to_model", "model_to_rgb", "L_CENTER", "AB_SCALE"]

L_CENTER = 50.0
"""Model input is L / L_CENTER - 1."""
AB_SCALE = 110.0
"""Model target is ab / AB_SCALE."""

_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
# Inverted in float64 once, as skimage does, so the inverse matrix carries no float32 error.
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

_EPS = 0.008856  # (6/29)^3, where the cube root meets the linear segment
_KAPPA = 7.787  # slope of the linear segment (skimage's rounded value, kept to match it)
_F_EPS = 0.2068966  # 6/29: the same break point on the f(t) side


def _work_dtype(x: Tensor) -> torch.dtype:
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor, got {x.dtype}; divide uint8 images by 255 first")
    # Half precision would cost ~0.1 in L; compute in float32 at least.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_shape(x: Tensor, what: str) -> None:
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"{what} must be (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    """Apply a 3x3 colour matrix along the channel dimension (-3)."""
    m = matrix.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def _per_channel(v: Tensor, like: Tensor) -> Tensor:
    return v.to(device=like.device, dtype=like.dtype).view(3, 1, 1)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1], (N, 3, H, W) or (3, H, W) -> L*a*b* with L in [0, 100] (as skimage.color.rgb2lab).

    Returns float32 (float64 for float64 input). Values outside [0, 1] are not clamped, so the
    function stays the same smooth map skimage applies.
    """
    _check_shape(rgb, "rgb")
    x = rgb.to(_work_dtype(rgb))
    # The clamp_min inside each pow keeps the unused branch of torch.where finite, so that its
    # gradient is not NaN (NaN * 0 is still NaN in backward).
    linear = torch.where(x > 0.04045, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = _mix(_XYZ_FROM_RGB, linear) / _per_channel(_WHITE_D65, linear)
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """L*a*b* (N, 3, H, W) or (3, H, W) -> sRGB clamped to [0, 1] (as skimage.color.lab2rgb).

    Colours outside the sRGB gamut (common for generated ab) are clipped per channel, as skimage does;
    a negative Z is set to 0 first, also as skimage does.
    """
    _check_shape(lab, "lab")
    x = lab.to(_work_dtype(lab))
    L, a, b = x.unbind(-3)
    fy = (L + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0.0)], dim=-3)
    xyz = torch.where(f > _F_EPS, f**3, (f - 16.0 / 116.0) / _KAPPA) * _per_channel(_WHITE_D65, f)
    linear = _mix(_RGB_FROM_XYZ, xyz)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def rgb_to_model(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """sRGB in [0, 1] -> (L / 50 - 1 as (N, 1, H, W), ab / 110 as (N, 2, H, W)), the colorization model's scaling.

    A (3, H, W) input gives (1, H, W) and (2, H, W).
    """
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :] / L_CENTER - 1.0, lab[..., 1:, :, :] / AB_SCALE


def model_to_rgb(L: Tensor, ab: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_model`: model-scaled L (…, 1, H, W) and ab (…, 2, H, W) -> sRGB in [0, 1]."""
    if L.shape[-3] != 1 or ab.shape[-3] != 2:
        raise ValueError(f"expected L with 1 channel and ab with 2, got {tuple(L.shape)} and {tuple(ab.shape)}")
    lab = torch.cat([(L + 1.0) * L_CENTER, ab * AB_SCALE], dim=-3)
    return lab_to_rgb(lab)
