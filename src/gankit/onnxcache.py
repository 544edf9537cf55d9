"""The files of the onnxruntime engine's cache, and its sessions: what :mod:`gankit.engine` keeps in
``cache_dir()/onnx`` and how it opens it. No PyTorch here, so that a command can start opening a
session while PyTorch is still being imported (:func:`open_early`).

Per snapshot file and family (``FAMILY-PATH``: PATH is 8 hex digits of the file's resolved path):

* ``FAMILY-PATH-KEY.onnx``: the verified export (:mod:`gankit.export`); KEY is the sha256 of the
  snapshot as loaded (:func:`gankit.engine.snapshot_key`);
* ``FAMILY-PATH.key.json``: that key, remembered against the file's identity as it was read and how it
  was loaded (:func:`key_source`), so the next load of the unchanged file need not hash its weights;
* ``FAMILY-PATH-KEY.cpu-TAG.onnx``: the graph as onnxruntime optimized it for this CPU
  (:func:`cpu_tag`), written by the export's first session; later sessions open it without optimizing
  again: a 256 px U-Net's session took 0.56-0.73 s from the export and 0.20 s from its optimized graph,
  which ran as fast (0.185-0.22 s per 4 images, 2 threads) with the same outputs. It doubles the
  cache's size per snapshot (217 MB more for that U-Net).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gankit.locks import atomic_path
from gankit.paths import cache_dir, file_stat

CACHE_KIND = "onnx"
"""The cache folder's name under :func:`gankit.paths.cache_dir` (and its kind in ``gankit cache``)."""
OPSET = 18
"""The ONNX opset gankit exports with (part of every cache key)."""
ORT_SPINNING = False
"""onnxruntime's intra-op threads spin-wait after each run by default (as OpenMP's threads do, see
OMP_WAIT_POLICY in gankit.cli), taking the cores from the threads that decode and encode images and
from a web server's request handling: in ``gankit serve`` the bare gradio calls in the same process
ran 0.147 -> 0.166 s and a gan grid 0.123 -> 0.175 s once three spinning sessions were loaded. Off
(the threads sleep), those costs go away; one run of the generator is unaffected (BENCHMARKS.md)."""


def onnx_cache() -> Path:
    """Where exported graphs are kept: ``cache_dir()/onnx``."""
    return cache_dir() / CACHE_KIND


def file_prefix(ckpt: Path, family: str) -> str:
    """``FAMILY-PATH``: how the cache's files of one snapshot file start."""
    return f"{family}-{hashlib.sha256(str(ckpt.resolve()).encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------ keys and graphs


def key_source(path: str, stat: tuple[int, ...] | list[int], zero_taps: bool) -> dict[str, Any]:
    """What a remembered key is valid for: the snapshot file (resolved path and :func:`file_stat`), how
    it was loaded, and the gankit version and opset that export it."""
    import gankit

    return {"path": path, "stat": list(stat), "zero_taps": zero_taps, "gankit": gankit.__version__, "opset": OPSET}


def remembered_key(memo: Path, source: dict[str, Any]) -> str | None:
    """The key kept in ``memo`` for ``source`` (:func:`key_source`); None if none, or another file's."""
    try:
        kept = json.loads(memo.read_text())
    except (OSError, ValueError):  # none yet, or torn by hand
        return None
    ok = isinstance(kept, dict) and kept.get("of") == source and isinstance(kept.get("key"), str)
    return kept["key"] if ok else None


def remember_key(memo: Path, source: dict[str, Any], key: str) -> None:
    """Keep ``key`` for ``source`` in ``memo`` (atomically); a read-only cache is left as it is."""
    try:
        with atomic_path(memo) as tmp:
            tmp.write_text(json.dumps({"of": source, "key": key}, indent=1) + "\n")
    except OSError:
        pass


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


def optimized_path(export: Path, ort: Any) -> Path:
    """Where the graph optimized from ``export`` for this CPU is kept (see the module docstring)."""
    return export.with_name(f"{export.stem}.cpu-{cpu_tag(ort)}.onnx")


# ------------------------------------------------------------------------------ sessions


def session(
    path: Path,
    ort: Any,
    *,
    threads: int,
    spinning: bool = ORT_SPINNING,
    save_optimized: Path | None = None,
    optimized: bool = False,
) -> Any:
    """An onnxruntime CPU session of ``path`` with ``threads`` intra-op threads, which sleep between runs
    unless ``spinning`` (see :data:`ORT_SPINNING`).

    ``save_optimized``: also write the graph as onnxruntime optimized it for this CPU (all levels,
    blocked-layout convolutions included) to that file; ``optimized``: ``path`` is such a file, so
    optimizing it again is skipped.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if save_optimized is not None:
        options.optimized_model_filepath = str(save_optimized)
    if optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def optimized_session(export: Path, ort: Any, *, threads: int) -> Any:
    """A session of ``export`` from its graph optimized for this CPU (:func:`optimized_path`), which the
    first session of the export writes (call under the export's lock). A graph that no longer opens
    is made again; one that cannot be written leaves the export's own session."""
    optimized = optimized_path(export, ort)
    if optimized.is_file():
        try:
            return session(optimized, ort, threads=threads, optimized=True)
        except Exception:  # noqa: BLE001 -- torn or from another onnxruntime: optimized again below
            optimized.unlink(missing_ok=True)
    try:
        with atomic_path(optimized) as tmp:
            opened = session(export, ort, threads=threads, save_optimized=tmp)
    except Exception:  # noqa: BLE001 -- e.g. a read-only or full cache
        return session(export, ort, threads=threads)
    for old in export.parent.glob(f"{export.stem}.cpu-*.onnx"):  # made for another CPU or onnxruntime
        if old != optimized:
            old.unlink(missing_ok=True)
    return opened


# ------------------------------------------------------------------------------ opening early

_EARLY: dict[Path, tuple[int, Future[Any]]] = {}
"""Sessions :func:`open_early` is opening: export -> (threads, the session to come)."""


@contextmanager
def open_early(ckpt: Path | None, *, threads: int | None = None, zero_taps: bool = True) -> Iterator[None]:
    """Within the block, the session the engine will want for the snapshot file ``ckpt`` opens in a
    thread (onnxruntime releases the GIL meanwhile) while the caller goes on: importing PyTorch and
    loading the snapshot, for ``gankit translate`` and ``colorize``. One not taken by the block's end
    (:func:`take_early`) is dropped.

    Only when the file's key is remembered for the file as it is now and both graphs are cached;
    otherwise (or for ``ckpt=None``) nothing starts and the engine opens its session as always.
    ``threads``: the session's (default: :func:`torch_threads_guess`); the engine takes it only for
    the same export and thread count.
    """
    started = _start_early(ckpt, threads, zero_taps) if ckpt is not None else None
    try:
        yield
    finally:
        if started is not None:
            _EARLY.pop(started, None)


def take_early(export: Path, threads: int) -> Any | None:
    """The session :func:`open_early` opened for ``export`` with ``threads`` (waiting for it), else None."""
    threads_early, future = _EARLY.pop(export, (0, None))
    if future is None or threads_early != threads:
        return None
    try:
        return future.result()
    except Exception:  # noqa: BLE001 -- e.g. a torn optimized graph: the engine makes it again
        return None


def _start_early(ckpt: Path, threads: int | None, zero_taps: bool) -> Path | None:
    """:func:`open_early`'s thread: started for the export it returns, or None when not started."""
    try:
        import onnxruntime as ort  # here: importing it in the thread would race the caller's imports
    except ImportError:
        return None
    threads = threads or torch_threads_guess()
    stat = file_stat(ckpt)
    if stat is None:
        return None
    folder, resolved = onnx_cache(), ckpt.resolve()
    source = key_source(str(resolved), stat, zero_taps)
    for memo in folder.glob(f"{file_prefix(ckpt, '*')}.key.json"):
        key = remembered_key(memo, source)
        if key is None:
            continue
        export = folder / f"{memo.name.removesuffix('.key.json')}-{key[:20]}.onnx"
        optimized = optimized_path(export, ort)
        if export.is_file() and optimized.is_file() and export not in _EARLY:
            pool = ThreadPoolExecutor(1, thread_name_prefix="gankit-session")
            _EARLY[export] = threads, pool.submit(session, optimized, ort, threads=threads, optimized=True)
            pool.shutdown(wait=False)  # the thread ends with the session opened
            return export
    return None


def torch_threads_guess() -> int:
    """The thread count PyTorch will choose, without importing it: ``$OMP_NUM_THREADS``, else one per
    physical core this process may run on (what its MKL and OpenMP builds choose), else per CPU."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    cores, cpu, facts = set(), -1, {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in [*f, ""]:
                name, _, value = (part.strip() for part in line.partition(":"))
                if name == "processor":
                    cpu = int(value)
                elif name in ("physical id", "core id"):
                    facts[name] = value
                elif not name and cpu in allowed and len(facts) == 2:  # the end of one processor's block
                    cores.add((facts["physical id"], facts["core id"]))
                    facts = {}
    except (OSError, ValueError):
        pass
    return len(cores) or len(allowed) or os.cpu_count() or 1


def snapshot_guess(run: str | Path, which: str | Path | None) -> Path | None:
    """The snapshot file a command will load from ``run``, guessed without PyTorch for :func:`open_early`:
    a file as given (``run``, or ``which`` when it names one), else the one snapshot file inside the run
    folder whose key is remembered here for the file as it is now (the run's names belong to
    :mod:`gankit.run`, which needs PyTorch); None when there is none or more than one. A wrong guess
    only costs the session it opens: the engine takes a session only for the export it arrives at."""
    p = Path(run)
    if p.is_file():
        return p
    if which is not None and Path(which).is_file():
        return Path(which)
    if not p.is_dir():
        return None
    root, found = p.resolve(), set()
    for memo in onnx_cache().glob("*.key.json"):
        try:
            of = json.loads(memo.read_text())["of"]
            path = Path(of["path"])
            if root in path.parents and list(file_stat(path) or ()) == of["stat"]:
                found.add(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found.pop() if len(found) == 1 else None
