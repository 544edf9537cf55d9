"""Whole-command time of ``gankit colorize`` / ``gankit translate`` over a folder, per inference engine.

Contestants, interleaved round by round (order reversed every round), each a fresh CLI process as a
user runs it: ``before`` (the gankit of ``--before-src``, e.g. a worktree of the commit before the
inference engine), ``torch`` and ``onnxruntime`` (this checkout's ``--engine``). The ONNX export is made
once before the timed rounds (it is cached per snapshot), so the rounds time what a user pays on every
later run. Prints the median seconds, images/s and the ratio to the first contestant::

    python benchmarks/bench_folder.py colorize RUN PHOTOS --before-src /path/to/old/src [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def run(cmd: list[str], src: Path, threads: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["colorize", "translate"])
    p.add_argument("run")
    p.add_argument("inputs")
    p.add_argument("--before-src", type=Path, required=True, help="src/ of the gankit to compare against")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    n = sum(1 for f in Path(args.inputs).iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    out = Path(tempfile.mkdtemp(prefix="bench-folder-"))
    base = [sys.executable, "-m", "gankit", args.command, args.run, args.inputs, "--out"]
    contestants = {
        "before": (args.before_src, []),
        "torch": (SRC, ["--engine", "torch"]),
        "onnxruntime": (SRC, ["--engine", "onnxruntime"]),
    }
    run([*base, str(out / "warm"), "--engine", "onnxruntime"], SRC, args.threads)  # export once (cached)
    times: dict[str, list[float]] = {k: [] for k in contestants}
    for r in range(args.rounds):
        for name in list(contestants)[:: 1 if r % 2 == 0 else -1]:
            src, extra = contestants[name]
            target = out / f"{name}-{r}"
            times[name].append(run([*base, str(target), *extra], src, args.threads))
            shutil.rmtree(target)
    first = statistics.median(times["before"])
    print(f"{args.command} of {n} images, {args.threads} threads, {args.rounds} rounds (median, whole command):")
    for name, ts in times.items():
        m = statistics.median(ts)
        each = ", ".join(f"{t:.1f}" for t in ts)
        print(f"  {name:12s} {m:6.1f} s  {n / m:5.2f} img/s  x{first / m:.2f} vs before   ({each})")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
