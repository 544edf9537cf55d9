"""gankit.objectives: the losses each task kind computes, checked against hand-written formulas.

The networks are stubs whose outputs are known, so every value below is computed by hand from the
course notes' definitions (BCE on logits, pix2pix's adversarial + 100 L1, D conditioned on the input).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from gankit.config import make_config
from gankit.data.base import DataInfo
from gankit.families import get_family
from gankit.objectives import ImageToImage, NoiseToImage, build_objective


def bce_with_logits(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


class ConstantCritic(nn.Module):
    """Returns ``real_logit`` for inputs whose mean is positive, else ``fake_logit``; records its inputs."""

    def __init__(self, real_logit: float, fake_logit: float) -> None:
        super().__init__()
        self.real_logit, self.fake_logit = real_logit, fake_logit
        self.seen: list[tuple[Tensor, ...]] = []

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        self.seen.append((x, cond) if cond is not None else (x,))
        positive = x.flatten(1).mean(1) > 0
        return torch.where(positive, self.real_logit, self.fake_logit).reshape(-1, 1)


def test_noise_to_image_d_and_g_losses_are_the_notes_bce() -> None:
    cfg = make_config("gan")
    obj = build_objective(cfg, DataInfo(channels=1, resolution=28), get_family("gan"))
    assert isinstance(obj, NoiseToImage) and obj.num_classes == 0
    D = ConstantCritic(real_logit=2.0, fake_logit=-1.0)
    real, fake = torch.ones(4, 1, 28, 28), -torch.ones(4, 1, 28, 28)
    d_loss, stats = obj.d_loss(D, {"image": real}, fake, None)
    expected_d = (bce_with_logits(2.0, 1) + bce_with_logits(-1.0, 0)) * cfg.loss.d_scale
    assert float(d_loss) == pytest.approx(expected_d, rel=1e-6)
    assert float(stats["d_real"]) == 2.0 and float(stats["d_fake"]) == -1.0
    g_loss, g_stats = obj.g_loss(D, {"image": real}, fake, None)
    assert float(g_loss) == pytest.approx(bce_with_logits(-1.0, 1), rel=1e-6)  # non-saturating: -log D(G(z))
    assert set(g_stats) == {"g_loss"}


def test_label_smoothing_sets_d_target_for_reals_and_leaves_g_alone() -> None:
    cfg = make_config("gan", overrides={"loss.label_smoothing": 0.1})
    obj = build_objective(cfg, DataInfo(channels=1, resolution=28), get_family("gan"))
    D = ConstantCritic(real_logit=2.0, fake_logit=-1.0)
    real, fake = torch.ones(4, 1, 28, 28), -torch.ones(4, 1, 28, 28)
    d_loss, _ = obj.d_loss(D, {"image": real}, fake, None)
    assert float(d_loss) == pytest.approx(bce_with_logits(2.0, 0.9) + bce_with_logits(-1.0, 0), rel=1e-6)
    g_loss, _ = obj.g_loss(D, {"image": real}, fake, None)
    assert float(g_loss) == pytest.approx(bce_with_logits(-1.0, 1), rel=1e-6)


def test_cgan_fakes_get_random_labels_and_d_sees_them() -> None:
    cfg = make_config("cgan")
    obj = build_objective(cfg, DataInfo(channels=1, resolution=28, num_classes=10), get_family("cgan"))
    assert isinstance(obj, NoiseToImage) and obj.num_classes == 10

    class EchoG(nn.Module):
        def forward(self, z: Tensor, labels: Tensor | None) -> Tensor:
            assert z.shape == (64, cfg.model.z_dim) and labels is not None
            return labels.float().reshape(-1, 1, 1, 1).expand(-1, 1, 28, 28)

    real_labels = torch.zeros(64, dtype=torch.long)
    torch.manual_seed(0)
    fake, fake_labels = obj.generate(EchoG(), {"image": torch.ones(64, 1, 28, 28), "label": real_labels})
    assert fake_labels is not None and len(set(fake_labels.tolist())) > 5  # drawn, not the reals' labels
    D = ConstantCritic(1.0, -1.0)
    obj.d_loss(D, {"image": torch.ones(64, 1, 28, 28), "label": real_labels}, fake, fake_labels)
    (_, real_cond), (_, fake_cond) = D.seen
    assert torch.equal(real_cond, real_labels) and torch.equal(fake_cond, fake_labels)


def test_pix2pix_g_loss_is_adversarial_plus_100_l1_and_d_is_conditioned_on_the_input() -> None:
    cfg = make_config("pix2pix")
    info = DataInfo(channels=3, resolution=8, in_channels=3)
    obj = build_objective(cfg, info, get_family("pix2pix"))
    assert isinstance(obj, ImageToImage) and obj.l1_weight == 100 and cfg.loss.d_scale == 0.5
    inp = torch.full((2, 3, 8, 8), 0.25)
    target = torch.full((2, 3, 8, 8), 0.5)
    fake = torch.full((2, 3, 8, 8), -0.5)
    D = ConstantCritic(real_logit=3.0, fake_logit=-2.0)
    batch = {"input": inp, "target": target}
    d_loss, _ = obj.d_loss(D, batch, fake, inp)
    assert float(d_loss) == pytest.approx(0.5 * (bce_with_logits(3.0, 1) + bce_with_logits(-2.0, 0)), rel=1e-6)
    # D sees input and image side by side (6 channels), the input first
    for (x,) in D.seen:
        assert x.shape == (2, 6, 8, 8) and torch.equal(x[:, :3], inp)
    g_loss, stats = obj.g_loss(D, batch, fake, inp)
    adv, l1 = bce_with_logits(-2.0, 1), 1.0  # |-0.5 - 0.5|
    assert float(stats["g_adv"]) == pytest.approx(adv, rel=1e-6) and float(stats["g_l1"]) == pytest.approx(l1)
    assert float(g_loss) == pytest.approx(adv + 100 * l1, rel=1e-6)
    pre, pre_stats = obj.pretrain_loss(batch, fake)
    assert float(pre) == pytest.approx(l1) and set(pre_stats) == {"g_l1"}


def test_d_loss_does_not_backpropagate_into_the_generator() -> None:
    cfg = make_config("gan")
    obj = build_objective(cfg, DataInfo(channels=1, resolution=4), get_family("gan"))
    G = nn.Linear(2, 16)
    fake = G(torch.randn(3, 2)).reshape(3, 1, 4, 4)
    D = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    d_loss, _ = obj.d_loss(lambda x, c: D(x), {"image": torch.randn(3, 1, 4, 4)}, fake, None)  # type: ignore[arg-type]
    d_loss.backward()
    assert G.weight.grad is None and D[1].weight.grad is not None


class LinearCritic(nn.Module):
    """D(x) = w.x; for image-to-image D(cat([input, x])) = v.input + w.x. Its gradient in the image x is
    w everywhere, so E[||grad_x D||^2] = ||w||^2."""

    def __init__(self, n: int, in_channels: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(n, generator=g))
        self.v = nn.Parameter(torch.randn(n, generator=g))
        self.in_channels = in_channels

    def forward(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        if self.in_channels:
            cond, x = x[:, : self.in_channels], x[:, self.in_channels :]
            return (x.flatten(1) @ self.w + cond.flatten(1) @ self.v).reshape(-1, 1)
        return (x.flatten(1) @ self.w).reshape(-1, 1)


@pytest.mark.parametrize("preset", ["gan", "cgan", "pix2pix"])
@pytest.mark.parametrize("every", [1, 4])
def test_r1_is_gamma_half_w_squared_times_k_on_r1_steps_only(preset: str, every: int) -> None:
    gamma = 3.0
    base = make_config(preset)
    cfg = make_config(preset, overrides={"loss.r1_gamma": gamma, "loss.r1_every": every})
    n = 2 * 4 * 4
    if preset == "pix2pix":
        info = DataInfo(channels=2, resolution=4, in_channels=2)
        batch = {"input": torch.randn(3, 2, 4, 4), "target": torch.randn(3, 2, 4, 4)}
        fake, cond = torch.randn(3, 2, 4, 4), batch["input"]
        D = LinearCritic(n, in_channels=2)
    else:
        info = DataInfo(channels=2, resolution=4, num_classes=10 if preset == "cgan" else 0)
        batch = {"image": torch.randn(3, 2, 4, 4), "label": torch.tensor([1, 2, 3])}
        fake, cond = torch.randn(3, 2, 4, 4), (torch.tensor([4, 5, 6]) if preset == "cgan" else None)
        D = LinearCritic(n)
    family = get_family(preset)
    plain, _ = build_objective(base, info, family).d_loss(D, batch, fake, cond)
    obj = build_objective(cfg, info, family)
    assert [obj.r1_due(s) for s in range(8)] == [s % every == 0 for s in range(8)]
    off, off_stats = obj.d_loss(D, batch, fake, cond, r1_step=False)
    assert off.item() == pytest.approx(plain.item(), rel=1e-6) and "r1" not in off_stats
    on, stats = obj.d_loss(D, batch, fake, cond, r1_step=True)
    w2 = float(D.w.detach().pow(2).sum())  # only the image side gets the gradient, not the condition
    assert float(stats["r1"]) == pytest.approx(w2, rel=1e-5)
    assert on.item() - plain.item() == pytest.approx(gamma / 2 * w2 * every, rel=1e-5)
    on.backward()  # the penalty reaches D's weights: d/dw (gamma/2 k ||w||^2) = gamma k w, plus the loss part
    assert D.w.grad is not None


def test_r1_off_by_default_and_never_due() -> None:
    obj = build_objective(make_config("gan"), DataInfo(channels=1, resolution=4), get_family("gan"))
    assert not any(obj.r1_due(s) for s in range(20))
