"""Turning a ``--device`` string into a ``torch.device`` this machine has."""

from __future__ import annotations

import re

import torch

from gankit.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device this machine has (else a ConfigError)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigError(f"--device {name}: not a device gankit can use; use auto, cpu, cuda or cuda:N")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is not None and torch.cuda.is_available():
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return dev
