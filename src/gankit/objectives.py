"""Objectives: what a family's losses are, given a batch. The training loop owns everything else
(backward, optimizers, mixed precision, EMA, distributed).

* :class:`NoiseToImage`: G(z[, y]) vs real images; optional class conditioning (cGAN).
* :class:`ImageToImage`: pix2pix: D sees (input, output) pairs; G adds ``l1_weight`` * L1 to the
  adversarial term (Isola et al. 2017).

With ``train.augment`` on, D judges every image, real or fake, in D's step and in G's, through the
:mod:`differentiable augmentation <gankit.augment>` (:meth:`Objective.judge`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gankit.augment import DiffAugment
from gankit.config import Config, parse_augment
from gankit.data.base import Batch, DataInfo
from gankit.families import Family
from gankit.losses import get_gan_loss, gradient_penalty, r1_penalty

Stats = dict[str, Tensor]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Batch norm layers of ``module`` still normalize with batch statistics but leave their running
    statistics (and ``num_batches_tracked``) alone: the gradient penalty's interpolates are neither
    real nor fake images and must not shift the statistics used at evaluation."""
    layers = [m for m in module.modules() if isinstance(m, _BATCH_NORMS) and m.training and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False  # in train mode: batch statistics, running buffers not passed
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


class Objective:
    """Shared adversarial part. Subclasses say how to make fakes and how D is conditioned."""

    pairs = False
    """Whether D's condition is an image that the geometric augmentations move with D's image."""

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        mode, policy = parse_augment(cfg.train.augment)
        self.augment = DiffAugment(policy, space=info.space, p=0.0 if mode == "ada" else 1.0) if policy else None
        """``train.augment``'s transforms (None: off); for ada the loop sets their ``p``."""
        self.adaptive = mode == "ada"
        self.loss = get_gan_loss(cfg.loss.gan, cfg.loss.label_smoothing)
        self.d_scale = cfg.loss.d_scale
        self.gp_weight = cfg.loss.gp_weight
        self.r1_gamma = cfg.loss.r1_gamma
        self.r1_every = cfg.loss.r1_every

    def r1_due(self, step: int) -> bool:
        """Whether the discriminator step after ``step`` completed steps carries the lazy R1 penalty
        (every ``loss.r1_every``-th step from the first, as in StyleGAN2)."""
        return self.r1_gamma > 0 and step % self.r1_every == 0

    # --- to be provided by subclasses
    def generate(self, G: nn.Module, batch: Batch) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def real(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def critic(self, D: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
        raise NotImplementedError

    def judge(self, D: nn.Module, x: Tensor, cond: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """D's logits for ``x`` under ``cond``, through the augmentation when ``train.augment`` is on
        (drawn from ``generator``; differentiable, so G's gradient passes through it)."""
        if self.augment is not None:
            if self.pairs:
                x, cond = self.augment(x, generator, cond=cond)
            else:
                x, _ = self.augment(x, generator)
        return self.critic(D, x, cond)

    # --- losses
    def d_loss(
        self,
        D: nn.Module,
        batch: Batch,
        fake: Tensor,
        fake_cond: Tensor | None,
        *,
        D_local: nn.Module | None = None,
        scaler: torch.amp.GradScaler | None = None,
        r1_step: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Stats]:
        """Discriminator loss. ``D_local`` (the module inside a DDP wrapper) serves the gradient
        penalty, whose double backward DDP does not support; its gradients still reach the same
        parameters within the same backward pass. ``scaler`` (fp16) is the one that will scale this
        loss; the penalty's gradients follow PyTorch's AMP recipe with it.

        With ``loss.r1_gamma`` > 0 and ``r1_step`` (see :meth:`r1_due`), the loss adds the lazy R1
        penalty ``r1_every * r1_gamma / 2 * E[||grad D(real)||^2]``: applied every k-th step and scaled
        by k, its expected strength is that of the penalty on every step (Karras et al. 2020, StyleGAN2).

        With ``train.augment``, reals and fakes (and the penalties' inputs) are augmented, each with its
        own draw from ``generator``; the penalties' gradients are taken before the augmentation.

        ``stats["d_loss"]`` is the adversarial part alone; ``stats["gp"]`` the unweighted penalty;
        ``stats["r1"]`` (R1 steps only) the unweighted E[||grad D(real)||^2]; ``stats["d_real_sign"]``
        (``train.augment=ada``) the mean sign of D's outputs on reals about the loss's midpoint, ADA's
        overfitting heuristic."""
        real, real_cond = self.real(batch)
        real_logits = self.judge(D, real, real_cond, generator)
        fake_logits = self.judge(D, fake.detach(), fake_cond, generator)
        loss_real, loss_fake = self.loss.d(real_logits, fake_logits)
        loss = (loss_real + loss_fake) * self.d_scale
        stats: Stats = {
            "d_loss": loss.detach(),
            "d_real": real_logits.detach().float().mean(),
            "d_fake": fake_logits.detach().float().mean(),
        }
        if self.adaptive:
            assert self.loss.midpoint is not None  # config validation refuses ada with wgan-gp
            stats["d_real_sign"] = (real_logits.detach().float() - self.loss.midpoint).sign().mean()
        if self.loss.gradient_penalty:
            # interpolate i lies between real[i] and fake[i], so both must have the same condition
            # (class label, input image), and the interpolate is scored under it
            if fake_cond is not real_cond:
                raise ValueError("the gradient penalty needs fakes made for the real samples' conditions")
            critic_net = D_local if D_local is not None else D
            with frozen_running_stats(critic_net):
                gp = gradient_penalty(
                    lambda x: self.judge(critic_net, x, real_cond, generator), real, fake, scaler=scaler
                )
            loss = loss + self.gp_weight * gp
            stats["gp"] = gp.detach()
        if r1_step and self.r1_gamma > 0:
            # a pass of its own through the plain module: DDP has no double backward, and the reals
            # were already counted in the batch norm statistics by the pass above
            critic_net = D_local if D_local is not None else D
            with frozen_running_stats(critic_net):
                r1 = r1_penalty(lambda x: self.judge(critic_net, x, real_cond, generator), real, scaler=scaler)
            loss = loss + self.r1_every * self.r1_gamma / 2 * r1
            stats["r1"] = r1.detach()
        return loss, stats

    def g_loss(
        self,
        D: nn.Module,
        batch: Batch,
        fake: Tensor,
        fake_cond: Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Stats]:
        adv = self.loss.g(self.judge(D, fake, fake_cond, generator))
        return adv, {"g_loss": adv.detach()}


class NoiseToImage(Objective):
    """Noise to image. Fakes of a cGAN get random labels, as in the course notes, except with a gradient
    penalty: interpolating a real image with a fake needs both of the same class, so the fakes are made
    for the real images' labels (same label distribution, paired sample by sample)."""

    def __init__(self, cfg: Config, info: DataInfo, *, conditional: bool) -> None:
        super().__init__(cfg, info)
        self.z_dim = cfg.model.z_dim
        self.num_classes = info.num_classes if conditional else 0

    def sample_z(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.z_dim, device=device, generator=generator)

    def generate(self, G: nn.Module, batch: Batch) -> tuple[Tensor, Tensor | None]:
        real = batch["image"]
        z = self.sample_z(real.shape[0], real.device)
        labels = None
        if self.num_classes:
            if self.loss.gradient_penalty:
                labels = self.real(batch)[1]
            else:
                labels = torch.randint(0, self.num_classes, (real.shape[0],), device=real.device)
        return G(z, labels), labels

    def real(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        return batch["image"], batch.get("label") if self.num_classes else None

    def critic(self, D: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
        return D(x, cond)


class ImageToImage(Objective):
    pairs = True

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.l1_weight = cfg.loss.l1_weight

    def generate(self, G: nn.Module, batch: Batch) -> tuple[Tensor, Tensor | None]:
        return G(batch["input"]), batch["input"]

    def real(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        return batch["target"], batch["input"]

    def critic(self, D: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
        assert cond is not None
        return D(torch.cat([cond, x.to(cond.dtype)], dim=1))

    def l1(self, fake: Tensor, batch: Batch) -> Tensor:
        return (fake.float() - batch["target"].float()).abs().mean()

    def g_loss(
        self,
        D: nn.Module,
        batch: Batch,
        fake: Tensor,
        fake_cond: Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Stats]:
        adv, stats = super().g_loss(D, batch, fake, fake_cond, generator)
        l1 = self.l1(fake, batch)
        loss = adv + self.l1_weight * l1
        return loss, {"g_loss": loss.detach(), "g_adv": adv.detach(), "g_l1": l1.detach()}

    def pretrain_loss(self, batch: Batch, fake: Tensor) -> tuple[Tensor, Stats]:
        """L1 only, for the optional generator pretraining phase."""
        l1 = self.l1(fake, batch)
        return l1, {"g_l1": l1.detach()}


def build_objective(cfg: Config, info: DataInfo, family: Family) -> Objective:
    if family.kind == "paired":
        return ImageToImage(cfg, info)
    return NoiseToImage(cfg, info, conditional=family.conditional)
