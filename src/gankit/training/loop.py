"""The one training loop for every family.

The loop owns devices, optimizers, backward passes, mixed precision, EMA, checkpoints, logging
and interruption; the :mod:`objective <gankit.objectives>` only computes losses. One loop step is
one discriminator step; the generator steps every ``loss.n_critic`` loop steps (the PyTorch DCGAN
recipe with ``n_critic = 1``: D on real and detached fakes, then G on the same fakes).

Data order, augmentation and noise depend only on the seed and the step, and the full state
(including every RNG) is checkpointed, so an interrupted run resumed with ``--resume`` produces the
same weights as an uninterrupted one (bitwise on CPU).

A *step* is one update, counted the same way everywhere (``--max-steps``, the log, stats.jsonl,
snapshots, file names), whatever the batch size or number of processes; the loop's position in the
data (:attr:`Trainer.position`, in batches of the current size) is kept apart from it. The work due
at an epoch's end (sample grid, validation, snapshots, plots, evaluation) is recorded as done in the
saved state, so a run stopped or killed before that work finished does it on ``--resume``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from gankit.config import Config, ConfigError, describe_changes, diff_configs
from gankit.data import EpochSampler, build_dataset
from gankit.data.base import Batch
from gankit.data.feed import batches
from gankit.devices import resolve_device
from gankit.errors import NonFiniteLoss, TrainingInterrupted
from gankit.families import get_family
from gankit.objectives import ImageToImage, NoiseToImage, build_objective
from gankit.training import distributed, performance
from gankit.training.checkpoint import (
    CHECKPOINT_FORMAT,
    G_BEST,
    G_EPOCH_GLOB,
    G_LAST,
    LAST,
    PREV,
    CheckpointError,
    atomic_save,
    find_training_state,
    generator_snapshot,
    rng_state,
    save_training_state,
    set_rng_state,
    snapshot_problem,
)
from gankit.training.ema import EMA
from gankit.training.stats import JsonlLog, StatsAccumulator, plot_losses, read_jsonl
from gankit.visualize import paired_triplets, save_grid, to_display

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None  # type: ignore[assignment]

# The run folder's names, in one place (checkpoints/ holds checkpoint.LAST, PREV, G_LAST, G_BEST, ...).
CONFIG_FILE = "config.yaml"
RUN_RECORD = "run.json"
STATS_FILE = "stats.jsonl"
METRICS_FILE = "metrics.jsonl"
LOSS_PLOT = "loss.png"
SAMPLES_DIR = "samples"
CHECKPOINTS_DIR = "checkpoints"
LOCK_FILE = ".train.lock"
"""Locked (flock) by the process that trains into the run folder; holds its pid."""


class RunFolderBusy(ConfigError):
    """Another process is training into the same run folder."""


class _RunFolderLock:
    """An exclusive ``flock`` on ``RUN/.train.lock`` for as long as this process trains into RUN.

    Two processes writing one run folder would interleave checkpoints and logs; the second one
    refuses instead. The kernel drops the lock when the process ends, however it ends, so a killed
    run never leaves a stale lock behind.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._file: Any = None

    def acquire(self) -> None:
        f = open(self.path, "a+")  # OSError here: the folder is not writable (reported by the caller)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.seek(0)
                    pid = f.read().strip() or "unknown"
                    raise RunFolderBusy(
                        f"{self.path.parent} is being trained by another process (pid {pid}); "
                        f"wait for it or choose another --out"
                    ) from None
                except OSError:
                    pass  # a file system without locks (some network mounts): train unlocked
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
        except BaseException:
            f.close()
            raise
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the lock
            self._file = None


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run to resume (its config, or a training state)."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG_FILE).is_file() or any((run_dir / CHECKPOINTS_DIR / n).is_file() for n in (LAST, PREV))


def saved_run_config(run_dir: str | Path, *, log: Callable[[str], None] = print) -> Config:
    """The config a run was trained with.

    ``config.yaml`` when it is readable (:meth:`Config.load`); when it is missing or damaged, the copy
    every training state holds (``checkpoints/last.pt``), with a warning (training rewrites config.yaml).
    Raises :class:`ConfigError` naming the file when neither is usable.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        problem = "missing"
    else:
        try:
            return Config.load(path)
        except ConfigError as e:
            problem = str(e).removeprefix(f"{path} is ").split(";")[0]
    try:
        found = find_training_state(run_dir / CHECKPOINTS_DIR, log=log)
    except CheckpointError:
        found = None
    if found is None or not isinstance(found[1].get("config"), dict):
        raise ConfigError(
            f"{path}: {problem}, and no training state in {run_dir / CHECKPOINTS_DIR} holds a copy; "
            f"restore the file, or train into another --out"
        )
    log(f"warning: {path}: {problem}; using the config saved in {found[0]} (config.yaml is rewritten)")
    return Config.from_dict(found[1]["config"], source=f"{found[0]} (saved config)")


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    epoch: int
    stats: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)


class _StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Trainer:
    """Builds everything a run needs from its config; :meth:`fit` trains."""

    def __init__(
        self, cfg: Config, out_dir: str | Path, *, resume: bool = False, log: Callable[[str], None] = print
    ) -> None:
        self.cfg, self.out_dir, self.log = cfg, Path(out_dir), log
        self.ckpt_dir = self.out_dir / CHECKPOINTS_DIR
        self._lock = _RunFolderLock(self.out_dir)
        self.dist, self.device = distributed.init(
            resolve_device(cfg.train.device), wait_minutes=cfg.train.dist_timeout_minutes
        )
        self.is_main = self.dist.is_main
        self.family = get_family(cfg.family)
        if not self.is_main:
            self.log = log = lambda msg: None  # only rank 0 talks and writes

        found = self._prepare_run_dir(resume)  # rank 0 holds the run folder's lock from here on
        try:
            self._build(found)
        except BaseException:
            self.close()
            raise

    def _build(self, found: tuple[Path, dict[str, Any]] | None) -> None:
        cfg, log = self.cfg, self.log
        self.state_path, resumed = found if found is not None else (None, None)
        if resumed is not None:
            self._check_resume_changes(resumed)
        torch.manual_seed(cfg.train.seed)

        self.data = build_dataset(cfg.data, "train", log=log)
        self.info = self.data.info
        self.val_data = build_dataset(cfg.data, "val", log=log) if self.family.kind == "paired" else None

        G, D = self.family.build(cfg, self.info, log=log)
        self.G, self.D = G.to(self.device), D.to(self.device)
        convolutional = any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in self.G.modules())
        self.speed = performance.plan(cfg.train, self.device, convolutional=convolutional)
        performance.apply(self.speed)
        for warning in self.speed.warnings:
            log(f"warning: {warning}")
        self.channels_last = self.speed.channels_last
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        # the networks the steps run through: DDP wrappers when distributed, else G and D themselves
        self.G_step = distributed.wrap(self.G, self.dist, self.device, sync_bn=cfg.train.sync_bn)
        self.D_step = distributed.wrap(self.D, self.dist, self.device, sync_bn=cfg.train.sync_bn)
        if self.speed.compile:
            self.G_step = torch.compile(self.G_step)
            self.D_step = torch.compile(self.D_step)
        if self.dist.enabled:  # same initial weights everywhere (DDP broadcast), distinct noise per rank
            torch.manual_seed(cfg.train.seed * 1_000 + self.dist.rank + 1)
        self.objective = build_objective(cfg, self.info, self.family)
        o = cfg.optim
        fused = self.device.type in ("cuda", "cpu")  # one kernel per step; 1.2-1.4x on the MLP GANs (CPU)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2), fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2), fused=fused)
        amp = self.speed.amp
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler_G = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.scaler_D = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.ema = EMA(self.G, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None

        n, ws = len(self.data), self.dist.world_size
        if 0 < n < cfg.train.batch_size * ws and n >= ws:
            # a handful of photos: one smaller batch per step beats refusing to train
            log(
                f"warning: {n} training images is less than one batch of {cfg.train.batch_size} x {ws} "
                f"process(es); training with train.batch_size={n // ws} (recorded in config.yaml)"
            )
            cfg.train.batch_size = n // ws
        self.sampler = EpochSampler(
            len(self.data), cfg.train.batch_size, cfg.train.seed, rank=self.dist.rank, world_size=self.dist.world_size
        )
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_epochs = cfg.train.pretrain_epochs + cfg.train.epochs + cfg.optim.decay_epochs
        # ``step`` counts updates (what --max-steps, the log and every file name count); ``position``
        # is the place in the data in batches of the current size and number of processes. They
        # differ only after a resume that changed either (see _load_state).
        self.step = 0
        self.position = 0
        self.lr_scale = 1.0  # lowered by on_nonfinite=skip
        self.skipped_steps = 0
        self.best: dict[str, float] = {}
        # the end-of-epoch work a stop left undone, recorded in the state (see end_of_epoch)
        self.pending_epoch_end: dict[str, Any] | None = None
        self.fixed = self._fixed_inputs()

        self.stats_log = JsonlLog(self.out_dir / STATS_FILE)
        self.metrics_log = JsonlLog(self.out_dir / METRICS_FILE)
        if resumed is not None:
            self._load_state(resumed)
        self._plan_steps()
        if resumed is not None:
            if "pending_epoch_end" in resumed:
                self.pending_epoch_end = resumed["pending_epoch_end"]
            else:
                self.pending_epoch_end = self._pending_in_older_state()
            if self.is_main:
                self.stats_log.truncate_after(self.step, warn=log)
                # the owed work writes this step's metrics row: drop one that a kill left half-done
                self.metrics_log.truncate_after(self.step - (1 if self.pending_epoch_end else 0), warn=log)
                self._check_snapshots()
            log(
                f"resumed {self.out_dir} at step {self.step} "
                f"({self.position // self.steps_per_epoch} of {self.total_epochs} epochs done)"
            )
        self.tb = None
        if self.is_main:
            _write_text_atomic(self.out_dir / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            self._write_run_record()
            if cfg.train.tensorboard:
                from gankit.training.tensorboard import TensorBoardSink

                self.tb = TensorBoardSink(self.out_dir, cfg, resume_step=self.step if resumed else 0)

    @property
    def logged_step(self) -> int:
        """The step as every log and file counts it: the same as :attr:`step` (kept for callers)."""
        return self.step

    def _plan_steps(self) -> None:
        """``total_steps`` (in steps, like ``step``) and where in the data the run ends."""
        offset = self.step - self.position
        by_epochs = self.steps_per_epoch * self.total_epochs + offset
        max_steps = self.cfg.train.max_steps
        self.total_steps = min(by_epochs, max_steps) if max_steps else by_epochs
        self.end_position = self.total_steps - offset

    def epochs_reached(self) -> int:
        """The epoch of the last step taken (1-based; 0 before the first): what "done" reports."""
        return self.epoch_of(self.position - 1) + 1 if self.position > 0 else 0

    def close(self) -> None:
        """Release the run folder (its lock); :meth:`fit` does this when it returns or fails."""
        self._lock.release()

    def _check_snapshots(self) -> None:
        """On resume: rebuild a damaged ``G_last.pt`` from the state; forget a damaged ``G_best.pt``
        (the next better validation writes a new one); name damaged per-epoch snapshots."""
        last = self.ckpt_dir / G_LAST
        problem = snapshot_problem(last) or ("missing" if not last.exists() and self.step > 0 else None)
        if problem:
            self.log(f"warning: {last}: {problem}; rewritten from {self.state_path} (step {self.step})")
            self._save_snapshots([G_LAST])
        best = self.ckpt_dir / G_BEST
        if self.best:
            problem = snapshot_problem(best) or ("missing" if not best.exists() else None)
            if problem:
                self.log(
                    f"warning: {best}: {problem}; the next validation writes a new one "
                    f"(the best so far, val_l1 {self.best.get('val_l1', math.nan):.4f} at step "
                    f"{self.best.get('step', '?')}, is lost)"
                )
                self.best = {}
        for path in sorted(self.ckpt_dir.glob(G_EPOCH_GLOB)):
            problem = snapshot_problem(path, full=False)
            if problem:
                self.log(f"warning: {path}: {problem}; it cannot be rebuilt: delete it")

    def _pending_in_older_state(self) -> dict[str, Any] | None:
        """States saved before gankit recorded the end-of-epoch work: a stop at an epoch's end (or
        the run's) skipped that work when metrics.jsonl lacks the step's row."""
        if self.dist.enabled or self.position == 0:  # the other ranks could not read rank 0's folder
            return None
        epoch_end = self.position % self.steps_per_epoch == 0
        if not epoch_end and self.step < self.total_steps:
            return None
        if any(r["step"] == self.step for r in read_jsonl(self.out_dir / METRICS_FILE, warn=self.log)):
            return None
        return {"epoch": self.epoch_of(self.position - 1), "final": not epoch_end}

    def _check_resume_changes(self, state: dict[str, Any]) -> None:
        """List what this resume changes in the saved config; refuse changes to the networks."""
        try:
            saved = Config.from_dict(state["config"], source=f"{self.state_path} (saved config)")
        except (KeyError, ConfigError):
            return  # an older or foreign checkpoint: the state-dict load below reports a mismatch
        for line in describe_changes(diff_configs(saved, self.cfg)):
            if not line.startswith(("train.progress", "train.device", "data.path")):
                self.log(f"resume: {line}")

    def _write_run_record(self) -> None:
        """``run.json``: what this run actually loaded and ran on (the config says what was asked)."""
        from gankit import __version__

        info = dataclasses.asdict(self.info)
        record = {
            "family": self.cfg.family,
            "preset": self.cfg.preset,
            "dataset": {
                "name": info.get("dataset") or self.cfg.data.name,
                "source": info.get("source") or self.cfg.data.path,
                "given": info.get("given", ""),
                "train_images": len(self.data),
                "val_images": len(self.val_data) if self.val_data is not None else 0,
                "val_source": info.get("val_source", ""),
                "storage": info.get("storage", ""),
            },
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "gankit": __version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        path = self.out_dir / RUN_RECORD
        if path.is_file():  # a resume: keep the first start time
            try:
                started = json.loads(path.read_text(encoding="utf-8"))["started"]
                if not isinstance(started, str):
                    raise TypeError("'started' is not a time")
                record["started"] = started
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.log(f"warning: {path}: damaged ({type(e).__name__}); rewritten, without the first start time")
        _write_text_atomic(path, json.dumps(record, indent=2) + "\n")

    # ------------------------------------------------------------------ setup helpers
    def _prepare_run_dir(self, resume: bool) -> tuple[Path, dict[str, Any]] | None:
        """Create and lock the run folder (rank 0); the state to resume and its file, if any."""
        if not self.is_main:  # rank 0 creates and checks the folder; the others then read the state
            distributed.barrier(self.dist)
            return find_training_state(self.ckpt_dir, log=self.log) if resume else None
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / SAMPLES_DIR).mkdir(exist_ok=True)
            self._lock.acquire()  # also the check that the folder is writable
        except OSError as e:
            raise ConfigError(f"--out {self.out_dir}: cannot write to the run folder ({e.strerror})") from None
        try:
            found = find_training_state(self.ckpt_dir, log=self.log) if resume else None
            if not resume and any((self.ckpt_dir / name).exists() for name in (LAST, PREV)):
                raise ConfigError(
                    f"{self.out_dir} already holds a run; pass --resume to continue it or choose another --out"
                )
            if found is None and (self.ckpt_dir / G_LAST).exists():  # never train over a generator
                raise ConfigError(
                    f"{self.out_dir} holds generator weights (checkpoints/{G_LAST}) but no training state to "
                    f"resume (an imported or copied model?); train into another --out"
                )
            if found is not None and found[1].get("family") != self.cfg.family:
                raise CheckpointError(
                    f"{found[0]}: checkpoint of family '{found[1].get('family')}', not '{self.cfg.family}'"
                )
        except BaseException:
            self._lock.release()
            raise
        distributed.barrier(self.dist)
        return found

    def _fixed_inputs(self) -> dict[str, Tensor]:
        """The fixed batch shown in every epoch's grid (noise from its own generator, or val images)."""
        n = self.cfg.train.n_samples
        g = torch.Generator().manual_seed(self.cfg.train.seed + 12345)
        if isinstance(self.objective, NoiseToImage):
            fixed = {"z": torch.randn(n, self.cfg.model.z_dim, generator=g).to(self.device)}
            if self.objective.num_classes:
                fixed["label"] = (torch.arange(n) % self.objective.num_classes).to(self.device)
            return fixed
        assert self.val_data is not None
        idx = torch.arange(min(n, len(self.val_data)))
        return dict(self.val_data.batch(idx, device=self.device, generator=None))

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ state
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
            "step": self.step,
            "position": self.position,
            "pending_epoch_end": pending_epoch_end,
            "images_seen": self.position * self.cfg.train.batch_size * self.dist.world_size,
            "world_size": self.dist.world_size,
            "batch_size": self.cfg.train.batch_size,
            "lr_scale": self.lr_scale,
            "best": dict(self.best),
            "rng": rng_state(),
            "torch_version": str(torch.__version__),
        }

    def _load_state(self, s: dict[str, Any]) -> None:
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

    def snapshot(self) -> dict[str, Any]:
        """Generator-only checkpoint for sampling and inference (EMA weights when enabled)."""
        G = self.ema.shadow if self.ema else self.G
        return generator_snapshot(self.cfg, self.info, G.state_dict(), step=self.step, ema=self.ema is not None)

    def save(self, *, snapshot_name: str | None = None, pending_epoch_end: dict[str, Any] | None = None) -> None:
        """Full state to ``last.pt`` plus generator snapshots (rank 0 only)."""
        self._save_state(pending_epoch_end)
        self._save_snapshots([G_LAST, *([snapshot_name] if snapshot_name else [])])

    def _save_state(self, pending_epoch_end: dict[str, Any] | None = None) -> None:
        """Full state to ``last.pt``, the previous one kept (rank 0 only)."""
        if not self.is_main:
            return
        self._check_finite()
        with self._checkpoint_errors():
            save_training_state(
                self.ckpt_dir,
                self.state_dict(pending_epoch_end=pending_epoch_end),
                keep_prev=self.cfg.train.keep_prev_state,
                log=self.log,
            )

    def _save_snapshots(self, names: list[str]) -> None:
        """The generator snapshot under each of ``names`` in checkpoints/ (rank 0 only)."""
        if not self.is_main or not names:
            return
        self._check_finite()
        snapshot = self.snapshot()
        with self._checkpoint_errors():
            for name in names:
                atomic_save(snapshot, self.ckpt_dir / name)

    @contextmanager
    def _checkpoint_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            raise CheckpointError(
                f"cannot write a checkpoint to {self.ckpt_dir} at step {self.step}: {e.strerror or e}; "
                f"the previous checkpoint there is intact"
            ) from None

    def _check_finite(self) -> None:
        for name, model in (("G", self.G), ("D", self.D)):
            for pname, p in model.named_parameters():
                if not torch.isfinite(p).all():
                    raise NonFiniteLoss(
                        f"step {self.step}: parameter {name}.{pname} is not finite; not saving it "
                        f"(the last good checkpoint in {self.ckpt_dir} is kept)"
                    )

    # ------------------------------------------------------------------ training
    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def _set_lr(self, epoch: int) -> None:
        """Constant rate, then linear decay to 0 over ``optim.decay_epochs`` (pix2pix's 'linear' policy)."""
        o = self.cfg.optim
        adv_epoch = epoch - self.cfg.train.pretrain_epochs
        factor = 1.0
        if o.decay_epochs > 0:
            factor = 1.0 - max(0, adv_epoch + 1 - self.cfg.train.epochs) / float(o.decay_epochs + 1)
        for opt, base in ((self.opt_G, o.lr_g), (self.opt_D, o.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * factor * self.lr_scale

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

    def train_step(self, batch: Batch, *, pretrain: bool = False, g_step: bool = True) -> dict[str, Tensor]:
        """One discriminator step and (when ``g_step``) one generator step. Returns device scalars."""
        G, D, obj = self.G, self.D, self.objective
        with torch.set_grad_enabled(g_step or pretrain), self._autocast():
            fake, fake_cond = obj.generate(self.G_step, batch)
        stats: dict[str, Tensor] = {}
        if not pretrain:
            D.requires_grad_(True)
            with self._autocast():
                d_loss, d_stats = obj.d_loss(self.D_step, batch, fake, fake_cond, D_local=D, scaler=self.scaler_D)
            # fp16: a gradient penalty whose scaled backward overflowed is inf; like any overflow it is
            # the scaler's to handle (update skipped, scale lowered), so only the rest is checked here
            scaled_gp = self.scaler_D.is_enabled() and "gp" in d_stats
            if not self._finite_or_handle("d_loss", d_stats["d_loss"] if scaled_gp else d_loss):
                return {}
            self.opt_D.zero_grad(set_to_none=True)
            self.scaler_D.scale(d_loss).backward()
            self.scaler_D.step(self.opt_D)
            self.scaler_D.update()
            if scaled_gp and not bool(torch.isfinite(d_stats["gp"])):
                d_stats.pop("gp")  # a skipped update: its overflowed penalty is not a training statistic
            stats.update(d_stats)
        if g_step or pretrain:
            D.requires_grad_(False)
            with self._autocast():
                if pretrain:
                    assert isinstance(obj, ImageToImage)
                    g_loss, g_stats = obj.pretrain_loss(batch, fake)
                else:
                    # D is not stepped here: the plain module avoids a DDP gradient sync for it
                    g_loss, g_stats = obj.g_loss(D, batch, fake, fake_cond)
            if not self._finite_or_handle("g_loss", g_loss):
                D.requires_grad_(True)
                return stats
            self.opt_G.zero_grad(set_to_none=True)
            self.scaler_G.scale(g_loss).backward()
            self.scaler_G.step(self.opt_G)
            self.scaler_G.update()
            D.requires_grad_(True)
            if self.ema is not None:
                self.ema.update(G)
            stats.update(g_stats)
        return stats

    def fit(self) -> TrainResult:
        """Train to ``total_steps`` (or the time limit, or a stop signal); releases the run folder."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> TrainResult:
        cfg, log = self.cfg, self.log
        bs = cfg.train.batch_size
        acc = StatsAccumulator()
        last_row: dict[str, float] = {}
        last_val: dict[str, float] = {}
        if self.pending_epoch_end is not None:
            # a stop (or kill) came before the work due at this step: do it now, as the run would have
            what = "run" if self.step >= self.total_steps else "epoch"
            log(f"step {self.step}: doing the end-of-{what} work the interruption left undone")
            last_row = self._stats_row_of(self.step)
            last_val = self._end_epoch(self.pending_epoch_end, last_row, log)
            self.pending_epoch_end = None
            if self.step >= self.total_steps:
                return self._result(last_row, last_val)
        if self.step >= self.total_steps:
            log(self._nothing_to_do())
            return self._result({}, {})
        log(
            f"training {cfg.preset} ({cfg.family}) on {cfg.data.name}: {len(self.data)} images, "
            f"{self.steps_per_epoch} steps/epoch, {self.total_steps} steps, device {self.device}, out {self.out_dir}"
        )
        gbs = bs * self.dist.world_size  # images per step over all processes
        bar = tqdm(
            total=self.total_steps * gbs,
            initial=self.step * gbs,
            unit="img",
            dynamic_ncols=True,
            # None: only when stderr is a terminal (a piped or redirected run gets the per-epoch lines only)
            disable=None if (cfg.train.progress and self.is_main) else True,
            file=sys.stderr,
            smoothing=0.05,
        )
        last_ckpt = epoch_start = fit_start = time.monotonic()
        deadline = fit_start + 60 * cfg.train.max_minutes if cfg.train.max_minutes else math.inf
        epoch_start_step = self.step
        current_epoch = -1
        self.G.train()
        self.D.train()
        # batches of positions self.position, ...: the same whatever data.storage (see gankit.data.feed)
        feed = batches(
            self.data,
            self.sampler,
            start=self.position,
            stop=self.end_position,
            device=self.device,
            augment=self.family.kind == "paired",
        )
        with _StopSignals() as stop, closing(feed):
            while self.step < self.total_steps:
                epoch = self.epoch_of(self.position)
                if epoch != current_epoch:
                    self._set_lr(epoch)
                    current_epoch = epoch
                pretrain = epoch < cfg.train.pretrain_epochs
                batch = next(feed)
                if self.channels_last:
                    batch = {
                        k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                        for k, v in batch.items()
                    }
                g_step = (self.step + 1) % cfg.loss.n_critic == 0
                acc.add(self.train_step(batch, pretrain=pretrain, g_step=g_step))
                self.step += 1
                self.position += 1
                bar.update(gbs)

                epoch_done = self.position % self.steps_per_epoch == 0
                time_up = deadline != math.inf and distributed.any_across(
                    time.monotonic() > deadline, self.dist, self.device
                )
                finished = self.step >= self.total_steps or time_up
                stopping = distributed.any_across(stop.signum is not None, self.dist, self.device)
                if self.step % cfg.train.log_every == 0 or epoch_done or finished or stopping:
                    last_row = acc.flush(reduce=lambda t: distributed.mean_across(t, self.dist))
                    bad = [k for k, v in last_row.items() if not math.isfinite(v)]
                    if bad:
                        raise NonFiniteLoss(
                            f"step {self.step}: {bad[0]} = {last_row[bad[0]]} (not finite); training stopped, "
                            f"the last good checkpoint in {self.ckpt_dir} is kept"
                        )
                    if self.is_main:
                        self.stats_log.append(
                            {"step": self.step, "epoch": self.epoch_of(self.position - 1) + 1, **last_row}
                        )
                        if self.tb is not None:
                            lrs = {"lr_g": self.opt_G.param_groups[0]["lr"], "lr_d": self.opt_D.param_groups[0]["lr"]}
                            self.tb.scalars(self.step, {**last_row, **lrs})
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last_row.items() if k in ("d_loss", "g_loss", "g_l1")})
                owed = None
                if epoch_done or finished:
                    secs = time.monotonic() - epoch_start
                    owed = {
                        "epoch": epoch,
                        "final": finished and not epoch_done,
                        "seconds": round(secs, 3),
                        "images": (self.step - epoch_start_step) * gbs,
                    }
                if stopping:
                    # the end-of-epoch work (if due) waits for --resume: a stop should not wait for it
                    self.save(pending_epoch_end=owed)
                    bar.close()
                    signum = stop.signum or signal.SIGTERM
                    later = " (which first writes the samples, snapshots and plots due now)" if owed else ""
                    log(
                        f"{signal.Signals(signum).name}: saved step {self.step} to {self.ckpt_dir / LAST}; "
                        f"continue with --resume --out {self.out_dir}{later}"
                    )
                    raise TrainingInterrupted(signum, self.step)
                if owed is not None:
                    if self.step >= self.total_steps:
                        # the last step is saved before the end-of-run work: a kill during that work
                        # then costs only the work, which --resume redoes
                        self._save_state(pending_epoch_end=owed)
                    last_val = self._end_epoch(owed, last_row, log if bar.disable else bar.write)
                    epoch_start, epoch_start_step = time.monotonic(), self.step
                    last_ckpt = time.monotonic()
                    if time_up:
                        log(f"time limit of {cfg.train.max_minutes} min reached at step {self.step}")
                        break
                elif cfg.train.checkpoint_minutes and time.monotonic() - last_ckpt > 60 * cfg.train.checkpoint_minutes:
                    self.save()
                    last_ckpt = time.monotonic()
        bar.close()
        if self.tb is not None:
            self.tb.hparams({**last_row, **last_val})
        return self._result(last_row, last_val)

    def _result(self, row: dict[str, float], val: dict[str, float]) -> TrainResult:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        return TrainResult(self.out_dir, self.step, self.epochs_reached(), row, val)

    def _stats_row_of(self, step: int) -> dict[str, float]:
        """The losses stats.jsonl holds for ``step`` (empty when it has no row for it)."""
        rows = [r for r in read_jsonl(self.out_dir / STATS_FILE, warn=self.log) if r["step"] == step]
        return {k: v for k, v in rows[-1].items() if k not in ("step", "epoch")} if rows else {}

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

    # ------------------------------------------------------------------ epoch end
    def _end_epoch(self, owed: dict[str, Any], row: dict[str, float], echo: Callable[[str], None]) -> dict[str, float]:
        """The work due at the end of epoch ``owed["epoch"]`` (or of the run), on rank 0 while the
        others wait, and the epoch's log line; returns the validation numbers."""
        val = self.end_of_epoch(owed["epoch"], final=owed["final"], timing=owed) if self.is_main else {}
        distributed.wait_for_main(self.dist)
        msg = " ".join(f"{k} {v:.4f}" for k, v in {**row, **val}.items())
        secs, imgs = owed.get("seconds"), owed.get("images")
        speed = f" | {secs:.1f} s, {imgs / max(secs, 1e-9):.0f} img/s" if secs is not None and imgs else ""
        echo(f"epoch {owed['epoch'] + 1}/{self.total_epochs} step {self.step}: {msg}{speed}")
        return val

    @torch.no_grad()
    def end_of_epoch(
        self,
        epoch: int,
        *,
        final: bool = False,
        timing: dict[str, Any] | None = None,
    ) -> dict[str, float]:
        """Sample grid, validation (paired), the metrics.jsonl row, snapshots, loss plot, periodic
        evaluation, and last: the full state, which records that this work is done.

        Nothing here draws from the training RNGs, so the work gives the same files whether it runs
        at the epoch's end or after a resume.
        """
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            G = self.ema.shadow if self.ema else self.G
            was_training = G.training
            G.eval()
            tag = f"epoch_{epoch + 1:04d}" if not final else f"step_{self.step:07d}"
            val: dict[str, float] = {}
            caption = f"{self.cfg.preset}: epoch {epoch + 1}, step {self.step}"
            path = self.out_dir / SAMPLES_DIR / f"{tag}.png"
            if isinstance(self.objective, NoiseToImage):
                fake = G(self.fixed["z"], self.fixed.get("label"))
                k = self.objective.num_classes
                nrow = k or int(math.sqrt(len(fake))) or 1
                columns = (self.info.class_names[:k] or [str(i) for i in range(k)]) if k else None
                shown = save_grid(to_display(fake), path, nrow=nrow, caption=caption, column_labels=columns)
            else:
                out = G(self.fixed["input"])
                grid = paired_triplets(self.fixed["input"], out, self.fixed["target"], self.info.space)
                shown = save_grid(grid, path, nrow=3, caption=caption, column_labels=["input", "output", "target"])
                val = self.validate(G)
            if self.tb is not None:
                self.tb.image(self.step, "samples", shown)
            G.train(was_training)
        if val and val.get("val_l1", math.inf) < self.best.get("val_l1", math.inf):
            self.best = {"val_l1": val["val_l1"], "step": self.step}
            self._save_snapshots([G_BEST])
        timing = timing or {}
        secs, imgs = timing.get("seconds"), timing.get("images")
        metrics = {"step": self.step, "epoch": epoch + 1}
        if secs is not None and imgs:
            metrics.update(seconds=round(secs, 3), images_per_s=round(imgs / max(secs, 1e-9), 1))
        metrics.update(val)
        self.metrics_log.append(metrics)
        if self.tb is not None:
            self.tb.scalars(self.step, metrics)
        every = max(1, self.total_epochs // 10)
        per_epoch = f"G_epoch{epoch + 1:04d}.pt" if (epoch + 1) % every == 0 and not final else None
        self._save_snapshots([G_LAST, *([per_epoch] if per_epoch else [])])
        self._prune_snapshots()
        plot_losses(
            self.out_dir / STATS_FILE,
            self.out_dir / LOSS_PLOT,
            title=f"{self.cfg.preset} losses",
            metrics_path=self.out_dir / METRICS_FILE,
        )
        every = self.cfg.train.eval_every
        if every and ((epoch + 1) % every == 0 or final):
            self.periodic_eval()
        self._save_state()  # last: a state that says this epoch's work is done
        return val

    def _prune_snapshots(self) -> None:
        """Keep the newest ``train.keep_snapshots`` per-epoch snapshots (``G_last``/``G_best`` stay)."""
        snaps = sorted(self.ckpt_dir.glob("G_epoch*.pt"))
        for old in snaps[: max(0, len(snaps) - self.cfg.train.keep_snapshots)]:
            old.unlink(missing_ok=True)

    def periodic_eval(self) -> None:
        """Score the snapshot just written (``eval.jsonl`` and ``metrics.png``), RNG untouched."""
        from gankit.evaluate import evaluate, plot_metrics

        t = self.cfg.train
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            try:
                results = evaluate(
                    self.ckpt_dir / "G_last.pt",
                    metrics=t.eval_metrics or None,
                    n=t.eval_n,
                    device=str(self.device),
                    seed=t.seed,
                    log=self.log,
                )
            except ValueError as e:  # no metric computable here (DataError, ConfigError, ...): training goes on
                self.log(f"warning: eval_every: {str(e).splitlines()[0]}")
                return
        plot_metrics(self.out_dir)
        if self.tb is not None:
            self.tb.scalars(self.step, {f"eval_{k}": v for k, v in results.items()})

    def validate(self, G: nn.Module) -> dict[str, float]:
        """L1 (model range), PSNR and SSIM (on RGB in [0, 1]) over the validation split."""
        from gankit.metrics.paired import PairedMetrics

        assert self.val_data is not None
        metrics = PairedMetrics(space=self.info.space)
        bs = max(1, min(16, self.cfg.train.batch_size * 4))
        for start in range(0, len(self.val_data), bs):
            idx = torch.arange(start, min(start + bs, len(self.val_data)))
            b = self.val_data.batch(idx, device=self.device, generator=None)
            with self._autocast():
                out = G(b["input"])
            metrics.update(b["input"], out.float(), b["target"])
        return {f"val_{k}": v for k, v in metrics.compute().items()}


def train(cfg: Config, out_dir: str | Path, *, resume: bool = False, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (see :class:`Trainer`); under torchrun, one call per process."""
    out_dir = Path(out_dir)
    created = not out_dir.exists() and distributed.launch_rank() == 0
    try:
        try:
            trainer = Trainer(cfg, out_dir, resume=resume, log=log)
        except RunFolderBusy:
            raise  # the folder is the other process's, even one it created a moment ago
        except BaseException:
            # a run that never started leaves no folder behind (one that did keeps its checkpoints)
            if created and out_dir.is_dir() and not (out_dir / CHECKPOINTS_DIR / LAST).exists():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        return trainer.fit()
    finally:
        distributed.shutdown()
