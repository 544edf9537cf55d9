"""Loading today's small datasets: gankit before the storage layer (v0.2.0, commit 0eb3a72) vs now.

Issue 14 asks that ``data.storage=auto`` handle every dataset that fit in memory before "as before,
no slowdown". Each contestant is a fresh process that imports gankit from its own source tree and
calls ``build_dataset`` for the training split, with its own ``XDG_CACHE_HOME`` (the two versions
keep different cache formats). Per dataset: the first load (empty cache: decoding, building the
facades layout once) and then ``--rounds`` warm loads, the two versions interleaved and the order
reversed every round; the ratio is new / old seconds (below 1: faster now). The time is the
``build_dataset`` call alone (the torch import is the same for both).

    git worktree add /tmp/gankit-v020 0eb3a72
    python benchmarks/bench_load_small.py [--old /tmp/gankit-v020] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GANKIT_BENCH_DATA", "/work/shared/data"))

DATASETS = {
    "fashion-mnist": {"name": "fashion-mnist", "path": str(DATA / "fashion-mnist")},
    "facades (CMP base)": {"name": "facades", "path": str(DATA / "cmp-facades-base"), "resolution": 256},
    "colorization (BSDS500)": {"name": "colorization", "path": str(DATA / "bsds500-color"), "resolution": 256},
    "folder (celeba-tiny)": {"name": "folder", "path": str(DATA / "celeba-tiny"), "resolution": 64},
}

PROBE = """
import json, sys, time
import torch, torchvision  # imported before the clock starts: the same for both versions
from gankit.config import DataConfig
from gankit.data import build_dataset
import gankit.data.base, gankit.data.folders, gankit.data.paired, gankit.data.colorization, gankit.data.facades
cfg = DataConfig(**json.loads(sys.argv[1]))
t = time.perf_counter()
ds = build_dataset(cfg, "train", log=lambda m: None)
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(ds)}))
"""


def load_once(src: Path, cache: Path, data: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src / "src"), XDG_CACHE_HOME=str(cache), OMP_NUM_THREADS="2")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(data)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, default=Path("/tmp/gankit-v020"), help="source tree of gankit v0.2.0")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    if not (args.old / "src" / "gankit").is_dir():
        sys.exit(f"{args.old}: no gankit source tree; run: git worktree add {args.old} 0eb3a72")
    work = Path(tempfile.mkdtemp(prefix="gankit-load-small-"))
    contestants = {"v0.2.0": args.old, "now": ROOT}
    rows = []
    for label, data in DATASETS.items():
        caches = {c: work / c / label.split()[0] for c in contestants}
        first = {c: load_once(src, caches[c], data) for c, src in contestants.items()}
        warm: dict[str, list[float]] = {c: [] for c in contestants}
        order = list(contestants)
        for _ in range(args.rounds):
            for c in order:
                warm[c].append(load_once(contestants[c], caches[c], data)["seconds"])
            order.reverse()
        med = {c: statistics.median(v) for c, v in warm.items()}
        assert first["now"]["n"] == first["v0.2.0"]["n"], (label, first)
        rows.append((label, first["v0.2.0"]["n"], first, med))
        print(
            f"{label:<24} n={first['now']['n']:>6}  first load {first['v0.2.0']['seconds']:.2f} s -> "
            f"{first['now']['seconds']:.2f} s  warm {med['v0.2.0']:.3f} s -> {med['now']:.3f} s "
            f"({med['now'] / med['v0.2.0']:.2f}x)",
            flush=True,
        )
    head = ["dataset", "items", "first load, v0.2.0", "first load, now", "warm load, v0.2.0", "warm load, now"]
    print("\n| " + " | ".join([*head, "now / v0.2.0 (warm)"]) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, n, first, med in rows:
        print(
            f"| {label} | {n} | {first['v0.2.0']['seconds']:.2f} s | {first['now']['seconds']:.2f} s | "
            f"{med['v0.2.0']:.3f} s | {med['now']:.3f} s | {med['now'] / med['v0.2.0']:.2f}x |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
