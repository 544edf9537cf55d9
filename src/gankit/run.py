"""The run folder: the one module that knows its layout and the formats of its files.

``gankit train`` writes one folder per run (``runs/PRESET-DATE-TIME`` unless ``--out`` names one)::

    RUN/
      config.yaml          the resolved config (Config.save; read back by Config.load)
      run.json             the run record: what the run actually loaded and ran on
      stats.jsonl          training losses, one row per ``train.log_every`` steps
      metrics.jsonl        one row per epoch end: speed and validation numbers
      eval.jsonl           one row per evaluation (``gankit eval``, ``train.eval_every``)
      loss.png metrics.png the plots of stats/metrics.jsonl and of eval.jsonl
      samples/             epoch_NNNN.png per epoch, step_NNNNNNN.png where a run ends mid-epoch
      checkpoints/         last.pt (full training state) and last.prev.pt (the one before),
                           G_last.pt, G_best.pt (lowest val_l1), G_epochNNNN.pt (generator snapshots),
                           D_imported.pt (``gankit import --netD``)
      imported.json        where an imported run's weights came from
      tb/                  TensorBoard events (``train.tensorboard``)
      report.html          ``gankit report``
      .train.lock          held by the one process that trains into the folder

Every other module asks :class:`RunFolder` for these paths, and for reading and writing the
config, the run record, the training states and snapshots, the jsonl streams and the grids.
The mechanics of writing a checkpoint safely live in :mod:`gankit.training.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from gankit.config import Config, ConfigError
from gankit.data.errors import DataError
from gankit.locks import Busy, atomic_path, lock_file
from gankit.training.checkpoint import (
    CheckpointError,
    atomic_save,
    disk_use_warning,
    find_newest_state,
    save_rotating,
    snapshot_problem,
)
from gankit.training.stats import JsonlLog, read_jsonl

Log = Callable[[str], None]

RUNS = Path("runs")
"""Where ``gankit train`` puts a run without ``--out`` (relative to the working folder)."""

DEFAULT_CHECKPOINT = "last"
"""The snapshot that ``translate``, ``colorize``, ``eval`` and ``sample`` use from a run folder.

``last`` (``G_last.pt``), not ``best``: ``G_best.pt`` is chosen by validation L1, which favours
blurry, desaturated outputs over sharp plausible ones, and one default for every command means
the model that ``gankit eval`` scores is the model the other commands run."""

CHECKPOINT_CHOICES = ("best", "last")

BEST_KEY = "val_l1"
"""The validation number that picks ``G_best.pt`` (lower is better)."""

# the names of the layout above; only this module spells them
_CONFIG = "config.yaml"
_RECORD = "run.json"
_CHECKPOINTS = "checkpoints"
_G_LAST = "G_last.pt"
_G_BEST = "G_best.pt"
_STATE = "last.pt"
_PREV_STATE = "last.prev.pt"


class RunFolderBusy(ConfigError):
    """Another process is training into the same run folder."""


class RunFolder:
    """A run folder at ``path`` (which need not exist yet): its files, and reading and writing them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: ExitStack | None = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ finding a run
    @classmethod
    def new(cls, preset: str, root: Path = RUNS) -> RunFolder:
        """A fresh folder for a run of ``preset``: ``runs/PRESET-DATE-TIME``."""
        return cls(root / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}")

    @classmethod
    def newest(cls, preset: str, root: Path = RUNS) -> RunFolder | None:
        """The newest (last modified) ``runs/PRESET-*`` folder, as ``--resume`` without ``--out`` takes it."""
        runs = sorted(root.glob(f"{preset}-*"), key=lambda p: p.stat().st_mtime)
        return cls(runs[-1]) if runs else None

    @classmethod
    def at(cls, folder: str | Path) -> RunFolder:
        """The run folder a folder names: itself, or the run holding it when it is a ``checkpoints/`` folder."""
        p = Path(folder)
        return cls(p.parent if p.name == _CHECKPOINTS else p)

    @classmethod
    def of_checkpoint(cls, file: str | Path) -> RunFolder | None:
        """The run folder holding the checkpoint ``file`` (None when it is not in a ``checkpoints/`` folder)."""
        p = Path(file)
        return cls(p.parent.parent) if p.parent.name == _CHECKPOINTS else None

    @classmethod
    def containing(cls, path: str | Path) -> RunFolder | None:
        """The run folder of a run folder, its ``checkpoints/`` folder or a checkpoint file inside it."""
        p = Path(path)
        return cls.at(p) if p.is_dir() else cls.of_checkpoint(p)

    @classmethod
    def find(cls, path: str | Path) -> RunFolder:
        """The run folder ``path`` names (its ``checkpoints/`` folder also works), else a DataError."""
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such run folder; pass the folder that 'gankit train' wrote")
        if not p.is_dir():
            raise DataError(f"{p} is a file, not a run folder; pass the folder that holds {_CONFIG}")
        run = cls.at(p) if cls.at(p).config.is_file() else cls(p)
        if not run.config.is_file():
            raise DataError(f"{p} is not a gankit run folder (no {_CONFIG}); pass the folder that 'gankit train' wrote")
        return run

    @classmethod
    def recorded_under(cls, where: Path) -> list[RunFolder]:
        """The folders in ``where/runs/`` and ``where/`` that hold a run record."""
        return [cls(p.parent) for p in {*where.glob(f"{RUNS}/*/{_RECORD}"), *where.glob(f"*/{_RECORD}")}]

    # ------------------------------------------------------------------ the layout
    @property
    def config(self) -> Path:
        return self.path / _CONFIG

    @property
    def record(self) -> Path:
        return self.path / _RECORD

    @property
    def stats(self) -> Path:
        return self.path / "stats.jsonl"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def evals(self) -> Path:
        return self.path / "eval.jsonl"

    @property
    def loss_plot(self) -> Path:
        return self.path / "loss.png"

    @property
    def metrics_plot(self) -> Path:
        return self.path / "metrics.png"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints(self) -> Path:
        return self.path / _CHECKPOINTS

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def imported_record(self) -> Path:
        return self.path / "imported.json"

    @property
    def lock_path(self) -> Path:
        """Locked by the process that trains into the folder; holds its pid."""
        return self.path / ".train.lock"

    @property
    def state(self) -> Path:
        """The newest full training state."""
        return self.checkpoints / _STATE

    @property
    def prev_state(self) -> Path:
        """The state before :attr:`state`, kept in case the newest is damaged."""
        return self.checkpoints / _PREV_STATE

    @property
    def _staging_state(self) -> Path:
        return self.checkpoints / f".{_STATE}.new"

    @property
    def g_last(self) -> Path:
        return self.checkpoints / _G_LAST

    @property
    def g_best(self) -> Path:
        return self.checkpoints / _G_BEST

    @property
    def d_imported(self) -> Path:
        return self.checkpoints / "D_imported.pt"

    def epoch_snapshot(self, epoch: int) -> Path:
        """The generator snapshot of epoch ``epoch`` (1-based, as the file names count)."""
        return self.checkpoints / f"G_epoch{epoch:04d}.pt"

    def epoch_snapshots(self) -> list[Path]:
        """The per-epoch generator snapshots, oldest first."""
        return sorted(self.checkpoints.glob("G_epoch*.pt"))

    def grid(self, epoch: int, *, final: bool = False, step: int = 0) -> Path:
        """The sample grid of the end of ``epoch`` (0-based), or of a run that ends at ``step`` mid-epoch."""
        return self.samples / (f"step_{step:07d}.png" if final else f"epoch_{epoch + 1:04d}.png")

    # ------------------------------------------------------------------ what it holds
    def holds_state(self) -> bool:
        """Whether a full training state is here (a run that has started)."""
        return self.state.is_file() or self.prev_state.is_file()

    def holds_run(self) -> bool:
        """Whether the folder holds a run to resume (its config, or a training state, which holds a copy)."""
        return self.config.is_file() or self.holds_state()

    def remove_if_unstarted(self) -> None:
        """Delete the folder unless it holds a training state (a run that never started leaves nothing)."""
        if self.path.is_dir() and not self.state.exists():
            shutil.rmtree(self.path, ignore_errors=True)

    # ------------------------------------------------------------------ training into it
    def prepare(self, *, resume: bool, family: str, log: Log = print) -> tuple[Path, dict[str, Any]] | None:
        """Create and lock the folder for training (rank 0); the state to resume and its file, if any.

        Refuses a folder that holds a run without ``resume``, one that holds generator weights but
        no state (an imported or copied model), and a state of another family. The lock is held
        until :meth:`release`.
        """
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            self.samples.mkdir(exist_ok=True)
            self.lock()  # also the check that the folder is writable
        except OSError as e:
            raise ConfigError(f"--out {self.path}: cannot write to the run folder ({e.strerror})") from None
        try:
            found = self.find_state(log) if resume else None
            if not resume and self.holds_state():
                raise ConfigError(
                    f"{self.path} already holds a run; pass --resume to continue it or choose another --out"
                )
            if found is None and self.g_last.exists():  # never train over a generator
                raise ConfigError(
                    f"{self.path} holds generator weights ({self.g_last.relative_to(self.path)}) but no training "
                    f"state to resume (an imported or copied model?); train into another --out"
                )
            if found is not None and found[1].get("family") != family:
                raise CheckpointError(f"{found[0]}: checkpoint of family '{found[1].get('family')}', not '{family}'")
        except BaseException:
            self.release()
            raise
        return found

    def lock(self) -> None:
        """Hold an exclusive lock on the folder until :meth:`release` (or the process ends).

        Two processes writing one run folder would interleave checkpoints and logs; the second one
        refuses with :class:`RunFolderBusy`. The kernel drops the lock when the process ends, however
        it ends, so a killed run never leaves a stale lock behind.
        """

        def busy(holder: str) -> str:
            return (
                f"{self.path} is being trained by another process ({holder or 'pid unknown'}); "
                f"wait for it or choose another --out"
            )

        held = ExitStack()
        try:
            held.enter_context(lock_file(self.lock_path, wait=False, busy=busy))
        except Busy as e:
            raise RunFolderBusy(str(e)) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            # a file system without locks (some network mounts): train unlocked
        self._lock = held

    def release(self) -> None:
        """Let go of the lock taken by :meth:`lock` (nothing when none is held)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------------ config and run record
    def save_config(self, cfg: Config) -> None:
        """Write ``config.yaml`` (whole or not at all)."""
        cfg.save(self.config)

    def load_config(self, log: Log = print) -> Config:
        """The config the run was trained with.

        ``config.yaml`` when it is readable (:meth:`Config.load`); when it is missing or damaged, the
        copy every training state holds, with a warning (training rewrites config.yaml). Raises
        :class:`ConfigError` naming the file when neither is usable.
        """
        path = self.config
        if not path.is_file():
            problem = "missing"
        else:
            try:
                return Config.load(path)
            except ConfigError as e:
                problem = str(e).removeprefix(f"{path} is ").split(";")[0]
        try:
            found = self.find_state(log)
        except CheckpointError:
            found = None
        if found is None or not isinstance(found[1].get("config"), dict):
            raise ConfigError(
                f"{path}: {problem}, and no training state in {self.checkpoints} holds a copy; "
                f"restore the file, or train into another --out"
            )
        log(f"warning: {path}: {problem}; using the config saved in {found[0]} (config.yaml is rewritten)")
        return Config.from_dict(found[1]["config"], source=f"{found[0]} (saved config)")

    def config_text(self) -> str:
        return self.config.read_text()

    def write_record(
        self,
        cfg: Config,
        info: Any,
        images: tuple[int, int],
        device: str,
        world_size: int,
        log: Log = print,
    ) -> None:
        """``run.json``: what the run actually loaded and ran on (the config says what was asked).

        ``info`` is the training set's :class:`~gankit.data.base.DataInfo`, ``images`` the numbers
        of training and validation images. A resume keeps the first start time.
        """
        train_images, val_images = images
        import torch

        from gankit import __version__

        facts = dataclasses.asdict(info)
        record = {
            "family": cfg.family,
            "preset": cfg.preset,
            "dataset": {
                "name": facts.get("dataset") or cfg.data.name,
                "source": facts.get("source") or cfg.data.path,
                "given": facts.get("given", ""),
                "train_images": train_images,
                "val_images": val_images,
                "val_source": facts.get("val_source", ""),
                "subset": facts.get("subset", ""),
                "storage": facts.get("storage", ""),
            },
            "device": device,
            "world_size": world_size,
            "gankit": __version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        path = self.record
        if path.is_file():
            try:
                started = json.loads(path.read_text(encoding="utf-8"))["started"]
                if not isinstance(started, str):
                    raise TypeError("'started' is not a time")
                record["started"] = started
            except (OSError, ValueError, KeyError, TypeError) as e:
                log(f"warning: {path}: damaged ({type(e).__name__}); rewritten, without the first start time")
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")

    def read_record(self) -> dict[str, Any]:
        """``run.json`` as written by :meth:`write_record`; empty when missing or damaged."""
        try:
            record = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def recorded_dataset(self) -> dict[str, Any]:
        """The run record's ``dataset`` (name, source, given, sizes, storage); empty when unknown."""
        dataset = self.read_record().get("dataset")
        return dataset if isinstance(dataset, dict) else {}

    # ------------------------------------------------------------------ training states and snapshots
    def save_state(self, state: dict[str, Any], *, keep_prev: bool = True, log: Log | None = None) -> Path:
        """Write the full training state (:attr:`state`), keeping the one before as :attr:`prev_state`
        unless ``keep_prev`` is false (``train.keep_prev_state``).

        Before the run's first state, a run whose checkpoints would fill more than
        :data:`~gankit.training.checkpoint.DISK_SHARE` of the free disk gets one warning through ``log``.
        """
        if log is not None and not self.state.exists():
            warning = disk_use_warning(self.checkpoints, state, keep_prev=keep_prev)
            if warning:
                log(f"warning: {warning}")
        with self._write_errors(state):
            return save_rotating(
                state, self.state, previous=self.prev_state, staging=self._staging_state, keep_prev=keep_prev
            )

    def find_state(self, log: Log = print) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable full training state and its file (None when there is none).

        A damaged or missing :attr:`state` next to a good :attr:`prev_state` gives the latter, with a
        warning; a complete new state that a kill stopped before its rename comes first.
        """
        return find_newest_state(self._staging_state, self.state, self.prev_state, log=log)

    def save_snapshot(self, snapshot: dict[str, Any], paths: list[Path]) -> None:
        """Write the generator snapshot to each of ``paths`` (files of :attr:`checkpoints`)."""
        with self._write_errors(snapshot):
            for path in paths:
                atomic_save(snapshot, path)

    @contextmanager
    def _write_errors(self, checkpoint: dict[str, Any]) -> Iterator[None]:
        """A full disk or a read-only folder as one line naming the folder and the step."""
        try:
            yield
        except OSError as e:
            raise CheckpointError(
                f"cannot write a checkpoint to {self.checkpoints} at step {checkpoint.get('step')}: "
                f"{e.strerror or e}; the previous checkpoint there is intact"
            ) from None

    def snapshots_due(self, epoch: int, total_epochs: int, *, final: bool) -> list[Path]:
        """The snapshots written at the end of ``epoch`` (0-based): ``G_last.pt``, and every tenth of
        the run's epochs a ``G_epochNNNN.pt`` (never at a mid-epoch end of the run)."""
        every = max(1, total_epochs // 10)
        due = [self.g_last]
        if (epoch + 1) % every == 0 and not final:
            due.append(self.epoch_snapshot(epoch + 1))
        return due

    def prune_snapshots(self, keep: int) -> None:
        """Keep the newest ``keep`` per-epoch snapshots (``G_last``/``G_best`` and the states stay)."""
        snaps = self.epoch_snapshots()
        for old in snaps[: max(0, len(snaps) - keep)]:
            old.unlink(missing_ok=True)

    def check_snapshots(
        self,
        *,
        step: int,
        best: dict[str, float],
        state_path: Path | None,
        rewrite_last: Callable[[], None],
        log: Log = print,
    ) -> dict[str, float]:
        """On resume: rebuild a damaged ``G_last.pt`` (``rewrite_last``, from the state); forget a
        damaged ``G_best.pt`` (the next better validation writes a new one); name damaged per-epoch
        snapshots. Returns the best validation record to go on with."""
        last = self.g_last
        problem = snapshot_problem(last) or ("missing" if not last.exists() and step > 0 else None)
        if problem:
            log(f"warning: {last}: {problem}; rewritten from {state_path} (step {step})")
            rewrite_last()
        if best:
            problem = snapshot_problem(self.g_best) or ("missing" if not self.g_best.exists() else None)
            if problem:
                log(
                    f"warning: {self.g_best}: {problem}; the next validation writes a new one "
                    f"(the best so far, {BEST_KEY} {best.get(BEST_KEY, math.nan):.4f} at step "
                    f"{best.get('step', '?')}, is lost)"
                )
                best = {}
        for path in self.epoch_snapshots():
            problem = snapshot_problem(path, full=False)
            if problem:
                log(f"warning: {path}: {problem}; it cannot be rebuilt: delete it")
        return best

    # ------------------------------------------------------------------ jsonl streams and grids
    @property
    def stats_log(self) -> JsonlLog:
        return JsonlLog(self.stats)

    @property
    def metrics_log(self) -> JsonlLog:
        return JsonlLog(self.metrics)

    @property
    def eval_log(self) -> JsonlLog:
        return JsonlLog(self.evals)

    def read_stats(self, warn: Log | None = None) -> list[dict[str, Any]]:
        return read_jsonl(self.stats, warn=warn)

    def read_metrics(self, warn: Log | None = None) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics, warn=warn)

    def read_evals(self, warn: Log | None = None) -> list[dict[str, Any]]:
        """The rows of ``eval.jsonl``, ordered by training step."""
        return sorted(read_jsonl(self.evals, warn=warn), key=lambda r: r.get("step", 0))

    def stats_row(self, step: int, warn: Log | None = None) -> dict[str, float]:
        """The losses ``stats.jsonl`` holds for ``step`` (empty when it has no row for it)."""
        rows = [r for r in self.read_stats(warn) if r["step"] == step]
        return {k: v for k, v in rows[-1].items() if k not in ("step", "epoch")} if rows else {}

    def sample_grids(self, metrics: list[dict[str, Any]]) -> list[tuple[str, Path]]:
        """(label, path) of the grids ``samples/epoch_NNNN.png`` (and a final ``step_NNNNNNN.png``),
        ordered by training step (``metrics``: the rows of ``metrics.jsonl``, which date the epochs)."""
        epoch_step = {int(r["epoch"]): int(r["step"]) for r in metrics if "epoch" in r and "step" in r}
        found = []
        for p in sorted(self.samples.glob("*.png")) if self.samples.is_dir() else []:
            kind, _, num = p.stem.partition("_")
            if not num.isdigit():
                continue
            n = int(num)
            if kind == "epoch":
                step = epoch_step.get(n)
                label = f"epoch {n}" + (f", step {step}" if step is not None else "")
                # without metrics.jsonl the epoch number still orders the grids; a final step_ grid comes last
                found.append(((0, step) if step is not None else (1, n), label, p))
            elif kind == "step":
                found.append(((0, n), f"step {n} (end of training)", p))
        found.sort(key=lambda t: t[0])
        return [(label, p) for _, label, p in found]


def better_than_best(val: dict[str, float], best: dict[str, float]) -> bool:
    """Whether the validation numbers ``val`` beat the run's best so far (what ``G_best.pt`` holds)."""
    return bool(val) and val.get(BEST_KEY, math.inf) < best.get(BEST_KEY, math.inf)


def resolve_checkpoint(path: str | Path, which: str | Path | None = None, *, prefer_best: bool = False) -> Path:
    """The generator snapshot to load from a run folder or checkpoint file.

    Args:
        path: a run folder (or its ``checkpoints/`` folder), or a checkpoint file.
        which: ``"last"`` (``G_last.pt``, else the full state ``last.pt``), ``"best"``
            (``G_best.pt``, the best validation L1; an error if the run has none), or the path of a
            checkpoint file, absolute or relative to the run's ``checkpoints/`` folder (e.g.
            ``G_epoch0010.pt``). Default: :data:`DEFAULT_CHECKPOINT`. Ignored when ``path`` is a file.
        prefer_best: the older spelling of ``which="best"``, kept for existing callers; unlike
            ``which="best"`` it falls back to the last snapshot when there is no ``G_best.pt``.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such run folder or checkpoint file")
    if not p.is_dir():
        return p
    ckpt = p / _CHECKPOINTS if (p / _CHECKPOINTS).is_dir() else p
    if which is None:
        which = "best" if prefer_best else DEFAULT_CHECKPOINT
        strict = not prefer_best
    else:
        strict = True
    if str(which) not in CHECKPOINT_CHOICES:
        f = Path(which)
        for candidate in (f, ckpt / f):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"--checkpoint {which}: no such file (nor in {ckpt}); pass best, last or a checkpoint file"
        )
    names = [_G_BEST] if which == "best" else []
    if which == "last" or not strict:
        names += [_G_LAST, _STATE]
    for name in names:
        if (ckpt / name).is_file():
            return ckpt / name
    if which == "best" and strict:
        raise CheckpointError(
            f"{p}: no {_G_BEST} in {ckpt} (written only by runs with validation); use --checkpoint last"
        )
    raise CheckpointError(f"{p}: no generator checkpoint found (looked for {', '.join(names)} in {ckpt})")


def save_training_state(
    checkpoints: str | Path, state: dict[str, Any], *, keep_prev: bool = True, log: Log | None = None
) -> Path:
    """Write ``state`` as the newest full state of the run whose ``checkpoints/`` folder is given."""
    return RunFolder.at(checkpoints).save_state(state, keep_prev=keep_prev, log=log)


def load_training_state(checkpoints: str | Path, log: Log = print) -> dict[str, Any] | None:
    """The newest readable full state of the run whose ``checkpoints/`` folder is given (None when none)."""
    found = RunFolder.at(checkpoints).find_state(log)
    return found[1] if found is not None else None
