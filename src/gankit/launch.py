"""A training run put together: the :class:`~gankit.training.loop.Trainer` with its end-of-epoch
callbacks, including the periodic evaluation (``train.eval_every``) that the training package
cannot import (it needs :mod:`gankit.evaluate`, which scores snapshots with the metrics).

``gankit train`` and ``gankit.train`` call :func:`train`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gankit.config import Config
from gankit.run import RunFolder, RunFolderBusy
from gankit.training import distributed
from gankit.training.callbacks import Callback, EpochEnd, TrainerView, default_callbacks
from gankit.training.loop import Trainer, TrainResult

__all__ = ["PeriodicEval", "TrainResult", "Trainer", "train", "training_callbacks"]


class PeriodicEval(Callback):
    """``train.eval_every``: score the ``G_last.pt`` just written every that many epochs and at the
    run's end (``eval.jsonl`` and ``metrics.png``, as ``gankit eval`` writes them)."""

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        from gankit.evaluate import evaluate, plot_metrics

        t = tr.cfg.train
        if not t.eval_every or ((end.epoch + 1) % t.eval_every and not end.final):
            return
        try:
            end.evals = evaluate(
                tr.run.g_last,
                metrics=t.eval_metrics or None,
                n=t.eval_n,
                device=str(tr.device),
                seed=t.seed,
                engine="torch",  # a new snapshot every time: an ONNX export would cost more than it saves
                log=tr.log,
            )
        except ValueError as e:  # no metric computable here (DataError, ConfigError, ...): training goes on
            tr.log(f"warning: eval_every: {str(e).splitlines()[0]}")
            return
        plot_metrics(tr.run.path)


def training_callbacks(cfg: Config) -> list[Callback]:
    """Everything a run does around its steps: the training package's callbacks plus periodic evaluation."""
    return default_callbacks(cfg, evaluation=[PeriodicEval()])


def train(
    cfg: Config,
    out_dir: str | Path,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    callbacks: Sequence[Callback] | None = None,
) -> TrainResult:
    """Train ``cfg`` into the run folder ``out_dir`` (see :class:`Trainer`); under torchrun, one call per process.

    ``callbacks`` replaces :func:`training_callbacks`. A run that fails before its first saved
    state leaves no folder behind when this call created it.
    """
    run = RunFolder(out_dir)
    created = not run.path.exists() and distributed.launch_rank() == 0
    try:
        try:
            trainer = Trainer(
                cfg,
                run.path,
                resume=resume,
                log=log,
                callbacks=training_callbacks(cfg) if callbacks is None else callbacks,
            )
        except RunFolderBusy:
            raise  # the folder is the other process's, even one it created a moment ago
        except BaseException:
            if created:
                run.remove_if_unstarted()
            raise
        return trainer.fit()
    finally:
        distributed.shutdown()
