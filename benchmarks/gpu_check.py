"""The GPU check: every figure a lent GPU should give, in one command and one JSON file (issue 23).

A GPU is lent for minutes, so this spends them measuring. Stages, each in its own process with a
timeout taken from one time budget (a stage that fails or overruns is recorded as such, and the
others keep their figures; the JSON is rewritten after every stage):

* ``device``: device name, torch/CUDA/cuDNN versions, and the measured rate of a large square
  matmul in fp32, TF32 (CUDA) and bf16: the practical peaks the training steps are compared with.
* ``train:FAMILY`` (gan, cgan, dcgan, pix2pix, colorize): three contestants of :mod:`common` (own
  process each, interleaved timed rounds): the family's reference-style baseline step from
  ``bench_FAMILY.py`` (same network and batch as there, fed by its per-sample DataLoader), gankit
  plain fp32 and gankit ``--fast`` (``train.fast``: bf16 autocast, TF32, channels_last and
  torch.compile on CUDA; nothing on a CPU). The first ``--steps`` steps of each gankit arm are its
  warm-up (compilation included), and their losses come back: they must be finite, and fast must
  agree with plain (:data:`TOLERANCE`). Then ``--rounds`` timed rounds of ``--steps`` steps give
  images/s, TFLOP/s (FLOPs of one step counted by ``torch.utils.flop_counter``; the fast arm is
  the same model, so plain's count is used for it) and peak memory (``torch.cuda.max_memory_allocated``
  on CUDA, peak RSS on a CPU). Data: the benchmarks' synthetic sets, written on first use.
* ``inference``: per family a generator snapshot at the training size, loaded as the tools load it,
  and its images/s through each engine of :mod:`gankit.engine` (torch, onnxruntime, auto); an
  engine that cannot run here (onnxruntime runs on the CPU only) is recorded with gankit's reason.
* ``tests``: the tests that skip without CUDA (fp16 + GradScaler; SyncBatchNorm, which needs 2 GPUs),
  run by pytest; outcomes and skip reasons are recorded.

On a GPU (installs what is missing first, then this)::

    bash benchmarks/gpu_check.sh                     # writes gpu_check.json, prints a summary

Dry run on a CPU (what tests/test_gpu_check.py runs, so that this cannot rot)::

    bash benchmarks/gpu_check.sh --device cpu --steps 2 --quick --skip-install
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import common

REPO = common.BENCH_DIR.parent
FAMILIES = ("gan", "cgan", "dcgan", "pix2pix", "colorize")
LOSSES = ("d_loss", "g_loss")
ARMS = ("seed", "plain", "fast")
"""The contestants of a train stage: the family's reference-style baseline, gankit default, gankit fast."""


@dataclass(frozen=True)
class FamilySpec:
    """What one family trains with: the batch and baseline DataLoader workers of its ``bench_*.py``
    (``--quick``: a smaller batch, and the baseline loads in its own process)."""

    batch: int
    workers: str
    quick_batch: int


SPECS = {
    "gan": FamilySpec(batch=100, workers="0", quick_batch=16),
    "cgan": FamilySpec(batch=100, workers="0", quick_batch=16),
    "dcgan": FamilySpec(batch=64, workers="2", quick_batch=4),
    "pix2pix": FamilySpec(batch=1, workers="4", quick_batch=1),
    "colorize": FamilySpec(batch=1, workers="4", quick_batch=1),
}
RESOLUTION = {"full": 256, "quick": 64}
"""U-Net side (pix2pix, colorize); the MLPs train at 28x28 and the DCGAN at 64x64 either way."""

TOLERANCE = {"first_step_rtol": 0.05, "mean_rtol": 0.05, "atol": 0.01, "mean_steps": 10}
"""fast vs plain: each loss of the first step within ``first_step_rtol * |plain| + atol``, and its
mean over the first ``mean_steps`` steps within ``mean_rtol * |plain mean| + atol``.

Where the two arms differ: bf16 keeps 8 mantissa bits where fp32 keeps 24, and TF32 matmuls 11 bits
(plain lets cuDNN use TF32 for convolutions as well: PyTorch's default); under torch.compile the
dropout masks of cgan's D and of the U-Nets come from another random stream (and with them cgan's
later noise). Measured on a CPU with native bf16 (AVX512-BF16), gankit's Trainer at the presets'
sizes and the batches used here (U-Nets at 128x128), 10 steps from the same weights and data:

* bf16 autocast against fp32: first-step losses within 0.15%, 10-step means within 0.32%;
* fp32 against fp32 with another random stream: cgan, pix2pix and colorize first steps within 1.7%,
  10-step means within 0.45% (dcgan, whose noise this also redraws and which fast does not change:
  15% and 9%).

So 5% is ~3x the largest first-step gap and >10x the mean gaps that fast can cause; beyond it, fast
trains a different model rather than the same one faster. ``atol`` covers losses near 0.
"""

NOTES = [
    "images/s: median over the timed rounds; ratio: median per-round ratio to the seed baseline (same round)",
    "TFLOP/s: FLOPs of one step (torch.utils.flop_counter, forward + backward) / seconds per step; "
    "matmul_fraction: that / the measured matmul rate of the arm's precision (fast: bf16 on CUDA)",
    "plain fp32 on CUDA: PyTorch lets cuDNN convolutions use TF32 by default (torch.backends.cudnn.allow_tf32), "
    "not matmuls; compare conv families' plain TFLOP/s with the tf32 matmul rate too",
    "peak_mb: torch.cuda.max_memory_allocated of the contestant's process (warm-up and compilation included); "
    "peak RSS on a CPU",
]
"""Printed into the JSON: how to read its figures."""

CUDA_TESTS = (
    "tests/training/test_amp.py::test_fp16_with_scaler_trains_on_cuda",
    "tests/training/test_distributed.py::test_sync_bn_uses_global_batch_statistics",
)
"""The tests that skip without CUDA (the second needs 2 GPUs)."""

STAGE_FLOOR = {"full": 30.0, "quick": 10.0}
"""The least time a stage is started with; each stage still to come keeps this much back from the
timeout of the one running."""


# ---------------------------------------------------------------------------------------------
# Stage: device
# ---------------------------------------------------------------------------------------------


def stage_device(args: argparse.Namespace) -> dict[str, Any]:
    """Versions, device facts and the matmul rates (fp32, TF32 on CUDA, bf16) in TFLOP/s."""
    import torch

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
    info = common.machine(args.device)
    info.update(
        python=sys.version.split()[0],
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        gpu_count=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        onnxruntime=_version("onnxruntime"),
        gankit=_version("gankit") or _source_version(),
    )
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}")
    n, reps = (256, 3) if args.quick else ((8192, 10) if cuda else (1024, 3))
    rates: dict[str, Any] = {"matrix_side": n, "fp32": common.gemm_tflops(args.device, "float32", n, reps)}
    if cuda:
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            rates["tf32"] = common.gemm_tflops(args.device, "float32", n, reps)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
    else:
        rates["tf32"] = None
        rates["tf32_skipped"] = "TF32 is a CUDA tensor-core format"
    rates["bf16"] = common.gemm_tflops(args.device, "bfloat16", n, reps)
    return {"machine": info, "matmul_tflops": rates}


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _source_version() -> str | None:
    import gankit

    return getattr(gankit, "__version__", None)


# ---------------------------------------------------------------------------------------------
# Stage: train one family
# ---------------------------------------------------------------------------------------------


class RecordingRunner:
    """A gankit contestant (:class:`common.GankitRunner`) that keeps the losses of its first ``n`` steps.

    It sits in front of the runner's stats accumulator, so it sees what every ``train_step`` returns.
    The losses stay on the device (no host sync per step) until the first round ends, which is the
    contestant's warm-up; they then go into ``info``, which reaches the parent with the warm-up's report.
    """

    def __init__(self, runner: common.GankitRunner, n: int) -> None:
        self.runner, self.n = runner, n
        self.images_per_step = runner.images_per_step
        speed = runner.tr.speed
        self.info = {**runner.info, "speed": asdict(speed)}
        self.count_flops = not speed.compile
        self._rows: list[dict[str, Any]] = []
        self._acc, runner.acc = runner.acc, self

    def add(self, stats: dict[str, Any]) -> None:
        if len(self._rows) < self.n:
            self._rows.append({k: stats[k].detach().float().clone() for k in LOSSES if k in stats})
        self._acc.add(stats)

    def flush(self) -> Any:
        return self._acc.flush()

    def begin_round(self) -> None:
        self.runner.begin_round()

    def step(self) -> None:
        self.runner.step()

    def end_round(self) -> None:
        self.runner.end_round()
        if self._rows and "losses" not in self.info:
            self.info["losses"] = {k: [float(r.get(k, math.nan)) for r in self._rows] for k in LOSSES}


def build(name: str, args: argparse.Namespace) -> common.Runner:
    """Contestant ``name`` of ``args.family``: the family benchmark's own build, gankit's arms recording."""
    import seed_data

    if args.family in ("gan", "cgan"):
        import bench_cgan
        import bench_gan

        seed_step = (bench_gan if args.family == "gan" else bench_cgan).seed_step
        runner = seed_data.mnist_build(args.family, seed_step, name, args)
    elif args.family == "dcgan":
        import bench_dcgan

        runner = bench_dcgan.build(name, args)
    elif args.family == "pix2pix":
        import bench_pix2pix

        runner = bench_pix2pix.build(name, args)
    else:
        import bench_colorize

        runner = bench_colorize.build(name, args)
    return RecordingRunner(runner, args.warmup) if isinstance(runner, common.GankitRunner) else runner


def prepare_data(family: str, work: Path) -> None:
    """Write ``family``'s synthetic data set now: the contestants start in parallel and would all write it."""
    import seed_data

    if family in ("gan", "cgan"):
        seed_data.fashion_mnist_root(work, True)
    elif family == "dcgan":
        seed_data.celeba_folder(work, True)
    elif family == "pix2pix":
        seed_data.facades_root(work, True)
    else:
        seed_data.colorization_root(work, True)


def stage_train(args: argparse.Namespace, family: str) -> dict[str, Any]:
    """The three contestants of ``family``; their speed, memory, losses, and the fast/plain agreement."""
    spec = SPECS[family]
    batch = args.batch.get(family) or (spec.quick_batch if args.quick else spec.batch)
    bench_args = argparse.Namespace(
        family=family,
        device=args.device,
        batch_size=batch,
        num_workers="0" if args.quick else spec.workers,
        options="default,fast",
        rounds=args.rounds,
        steps=args.steps,
        warmup=args.steps,
        synthetic=True,
        data_root=args.work,  # never read: every set is synthetic
        data="celeba",
        resolution=RESOLUTION["quick" if args.quick else "full"],
        threads=0,
        omp_wait="passive",
        no_save=True,
    )
    prepare_data(family, args.work)
    names = common.contestant_names(bench_args)
    assert len(names) == len(ARMS), names
    results = common.run_contestants(build, names, bench_args)
    arms = {arm: _contestant(r, args.device) for arm, r in zip(ARMS, results)}
    plain, fast = arms["plain"], arms["fast"]
    if fast.get("flops_per_step") is None and plain.get("flops_per_step") and fast.get("step_s"):
        fast["flops_per_step"] = plain["flops_per_step"]
        fast["flops_from"] = "plain (the same model; not counted through torch.compile)"
        fast["tflops"] = plain["flops_per_step"] / fast["step_s"] / 1e12
    size = f"{bench_args.resolution}x{bench_args.resolution}" if family in ("pix2pix", "colorize") else None
    finite = _finite(plain, fast, args.steps)
    broken = [f"{arm}: {' '.join(r.get('error') or ['failed'])}" for arm, r in arms.items() if not r.get("ok")]
    return {
        "batch_size": batch,
        "resolution": size,
        "steps": args.steps,
        "rounds": args.rounds,
        "arms": arms,
        "finite": finite,
        "agreement": agreement(plain.get("losses"), fast.get("losses")),
        # a contestant that failed or a non-finite loss fails the stage; a disagreement is a finding
        **({"error": "; ".join(broken + finite["problems"])} if broken or not finite["ok"] else {}),
    }


def _contestant(r: dict[str, Any], device: str) -> dict[str, Any]:
    """The figures of one contestant's summary (see :func:`common._summarize`)."""
    keep = ("name", "ok", "images_per_s", "ratio", "step_s", "tflops", "flops_per_step", "warmup_extra_s", "setup_s")
    out = {k: r[k] for k in keep if k in r}
    out["rounds_images_per_s"] = r.get("rounds_images_per_s", [])
    out["peak_mb"] = r.get("peak_cuda_mb" if device == "cuda" else "peak_rss_mb")
    out["peak_mb_kind"] = "torch.cuda.max_memory_allocated" if device == "cuda" else "peak RSS"
    info = r.get("info") or {}
    for k in ("losses", "speed", "train_images"):
        if k in info:
            out[k] = info[k]
    if r.get("error"):
        out["ok"] = False
        out["error"] = str(r["error"]).strip().splitlines()[-1:]
    return out


def _finite(plain: dict[str, Any], fast: dict[str, Any], n: int) -> dict[str, Any]:
    """Every loss of both gankit arms finite, ``n`` steps each."""
    problems = []
    for arm, res in (("plain", plain), ("fast", fast)):
        losses = res.get("losses")
        if not losses:
            problems.append(f"{arm}: no losses ({'; '.join(res.get('error', [])) or 'contestant failed'})")
            continue
        for k, values in losses.items():
            if len(values) != n or not all(math.isfinite(v) for v in values):
                problems.append(f"{arm}: {k} = {values}")
    return {"ok": not problems, "problems": problems}


def agreement(plain: dict[str, list[float]] | None, fast: dict[str, list[float]] | None) -> dict[str, Any]:
    """fast against plain, per loss: the first step and the mean over the first steps (:data:`TOLERANCE`)."""
    if not plain or not fast:
        return {"ok": False, "reason": "a gankit arm has no losses"}
    t, out, ok = TOLERANCE, {}, True
    for k in LOSSES:
        p, f = plain.get(k, []), fast.get(k, [])
        m = min(t["mean_steps"], len(p), len(f))
        if not m:
            continue
        mp, mf = statistics.fmean(p[:m]), statistics.fmean(f[:m])
        first_ok = abs(f[0] - p[0]) <= t["first_step_rtol"] * abs(p[0]) + t["atol"]
        mean_ok = abs(mf - mp) <= t["mean_rtol"] * abs(mp) + t["atol"]
        out[k] = {
            "first_plain": p[0],
            "first_fast": f[0],
            "first_rel_diff": abs(f[0] - p[0]) / max(abs(p[0]), 1e-12),
            "mean_steps": m,
            "mean_plain": mp,
            "mean_fast": mf,
            "mean_rel_diff": abs(mf - mp) / max(abs(mp), 1e-12),
            "ok": first_ok and mean_ok,
        }
        ok = ok and first_ok and mean_ok
    return {"ok": ok and bool(out), **out}


# ---------------------------------------------------------------------------------------------
# Stage: inference engines
# ---------------------------------------------------------------------------------------------


def stage_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Images/s of every family's generator through each engine (or why that engine cannot run here)."""
    import torch

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="inference-", dir=args.work) as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "xdg")  # a fresh ONNX cache: the export time is in ready_s
        for family in args.families:
            try:
                out[family] = _engines(family, work, args)
            except Exception:  # noqa: BLE001 - one family's failure must not lose the others' figures
                out[family] = {"ok": False, "error": traceback.format_exc().strip().splitlines()[-1]}
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    failed = [f"{family}: {r['error']}" for family, r in out.items() if not r["ok"]]
    return {"families": out, **({"error": "; ".join(failed)} if failed else {})}


def _engines(family: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import torch
    from gankit.config import make_config
    from gankit.engine import use_engine
    from gankit.families import get_family
    from gankit.sampling import load_generator
    from gankit.training.checkpoint import atomic_save, generator_snapshot

    from bench_onnx import BATCH, INFOS

    info = INFOS[family]
    if info.in_channels:  # a U-Net: at the size the train stage trains
        side = RESOLUTION["quick" if args.quick else "full"]
        info = dataclasses.replace(info, resolution=side)
    cfg = make_config(family, overrides={"data.resolution": info.resolution} if info.in_channels else {})
    torch.manual_seed(0)
    G, _ = get_family(family).build(cfg, info)
    run = work / family
    cfg.save(run / "config.yaml")
    atomic_save(generator_snapshot(cfg, info, G.state_dict()), run / "checkpoints" / "G_last.pt")
    batch = 4 if args.quick and not info.in_channels else BATCH[family]
    g = torch.Generator().manual_seed(0)
    if info.in_channels:
        inputs: tuple[Any, ...] = (torch.rand(batch, info.in_channels, info.resolution, info.resolution, generator=g),)
    else:
        labels = torch.randint(0, info.num_classes, (batch,), generator=g) if info.num_classes else None
        inputs = (torch.randn(batch, cfg.model.z_dim, generator=g), labels)
    engines: dict[str, Any] = {}
    for engine in ("torch", "onnxruntime", "auto"):
        loaded = load_generator(run, device=args.device)
        lines: list[str] = []
        try:
            t = time.perf_counter()
            ran = use_engine(loaded, engine, log=lines.append)
            ready_s = time.perf_counter() - t
        except Exception as e:  # noqa: BLE001 - e.g. onnxruntime for a model on the GPU: gankit's reason
            engines[engine] = {"ran": None, "unavailable": str(e).splitlines()[0], "log": lines}
            continue
        feed = tuple(x.to(args.device) if x is not None else None for x in inputs)
        engines[engine] = {
            "ran": ran,
            "log": lines,
            "ready_s": ready_s,
            "batch": batch,
            "images_per_s": _images_per_s(functools.partial(loaded, *feed), batch, args),
        }
    return {"ok": True, "resolution": info.resolution, "engines": engines}


def _images_per_s(call: Callable[[], Any], batch: int, args: argparse.Namespace) -> float:
    """Images/s of ``call`` after 2 warm-up calls: calls repeated for at least 0.2 s (quick) or 2 s."""
    import torch

    cuda = args.device == "cuda"
    for _ in range(2):
        call()
    if cuda:
        torch.cuda.synchronize()
    least, calls = (0.2 if args.quick else 2.0), 0
    t = time.perf_counter()
    while True:
        call()
        calls += 1
        if cuda:
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        if secs >= least:
            return calls * batch / secs


# ---------------------------------------------------------------------------------------------
# Stage: the CUDA-only tests
# ---------------------------------------------------------------------------------------------


def stage_tests(args: argparse.Namespace) -> dict[str, Any]:
    """The tests that skip without CUDA, by pytest: each one's outcome and skip reason."""
    env = dict(os.environ)
    if args.device != "cuda":  # a dry run: the CUDA parts skip, as they do on a machine without a GPU
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="tests-", dir=args.work) as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *CUDA_TESTS]
        proc = subprocess.run([*cmd, f"--junitxml={xml}"], cwd=REPO, env=env, capture_output=True, text=True)
        sys.stderr.write(proc.stdout + proc.stderr)
        cases = list(ET.parse(xml).iter("testcase")) if xml.is_file() else []
    tests: dict[str, Any] = {}
    for case in cases:
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        outcome, reason = "passed", None
        for tag, said in (("skipped", "skipped"), ("failure", "failed"), ("error", "error")):
            el = case.find(tag)
            if el is not None:
                outcome = said
                reason = (el.get("message") or el.text or "").strip().splitlines()[:1]
        reason = reason[0] if reason else None
        tests[name] = {"outcome": outcome, "reason": reason, "time_s": float(case.get("time", 0))}
    failed = [n for n, t in tests.items() if t["outcome"] in ("failed", "error")]
    result = {"command": shlex.join(cmd), "returncode": proc.returncode, "tests": tests, "failed": failed}
    if proc.returncode not in (0, 1) or not tests:  # 1: some test failed (recorded above); else pytest itself
        result["error"] = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
    elif failed:
        result["error"] = f"failed: {', '.join(failed)}"
    return result


# ---------------------------------------------------------------------------------------------
# The parent: stages in child processes under one budget, one JSON, a summary
# ---------------------------------------------------------------------------------------------


def run_stage(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run stage ``name`` here (in a ``--stage`` child process)."""
    if name == "device":
        return stage_device(args)
    if name.startswith("train:"):
        return stage_train(args, name.split(":", 1)[1])
    if name == "inference":
        return stage_inference(args)
    if name == "tests":
        return stage_tests(args)
    raise SystemExit(f"--stage {name}: unknown stage")


def stage_names(families: list[str]) -> list[str]:
    return ["device", *(f"train:{f}" for f in families), "inference", "tests"]


def spawn_stage(name: str, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """Stage ``name`` in a child process (its own session, so a timeout ends its contestants too)."""
    import signal

    env = dict(os.environ)
    env["GANKIT_BENCH_CACHE"] = str(args.work)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="stage-", dir=args.work) as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *args.argv, "--stage", name, "--stage-out", str(out)]
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"ok": False, "error": f"stopped after its timeout of {timeout:.0f} s (the time budget)"}
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        if out.is_file():
            return json.loads(out.read_text())
    return {"ok": False, "error": f"the stage's process exited with code {code} before writing its result"}


def child_main(args: argparse.Namespace) -> None:
    """``--stage NAME --stage-out FILE``: run one stage, write its result (or its error) to FILE."""
    try:
        result = {"ok": True, **run_stage(args.stage, args)}
    except BaseException as e:  # noqa: BLE001 - recorded for the parent, whatever it was
        traceback.print_exc()
        result = {"ok": False, "error": traceback.format_exception_only(type(e), e)[-1].strip()}
    if result.get("error"):
        result["ok"] = False
    Path(args.stage_out).write_text(json.dumps(_plain(result)))


def parent_main(args: argparse.Namespace) -> int:
    start = time.monotonic()
    floor = STAGE_FLOOR["quick" if args.quick else "full"]
    report: dict[str, Any] = {
        "device": None,
        "torch": None,
        "cuda": None,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["benchmarks/gpu_check.py", *args.argv]),
        "options": {"device": args.device, "steps": args.steps, "rounds": args.rounds, "quick": args.quick},
        "budget_s": args.budget,
        "tolerance": TOLERANCE,
        "notes": NOTES,
        "stages": {},
    }
    names = stage_names(args.families)
    try:
        for i, name in enumerate(names):
            left = args.budget - (time.monotonic() - start)
            if left < floor:
                report["stages"][name] = {"ok": False, "skipped": f"time budget of {args.budget:.0f} s spent"}
                continue
            timeout = max(floor, left - floor * (len(names) - i - 1))
            print(f"== {name} (up to {timeout:.0f} s)", file=sys.stderr, flush=True)
            t = time.monotonic()
            result = spawn_stage(name, args, timeout)
            result["seconds"] = round(time.monotonic() - t, 1)
            report["stages"][name] = result
            if name == "device" and result.get("ok"):
                m = result["machine"]
                report.update(device=m["device_name"], torch=m["torch"], cuda=m["cuda"])
            _write(args.out, report, start)
    finally:
        _derive(report)
        _write(args.out, report, start)
    print_summary(report)
    print(f"\nwrote {args.out}")
    return 0 if all(st.get("ok") for st in report["stages"].values()) else 1


def _derive(report: dict[str, Any]) -> None:
    """Each arm's TFLOP/s as a fraction of the matmul rate of its precision (fast: bf16 on CUDA)."""
    rates = report["stages"].get("device", {}).get("matmul_tflops") or {}
    cuda = report["options"]["device"] == "cuda"
    for name, stage in report["stages"].items():
        if not name.startswith("train:"):
            continue
        for arm, precision in (("seed", "fp32"), ("plain", "fp32"), ("fast", "bf16" if cuda else "fp32")):
            res = stage.get("arms", {}).get(arm, {})
            if res.get("tflops") and rates.get(precision):
                res["matmul_fraction"] = res["tflops"] / rates[precision]
                res["matmul_fraction_of"] = precision


def _write(path: Path, report: dict[str, Any], start: float) -> None:
    report["elapsed_s"] = round(time.monotonic() - start, 1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(report), indent=1) + "\n")
    tmp.replace(path)


def _plain(x: Any) -> Any:
    """``x`` as strict JSON: non-finite floats become None (the ``finite`` checks say which)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def print_summary(report: dict[str, Any]) -> None:
    """A short table: training per family, inference per family, tests, and what did not run."""
    stages = report["stages"]
    dev = stages.get("device", {})
    rates = dev.get("matmul_tflops") or {}
    print(f"\nGPU check: {report['device']} (torch {report['torch']}, CUDA {report['cuda']}), {report['elapsed_s']} s")
    if rates:
        shown = ", ".join(f"{k} {v:.3g}" for k, v in rates.items() if k in ("fp32", "tf32", "bf16") and v)
        print(f"matmul {rates['matrix_side']}^3 TFLOP/s: {shown}")

    def fig(x: float | None, fmt: str = ".4g") -> str:
        return "-" if x is None else format(x, fmt)

    print(
        f"\n{'family':<9} {'batch':>5} {'seed i/s':>9} {'plain i/s':>9} {'fast i/s':>9} {'fast/seed':>9} "
        f"{'plain TF/s':>10} {'fast TF/s':>9} {'peak MB p/f':>12}  finite  fast~plain"
    )
    for name, st in stages.items():
        if not name.startswith("train:"):
            continue
        fam = name.split(":", 1)[1]
        if "arms" not in st:
            print(f"{fam:<9} {st.get('skipped') or st.get('error')}")
            continue
        a = st["arms"]
        fast_seed = a["fast"].get("ratio")
        peak = f"{fig(a['plain'].get('peak_mb'), '.0f')}/{fig(a['fast'].get('peak_mb'), '.0f')}"
        print(
            f"{fam:<9} {st['batch_size']:>5} {fig(a['seed'].get('images_per_s')):>9} "
            f"{fig(a['plain'].get('images_per_s')):>9} {fig(a['fast'].get('images_per_s')):>9} "
            f"{fig(fast_seed, '.2f'):>9} {fig(a['plain'].get('tflops'), '.3g'):>10} "
            f"{fig(a['fast'].get('tflops'), '.3g'):>9} {peak:>12}  {'yes' if st['finite']['ok'] else 'NO':<6}  "
            f"{'yes' if st['agreement'].get('ok') else 'NO'}"
        )
    inf = stages.get("inference", {})
    if "families" in inf:
        print(f"\n{'inference':<9} {'torch i/s':>10} {'onnxruntime i/s':>16}  auto")
        for fam, r in inf["families"].items():
            e = r.get("engines", {})
            if not e:
                print(f"{fam:<9} {r.get('error')}")
                continue
            ort = e.get("onnxruntime", {})
            ort_s = fig(ort.get("images_per_s")) if ort.get("ran") else "unavailable"
            print(f"{fam:<9} {fig(e.get('torch', {}).get('images_per_s')):>10} {ort_s:>16}  {e['auto'].get('ran')}")
    for name, t in stages.get("tests", {}).get("tests", {}).items():
        print(f"test {name}: {t['outcome']}" + (f" ({t['reason']})" if t.get("reason") else ""))
    for name, st in stages.items():
        if not st.get("ok"):
            print(f"stage {name}: {st.get('skipped') or 'FAILED: ' + str(st.get('error'))}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument(
        "--steps",
        type=int,
        default=30,
        help="steps per gankit arm whose losses are checked (its warm-up), and timed steps per round (default 30)",
    )
    p.add_argument("--rounds", type=int, help="timed rounds per contestant, interleaved (default 3, 1 with --quick)")
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON file (default gpu_check.json)")
    p.add_argument("--quick", action="store_true", help="tiny batches and 64x64 U-Nets: a dry run of every stage")
    p.add_argument(
        "--budget",
        type=float,
        help="seconds for all stages (default 420, 600 with --quick); stages "
        "that no longer fit are recorded as skipped",
    )
    p.add_argument("--families", default=",".join(FAMILIES), help="comma list (default all)")
    p.add_argument("--batch", default="", help="batch sizes other than the benchmarks', e.g. pix2pix=16,dcgan=128")
    p.add_argument(
        "--work",
        type=Path,
        default=common.CACHE_DIR,
        help=f"synthetic data and scratch files (default {common.CACHE_DIR})",
    )
    p.add_argument("--skip-install", action="store_true", help="read by gpu_check.sh: install nothing")
    for hidden in ("--stage", "--stage-out"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = [a for a in argv if a != "--skip-install"]
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:
        p.error(f"--families: unknown {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    try:
        args.batch = {k.strip(): int(v) for k, v in (item.split("=") for item in args.batch.split(",") if item)}
    except ValueError:
        p.error(f"--batch {args.batch}: expected FAMILY=N[,FAMILY=N], e.g. pix2pix=16")
    if set(args.batch) - set(FAMILIES):
        p.error(f"--batch: unknown family {', '.join(set(args.batch) - set(FAMILIES))} (known: {', '.join(FAMILIES)})")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.budget is None:
        args.budget = 600.0 if args.quick else 420.0
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.stage:
        child_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
