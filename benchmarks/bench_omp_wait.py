"""OpenMP wait policy on a shared CPU: gankit's ``gan`` training steps with ``OMP_WAIT_POLICY`` unset,
``ACTIVE`` or ``PASSIVE``, on the machine as it is and with a core kept busy by another process.

Why: torch's CPU kernels run on an OpenMP thread pool (GNU libgomp in the Linux wheels). Between
parallel regions its idle threads spin (``ACTIVE``: for a very long time; unset: a short while, then
they sleep; ``PASSIVE``: they sleep at once). When another process holds one of the cores, a spinning
thread competes with it and every parallel region waits for the thread that lost its core, so a
step of many small kernels (the MLP GAN) can get several times slower (issue 11 measured
1,049 vs 7,691 img/s). gankit's CLI therefore sets ``PASSIVE`` before torch loads unless the user
set the variable.

Contestants: the same gankit ``Trainer`` step as ``bench_gan.py`` ("gankit default"), one process
per wait policy (the variable is read once, when OpenMP starts), each timed twice per round:
"idle" (nothing added by this script; other jobs on the machine are what they are: see the
recorded 1-minute load) and "busy" (``--burners`` processes spinning ``while True: pass`` during
that contestant's timed steps only, optionally pinned to CPU 0 with ``--pin``). Interleaved rounds
as in every benchmark here; printed per condition: the ratio PASSIVE / ACTIVE and PASSIVE / unset
(median over rounds of the per-round ratio).

    python benchmarks/bench_omp_wait.py [--burners 1] [--pin] [--rounds 5] [--steps 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import common
import seed_data

POLICIES = {"unset": None, "ACTIVE": "ACTIVE", "PASSIVE": "PASSIVE"}
CONDITIONS = ("idle", "busy")


def _policy(name: str) -> str:
    """``"gankit PASSIVE busy"`` -> ``"PASSIVE"``."""
    return name.split(" ")[1]


def _condition(name: str) -> str:
    return name.split(" ")[2]


def build(name: str, args: argparse.Namespace) -> common.Runner:
    root = seed_data.fashion_mnist_root(args.data_root, args.synthetic)
    runner = common.gankit_runner("gan", "gankit default", args, {"data.path": str(root)})
    # what this process really saw (the parent sets it per contestant), and torch's OpenMP build
    import torch

    runner.info["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    runner.info["parallel_info"] = [
        line.strip() for line in torch.__config__.parallel_info().splitlines() if "OpenMP" in line or "threads" in line
    ]
    return runner


@contextlib.contextmanager
def burning(n: int, pin: bool) -> Iterator[None]:
    """``n`` processes spinning on the CPU (pinned to CPU 0 with ``pin``) while the context is open."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
            if pin:
                os.sched_setaffinity(procs[-1].pid, {0})
        time.sleep(0.3)  # let them start spinning before the timed steps
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def ratios(results: list[dict[str, Any]], num: str, den: str) -> dict[str, float]:
    """Per condition: median over rounds of (num policy img/s / den policy img/s in the same round)."""
    by_name = {r["name"]: r for r in results}
    out: dict[str, float] = {}
    for cond in CONDITIONS:
        a = by_name.get(f"gankit {num} {cond}", {}).get("rounds_images_per_s", [])
        b = by_name.get(f"gankit {den} {cond}", {}).get("rounds_images_per_s", [])
        if a and len(a) == len(b):
            out[cond] = statistics.median(x / y for x, y in zip(a, b))
    return out


def main() -> None:
    p = common.base_parser(
        __doc__.splitlines()[0], batch_size=100, num_workers="0", rounds=5, steps=60, warmup=10, options="default"
    )
    p.set_defaults(omp_wait="unset")  # set per contestant below, never globally
    p.add_argument("--burners", type=int, default=1, help="CPU-spinning processes in the 'busy' condition")
    p.add_argument("--pin", action="store_true", help="pin the burners to CPU 0 (default: the scheduler places them)")
    p.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help=f"comma list of {', '.join(POLICIES)} (the first is the baseline)",
    )
    args = p.parse_args()
    policies = [s.strip() for s in args.policies.split(",") if s.strip()]
    unknown = [x for x in policies if x not in POLICIES]
    if unknown:
        raise SystemExit(f"--policies: unknown {', '.join(unknown)} (known: {', '.join(POLICIES)})")
    names = [f"gankit {pol} {cond}" for cond in CONDITIONS for pol in policies]
    results = common.run_contestants(
        build,
        names,
        args,
        env=lambda name: {"OMP_WAIT_POLICY": POLICIES[_policy(name)]},
        around_round=lambda name: (
            burning(args.burners, args.pin) if _condition(name) == "busy" else contextlib.nullcontext()
        ),
    )
    extra: dict[str, Any] = {"burners": args.burners, "pinned": args.pin}
    for den in ("ACTIVE", "unset"):
        if "PASSIVE" in policies and den in policies:
            extra[f"passive_over_{den.lower()}"] = ratios(results, "PASSIVE", den)
    busy = f"{args.burners} burner{'s' if args.burners != 1 else ''}{' pinned to CPU 0' if args.pin else ''}"
    title = f"omp_wait (MLP GAN steps, batch {args.batch_size}, {args.device}; busy = {busy})"
    common.report(title, results, args, extra)
    for key, r in extra.items():
        if key.startswith("passive_over_"):
            den = "unset" if key.endswith("unset") else "ACTIVE"
            print(f"PASSIVE / {den} (same condition, same round): " + ", ".join(f"{c} {v:.2f}x" for c, v in r.items()))


if __name__ == "__main__":
    main()
