"""Where a dataset's decoded pixels live: in RAM, in a memory-mapped cache on disk, or nowhere (streamed).

A dataset is a list of items (image files, or pairs of them) that decode to uint8 tensors of one
shape, (C, H, W). What a batch *means* (noise-to-image images, aligned pairs, Lab) is the
dataset's business; this module only stores and fetches the decoded uint8 items, through one of
three backends chosen by ``data.storage``:

``memory``
    Every item decoded into this process's RAM (fastest, and the right choice for Fashion-MNIST,
    facades or a few thousand photos). Each process of a torchrun job holds its own copy.
``mmap``
    The decoded items written once to a cache file on disk (raw uint8, ``N x C x H x W``, with a
    ``meta.json`` beside it) and opened read-only with :class:`numpy.memmap`: every process of a
    node, and every later run, shares the one copy the kernel keeps in its page cache, so memory
    stays flat in the dataset size and in the number of processes. The cache is built in parallel
    (threads: PIL releases the GIL while decoding), atomically (a temporary file renamed into
    place), under a file lock (two processes building the same cache wait for one build), and it is
    keyed by every file's path, size and modification time and by the decoding parameters, so a
    changed folder is rebuilt. A raw file rather than safetensors: it can be written item by item,
    while safetensors serializes whole in-memory tensors, which for COCO would need the 23 GB in RAM.
``stream``
    Nothing stored: the items of each step are decoded from the files by DataLoader worker
    processes while the previous step trains (:mod:`gankit.data.feed`). For datasets larger than
    the cache disk. A one-time scan (cached like the pixels, but only ``meta.json``) decodes every
    file once to learn which are usable, so the item list, and hence every batch, is exactly the
    one the other backends serve.

``auto`` (the default) picks by the decoded size against available RAM and cache-disk space
(:func:`choose`) and logs what it chose and why. Whatever the backend, item ``i`` is the same
uint8 tensor, so batches, exact resume and bitwise-equal resumes do not depend on the choice.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..config import STORAGES
from ..formatting import human_bytes
from ..locks import Busy, lock_file
from ..training.distributed import local_world_size
from .errors import DataError
from .images import ImageReadError, SkipReport

CACHE_FORMAT = 1
"""Bumped when the cache layout or a decoder changes, so old caches are not reused."""
MEMORY_MAX_BYTES = 500_000_000
"""``auto`` keeps a dataset in RAM when all processes of this node together need at most this much
(and at most :data:`MEMORY_MAX_FRACTION` of the available RAM); larger ones are memory-mapped."""
MEMORY_MAX_FRACTION = 0.25
DISK_MAX_FRACTION = 0.5
"""``auto`` builds a cache only when it takes at most this fraction of the free space on the cache disk."""
PROGRESS_MIN_ITEMS = 500


# ---------------------------------------------------------------------------------------------
# What is stored
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSource:
    """A dataset's items before decoding: what the storage layer needs to store or stream them.

    ``decode`` must be picklable (a module-level function or a :func:`functools.partial` of one),
    since stream workers run it in other processes; it returns a uint8 tensor of ``shape`` or raises
    :class:`ImageReadError` to skip the item.
    """

    kind: str
    """What the items are, e.g. "folder", "aligned-pairs", "photos" (part of the cache key)."""
    root: Path
    items: Sequence[Any]
    """One entry per item: a path (``str`` or ``Path``), or a tuple of paths."""
    decode: Callable[[Any], Tensor]
    shape: tuple[int, int, int]
    params: str
    """The decoding parameters, e.g. "64px-3c" (part of the cache key and the cache's name)."""
    what: str = "images"
    """What an item is, in messages ("image pairs", "colour photos")."""
    persist: bool = False
    """Whether ``memory`` also keeps a disk cache, so the next run starts without decoding."""

    @property
    def item_bytes(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def files(self) -> Iterator[str | Path]:
        for item in self.items:
            yield from (item if isinstance(item, tuple) else (item,))


def storage_root() -> Path:
    """The folder of the mmap caches and stream scans: ``$XDG_CACHE_HOME/gankit/storage``."""
    from gankit.paths import cache_dir

    return cache_dir() / "storage"


def cache_key(source: ItemSource) -> tuple[str, str]:
    """``(name, key)``: the cache folder's stable name prefix and a digest of the source's content
    (every file's path, size and modification time: one ``stat`` per file).

    Caches whose name matches and whose key differs are stale (files changed) and removed.
    """
    h = hashlib.sha1(f"{CACHE_FORMAT}|{source.kind}|{source.params}|{source.shape}".encode())
    stat = os.stat
    for f in source.files():
        st = stat(f)
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return cache_name(source), h.hexdigest()[:16]


def cache_name(source: ItemSource) -> str:
    """The stable part of the cache folder's name: the folder, decoding parameters and item count."""
    root = source.root.resolve()
    head = hashlib.sha1(f"{CACHE_FORMAT}|{source.kind}|{source.params}|{root}".encode()).hexdigest()[:8]
    label = root.name
    if label.lower() in ("train", "val", "test", "a", "b") and root.parent.name:  # facades/train -> facades-train
        label = f"{root.parent.name}-{label}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:40] or "data"
    # the count is in the name, so the caches of a quick data.max_images run and of the full set
    # do not replace each other as stale
    return f"{safe}-{source.params}-n{len(source.items)}-{head}"


class CacheUnwritable(DataError):
    """The cache folder cannot be written (a read-only home, a shared cache of another user)."""


# ---------------------------------------------------------------------------------------------
# The three stores: uint8 items by index
# ---------------------------------------------------------------------------------------------


DEVICE_CACHE_MAX_BYTES = 2 << 30
"""Datasets up to this size are copied to the accelerator once; larger ones are moved per batch."""


class DeviceCopies:
    """Keeps one copy of a CPU tensor per accelerator, when it is small enough to be worth it."""

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor
        self._copies: dict[torch.device, Tensor] = {}

    def get(self, device: torch.device) -> Tensor:
        device = torch.device(device)
        if device.type == "cpu" or self.tensor.numel() * self.tensor.element_size() > DEVICE_CACHE_MAX_BYTES:
            return self.tensor
        if device not in self._copies:
            self._copies[device] = self.tensor.to(device)
        return self._copies[device]


class MemoryStore:
    """Items held in RAM as one uint8 tensor (copied once to an accelerator when small enough)."""

    kind = "memory"

    def __init__(self, pixels: Tensor) -> None:
        self.pixels = pixels
        self._copies = DeviceCopies(pixels)

    def __len__(self) -> int:
        return len(self.pixels)

    def gather(self, index: Tensor, device: torch.device) -> Tensor:
        src = self._copies.get(device)
        return src[index.to(src.device)].to(device, non_blocking=True)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape[1:])

    def head(self, n: int) -> MemoryStore:
        return MemoryStore(self.pixels[:n])


class MmapStore:
    """Items read from a memory-mapped cache file (read-only; shared through the page cache)."""

    kind = "mmap"

    def __init__(self, path: Path, shape: tuple[int, ...], *, length: int | None = None) -> None:
        self.path, self.shape = path, tuple(shape)
        self.array = np.memmap(path, dtype=np.uint8, mode="r", shape=self.shape) if self.shape[0] else None
        self.length = self.shape[0] if length is None else length

    def __len__(self) -> int:
        return self.length

    @property
    def pixels(self) -> Tensor:
        """All items as a (read-only) tensor view of the mapping."""
        import warnings

        with warnings.catch_warnings():  # the mapping is read-only; torch warns that it cannot write to it
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(self.array[: self.length])  # type: ignore[index]

    def gather(self, index: Tensor, device: torch.device) -> Tensor:
        idx = index.numpy()
        order = np.argsort(idx, kind="stable")  # ascending reads are kinder to the disk
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        out[order] = self.array[idx[order]]  # type: ignore[index]
        # (not pinned: a fresh pinned buffer per step costs more than copying a batch from pageable memory)
        return torch.from_numpy(out).to(device)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def head(self, n: int) -> MmapStore:
        return MmapStore(self.path, self.shape, length=min(n, self.length))

    # the memmap itself is not sent to DataLoader workers (it is reopened by path)
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "shape": self.shape, "length": self.length}

    def __setstate__(self, s: dict[str, Any]) -> None:
        self.__init__(s["path"], s["shape"], length=s["length"])  # type: ignore[misc]


class StreamStore:
    """Items decoded from their files on demand; :mod:`gankit.data.feed` decodes ahead in workers."""

    kind = "stream"

    def __init__(self, source: ItemSource, kept: Sequence[int], *, workers: int = 0) -> None:
        self.source, self.kept = source, list(kept)
        self.workers = workers or min(4, os.cpu_count() or 1)

    def __len__(self) -> int:
        return len(self.kept)

    def decode_items(self, index: Tensor) -> Tensor:
        """Decode the items at ``index`` (uint8, on the CPU); a file that fails now is a :class:`DataError`."""
        out = torch.empty((len(index), *self.source.shape), dtype=torch.uint8)
        for j, i in enumerate(index.tolist()):
            item = self.source.items[self.kept[i]]
            try:
                out[j] = self.source.decode(item)
            except ImageReadError as e:
                raise DataError(
                    f"{e} -- it decoded when the folder was scanned; the file changed during training "
                    "(the next run rescans the folder)"
                ) from None
        return out

    def gather(self, index: Tensor, device: torch.device) -> Tensor:
        return self.decode_items(index).to(device)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    @property
    def pixels(self) -> Tensor:
        raise AttributeError("a streamed dataset keeps no pixels; use data.storage=memory or mmap to inspect them")

    def head(self, n: int) -> StreamStore:
        return StreamStore(self.source, self.kept[:n], workers=self.workers)


Store = MemoryStore | MmapStore | StreamStore


@dataclass
class Stored:
    """A stored dataset: its items, which source items they are (``kept``), and what was skipped."""

    store: Store
    kept: list[int]
    skipped: str
    """The one-line summary of skipped files ("" when none)."""
    choice: str = ""
    """How the backend was chosen, e.g. "data.storage=auto -> mmap: 50,000 images decode to ..."."""


# ---------------------------------------------------------------------------------------------
# Decoding everything once (in RAM, into a cache file, or only to scan)
# ---------------------------------------------------------------------------------------------


DECODE_CHUNK = 64
"""Items one decoding task handles (writing them straight into the output), to keep the
coordinating thread idle: per-item futures cost about a tenth of the decode time on 2 cores."""


def decode_all(
    source: ItemSource, out: np.ndarray | Tensor | None, *, desc: str, workers: int = 0
) -> tuple[list[int], SkipReport]:
    """Decode every item of ``source`` in a thread pool (PIL releases the GIL while decoding).

    Usable items are written, in order and compacted, into ``out`` (length ``len(source.items)``):
    a tensor in RAM, a writable memmap, or ``None`` to only learn which items are usable (a stream
    scan). Returns the kept item indices and the report of skipped files. A :class:`DataError` from
    ``decode`` (the data set itself is wrong) stops at once, as does Ctrl-C.
    """
    n = len(source.items)
    workers = workers or min(16, (os.cpu_count() or 1) * 2)
    tensor_out = isinstance(out, Tensor)

    def work(start: int) -> tuple[list[int], list[ImageReadError]]:
        ok, errors = [], []
        for i in range(start, min(start + DECODE_CHUNK, n)):
            try:
                x = source.decode(source.items[i])
            except ImageReadError as e:
                errors.append(e)
                continue
            if tuple(x.shape) != source.shape:
                raise ValueError(f"{source.items[i]}: decoded to {tuple(x.shape)}, expected {source.shape}")
            if out is not None:
                out[i] = x if tensor_out else x.numpy()
            ok.append(i)
        return ok, errors

    report = SkipReport(str(source.root))
    kept: list[int] = []
    quiet = True if n < PROGRESS_MIN_ITEMS else None  # None: a bar only on a terminal
    starts = iter(range(0, n, DECODE_CHUNK))
    with ThreadPoolExecutor(workers) as pool, tqdm(total=n, desc=desc, unit="img", disable=quiet, leave=False) as bar:
        pending: list[Future] = [pool.submit(work, s) for _, s in zip(range(2 * workers), starts)]
        try:
            while pending:
                ok, errors = pending.pop(0).result()
                kept += ok
                report.extend(errors)
                bar.update(len(ok) + len(errors))
                nxt = next(starts, None)
                if nxt is not None:
                    pending.append(pool.submit(work, nxt))
        finally:  # stopped early (Ctrl-C, an error): drop what has not started
            for f in pending:
                f.cancel()
    if out is not None and len(kept) < n:  # close the gaps of skipped items (j <= i: moving down is safe)
        for j, i in enumerate(kept):
            if j != i:
                out[j] = out[i]
    return kept, report


def _fail_if_empty(source: ItemSource, kept: list[int], report: SkipReport) -> None:
    if not kept:
        raise DataError(
            f"no usable {source.what} in {source.root} (of {len(source.items)})"
            + (f" ({report.summary()})" if report.total else "")
        )


def load_in_memory(source: ItemSource, *, workers: int = 0) -> Stored:
    """Decode every item into one preallocated uint8 tensor (no list of tensors, no second copy)."""
    out = torch.empty((len(source.items), *source.shape), dtype=torch.uint8)
    kept, report = decode_all(source, out, desc=f"decoding {source.root.name}", workers=workers)
    _fail_if_empty(source, kept, report)
    pixels = out[: len(kept)] if len(kept) == len(out) else out[: len(kept)].clone()
    return Stored(MemoryStore(pixels), kept, report.summary())


def _lock_path(folder: Path) -> Path:
    """The lock file of a cache folder (beside it: the folder itself is removed and rebuilt under it)."""
    return folder.parent / f"{folder.name}.lock"


@contextmanager
def _locked(path: Path, log: Callable[[str], None]) -> Iterator[None]:
    """An exclusive lock on ``path`` (a lock file); says so when another process holds it."""
    waiting = f"waiting for another process that is preparing {path.with_suffix('').name} ..."
    with lock_file(path, on_wait=lambda holder: log(waiting), note="building"):
        yield


META_KEYS: dict[str, Any] = {
    "format": int,
    "source": str,
    "shape": list,
    "items": int,
    "kept": (list, type(None)),
    "skipped": str,
    "pixels": bool,
}
"""The keys of ``meta.json`` that opening a cache relies on, with their types."""


def _read_meta(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """``(meta, "")`` for a well-formed cache folder; ``(None, why)`` for a damaged one; ``(None, "")``
    when there is nothing (yet).

    The checks are cheap (one JSON parse, one ``stat``): every key and type the readers use, the kept
    indices, and, for a pixel cache, that ``pixels.u8`` holds exactly the bytes its shape needs (a
    truncated or extended file would be read past its end, or shifted).
    """
    meta_file, pixels_file = folder / "meta.json", folder / "pixels.u8"
    try:
        text = meta_file.read_text()
    except FileNotFoundError:
        return None, ("pixels.u8 without meta.json" if pixels_file.exists() else "")
    except (OSError, UnicodeDecodeError) as e:
        return None, f"meta.json unreadable ({getattr(e, 'strerror', None) or e})"
    try:
        meta = json.loads(text)
    except ValueError:
        return None, "meta.json is not valid JSON (truncated?)"
    if not isinstance(meta, dict):
        return None, "meta.json is not a JSON object"
    for key, kind in META_KEYS.items():
        if not isinstance(meta.get(key), kind) or (kind is int and isinstance(meta.get(key), bool)):
            return None, f"meta.json has no valid '{key}'"
    if meta["format"] != CACHE_FORMAT:
        return None, f"meta.json is format {meta['format']}, this gankit writes {CACHE_FORMAT}"
    shape, items, kept = meta["shape"], meta["items"], meta["kept"]
    if len(shape) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return None, f"meta.json has an invalid shape {shape}"
    if kept is None and shape[0] != items:
        return None, f"meta.json keeps all {items} items but its shape holds {shape[0]}"
    if kept is not None and (
        len(kept) != shape[0]
        or not all(isinstance(i, int) and 0 <= i < items for i in kept)
        or any(a >= b for a, b in zip(kept, kept[1:]))
    ):
        return None, f"meta.json's list of kept items does not fit its {items} items and shape {shape}"
    if meta["pixels"]:
        try:
            size = pixels_file.stat().st_size
        except OSError:
            return None, "meta.json without pixels.u8"
        want = int(np.prod(shape))
        if size != want:
            return None, f"pixels.u8 holds {size:,} bytes, meta.json's shape {shape} needs {want:,}"
    return meta, ""


def _fits_source(meta: dict[str, Any], source: ItemSource) -> str:
    """Why a well-formed ``meta`` does not describe ``source`` ("" when it does)."""
    if meta["items"] != len(source.items):
        return f"meta.json describes {meta['items']} items, the folder has {len(source.items)}"
    if tuple(meta["shape"][1:]) != tuple(source.shape):
        return f"meta.json's items are {tuple(meta['shape'][1:])}, this data set decodes to {tuple(source.shape)}"
    return ""


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _remove_folder(folder: Path) -> bool:
    """Delete a cache folder unless another process holds its lock (is building it); True when deleted."""
    try:
        with lock_file(_lock_path(folder), wait=False, remove=True):
            shutil.rmtree(folder, ignore_errors=True)
    except (Busy, OSError):
        return False
    return True


def _remove_stale(root: Path, name: str, keep: Path) -> None:
    """Delete older caches of the same folder and parameters (whose files changed since)."""
    for old in root.glob(f"{name}-*"):
        if old != keep and old.is_dir():
            _remove_folder(old)


_human = human_bytes  # the one spelling of sizes (gankit.formatting)


def open_cache(
    source: ItemSource, *, pixels: bool, log: Callable[[str], None], workers: int = 0, quiet_small: bool = False
) -> tuple[Path, dict[str, Any]]:
    """The cache folder of ``source`` and its metadata, built first if needed.

    With ``pixels`` the folder holds ``pixels.u8`` (the mmap cache); without, only ``meta.json``
    (the scan a stream needs). Safe when several processes call it at once: one builds, the
    others wait on the lock and then open what it built. Building says so in ``log`` (before and
    after, for :data:`PROGRESS_MIN_ITEMS` items or more; with ``quiet_small``, small builds are silent).
    """
    root = storage_root()
    name, key = cache_key(source)
    folder = root / f"{name}-{key}"
    # Readers take no lock: pixels.u8 appears only whole (renamed into place), and meta.json, which
    # says it is ready, only after it; a reader that finds either missing or damaged waits on the
    # lock, and the process holding it builds or rebuilds the cache.
    meta, _ = _ready(folder, source, pixels)
    if meta is not None:
        _touch(folder)
        return folder, meta
    lock = _lock_path(folder)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError as e:
        raise CacheUnwritable(
            f"cannot write the decoded-data cache in {root} ({e.strerror or e}); set XDG_CACHE_HOME to a "
            "writable folder, or use data.storage=memory or stream"
        ) from None
    with _locked(lock, log):
        meta, damaged = _ready(folder, source, pixels)
        if meta is not None:  # another process built it while this one waited
            return folder, meta
        meta = _build_cache(folder, source, pixels=pixels, damaged=damaged, log=log, workers=workers, quiet=quiet_small)
    _remove_stale(root, name, folder)
    return folder, meta


def _ready(folder: Path, source: ItemSource, pixels: bool) -> tuple[dict[str, Any] | None, str]:
    """The usable metadata of ``folder``, or None and why it is damaged ("" when merely not built)."""
    meta, damaged = _read_meta(folder)
    if meta is not None:
        damaged = _fits_source(meta, source)
        if damaged:
            meta = None
        elif pixels and not meta["pixels"]:  # a stream's scan: the pixels are yet to be cached
            return None, ""
    return meta, damaged


def _build_cache(
    folder: Path,
    source: ItemSource,
    *,
    pixels: bool,
    damaged: str,
    log: Callable[[str], None],
    workers: int,
    quiet: bool,
) -> dict[str, Any]:
    """Decode ``source`` into ``folder`` (pixels and meta.json, or meta.json alone); the caller holds the lock."""
    if damaged:
        log(f"decoded-data cache {folder} is damaged ({damaged}); rebuilding it")
        (folder / "meta.json").unlink(missing_ok=True)  # first: nobody takes the folder for ready any more
        (folder / "pixels.u8").unlink(missing_ok=True)
    for leftover in folder.glob("*.tmp-*") if folder.is_dir() else []:  # of a build that was killed
        leftover.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(source.items)
    big = n >= PROGRESS_MIN_ITEMS
    if big:
        doing = "caching the decoded" if pixels else "scanning (once: which files decode)"
        log(f"{doing} {n:,} {source.what} of {source.root} ...")
    t0 = time.perf_counter()
    if pixels:
        kept, report = _write_pixels(folder, source, workers=workers)
    else:
        kept, report = decode_all(source, None, desc=f"scanning {source.root.name}", workers=workers)
        _fail_if_empty(source, kept, report)
    secs = time.perf_counter() - t0
    meta = {
        "format": CACHE_FORMAT,
        "source": str(source.root.resolve()),
        "kind": source.kind,
        "params": source.params,
        "shape": [len(kept), *source.shape],
        "items": n,
        "kept": kept if len(kept) < n else None,  # None: every item
        "skipped": report.summary(),
        "pixels": bool(pixels),
        "seconds": round(secs, 2),
    }
    _write_json(folder / "meta.json", meta)
    if big or not quiet:
        log(
            f"{'cached' if pixels else 'scanned'} {len(kept):,} {source.what} of {source.root} in {secs:.1f} s "
            f"({n / max(secs, 1e-9):,.0f} img/s) into {folder}"
        )
    return meta


def _write_pixels(folder: Path, source: ItemSource, *, workers: int) -> tuple[list[int], SkipReport]:
    """Decode every item into ``folder/pixels.u8`` (written under a temporary name, renamed when whole)."""
    n = len(source.items)
    tmp = folder / f"pixels.u8.tmp-{os.getpid()}"
    _reserve(tmp, n * source.item_bytes, folder, source)
    arr = np.memmap(tmp, dtype=np.uint8, mode="r+", shape=(max(n, 1), *source.shape))
    try:
        kept, report = decode_all(source, arr, desc=f"caching {source.root.name}", workers=workers)
        arr.flush()
        del arr
        _fail_if_empty(source, kept, report)
        os.truncate(tmp, len(kept) * source.item_bytes)
        os.replace(tmp, folder / "pixels.u8")
    except BaseException:
        tmp.unlink(missing_ok=True)
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    return kept, report


def _reserve(tmp: Path, total: int, folder: Path, source: ItemSource) -> None:
    """Create ``tmp`` with ``total`` bytes reserved on disk, or raise the one-line "no room" error.

    Reserving now matters: a disk that fills while pages of a memory map are written kills the
    process with SIGBUS, where a failed reservation is an error message."""
    free = shutil.disk_usage(folder).free
    no_room = (
        f"{source.root}: the cache needs {_human(total)} but {folder.parent} has {_human(free)} free; "
        "free some space (gankit cache), set XDG_CACHE_HOME to a larger disk, or use data.storage=stream"
    )
    if total > free:
        shutil.rmtree(folder, ignore_errors=True)
        raise DataError(no_room)
    with open(tmp, "wb") as f:
        try:
            if not hasattr(os, "posix_fallocate"):  # macOS
                raise OSError(errno.EOPNOTSUPP, "no posix_fallocate")
            os.posix_fallocate(f.fileno(), 0, max(total, 1))
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                tmp.unlink(missing_ok=True)
                if e.errno == errno.ENOSPC:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise DataError(no_room) from None
                raise
            f.truncate(max(total, 1))  # a file system without fallocate: a sparse file


def _kept(meta: dict[str, Any]) -> list[int]:
    return meta["kept"] if meta["kept"] is not None else list(range(meta["items"]))


def open_mmap(source: ItemSource, *, log: Callable[[str], None], workers: int = 0) -> Stored:
    folder, meta = open_cache(source, pixels=True, log=log, workers=workers)
    return Stored(MmapStore(folder / "pixels.u8", tuple(meta["shape"])), _kept(meta), meta["skipped"])


def open_stream(source: ItemSource, *, log: Callable[[str], None], workers: int = 0) -> Stored:
    try:
        _, meta = open_cache(source, pixels=False, log=log)
    except CacheUnwritable as e:  # a stream needs no cache: scan again at every start instead
        log(f"{e}; scanning the folder without keeping the result")
        kept, report = decode_all(source, None, desc=f"scanning {source.root.name}")
        _fail_if_empty(source, kept, report)
        return Stored(StreamStore(source, kept, workers=workers), kept, report.summary())
    kept = _kept(meta)
    return Stored(StreamStore(source, kept, workers=workers), kept, meta["skipped"])


def open_memory(source: ItemSource, *, log: Callable[[str], None], copy: bool = True) -> Stored:
    """All items in RAM. With ``copy=False`` the store reads a persisted cache through its mapping (for
    a dataset that keeps a derived copy of every item beside the store, as colorization's Lab: the uint8
    items then take page cache, not the process's own memory)."""
    if not source.persist or len(source.items) * source.item_bytes > _free_disk(storage_root()):
        return load_in_memory(source)
    try:  # a small cache is built quietly: it takes no longer than decoding did
        folder, meta = open_cache(source, pixels=True, log=log, quiet_small=True)
    except (OSError, CacheUnwritable):  # the cache is an optimization only (a read-only home, a full disk)
        return load_in_memory(source)
    shape = tuple(meta["shape"])
    if copy:
        pixels = torch.from_numpy(np.fromfile(folder / "pixels.u8", dtype=np.uint8).reshape(shape))
    else:
        pixels = MmapStore(folder / "pixels.u8", shape).pixels
    return Stored(MemoryStore(pixels), _kept(meta), meta["skipped"])


# ---------------------------------------------------------------------------------------------
# Choosing
# ---------------------------------------------------------------------------------------------


def available_ram() -> int:
    """Bytes of RAM available to new allocations (MemAvailable), or 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _free_disk(path: Path) -> int:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 0


def choose(source: ItemSource, *, memory_factor: float = 1.0) -> tuple[str, str]:
    """``(backend, why)`` for ``data.storage=auto``.

    ``memory_factor`` is what one decoded byte costs in RAM (colorization keeps float16 Lab in
    memory: 2). memory when all local processes together need at most :data:`MEMORY_MAX_BYTES`
    and a quarter of the available RAM; else mmap when the cache exists or fits in half the free
    cache disk; else stream.
    """
    n = len(source.items)
    decoded = n * source.item_bytes
    procs = local_world_size()  # each process of this node loads the data
    need = decoded * memory_factor * procs
    ram = available_ram()
    who = f"{procs} processes x " if procs > 1 else ""
    in_ram = f"{who}{_human(decoded * memory_factor)} in RAM"
    limit = min(MEMORY_MAX_BYTES, MEMORY_MAX_FRACTION * ram) if ram else MEMORY_MAX_BYTES
    if need <= limit:
        return "memory", f"{n:,} {source.what} decode to {_human(decoded)}; {in_ram} is within {_human(limit)}"
    root = storage_root()
    over = f"{n:,} {source.what} decode to {_human(decoded)}; {in_ram} is more than {_human(limit)}"
    free = _free_disk(root)
    if decoded <= DISK_MAX_FRACTION * free:
        return "mmap", f"{over}; a shared cache fits on {root} ({_human(free)} free)"
    if any(root.glob(f"{cache_name(source)}-*/pixels.u8")):
        return "mmap", f"{over}; a cache of this folder exists in {root}"
    return "stream", f"{over}, and a cache would not fit in half of the {_human(free)} free on {root}"


def open_store(
    source: ItemSource,
    storage: str,
    *,
    log: Callable[[str], None],
    workers: int = 0,
    memory_factor: float = 1.0,
    memory_copy: bool = True,
) -> Stored:
    """Store ``source`` with the backend ``storage`` (auto, memory, mmap or stream).

    ``memory_factor`` and ``memory_copy``: see :func:`choose` and :func:`open_memory`.

    What was chosen, and why, is in ``Stored.choice`` (callers put it in the run's log).
    """
    if storage not in STORAGES:
        raise DataError(f"data.storage={storage}: unknown; choose one of {', '.join(STORAGES)}")
    choice = f"data.storage={storage}"
    if storage == "auto":
        storage, why = choose(source, memory_factor=memory_factor)
        choice = f"data.storage=auto -> {storage}: {why}"
    if storage == "memory":
        stored = open_memory(source, log=log, copy=memory_copy)
    elif storage == "mmap":
        stored = open_mmap(source, log=log)
    else:
        stored = open_stream(source, log=log, workers=workers)
    if stored.skipped:
        log(stored.skipped)
    stored.choice = choice
    return stored


# ---------------------------------------------------------------------------------------------
# Seeing and clearing the caches (gankit cache)
# ---------------------------------------------------------------------------------------------


@dataclass
class CacheEntry:
    """One folder of :func:`storage_root` (or an unused cache file of an older gankit)."""

    path: Path
    bytes: int
    source: str
    items: int
    what: str
    """"pixels" (an mmap cache), "scan" (a stream's list of usable files), "broken" (damaged or
    unfinished: rebuilt when next needed) or "old" (unused)."""
    used: float
    """When it was last opened (seconds since the epoch)."""


def _touch(folder: Path) -> None:
    try:  # "last used", for gankit cache; a read-only cache still works
        os.utime(folder / "meta.json")
    except OSError:
        pass


def list_caches() -> list[CacheEntry]:
    """Every cache gankit keeps for decoded data, most recently used first."""
    from gankit.paths import cache_dir

    out: list[CacheEntry] = []
    root = storage_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        meta, damaged = _read_meta(folder)
        files = [f for f in folder.iterdir() if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        if meta is None:  # listed, so that gankit cache --clear can remove it
            if files:
                why = f"damaged: {damaged}" if damaged else "unfinished: being built, or its build was stopped"
                used = max(f.stat().st_mtime for f in files)
                out.append(CacheEntry(folder, size, f"({why}; the next run rebuilds it)", 0, "broken", used))
            continue
        what = "pixels" if meta["pixels"] else "scan"
        out.append(
            CacheEntry(folder, size, meta["source"], meta["shape"][0], what, (folder / "meta.json").stat().st_mtime)
        )
    old = cache_dir() / "folders"  # gankit <= 0.2 kept one .pt file per image folder here
    for f in sorted(old.glob("*.pt")) if old.is_dir() else []:
        st = f.stat()
        out.append(CacheEntry(f, st.st_size, "(gankit <= 0.2 format, no longer read)", 0, "old", st.st_mtime))
    return sorted(out, key=lambda e: -e.used)


def clear_caches(names: Sequence[str] = ()) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove the caches whose folder name starts with one of ``names`` (all when empty).

    Returns ``(removed, busy)``: a cache being built by another process is left alone.
    """
    removed, busy = [], []
    for e in list_caches():
        if names and not any(e.path.name.startswith(n) for n in names):
            continue
        if e.what == "old":
            e.path.unlink(missing_ok=True)
            removed.append(e)
            continue
        (removed if _remove_folder(e.path) else busy).append(e)
    return removed, busy
