"""Speed settings: what ``train.fast``, ``train.channels_last``, ``train.compile``, ``train.amp`` and
``train.keep_memory`` turn into on the device at hand, and the process-wide switches behind them.

:func:`plan` is pure (config + device -> :class:`SpeedPlan`), so the decisions are testable;
:func:`apply` makes the process-wide changes. Measured effects are in BENCHMARKS.md.
"""

from __future__ import annotations

import ctypes
import functools
import logging
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


FAST_ON_CPU = (
    "--fast (train.fast) changes nothing on CPU: torch.compile and channels_last made no step faster there "
    "(MLP GANs 0.8-0.95x, DCGAN within noise, U-Net 0.85x, after 10-70 s of compiling; BENCHMARKS.md), so this run "
    "trains as without it; --set train.compile=true or train.channels_last=true still turn them on"
)
"""The one line a CPU run with ``train.fast`` logs (as a warning: the user asked for speed it cannot get)."""


def plan(t: TrainConfig, device: torch.device, *, convolutional: bool) -> SpeedPlan:
    """Resolve the speed options of ``t`` for ``device``.

    ``train.fast`` means, on CUDA, channels_last (convolutional models) + torch.compile + bf16 autocast
    (unless ``amp`` is set) + TF32; on other GPUs channels_last + torch.compile. On a CPU it adds
    nothing and says so (:data:`FAST_ON_CPU`): measured there, torch.compile was slower on the MLPs,
    within noise on DCGAN and slower on the U-Net after 10-70 s of compiling, channels_last slower on
    the U-Net (the DCGAN presets already train in it), and bf16 without native instructions
    (AVX512-BF16/AMX) is emulated, 3.5-17x slower per step on an AVX2 CPU (BENCHMARKS.md). The
    explicit ``train.compile`` / ``train.channels_last`` still apply on a CPU.
    """
    cuda = device.type == "cuda"
    amp = t.amp
    if amp == "fp16" and not cuda:
        raise ConfigError("train.amp=fp16 needs CUDA; use bf16 on CPU")
    if t.fast and cuda and amp == "none":
        amp = "bf16"
    warnings: list[str] = []
    fast = t.fast and device.type != "cpu"
    if t.fast and not fast:
        warnings.append(FAST_ON_CPU)
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.append(
            "train.amp=bf16 on a CPU without native bf16 instructions (AVX512-BF16/AMX): steps run several "
            "times slower than in fp32 (3.5-17x measured on AVX2); train.amp=none is the fast choice here"
        )
    return SpeedPlan(
        channels_last=(t.channels_last or fast) and convolutional,
        compile=t.compile or fast,
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
    if p.compile:
        quiet_cuda_probe()


def _not_cuda_probe(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("No CUDA runtime is found")


@functools.cache
def quiet_cuda_probe() -> None:
    """Drop torch's "No CUDA runtime is found, using CUDA_HOME=..." log line.

    Inductor imports ``torch.utils.cpp_extension`` on the first compiled call, which logs that line
    whenever a CUDA toolkit folder exists on a machine without a usable GPU: true, and irrelevant to
    a CPU run. Only that message of that logger is filtered; everything else it logs still shows.
    """
    logging.getLogger("torch.utils.cpp_extension").addFilter(_not_cuda_probe)


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
