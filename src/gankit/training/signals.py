"""Stopping a run cleanly: the first SIGINT/SIGTERM becomes a flag the loop checks after each step."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignals:
    """Turns the first SIGINT/SIGTERM into :attr:`signum`; a second one stops at once (KeyboardInterrupt).

    The loop checks the flag after each step, saves the state and ends, so an interrupted run can
    be resumed where it stopped. Only the main thread can take signals; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
