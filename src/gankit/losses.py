"""Adversarial losses as pure functions of discriminator logits.

Each loss is a pair of functions looked up by name in :data:`GAN_LOSSES`:

* ``d(real_logits, fake_logits) -> (real_term, fake_term)``: the discriminator's loss split in its
  two halves (callers sum them, optionally scaled);
* ``g(fake_logits) -> loss``: the generator's loss.

Working on logits (never Sigmoid + BCELoss) keeps the vanilla loss numerically safe under autocast.

* ``vanilla``: Goodfellow et al. 2014, with the non-saturating generator loss -log D(G(z)).
* ``lsgan``: Mao et al. 2017, least squares with targets 1 (real) and 0 (fake), as pix2pix uses it.
* ``hinge``: Lim & Ye 2017 / Miyato et al. 2018.
* ``wgan-gp``: Gulrajani et al. 2017; the gradient penalty is :func:`gradient_penalty`.

One-sided label smoothing (Salimans et al. 2016, ``get_gan_loss(name, label_smoothing=s)``) moves D's
target for reals from 1 to 1 - s in the two losses that have targets (vanilla, lsgan); fakes keep 0
and G's loss is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.config import SMOOTHABLE_LOSSES


def _mean(x: Tensor) -> Tensor:
    return x.float().mean()


def vanilla_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> tuple[Tensor, Tensor]:
    # BCE(sigmoid(real), t) = t * softplus(-real) + (1 - t) * softplus(real); BCE(sigmoid(fake), 0) = softplus(fake)
    real = real.float()
    loss_real = (
        F.softplus(-real) if real_target == 1.0 else torch.lerp(F.softplus(real), F.softplus(-real), real_target)
    )
    return _mean(loss_real), _mean(F.softplus(fake.float()))


def vanilla_g(fake: Tensor) -> Tensor:
    return _mean(F.softplus(-fake.float()))


def lsgan_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> tuple[Tensor, Tensor]:
    return _mean((real.float() - real_target) ** 2), _mean(fake.float() ** 2)


def lsgan_g(fake: Tensor) -> Tensor:
    return _mean((fake.float() - 1) ** 2)


def hinge_d(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    return _mean(F.relu(1 - real.float())), _mean(F.relu(1 + fake.float()))


def wasserstein_d(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    return -_mean(real), _mean(fake)


def wasserstein_g(fake: Tensor) -> Tensor:
    return -_mean(fake)


@dataclass(frozen=True)
class GANLoss:
    d: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    g: Callable[[Tensor], Tensor]
    gradient_penalty: bool = False
    midpoint: float | None = 0.0
    """D's output halfway between its targets for reals and fakes: ADA's overfitting heuristic counts
    the outputs on reals above it. None: no such point (a Wasserstein critic's outputs have no fixed level)."""


GAN_LOSSES: dict[str, GANLoss] = {
    "vanilla": GANLoss(vanilla_d, vanilla_g),
    "lsgan": GANLoss(lsgan_d, lsgan_g, midpoint=0.5),
    "hinge": GANLoss(hinge_d, wasserstein_g),
    "wgan-gp": GANLoss(wasserstein_d, wasserstein_g, gradient_penalty=True, midpoint=None),
}


def get_gan_loss(name: str, label_smoothing: float = 0.0) -> GANLoss:
    """The adversarial loss called ``name`` (see :data:`GAN_LOSSES`), with D's target for reals at
    ``1 - label_smoothing`` (one-sided label smoothing; only the losses in ``SMOOTHABLE_LOSSES``)."""
    try:
        loss = GAN_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown GAN loss '{name}'; known: {', '.join(GAN_LOSSES)}") from None
    if not label_smoothing:
        return loss
    if name not in SMOOTHABLE_LOSSES:
        raise ValueError(f"label smoothing needs a loss with targets ({', '.join(SMOOTHABLE_LOSSES)}), not '{name}'")
    return replace(loss, d=partial(loss.d, real_target=1.0 - label_smoothing))


class _Scaler(Protocol):
    """What :func:`gradient_penalty` uses of a :class:`torch.amp.GradScaler`."""

    def is_enabled(self) -> bool: ...

    def scale(self, outputs: Tensor) -> Tensor: ...


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
    *,
    scaler: _Scaler | None = None,
) -> Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake.

    Interpolate i lies between ``real[i]`` and ``fake[i]``: the caller pairs samples of the same
    condition (label or input image) and scores the interpolates under it. The penalty is the mean of
    per-sample terms only if ``critic`` scores samples independently, i.e. has no batch norm.

    With an enabled gradient ``scaler`` (fp16 autocast), this follows PyTorch's AMP recipe for gradient
    penalties: ``autograd.grad`` of the *scaled* critic output, so small gradients do not underflow in
    the fp16 backward, then the gradients are unscaled before the penalty is formed (in fp32). If the
    scaled backward overflows, the penalty is inf; the scaler's ``step`` then skips the update and
    lowers the scale, as for any overflowing fp16 step.
    """
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()
    grad = _input_gradient(critic, x_hat, scaler)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _input_gradient(critic: Callable[[Tensor], Tensor], x: Tensor, scaler: _Scaler | None) -> Tensor:
    """d(sum of the critic's outputs)/dx in fp32, differentiable (``create_graph``), per sample.

    With an enabled ``scaler`` the scaled output is differentiated (so small fp16 gradients do not
    underflow) and the gradient unscaled after: PyTorch's AMP recipe for gradient penalties.
    """
    x = x.detach().requires_grad_(True)
    out = critic(x).float().sum()
    if scaler is not None and scaler.is_enabled():
        # scale(1) is the scale as a device tensor: no host sync, unlike scaler.get_scale()
        scale = scaler.scale(torch.ones((), device=out.device))
        (grad,) = torch.autograd.grad(scaler.scale(out), x, create_graph=True)
        return grad.float() / scale
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    return grad.float()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, *, scaler: _Scaler | None = None) -> Tensor:
    """R1 penalty E[||grad_x D(x)||_2^2] on real samples (Mescheder et al. 2018), unweighted: callers
    multiply by ``gamma / 2``.

    ``critic`` scores ``real`` under its condition (label, input image); only ``real`` gets the
    gradient. A patch discriminator's logits are summed per sample, as the WGAN-GP penalty does.
    ``scaler`` follows the AMP recipe of :func:`gradient_penalty` (inf when the scaled backward overflows).
    """
    grad = _input_gradient(critic, real, scaler)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
