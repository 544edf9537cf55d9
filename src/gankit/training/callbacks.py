"""The work around the training steps, handed to the loop as callbacks (Lightning's callbacks, EDM's
``progress`` reporting): sample grids, validation, the metrics row, snapshots, the loss plot, TensorBoard,
and the warning when D wins outright (:class:`DiscriminatorWins`).

The :class:`~gankit.training.loop.Trainer` calls every hook on rank 0 only, in list order:

* :meth:`Callback.on_start`: the Trainer is built (a resumed one holds its state), nothing trained yet;
* :meth:`Callback.on_stats`: a row was appended to ``stats.jsonl``;
* :meth:`Callback.on_epoch_end`: an epoch (or the run) ended. The generator is in the run's sampling
  mode (``train.sampling``: standing statistics recomputed once, for the grid, validation and the
  snapshots alike; :meth:`~gankit.training.state.TrainingState.sampling_generator`) and the RNGs
  are forked, so nothing here changes the training; callbacks pass what they made to the ones
  after them through the :class:`EpochEnd`. The Trainer saves its full state after the last one,
  which records the work as done (a run stopped before that does it on ``--resume``);
* :meth:`Callback.on_fit_end`: :meth:`~gankit.training.loop.Trainer.fit` returns.

:func:`default_callbacks` is what a run does at an epoch's end; :func:`gankit.launch.train` adds the
periodic evaluation (``train.eval_every``), which needs the evaluation tools this package may not import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch import Tensor, nn

from gankit.config import Config
from gankit.data.base import DataInfo, TrainSet
from gankit.objectives import NoiseToImage, Objective
from gankit.run import BEST_KEY, RunFolder, better_than_best
from gankit.training.stats import plot_losses
from gankit.visualize import paired_triplets, save_grid, to_display


class TrainerView(Protocol):
    """What callbacks may use of the Trainer."""

    cfg: Config
    run: RunFolder
    info: DataInfo
    objective: Objective
    val_data: TrainSet | None
    device: torch.device
    step: int
    total_epochs: int
    best: dict[str, float]
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    log: Callable[[str], None]

    @property
    def generator(self) -> nn.Module: ...

    def autocast(self) -> AbstractContextManager[Any]: ...

    def save_snapshots(self, paths: list[Path]) -> None: ...

    def sampling_generator(self) -> AbstractContextManager[nn.Module]: ...


@dataclass
class EpochEnd:
    """One epoch's end (or the run's, when it ends mid-epoch), and what the callbacks made of it."""

    epoch: int
    """0-based."""
    final: bool
    """The run ended before the epoch did."""
    step: int
    seconds: float | None = None
    """Wall time of the epoch (None for work redone after a resume)."""
    images: int | None = None
    grid: Image.Image | None = None
    """The sample grid as saved (captions included)."""
    val: dict[str, float] = field(default_factory=dict)
    """Validation numbers (``val_l1``, ...)."""
    row: dict[str, Any] = field(default_factory=dict)
    """The row appended to ``metrics.jsonl``."""
    evals: dict[str, float] = field(default_factory=dict)
    """Periodic evaluation results."""


class Callback:
    """Work handed to the loop; every hook is optional (rank 0 only)."""

    def on_start(self, trainer: TrainerView) -> None:
        """The Trainer is built; nothing is trained yet in this process."""

    def on_stats(self, trainer: TrainerView, row: dict[str, float]) -> None:
        """``row`` (losses averaged since the last row) was logged at ``trainer.step``."""

    def on_epoch_end(self, trainer: TrainerView, end: EpochEnd) -> None:
        """An epoch's (or the run's) end; the generator is in its sampling mode, the RNGs are forked."""

    def on_fit_end(self, trainer: TrainerView, final: dict[str, float] | None) -> None:
        """:meth:`fit` returns; ``final`` holds the last losses and validation numbers when it trained."""


class SampleGrid(Callback):
    """``samples/epoch_NNNN.png`` (``step_NNNNNNN.png`` for a run that ends mid-epoch): the generator on
    fixed inputs (noise from its own generator, one column per class; or the first val pairs)."""

    def __init__(self) -> None:
        self._fixed: dict[str, Tensor] | None = None

    def _fixed_inputs(self, tr: TrainerView) -> dict[str, Tensor]:
        if self._fixed is None:
            n = tr.cfg.train.n_samples
            if isinstance(tr.objective, NoiseToImage):
                g = torch.Generator().manual_seed(tr.cfg.train.seed + 12345)
                self._fixed = {"z": torch.randn(n, tr.cfg.model.z_dim, generator=g).to(tr.device)}
                if tr.objective.num_classes:
                    self._fixed["label"] = (torch.arange(n) % tr.objective.num_classes).to(tr.device)
            else:
                assert tr.val_data is not None
                idx = torch.arange(min(n, len(tr.val_data)))
                self._fixed = dict(tr.val_data.batch(idx, device=tr.device, generator=None))
        return self._fixed

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        fixed, G = self._fixed_inputs(tr), tr.generator
        caption = f"{tr.cfg.preset}: epoch {end.epoch + 1}, step {end.step}"
        path = tr.run.grid(end.epoch, final=end.final, step=end.step)
        if isinstance(tr.objective, NoiseToImage):
            fake = G(fixed["z"], fixed.get("label"))
            k = tr.objective.num_classes
            nrow = k or int(math.sqrt(len(fake))) or 1
            columns = (tr.info.class_names[:k] or [str(i) for i in range(k)]) if k else None
            end.grid = save_grid(to_display(fake), path, nrow=nrow, caption=caption, column_labels=columns)
        else:
            grid = paired_triplets(fixed["input"], G(fixed["input"]), fixed["target"], tr.info.space)
            end.grid = save_grid(grid, path, nrow=3, caption=caption, column_labels=["input", "output", "target"])


def validate(tr: TrainerView) -> dict[str, float]:
    """L1 (model range), PSNR and SSIM (on RGB in [0, 1]) of the generator over the validation split."""
    from gankit.metrics.paired import PairedMetrics

    assert tr.val_data is not None
    G, metrics = tr.generator, PairedMetrics(space=tr.info.space)
    bs = max(1, min(16, tr.cfg.train.batch_size * 4))
    for start in range(0, len(tr.val_data), bs):
        idx = torch.arange(start, min(start + bs, len(tr.val_data)))
        b = tr.val_data.batch(idx, device=tr.device, generator=None)
        with tr.autocast():
            out = G(b["input"])
        metrics.update(b["input"], out.float(), b["target"])
    return {f"val_{k}": v for k, v in metrics.compute().items()}


class Validation(Callback):
    """Image-to-image runs: :func:`validate`; a better ``val_l1`` than any before writes ``G_best.pt``."""

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        if tr.val_data is None:
            return
        end.val = validate(tr)
        if better_than_best(end.val, tr.best):
            tr.best = {BEST_KEY: end.val[BEST_KEY], "step": end.step}
            tr.save_snapshots([tr.run.g_best])


class MetricsRow(Callback):
    """The epoch's row of ``metrics.jsonl``: step, epoch, speed and the validation numbers."""

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        row: dict[str, Any] = {"step": end.step, "epoch": end.epoch + 1}
        if end.seconds is not None and end.images:
            row.update(seconds=round(end.seconds, 3), images_per_s=round(end.images / max(end.seconds, 1e-9), 1))
        row.update(end.val)
        tr.run.metrics_log.append(row)
        end.row = row


class Snapshots(Callback):
    """``G_last.pt`` and the per-epoch snapshots due (:meth:`RunFolder.snapshots_due`); old ones pruned."""

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        tr.save_snapshots(tr.run.snapshots_due(end.epoch, tr.total_epochs, final=end.final))
        tr.run.prune_snapshots(tr.cfg.train.keep_snapshots)


class LossPlot(Callback):
    """``loss.png``: the losses of ``stats.jsonl`` and the validation numbers of ``metrics.jsonl``."""

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        run = tr.run
        plot_losses(run.stats, run.loss_plot, title=f"{tr.cfg.preset} losses", metrics_path=run.metrics)


class TensorBoard(Callback):
    """``train.tensorboard``: the stats rows (with learning rates), grids, metrics rows, evaluations and
    the final numbers as hparams, in ``RUN/tb/`` (:class:`~gankit.training.tensorboard.TensorBoardSink`)."""

    def __init__(self) -> None:
        self.sink: Any = None

    def on_start(self, tr: TrainerView) -> None:
        from gankit.training.tensorboard import TensorBoardSink

        self.sink = TensorBoardSink(tr.run.tensorboard, tr.cfg, resume_step=tr.step)

    def on_stats(self, tr: TrainerView, row: dict[str, float]) -> None:
        lrs = {"lr_g": tr.opt_G.param_groups[0]["lr"], "lr_d": tr.opt_D.param_groups[0]["lr"]}
        self.sink.scalars(tr.step, {**row, **lrs})

    def on_epoch_end(self, tr: TrainerView, end: EpochEnd) -> None:
        if end.grid is not None:
            self.sink.image(end.step, "samples", end.grid)
        self.sink.scalars(end.step, end.row)
        if end.evals:
            self.sink.scalars(end.step, {f"eval_{k}": v for k, v in end.evals.items()})

    def on_fit_end(self, tr: TrainerView, final: dict[str, float] | None) -> None:
        if self.sink is None:
            return
        if final is not None:
            self.sink.hparams(final)
        self.sink.close()
        self.sink = None


class DiscriminatorWins(Callback):
    """One warning in the log when D wins outright, naming the options that help (pytorch/examples #822,
    "Loss_D goes to 0"): G then gets almost no gradient and stops improving, and nothing else says so.

    D wins when its adversarial loss (``d_loss`` over ``loss.d_scale``) stays below ``threshold`` in every
    stats row for at least ``min_steps`` steps. The rule has a meaning for losses whose floor is 0 and
    whose healthy values are far above it (vanilla ~1-1.4, lsgan ~0.3-0.5, hinge ~1-2); wgan-gp's
    critic loss is unbounded and gets no warning. After a warning the next one waits ``repeat_steps``.
    """

    LOSSES = ("vanilla", "lsgan", "hinge")

    def __init__(self, threshold: float = 0.05, min_steps: int = 200, repeat_steps: int = 5000) -> None:
        self.threshold, self.min_steps, self.repeat_steps = threshold, min_steps, repeat_steps
        self._last_step: int | None = None
        """The step of the previous row: a row averages the steps since it."""
        self._since: int | None = None
        """Where the current run of winning rows began (None: the last row was not one)."""
        self._warned: int | None = None

    def on_stats(self, tr: TrainerView, row: dict[str, float]) -> None:
        last, self._last_step = self._last_step, tr.step
        if tr.cfg.loss.gan not in self.LOSSES or "d_loss" not in row:
            return
        loss = row["d_loss"] / (tr.cfg.loss.d_scale or 1.0)
        if loss >= self.threshold:
            self._since = None
            return
        if self._since is None:
            self._since = last if last is not None else max(0, tr.step - tr.cfg.train.log_every)
        if tr.step - self._since < self.min_steps:
            return
        if self._warned is not None and tr.step - self._warned < self.repeat_steps:
            return
        self._warned = tr.step
        tr.log(self.message(tr, loss, row))

    def message(self, tr: TrainerView, loss: float, row: dict[str, float]) -> str:
        """The warning: what was seen, and the options to try."""
        logits = f"; mean logits real {row['d_real']:+.1f}, fake {row['d_fake']:+.1f}" if "d_real" in row else ""
        lower = tr.cfg.optim.lr_d / 4
        return (
            f"warning: D is winning outright: its loss stayed below {self.threshold:g} for the last "
            f"{tr.step - (self._since or 0)} steps (now {loss:.4f}{logits}), so G gets little gradient. "
            f"Try --set loss.r1_gamma=10 (R1 penalty on reals), --set model.d_spectral_norm=true, "
            f"a lower D rate (TTUR: --set optim.lr_d={lower:g}), or on small data --set train.augment=diffaug "
            f"(or train.augment=ada), and see README, 'When D wins'"
        )


def run_epoch_end(callbacks: Sequence[Callback], trainer: TrainerView, end: EpochEnd) -> None:
    """Each callback's :meth:`~Callback.on_epoch_end`, in order, with the generator in the run's sampling
    mode (its buffers and flags restored after) and the RNGs forked: nothing here changes the
    training, so the work gives the same files whether it runs at the epoch's end or after a resume."""
    with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda" else []):
        with trainer.sampling_generator():
            for cb in callbacks:
                cb.on_epoch_end(trainer, end)


def default_callbacks(cfg: Config, *, evaluation: Sequence[Callback] = ()) -> list[Callback]:
    """The end-of-epoch work of a run, in order; ``evaluation`` runs after the snapshots it scores."""
    callbacks: list[Callback] = [
        DiscriminatorWins(),
        SampleGrid(),
        Validation(),
        MetricsRow(),
        Snapshots(),
        LossPlot(),
        *evaluation,
    ]
    if cfg.train.tensorboard:
        callbacks.append(TensorBoard())  # last: it logs what the others made
    return callbacks
