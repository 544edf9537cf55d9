"""What a run shows while it trains: the progress bar, the rows of ``stats.jsonl`` and the epoch lines."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from gankit.errors import NonFiniteLoss
from gankit.formatting import rate
from gankit.training import distributed
from gankit.training.stats import StatsAccumulator


class Progress:
    """The bar (images seen of the run's total; only when stderr is a terminal and ``train.progress``),
    the stats rows (rank 0 writes them and hands them to the callbacks) and the one line per epoch."""

    def __init__(self, trainer: Any) -> None:
        self.tr = trainer
        self.images_per_step = trainer.cfg.train.batch_size * trainer.dist.world_size
        self.bar = tqdm(
            total=trainer.total_steps * self.images_per_step,
            initial=trainer.step * self.images_per_step,
            unit="img",
            dynamic_ncols=True,
            # None: only when stderr is a terminal (a piped or redirected run gets the per-epoch lines only)
            disable=None if (trainer.cfg.train.progress and trainer.is_main) else True,
            file=sys.stderr,
            smoothing=0.05,
        )
        self.acc = StatsAccumulator()

    @property
    def echo(self) -> Callable[[str], None]:
        """Where a line goes: above the bar when there is one, else the log."""
        return self.tr.log if self.bar.disable else self.bar.write

    def stats(self) -> dict[str, float]:
        """The losses since the last row, averaged over processes: checked, appended to ``stats.jsonl``
        (and handed to the callbacks' ``on_stats``), shown beside the bar."""
        tr = self.tr
        row = self.acc.flush(reduce=lambda t: distributed.mean_across(t, tr.dist))
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(
                f"step {tr.step}: {bad[0]} = {row[bad[0]]} (not finite); training stopped, "
                f"the last good checkpoint in {tr.run.checkpoints} is kept"
            )
        if tr.is_main:
            tr.run.stats_log.append({"step": tr.step, "epoch": tr.epoch_of(tr.position - 1) + 1, **row})
            for cb in tr.callbacks:
                cb.on_stats(tr, row)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("d_loss", "g_loss", "g_l1")})
        return row


def epoch_line(epoch: int, total_epochs: int, step: int, values: dict[str, float], timing: dict[str, Any]) -> str:
    """``epoch 3/10 step 1200: d_loss 0.6931 g_loss 0.6931 | 4.1 s, 2950 img/s``."""
    msg = " ".join(f"{k} {v:.4f}" for k, v in values.items())
    secs, imgs = timing.get("seconds"), timing.get("images")
    speed = f" | {secs:.1f} s, {rate(imgs / max(secs, 1e-9))} img/s" if secs is not None and imgs else ""
    return f"epoch {epoch + 1}/{total_epochs} step {step}: {msg}{speed}"
