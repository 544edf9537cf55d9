"""How sizes and settings read in messages, listings and logs: one spelling for every command (no torch import)."""

from __future__ import annotations

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
