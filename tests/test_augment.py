"""gankit.augment: DiffAugment's transforms, their pairing for image-to-image D inputs, ADA's p, and
the objectives judging through them (Zhao et al. 2020; Karras et al. 2020)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from gankit.augment import (
    AdaptiveAugment,
    DiffAugment,
    brightness,
    chroma,
    contrast,
    cutout,
    saturation,
    step_generator,
    translate,
)
from gankit.config import make_config
from gankit.data.base import DataInfo
from gankit.families import get_family
from gankit.objectives import build_objective


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------- the transforms


def test_translate_moves_content_by_the_given_amount_with_zero_fill() -> None:
    x = torch.randn(2, 3, 8, 8)
    dy, dx = torch.tensor([2, -1]), torch.tensor([-3, 0])
    out = translate(x, dy, dx)
    expected = torch.zeros_like(x)
    for i in range(2):
        for y in range(8):
            for xx in range(8):
                sy, sx = y - int(dy[i]), xx - int(dx[i])
                if 0 <= sy < 8 and 0 <= sx < 8:
                    expected[i, :, y, xx] = x[i, :, sy, sx]
    assert torch.equal(out, expected)


def test_translation_shifts_by_at_most_an_eighth_of_the_side() -> None:
    x = torch.zeros(300, 1, 32, 32)
    x[:, :, 16, 16] = 1.0  # one bright pixel: where it lands is the shift
    out, _ = DiffAugment(["translation"])(x, gen())
    where = out.flatten(1).argmax(1)
    dy, dx = where // 32 - 16, where % 32 - 16
    assert out.flatten(1).sum(1).eq(1).all()  # moved, not lost (a shift of 4 stays inside)
    assert int(dy.abs().max()) == int(dx.abs().max()) == 4  # 32 / 8, both extremes drawn
    assert set(dy.tolist()) == set(range(-4, 5))


def test_cutout_zeros_a_square_of_the_given_side_clipped_at_the_border() -> None:
    ones = torch.ones(2, 3, 8, 8)
    out = cutout(ones, torch.tensor([4, 0]), torch.tensor([4, 7]), 4)
    assert torch.equal(out[0, :, 2:6, 2:6], torch.zeros(3, 4, 4)) and int(out[0].eq(0).sum()) == 3 * 16
    assert torch.equal(out[1, :, 0:2, 5:8], torch.zeros(3, 2, 3)) and int(out[1].eq(0).sum()) == 3 * 6


def test_cutout_policy_cuts_half_the_side() -> None:
    out, _ = DiffAugment(["cutout"])(torch.ones(200, 1, 32, 32), gen())
    holes = out[:, 0].eq(0)
    rows, cols = holes.any(2).sum(1), holes.any(1).sum(1)
    assert int(rows.max()) == int(cols.max()) == 16  # the whole square, when it lies inside
    assert torch.equal(holes.sum((1, 2)), rows * cols)  # always one rectangle (a clipped square)
    assert int((holes.sum((1, 2)) == 256).sum()) > 50


def test_colour_ops_change_what_they_should() -> None:
    x = torch.randn(3, 3, 5, 5)
    f = torch.tensor([0.0, 0.5, 2.0])
    assert torch.allclose(brightness(x, f) - x, f.view(-1, 1, 1, 1).expand_as(x))
    sat = saturation(x, f)
    assert torch.allclose(sat.mean(1), x.mean(1), atol=1e-6)  # each pixel's grey level stays
    assert torch.allclose(sat[0], x[0].mean(0, keepdim=True).expand(3, 5, 5), atol=1e-6)  # factor 0: grey
    con = contrast(x, f)
    assert torch.allclose(con.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)  # the image mean stays
    assert torch.allclose(con.std((1, 2, 3)), x.std((1, 2, 3)) * f, atol=1e-5)
    gray = torch.randn(3, 1, 5, 5)
    assert torch.allclose(saturation(gray, f), gray)  # one channel: nothing to saturate
    assert torch.equal(chroma(x[:, :2], f), x[:, :2] * f.view(-1, 1, 1, 1))


def test_colour_policy_draws_brightness_in_half_a_unit() -> None:
    grey = torch.zeros(400, 3, 4, 4)  # saturation and contrast leave a constant grey image alone
    out, _ = DiffAugment(["color"])(grey, gen())
    shift = out[:, 0, 0, 0]
    assert torch.allclose(out, shift.view(-1, 1, 1, 1).expand_as(out), atol=1e-6)
    assert -0.5 <= float(shift.min()) < -0.45 and 0.45 < float(shift.max()) <= 0.5


def test_pairs_get_the_same_geometric_transforms() -> None:
    x = torch.randn(16, 3, 32, 32)
    out, cond = DiffAugment(["translation", "cutout"])(x, gen(), cond=x.clone())
    assert cond is not None and torch.equal(out, cond)
    assert not torch.equal(out, x)


def test_colour_changes_the_output_side_of_a_pair_only() -> None:
    x, inp = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    out, cond = DiffAugment(["color"])(x, gen(), cond=inp)
    assert cond is inp and not torch.equal(out, x)


def test_colorize_keeps_L_and_scales_ab() -> None:
    L, ab = torch.rand(64, 1, 8, 8) * 2 - 1, torch.rand(64, 2, 8, 8) - 0.5
    out, cond = DiffAugment(["color"], space="lab")(ab, gen(), cond=L)
    assert cond is L  # lightness is the input: colour never touches it
    factor = out / ab
    assert torch.allclose(factor, factor[:, :1, :1, :1].expand_as(factor), atol=1e-5)  # one factor per image
    assert 0 <= float(factor.min()) and float(factor.max()) <= 2 and float(factor.std()) > 0.3
    # geometric transforms move L with ab: the pair D sees is still one photo
    out, cond = DiffAugment(space="lab")(ab, gen(), cond=L)
    assert cond is not None and cond.shape == L.shape
    both_zero = cond.eq(0).squeeze(1) & out.eq(0).all(1)  # cut-out/padded pixels are zero on both sides
    assert torch.equal(cond.eq(0).squeeze(1), both_zero)


@pytest.mark.parametrize("policy", [["color"], ["translation"], ["cutout"], ["color", "translation", "cutout"]])
@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_gradients_flow_through_the_transforms(policy: list[str], space: str) -> None:
    x = torch.randn(4, 2 if space == "lab" else 3, 16, 16, requires_grad=True)
    out, _ = DiffAugment(policy, space=space)(x, gen())
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_p_zero_is_the_identity_and_p_picks_images() -> None:
    x = torch.randn(400, 1, 16, 16)
    out, cond = DiffAugment(p=0.0)(x, gen(), cond=None)
    assert out is x and cond is None
    changed = lambda p: float((DiffAugment(["translation"], p=p)(x, gen())[0] != x).flatten(1).any(1).float().mean())  # noqa: E731
    assert 0.4 < changed(0.5) < 0.6  # each image with probability p (a few draw a zero shift)
    assert changed(1.0) > 0.95
    # an image left alone is bitwise the same, even through saturation and contrast
    out, _ = DiffAugment(["color"], p=0.3)(x, gen())
    same = (out == x).flatten(1).all(1)
    assert 0.2 < float(same.float().mean()) < 0.5  # (1 - 0.3)^3 = 0.34 of the images untouched


def test_draws_depend_on_the_generator_only() -> None:
    x = torch.randn(8, 3, 16, 16)
    aug = DiffAugment()
    assert torch.equal(aug(x, step_generator(0, 5))[0], aug(x, step_generator(0, 5))[0])
    assert not torch.equal(aug(x, step_generator(0, 5))[0], aug(x, step_generator(0, 6))[0])
    a = aug(x, step_generator(0, 5, rank=0, world_size=2))[0]
    assert not torch.equal(a, aug(x, step_generator(0, 5, rank=1, world_size=2))[0])


# ------------------------------------------------------------------------------------------ ADA


def test_ada_p_rises_while_D_is_sure_of_reals_and_falls_otherwise() -> None:
    ada = AdaptiveAugment(target=0.6, kimg=1, images_per_step=50, interval=4)  # 200 images: p += 0.2
    sure, unsure = torch.tensor(1.0), torch.tensor(0.2)
    for _ in range(3):
        ada.update(sure)
    assert ada.p == 0.0  # adjusted only once an interval is complete
    ada.update(sure)
    assert ada.p == pytest.approx(0.2)
    for _ in range(4 * 10):
        ada.update(sure)
    assert ada.p == 1.0  # clamped
    for _ in range(4 * 3):
        ada.update(unsure)
    assert ada.p == pytest.approx(0.4)
    for _ in range(4 * 10):
        ada.update(unsure)
    assert ada.p == 0.0


def test_ada_adjusts_on_the_mean_over_processes() -> None:
    ada = AdaptiveAugment(target=0.6, kimg=1, images_per_step=100, interval=2)
    other_rank = lambda t: (t + torch.tensor(-1.0)) / 2  # noqa: E731  (this rank: 1, the other: -1)
    for _ in range(4):
        ada.update(torch.tensor(1.0), reduce=other_rank)
    assert ada.p == 0.0  # the mean, 0, is below the target: p stays at its floor


def test_ada_state_resumes_mid_interval() -> None:
    signs = [1.0, 0.9, 0.5, 1.0, 0.8, 0.3, 1.0]
    straight = AdaptiveAugment(target=0.6, kimg=0.5, images_per_step=20)
    for s in signs:
        straight.update(torch.tensor(s))
    first = AdaptiveAugment(target=0.6, kimg=0.5, images_per_step=20)
    for s in signs[:5]:
        first.update(torch.tensor(s))
    resumed = AdaptiveAugment(target=0.6, kimg=0.5, images_per_step=20)
    resumed.load_state_dict(first.state_dict())
    for s in signs[5:]:
        resumed.update(torch.tensor(s))
    assert resumed.state_dict() == straight.state_dict()
    assert 0 < straight.p < 1


# ----------------------------------------------------------------------------------- objectives


class RecordingCritic(nn.Module):
    """A linear critic on the image (and condition) that records what it was shown."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(n))
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        self.seen.append(x.detach())
        return (x.flatten(1) @ self.w[: x[0].numel()]).reshape(-1, 1)


@pytest.mark.parametrize("preset", ["gan", "pix2pix"])
def test_d_sees_augmented_reals_and_fakes_and_g_gets_gradient_through_them(preset: str) -> None:
    cfg = make_config(preset, overrides={"train.augment": "diffaug"})
    paired = preset == "pix2pix"
    info = DataInfo(channels=3, resolution=16, in_channels=3 if paired else 0)
    obj = build_objective(cfg, info, get_family(preset))
    D = RecordingCritic(6 * 16 * 16)
    real = torch.randn(4, 3, 16, 16)
    cond = torch.randn(4, 3, 16, 16) if paired else None
    batch = {"input": cond, "target": real} if paired else {"image": real}
    fake = torch.randn(4, 3, 16, 16, requires_grad=True)
    obj.d_loss(D, batch, fake, cond, generator=gen())
    seen_real = D.seen[0][:, 3:] if paired else D.seen[0]
    assert not torch.equal(seen_real, real)
    if paired:  # the input half was moved too (the pairing itself: test_pairs_get_the_same_geometric_transforms)
        assert not torch.equal(D.seen[0][:, :3], cond)
    loss, _ = obj.g_loss(D, batch, fake, cond, gen(1))
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_ada_objective_reports_the_sign_of_d_on_reals_about_the_midpoint() -> None:
    info = DataInfo(channels=1, resolution=4)
    for gan, midpoint in (("vanilla", 0.0), ("lsgan", 0.5)):  # lsgan's targets are 1 (real) and 0 (fake)
        cfg = make_config("gan", overrides={"train.augment": "ada", "loss.gan": gan})
        obj = build_objective(cfg, info, get_family("gan"))
        assert obj.augment is not None and obj.augment.p == 0.0  # ada starts unaugmented

        def D(x: Tensor, cond: Tensor | None, midpoint: float = midpoint) -> Tensor:
            return midpoint + 0.1 * torch.tensor([[1.0], [1.0], [1.0], [-1.0]])  # three reals called real

        real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
        _, stats = obj.d_loss(D, {"image": real}, fake, None)  # type: ignore[arg-type]
        assert float(stats["d_real_sign"]) == 0.5
    _, stats = build_objective(make_config("gan"), info, get_family("gan")).d_loss(D, {"image": real}, fake, None)  # type: ignore[arg-type]
    assert "d_real_sign" not in stats
