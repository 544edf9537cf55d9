"""What the Trainer builds before its first step: the networks on their device (speed options,
DDP, ``torch.compile``), the optimizers with their mixed-precision grad scalers and learning-rate
schedule, and the sampler.

Each builder is a plain function of the config, so the loop reads as a list of what it builds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gankit.config import Config
from gankit.data import EpochSampler
from gankit.data.base import DataInfo
from gankit.families import Family
from gankit.training import distributed, performance
from gankit.training.distributed import DistEnv


@dataclass
class Networks:
    """G and D on their device, and the modules the steps run through (DDP/compiled wrappers or G, D)."""

    G: nn.Module
    D: nn.Module
    G_step: nn.Module
    D_step: nn.Module
    speed: performance.SpeedPlan


def build_networks(
    cfg: Config, family: Family, info: DataInfo, device: torch.device, dist: DistEnv, log: Callable[[str], None]
) -> Networks:
    """Build G and D for ``info`` (the training set's facts), apply the speed plan and wrap them for DDP.

    With several processes the global RNG is reseeded per rank afterwards: the same initial weights
    everywhere (DDP broadcasts rank 0's), distinct noise per rank.
    """
    G, D = family.build(cfg, info, log=log)
    G, D = G.to(device), D.to(device)
    convolutional = any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in G.modules())
    speed = performance.plan(cfg.train, device, convolutional=convolutional)
    performance.apply(speed)
    for warning in speed.warnings:
        log(f"warning: {warning}")
    if speed.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    G_step = distributed.wrap(G, dist, device, sync_bn=cfg.train.sync_bn)
    D_step = distributed.wrap(D, dist, device, sync_bn=cfg.train.sync_bn)
    if speed.compile:
        G_step = torch.compile(G_step)
        D_step = torch.compile(D_step)
    if dist.enabled:
        torch.manual_seed(cfg.train.seed * 1_000 + dist.rank + 1)
    return Networks(G, D, G_step, D_step, speed)


@dataclass
class Optimizers:
    """Adam for G and D, their grad scalers (active with fp16 only) and the autocast dtype (None: fp32)."""

    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    scaler_G: torch.amp.GradScaler
    scaler_D: torch.amp.GradScaler
    autocast_dtype: torch.dtype | None


def build_optimizers(cfg: Config, G: nn.Module, D: nn.Module, device: torch.device, amp: str) -> Optimizers:
    """The optimizers of ``cfg.optim`` and the scalers of ``amp`` (none, bf16 or fp16)."""
    o = cfg.optim
    fused = device.type in ("cuda", "cpu")  # one kernel per step; 1.2-1.4x on the MLP GANs (CPU)
    return Optimizers(
        opt_G=torch.optim.Adam(G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2), fused=fused),
        opt_D=torch.optim.Adam(D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2), fused=fused),
        scaler_G=torch.amp.GradScaler(device.type, enabled=amp == "fp16"),
        scaler_D=torch.amp.GradScaler(device.type, enabled=amp == "fp16"),
        autocast_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp),
    )


def set_learning_rates(
    cfg: Config, epoch: int, optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer], *, scale: float = 1.0
) -> None:
    """The rates of G's and D's optimizers for ``epoch``: constant, then linear decay to 0 over
    ``optim.decay_epochs`` (pix2pix's 'linear' policy), times ``scale`` (lowered by on_nonfinite=skip)."""
    o = cfg.optim
    adv_epoch = epoch - cfg.train.pretrain_epochs
    factor = 1.0
    if o.decay_epochs > 0:
        factor = 1.0 - max(0, adv_epoch + 1 - cfg.train.epochs) / float(o.decay_epochs + 1)
    for opt, base in zip(optimizers, (o.lr_g, o.lr_d), strict=True):
        for group in opt.param_groups:
            group["lr"] = base * factor * scale


def build_sampler(cfg: Config, n: int, dist: DistEnv, log: Callable[[str], None]) -> EpochSampler:
    """The order of the ``n`` training items per epoch and rank; with fewer items than one batch over
    all processes, ``train.batch_size`` is lowered to fit (recorded in config.yaml)."""
    ws = dist.world_size
    if 0 < n < cfg.train.batch_size * ws and n >= ws:
        # a handful of photos: one smaller batch per step beats refusing to train
        log(
            f"warning: {n} training images is less than one batch of {cfg.train.batch_size} x {ws} "
            f"process(es); training with train.batch_size={n // ws} (recorded in config.yaml)"
        )
        cfg.train.batch_size = n // ws
    return EpochSampler(n, cfg.train.batch_size, cfg.train.seed, rank=dist.rank, world_size=ws)
