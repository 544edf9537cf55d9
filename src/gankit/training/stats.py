"""Training statistics: a jsonl stream, per-epoch metrics, and the loss-curve plot."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


class StatsAccumulator:
    """Sums scalar tensors on the device; :meth:`flush` syncs once per logging interval."""

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, stats: dict[str, Tensor]) -> None:
        for k, v in stats.items():
            v = v.detach().float()
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
            self._counts[k] = self._counts.get(k, 0) + 1

    def flush(self, reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
        """Means since the last flush; ``reduce`` (e.g. a mean over processes) sees the stacked sums."""
        if not self._sums:
            return {}
        keys = sorted(self._sums)
        stacked = torch.stack([self._sums[k] for k in keys])
        if reduce is not None:
            stacked = reduce(stacked)
        values = stacked.cpu().tolist()  # one host sync
        out = {k: v / self._counts[k] for k, v in zip(keys, values)}
        self._sums.clear()
        self._counts.clear()
        return out


class JsonlLog:
    """Append-only jsonl file. On resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: dict[str, Any]) -> None:
        """Append one row in one ``write`` (whole lines, even with another process appending too)."""
        data = (json.dumps(row) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # a line torn by a kill: start a new one
                    data = b"\n" + data
            os.write(fd, data)
        finally:
            os.close(fd)

    def truncate_after(self, step: int, *, warn: Callable[[str], None] | None = None) -> None:
        """Keep the rows up to ``step``; torn or garbage lines go too (``warn`` names them)."""
        if not self.path.exists():
            return
        rows = [r for r in read_jsonl(self.path, warn=warn) if r["step"] <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.path)


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def read_jsonl(path: str | Path, *, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The rows of a gankit jsonl file (objects with a numeric ``step``).

    Lines that are not such rows (a line torn by a kill, bytes damaged on disk) are skipped, and
    ``warn`` (default: stderr) gets one line naming the file, the first bad line and how many.
    """
    rows: list[dict[str, Any]] = []
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return rows
    bad: list[int] = []
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            row = None
        step = row.get("step") if isinstance(row, dict) else None
        if not isinstance(step, int | float) or isinstance(step, bool) or not math.isfinite(step):
            bad.append(number)
            continue
        rows.append(row)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        (warn or _warn_stderr)(
            f"warning: {p}, line {bad[0]}{more}: not a row of gankit's log (torn by a kill, or damaged); skipped"
        )
    return rows


LOWER_IS_BETTER = ("l1", "fid", "kid", "lpips", "loss")


FEW_POINTS = 20
"""Series shorter than this get a marker on every point: one logged point (a 2-3 step run) is no line."""


def _curve(ax, xs: list[float], ys: list[float], label: str) -> None:
    """Raw values faint, a moving average on top (when there are enough points)."""
    (line,) = ax.plot(xs, ys, alpha=0.3, linewidth=0.8, marker="o" if len(ys) < FEW_POINTS else "", ms=3)
    w = max(1, len(ys) // 50)
    if w > 1:
        smooth = [sum(ys[max(0, i - w + 1) : i + 1]) / len(ys[max(0, i - w + 1) : i + 1]) for i in range(len(ys))]
        ax.plot(xs, smooth, color=line.get_color(), label=label)
    else:
        line.set_alpha(1.0)
        line.set_label(label)


def loss_panels(keys: list[str]) -> list[list[str]]:
    """Group loss columns into panels whose scales are comparable.

    Image-to-image ``g_loss`` includes ``l1_weight`` x L1 (100x), so it gets a panel of its own
    instead of flattening ``d_loss``, ``g_adv`` and ``g_l1`` to a line at the bottom.
    """
    if "g_adv" in keys and "g_loss" in keys:
        return [[k for k in keys if k != "g_loss"], ["g_loss"]]
    return [keys]


def plot_losses(stats_path: Path, out_png: Path, title: str = "", *, metrics_path: Path | None = None) -> None:
    """Plot the loss columns of ``stats.jsonl`` against the step (raw and smoothed), one panel per
    scale, and the validation metrics of ``metrics.jsonl`` (``val_*``) in a panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gankit.charts import fit_titles, tidy_step_axes

    rows = read_jsonl(stats_path)
    if not rows:
        return
    keys = [k for k in rows[-1] if k.endswith("loss") or k in ("g_l1", "g_adv", "gp")]
    panels = loss_panels(keys)
    mrows = read_jsonl(metrics_path) if metrics_path is not None else []
    val_keys = sorted({k for r in mrows for k in r if k.startswith("val_")})
    n = len(panels) + len(val_keys)
    cols = min(n, 3)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.5 * cols, 3.8 * nrows), dpi=100, squeeze=False)
    flat = list(axes.flat)
    for ax, panel in zip(flat, panels):
        for k in panel:
            pts = [(r["step"], r[k]) for r in rows if k in r and math.isfinite(r[k])]
            if pts:
                xs, ys = zip(*pts)
                _curve(ax, list(xs), list(ys), k)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax, k in zip(flat[len(panels) :], val_keys):
        pts = [(r["step"], r[k]) for r in mrows if k in r and math.isfinite(r[k])]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", markersize=3)
        better = "lower" if any(t in k for t in LOWER_IS_BETTER) else "higher"
        ax.set_title(f"{k} ({better} is better)", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in flat[:n]:
        tidy_step_axes(ax)
    for ax in flat[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fit_titles(fig)
    tmp = out_png.with_name(".tmp_" + out_png.name)
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(out_png)
