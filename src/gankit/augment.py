"""Differentiable augmentation of what the discriminator sees, for training on little data.

With a few hundred or thousand images D soon memorizes the training set, and G's gradient turns into
noise. Augmenting D's inputs fights that, provided it is done to real and fake images alike, in D's
step and in G's, with transforms G's gradient can pass through (so G is not taught to make augmented
images: D judges augmented reals against augmented fakes).

* DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS
  2020), ``train.augment=diffaug[:POLICY]``: every transform of the policy on every image,

  - ``color``: brightness + U(-0.5, 0.5); saturation x U(0, 2) about each pixel's mean over the
    channels; contrast x U(0.5, 1.5) about the image's mean (images in [-1, 1]);
  - ``translation``: a shift by up to 1/8 of the side in each direction, the uncovered part zero;
  - ``cutout``: a square of half the side set to zero, centred anywhere (clipped at the border).

* ADA (Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020),
  ``train.augment=ada``: the same transforms, each applied to each image with probability p, which
  :class:`AdaptiveAugment` adjusts from D's outputs on reals while training.

Image-to-image families: D judges (input, output) pairs. The geometric transforms move both images of
a pair with the same draw (the pair stays aligned); ``color`` changes the output side only: pix2pix's
input is often a label map whose colours are the classes, and colorize's input is the L channel of the
very photo D must judge. For colorize (Lab, output ab) ``color`` is saturation alone, as a scaling of
ab by U(0, 2) (chroma; the grey axis is ab = 0): brightness and contrast are lightness changes, and
lightness is L, the input, which stays as given.

The random numbers come from a CPU :class:`torch.Generator` (the training loop gives each step its
own, from the seed, the step and the rank: :func:`step_generator`), so a run resumed with ``--resume``
draws what an uninterrupted one would, whatever the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.config import AUGMENT_POLICIES

__all__ = [
    "ADA_INTERVAL",
    "AdaptiveAugment",
    "DiffAugment",
    "brightness",
    "chroma",
    "contrast",
    "cutout",
    "saturation",
    "step_generator",
    "translate",
]

TRANSLATION = 1 / 8
"""Largest shift, as a share of the image side (DiffAugment's)."""
CUTOUT = 1 / 2
"""Side of the cut-out square, as a share of the image side (DiffAugment's)."""
ADA_INTERVAL = 4
"""Steps between ADA's adjustments of p (the paper's 4 minibatches)."""


def step_generator(seed: int, step: int, *, rank: int = 0, world_size: int = 1) -> torch.Generator:
    """The generator of one training step's augmentation: a function of the seed, the step and the
    rank only (a resumed run draws what an uninterrupted one would; ranks draw differently). The
    offset keeps it apart from the data's crop/flip generators
    (:meth:`~gankit.data.base.EpochSampler.augment_generator`)."""
    return torch.Generator().manual_seed((1 << 48) + (seed * 7_919 + step) * world_size + rank)


# --------------------------------------------------------------------------------- the transforms
# Each takes (N, C, H, W) images and per-image parameters (N,) on the CPU, and is differentiable in x.


def _per_image(v: Tensor, x: Tensor) -> Tensor:
    return v.to(x.device, x.dtype).view(-1, 1, 1, 1)


def brightness(x: Tensor, shift: Tensor) -> Tensor:
    """``x + shift``, one shift per image."""
    return x + _per_image(shift, x)


def saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Each pixel's distance from its mean over the channels times ``factor`` (grey stays grey; one
    channel: unchanged)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_image(factor, x) + mean


def contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Each image's distance from its mean (over channels and pixels) times ``factor``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_image(factor, x) + mean


def chroma(ab: Tensor, factor: Tensor) -> Tensor:
    """Lab saturation: the a*b* channels times ``factor`` (their grey point is 0)."""
    return ab * _per_image(factor, ab)


def translate(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Image ``i`` moved down by ``dy[i]`` and right by ``dx[i]`` pixels (integers, negative: up/left);
    what moves in from outside is zero."""
    n, c, h, w = x.shape
    pad = int(max(dy.abs().max(), dx.abs().max()))
    padded = F.pad(x, (pad, pad, pad, pad))
    # output pixel (y, x) is input pixel (y - dy, x - dx): one gather for the whole batch
    rows = (torch.arange(h) - dy[:, None] + pad).to(x.device)
    cols = (torch.arange(w) - dx[:, None] + pad).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(x: Tensor, cy: Tensor, cx: Tensor, size: int) -> Tensor:
    """Image ``i`` with the ``size`` x ``size`` square centred at row ``cy[i]``, column ``cx[i]`` set to
    zero (the part of it inside the image)."""
    _, _, h, w = x.shape
    top, left = cy - size // 2, cx - size // 2
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # (N, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.device, x.dtype)


COLOR_OPS = ((brightness, -0.5, 0.5), (saturation, 0.0, 2.0), (contrast, 0.5, 1.5))
"""``color`` on RGB (or gray) images: each transform with its amount's uniform range."""
LAB_COLOR_OPS = ((chroma, 0.0, 2.0),)
"""``color`` on Lab images (a*b*): saturation alone; lightness is the input's (see the module's docstring)."""


# ------------------------------------------------------------------------------------- the policy


class DiffAugment:
    """The random transforms of ``policy`` (names of :data:`~gankit.config.AUGMENT_POLICIES`, applied
    in that order), each applied to each image with probability ``p`` (1: DiffAugment; ADA moves it).

    ``space`` is the images' colour space: ``rgb`` (any number of channels) or ``lab`` (the images
    are a*b*; ``color`` is then :func:`chroma` alone, see the module's docstring).
    """

    def __init__(self, policy: Sequence[str] = AUGMENT_POLICIES, *, space: str = "rgb", p: float = 1.0) -> None:
        unknown = [t for t in policy if t not in AUGMENT_POLICIES]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown[0]!r}; the policies are {', '.join(AUGMENT_POLICIES)}")
        self.policy = tuple(t for t in AUGMENT_POLICIES if t in policy)
        self.space, self.p = space, p

    def __call__(
        self, x: Tensor, generator: torch.Generator | None = None, *, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` augmented, and ``cond`` (an image-to-image input: ``x``'s pair) moved by the same
        geometric transforms. Without a ``generator`` the global CPU generator draws."""
        if self.p <= 0:
            return x, cond
        gen = generator if generator is not None else torch.default_generator
        if "color" in self.policy:
            x = self._color(x, gen)
        if "translation" in self.policy or "cutout" in self.policy:
            pair = x if cond is None else torch.cat([cond, x.to(cond.dtype)], dim=1)
            if "translation" in self.policy:
                pair = self._translation(pair, gen)
            if "cutout" in self.policy:
                pair = self._cutout(pair, gen)
            x, cond = (pair, None) if cond is None else (pair[:, cond.shape[1] :], pair[:, : cond.shape[1]])
        return x, cond

    def _chosen(self, n: int, gen: torch.Generator) -> Tensor | None:
        """Which of ``n`` images get the next transform: each with probability p (None: all)."""
        return None if self.p >= 1 else torch.rand(n, generator=gen) < self.p

    @staticmethod
    def _where(chosen: Tensor | None, changed: Tensor, x: Tensor) -> Tensor:
        return changed if chosen is None else torch.where(chosen.to(x.device).view(-1, 1, 1, 1), changed, x)

    def _color(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n = x.shape[0]
        ops = LAB_COLOR_OPS if self.space == "lab" else COLOR_OPS
        for op, low, high in ops:
            chosen = self._chosen(n, gen)
            amount = torch.rand(n, generator=gen) * (high - low) + low
            x = self._where(chosen, op(x, amount), x)
        return x

    def _translation(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, _, h, w = x.shape
        chosen = self._chosen(n, gen)
        my, mx = int(h * TRANSLATION + 0.5), int(w * TRANSLATION + 0.5)
        dy = torch.randint(-my, my + 1, (n,), generator=gen)
        dx = torch.randint(-mx, mx + 1, (n,), generator=gen)
        return self._where(chosen, translate(x, dy, dx), x)

    def _cutout(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, _, h, w = x.shape
        chosen = self._chosen(n, gen)
        cy = torch.randint(0, h, (n,), generator=gen)
        cx = torch.randint(0, w, (n,), generator=gen)
        return self._where(chosen, cutout(x, cy, cx, int(min(h, w) * CUTOUT)), x)


class AdaptiveAugment:
    """ADA's probability p (Karras et al. 2020): 0 at the start; after every :data:`ADA_INTERVAL`
    observed discriminator steps, with r_t the mean of sign(D(real) - midpoint) over them (2 x the share
    of reals D calls real - 1; near 1 when D has memorized the training set),
    ``p += sign(r_t - target) * images / (kimg * 1000)``, clamped to [0, 1]: p can cross [0, 1] in
    ``kimg`` thousand images.

    ``images_per_step`` counts every process's batch. Several processes: :meth:`update`'s ``reduce``
    averages r_t over them, so every rank keeps the same p.
    """

    def __init__(self, *, target: float, kimg: float, images_per_step: int, interval: int = ADA_INTERVAL) -> None:
        self.target, self.kimg, self.images_per_step, self.interval = target, kimg, images_per_step, interval
        self.p = 0.0
        self._signs: Tensor | None = None
        """The sum of the observed steps' mean signs since the last adjustment (on the device: no sync)."""
        self._count = 0

    def update(self, real_sign: Tensor, reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        """Observe one step's mean sign(D(real) - midpoint); adjust p when an interval is complete."""
        sign = real_sign.detach().float()
        self._signs = sign if self._signs is None else self._signs + sign
        self._count += 1
        if self._count < self.interval:
            return
        mean = self._signs / self._count
        r_t = float(reduce(mean) if reduce is not None else mean)
        direction = (r_t > self.target) - (r_t < self.target)
        speed = self.images_per_step * self._count / (self.kimg * 1000)
        self.p = min(max(self.p + direction * speed, 0.0), 1.0)
        self._signs, self._count = None, 0

    def state_dict(self) -> dict[str, Any]:
        signs = float(self._signs) if self._signs is not None else 0.0
        return {"p": self.p, "signs": signs, "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p, self._count = float(state["p"]), int(state["count"])
        self._signs = torch.tensor(float(state["signs"])) if self._count else None
        if not (0 <= self.p <= 1 and math.isfinite(self.p)):
            raise ValueError(f"ADA probability {self.p} is not in [0, 1]")
