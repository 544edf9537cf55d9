"""Speed settings: what ``train.fast``, ``train.channels_last``, ``train.compile``, ``train.amp`` and
``train.keep_memory`` turn into on the device at hand, and the process-wide switches behind them.

:func:`plan` is pure (config + device -> :class:`SpeedPlan`), so the decisions are testable;
:func:`apply` makes the process-wide changes. Measured effects are in BENCHMARKS.md.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from dataclasses import dataclass

import torch

from gankit.config import ConfigError, TrainConfig

# glibc's mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30
_TRIM_THRESHOLD = 2**31 - 1


@dataclass(frozen=True)
class SpeedPlan:
    """The speed options a run uses, resolved for one device."""

    channels_last: bool
    compile: bool
    amp: str  # none | bf16 | fp16
    tf32: bool  # CUDA: TF32 matmuls/convolutions and cuDNN autotuning
    keep_memory: bool  # CPU on glibc: no unmapping/remapping of freed memory between steps
    warnings: tuple[str, ...] = ()


def plan(t: TrainConfig, device: torch.device, *, convolutional: bool) -> SpeedPlan:
    """Resolve the speed options of ``t`` for ``device``.

    ``train.fast`` means channels_last (convolutional models) + torch.compile everywhere, and on CUDA
    also bf16 autocast (unless ``amp`` is set) and TF32. It never turns bf16 on for a CPU: without
    native bf16 instructions (AVX512-BF16/AMX) bf16 convolutions and matmuls are emulated, 3.5-17x
    slower per step on an AVX2 CPU (BENCHMARKS.md).
    """
    cuda = device.type == "cuda"
    amp = t.amp
    if amp == "fp16" and not cuda:
        raise ConfigError("train.amp=fp16 needs CUDA; use bf16 on CPU")
    if t.fast and cuda and amp == "none":
        amp = "bf16"
    warnings: list[str] = []
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.append(
            "train.amp=bf16 on a CPU without native bf16 instructions (AVX512-BF16/AMX): steps run several "
            "times slower than in fp32 (3.5-17x measured on AVX2); train.amp=none is the fast choice here"
        )
    return SpeedPlan(
        channels_last=(t.channels_last or t.fast) and convolutional,
        compile=t.compile or t.fast,
        amp=amp,
        tf32=t.fast and cuda,
        keep_memory=t.keep_memory and device.type == "cpu" and _is_glibc(),
        warnings=tuple(warnings),
    )


def apply(p: SpeedPlan) -> None:
    """The process-wide part of a plan (global flags; models and batches are the caller's)."""
    if p.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if p.keep_memory:
        keep_freed_memory()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), not by emulation."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process (no ``munmap`` of large blocks, no heap trimming).

    By default glibc serves every allocation over 128 KiB-32 MiB with its own ``mmap`` and returns it
    to the OS on ``free``. A training step allocates and frees the same activations and gradients
    every time, so each step maps fresh pages and takes one page fault per 4 KiB touched: about
    60,000 faults (240 MB) per pix2pix step at batch 1. With large blocks kept in the heap, steps
    after the first reuse the same memory. The price: the process keeps its peak memory (RSS) until
    it exits. Process-wide and permanent; returns whether it took effect (glibc only).
    """
    if not _is_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    trim_set = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    return bool(mmap_set) and bool(trim_set)
