"""How sizes and settings read in messages, listings and logs: one spelling for every command (no torch import)."""

from __future__ import annotations

import math
from typing import Protocol


class Spelling(Protocol):
    """How a message names a setting the caller chose: :func:`keyword` for Python callers; the CLI
    passes its own (``gankit.cli.flag``), so the same check says ``--max-side 0`` on the command line."""

    def __call__(self, name: str, value: object = None) -> str: ...


def keyword(name: str, value: object = None) -> str:
    """``keyword("quality")`` -> ``"quality"``; ``keyword("quality", 500)`` -> ``"quality=500"``;
    strings are quoted (``strategy='tile'``), as they are typed in Python."""
    if value is None:
        return name
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"


def human_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as ``df -H`` and file managers show them)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def data_source(source: str, given: str = "") -> str:
    """Where a run's data came from, for people: ``"GIVEN (data in SOURCE)"`` when the folder the user
    passed is not the one read (CMP facades built into aligned pairs in the cache), else ``SOURCE``."""
    return f"{given} (data in {source})" if given and given != source else source


def image_size(width: int, height: int) -> str:
    """``"1024x543"``: width x height, as image viewers, PIL's ``Image.size`` and ``identify`` say it."""
    return f"{width}x{height}"


def significant(x: float, digits: int = 2) -> str:
    """``x`` rounded to ``digits`` significant digits, without exponent: 0.5 -> "0.50", 1234 -> "1,200".

    For rates such as images per second, where a slow run's 0.5 must not read as 0.
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    exponent = math.floor(math.log10(abs(x)))
    rounded = round(x, digits - 1 - exponent)
    exponent = math.floor(math.log10(abs(rounded)))  # 9.96 rounds up to 10
    return f"{rounded:,.{max(0, digits - 1 - exponent)}f}"


def rate(x: float) -> str:
    """A throughput for a log line: whole numbers from 10 up (``2950``), two significant digits below
    (``0.90``), so a slow run's rate never reads as 0."""
    return f"{x:.0f}" if x >= 10 else significant(x)
