"""Everything distributed in one place: torchrun process groups, DDP wrapping, reductions.

Launched by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), gankit trains
data-parallel with one process per device; launched plainly, the same code runs with world size 1
and never touches ``torch.distributed``. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:  # not set by torchrun: a plain launch
        return default


def launch_env() -> DistEnv:
    """What torchrun told this process (RANK, WORLD_SIZE, LOCAL_RANK), readable before the process
    group exists; a plain launch is rank 0 of 1."""
    return DistEnv(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def launch_rank() -> int:
    """This process's rank as launched (0 without torchrun): only rank 0 reports and writes the run."""
    return launch_env().rank


def local_world_size() -> int:
    """Processes of this job on this node (torchrun's LOCAL_WORLD_SIZE, 1 without it): each loads the data."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1))


def launched_by_torchrun() -> bool:
    return launch_env().enabled


_wait_group: dist.ProcessGroup | None = None
"""A gloo group with a long timeout, used only by :func:`wait_for_main`."""


def init(device: torch.device, *, wait_minutes: float = 60.0) -> tuple[DistEnv, torch.device]:
    """Join the process group if launched by torchrun; returns the env and this process's device.

    ``wait_minutes`` bounds how long the other ranks wait in :func:`wait_for_main` while rank 0 alone
    does its end-of-epoch work; the training collectives keep the backend's default timeout.
    """
    global _wait_group
    if not launched_by_torchrun():
        return DistEnv(), device
    env = launch_env()
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    _wait_group = dist.new_group(backend="gloo", timeout=timedelta(minutes=wait_minutes))
    return env, device


def wait_for_main(env: DistEnv) -> None:
    """Hold every rank here until rank 0 arrives too (rank 0's samples, validation, evaluation).

    Without it the other ranks would block in the next training all-reduce, whose timeout (10 minutes
    for NCCL) a long ``eval_every`` evaluation can exceed, killing the job. This barrier runs on a
    separate gloo group whose timeout is ``train.dist_timeout_minutes``, and costs one tiny message.
    """
    if env.enabled:
        dist.barrier(group=_wait_group)


def shutdown() -> None:
    global _wait_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _wait_group = None


def wrap(model: nn.Module, env: DistEnv, device: torch.device, *, sync_bn: bool = False) -> nn.Module:
    """DDP-wrap ``model`` (optionally converting BatchNorm to SyncBatchNorm); identity for one process."""
    if not env.enabled:
        return model
    if sync_bn:
        if device.type != "cuda":  # SyncBatchNorm has GPU kernels only; DDP would fail with a traceback
            from gankit.config import ConfigError

            raise ConfigError(
                f"train.sync_bn: SyncBatchNorm runs on CUDA only, this run uses {device.type}; "
                "drop train.sync_bn (each process then normalizes with its own batch statistics)"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    # DDP's default syncs buffers from rank 0 at init and before every forward, which keeps BatchNorm
    # running statistics equal to rank 0's on every rank. The default is left implicit: torch 2.14
    # deprecates the `broadcast_buffers` argument (a FutureWarning per rank and model) in favour of
    # `forward_sync_buffers`, which torch < 2.14 does not know.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def mean_across(t: Tensor, env: DistEnv) -> Tensor:
    """All-reduce mean of a tensor (a no-op for one process)."""
    if env.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= env.world_size
    return t


def any_across(flag: bool, env: DistEnv, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (e.g. a stop signal seen by one process)."""
    if not env.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()
