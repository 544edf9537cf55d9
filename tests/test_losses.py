"""Adversarial losses on logits, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gankit.losses import GAN_LOSSES, get_gan_loss, gradient_penalty

REAL = torch.tensor([-2.0, 0.0, 1.5, 3.0])
FAKE = torch.tensor([-1.0, 0.5, 2.0, -0.5])


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# (d_real, d_fake, g) for REAL/FAKE above, written out from the papers' formulas.
EXPECTED = {
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f); non-saturating G: softplus(-f)
    "vanilla": (
        _mean([_softplus(-r) for r in REAL.tolist()]),
        _mean([_softplus(f) for f in FAKE.tolist()]),
        _mean([_softplus(-f) for f in FAKE.tolist()]),
    ),
    # (r-1)^2 = 9, 1, .25, 4; f^2 = 1, .25, 4, .25; (f-1)^2 = 4, .25, 1, 2.25
    "lsgan": (14.25 / 4, 5.5 / 4, 7.5 / 4),
    # relu(1-r) = 3, 1, 0, 0; relu(1+f) = 0, 1.5, 3, .5; G: -mean(f)
    "hinge": (1.0, 1.25, -0.25),
    # -mean(r) = -2.5/4; mean(f) = 1/4; G: -mean(f)
    "wgan-gp": (-0.625, 0.25, -0.25),
}


def test_every_registered_loss_has_hand_values() -> None:
    assert set(GAN_LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_loss_values(name: str) -> None:
    loss = get_gan_loss(name)
    d_real, d_fake = loss.d(REAL, FAKE)
    g = loss.g(FAKE)
    exp_real, exp_fake, exp_g = EXPECTED[name]
    assert d_real.item() == pytest.approx(exp_real, abs=1e-6)
    assert d_fake.item() == pytest.approx(exp_fake, abs=1e-6)
    assert g.item() == pytest.approx(exp_g, abs=1e-6)
    assert d_real.dim() == d_fake.dim() == g.dim() == 0
    assert loss.gradient_penalty == (name == "wgan-gp")


def test_vanilla_is_bce_on_sigmoid() -> None:
    loss = get_gan_loss("vanilla")
    d_real, d_fake = loss.d(REAL, FAKE)
    bce = F.binary_cross_entropy
    assert torch.allclose(d_real, bce(torch.sigmoid(REAL), torch.ones(4)), atol=1e-6)
    assert torch.allclose(d_fake, bce(torch.sigmoid(FAKE), torch.zeros(4)), atol=1e-6)
    # non-saturating G: -log D(G(z)), i.e. BCE against the *real* label
    assert torch.allclose(loss.g(FAKE), bce(torch.sigmoid(FAKE), torch.ones(4)), atol=1e-6)


def test_vanilla_is_stable_for_large_logits() -> None:
    # Sigmoid + BCE saturates (BCELoss clamps log at -100); the logit form stays exact.
    big = torch.tensor([200.0, -200.0])
    d_real, d_fake = get_gan_loss("vanilla").d(-big, big)
    assert d_real.item() == pytest.approx(100.0) and d_fake.item() == pytest.approx(100.0)
    assert torch.isfinite(get_gan_loss("vanilla").g(-big))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_losses_return_float32_for_low_precision_logits(name: str) -> None:
    loss = get_gan_loss(name)
    d_real, d_fake = loss.d(REAL.bfloat16(), FAKE.bfloat16())
    g = loss.g(FAKE.bfloat16())
    assert d_real.dtype == d_fake.dtype == g.dtype == torch.float32
    assert d_real.item() == pytest.approx(EXPECTED[name][0], abs=2e-2)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_losses_average_over_patch_maps(name: str) -> None:
    # PatchGAN logits (N, 1, H, W) are averaged like a flat vector.
    loss = get_gan_loss(name)
    d_real, d_fake = loss.d(REAL.view(1, 1, 2, 2), FAKE.view(1, 1, 2, 2))
    assert d_real.item() == pytest.approx(EXPECTED[name][0], abs=1e-6)
    assert loss.g(FAKE.view(1, 1, 2, 2)).item() == pytest.approx(EXPECTED[name][2], abs=1e-6)


def test_gradients_point_the_right_way() -> None:
    # D wants real logits up and fake logits down; G wants fake logits up (for logits in (0, 1),
    # where no loss is saturated or past its target).
    real, fake = torch.tensor([0.1, 0.5, 0.8]), torch.tensor([0.2, 0.4, 0.9])
    for name in EXPECTED:
        loss = get_gan_loss(name)
        r, f = real.clone().requires_grad_(), fake.clone().requires_grad_()
        sum(loss.d(r, f)).backward()
        assert (r.grad < 0).all() and (f.grad > 0).all(), name
        f2 = fake.clone().requires_grad_()
        loss.g(f2).backward()
        assert (f2.grad < 0).all(), name


def test_unknown_loss() -> None:
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'.*vanilla.*lsgan.*hinge.*wgan-gp"):
        get_gan_loss("wgan")


# --------------------------------------------------------------------------- gradient penalty


def _linear_critic(weight: torch.Tensor):
    return lambda x: x.flatten(1) @ weight


@pytest.mark.parametrize("shape", [(6, 5), (3, 2, 4, 4)])
def test_gradient_penalty_zero_for_unit_gradient(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    d = math.prod(shape[1:])
    w = torch.randn(d)
    w = w / w.norm()
    gp = gradient_penalty(_linear_critic(w), torch.randn(shape), torch.randn(shape))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("c", [0.0, 0.5, 3.0])
def test_gradient_penalty_closed_form_for_linear_critic(c: float) -> None:
    torch.manual_seed(1)
    w = torch.randn(12)
    w = (w / w.norm() * c).requires_grad_(True)
    real, fake = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2)
    gp = gradient_penalty(_linear_critic(w), real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((c - 1) ** 2, rel=1e-5, abs=1e-6)
    if c > 0:  # create_graph: the penalty trains the critic, d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
        (grad,) = torch.autograd.grad(gp, w)
        assert torch.allclose(grad, 2 * (c - 1) * w.detach() / c, atol=1e-5)


def test_gradient_penalty_depends_on_the_interpolates() -> None:
    # For a nonlinear critic the penalty is evaluated at x_hat = a real + (1 - a) fake: it equals the
    # hand computation with the same alphas, and does not send gradients into real or fake.
    real = torch.randn(4, 3, requires_grad=True)
    fake = torch.randn(4, 3, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5])
    critic = lambda x: (x**2) @ w  # noqa: E731  grad = 2 x * w
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    alpha = torch.rand(4, 1, generator=torch.Generator().manual_seed(3))
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    expected = (((2 * x_hat * w).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)
    gp.backward()
    assert real.grad is None and fake.grad is None
