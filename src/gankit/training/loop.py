"""The one training loop for every family: data -> objective -> backward/optimizer/AMP/DDP -> stats -> checkpoints.

The :mod:`objective <gankit.objectives>` only computes losses; the :class:`~gankit.run.RunFolder` owns
the files; the work at an epoch's end (grids, validation, snapshots, plots, evaluation, TensorBoard)
is handed in as :mod:`callbacks <gankit.training.callbacks>`. One loop step is one discriminator step;
the generator steps every ``loss.n_critic`` loop steps (the PyTorch DCGAN recipe with ``n_critic = 1``).

Data order, augmentation and noise depend only on the seed and the step, and the full state (every
RNG included) is checkpointed, so a run resumed with ``--resume`` produces the same weights as an
uninterrupted one (bitwise on CPU). A *step* is one update, counted the same way everywhere
(``--max-steps``, the log, stats.jsonl, file names) whatever the batch size or number of processes;
the position in the data (:attr:`Trainer.position`) is kept apart from it. The end-of-epoch work is
recorded as done in the saved state, so a run stopped before it finished does it on ``--resume``.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.augment import AdaptiveAugment, step_generator
from gankit.config import Config
from gankit.data import build_dataset
from gankit.data.base import Batch
from gankit.data.feed import batches
from gankit.devices import resolve_device
from gankit.errors import NonFiniteLoss
from gankit.families import get_family
from gankit.objectives import ImageToImage, build_objective
from gankit.run import RunFolder
from gankit.training import distributed
from gankit.training.callbacks import Callback, EpochEnd, default_callbacks, run_epoch_end
from gankit.training.ema import EMA
from gankit.training.progress import Progress, epoch_line
from gankit.training.setup import build_networks, build_optimizers, build_sampler, set_learning_rates
from gankit.training.signals import StopSignals
from gankit.training.state import TrainingState


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    epoch: int
    stats: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)


class Trainer(TrainingState):
    """Builds everything a run needs from its config; :meth:`fit` trains.

    ``callbacks`` (default: :func:`~gankit.training.callbacks.default_callbacks`) do the work
    around the steps; :func:`gankit.launch.train` adds periodic evaluation to them.
    """

    def __init__(
        self,
        cfg: Config,
        out_dir: str | Path,
        *,
        resume: bool = False,
        log: Callable[[str], None] = print,
        callbacks: Sequence[Callback] | None = None,
    ) -> None:
        self.cfg, self.log, self.run = cfg, log, RunFolder(out_dir)
        self.out_dir, self.ckpt_dir = self.run.path, self.run.checkpoints
        self.dist, self.device = distributed.init(
            resolve_device(cfg.train.device), wait_minutes=cfg.train.dist_timeout_minutes
        )
        self.is_main = self.dist.is_main
        self.family = get_family(cfg.family)
        if not self.is_main:
            self.log = log = lambda msg: None  # only rank 0 talks and writes
        if callbacks is None and cfg.train.eval_every:
            log("warning: train.eval_every: this Trainer has no evaluation callback; gankit.train() adds one")
        self.callbacks = list(callbacks) if callbacks is not None else default_callbacks(cfg)
        found = self._claim_run_folder(resume)  # rank 0 holds the run folder's lock from here on
        try:
            self._build(found)
        except BaseException:
            self.close()
            raise

    def _build(self, found: tuple[Path, dict[str, Any]] | None) -> None:
        cfg, log = self.cfg, self.log
        self.state_path, resumed = found if found is not None else (None, None)
        if resumed is not None:
            self.check_resume_changes(resumed)
        torch.manual_seed(cfg.train.seed)
        self.family.check(cfg)  # before the data: decoding a large folder first would only delay the error
        self.data = build_dataset(cfg.data, "train", log=log)
        self.info = self.data.info
        self.val_data = build_dataset(cfg.data, "val", log=log) if self.family.kind == "paired" else None
        net = build_networks(cfg, self.family, self.info, self.device, self.dist, log)
        self.G, self.D, self.G_step, self.D_step, self.speed = net.G, net.D, net.G_step, net.D_step, net.speed
        self.channels_last = self.speed.channels_last
        self.objective = build_objective(cfg, self.info, self.family)
        opt = build_optimizers(cfg, self.G, self.D, self.device, self.speed.amp)
        self.opt_G, self.opt_D, self.scaler_G, self.scaler_D = opt.opt_G, opt.opt_D, opt.scaler_G, opt.scaler_D
        self.autocast_dtype = opt.autocast_dtype
        t = cfg.train
        use_ema = t.ema_decay > 0 or t.ema_halflife_kimg > 0
        self.ema = EMA(self.G, t.ema_decay, halflife_kimg=t.ema_halflife_kimg, rampup=t.ema_rampup) if use_ema else None

        self.sampler = build_sampler(cfg, len(self.data), self.dist, log)
        self.ada = None  # train.augment=ada: the probability of the augmentations, adapted as D overfits
        if self.objective.adaptive:
            images = cfg.train.batch_size * self.dist.world_size
            self.ada = AdaptiveAugment(target=cfg.train.ada_target, kimg=cfg.train.ada_kimg, images_per_step=images)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_epochs = cfg.train.pretrain_epochs + cfg.train.epochs + cfg.optim.decay_epochs
        # ``step`` counts updates (what --max-steps, the log and every file name count); ``position``
        # is the place in the data in batches of the current size and number of processes. They
        # differ only after a resume that changed either (see TrainingState._load_counters).
        self.step, self.position = 0, 0
        self.lr_scale = 1.0  # lowered by on_nonfinite=skip
        self.skipped_steps = 0
        self.best: dict[str, float] = {}
        # the end-of-epoch work a stop left undone, recorded in the state (see end_of_epoch)
        self.pending_epoch_end: dict[str, Any] | None = None
        if resumed is not None:
            self.load_state_dict(resumed)
        self._plan_steps()
        if resumed is not None:
            self._after_resume(resumed)
        if self.is_main:
            self.run.save_config(cfg)
            n_val = len(self.val_data) if self.val_data is not None else 0
            self.run.write_record(cfg, self.info, (len(self.data), n_val), str(self.device), self.dist.world_size, log)
            for cb in self.callbacks:
                cb.on_start(self)

    @property
    def generator(self) -> nn.Module:
        """The generator that grids, snapshots and validation use: the EMA weights when enabled."""
        return self.ema.shadow if self.ema else self.G

    def autocast(self) -> AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def close(self) -> None:
        """Release the run folder (its lock); :meth:`fit` does this when it returns or fails."""
        self.run.release()

    # ------------------------------------------------------------------ training
    def _set_lr(self, epoch: int) -> None:
        set_learning_rates(self.cfg, epoch, (self.opt_G, self.opt_D), scale=self.lr_scale)

    def _finite_or_handle(self, name: str, loss: Tensor) -> bool:
        """Check a loss before its update (one host sync). False means: skip this update."""
        bad = not bool(torch.isfinite(loss.detach()).all())
        if not distributed.any_across(bad, self.dist, self.device):
            return True
        value = float(loss.detach().float()) if bad else float("nan")
        if self.cfg.train.on_nonfinite == "stop":
            raise NonFiniteLoss(
                f"step {self.step + 1}: {name} = {value} (not finite); training stopped before applying it, "
                f"the last good checkpoint in {self.ckpt_dir} is kept (train.on_nonfinite=skip drops such steps)"
            )
        self.skipped_steps += 1
        self.lr_scale *= 0.5
        self._set_lr(self.epoch_of(self.position))
        self.log(
            f"warning: step {self.step + 1}: {name} = {value}; step skipped, learning rates halved "
            f"(x{self.lr_scale:g} now, {self.skipped_steps} skipped so far)"
        )
        return False

    def augment_generator(self) -> torch.Generator | None:
        """The generator of this step's ``train.augment`` draws (None when off): the same after a resume."""
        if self.objective.augment is None:
            return None
        return step_generator(self.cfg.train.seed, self.step, rank=self.dist.rank, world_size=self.dist.world_size)

    def train_step(self, batch: Batch, *, pretrain: bool = False, g_step: bool = True) -> dict[str, Tensor]:
        """One discriminator step and (when ``g_step``) one generator step. Returns device scalars."""
        G, D, obj = self.G, self.D, self.objective
        aug = self.augment_generator()
        if self.ada is not None and obj.augment is not None:
            obj.augment.p = self.ada.p  # the one place p is handed over: a resumed run's too
        with torch.set_grad_enabled(g_step or pretrain), self.autocast():
            fake, fake_cond = obj.generate(self.G_step, batch)
        stats: dict[str, Tensor] = {}
        if not pretrain:
            D.requires_grad_(True)
            with self.autocast():
                d_loss, d_stats = obj.d_loss(
                    self.D_step,
                    batch,
                    fake,
                    fake_cond,
                    D_local=D,
                    scaler=self.scaler_D,
                    r1_step=obj.r1_due(self.step),
                    generator=aug,
                )
            # fp16: a gradient penalty whose scaled backward overflowed is inf; like any overflow it is
            # the scaler's to handle (update skipped, scale lowered), so only the rest is checked here
            scaled_gp = self.scaler_D.is_enabled() and ("gp" in d_stats or "r1" in d_stats)
            if not self._finite_or_handle("d_loss", d_stats["d_loss"] if scaled_gp else d_loss):
                return {}
            self.opt_D.zero_grad(set_to_none=True)
            self.scaler_D.scale(d_loss).backward()
            self.scaler_D.step(self.opt_D)
            self.scaler_D.update()
            for pen in ("gp", "r1") if scaled_gp else ():
                if pen in d_stats and not bool(torch.isfinite(d_stats[pen])):
                    d_stats.pop(pen)  # a skipped update: its overflowed penalty is not a training statistic
            stats.update(d_stats)
            if self.ada is not None:
                self.ada.update(d_stats["d_real_sign"], reduce=lambda t: distributed.mean_across(t, self.dist))
                stats["ada_p"] = torch.tensor(self.ada.p, device=self.device)
        if g_step or pretrain:
            D.requires_grad_(False)
            with self.autocast():
                if pretrain:
                    assert isinstance(obj, ImageToImage)
                    g_loss, g_stats = obj.pretrain_loss(batch, fake)
                else:
                    # D is not stepped here: the plain module avoids a DDP gradient sync for it
                    g_loss, g_stats = obj.g_loss(D, batch, fake, fake_cond, aug)
            if not self._finite_or_handle("g_loss", g_loss):
                D.requires_grad_(True)
                return stats
            self.opt_G.zero_grad(set_to_none=True)
            self.scaler_G.scale(g_loss).backward()
            self.scaler_G.step(self.opt_G)
            self.scaler_G.update()
            D.requires_grad_(True)
            if self.ema is not None:
                # the images since the previous generator step; images_seen from the position, which a resume keeps
                steps = 1 if pretrain else self.cfg.loss.n_critic
                batch_images = steps * self.cfg.train.batch_size * self.dist.world_size
                self.ema.update(G, images_seen=self.images_seen, batch_images=batch_images)
            stats.update(g_stats)
        return stats

    def fit(self) -> TrainResult:
        """Train to ``total_steps`` (or the time limit, or a stop signal); releases the run folder."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> TrainResult:
        if self.pending_epoch_end is not None:
            # a stop (or kill) came before the work due at this step: do it now, as the run would have
            what = "run" if self.step >= self.total_steps else "epoch"
            self.log(f"step {self.step}: doing the end-of-{what} work the interruption left undone")
            row = self.run.stats_row(self.step, warn=self.log)
            val = self._end_epoch(self.pending_epoch_end, row, self.log)
            self.pending_epoch_end = None
            if self.step >= self.total_steps:
                return self._result(row, val, trained=False)
        if self.step >= self.total_steps:
            self.log(self._nothing_to_do())
            return self._result({}, {}, trained=False)
        cfg = self.cfg
        self.log(
            f"training {cfg.preset} ({cfg.family}) on {cfg.data.name}: {len(self.data)} images, "
            f"{self.steps_per_epoch} steps/epoch, {self.total_steps} steps, device {self.device}, out {self.out_dir}"
        )
        return self._train()

    def _train(self) -> TrainResult:
        """The steps from :attr:`step` to :attr:`total_steps`, with the stats, the epoch ends and the
        checkpoints at their moments; a stop signal saves the state and raises TrainingInterrupted."""
        cfg, log = self.cfg, self.log
        progress = Progress(self)
        gbs, row, val = progress.images_per_step, {}, {}  # gbs: images per step over all processes
        last_ckpt = epoch_start = time.monotonic()
        deadline = epoch_start + 60 * cfg.train.max_minutes if cfg.train.max_minutes else math.inf
        epoch_start_step, current_epoch = self.step, -1
        self.G.train()
        self.D.train()
        # batches of positions self.position, ...: the same whatever data.storage (see gankit.data.feed)
        paired = self.family.kind == "paired"
        feed = batches(
            self.data, self.sampler, start=self.position, stop=self.end_position, device=self.device, augment=paired
        )
        with StopSignals() as stop, closing(feed):
            while self.step < self.total_steps:
                epoch = self.epoch_of(self.position)
                if epoch != current_epoch:
                    self._set_lr(epoch)
                    current_epoch = epoch
                batch = _channels_last(next(feed)) if self.channels_last else next(feed)
                g_step = (self.step + 1) % cfg.loss.n_critic == 0
                progress.acc.add(self.train_step(batch, pretrain=epoch < cfg.train.pretrain_epochs, g_step=g_step))
                self.step += 1
                self.position += 1
                progress.bar.update(gbs)

                epoch_done = self.position % self.steps_per_epoch == 0
                time_up = deadline != math.inf and distributed.any_across(
                    time.monotonic() > deadline, self.dist, self.device
                )
                finished = self.step >= self.total_steps or time_up
                stopping = distributed.any_across(stop.signum is not None, self.dist, self.device)
                if self.step % cfg.train.log_every == 0 or epoch_done or finished or stopping:
                    row = progress.stats()
                owed = None
                if epoch_done or finished:
                    secs, imgs = round(time.monotonic() - epoch_start, 3), (self.step - epoch_start_step) * gbs
                    owed = {"epoch": epoch, "final": finished and not epoch_done, "seconds": secs, "images": imgs}
                if stopping:
                    progress.bar.close()
                    self._interrupt(stop.signum or signal.SIGTERM, owed)
                if owed is not None:
                    if self.step >= self.total_steps:
                        # the last step is saved before the end-of-run work: a kill during that work
                        # then costs only the work, which --resume redoes
                        self._save_state(pending_epoch_end=owed)
                    val = self._end_epoch(owed, row, progress.echo)
                    epoch_start = last_ckpt = time.monotonic()
                    epoch_start_step = self.step
                    if time_up:
                        log(f"time limit of {cfg.train.max_minutes} min reached at step {self.step}")
                        break
                elif cfg.train.checkpoint_minutes and time.monotonic() - last_ckpt > 60 * cfg.train.checkpoint_minutes:
                    self.save()
                    last_ckpt = time.monotonic()
        progress.bar.close()
        return self._result(row, val, trained=True)

    def _result(self, row: dict[str, float], val: dict[str, float], *, trained: bool) -> TrainResult:
        if self.is_main:
            for cb in self.callbacks:
                cb.on_fit_end(self, {**row, **val} if trained else None)
        return TrainResult(self.out_dir, self.step, self.epochs_reached(), row, val)

    # ------------------------------------------------------------------ epoch end
    def _end_epoch(self, owed: dict[str, Any], row: dict[str, float], echo: Callable[[str], None]) -> dict[str, float]:
        """The work due at the end of epoch ``owed["epoch"]`` (or of the run), on rank 0 while the
        others wait, and the epoch's log line; returns the validation numbers."""
        val = self.end_of_epoch(owed["epoch"], final=owed["final"], timing=owed) if self.is_main else {}
        distributed.wait_for_main(self.dist)
        echo(epoch_line(owed["epoch"], self.final_epoch(), self.step, {**row, **val}, owed))
        return val

    @torch.no_grad()
    def end_of_epoch(
        self, epoch: int, *, final: bool = False, timing: dict[str, Any] | None = None
    ) -> dict[str, float]:
        """The callbacks' end-of-epoch work, then the full state, which records that the work is done.

        Nothing here draws from the training RNGs (they are forked), so the work gives the same
        files whether it runs at the epoch's end or after a resume. Returns the validation numbers.
        """
        timing = timing or {}
        end = EpochEnd(epoch, final, self.step, seconds=timing.get("seconds"), images=timing.get("images"))
        run_epoch_end(self.callbacks, self, end)
        self._save_state()  # last: a state that says this epoch's work is done
        return end.val


def _channels_last(batch: Batch) -> Batch:
    """The batch's images in channels-last memory order (``train.channels_last``)."""
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}
