"""Shared machinery of the gankit benchmarks: contestants, interleaved timing, results.

A benchmark compares *contestants*: the seed/reference training step, written out in the
benchmark script itself and fed by a per-sample ``Dataset`` + ``DataLoader``, against gankit's
real :class:`~gankit.training.loop.Trainer` under several options. Each contestant lives in its
own spawned process, so the peak memory it reports is its own and a ``torch.compile`` cache or
thread setting of one cannot leak into another. They load their data in parallel, warm up one
after the other (so compilation times are not inflated by each other), then run timed rounds one
contestant at a time (the others wait, idle), reversing the order every round so that drifting
machine load hits all of them alike; each round starts with one untimed step (DataLoader worker
start-up). Reported: the median images/s over rounds, and the median over rounds of the per-round
ratio to the first contestant (the baseline).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results.jsonl"
DEFAULT_DATA_ROOT = Path(os.environ.get("GANKIT_BENCH_DATA", "/work/shared/data"))
CACHE_DIR = Path(os.environ.get("GANKIT_BENCH_CACHE", BENCH_DIR / ".cache"))
"""gankit's data caches (built facades, decoded folders) and the synthetic data sets during benchmarks;
kept out of ~/.cache (``$GANKIT_BENCH_CACHE`` moves them, e.g. into a test's temporary folder)."""

GANKIT_OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "channels_last": {"train.channels_last": True},
    "compile": {"train.compile": True},
    "fast": {"train.fast": True},
    "bf16": {"train.amp": "bf16"},
    "nchw": {"train.channels_last": False},  # the DCGAN presets train channels_last
    "freeing": {"train.keep_memory": False},  # glibc returns freed memory to the OS (gankit before 2026-11-23)
}
"""gankit config overrides compared by every benchmark (``--options``)."""

PROTOTYPES: dict[str, Callable[[Any], None]] = {}
"""Changes that are *not* in gankit's src, applied by the benchmark to a built Trainer, to measure a
proposed change with the real loop. Named in ``--options`` like config options; shown with a
``(proto)`` mark. Benchmark scripts may register their own (e.g. a colorization data cache)."""


def prototype(name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    def wrap(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        PROTOTYPES[name] = fn
        return fn

    return wrap


@prototype("loop_adam")
def _loop_adam(tr: Any) -> None:
    """Adam's per-parameter for-loop on CPU, as gankit had it before fused Adam on CPU (commit 1e54de3)."""
    import torch

    if tr.device.type != "cpu":
        return
    o = tr.cfg.optim
    tr.opt_G = torch.optim.Adam(tr.G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2), foreach=False)
    tr.opt_D = torch.optim.Adam(tr.D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2), foreach=False)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def base_parser(
    description: str, *, batch_size: int, num_workers: str, rounds: int, steps: int, warmup: int, options: str
) -> argparse.ArgumentParser:
    """The flags every benchmark shares; the defaults are the family's (seed) settings."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch-size", type=int, default=batch_size, help="same for the baseline and gankit")
    p.add_argument(
        "--num-workers",
        default=num_workers,
        help="baseline DataLoader workers; a comma list runs one baseline per value (the first is "
        "the reference for ratios)",
    )
    p.add_argument(
        "--options",
        default=options,
        help=f"gankit variants to compare, a comma list of {', '.join(GANKIT_OPTIONS)} or 'all'; "
        "'+' combines options, and prototypes of changes not in src can be added the same way "
        "(e.g. default+loop_adam)",
    )
    p.add_argument("--rounds", type=int, default=rounds, help="timed rounds per contestant (interleaved)")
    p.add_argument("--steps", type=int, default=steps, help="timed training steps per round")
    p.add_argument(
        "--warmup",
        type=int,
        default=warmup,
        help="untimed steps after setup (they include torch.compile's compilation)",
    )
    p.add_argument("--synthetic", action="store_true", help="random images instead of the real data set")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="folder holding the data sets")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    p.add_argument(
        "--omp-wait",
        choices=["passive", "active", "unset"],
        default="passive",
        help="OMP_WAIT_POLICY of every contestant: on a shared machine, spinning OpenMP threads "
        "make every step 5-15x slower whenever another process holds a core",
    )
    p.add_argument("--no-save", action="store_true", help=f"do not append to {RESULTS_FILE.name}")
    return p


def parse_options(text: str) -> list[str]:
    names: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        names += list(GANKIT_OPTIONS) if item == "all" else [item] if item else []
    unknown = [t for n in names for t in n.split("+") if t not in GANKIT_OPTIONS and t not in PROTOTYPES]
    if unknown:
        raise SystemExit(
            f"unknown --options {', '.join(unknown)} "
            f"(known: {', '.join(GANKIT_OPTIONS)}, all; prototypes: {', '.join(PROTOTYPES)})"
        )
    return names


def parse_workers(text: str) -> list[int]:
    return [int(s) for s in str(text).split(",") if s.strip()]


def use_bench_cache() -> None:
    """Point gankit's data caches into ``benchmarks/.cache`` (set before gankit reads any data)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GANKIT_DATA", str(CACHE_DIR / "data"))
    os.environ.setdefault("XDG_CACHE_HOME", str(CACHE_DIR / "xdg"))


# ---------------------------------------------------------------------------------------------
# Contestants
# ---------------------------------------------------------------------------------------------


class Runner(Protocol):
    """What a contestant provides to the timing loop (inside its own process)."""

    images_per_step: int
    info: dict[str, Any]

    def begin_round(self) -> None: ...

    def step(self) -> None: ...

    def end_round(self) -> None: ...


class LoaderFeed:
    """Batches from a ``DataLoader``, with a fresh iterator per round (a new epoch).

    The iterator, and with it the worker processes, lives only during a round: idle workers would
    otherwise keep prefetching while another contestant is being timed. The untimed first step of
    each round absorbs the worker start-up, as the first batch of every epoch does in a real run.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self._it: Any = None

    def begin(self) -> None:
        self._it = iter(self.loader)

    def next(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            return next(self._it)

    def end(self) -> None:
        self._it = None  # shuts the workers down


class BaselineRunner:
    """A seed training step (``step_fn(batch)``) fed by a per-sample ``DataLoader``."""

    def __init__(
        self, loader: Any, step_fn: Callable[[Any], None], images_per_step: int, info: dict[str, Any] | None = None
    ) -> None:
        self.feed = LoaderFeed(loader)
        self.step_fn = step_fn
        self.images_per_step = images_per_step
        self.info = info or {}

    def begin_round(self) -> None:
        self.feed.begin()

    def step(self) -> None:
        self.step_fn(self.feed.next())

    def end_round(self) -> None:
        self.feed.end()


class GankitRunner:
    """gankit's real :class:`Trainer`, stepped exactly as ``Trainer.fit`` steps it.

    The body of :meth:`step` is the body of ``fit()``'s loop without the epoch-end work (sample
    grids, validation, checkpoints): ``sampler.indices(step)`` -> ``data.batch(...)`` ->
    (channels_last) -> ``train_step`` -> ``StatsAccumulator.add`` (flushed every ``log_every``).
    """

    def __init__(self, preset: str, overrides: dict[str, Any], *, device: str, protos: list[str] = ()) -> None:
        from gankit.config import make_config
        from gankit.training.loop import Trainer
        from gankit.training.stats import StatsAccumulator

        use_bench_cache()
        # train.keep_memory=True as the gankit command sets it (the Python API default is off)
        base = {"train.device": device, "train.progress": False, "train.keep_memory": True}
        self.cfg = make_config(preset, overrides={**base, **overrides})
        self._tmp = tempfile.TemporaryDirectory(prefix="gankit-bench-")
        self.tr = Trainer(self.cfg, Path(self._tmp.name) / "run", log=lambda msg: None)
        self.tr.G.train()
        self.tr.D.train()
        for name in protos:
            PROTOTYPES[name](self.tr)
        self.tr._set_lr(0)
        self.acc = StatsAccumulator()
        self.images_per_step = self.cfg.train.batch_size
        self.info = {
            "preset": preset,
            "overrides": overrides,
            "prototypes": list(protos),
            "train_images": len(self.tr.data),
            "channels_last": self.tr.channels_last,
        }

    def begin_round(self) -> None:
        pass

    def step(self) -> None:
        import torch

        tr = self.tr
        index = tr.sampler.indices(tr.step)
        gen = tr.sampler.augment_generator(tr.step) if tr.family.kind == "paired" else None
        batch = tr.data.batch(index, device=tr.device, generator=gen)
        if tr.channels_last:
            batch = {
                k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()
            }
        self.acc.add(tr.train_step(batch, pretrain=False, g_step=True))
        tr.step += 1
        if tr.step % self.cfg.train.log_every == 0:
            self.acc.flush()

    def end_round(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Timing (child side)
# ---------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _peak_mb(device: str) -> dict[str, float]:
    """Peak resident memory of this process (and of the largest of its finished children, e.g. DataLoader workers)."""
    out = {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }
    if device == "cuda":
        import torch

        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _wait(conn: Any) -> Any:
    """The parent's next message; None (stop) when the parent has gone away."""
    parent = os.getppid()
    while not conn.poll(1.0):
        if os.getppid() != parent:
            return None
    try:
        return conn.recv()
    except EOFError:
        return None


def _child(
    factory: Callable[[str, argparse.Namespace], Runner], name: str, args: argparse.Namespace, conn: Any
) -> None:
    """One contestant: build (in parallel with the others), warm up when told, then timed rounds."""
    try:
        t0 = time.perf_counter()
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        runner = factory(name, args)
        conn.send({"ok": True, "setup_s": time.perf_counter() - t0})
        if _wait(conn) is None:
            return
        warm: list[float] = []
        runner.begin_round()
        for _ in range(args.warmup):
            t = time.perf_counter()
            runner.step()
            _sync(args.device)
            warm.append(time.perf_counter() - t)
        runner.end_round()
        runner.begin_round()
        # one more, untimed step; a runner may opt out (under torch.compile the counter may fail or recompile)
        flops = _count_flops(runner) if getattr(runner, "count_flops", True) else None
        runner.end_round()
        conn.send(
            {
                "ok": True,
                "warmup_s": warm,
                "images_per_step": runner.images_per_step,
                "info": runner.info,
                "threads": torch.get_num_threads(),
                "flops_per_step": flops,
            }
        )
        while True:
            steps = _wait(conn)
            if steps is None:
                break
            runner.begin_round()
            runner.step()  # untimed: DataLoader worker start-up / first batch of the epoch
            _sync(args.device)
            t = time.perf_counter()
            for _ in range(steps):
                runner.step()
            _sync(args.device)
            secs = time.perf_counter() - t
            runner.end_round()
            conn.send({"ok": True, "secs": secs, "steps": steps, **_peak_mb(args.device)})
    except BaseException:  # report to the parent instead of dying silently
        try:
            conn.send({"ok": False, "error": traceback.format_exc()})
        except OSError:
            pass
    finally:
        conn.close()


def _count_flops(runner: Runner) -> float | None:
    """FLOPs of one training step (matmuls and convolutions, forward and backward) by
    ``torch.utils.flop_counter``; None where it cannot count (e.g. through torch.compile)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            runner.step()
        return float(counter.get_total_flops()) or None
    except Exception:  # noqa: BLE001 - an uncountable step only loses the TFLOP/s column
        return None


def gemm_tflops(device: str, dtype_name: str = "float32", n: int = 4096, reps: int = 5) -> float:
    """The rate of a large square matmul on ``device``: the practical peak the steps are compared with."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12


# ---------------------------------------------------------------------------------------------
# Timing (parent side)
# ---------------------------------------------------------------------------------------------


def _set_environ(values: dict[str, str | None]) -> None:
    """Set ``os.environ`` keys; None unsets."""
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _start_with_env(proc: Any, env: dict[str, str | None]) -> None:
    """Start ``proc`` (spawned: it copies ``os.environ`` at start) with ``env`` applied (None = unset)."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        _set_environ(env)
        proc.start()
    finally:
        _set_environ(saved)


def run_contestants(
    factory: Callable[[str, argparse.Namespace], Runner],
    names: list[str],
    args: argparse.Namespace,
    *,
    env: Callable[[str], dict[str, str | None]] | None = None,
    around_round: Callable[[str], AbstractContextManager[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Build every contestant in its own process, then time them in interleaved rounds.

    ``env(name)``: environment variables of that contestant's process (None = unset), e.g. its own
    ``OMP_WAIT_POLICY``; ``around_round(name)``: a context entered around each of its timed rounds
    (e.g. a CPU-burning process that makes the machine busy for that contestant only).
    """
    if args.omp_wait != "unset":  # read by OpenMP when a child first loads torch
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait.upper()
    ctx = mp.get_context("spawn")
    live: dict[str, tuple[Any, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    started: list[tuple[str, Any, Any]] = []
    try:
        for name in names:  # imports and data loading overlap; warm-ups (compilation) run one at a time
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(factory, name, args, child), daemon=False)
            _start_with_env(proc, env(name) if env else {})
            child.close()
            started.append((name, parent, proc))
        for name, parent, proc in started:
            msg = _recv(parent, proc)
            if msg.get("ok"):
                parent.send("warmup")
                msg = {**msg, **_recv(parent, proc)}
            results[name] = {"name": name, **msg, "rounds": []}
            if msg.get("ok"):
                warm = msg["warmup_s"]
                print(
                    f"  ready: {name:<34} setup {msg['setup_s']:6.1f} s, warm-up {sum(warm):6.1f} s "
                    f"({len(warm)} steps)",
                    file=sys.stderr,
                    flush=True,
                )
                live[name] = (parent, proc)
            else:
                print(f"  FAILED: {name}\n{msg.get('error')}", file=sys.stderr, flush=True)
                proc.join()
        order = [n for n in names if n in live]
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                parent, proc = live[name]
                with around_round(name) if around_round else contextlib.nullcontext():
                    parent.send(args.steps)
                    msg = _recv(parent, proc)
                if not msg.get("ok"):
                    print(f"  FAILED in round {r}: {name}\n{msg.get('error')}", file=sys.stderr, flush=True)
                    results[name].update(ok=False, error=msg.get("error"))
                    live.pop(name)
                    order.remove(name)
                    continue
                ips = msg["steps"] * results[name]["images_per_step"] / msg["secs"]
                results[name]["rounds"].append({**msg, "images_per_s": ips})
            print(
                f"  round {r + 1}/{args.rounds}: "
                + ", ".join(f"{n} {results[n]['rounds'][-1]['images_per_s']:.1f}" for n in order),
                file=sys.stderr,
                flush=True,
            )
        for parent, proc in live.values():
            parent.send(None)
            proc.join(timeout=60)
    finally:  # a failure or Ctrl-C here must not leave contestants behind
        for _, _, proc in started:
            if proc.is_alive():
                proc.terminate()
    return [_summarize(results[n], results[names[0]]) for n in names]


def _recv(conn: Any, proc: Any) -> dict[str, Any]:
    while not conn.poll(1.0):
        if not proc.is_alive():
            return {"ok": False, "error": f"process exited with code {proc.exitcode}"}
    try:
        return conn.recv()
    except EOFError:
        return {"ok": False, "error": f"process exited with code {proc.exitcode}"}


def _summarize(res: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    rounds = res.get("rounds", [])
    out = {k: v for k, v in res.items() if k != "rounds"}
    out["rounds_images_per_s"] = [round(r["images_per_s"], 2) for r in rounds]
    if not rounds:
        return out
    ips = [r["images_per_s"] for r in rounds]
    out["images_per_s"] = statistics.median(ips)
    out["step_s"] = statistics.median(r["secs"] / r["steps"] for r in rounds)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
    out["children_peak_rss_mb"] = max(r["children_peak_rss_mb"] for r in rounds)
    if "peak_cuda_mb" in rounds[0]:
        out["peak_cuda_mb"] = max(r["peak_cuda_mb"] for r in rounds)
    if res.get("flops_per_step"):
        out["tflops"] = res["flops_per_step"] / out["step_s"] / 1e12
    warm = res.get("warmup_s") or []
    # compilation (and other first-step costs) = warm-up time beyond what as many steady steps take
    out["warmup_extra_s"] = max(0.0, sum(warm) - len(warm) * out["step_s"])
    base_rounds = base.get("rounds", [])
    if len(base_rounds) == len(rounds):
        out["ratio"] = statistics.median(r["images_per_s"] / b["images_per_s"] for r, b in zip(rounds, base_rounds))
    return out


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: str) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else cpu_model()
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": device,
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_1min": os.getloadavg()[0],
    }


def report(
    title: str, results: list[dict[str, Any]], args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> None:
    """Print one table (name, images/s, ratio, step time, peak memory, warm-up) and append a jsonl line."""
    mem_key = "peak_cuda_mb" if args.device == "cuda" else "peak_rss_mb"
    w = max(26, *(len(r["name"]) + 1 for r in results))

    def num(x: float) -> str:
        return f"{x:.3g}" if x < 10 else f"{x:.1f}"

    print(f"\n{title}")
    header = (
        f"{'images/s':>9} {'ratio':>7} {'s/step':>8} {'TFLOP/s':>8} {'peak MB':>8} {'warm-up+ s':>10}  rounds images/s"
    )
    print(f"{'name':<{w}} {header}")
    for r in results:
        if not r.get("ok") or "images_per_s" not in r:
            last = str(r.get("error", "")).strip().splitlines()[-1:] or [""]
            print(f"{r['name']:<{w}} {'failed':>9}  {last[0]}")
            continue
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        tflops = f"{r['tflops']:.3f}" if "tflops" in r else "-"
        print(
            f"{r['name']:<{w}} {num(r['images_per_s']):>9} {ratio:>7} {r['step_s']:>8.3f} {tflops:>8} "
            f"{r[mem_key]:>8.0f} "
            f"{r['warmup_extra_s']:>10.1f}  {' '.join(num(x) for x in r['rounds_images_per_s'])}"
        )
    print(
        f"ratio = median over rounds of (images/s / {results[0]['name']} images/s in the same round); "
        f"peak MB = peak {'CUDA allocation' if args.device == 'cuda' else 'RSS of the training process'}; "
        "warm-up+ = warm-up time beyond steady steps (compilation); TFLOP/s = the FLOPs of one step "
        "(counted by torch.utils.flop_counter) / s per step"
    )
    peaks = {"gemm_fp32_tflops": gemm_tflops(args.device)}
    if args.device == "cuda":
        peaks["gemm_bf16_tflops"] = gemm_tflops(args.device, "bfloat16")
    print(
        "reference: a 4096^3 matmul on this device runs at "
        + ", ".join(f"{v:.3g} TFLOP/s ({k.split('_')[1]})" for k, v in peaks.items())
    )
    write_results(title, results, args, {**peaks, **(extra or {})})


def write_results(
    title: str, results: list[dict[str, Any]], args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> None:
    if getattr(args, "no_save", False):
        return
    row = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "benchmark": title,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "machine": machine(args.device),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        **(extra or {}),
    }
    with RESULTS_FILE.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    print(f"(appended to {RESULTS_FILE})")


def contestant_names(args: argparse.Namespace, *, compute_baseline: bool = False) -> list[str]:
    """Baselines first (one per ``--num-workers`` value, then the in-memory one), then gankit options."""
    names = [f"seed nw={w}" for w in parse_workers(args.num_workers)]
    if compute_baseline:
        names.append("seed in-memory")
    for o in parse_options(args.options):
        proto = any(t in PROTOTYPES for t in o.split("+"))
        names.append(f"gankit {o}" + (" (proto)" if proto else ""))
    return names


def gankit_variant(name: str) -> tuple[dict[str, Any], list[str]]:
    """``"gankit channels_last+loop_adam (proto)"`` -> (config overrides, prototype names)."""
    tokens = name.split(" ")[1].split("+")
    overrides: dict[str, Any] = {}
    for t in tokens:
        overrides.update(GANKIT_OPTIONS.get(t, {}))
    return overrides, [t for t in tokens if t in PROTOTYPES]


def gankit_runner(preset: str, name: str, args: argparse.Namespace, overrides: dict[str, Any]) -> GankitRunner:
    """The gankit contestant ``name`` (as made by :func:`contestant_names`) for ``preset``."""
    extra, protos = gankit_variant(name)
    return GankitRunner(
        preset, {"train.batch_size": args.batch_size, **overrides, **extra}, device=args.device, protos=protos
    )


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (a run's metrics/stats/eval, a results file); [] when it is missing."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_eval(run: Path, step: int, n: int, metrics: Iterable[str]) -> dict[str, Any] | None:
    """The run's latest ``gankit eval`` row of ``G_last.pt`` at ``step`` with ``n`` samples and every one
    of ``metrics``, if any."""
    rows = [
        r
        for r in read_jsonl(run / "eval.jsonl")
        if r.get("checkpoint") == "G_last.pt" and r.get("step") == step and r.get("n") == n
    ]
    rows = [r for r in rows if all(m in r for m in metrics)]
    return rows[-1] if rows else None


def gankit_pool(
    jobs: list[tuple[list[str], Path]], *, parallel: int, threads: int, cwd: Path, src: Path | None = None
) -> None:
    """:func:`run_pool` for gankit commands: ``OMP_WAIT_POLICY=PASSIVE`` unless set (see "Noise" in
    BENCHMARKS.md), ``threads`` torch/OpenMP threads each (0: torch's default), and with ``src`` that
    gankit first on ``PYTHONPATH`` (the checkout being measured)."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    run_pool(jobs, parallel=parallel, env=env, cwd=cwd)


def run_pool(jobs: list[tuple[list[str], Path]], *, parallel: int, env: dict[str, str], cwd: Path) -> None:
    """Run ``(command, log file)`` jobs, ``parallel`` at a time, each logging to its file (the command
    first); a failing job stops the pool with the end of its log, and no job outlives a failure or Ctrl-C."""
    todo = list(jobs)
    running: list[tuple[subprocess.Popen[bytes], Path, float]] = []
    try:
        while todo or running:
            while todo and len(running) < parallel:
                cmd, log = todo.pop(0)
                print("$ " + shlex.join(cmd), flush=True)
                with log.open("a") as f:
                    f.write(f"$ {shlex.join(cmd)}\n")
                    f.flush()
                    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env)
                running.append((proc, log, time.perf_counter()))
            time.sleep(1)
            for item in [r for r in running if r[0].poll() is not None]:
                running.remove(item)
                proc, log, t = item
                if proc.returncode != 0:
                    tail = "\n".join(log.read_text().strip().splitlines()[-5:])
                    raise SystemExit(f"command failed (exit {proc.returncode}), see {log}:\n{tail}")
                print(f"  done in {time.perf_counter() - t:.0f} s ({log.name})", flush=True)
    finally:
        for proc, _, _ in running:
            proc.terminate()
