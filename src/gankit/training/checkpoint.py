"""Checkpoints: full training state and generator snapshots, written atomically.

Both kinds hold only state dicts, tensors and plain Python values, so they load with
``torch.load(weights_only=True)``: opening a checkpoint never runs code from the file.

* the full training state: everything needed to continue bit-exactly (models, optimizers, grad
  scalers, EMA, counters, RNG states). The previous one is kept beside it (:func:`save_rotating`);
  if the newest is damaged, :func:`find_newest_state` falls back to it with a message.
* generator snapshots: the generator (EMA weights when enabled) and the config, for sampling,
  inference and metrics.

This module holds the mechanics; where the files of a run live (and their names) is
:class:`gankit.run.RunFolder`'s.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import re
import shutil
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and the problem."""


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


CHECKPOINT_FORMAT = 3
"""2: cGAN generators use LeakyReLU(0.2) (format-1 cGAN checkpoints are refused on load).
3: DCGAN channel widths stop at ngf*8 / ndf*8 above 64 px (format-2 DCGANs above 64 px are refused)."""


def generator_snapshot(
    cfg: Any, info: Any, G_state: dict[str, Any], *, step: int = 0, ema: bool = False, **extra: Any
) -> dict[str, Any]:
    """The generator-only checkpoint (``G_last.pt``, ``G_best.pt``, ...) that sampling, translate,
    eval, export and serve load: the config and data facts rebuild the network, ``G`` fills it.

    ``cfg`` is a :class:`~gankit.config.Config`, ``info`` a :class:`~gankit.data.base.DataInfo`;
    ``extra`` keys (e.g. ``imported``) are stored alongside.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "family": cfg.family,
        "config": cfg.to_dict(),
        "info": dataclasses.asdict(info),
        "G": G_state,
        "step": step,
        "ema": ema,
        **extra,
    }


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False) -> dict[str, Any]:
    """Load a gankit checkpoint with ``weights_only=True``; any failure becomes a CheckpointError.

    ``mmap``: map the tensors from the file instead of reading them (copy-on-write: writes stay in
    memory), so that only what is used is read; a file torch cannot map (saved in its pre-zip
    format) is read as usual. :func:`gankit.loading.load_generator` maps: the onnxruntime engine
    never touches the 217 MB of a 256 px U-Net's weights (0.10-0.13 -> 0.02 s).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            try:
                obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
            except Exception:
                if not mmap:
                    raise
                obj = torch.load(path, map_location=map_location, weights_only=True)  # its error is the one told
    except Exception as e:  # truncated zip, pickle with code, wrong format ...
        raise CheckpointError(f"{path}: not a readable gankit checkpoint ({describe_load_failure(e)})") from None
    if not isinstance(obj, dict) or "config" not in obj or "G" not in obj:
        raise CheckpointError(f"{path}: not a gankit checkpoint (no config/generator inside)")
    if obj.get("family") == "cgan" and int(obj.get("format", 1)) < 2:
        # format 1 cGAN generators used ReLU; the course notes' (and gankit's since format 2) use
        # LeakyReLU(0.2): the same weights would silently give other images
        raise CheckpointError(
            f"{path}: a cGAN checkpoint of gankit 0.1, whose generator used ReLU where the course notes "
            f"use LeakyReLU(0.2); its weights do not fit today's generator. Retrain it: gankit train cgan"
        )
    info = obj.get("info")
    res = int(info.get("resolution", 0)) if isinstance(info, dict) else 0
    if obj.get("family") == "dcgan" and int(obj.get("format", 1)) < 3 and res > 64:
        # format-2 DCGANs kept doubling their widths past the 64-px network's ngf*8 (ngf*16 at 128 px)
        raise CheckpointError(
            f"{path}: a {res}px DCGAN checkpoint of an older gankit, whose widths doubled past ngf*8; "
            f"today's DCGAN stops at ngf*8, so its weights do not fit. Retrain it: gankit train dcgan "
            f"--set data.resolution={res}"
        )
    return obj


def describe_load_failure(e: BaseException) -> str:
    """A short reason why ``torch.load(..., weights_only=True)`` failed, for one-line messages.

    torch reports a file cut short (an interrupted copy, download or save) as an internal zip
    reader error with advice attached, or as a bare ``OSError`` (EINVAL) or ``KeyError``; these
    become "truncated or corrupt file" / "not a torch.save file, or corrupt". A pickle that would
    call code becomes "refused: ...". Anything else: the error's first line.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return f"refused: loading it would call '{refused.group(1)}'; nothing in the file was run"
    if isinstance(e, EOFError) or not text:
        return "empty or truncated file"
    if "PytorchStreamReader" in text or (isinstance(e, OSError) and e.errno == errno.EINVAL):
        return "truncated or corrupt file"  # the zip's directory is missing or points past the end
    if isinstance(e, KeyError) or "Weights only load failed" in text:  # KeyError: the legacy unpickler
        return "not a torch.save file, or corrupt"
    return text.splitlines()[0][:200]


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": random.getstate()[1],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_rotating(state: dict[str, Any], path: Path, *, previous: Path, staging: Path, keep_prev: bool = True) -> Path:
    """Write ``state`` to ``path``, keeping the file there before as ``previous`` (``keep_prev``).

    The new state is fully written (and fsynced) to ``staging`` before any rename, so at every
    moment at least one complete state exists on disk, whenever the process is killed. With
    ``keep_prev=False`` only ``path`` stays (half the disk; no fallback if it is damaged later), and
    a ``previous`` left by earlier saves is removed.
    """
    atomic_save(state, staging)
    if path.exists() and keep_prev:
        os.replace(path, previous)
    os.replace(staging, path)
    if not keep_prev:  # also a previous state of earlier saves: the option is there to free its space
        previous.unlink(missing_ok=True)
    return path


DISK_SHARE = 0.25
"""A run expected to write more than this share of the free disk is warned about once."""


def _tensor_bytes(obj: Any) -> int:
    """Bytes of all tensors in a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def expected_disk_use(state: dict[str, Any], *, keep_prev: bool = True) -> dict[str, int]:
    """What a run's checkpoints will take on disk, estimated from its first full state.

    Returns bytes: ``full`` (one full state: G, D, both Adam moments of each, EMA), ``snapshot`` (one
    generator file) and ``total``; and counts: ``states`` (``last.pt``, and ``last.prev.pt`` when
    ``keep_prev``), ``snapshots`` (``G_last.pt``, ``G_best.pt`` for image-to-image, and the
    ``epoch_snapshots`` the run will write, at most ``train.keep_snapshots``).
    README.md's "Disk" table is this arithmetic for the presets' defaults.
    """
    model_bytes = _tensor_bytes(state.get("G")) + _tensor_bytes(state.get("D"))
    # Adam's two moments per weight, counted whether or not an optimizer has stepped yet (D does not
    # during train.pretrain_epochs); buffers are counted too, a negligible overestimate
    others = {k: v for k, v in state.items() if k not in ("opt_G", "opt_D")}
    full = _tensor_bytes(others) + 2 * model_bytes
    snapshot = _tensor_bytes(state.get("ema") or state.get("G"))
    cfg = state.get("config", {})
    train, optim = cfg.get("train", {}), cfg.get("optim", {})
    info = state.get("info", {})
    total_epochs = int(train.get("pretrain_epochs", 0)) + int(train.get("epochs", 0))
    total_epochs += int(optim.get("decay_epochs", 0))
    epochs = total_epochs
    images_per_step = int(state.get("batch_size", 1)) * int(state.get("world_size", 1))
    per_epoch = int(info.get("num_images", 0)) // max(1, images_per_step)
    if int(train.get("max_steps", 0)) and per_epoch:
        epochs = min(epochs, int(train["max_steps"]) // per_epoch)
    every = max(1, total_epochs // 10)  # the loop's snapshot interval (Trainer.end_of_epoch)
    epoch_snapshots = min(int(train.get("keep_snapshots", 5)), epochs // every)
    snapshots = 1 + (1 if int(info.get("in_channels", 0)) else 0) + epoch_snapshots  # G_last, G_best, epochs
    states = 2 if keep_prev else 1
    return {
        "full": full,
        "snapshot": snapshot,
        "states": states,
        "snapshots": snapshots,
        "epoch_snapshots": epoch_snapshots,
        "total": states * full + snapshots * snapshot,
    }


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def disk_use_warning(ckpt_dir: Path, state: dict[str, Any], *, keep_prev: bool = True) -> str | None:
    """One line when the run's expected checkpoints exceed :data:`DISK_SHARE` of the free disk, else None."""
    use = expected_disk_use(state, keep_prev=keep_prev)
    try:
        free = shutil.disk_usage(ckpt_dir).free
    except OSError:
        return None
    if use["total"] <= DISK_SHARE * free:
        return None
    cuts = []
    if keep_prev:
        cuts.append(f"train.keep_prev_state=false keeps one full state ({_size(use['full'])} less)")
    if use["epoch_snapshots"]:
        epoch_bytes = use["epoch_snapshots"] * use["snapshot"]
        cuts.append(f"train.keep_snapshots=0 drops the epoch snapshots ({_size(epoch_bytes)} less)")
    cut = ("; --set " + ", ".join(cuts)) if cuts else ""
    return (
        f"this run's checkpoints will take about {_size(use['total'])} ({_count(use['states'], 'full state')} "
        f"of {_size(use['full'])}, {_count(use['snapshots'], 'generator file')} of {_size(use['snapshot'])}) and "
        f"{ckpt_dir} has {_size(free)} free{cut} (README: Disk)"
    )


def find_newest_state(
    staging: Path, path: Path, previous: Path, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable full state written by :func:`save_rotating`, and its file (None when there is none).

    A damaged or missing ``path`` next to a good ``previous`` gives the latter, with a warning. A
    complete ``staging`` state that a kill stopped before its rename is the newest of all and comes first.
    """
    errors = []
    for candidate in (staging, path, previous):
        if not candidate.exists():
            if candidate == path and previous.exists():
                errors.append(f"{candidate}: missing")
            continue
        try:
            state = safe_load(candidate)
            if "step" not in state:
                raise CheckpointError(f"{candidate}: a generator snapshot, not a full training state")
        except CheckpointError as e:
            if candidate != staging:  # an unfinished write is no loss: ``path`` is the state before it
                errors.append(str(e))
            continue
        if errors:
            log(f"warning: {errors[-1]}; resuming from {candidate.name} instead")
        return candidate, state
    if errors:
        raise CheckpointError("no usable checkpoint: " + "; ".join(errors))
    return None


def snapshot_problem(path: Path, *, full: bool = True) -> str | None:
    """Why the generator snapshot ``path`` is unusable (None when it is fine or absent).

    ``full=False`` only reads the zip directory at the end of the file: it finds the usual damage
    (a truncated file) without reading a large snapshot.
    """
    if not path.exists():
        return None
    if not full:
        try:
            with zipfile.ZipFile(path) as z:
                z.namelist()
            return None
        except (OSError, zipfile.BadZipFile) as e:
            return f"not a readable checkpoint ({e})"
    try:
        safe_load(path)
    except CheckpointError as e:
        return str(e).split(": ", 1)[-1]
    return None
