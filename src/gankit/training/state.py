"""What a :class:`~gankit.training.loop.Trainer` saves, restores and resumes.

The full training state (models, optimizers, grad scalers, EMA, counters, every RNG) lets an
interrupted run continue bit-exactly; the generator snapshot is what sampling, evaluation and
export load. Where these files live is :class:`gankit.run.RunFolder`'s; this module says what is
in them and how a Trainer takes them back, including the states of older gankit versions.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.augment import AdaptiveAugment
from gankit.config import Config, ConfigError, describe_changes, diff_configs
from gankit.data.base import DataInfo
from gankit.errors import NonFiniteLoss, TrainingInterrupted
from gankit.families import Family
from gankit.models.batchnorm import batchnorm_layers, sampling_mode
from gankit.run import RunFolder
from gankit.training import distributed
from gankit.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    generator_snapshot,
    rng_state,
    set_rng_state,
)
from gankit.training.distributed import DistEnv
from gankit.training.ema import EMA
from gankit.training.standing import StandingInputs, standing_inputs


class TrainingState:
    """The save, restore and resume half of the Trainer (a mixin: the attributes are the Trainer's)."""

    # set by the Trainer
    cfg: Config
    info: DataInfo
    run: RunFolder
    dist: DistEnv
    log: Callable[[str], None]
    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    scaler_G: torch.amp.GradScaler
    scaler_D: torch.amp.GradScaler
    ema: EMA | None
    ada: AdaptiveAugment | None
    is_main: bool
    out_dir: Path
    step: int
    position: int
    steps_per_epoch: int
    total_epochs: int
    total_steps: int
    end_position: int
    pending_epoch_end: dict[str, Any] | None
    lr_scale: float
    best: dict[str, float]
    state_path: Path | None
    device: torch.device
    family: Family
    data: Any
    objective: Any
    _standing: StandingInputs | None = None
    _sampling: bool = False
    _sampling_warned: bool = False

    def epoch_of(self, position: int) -> int:
        return position // self.steps_per_epoch

    @property
    def images_seen(self) -> int:
        """Training images the steps so far took from the data (all processes): the count a resume keeps."""
        return self.position * self.cfg.train.batch_size * self.dist.world_size

    def final_epoch(self) -> int:
        """The epoch (1-based) in which this run stops: ``total_epochs`` unless ``train.max_steps`` ends it sooner."""
        return self.epoch_of(self.end_position - 1) + 1

    def epochs_reached(self) -> int:
        """The epoch of the last step taken (1-based; 0 before the first): what "done" reports."""
        return self.epoch_of(self.position - 1) + 1 if self.position > 0 else 0

    def _plan_steps(self) -> None:
        """``total_steps`` (in steps, like ``step``) and where in the data the run ends."""
        offset = self.step - self.position
        by_epochs = self.steps_per_epoch * self.total_epochs + offset
        max_steps = self.cfg.train.max_steps
        self.total_steps = min(by_epochs, max_steps) if max_steps else by_epochs
        self.end_position = self.total_steps - offset

    def state_dict(self, *, pending_epoch_end: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full training state; ``pending_epoch_end`` records end-of-epoch work not yet done."""
        return {
            "format": CHECKPOINT_FORMAT,
            "family": self.cfg.family,
            "config": self.cfg.to_dict(),
            "info": dataclasses.asdict(self.info),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler_G": self.scaler_G.state_dict(),
            "scaler_D": self.scaler_D.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "ada": self.ada.state_dict() if self.ada else None,
            "step": self.step,
            "position": self.position,
            "pending_epoch_end": pending_epoch_end,
            "images_seen": self.images_seen,
            "world_size": self.dist.world_size,
            "batch_size": self.cfg.train.batch_size,
            "lr_scale": self.lr_scale,
            "best": dict(self.best),
            "rng": rng_state(),
            "torch_version": str(torch.__version__),
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        """Take back a state saved by :meth:`state_dict` (or by an older gankit)."""
        try:
            self.G.load_state_dict(s["G"])
            self.D.load_state_dict(s["D"])
            self.opt_G.load_state_dict(s["opt_G"])
            self.opt_D.load_state_dict(s["opt_D"])
            self.scaler_G.load_state_dict(s["scaler_G"])
            self.scaler_D.load_state_dict(s["scaler_D"])
            if self.ema is not None and s.get("ema") is not None:
                self.ema.load_state_dict(s["ema"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"{self.state_path}: does not match this run's models ({str(e).splitlines()[0]})"
            ) from None
        try:
            self._load_counters(s)
            set_rng_state(s["rng"])
            if self.ada is not None and s.get("ada") is not None:  # none: ada switched on at this resume
                self.ada.load_state_dict(s["ada"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"{self.state_path}: an incomplete training state ({type(e).__name__}: {e}); "
                f"resume from a copy of the run folder made before it was damaged, or train into another --out"
            ) from None
        if self.dist.enabled:  # rank 0's saved RNG must not be shared by every rank
            torch.manual_seed(self.cfg.train.seed * 1_000 + self.dist.rank + 1 + 7_919 * self.position)

    def _load_counters(self, s: dict[str, Any]) -> None:
        if "position" in s:
            self.step, self.position = int(s["step"]), int(s["position"])
        else:  # states of older versions: "step" was the position, plus a "step_offset"
            self.position = int(s["step"])
            self.step = self.position + int(s.get("step_offset", 0))
        saved_bs = int(s.get("batch_size", s.get("config", {}).get("train", {}).get("batch_size", 0)))
        saved_ws = int(s.get("world_size", 1))
        bs, ws = self.cfg.train.batch_size, self.dist.world_size
        if (saved_bs, saved_ws) != (bs, ws):  # keep the position in the data (images seen); steps go on counting
            images = int(s["images_seen"])
            self.position = images // (bs * ws)
            self.log(
                f"resume: {saved_ws} process(es) x batch {saved_bs} -> {ws} x {bs}: continuing at step "
                f"{self.step} after {images} images seen (a step is {bs * ws} images from now on)"
            )
        self.lr_scale = float(s.get("lr_scale", 1.0))
        self.best = dict(s.get("best", {}))

    def check_resume_changes(self, state: dict[str, Any]) -> None:
        """List what this resume changes in the saved config; refuse changes to the networks."""
        try:
            saved = Config.from_dict(state["config"], source=f"{self.state_path} (saved config)")
        except (KeyError, ConfigError):
            return  # an older or foreign checkpoint: the state-dict load reports a mismatch
        for line in describe_changes(diff_configs(saved, self.cfg)):
            if not line.startswith(("train.progress", "train.device", "data.path")):
                self.log(f"resume: {line}")

    @property
    def sampling(self) -> str:
        """How the generator samples: ``train.sampling``, or ``eval`` when it has no BatchNorm (the
        mode changes nothing then) or when SyncBatchNorm across processes would wait on the other
        ranks, which do not sample."""
        G = self.ema.shadow if self.ema else self.G
        if not batchnorm_layers(G):
            return "eval"
        mode = self.cfg.train.sampling
        if mode != "eval" and self.dist.enabled and self.cfg.train.sync_bn:
            if not self._sampling_warned:
                self.log(f"warning: train.sampling={mode} with train.sync_bn across processes: sampling in eval mode")
                self._sampling_warned = True
            return "eval"
        return mode

    def standing(self) -> StandingInputs:
        """The inputs the ``standing`` mode recomputes the statistics from (built once)."""
        if self._standing is None:
            noise = self.family.kind == "noise"
            classes = getattr(self.objective, "num_classes", 0) if noise else 0
            self._standing = standing_inputs(self.cfg, self.data, noise=noise, num_classes=classes, device=self.device)
        return self._standing

    @contextmanager
    def sampling_generator(self) -> Iterator[nn.Module]:
        """The generator (EMA weights when enabled) in the run's :attr:`sampling` mode inside the ``with``
        block: standing statistics recomputed once, in its buffers, for the grid, validation and the
        snapshots alike. Its buffers and flags are restored after, so the full training state keeps the
        running statistics. Nested uses share the outer one; the run's RNGs are not drawn from."""
        G = self.ema.shadow if self.ema else self.G
        if self._sampling:
            yield G
            return
        mode, standing = self.sampling, None
        if mode == "standing":
            standing = self.standing()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            with sampling_mode(
                G, mode, inputs=standing.inputs if standing else None, batches=standing.batches if standing else 0
            ):
                self._sampling = True
                try:
                    yield G
                finally:
                    self._sampling = False

    def snapshot(self) -> dict[str, Any]:
        """Generator-only checkpoint for sampling and inference (EMA weights when enabled), with the
        BatchNorm buffers of its :attr:`sampling` mode (the standing statistics) and that mode recorded."""
        with self.sampling_generator() as G:
            weights = G.state_dict()
            for name, buf in G.named_buffers():  # copies: the buffers are restored when sampling ends
                if name in weights:
                    weights[name] = buf.detach().clone()
        mode = self.sampling
        extra: dict[str, Any] = {"sampling": mode}
        if mode == "standing":
            extra["standing"] = self.standing().record()
        return generator_snapshot(self.cfg, self.info, weights, step=self.step, ema=self.ema is not None, **extra)

    def check_finite(self) -> None:
        """Refuse to save parameters that are NaN or infinite (the last good checkpoint stays)."""
        for name, model in (("G", self.G), ("D", self.D)):
            for pname, p in model.named_parameters():
                if not torch.isfinite(p).all():
                    raise NonFiniteLoss(
                        f"step {self.step}: parameter {name}.{pname} is not finite; not saving it "
                        f"(the last good checkpoint in {self.run.checkpoints} is kept)"
                    )

    def _claim_run_folder(self, resume: bool) -> tuple[Path, dict[str, Any]] | None:
        """Rank 0 creates, checks and locks the run folder; the others then read the state to resume."""
        if self.is_main:
            found = self.run.prepare(resume=resume, family=self.cfg.family, log=self.log)
        distributed.barrier(self.dist)
        if not self.is_main:
            found = self.run.find_state(self.log) if resume else None
        return found

    def save(self, *, pending_epoch_end: dict[str, Any] | None = None) -> None:
        """Full state to ``last.pt`` plus the ``G_last.pt`` snapshot (rank 0 only)."""
        self._save_state(pending_epoch_end)
        self.save_snapshots([self.run.g_last])

    def _save_state(self, pending_epoch_end: dict[str, Any] | None = None) -> None:
        if self.is_main:
            self.check_finite()
            self.run.save_state(
                self.state_dict(pending_epoch_end=pending_epoch_end),
                keep_prev=self.cfg.train.keep_prev_state,
                log=self.log,
            )

    def save_snapshots(self, paths: list[Path]) -> None:
        """The generator snapshot (:meth:`snapshot`) to each of ``paths`` (rank 0 only)."""
        if self.is_main and paths:
            self.check_finite()
            self.run.save_snapshot(self.snapshot(), paths)

    def _interrupt(self, signum: int, owed: dict[str, Any] | None) -> None:
        """Save the state (the end-of-epoch work, if due, waits for --resume) and stop."""
        self.save(pending_epoch_end=owed)
        later = " (which first writes the samples, snapshots and plots due now)" if owed else ""
        self.log(
            f"{signal.Signals(signum).name}: saved step {self.step} to {self.run.state}; "
            f"continue with --resume --out {self.out_dir}{later}"
        )
        raise TrainingInterrupted(signum, self.step)

    # ------------------------------------------------------------------ resuming
    def _after_resume(self, state: dict[str, Any]) -> None:
        """After the state is loaded: the owed end-of-epoch work, and the logs cut back to the state's step."""
        if "pending_epoch_end" in state:
            self.pending_epoch_end = state["pending_epoch_end"]
        elif not self.dist.enabled:  # the other ranks could not read rank 0's folder
            self.pending_epoch_end = self._pending_in_older_state()
        if self.is_main:
            self.run.stats_log.truncate_after(self.step, warn=self.log)
            # the owed work writes this step's metrics row: drop one that a kill left half-done
            self.run.metrics_log.truncate_after(self.step - (1 if self.pending_epoch_end else 0), warn=self.log)
            self.best = self.run.check_snapshots(
                step=self.step,
                best=self.best,
                state_path=self.state_path,
                rewrite_last=lambda: self.save_snapshots([self.run.g_last]),
                log=self.log,
            )
        self.log(
            f"resumed {self.out_dir} at step {self.step} "
            f"({self.position // self.steps_per_epoch} of {self.total_epochs} epochs done)"
        )

    def _pending_in_older_state(self) -> dict[str, Any] | None:
        """States saved before gankit recorded the end-of-epoch work: a stop at an epoch's end (or
        the run's) skipped that work when metrics.jsonl lacks the step's row."""
        epoch_end = self.position % self.steps_per_epoch == 0
        if self.position == 0 or (not epoch_end and self.step < self.total_steps):
            return None
        if any(r["step"] == self.step for r in self.run.read_metrics(warn=self.log)):
            return None
        return {"epoch": self.epoch_of(self.position - 1), "final": not epoch_end}

    def _nothing_to_do(self) -> str:
        """The message of a resume that finds the run complete, with the options that continue it."""
        t, spe = self.cfg.train, self.steps_per_epoch
        by_epochs = spe * self.total_epochs + self.step - self.position
        flags = []
        if by_epochs <= self.step:
            flags.append(f"--epochs {t.epochs + (self.step - by_epochs) // spe + 1}")
        if t.max_steps and t.max_steps <= self.step:
            flags.append(f"--max-steps {self.step + spe}")
        return (
            f"nothing to do: {self.out_dir} is at step {self.step} of {self.total_steps} "
            f"(epoch {self.epochs_reached()} of {self.total_epochs}); pass {' '.join(flags)} to train longer"
        )
