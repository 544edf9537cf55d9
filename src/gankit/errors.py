"""Exceptions that end a command with a clear one-line message, and the exit codes of every command.

Kept import-light: the CLI reads :data:`EXIT_CODES` before torch is loaded.
"""

from __future__ import annotations

import signal
from enum import IntEnum


class ExitCode(IntEnum):
    """What ``gankit COMMAND`` returns; the same for every command (README, "Exit codes")."""

    OK = 0
    ERROR = 1
    """An input cannot be used (a missing or unreadable file, folder, dataset or checkpoint), or the
    command could not do its job (eval: no metric computed; export: ONNX differs from PyTorch)."""
    USAGE = 2
    """The command line cannot be carried out as given: an unknown or invalid option or value,
    conflicting options, a refused config change, an output that exists without ``--overwrite``, or
    an optional package the command needs that is not installed (the message says what to install)."""
    INTERRUPTED = 128 + signal.SIGINT
    """Ctrl-C (SIGINT); train saves its state first."""
    BROKEN_PIPE = 128 + signal.SIGPIPE
    """stdout was closed by its reader (``gankit cache | head -1``): a quiet exit, as other Unix tools."""
    TERMINATED = 128 + signal.SIGTERM
    """SIGTERM; train saves its state first."""


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the state has been saved."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class MissingExtra(ValueError):
    """An optional package the command needs is not installed; the message names the ``pip install``
    (exit code 2: the command cannot be carried out in this installation as given)."""


class OutputExists(ValueError):
    """An output file or run folder exists and ``--overwrite`` was not given (exit code 2, as any
    command line that cannot be carried out as given). Modules with their own error class raise a
    subclass of both, so ``except ExportError`` still catches it."""
