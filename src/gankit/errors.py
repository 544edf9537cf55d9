"""Exceptions that end a run with a clear one-line message (kept import-light for the CLI)."""

from __future__ import annotations

import signal


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the state has been saved."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
