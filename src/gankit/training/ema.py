"""Exponential moving average of generator weights (Karras et al. 2018), with StyleGAN2-ADA's ramp-up.

Two ways to set how fast the average moves (``train.ema_decay`` or ``train.ema_halflife_kimg``):
a constant decay per generator step, or a half-life in training images as in StyleGAN2-ADA
(Karras et al. 2020, ``training_loop.py``), where the decay of a step that saw ``b`` images is
``0.5 ** (b / halflife)``. With a ramp-up (``train.ema_rampup``) the half-life is at most
``rampup * images_seen``, so early in a run, while the weights change fast, the average follows them
closely instead of holding on to the random initialization.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def halflife_decay(batch_images: int, images_seen: int, halflife_kimg: float, rampup: float = 0.0) -> float:
    """The decay of one EMA update over ``batch_images`` images after ``images_seen`` (StyleGAN2-ADA's
    ``ema_beta``): ``0.5 ** (batch_images / halflife)``, the half-life ``1000 * halflife_kimg`` images,
    or ``min(that, images_seen * rampup)`` with a ramp-up (``rampup > 0``). The first update of a
    ramp-up (``images_seen = 0``) has decay 0: the average starts as a copy of the weights."""
    halflife = halflife_kimg * 1000
    if rampup > 0:
        halflife = min(halflife, images_seen * rampup)
    return 0.5 ** (batch_images / max(halflife, 1e-8))


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after every generator step.

    ``decay`` is constant, or with ``halflife_kimg > 0`` given by :func:`halflife_decay` at each
    update from the images seen before it (``rampup`` as there). Buffers (BatchNorm running
    statistics) are not averaged: the shadow takes the model's current ones, as StyleGAN2-ADA does.
    """

    def __init__(self, model: nn.Module, decay: float = 0.0, *, halflife_kimg: float = 0.0, rampup: float = 0.0):
        if (decay > 0) == (halflife_kimg > 0):
            raise ValueError(f"EMA: give one of decay ({decay}) and halflife_kimg ({halflife_kimg})")
        self.decay, self.halflife_kimg, self.rampup = decay, halflife_kimg, rampup
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, images_seen: int, batch_images: int) -> float:
        """The decay of an update over ``batch_images`` images after ``images_seen`` (the constant one, if set)."""
        if self.halflife_kimg <= 0:
            return self.decay
        if batch_images <= 0:
            raise ValueError("EMA with a half-life: pass the images of the update (batch_images > 0)")
        return halflife_decay(batch_images, images_seen, self.halflife_kimg, self.rampup)

    @torch.no_grad()
    def update(self, model: nn.Module, *, images_seen: int = 0, batch_images: int = 0) -> None:
        """Move the shadow towards ``model``; the counts matter only with a half-life (see :meth:`decay_at`)."""
        ema_p = list(self.shadow.parameters())
        weight = 1.0 - self.decay_at(images_seen, batch_images)
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], weight)
        for b_ema, b in zip(self.shadow.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state)
