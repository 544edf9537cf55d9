"""Small finishing touches shared by gankit's matplotlib charts (``loss.png``, the report's panels),
and numbers rounded as the charts and the report show them.

Charts plot values against the training step. Two things matplotlib's defaults get wrong there:
steps are whole numbers (a run logged at step 2 gets ticks 1.900 ... 2.100), and a panel whose
series are single points (a 2-3 step run) gets a tick every 0.5 around a value, which suggests a
spread that is not there. A long title is also not wrapped, so it runs past the figure's edges.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

from gankit.formatting import significant  # noqa: F401  (the report formats its numbers with it)

CLOSE_TICKS = 0.08
"""Two single-point values closer than this fraction of the y range share one tick (the first)."""


def _data_lines(ax: Any) -> list[tuple[list[float], list[float]]]:
    """The finite points of each plotted series (not the caps of error bars)."""
    out = []
    for line in ax.get_lines():
        if line.get_marker() in ("_", "|") and line.get_linestyle() in ("None", "none", ""):
            continue  # an error bar's caps
        pts = [
            (float(x), float(y))
            for x, y in zip(line.get_xdata(), line.get_ydata())
            if math.isfinite(float(x)) and math.isfinite(float(y))
        ]
        if pts:
            out.append(([p[0] for p in pts], [p[1] for p in pts]))
    return out


def tidy_step_axes(ax: Any) -> None:
    """Whole-number step ticks on x; when every series of ``ax`` is one point, its values are the y ticks.

    Call after plotting; the axis limits are matplotlib's.
    """
    from matplotlib.ticker import FixedFormatter, MaxNLocator

    lines = _data_lines(ax)
    if not lines:
        return
    steps = sorted({x for xs, _ in lines for x in xs})
    if len(steps) == 1:
        ax.set_xticks(steps)  # MaxNLocator(integer=True) falls back to fractions on a range below 1
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if all(len(xs) == 1 for xs, _ in lines):
        lo, hi = ax.get_ylim()
        ticks: list[float] = []
        for y in sorted(ys[0] for _, ys in lines):
            if not ticks or y - ticks[-1] > CLOSE_TICKS * (hi - lo):
                ticks.append(y)
        ax.set_yticks(ticks)
        ax.yaxis.set_major_formatter(FixedFormatter([f"{t:.4g}" for t in ticks]))
        ax.set_ylim(lo, hi)


def _balanced(line: str, width: int) -> str:
    """``line`` wrapped at ``width`` characters into lines of similar length (not one long and one stub)."""
    n = len(textwrap.wrap(line, width))
    for w in range(-(-len(line) // n), width + 1):
        if len(lines := textwrap.wrap(line, w)) <= n:
            return "\n".join(lines)
    return textwrap.fill(line, width)


def fit_titles(fig: Any, margin: float = 3.0) -> None:
    """Lay out ``fig`` (tight_layout) with every axes title inside the figure: wrapped when wider than
    the figure, else moved off its axes' centre as far as the figure's edge needs (``margin`` pixels)."""
    renderer = fig.canvas.get_renderer()
    room = fig.bbox.width - 2 * margin
    for ax in fig.axes:
        title = ax.title
        text = title.get_text()
        width = max((len(line) for line in text.splitlines()), default=0)
        while width > 12 and title.get_window_extent(renderer).width > room:
            width -= max(1, width // 10)
            title.set_text("\n".join(_balanced(line, width) for line in text.splitlines()))
    fig.tight_layout()
    for ax in fig.axes:
        box = ax.title.get_window_extent(renderer)
        shift = max(0.0, fig.bbox.x0 + margin - box.x0) + min(0.0, fig.bbox.x1 - margin - box.x1)
        if shift:  # a title centred over axes pushed right by their tick labels
            ax.title.set_x(ax.title.get_position()[0] + shift / ax.bbox.width)
