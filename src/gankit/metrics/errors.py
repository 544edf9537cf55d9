"""Why a metric is skipped: the exceptions every metric module raises (no imports above them)."""

from __future__ import annotations


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (no weights, no classifier, wrong kind of model); it is skipped.

    ``fix``, when known, is the one thing the user can do about it (a command, a file to put somewhere).
    """

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class MissingWeightsError(MetricUnavailable):
    """Pretrained weights a metric needs are not on this machine (gankit never downloads them)."""


__all__ = ["MetricUnavailable", "MissingWeightsError"]
