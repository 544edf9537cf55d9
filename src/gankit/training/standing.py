"""The inputs a run recomputes its generator's "standing" BatchNorm statistics from (``train.sampling=standing``).

Noise models: :data:`NOISE_BATCHES` batches of ``max(train.batch_size, 32)`` noise vectors (labels
cycled over the classes for a conditional model). Image-to-image models: :data:`PAIRED_BATCHES`
batches of :data:`PAIRED_BATCH_SIZE` training inputs (never validation images, which are scored),
cropped and flipped as in training. Every batch comes from its own seeded ``torch.Generator``, so
the statistics are the same at every epoch end and after a resume, and the run's RNGs are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gankit.config import Config
from gankit.data.base import TrainSet

NOISE_BATCHES = 16
NOISE_MIN_BATCH = 32
PAIRED_BATCHES = 8
PAIRED_BATCH_SIZE = 8
SEED_OFFSET = 24_680
"""Added to ``train.seed``: the standing inputs never repeat the grid's noise (``seed + 12345``)."""


@dataclass(frozen=True)
class StandingInputs:
    """``inputs(i)``: the i-th of ``batches`` batches of ``batch_size`` generator inputs."""

    inputs: Callable[[int], tuple[Tensor | None, ...]]
    batches: int
    batch_size: int

    def record(self) -> dict[str, Any]:
        """What a snapshot says about them (``"standing"``)."""
        return {"batches": self.batches, "batch_size": self.batch_size}


def standing_inputs(
    cfg: Config, data: TrainSet, *, noise: bool, num_classes: int, device: torch.device
) -> StandingInputs:
    """The standing-statistics inputs of a run of ``cfg`` on the training set ``data``."""
    seed = cfg.train.seed + SEED_OFFSET
    if noise:
        bs = max(cfg.train.batch_size, NOISE_MIN_BATCH)
        labels = (torch.arange(bs) % num_classes).to(device) if num_classes else None

        def noise_batch(i: int) -> tuple[Tensor | None, ...]:
            g = torch.Generator().manual_seed(seed + i)
            return (torch.randn(bs, cfg.model.z_dim, generator=g).to(device), labels)

        return StandingInputs(noise_batch, NOISE_BATCHES, bs)

    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))

    def paired_batch(i: int) -> tuple[Tensor | None, ...]:
        idx = order[(i * PAIRED_BATCH_SIZE + torch.arange(PAIRED_BATCH_SIZE)) % len(data)]
        g = torch.Generator().manual_seed(seed + 1 + i)  # the crops and flips of training
        return (data.batch(idx, device=device, generator=g)["input"],)

    return StandingInputs(paired_batch, PAIRED_BATCHES, PAIRED_BATCH_SIZE)
