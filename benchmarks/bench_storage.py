"""Dataset storage backends (issue 14): ``data.storage=memory|mmap|stream`` from the outside, on
synthetic image folders this script makes itself.

Every measurement is a real ``gankit train`` (or ``torchrun ... -m gankit train``) process, started by
this script and watched from outside:

* **time to first step**: seconds from spawning the process to the first row of ``OUT/stats.jsonl``
  (``train.log_every=1``; the file is polled every 20 ms). *cold* = ``$XDG_CACHE_HOME/gankit`` removed
  and the source JPEGs' pages dropped from the OS page cache (``posix_fadvise(DONTNEED)`` on those
  files only; ``--no-evict`` keeps them); *warm* = the same command again. The time of the
  ``training ...`` log line (data and models built) is recorded too; the mmap cache build rate is
  ``images / (cold - warm time of that line)``.
* **peak memory**: ``/proc/PID/smaps_rollup`` (Rss, Pss, Pss_Anon, Anonymous) and ``/proc/PID/status``
  (RssFile, VmHWM) of the training process(es), sampled every 50 ms; reported as the peak of the sum
  over the training processes (one, or the torchrun ranks; DataLoader/decode workers listed apart as
  ``+workers``). A memory-mapped file's pages count in RSS but are the OS page cache, shared by every
  process that maps the file: PSS splits each shared page between its mappers and anonymous memory
  excludes them, so those two are the figures that show whether the data are multiplied by processes.
  PSS also splits torch's library pages with any other torch process on the machine, so the script
  also reports *own* = Pss_Anon + the PSS of the cache-file mapping (``/proc/PID/smaps``, once a second),
  summed with the decode workers: PSS without the shared libraries. *data* = peak minus the same kind
  of run at ``--baseline-images`` (the torch runtime, models and optimizer of every process are not data).
* **scaling**: the same at several ``data.max_images`` (``--sizes``).
* **2 processes**: ``torchrun --standalone --nproc_per_node 2`` on CPU (gloo), ``OMP_NUM_THREADS=1``,
  against one process with one thread; and mmap for one whole epoch of ``--epoch-images`` on 2
  processes and on 1 (every page of the cache file touched: its PSS summed over the processes).
* **throughput**: steady-state images/s from the arrival times of the stats rows after ``--warmup``
  steps, one process per backend and round, rounds interleaved with the order reversed every round (as
  ``common.py`` does); ratio = median over rounds of (backend / memory in the same round).
* **colorize**: the same three backends on 256x256 photos at batch 1 and 4, plus the cost of the
  per-batch uint8 RGB -> Lab conversion (``gankit.color.rgb_to_model``) that a uint8 backend pays and
  the memory backend (Lab once, at load) does not.
* **decode rate**: one process, one core, PIL decode (+ resize as gankit does) of the synthetic JPEGs
  and of CelebA-sized (178x218) and COCO-sized (640x480) ones, for the projections in BENCHMARKS.md.

Runs are killed (SIGKILL, by PID) once the expected stats rows are in: end-of-run work (sample grid,
validation, checkpoint) is not measured. Data and caches live in ``--work`` (reused between runs).

    nice -n 5 .venv/bin/python benchmarks/bench_storage.py            # ~30-40 min on the 2-core VM
    .venv/bin/python benchmarks/bench_storage.py --quick --no-save      # plumbing check, ~3 min
    .venv/bin/python benchmarks/bench_storage.py --parts startup,throughput --n-faces 10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import common

PY = sys.executable
TORCHRUN = str(Path(PY).parent / "torchrun")
REPO = common.BENCH_DIR.parent
BACKENDS = ("memory", "mmap", "stream")
PARTS = ("data", "decode", "startup", "scaling", "ddp", "epoch", "throughput", "colorize")
KB = 1024


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def _picture(seed: int, w: int, h: int, texture: bool) -> Any:
    """Smooth colour gradient + Gaussian blobs (+ sinusoidal texture for photos) + noise, uint8 HxWx3."""
    import numpy as np

    rng = np.random.default_rng(seed)
    s = float(max(w, h))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / s
    a = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(a) + yy * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * t[..., None]
    for _ in range(int(rng.integers(2, 7))):
        cx, cy = rng.uniform(0, w / s), rng.uniform(0, h / s)
        sx, sy = rng.uniform(0.04, 0.3, 2)
        g = np.exp(-((xx - cx) ** 2 / (2 * sx * sx) + (yy - cy) ** 2 / (2 * sy * sy)))[..., None] * rng.uniform(0.4, 1)
        img = img * (1 - g) + rng.uniform(0, 255, 3).astype(np.float32) * g
    if texture:
        for _ in range(3):
            f = rng.uniform(2, 40, 2)
            img += (
                rng.uniform(5, 25, 3).astype(np.float32)
                * np.sin(2 * math.pi * (f[0] * xx + f[1] * yy) + rng.uniform(0, 2 * math.pi))[..., None]
            )
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(task: tuple[str, int, int, int, bool]) -> None:
    from PIL import Image

    path, seed, w, h, texture = task
    Image.fromarray(_picture(seed, w, h, texture)).save(path, quality=90)


def make_set(root: Path, n: int, w: int, h: int, *, texture: bool, per_dir: int, seed0: int) -> dict[str, Any]:
    """``n`` JPEGs under ``root`` (subfolders of ``per_dir`` files, or flat when per_dir = 0); missing files only."""
    done = root / ".complete"
    if done.is_file() and done.read_text().strip() == str(n):
        return {"root": str(root), "n": n, "made": 0, "seconds": 0.0}
    tasks = []
    for i in range(n):
        d = root / f"p{i // per_dir:02d}" if per_dir else root
        p = d / f"{i:06d}.jpg"
        if not p.is_file():
            d.mkdir(parents=True, exist_ok=True)
            tasks.append((str(p), seed0 + i, w, h, texture))
    t = time.perf_counter()
    if tasks:
        with Pool(os.cpu_count() or 2) as pool:
            for _ in pool.imap_unordered(_write, tasks, chunksize=64):
                pass
    secs = time.perf_counter() - t
    done.write_text(str(n))
    size = sum(f.stat().st_size for f in root.rglob("*.jpg"))
    print(f"  {root}: {len(tasks)} of {n} {w}x{h} JPEGs made in {secs:.1f} s, {size / 2**20:.0f} MiB", flush=True)
    return {"root": str(root), "n": n, "made": len(tasks), "seconds": secs, "mib": size / 2**20}


def jpegs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jpg"))


def evict(root: Path) -> int:
    """Drop the page-cache pages of the files under ``root`` (clean pages only; these files only)."""
    n = 0
    for f in jpegs(root):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            n += 1
        finally:
            os.close(fd)
    return n


# ---------------------------------------------------------------------------------------------
# Watching a process tree
# ---------------------------------------------------------------------------------------------

_ROLLUP = {"Rss": "rss", "Pss": "pss", "Pss_Anon": "pss_anon", "Pss_File": "pss_file", "Anonymous": "anon"}
_STATUS = {"VmHWM": "hwm", "RssAnon": "rss_anon", "RssFile": "rss_file"}
FIELDS = ("rss", "pss", "pss_anon", "pss_file", "anon", "rss_anon", "rss_file", "hwm", "map_rss", "map_pss", "own")
DATA_FILE = "pixels.u8"
"""The storage layer's cache file (memory-mapped by data.storage=mmap)."""


def _sum_fields(readings: Iterable[dict[str, float]]) -> dict[str, float]:
    """Each memory field summed over processes (missing fields count 0)."""
    readings = list(readings)
    return {k: sum(m.get(k, 0.0) for m in readings) for k in FIELDS}


def read_map(pid: int) -> tuple[float, float] | None:
    """(Rss, Pss) in MiB of the process's mappings of gankit's cache file, from /proc/PID/smaps."""
    rss = pss = 0.0
    try:
        with open(f"/proc/{pid}/smaps") as f:
            txt = f.read()
    except OSError:
        return None
    i = txt.find(DATA_FILE + "\n")
    while i >= 0:
        for line in txt[i : i + 1200].splitlines()[1:8]:  # the mapping's Size, KernelPageSize, ..., Rss, Pss
            if line.startswith("Rss:"):
                rss += int(line.split()[1]) / KB
            elif line.startswith("Pss:"):
                pss += int(line.split()[1]) / KB
        i = txt.find(DATA_FILE + "\n", i + 1)
    return rss, pss


def read_mem(pid: int) -> dict[str, float] | None:
    """The process's memory figures in MiB, or None when it has gone."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in _ROLLUP:
                    out[_ROLLUP[k]] = int(rest.split()[0]) / KB
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in _STATUS:
                    out[_STATUS[k]] = int(rest.split()[0]) / KB
    except (OSError, ValueError, IndexError):
        return None
    return out if "pss" in out else None


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


class Watch:
    """Spawn a command, timestamp its log lines and stats rows, sample its memory; kill it when done."""

    def __init__(
        self, argv: list[str], env: dict[str, str], out_dir: Path, *, launcher: bool, mem_every: float
    ) -> None:
        self.argv, self.env, self.out_dir, self.launcher, self.mem_every = argv, env, out_dir, launcher, mem_every
        self.lines: list[tuple[float, str]] = []
        self.rows: list[tuple[float, dict[str, Any]]] = []
        self.peak_ranks = dict.fromkeys(FIELDS, 0.0)  # peak over time of the sum over the training processes
        self.peak_tree = dict.fromkeys(FIELDS, 0.0)  # ... over the training processes and their children
        self.peak_rank_max = dict.fromkeys(FIELDS, 0.0)  # the largest single training process
        self.hwm: dict[int, float] = {}
        self.maps: dict[int, tuple[float, float]] = {}  # last (Rss, Pss) of the cache-file mapping per process
        # smaps lists every mapping (~20 ms a torch process): only in the memory runs, once a second (a
        # mapping's resident pages only grow while it trains) and once more at the end
        self.map_every = 1.0 if mem_every < 0.2 else 0.0
        self.last_map = -1.0
        self.n_ranks = 0
        self.n_workers = 0
        self.samples = 0

    def run(self, expect_rows: int, timeout: float) -> dict[str, Any]:
        stats = self.out_dir / "stats.jsonl"
        t0 = time.perf_counter()
        p = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
        )

        def reader() -> None:
            assert p.stdout is not None
            for line in p.stdout:
                self.lines.append((time.perf_counter() - t0, line.rstrip()))

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        pos, buf = 0, ""
        ranks: list[int] = [] if self.launcher else [p.pid]
        workers: list[int] = []
        last_mem = last_scan = -1.0
        status = "ok"
        while True:
            now = time.perf_counter() - t0
            try:
                with open(stats) as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except OSError:
                chunk = ""
            if chunk:
                buf += chunk
                *done, buf = buf.split("\n")
                for line in done:
                    with_row = line.strip()
                    if with_row:
                        try:
                            self.rows.append((now, json.loads(with_row)))
                        except json.JSONDecodeError:
                            self.rows.append((now, {}))
            if now - last_scan >= 0.5:
                kids = children_map()
                if self.launcher:
                    ranks = [c for c in kids.get(p.pid, []) if _is_python(c)]
                workers = [d for r in ranks for d in descendants(r, kids)]
                last_scan = now
            if self.map_every and now - self.last_map >= self.map_every:
                for pid in ranks + workers:
                    m = read_map(pid)
                    if m is not None:
                        self.maps[pid] = m
                self.last_map = now
            if now - last_mem >= self.mem_every:
                self._sample(ranks, workers)
                last_mem = now
            if len(self.rows) >= expect_rows:
                if self.map_every:
                    for pid in ranks + workers:
                        m = read_map(pid)
                        if m is not None:
                            self.maps[pid] = m
                self._sample(ranks, workers)
                break
            if p.poll() is not None:
                status = f"exited with code {p.returncode} after {len(self.rows)} of {expect_rows} rows"
                break
            if now > timeout:
                status = f"timed out after {timeout:.0f} s with {len(self.rows)} of {expect_rows} rows"
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        self._kill(p)
        th.join(timeout=5)
        return self.result(status, wall)

    def _mem(self, pid: int) -> dict[str, float] | None:
        m = read_mem(pid)
        if m is not None:
            m["map_rss"], m["map_pss"] = self.maps.get(pid, (0.0, 0.0))
            # the process's own memory and its share of the data cache's pages: PSS without the shared
            # libraries (torch's .so pages are shared with every other torch process on the machine)
            m["own"] = m.get("pss_anon", 0.0) + m["map_pss"]
        return m

    def _sample(self, ranks: list[int], workers: list[int]) -> None:
        by_rank = {r: m for r in ranks if (m := self._mem(r)) is not None}
        by_worker = [m for w in workers if (m := self._mem(w)) is not None]
        for r, m in by_rank.items():
            self.hwm[r] = max(self.hwm.get(r, 0.0), m.get("hwm", 0.0))
            for k in FIELDS:
                self.peak_rank_max[k] = max(self.peak_rank_max[k], m.get(k, 0.0))
        sums = _sum_fields(by_rank.values())
        tree = _sum_fields([*by_rank.values(), *by_worker])
        if by_rank:
            self.samples += 1
            self.n_ranks = max(self.n_ranks, len(by_rank))
            self.n_workers = max(self.n_workers, len(by_worker))
            for k in FIELDS:
                self.peak_ranks[k] = max(self.peak_ranks[k], sums[k])
                self.peak_tree[k] = max(self.peak_tree[k], tree[k])

    def _kill(self, p: subprocess.Popen[str]) -> None:
        """SIGKILL the process and every descendant (by PID: torchrun starts its ranks in new sessions)."""
        if p.poll() is None:
            victims = descendants(p.pid, children_map())
            for pid in [p.pid, *victims]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        p.wait()
        for _ in range(50):  # reap-free wait until the orphans are gone
            if not any(Path(f"/proc/{pid}").exists() and _is_python(pid) for pid in self.hwm):
                break
            time.sleep(0.1)

    def result(self, status: str, wall: float) -> dict[str, Any]:
        train_line = next((t for t, s in self.lines if s.startswith("training ")), None)
        storage_lines = [s for _, s in self.lines if any(w in s.lower() for w in ("storage", "cach", "scann"))]
        r = {
            "status": status,
            "ok": status == "ok",
            "wall_s": wall,
            "first_row_s": self.rows[0][0] if self.rows else None,
            "train_line_s": train_line,
            "row_times_s": [round(t, 3) for t, _ in self.rows],
            "ranks": self.n_ranks,
            "workers": self.n_workers,
            "samples": self.samples,
            "peak_mb": {k: round(v, 1) for k, v in self.peak_ranks.items()},
            "peak_tree_mb": {k: round(v, 1) for k, v in self.peak_tree.items()},
            "peak_rank_max_mb": {k: round(v, 1) for k, v in self.peak_rank_max.items()},
            "vmhwm_sum_mb": round(sum(self.hwm.values()), 1),
            "storage_lines": storage_lines[:10],
            "log_tail": [s for _, s in self.lines[-8:]],
        }
        return r


def _is_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"python" in f.read().split(b"\0")[0]
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# gankit runs
# ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.xdg = self.work / "xdg"
        self.runs = self.work / "runs"
        self.counter = 0
        self.has_storage = storage_available(args.src)
        self.faces = self.work / f"faces-{args.n_faces}"
        self.photos = self.work / f"photos-{args.n_photos}"
        self.log: list[dict[str, Any]] = []

    def env(self, *, threads: int = 0) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("GANKIT_DATA", None)
        env.update(XDG_CACHE_HOME=str(self.xdg), PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
        env["PYTHONPATH"] = str(self.args.src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        else:
            env.pop("OMP_NUM_THREADS", None)
        return env

    def sets(self, backend: str, extra: Iterable[str]) -> list[str]:
        s = ["train.log_every=1", *extra]
        if self.has_storage:
            s.append(f"data.storage={backend}")
            if backend == "stream" and self.args.stream_workers:
                s.append(f"data.workers={self.args.stream_workers}")
        return s

    def train(
        self,
        tag: str,
        preset: str,
        data: Path,
        backend: str,
        *,
        steps: int,
        batch: int,
        max_images: int = 0,
        nproc: int = 1,
        threads: int = 0,
        mem_every: float = 0.05,
        extra: Iterable[str] = (),
    ) -> dict[str, Any]:
        self.counter += 1
        out = self.runs / f"{self.counter:03d}-{tag}"
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        sets = self.sets(backend, [*([f"data.max_images={max_images}"] if max_images else []), *extra])
        cmd = ["-m", "gankit", "train", preset, "--data", str(data), "--out", str(out), "--max-steps", str(steps)]
        cmd += ["--batch-size", str(batch), "--device", "cpu", "--no-progress", "--set", *sets]
        if nproc > 1:
            argv = [TORCHRUN, "--standalone", "--nproc_per_node", str(nproc), *cmd]
        else:
            argv = [PY, *cmd]
        env = self.env(threads=threads or (1 if nproc > 1 else 0))
        w = Watch(argv, env, out, launcher=nproc > 1, mem_every=mem_every)
        r = w.run(expect_rows=steps, timeout=self.args.timeout)
        r.update(tag=tag, preset=preset, backend=backend, steps=steps, batch=batch, max_images=max_images, nproc=nproc)
        r["images"] = max_images or None
        r["command"] = " ".join(argv[1:] if nproc == 1 else argv).replace(str(REPO) + "/", "")
        p = r["peak_mb"]
        first = f"{r['first_row_s']:.1f}" if r["first_row_s"] else "-"
        line = f"{r['train_line_s']:.1f}" if r["train_line_s"] else "-"
        print(
            f"  {tag:<28} {r['status'] if not r['ok'] else 'ok':<6} first step {first:>6} s (setup {line:>5} s)  "
            f"RSS {p['rss']:6.0f}  PSS {p['pss']:6.0f}  anon {p['anon']:6.0f}  map RSS {p['map_rss']:5.0f}  "
            f"own {r['peak_tree_mb']['own']:6.0f} MiB" + (f" (+{r['workers']} workers)" if r["workers"] else ""),
            flush=True,
        )
        if not r["ok"]:
            for s in r["log_tail"]:
                print(f"      | {s}")
        shutil.rmtree(out, ignore_errors=True)
        self.log.append(r)
        return r

    def dcgan(self, tag: str, backend: str, **kw: Any) -> dict[str, Any]:
        return self.train(tag, "dcgan", self.faces, backend, batch=self.args.batch_size, **kw)

    def cold(self) -> None:
        shutil.rmtree(self.xdg / "gankit", ignore_errors=True)
        if not self.args.no_evict:
            evict(self.faces)
            evict(self.photos)


def storage_available(src: Path) -> bool:
    code = "import dataclasses as d, gankit.config as c; print('storage' in {f.name for f in d.fields(c.DataConfig)})"
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env)
    return out.stdout.strip() == "True"


def steady_rate(r: dict[str, Any], warmup: int, images_per_step: int) -> float | None:
    t = r.get("row_times_s") or []
    if not r.get("ok") or len(t) <= warmup or warmup < 1:
        return None
    span = t[-1] - t[warmup - 1]
    return (len(t) - warmup) * images_per_step / span if span > 0 else None


# ---------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------


def part_data(b: Bench) -> dict[str, Any]:
    a = b.args
    print("synthetic data (multiprocessing pool):", flush=True)
    return {
        "faces": make_set(b.faces, a.n_faces, 64, 64, texture=False, per_dir=5000, seed0=0),
        "photos": make_set(b.photos, a.n_photos, 256, 256, texture=True, per_dir=0, seed0=10_000_000),
        "celeba_like": make_set(
            b.work / "decode-178x218", a.n_decode, 178, 218, texture=False, per_dir=0, seed0=20_000_000
        ),
        "coco_like": make_set(
            b.work / "decode-640x480", max(20, a.n_decode // 4), 640, 480, texture=True, per_dir=0, seed0=30_000_000
        ),
    }


_DECODE = r"""
import json, sys, time
from pathlib import Path
# the item decoders the cache build, the stream scan and the stream workers run
from gankit.data.colorization import _decode_photo, MIN_PHOTO_SIDE
from gankit.data.folders import _decode

def crop(path, size):  # image folders: shorter side -> size, centre crop, RGB
    return _decode(path, size, 3)

def square(path, size):  # colorization: plain square resize, grayscale check
    return _decode_photo(path, size, MIN_PHOTO_SIDE)

out = {}
for name, folder, fn, size, n in json.loads(sys.argv[1]):
    files = sorted(Path(folder).rglob("*.jpg"))[:n]
    for f in files:
        f.read_bytes()  # page cache: decode cost only
    best = 0.0
    for _ in range(2):
        t = time.perf_counter()
        for f in files:
            (crop if fn == "crop" else square)(f, size)
        best = max(best, len(files) / (time.perf_counter() - t))
    out[name] = {"images": len(files), "images_per_s_per_core": best}
print(json.dumps(out))
"""


def part_decode(b: Bench) -> dict[str, Any]:
    n = b.args.n_decode
    jobs = [
        ("64x64 JPEG -> 64 (synthetic faces)", str(b.faces), "crop", 64, 4 * n),
        ("178x218 JPEG -> 64 (CelebA size)", str(b.work / "decode-178x218"), "crop", 64, n),
        ("256x256 JPEG -> 256 (synthetic photos)", str(b.photos), "square", 256, n),
        ("256x256 JPEG -> 286", str(b.photos), "square", 286, n),
        ("640x480 JPEG -> 256 (COCO size)", str(b.work / "decode-640x480"), "square", 256, max(20, n // 4)),
        ("640x480 JPEG -> 286 (COCO size)", str(b.work / "decode-640x480"), "square", 286, max(20, n // 4)),
    ]
    print("decode rate, 1 process, 1 core (gankit's item decoders, after reading the files once):", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(b.args.src))
    out = subprocess.run([PY, "-c", _DECODE, json.dumps(jobs)], capture_output=True, text=True, env=env)
    if out.returncode:
        print(out.stderr)
        return {}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for k, v in res.items():
        print(f"  {k:<40} {v['images_per_s_per_core']:8.0f} img/s ({v['images']} images)")
    return res


def part_startup(b: Bench) -> dict[str, Any]:
    a = b.args
    print(f"DCGAN time to first step, {a.n_faces} images, cold then warm:", flush=True)
    res: dict[str, Any] = {}
    for backend in a.backends:
        b.cold()
        cold = b.dcgan(f"{backend} cold", backend, steps=a.startup_steps)
        warm = b.dcgan(f"{backend} warm", backend, steps=a.startup_steps)
        built = [m for m in (_BUILT.search(x) for x in cold["storage_lines"]) if m]
        gankit_rate = float(built[0].group(2).replace(",", "")) if built else None
        build = None
        if cold["train_line_s"] and warm["train_line_s"] and cold["train_line_s"] > warm["train_line_s"]:
            build = a.n_faces / (cold["train_line_s"] - warm["train_line_s"])
        res[backend] = {
            "cold": cold,
            "warm": warm,
            "cache_build_images_per_s": build,
            "gankit_build_s": float(built[0].group(1)) if built else None,
            "gankit_build_images_per_s": gankit_rate,
        }
    if b.has_storage:
        auto = b.dcgan("auto warm", "auto", steps=1)
        res["auto"] = {"warm": auto, "lines": [s for s in auto["storage_lines"] if "data.storage=auto" in s]}
        print("  auto:", *res["auto"]["lines"] or ["(no 'data.storage=auto ->' line in the log)"])
    return res


_BUILT = re.compile(r" in ([\d.]+) s \(([\d,]+) img/s\)")
"""gankit's "cached/scanned N images of ... in S s (R img/s)" log line."""


def part_scaling(b: Bench, startup: dict[str, Any]) -> dict[str, Any]:
    a = b.args
    sizes = sorted({a.baseline_images, *a.sizes})
    print(f"DCGAN peak memory by data.max_images {sizes} (warm: a priming run builds each cache first):", flush=True)
    res: dict[str, Any] = {}
    for backend in a.backends:
        res[backend] = {}
        for n in sizes:
            if n >= a.n_faces and backend in startup:
                res[backend][n] = startup[backend]["warm"]
                continue
            cap = n if n < a.n_faces else 0
            if a.prime:
                b.dcgan(f"{backend} n={n} prime", backend, steps=1, max_images=cap)
            res[backend][n] = b.dcgan(f"{backend} n={n}", backend, steps=a.startup_steps, max_images=cap)
    return res


def part_ddp(b: Bench) -> dict[str, Any]:
    a = b.args
    sizes = [a.n_faces] if a.quick else [a.baseline_images, a.n_faces]
    print("DCGAN on 2 processes (torchrun --standalone --nproc_per_node 2, gloo, OMP_NUM_THREADS=1):", flush=True)
    res: dict[str, Any] = {}
    for backend in a.backends:
        res[backend] = {}
        for n in sizes:
            cap = n if n < a.n_faces else 0
            res[backend][n] = b.dcgan(
                f"{backend} n={n} 2 procs", backend, steps=a.startup_steps, max_images=cap, nproc=2
            )
            if not a.quick:  # the same single process with 1 thread, the like-for-like reference
                res[backend][f"{n} 1proc"] = b.train(
                    f"{backend} n={n} 1 proc 1 thread",
                    "dcgan",
                    b.faces,
                    backend,
                    steps=a.startup_steps,
                    batch=a.batch_size,
                    max_images=cap,
                    threads=1,
                )
    return res


def part_epoch(b: Bench) -> dict[str, Any]:
    """mmap on 2 processes for one whole epoch: every page of the cache file touched by both processes."""
    a = b.args
    n = a.epoch_images
    steps = n // (2 * a.batch_size) + 1
    print(f"mmap, 2 processes, one epoch of {n} images ({steps} steps): cache-file pages in RSS vs PSS", flush=True)
    r = b.dcgan(f"mmap n={n} 2 procs epoch", "mmap", steps=steps, max_images=n, nproc=2)
    r["file_mib"] = n * 3 * 64 * 64 / 2**20
    one = b.dcgan(f"mmap n={n} 1 proc epoch", "mmap", steps=n // a.batch_size + 1, max_images=n)
    r["one_process"] = one
    m = one["peak_mb"]
    print(f"  one process, one epoch: mapped RSS {m['map_rss']:.1f}, PSS {m['map_pss']:.1f} MiB")
    print(
        f"  cache file {r['file_mib']:.1f} MiB; mapped RSS per process (largest) "
        f"{r['peak_rank_max_mb']['map_rss']:.1f}, "
        f"summed over processes {r['peak_mb']['map_rss']:.1f}; mapped PSS summed {r['peak_mb']['map_pss']:.1f} MiB"
    )
    return r


def interleaved(b: Bench, names: list[str], rounds: int, run: Any, warmup: int, ips: int) -> dict[str, Any]:
    per: dict[str, list[float | None]] = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            per[n].append(steady_rate(run(n, r), warmup, ips))
    out: dict[str, Any] = {}
    base = per[names[0]]
    for n in names:
        vals = [v for v in per[n] if v]
        ratios = [v / m for v, m in zip(per[n], base) if v and m]
        out[n] = {
            "rounds_images_per_s": per[n],
            "images_per_s": statistics.median(vals) if vals else None,
            "ratio": statistics.median(ratios) if ratios else None,
        }
    return out


def part_throughput(b: Bench) -> dict[str, Any]:
    a = b.args
    steps = a.warmup + a.steps
    print(
        f"DCGAN throughput, batch {a.batch_size}, {a.rounds} interleaved rounds of {a.warmup} + {a.steps} steps:",
        flush=True,
    )
    res = interleaved(
        b,
        list(a.backends),
        a.rounds,
        lambda n, r: b.dcgan(f"{n} throughput r{r}", n, steps=steps, mem_every=0.5),
        a.warmup,
        a.batch_size,
    )
    for n, v in res.items():
        rate = f"{v['images_per_s']:.1f}" if v["images_per_s"] else "-"
        ratio = f"{v['ratio']:.3f}x" if v["ratio"] else "-"
        print(f"  {n:<8} {rate:>8} img/s  {ratio:>7} memory   rounds {v['rounds_images_per_s']}")
    return res


_LAB = r"""
import json, sys, time, torch
from gankit.color import rgb_to_model
out = {}
for b in json.loads(sys.argv[1]):
    x = torch.randint(0, 256, (b, 3, 256, 256), dtype=torch.uint8)
    h = torch.rand(b, 3, 256, 256).half()
    def lab():
        return rgb_to_model(x.float().div_(255))
    def cast():
        return h.float()
    r = {}
    for name, fn in (("uint8_to_lab_ms", lab), ("float16_cast_ms", cast)):
        fn()
        ts = []
        for _ in range(7):
            t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
        r[name] = 1000 * sorted(ts)[len(ts) // 2]
    out[b] = r
print(json.dumps(out))
"""


def part_colorize(b: Bench) -> dict[str, Any]:
    a = b.args
    print(f"colorize, {a.n_photos} photos 256x256:", flush=True)
    res: dict[str, Any] = {"batches": {}}
    env = b.env()
    out = subprocess.run([PY, "-c", _LAB, json.dumps(a.color_batches)], capture_output=True, text=True, env=env)
    if out.returncode == 0:
        res["lab_cost"] = json.loads(out.stdout.strip().splitlines()[-1])
        for k, v in res["lab_cost"].items():
            print(
                f"  batch {k}: uint8 RGB -> Lab {v['uint8_to_lab_ms']:.1f} ms/batch; "
                f"float16 Lab -> float32 {v['float16_cast_ms']:.1f} ms"
            )
    else:
        print(out.stderr[-2000:])
    if "mmap" in a.backends:  # cold and warm start of the uint8 cache
        b.cold()
        res["mmap_cold"] = b.train("colorize mmap cold", "colorize", b.photos, "mmap", steps=1, batch=1)
    for batch in a.color_batches:
        warmup, steps = (2, a.color_steps) if batch == 1 else (1, max(2, a.color_steps // 2))
        ips = batch
        res["batches"][batch] = interleaved(
            b,
            list(a.backends),
            a.color_rounds,
            lambda n, r, batch=batch, warmup=warmup, steps=steps: b.train(
                f"colorize {n} b{batch} r{r}",
                "colorize",
                b.photos,
                n,
                steps=warmup + steps,
                batch=batch,
                mem_every=0.25,
            ),
            warmup,
            ips,
        )
        for n, v in res["batches"][batch].items():
            rate = f"{v['images_per_s']:.3f}" if v["images_per_s"] else "-"
            ratio = f"{v['ratio']:.3f}x" if v["ratio"] else "-"
            print(f"  batch {batch} {n:<8} {rate:>8} img/s  {ratio:>7} memory")
    return res


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def _f(x: Any, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def summary(b: Bench, res: dict[str, Any]) -> None:
    a = b.args
    print("\n" + "=" * 100)
    print(f"SUMMARY  storage option in src: {b.has_storage}  (MiB; PSS/anon = sum over training processes)")
    st = res.get("startup", {})
    if st:
        print(f"\nDCGAN, {a.n_faces} 64x64 images, batch {a.batch_size}: time to first step")
        print(f"{'backend':<8} {'cold s':>7} {'warm s':>7} {'setup cold':>10} {'setup warm':>10} {'build img/s':>11}")
        for k in a.backends:
            v = st.get(k)
            if v:
                c, w = v["cold"], v["warm"]
                print(
                    f"{k:<8} {_f(c['first_row_s'], '.1f'):>7} {_f(w['first_row_s'], '.1f'):>7} "
                    f"{_f(c['train_line_s'], '.1f'):>10} {_f(w['train_line_s'], '.1f'):>10} "
                    f"{_f(v['cache_build_images_per_s']):>11}"
                )
    sc = res.get("scaling", {})
    if sc:
        print(
            "\nDCGAN peak memory (warm), one process. own = Pss_Anon + PSS of the cache file, summed with the"
            " decode workers (PSS without the shared libraries); data = minus the same backend at the baseline size"
        )
        print(
            f"{'backend':<8} {'images':>7} {'RSS':>7} {'PSS':>7} {'anon':>7} {'map RSS':>7} {'own':>7} "
            f"{'data own':>8} {'data anon':>9}"
        )
        for k, by_n in sc.items():
            base = by_n.get(a.baseline_images) or by_n.get(str(a.baseline_images))
            for n, r in sorted(by_n.items(), key=lambda kv: int(kv[0])):
                p, t = r["peak_mb"], r["peak_tree_mb"]
                do = t["own"] - base["peak_tree_mb"]["own"] if base else None
                da = p["anon"] - base["peak_mb"]["anon"] if base else None
                print(
                    f"{k:<8} {int(n):>7} {p['rss']:7.0f} {p['pss']:7.0f} {p['anon']:7.0f} {p['map_rss']:7.0f} "
                    f"{t['own']:7.0f} {_f(do):>8} {_f(da):>9}"
                )
    dd = res.get("ddp", {})
    if dd:
        n, n0 = a.n_faces, a.baseline_images
        print(f"\n2 processes (torchrun) vs 1 process (both OMP_NUM_THREADS=1), {n} images; data = minus n={n0}")
        print(
            f"{'backend':<8} {'figure':<6} {'1 proc':>7} {'2 procs':>8} {'ratio':>6} {'1p data':>8} "
            f"{'2p data':>8} {'ratio':>6}"
        )
        for k, v in dd.items():
            two, one = v.get(n) or v.get(str(n)), v.get(f"{n} 1proc")
            two0, one0 = v.get(n0) or v.get(str(n0)), v.get(f"{n0} 1proc")
            for fig, where in (("own", "peak_tree_mb"), ("anon", "peak_mb"), ("pss", "peak_mb"), ("rss", "peak_mb")):
                t2 = two[where][fig] if two else None
                t1 = one[where][fig] if one else None
                d2 = t2 - two0[where][fig] if (t2 is not None and two0) else None
                d1 = t1 - one0[where][fig] if (t1 is not None and one0) else None
                r_all = t2 / t1 if (t1 and t2) else None
                r_data = d2 / d1 if (d1 and d2 is not None and d1 > 1) else None
                print(
                    f"{k:<8} {fig:<6} {_f(t1):>7} {_f(t2):>8} {_f(r_all, '.2f'):>6} {_f(d1):>8} {_f(d2):>8} "
                    f"{_f(r_data, '.2f'):>6}"
                )
    ep = res.get("epoch")
    if ep:
        print(
            f"\nmmap, 2 processes, one epoch: file {ep['file_mib']:.1f} MiB, mapped RSS per process "
            f"{ep['peak_rank_max_mb']['map_rss']:.1f}, summed {ep['peak_mb']['map_rss']:.1f}, mapped PSS summed "
            f"{ep['peak_mb']['map_pss']:.1f} MiB; one process alone: mapped RSS "
            f"{ep['one_process']['peak_mb']['map_rss']:.1f}, PSS {ep['one_process']['peak_mb']['map_pss']:.1f} MiB"
        )
    tp = res.get("throughput", {})
    if tp:
        print(f"\nDCGAN steady-state throughput, batch {a.batch_size} ({a.rounds} interleaved rounds)")
        for k, v in tp.items():
            print(f"{k:<8} {_f(v['images_per_s'], '.1f'):>8} img/s  {_f(v['ratio'], '.3f')}x memory")
    co = res.get("colorize", {})
    if co:
        print("\ncolorize (256x256 photos)")
        for batch, by in co.get("batches", {}).items():
            for k, v in by.items():
                print(f"batch {batch} {k:<8} {_f(v['images_per_s'], '.3f'):>8} img/s  {_f(v['ratio'], '.3f')}x memory")
        for batch, v in co.get("lab_cost", {}).items():
            print(f"batch {batch}: uint8 -> Lab {v['uint8_to_lab_ms']:.1f} ms per batch")
    dec = res.get("decode", {})
    if dec:
        print("\ndecode, img/s per core")
        for k, v in dec.items():
            print(f"  {k:<40} {v['images_per_s_per_core']:8.0f}")


def compact(res: Any) -> Any:
    """Drop the bulky per-run fields for results.jsonl (the full JSON keeps them)."""
    if isinstance(res, dict):
        return {k: compact(v) for k, v in res.items() if k not in ("log_tail", "row_times_s", "storage_lines")}
    if isinstance(res, list):
        return [compact(v) for v in res]
    return res


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/gankit-bench-storage"), help="data, caches, runs")
    p.add_argument(
        "--src",
        type=Path,
        default=REPO / "src",
        help="gankit source tree to run, e.g. a snapshot (git archive HEAD src | tar -x -C DIR; --src DIR/src) "
        "that edits in the checkout cannot change during the run",
    )
    p.add_argument("--n-faces", type=int, default=50_000, help="64x64 JPEGs for DCGAN")
    p.add_argument("--n-photos", type=int, default=5_000, help="256x256 JPEGs for colorize")
    p.add_argument("--n-decode", type=int, default=400, help="images per decode-rate measurement")
    p.add_argument("--sizes", default="10000,25000", help="data.max_images for the scaling part (plus --n-faces)")
    p.add_argument("--baseline-images", type=int, default=512, help="the 'no data' reference size")
    p.add_argument("--backends", default="memory,mmap,stream")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epoch-images", type=int, default=5120, help="images of the one-epoch mmap run on 2 processes")
    p.add_argument("--startup-steps", type=int, default=3, help="steps of the startup/memory runs")
    p.add_argument("--rounds", type=int, default=3, help="DCGAN throughput rounds")
    p.add_argument("--warmup", type=int, default=4, help="steps not timed at the start of each throughput run")
    p.add_argument("--steps", type=int, default=16, help="timed steps per throughput run")
    p.add_argument("--color-batches", default="1,4")
    p.add_argument("--color-steps", type=int, default=6, help="timed colorize steps at batch 1 (half at batch 4)")
    p.add_argument("--color-rounds", type=int, default=2)
    p.add_argument("--stream-workers", type=int, default=0, help="data.workers for stream (0 = gankit's choice)")
    p.add_argument("--no-prime", dest="prime", action="store_false", help="no cache-building run before scaling runs")
    p.add_argument("--no-evict", action="store_true", help="cold runs keep the source JPEGs in the page cache")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per gankit run")
    p.add_argument("--quick", action="store_true", help="tiny everything (plumbing check, ~3 min)")
    p.add_argument("--no-save", action="store_true", help=f"do not append to {common.RESULTS_FILE.name}")
    a = p.parse_args()
    if a.quick:
        a.n_faces, a.n_photos, a.n_decode, a.epoch_images = 640, 60, 40, 256
        a.sizes, a.baseline_images, a.startup_steps, a.rounds, a.warmup, a.steps = "", 128, 2, 1, 1, 2
        a.color_batches, a.color_steps, a.prime = "1", 2, False
    a.sizes = [int(s) for s in str(a.sizes).split(",") if s.strip()] + [a.n_faces]
    a.color_batches = [int(s) for s in str(a.color_batches).split(",") if s.strip()]
    a.backends = [s.strip() for s in a.backends.split(",") if s.strip()]
    parts = [s.strip() for s in a.parts.split(",") if s.strip()]
    a.device = "cpu"  # for common.write_results
    b = Bench(a)
    if not b.has_storage:
        print("NOTE: this gankit has no data.storage option yet: every run is today's in-memory loading", flush=True)
        a.backends = ["memory"]
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res: dict[str, Any] = {"storage_option": b.has_storage, "load_avg_start": os.getloadavg()}
    res["data"] = part_data(b)  # always: every other part needs it
    if "decode" in parts:
        res["decode"] = part_decode(b)
    if "startup" in parts:
        res["startup"] = part_startup(b)
    if "scaling" in parts:
        res["scaling"] = part_scaling(b, res.get("startup", {}))
    if "ddp" in parts:
        res["ddp"] = part_ddp(b)
    if "epoch" in parts and "mmap" in a.backends:
        res["epoch"] = part_epoch(b)
    if "throughput" in parts:
        res["throughput"] = part_throughput(b)
    if "colorize" in parts:
        res["colorize"] = part_colorize(b)
    res["load_avg_end"] = os.getloadavg()
    res["seconds"] = time.perf_counter() - t0
    res["git"] = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    res["src"] = str(a.src)
    summary(b, res)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = a.work / f"result-{stamp}.json"
    out.write_text(
        json.dumps(
            {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}, **res},
            indent=1,
            default=str,
        )
    )
    print(f"\n{res['seconds'] / 60:.1f} min; full result: {out}")
    if not a.no_save:
        common.write_results("bench_storage", [compact(res)], a, {"result_file": str(out)})


if __name__ == "__main__":
    main()
