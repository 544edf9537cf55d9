"""Drawing ``eval.jsonl`` metrics over training steps, shared by ``RUN/metrics.png`` and ``gankit report``.

Numbers computed with different domain classifiers, or from different numbers of samples ``n``,
are not comparable (FID is biased upwards at small ``n``; a 67% classifier gave fid_clf 16 where
the shipped 91% one gave 342), so each panel draws one labelled series per (classifier, n), never
a line joining them. A classifier is told apart by its sha256 when the row records it, else by
its path; metrics that do not use a classifier (Inception FID, L1, ...) are split by ``n`` alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gankit.metrics import better, metric_of

Point = tuple[float, float, float]
"""(step, value, std) of one evaluation."""


def _uses_classifier(key: str) -> bool:
    m = metric_of(key)
    return m is not None and m.uses_classifier


def series_key(row: dict[str, Any], key: str) -> tuple[str, Any]:
    """What must be equal for two rows' ``key`` to be joined: the classifier (for its metrics) and ``n``."""
    clf = str(row.get("classifier_sha256") or row.get("classifier") or "") if _uses_classifier(key) else ""
    return clf, row.get("n")


def series_label(row: dict[str, Any], key: str) -> str:
    """Legend label of the series ``row`` belongs to, e.g. ``n=10000, fashion-mnist.pt (shipped, acc 0.914)``."""
    parts = [f"n={row['n']}"] if "n" in row else []
    if _uses_classifier(key) and row.get("classifier"):
        about = [str(row["classifier_source"])] if row.get("classifier_source") else []
        if isinstance(row.get("classifier_accuracy"), int | float):
            about.append(f"acc {row['classifier_accuracy']:.3f}")
        name = Path(str(row["classifier"])).name
        parts.append(f"{name} ({', '.join(about)})" if about else name)
    return ", ".join(parts)


def split_series(rows: Iterable[dict[str, Any]], key: str) -> list[tuple[str, list[Point]]]:
    """The finite values of ``key`` as ``(label, points sorted by step)`` per (classifier, n), in first-seen order."""
    groups: dict[tuple[str, Any], tuple[str, list[Point]]] = {}
    for r in rows:
        v = r.get(key)
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            continue
        std = r.get(f"{key}_std", 0.0)
        point = (float(r.get("step", 0)), float(v), float(std) if isinstance(std, int | float) else 0.0)
        groups.setdefault(series_key(r, key), (series_label(r, key), []))[1].append(point)
    return [(label, sorted(points)) for label, points in groups.values()]


def panel_title(key: str) -> str:
    """``fid_clf (lower is better)``: the direction comes from the metric's registry record."""
    return f"{key} ({better(key)})"


def tidy_ticks(ax: Any, xs: Sequence[float], ys: Sequence[float], stds: Sequence[float] = ()) -> None:
    """Integer step ticks (at the evaluated steps when there are few); one value (one point, or a flat line)
    gets one tick at it, with a small symmetric margin (matplotlib would spread 28.5 ... 31.5 around a single 30)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if 1 < len(set(xs)) <= 6:  # a few evaluations: a tick at each one's step
        ax.set_xticks(sorted(set(xs)))
    if xs and min(xs) == max(xs):
        x = xs[0]
        ax.set_xlim(x - max(1.0, abs(x) * 0.05), x + max(1.0, abs(x) * 0.05))
        ax.set_xticks([x])
    if ys and min(ys) == max(ys):
        y = ys[0]
        margin = max(abs(y) * 0.05 or 0.05, 1.2 * max(stds, default=0.0))  # keep error bars inside
        ax.set_ylim(y - margin, y + margin)
        ax.set_yticks([y])


def draw_panel(ax: Any, rows: list[dict[str, Any]], keys: list[str]) -> int:
    """Draw ``keys`` of ``rows`` on ``ax``: one labelled series per key and (classifier, n), with
    ``KEY_std`` error bars where present, direction-aware ticks; returns the number of series drawn."""
    xs: list[float] = []
    ys: list[float] = []
    es: list[float] = []
    drawn = 0
    for key in keys:
        for label, points in split_series(rows, key):
            steps, values, stds = zip(*points, strict=True)
            name = f"{key}, {label}" if len(keys) > 1 else label
            if any(stds):
                ax.errorbar(steps, values, yerr=stds, marker="o", ms=3, capsize=2, label=name or key)
            else:
                ax.plot(steps, values, marker="o", ms=3, label=name or key)
            xs += steps
            ys += values
            es += stds
            drawn += 1
    tidy_ticks(ax, xs, ys, es)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


__all__ = ["draw_panel", "panel_title", "series_key", "series_label", "split_series", "tidy_ticks"]
