"""gankit.color against skimage.color (the reference the colorization literature uses)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from gankit.color import lab_to_rgb, model_to_rgb, rgb_to_lab, rgb_to_model

skcolor = pytest.importorskip("skimage.color")

TOL = 1e-3


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().permute(1, 2, 0).double().numpy()


def _gamut_grid(steps: int = 33) -> torch.Tensor:
    """(3, steps, steps*steps): every corner, edge and face of the RGB cube, plus its inside."""
    v = torch.linspace(0, 1, steps)
    r, g, b = torch.meshgrid(v, v, v, indexing="ij")
    return torch.stack([r, g, b]).reshape(3, steps, steps * steps)


@pytest.mark.parametrize(
    "rgb, lab",
    [
        ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
        ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
        ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
    ],
)
def test_hand_known_values(rgb: tuple[float, ...], lab: tuple[float, ...]) -> None:
    out = rgb_to_lab(torch.tensor(rgb).view(3, 1, 1)).flatten()
    # Published values carry two decimals; skimage's white has |a|, |b| < 0.01 (matrix rounding).
    assert torch.allclose(out, torch.tensor(lab), atol=0.01), out


def test_rgb_to_lab_matches_skimage_over_the_gamut() -> None:
    rgb = _gamut_grid()
    out = rgb_to_lab(rgb)
    ref = skcolor.rgb2lab(_to_hwc(rgb))
    err = np.abs(_to_hwc(out) - ref).max(axis=(0, 1))
    assert (err < TOL).all(), err


def test_rgb_to_lab_matches_skimage_on_random_colors() -> None:
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(4, 3, 16, 16, generator=g)
    out = rgb_to_lab(rgb)
    for i in range(4):
        assert np.abs(_to_hwc(out[i]) - skcolor.rgb2lab(_to_hwc(rgb[i]))).max() < TOL


def test_lab_to_rgb_matches_skimage_including_out_of_gamut() -> None:
    g = torch.Generator().manual_seed(1)
    lab = torch.cat([torch.rand(1, 32, 32, generator=g) * 100, (torch.rand(2, 32, 32, generator=g) * 2 - 1) * 128])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about negative Z, which both clip
        ref = skcolor.lab2rgb(_to_hwc(lab))
    out = lab_to_rgb(lab)
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(_to_hwc(out) - ref).max() < TOL


def test_round_trip() -> None:
    rgb = _gamut_grid(17)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < TOL


def test_batched_equals_per_image_and_3d_input() -> None:
    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(3, 3, 8, 8, generator=g)
    batched = rgb_to_lab(rgb)
    assert batched.shape == (3, 3, 8, 8)
    for i in range(3):
        single = rgb_to_lab(rgb[i])
        assert single.shape == (3, 8, 8)
        assert torch.allclose(batched[i], single, atol=1e-5)
        assert torch.allclose(lab_to_rgb(batched)[i], lab_to_rgb(single), atol=1e-6)


def test_model_scaling_and_inverse() -> None:
    rgb = _gamut_grid(17)[None]
    L, ab = rgb_to_model(rgb)
    assert L.shape == (1, 1, 17, 289) and ab.shape == (1, 2, 17, 289)
    # The whole sRGB gamut must fit in a tanh output.
    assert L.min() >= -1 and L.max() <= 1 + 1e-6 and ab.abs().max() <= 1
    lab = rgb_to_lab(rgb)
    assert torch.allclose(L, lab[:, :1] / 50 - 1) and torch.allclose(ab, lab[:, 1:] / 110)
    assert (model_to_rgb(L, ab) - rgb).abs().max() < TOL


def test_float64_input_stays_float64_and_precise() -> None:
    rgb = _gamut_grid(9).double()
    out = rgb_to_lab(rgb)
    assert out.dtype == torch.float64
    assert np.abs(_to_hwc(out) - skcolor.rgb2lab(_to_hwc(rgb))).max() < 1e-9


def test_gradients_are_finite_at_the_branch_points() -> None:
    # Black, white and primaries sit on the clamps inside the pow branches.
    rgb = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.04045], [0.0, 1.0, 0.0, 0.0, 0.04045], [0.0, 1.0, 0.0, 1.0, 0.04045]])
    rgb = rgb.view(1, 3, 1, 5).requires_grad_(True)
    lab_to_rgb(rgb_to_lab(rgb)).sum().backward()
    assert rgb.grad is not None and torch.isfinite(rgb.grad).all()
    L = torch.zeros(1, 1, 2, 2, requires_grad=True)
    ab = torch.zeros(1, 2, 2, 2, requires_grad=True)
    model_to_rgb(L, ab).sum().backward()
    assert torch.isfinite(L.grad).all() and L.grad.abs().sum() > 0


def test_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="float"):
        rgb_to_lab(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_lab(torch.zeros(1, 4, 2, 2))
