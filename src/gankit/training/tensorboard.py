"""TensorBoard output of a run (``train.tensorboard``): scalars, sample grids and hyperparameters in ``RUN/tb/``
(:attr:`gankit.run.RunFolder.tensorboard`).

The loop calls this sink with what it already logs to stats.jsonl and metrics.jsonl, so the two
never disagree. On resume the writer purges events at or after the resumed step, so the curves
continue without duplicates. TensorBoard is an optional extra: ``pip install 'gankit[tensorboard]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gankit.config import Config, ConfigError

# where each logged key goes in TensorBoard's tag tree
_GROUPS = (("val_", "val/"), ("lr_", "lr/"), ("eval_", "eval/"))


def _tag(key: str) -> str:
    for prefix, group in _GROUPS:
        if key.startswith(prefix):
            return group + key[len(prefix) :]
    if key in ("seconds", "images_per_s"):
        return "speed/" + key
    return "loss/" + key


class TensorBoardSink:
    """Writes a run's curves and grids for TensorBoard (rank 0 only; the loop decides)."""

    def __init__(self, log_dir: Path, cfg: Config, *, resume_step: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "train.tensorboard needs the tensorboard package; install it with: pip install 'gankit[tensorboard]'"
            ) from None
        # purge_step drops events logged after the checkpoint we resume from (an interrupted tail)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=resume_step + 1 if resume_step else None)
        self.cfg = cfg

    def scalars(self, step: int, values: dict[str, float], *, skip: tuple[str, ...] = ("step", "epoch")) -> None:
        for key, value in values.items():
            if key not in skip and isinstance(value, (int, float)):
                self.writer.add_scalar(_tag(key), value, step)

    def image(self, step: int, tag: str, image: Image.Image) -> None:
        """A grid as saved to ``samples/`` (captions included)."""
        self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def hparams(self, final: dict[str, float]) -> None:
        """The run's main settings with its final metrics, for TensorBoard's HParams tab (same folder)."""
        from torch.utils.tensorboard.summary import hparams

        c = self.cfg
        params: dict[str, Any] = {
            "family": c.family,
            "preset": c.preset,
            "data": c.data.name,
            "batch_size": c.train.batch_size,
            "lr_g": c.optim.lr_g,
            "lr_d": c.optim.lr_d,
            "beta1": c.optim.beta1,
            "loss": c.loss.gan,
            "seed": c.train.seed,
        }
        metrics = {f"final/{k}": float(v) for k, v in final.items() if isinstance(v, (int, float))}
        exp, ssi, sei = hparams(params, metrics)
        fw = self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
