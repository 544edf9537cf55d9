"""How a BatchNorm generator normalizes when it samples: the three standard choices.

A generator with BatchNorm (DCGAN, the U-Nets) trains on batch statistics but, in ``eval()``, samples
with running averages that lag behind G early in training: a 30-step DCGAN then draws flat grey tiles.

- ``eval``: running statistics (``G.eval()``); what the course notes' pix2pix does.
- ``train``: batch statistics and dropout on, "exactly as during training" (pix2pix paper, junyanz's
  default test mode; the PyTorch DCGAN example draws its progress grids this way). Outputs of one
  sample depend on the rest of its batch.
- ``standing``: recompute the statistics over a few batches of the generator's own inputs, then
  sample in eval mode ("standing statistics", Brock et al. 2019, BigGAN; StudioGAN's ``standing_stats``).
  Outputs of one sample do not depend on its batch.

Whatever the mode, :func:`sampling_mode` restores the network's buffers and its train/eval flags on
exit: sampling never changes a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gankit.config import SAMPLING_MODES  # the values of train.sampling (config needs no torch)

STANDING_BATCHES = 16
"""Batches of inputs the ``standing`` mode averages its statistics over."""


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`SAMPLING_MODES`, else a ValueError naming the choices."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling mode '{mode}': expected one of {', '.join(SAMPLING_MODES)}")
    return mode


@contextmanager
def sampling_mode(
    G: nn.Module,
    mode: str,
    *,
    inputs: Callable[[int], tuple[Tensor, ...]] | None = None,
    batches: int = STANDING_BATCHES,
) -> Iterator[nn.Module]:
    """Run ``G`` in sampling ``mode`` inside the ``with`` block (yields ``G``); everything is restored after.

    ``inputs(i)`` gives the i-th batch of G's inputs (noise and labels, or input images) that the
    ``standing`` mode recomputes the statistics from; the other modes ignore it. A network without
    BatchNorm samples in eval mode whatever ``mode`` says (there is nothing to choose).
    """
    check_mode(mode)
    layers = batchnorm_layers(G)
    flags = [(m, m.training) for m in G.modules()]
    saved = [
        (m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum) for m in layers
    ]
    try:
        if not layers or mode == "eval":
            G.eval()
        elif mode == "train":
            G.train()  # batch statistics and dropout, as in training; the running buffers are restored after
        else:
            if inputs is None:
                raise ValueError("the standing sampling mode needs the generator's inputs to recompute statistics")
            recompute_statistics(G, inputs, batches)
            G.eval()
        yield G
    finally:
        for m, mean, var, count, momentum in saved:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
            m.momentum = momentum
        for m, training in flags:
            m.training = training


@torch.no_grad()
def recompute_statistics(G: nn.Module, inputs: Callable[[int], tuple[Tensor, ...]], batches: int) -> None:
    """Replace the BatchNorm running statistics of ``G`` by their average over ``batches`` batches of
    ``inputs`` (a cumulative average: ``momentum=None``), dropout off. Leaves ``G`` in train mode."""
    layers = batchnorm_layers(G)
    G.train()
    for m in G.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d):
            m.eval()  # the statistics of the network that will sample (dropout off)
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    for i in range(batches):
        G(*inputs(i))
