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

The cache (owned here, listed and cleared by :mod:`gankit.caches`): one ``.onnx`` file per snapshot
file and family, named ``FAMILY-PATH-KEY.onnx``. KEY is the sha256 of the snapshot as loaded (its
config, data shapes and every weight and buffer; with the gankit version and opset), so a newer
snapshot, or retrained weights in the same file, is exported again and the older export of that file
removed. It is taken from the weights in memory rather than re-read from the file, so a run that
replaces ``G_last.pt`` meanwhile cannot pair one snapshot's key with another's graph. Hashing 217 MB
of U-Net weights takes a noticeable part of a second, so the key is remembered beside the exports,
in ``FAMILY-PATH.key.json``, against the file's identity as it was read (inode, size, mtime and ctime,
unchanged during the read) and how it was loaded: loading the unchanged file again reads the key from
there, and a file rewritten or replaced since is hashed again. Exports and keys are written
atomically, exports under a lock: a second process waits for the first and uses its file.

Beside each export, the first session writes the graph as onnxruntime optimized it for this CPU
(``FAMILY-PATH-KEY.cpu-TAG.onnx``, TAG from onnxruntime's version and the CPU's instruction sets, as the
blocked convolution layout it picks depends on them), and later sessions open that one without
optimizing again: a 256 px U-Net's session took 0.56-0.73 s from the export and 0.20 s from its
optimized graph, which ran as fast (0.185-0.22 s per 4 images, 2 threads) with the same outputs.
It doubles the cache's size per snapshot (217 MB more for that U-Net). ``gankit translate`` and
``colorize`` open that session in a thread while the snapshot loads (:func:`open_early`), when the
file's key is remembered and its graphs are cached.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.config import ConfigError
from gankit.formatting import Spelling, human_bytes, keyword
from gankit.loading import LoadedGenerator
from gankit.locks import atomic_path, lock_file
from gankit.paths import cache_dir

ENGINES = ("auto", "torch", "onnxruntime")
ENV = "GANKIT_ENGINE"
"""Environment variable with the engine used when none is given (default ``auto``)."""
NO_EXTRA = "the export extra is not installed (pip install 'gankit[export]')"
CACHE_KIND = "onnx"
"""The cache folder's name under :func:`gankit.paths.cache_dir` (and its kind in ``gankit cache``)."""


class EngineUnavailable(ConfigError):
    """``engine="onnxruntime"`` was asked for a model or mode it cannot run (exit code 2)."""


def onnx_cache() -> Path:
    """Where exported graphs are kept: ``cache_dir()/onnx``."""
    return cache_dir() / CACHE_KIND


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
    import gankit
    from gankit.export import OPSET

    source = loaded.as_loaded()
    if memo is None or source is None:
        return _hash_snapshot(loaded)
    of = {"path": source.path, "stat": list(source.stat), "zero_taps": source.zero_taps}
    of |= {"gankit": gankit.__version__, "opset": OPSET}
    try:
        kept = json.loads(memo.read_text())
        if isinstance(kept, dict) and kept.get("of") == of and isinstance(kept.get("key"), str):
            return kept["key"]
    except (OSError, ValueError):  # none yet, or torn by hand: hashed again below
        pass
    key = _hash_snapshot(loaded)
    try:
        with atomic_path(memo) as tmp:
            tmp.write_text(json.dumps({"of": of, "key": key}, indent=1) + "\n")
    except OSError:  # a read-only cache: the key is only remembered where it can be
        pass
    return key


def _hash_snapshot(loaded: LoadedGenerator) -> str:
    """The sha256 of :func:`snapshot_key`, computed from the network in memory."""
    import gankit
    from gankit.export import OPSET

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

    folder = onnx_cache()
    where = hashlib.sha256(str(loaded.path.resolve()).encode()).hexdigest()[:8]
    stem = f"{loaded.family.name}-{where}"
    path = folder / f"{stem}-{snapshot_key(loaded, folder / f'{stem}.key.json')[:20]}.onnx"

    def waiting(holder: str) -> None:
        log(f"engine: waiting for another process ({holder or 'unknown'}) exporting {loaded.path.name}")

    early = _EARLY.pop(path, None)
    with lock_file(folder / f".{stem}.lock", on_wait=waiting, note="gankit engine export", remove=True):
        how = "cached export"
        if early is not None and path.is_file():
            try:
                return early.result(), path, how
            except Exception:  # noqa: BLE001 -- e.g. a torn optimized graph: made again below
                pass
        if not path.is_file():
            start = time.monotonic()
            report = export_onnx(loaded, path, overwrite=True, log=lambda line: None)
            how = f"exported in {time.monotonic() - start:.1f} s, max abs diff {report.max_abs_diff:.1e} vs PyTorch, to"
            for old in folder.glob(f"{stem}-*.onnx"):
                if old != path:
                    old.unlink(missing_ok=True)
        session = _optimized_session(path, ort)
    return session, path, how


_EARLY: dict[Path, Future[Any]] = {}
"""Sessions :func:`open_early` is opening, by the export they were opened for."""


@contextmanager
def open_early(ckpt: Path, *, zero_taps: bool = True) -> Iterator[None]:
    """Within the block, the session :func:`use_engine` will want for the snapshot file ``ckpt`` opens
    in a thread while the caller loads the file (``gankit translate`` and ``colorize``: the session's
    0.2 s of a 256 px U-Net then overlaps the load's); one not taken by the block's end is dropped.

    Only when the file's key is remembered for the file as it is now and the export and its optimized
    graph are cached; otherwise nothing starts, and :func:`cached_session` opens the session as always.
    The session is used only if :func:`cached_session` arrives at the same export (the key of what was
    actually loaded), and it opens with the thread count PyTorch has now.
    """
    started = _start_early(ckpt, zero_taps) if importlib.util.find_spec("onnxruntime") else None
    try:
        yield
    finally:
        if started is not None:
            _EARLY.pop(started, None)


def _start_early(ckpt: Path, zero_taps: bool) -> Path | None:
    """:func:`open_early`'s thread: started for the export it returns, or None when not started."""
    import gankit
    from gankit.export import OPSET
    from gankit.loading import file_stat

    folder, resolved = onnx_cache(), ckpt.resolve()
    where = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    stat = file_stat(resolved)
    of = {"path": str(resolved), "stat": list(stat or ()), "zero_taps": zero_taps}
    of |= {"gankit": gankit.__version__, "opset": OPSET}
    for memo in folder.glob(f"*-{where}.key.json"):
        try:
            kept = json.loads(memo.read_text())
            if stat is None or kept.get("of") != of:
                continue
            export = folder / f"{memo.name.removesuffix('.key.json')}-{kept['key'][:20]}.onnx"
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            continue
        if export.is_file() and export not in _EARLY and next(folder.glob(f"{export.stem}.cpu-*.onnx"), None):
            pool = ThreadPoolExecutor(1, thread_name_prefix="gankit-session")
            _EARLY[export] = pool.submit(_open_optimized, export)
            pool.shutdown(wait=False)  # the thread ends with the session opened
            return export
    return None


def _open_optimized(export: Path) -> Any:
    """The session of the optimized graph of ``export`` for this CPU (an error if there is none)."""
    import onnxruntime as ort

    from gankit.export import open_session

    return open_session(export.with_name(f"{export.stem}.cpu-{cpu_tag(ort)}.onnx"), ort, optimized=True)


def cpu_tag(ort: Any) -> str:
    """What a graph optimized by onnxruntime depends on besides the export: onnxruntime's version and
    the CPU's instruction sets (its blocked convolution layout is chosen for them). 12 hex digits."""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:  # not Linux
        cpu = ""
    what = f"{ort.__version__} {platform.machine()} {platform.processor()} {cpu.strip()}"
    return hashlib.sha256(what.encode()).hexdigest()[:12]


def _optimized_session(path: Path, ort: Any) -> Any:
    """A session of the export at ``path`` from the graph onnxruntime optimized from it for this CPU,
    ``PATH-STEM.cpu-TAG.onnx`` beside it (:func:`cpu_tag`), written by the first session of the export
    (call under the export's lock). A graph that no longer opens is made again; one that cannot be
    written leaves the session as it is."""
    from gankit.export import open_session

    optimized = path.with_name(f"{path.stem}.cpu-{cpu_tag(ort)}.onnx")
    if optimized.is_file():
        try:
            return open_session(optimized, ort, optimized=True)
        except Exception:  # noqa: BLE001 -- torn or from another onnxruntime: optimized again below
            optimized.unlink(missing_ok=True)
    try:
        with atomic_path(optimized) as tmp:
            session = open_session(path, ort, save_optimized=tmp)
    except Exception:  # noqa: BLE001 -- e.g. a read-only or full cache: the export's own session
        return open_session(path, ort)
    for old in path.parent.glob(f"{path.stem}.cpu-*.onnx"):  # made for another CPU or onnxruntime
        if old != optimized:
            old.unlink(missing_ok=True)
    return session


def _onnx_engine(loaded: LoadedGenerator, log: Callable[[str], object]) -> tuple[OnnxEngine, str]:
    """The onnxruntime engine of ``loaded`` and the log note (which file, how large, cached or new)."""
    session, path, how = cached_session(loaded, log)
    return OnnxEngine(session, loaded.G, path), f"{how} {path}, {human_bytes(path.stat().st_size)}"
