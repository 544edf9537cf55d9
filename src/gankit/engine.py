"""How a loaded generator runs: onnxruntime from a cached, verified export, or PyTorch's inference path.

``gankit translate``, ``colorize``, ``sample``, ``eval`` and ``serve`` call their generator as
``loaded(...)`` (:class:`gankit.loading.LoadedGenerator`); :func:`use_engine` decides once, after
the network is in the mode it samples in, what runs behind that call, and says so in one log line:

* ``onnxruntime``: the generator's ONNX graph (:mod:`gankit.export`, checked against PyTorch before
  it is kept), exported once per snapshot into ``cache_dir()/onnx`` (``gankit cache``), with as many
  threads as PyTorch uses. U-Net graphs take any batch, height and width, so every ``--strategy``
  (resize, pad, tile) runs through it. It measured 1.4-1.75x faster than PyTorch's eager path on one
  CPU thread (BENCHMARKS.md, "ONNX export").
* ``torch``: the network itself under ``torch.inference_mode``; U-Nets on the CPU in channels_last.
* ``auto`` (the default, or ``$GANKIT_ENGINE``): onnxruntime where it can run the model as it samples,
  else torch with the reason in the log line. It cannot when the ``export`` extra is missing, the
  model is not on the CPU, or the network samples in train mode (``train.sampling=train`` or
  ``--train-mode``: batch statistics and dropout, which an ONNX graph cannot carry; the engine never
  switches a network between train and eval behaviour). ``--engine onnxruntime`` is then an error.

The torch path keeps only what paid on the 2-core AVX2 CPU of BENCHMARKS.md (one thread, interleaved
rounds, median ms per call, eval mode):

====================  =======  =============  ==========  =====================
model (input)         eager    channels_last  jit.freeze  jit.freeze + oneDNN
====================  =======  =============  ==========  =====================
U-Net 128 (1x3x128²)  115      **103**        110         85-119 (unsteady)
U-Net 256 (1x3x256²)  210      **188**        196         177
U-Net 256 (4x3x256²)  608      **539**        644
DCGAN 64 (16 z)       30-38    31-35          33-37       37
MLP GAN (256 z)       2.0-3.6  --             2.1-2.9     0.8
====================  =======  =============  ==========  =====================

channels_last pays for the U-Net's inference (10-12%; its training is slower in it, see README
"Speed") and is used there; it is within noise for the DCGAN, which keeps its layout. TorchScript
freezing and oneDNN graph fusion did not pay steadily on the convolutional models, and the MLP's
gain is ~2 ms per 256 images, so neither is used; ``inference_mode`` over ``no_grad`` is within
noise but never slower. Outputs of every engine equal the eager network's within the export's
tolerance (1e-4; ``tests/test_engine.py``).

The cache (its files and sessions in :mod:`gankit.onnxcache`, listed and cleared by
:mod:`gankit.caches`): one ``.onnx`` file per snapshot file and family, named ``FAMILY-PATH-KEY.onnx``.
KEY is the sha256 of the snapshot as loaded (its config, data shapes and every weight and buffer; with
the gankit version and opset), so a newer snapshot, or retrained weights in the same file, is exported
again and the older export of that file removed. It is taken from the weights in memory rather than
re-read from the file, so a run that replaces ``G_last.pt`` meanwhile cannot pair one snapshot's key
with another's graph. Hashing 217 MB of U-Net weights takes a noticeable part of a second, so the key is
remembered beside the exports, in ``FAMILY-PATH.key.json``, against the file's identity as it was read
(inode, size, mtime and ctime, unchanged during the read) and how it was loaded: loading the unchanged
file again reads the key from there, and a file rewritten or replaced since is hashed again. Exports and
keys are written atomically, exports under a lock: a second process waits for the first and uses its
file.

Beside each export, the graph onnxruntime optimized from it for this CPU is kept and opened by later
sessions; ``gankit translate`` and ``colorize`` open it in a thread while PyTorch is imported and the
snapshot loads. The cache's files and sessions: :mod:`gankit.onnxcache`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.config import ConfigError
from gankit.formatting import Spelling, human_bytes, keyword
from gankit.loading import LoadedGenerator
from gankit.locks import lock_file
from gankit.onnxcache import (
    OPSET,
    file_prefix,
    key_source,
    onnx_cache,
    optimized_session,
    remember_key,
    remembered_key,
    take_early,
)

ENGINES = ("auto", "torch", "onnxruntime")
ENV = "GANKIT_ENGINE"
"""Environment variable with the engine used when none is given (default ``auto``)."""
NO_EXTRA = "the export extra is not installed (pip install 'gankit[export]')"


class EngineUnavailable(ConfigError):
    """``engine="onnxruntime"`` was asked for a model or mode it cannot run (exit code 2)."""


def engine_name(engine: str | None, spell: Spelling = keyword) -> str:
    """``engine``, or ``$GANKIT_ENGINE``, or ``auto``; checked, with a did-you-mean for a typo."""
    given = engine if engine is not None else os.environ.get(ENV) or "auto"
    if given in ENGINES:
        return given
    close = difflib.get_close_matches(given, ENGINES, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"choose from {', '.join(ENGINES)}"
    shown = spell("engine", engine) if engine is not None else f"{ENV}={given}"
    raise ConfigError(f"{shown}: unknown engine; {hint}")


# ---------------------------------------------------------------------------------- the engines


class TorchEngine:
    """The network under ``torch.inference_mode``, U-Nets on the CPU in channels_last (see the table above)."""

    def __init__(self, G: nn.Module, *, channels_last: bool) -> None:
        self.G, self.channels_last = G, channels_last
        if channels_last:
            G.to(memory_format=torch.channels_last)

    @property
    def settings(self) -> str:
        return "inference_mode" + (", channels_last" if self.channels_last else "")

    def __call__(self, *inputs: Tensor | None) -> Tensor:
        with torch.inference_mode():
            if self.channels_last:
                inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])  # type: ignore[union-attr]
                # back to the default layout, so what follows runs exactly as after the eager network
                return self.G(*inputs).contiguous()
            return self.G(*inputs)


class OnnxEngine:
    """An onnxruntime session of the generator's exported graph (CPU tensors in, a CPU tensor out)."""

    def __init__(self, session: Any, G: nn.Module, path: Path) -> None:
        self.session, self.G, self.path = session, G, path
        self.inputs = [i.name for i in session.get_inputs()]

    def __call__(self, *inputs: Tensor | None) -> Tensor:
        if self.G.training:  # the graph is eval mode; a caller that switched the network must not get it silently
            raise RuntimeError(f"{self.path.name}: the network was put in train mode; the ONNX graph runs eval mode")
        # None is an unconditional model's missing labels; the graph has no input for it
        given = [t for t in inputs if t is not None]
        feed = {name: t.detach().cpu().contiguous().numpy() for name, t in zip(self.inputs, given)}
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out)


# ---------------------------------------------------------------------------------- choosing


def use_engine(
    loaded: LoadedGenerator,
    engine: str | None = None,
    *,
    log: Callable[[str], object] = print,
    spell: Spelling = keyword,
) -> str:
    """Attach the engine to ``loaded`` (so that ``loaded(...)`` runs through it) and log which one ran.

    Call it once the network is in the mode it samples in (``loaded.G.training``), on the device it
    runs on. ``engine``: ``auto``, ``torch`` or ``onnxruntime``; None reads ``$GANKIT_ENGINE``
    (default ``auto``). Returns the engine's name. Raises :class:`EngineUnavailable` when
    ``onnxruntime`` was asked for and cannot run this model (the reason in one line), and
    :class:`gankit.export.ExportNeedsExtra` when its packages are missing.
    """
    from gankit.export import ExportError, require_onnx

    name = engine_name(engine, spell)
    reason = None
    if name != "torch":
        reason = _onnx_obstacle(loaded)
        if reason is None:
            try:
                loaded.engine, note = _onnx_engine(loaded, log)
                log(f"engine: onnxruntime ({note})")
                return "onnxruntime"
            except ExportError as e:  # the exporter failed, or its graph did not reproduce PyTorch
                if name == "onnxruntime":
                    raise
                reason = str(e).splitlines()[0]
        elif name == "onnxruntime":
            if reason == NO_EXTRA:
                require_onnx()  # raises ExportNeedsExtra, with the pip command
            raise EngineUnavailable(f"{spell('engine', 'onnxruntime')}: {reason}; use {spell('engine', 'torch')}")
    cpu = next(loaded.G.parameters()).device.type == "cpu"
    runner = TorchEngine(loaded.G, channels_last=cpu and loaded.family.kind == "paired")
    loaded.engine = runner
    log(f"engine: torch ({runner.settings})" + (f"; not onnxruntime: {reason}" if reason else ""))
    return "torch"


def _onnx_obstacle(loaded: LoadedGenerator) -> str | None:
    """Why onnxruntime cannot run ``loaded`` as it samples now, or None when it can."""
    if loaded.sampling == "train":
        return (
            f"{loaded.path.name} samples in train mode (train.sampling=train: batch statistics, dropout), "
            "which an ONNX graph cannot carry"
        )
    if loaded.G.training:
        return "the network runs in train mode (dropout, per-image statistics), which an ONNX graph cannot carry"
    param = next(loaded.G.parameters())
    if param.device.type != "cpu":
        return f"the model is on {param.device} and gankit runs onnxruntime on the CPU"
    if param.dtype != torch.float32:
        return f"the export is float32 and the model is {param.dtype}"
    # found, not imported: a cached export needs only onnxruntime, and onnx + onnxscript take ~1.5 s to import
    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")):
        return NO_EXTRA
    return None


def snapshot_key(loaded: LoadedGenerator, memo: Path | None = None) -> str:
    """sha256 of the snapshot as loaded: what the graph depends on (config, data shapes, every weight
    and buffer in memory), with the gankit version and ONNX opset that export it.

    With ``memo`` (a JSON file), the key of a network that :func:`~gankit.loading.load_generator` read
    from a file and that is unchanged in memory since (:meth:`LoadedGenerator.as_loaded`) is kept
    there against that file's identity and the load's options, gankit version and opset: the next
    load of the unchanged file finds it without hashing the weights again. One key per memo file; an
    unreadable memo is hashed over, one that cannot be written is left as it is.
    """
    source = loaded.as_loaded()
    if memo is None or source is None:
        return _hash_snapshot(loaded)
    of = key_source(source.path, source.stat, source.zero_taps)
    key = remembered_key(memo, of)
    if key is None:
        key = _hash_snapshot(loaded)
        remember_key(memo, of, key)
    return key


def _hash_snapshot(loaded: LoadedGenerator) -> str:
    """The sha256 of :func:`snapshot_key`, computed from the network in memory."""
    import gankit

    h = hashlib.sha256()
    facts = {
        "gankit": gankit.__version__,
        "opset": OPSET,
        "family": loaded.family.name,
        "model": loaded.cfg.to_dict()["model"],
        "info": [getattr(loaded.info, k) for k in ("channels", "resolution", "num_classes", "in_channels", "space")],
    }
    h.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for name, t in sorted(loaded.G.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cached_session(loaded: LoadedGenerator, log: Callable[[str], object] = print) -> tuple[Any, Path, str]:
    """An onnxruntime session of the verified ONNX export of ``loaded`` in the cache, exported now if
    needed: ``(session, file, what happened)``.

    Under a lock per snapshot file, so that a second process waits for the first one's export and
    uses it; older exports of the same snapshot file are removed once the new one is in place (a
    session has read its file whole, so removing it later does not disturb another process).
    """
    import onnxruntime as ort

    from gankit.export import export_onnx

    folder, threads = onnx_cache(), torch.get_num_threads()
    stem = file_prefix(loaded.path, loaded.family.name)
    path = folder / f"{stem}-{snapshot_key(loaded, folder / f'{stem}.key.json')[:20]}.onnx"

    def waiting(holder: str) -> None:
        log(f"engine: waiting for another process ({holder or 'unknown'}) exporting {loaded.path.name}")

    early = take_early(path, threads)  # opened while the snapshot loaded (open_early)
    with lock_file(folder / f".{stem}.lock", on_wait=waiting, note="gankit engine export", remove=True):
        how = "cached export"
        if early is not None and path.is_file():
            return early, path, how
        if not path.is_file():
            start = time.monotonic()
            report = export_onnx(loaded, path, overwrite=True, log=lambda line: None)
            how = f"exported in {time.monotonic() - start:.1f} s, max abs diff {report.max_abs_diff:.1e} vs PyTorch, to"
            for old in folder.glob(f"{stem}-*.onnx"):
                if old != path:
                    old.unlink(missing_ok=True)
        session = optimized_session(path, ort, threads=threads)
    return session, path, how


def _onnx_engine(loaded: LoadedGenerator, log: Callable[[str], object]) -> tuple[OnnxEngine, str]:
    """The onnxruntime engine of ``loaded`` and the log note (which file, how large, cached or new)."""
    session, path, how = cached_session(loaded, log)
    return OnnxEngine(session, loaded.G, path), f"{how} {path}, {human_bytes(path.stat().st_size)}"
