"""Adversarial losses on logits, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gankit.losses import GAN_LOSSES, get_gan_loss, gradient_penalty, r1_penalty
from gankit.objectives import frozen_running_stats

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


# ------------------------------------------------- WGAN-GP with normalized critics (per-sample)


def _critic_setup(preset: str, tmp_path, tiny_cfg, fake_paired_data, **overrides):
    """A Trainer-built objective, D and first batch of ``preset`` with loss.gan=wgan-gp."""
    from gankit.training.loop import Trainer

    cfg = tiny_cfg(preset, tmp_path, **{"loss.gan": "wgan-gp", "train.batch_size": 4, **overrides})
    if cfg.family in ("pix2pix", "colorize"):
        fake_paired_data(cfg)
    logs: list[str] = []
    tr = Trainer(cfg, tmp_path / "run", log=logs.append)
    batch = tr.data.batch(tr.sampler.indices(0), device=tr.device, generator=None)
    with torch.no_grad():
        fake, fake_cond = tr.objective.generate(tr.G, batch)
    return tr, batch, fake, fake_cond, logs


def _per_sample_penalty(tr, batch, fake, seed: int) -> float:
    """The penalty computed one sample at a time, with the alphas ``d_loss`` draws after ``manual_seed(seed)``."""
    real, cond = tr.objective.real(batch)
    torch.manual_seed(seed)
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)))
    terms = []
    for i in range(real.shape[0]):
        x = (alpha[i] * real[i : i + 1] + (1 - alpha[i]) * fake[i : i + 1]).detach().requires_grad_(True)
        c = None if cond is None else cond[i : i + 1]
        (g,) = torch.autograd.grad(tr.objective.critic(tr.D, x, c).sum(), x)
        terms.append((g.flatten().norm() - 1) ** 2)
    return torch.stack(terms).mean().item()


def _batch_penalty(tr, batch, fake, fake_cond, seed: int) -> float:
    real, cond = tr.objective.real(batch)
    # the two critic passes of d_loss draw no random numbers, so the penalty's alphas follow the seed
    torch.manual_seed(seed)
    with frozen_running_stats(tr.D):  # only for the BatchNorm control case: keep D's stats fixed
        _, stats = tr.objective.d_loss(tr.D, batch, fake, fake_cond)
    return stats["gp"].item()


@pytest.mark.parametrize("preset", ["dcgan-fmnist32", "pix2pix", "cgan"])
def test_gradient_penalty_is_the_mean_of_per_sample_penalties(preset, tmp_path, tiny_cfg, fake_paired_data) -> None:
    """With loss.gan=wgan-gp the critic scores samples independently: the batch penalty equals the
    mean of the penalties of each sample alone (the README's dcgan-fmnist32 wgan-gp example)."""
    # (no dropout in the cGAN critic here: its masks would draw from the RNG that picks the alphas)
    tr, batch, fake, fake_cond, logs = _critic_setup(
        preset, tmp_path, tiny_cfg, fake_paired_data, **{"model.d_dropout": 0.0}
    )
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in tr.D.modules())
    if preset != "cgan":  # the MLP critic has no norm at all; the conv critics get layer norm, and say so
        assert any(isinstance(m, torch.nn.GroupNorm) and m.num_groups == 1 for m in tr.D.modules())
        assert any("layer norm instead of batch norm" in m for m in logs), logs
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in tr.G.modules())  # G keeps batch norm
    batch_gp = _batch_penalty(tr, batch, fake, fake_cond, seed=7)
    assert batch_gp > 0
    assert batch_gp == pytest.approx(_per_sample_penalty(tr, batch, fake, seed=7), rel=1e-4, abs=1e-6)


def test_batchnorm_critic_penalty_is_not_per_sample(tmp_path, tiny_cfg, fake_paired_data) -> None:
    """The control case: an explicit model.d_norm=batch is respected, with a warning, and then the
    batch penalty differs from the per-sample one (what the check above guards against)."""
    tr, batch, fake, fake_cond, logs = _critic_setup(
        "dcgan-fmnist32", tmp_path, tiny_cfg, fake_paired_data, **{"model.d_norm": "batch"}
    )
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in tr.D.modules())
    assert any(m.startswith("warning: model.d_norm=batch") for m in logs), logs
    batch_gp = _batch_penalty(tr, batch, fake, fake_cond, seed=7)
    assert abs(batch_gp - _per_sample_penalty(tr, batch, fake, seed=7)) > 1e-3 * max(batch_gp, 1e-3)


def test_interpolates_leave_batchnorm_running_stats_alone(tmp_path, tiny_cfg, fake_paired_data) -> None:
    """With batch norm kept (model.d_norm=batch), d_loss moves the running statistics exactly as its two
    plain critic passes (real, fake) do: the penalty's interpolates do not update them."""
    import copy

    tr, batch, fake, fake_cond, _ = _critic_setup(
        "dcgan-fmnist32", tmp_path, tiny_cfg, fake_paired_data, **{"model.d_norm": "batch"}
    )
    twin = copy.deepcopy(tr.D)
    tr.objective.d_loss(tr.D, batch, fake, fake_cond)
    real, _ = tr.objective.real(batch)
    twin(real)
    twin(fake)
    for (name, a), (_, b) in zip(tr.D.named_buffers(), twin.named_buffers()):
        assert torch.equal(a, b), name
    assert int(tr.D.main[3].num_batches_tracked) == 2


def test_frozen_running_stats_restores_tracking() -> None:
    bn = torch.nn.BatchNorm1d(3)
    with frozen_running_stats(bn):
        bn(torch.randn(5, 3))
    assert bn.track_running_stats and torch.equal(bn.running_mean, torch.zeros(3))
    bn(torch.randn(5, 3))
    assert not torch.equal(bn.running_mean, torch.zeros(3))


@pytest.mark.parametrize("d_norm, expected", [("auto", "layer"), ("none", "none"), ("instance", "instance")])
def test_critic_norm_choice(d_norm: str, expected: str) -> None:
    from gankit.config import make_config
    from gankit.families import critic_norm

    cfg = make_config("dcgan-fmnist32", overrides={"loss.gan": "wgan-gp", "model.d_norm": d_norm})
    assert critic_norm(cfg) == expected
    assert critic_norm(make_config("dcgan-fmnist32")) == "batch"  # no penalty: the DCGAN paper's batch norm
    assert critic_norm(make_config("pix2pix", overrides={"loss.gan": "hinge"})) == "batch"


def test_bad_d_norm_is_one_line_config_error() -> None:
    from gankit.config import ConfigError, make_config

    with pytest.raises(ConfigError, match="^model.d_norm must be auto, batch, instance, layer or none$"):
        make_config("dcgan", overrides={"model.d_norm": "group"})


# --------------------------------------------------------------------------- R1 penalty


@pytest.mark.parametrize("shape", [(6, 5), (3, 2, 4, 4)])
def test_r1_penalty_closed_form_for_linear_critic(shape: tuple[int, ...]) -> None:
    """For D(x) = w.x the gradient at every real is w: E[||grad||^2] = ||w||^2, whatever the reals."""
    torch.manual_seed(2)
    w = torch.randn(math.prod(shape[1:]))
    r1 = r1_penalty(_linear_critic(w), torch.randn(shape))
    assert r1.item() == pytest.approx(float(w.pow(2).sum()), rel=1e-6)


def test_r1_penalty_is_differentiable_in_the_critic_weights() -> None:
    w = torch.randn(7, requires_grad=True)
    r1_penalty(_linear_critic(w), torch.randn(4, 7)).backward()
    assert torch.allclose(w.grad, 2 * w.detach())  # d||w||^2/dw


@pytest.mark.parametrize("name", ["vanilla", "lsgan"])
def test_label_smoothing_lowers_only_the_real_target(name: str) -> None:
    plain, smooth = get_gan_loss(name), get_gan_loss(name, label_smoothing=0.1)
    real_term, fake_term = smooth.d(REAL, FAKE)
    if name == "vanilla":  # BCE against 0.9 for reals
        expected = F.binary_cross_entropy_with_logits(REAL, torch.full_like(REAL, 0.9))
    else:
        expected = ((REAL - 0.9) ** 2).mean()
    assert real_term.item() == pytest.approx(expected.item(), abs=1e-6)
    assert real_term.item() != pytest.approx(plain.d(REAL, FAKE)[0].item(), abs=1e-3)
    assert fake_term.item() == pytest.approx(plain.d(REAL, FAKE)[1].item(), abs=1e-7)
    assert smooth.g(FAKE).item() == pytest.approx(plain.g(FAKE).item(), abs=1e-7)
    assert get_gan_loss(name, 0.0) is GAN_LOSSES[name]  # off: the registered loss itself


@pytest.mark.parametrize("name", ["hinge", "wgan-gp"])
def test_label_smoothing_is_refused_for_losses_without_targets(name: str) -> None:
    with pytest.raises(ValueError, match="label smoothing needs a loss with targets"):
        get_gan_loss(name, label_smoothing=0.1)
