"""Quality: differentiable augmentation on small data (issue 22), ``train.augment`` none / diffaug / ada.

Jobs (``--jobs`` picks some), each trained for the same ``--steps`` with every arm (``--arms``) and seed:

* ``dcgan``: ``dcgan-fmnist32`` on a seeded 1,000-image subset of Fashion-MNIST (``data.max_images=1000``),
  scored with ``gankit eval --metrics fid_clf`` (``--n`` samples against as many test images);
* ``cgan``: ``cgan`` on the same 1,000 images, ``fid_clf`` and ``cls_acc``;
* ``pix2pix``: ``pix2pix`` on 50 facades pairs (``data.max_images=50`` of the CMP base set's train pairs),
  scored by the run's own last validation (``metrics.jsonl``: L1, PSNR, SSIM on the whole val split);
* ``dcgan-full``: ``dcgan-fmnist32`` on all 60,000 Fashion-MNIST training images, as ``dcgan`` (the issue's
  "no loss on the full set").

Every run is ``gankit train PRESET --data DATA --max-steps S --epochs E --seed SEED --set
train.keep_snapshots=0 --set train.keep_prev_state=false --set data.max_images=M --set train.augment=ARM
[--set train.ada_kimg=K] [--set ...] --out WORK/JOB-ARM-sSEED`` (E: enough epochs for S steps; the commands
are printed, logged beside the run and recorded). The subsets end an epoch every few steps (dcgan: 7,
cgan: 10, pix2pix: 50), and the end-of-epoch work (grid, validation, state, loss plot) runs each time:
on a busy 2-core CPU about 4 s per dcgan epoch, as much as its 7 steps. ADA's speed: by default
``train.ada_kimg`` is a fifth of the run's images (p can cross [0, 1] in a fifth of the run; 77 for dcgan
at 3,000 steps of 128, but 0.6 for pix2pix's batch of 1, for which gankit's default of 100 would leave
p near 0); ``--ada-kimg K`` fixes it instead.

Resumable: rerun the same command. A finished run (its ``stats.jsonl`` reached S) and its evaluation
(``eval.jsonl``, same metrics, n and snapshot) are kept; an interrupted run continues with ``--resume``.
A run folder made by another command (``WORK/JOB-ARM-sSEED.cmd`` differs) is refused. The table: each
metric per seed, the mean, and the mean's ratio to ``none`` (fid_clf, L1: below 1 is better). One line
per invocation is appended to ``results.jsonl`` (unless ``--no-save``).

    python benchmarks/quality_augment.py --steps 3000 --seeds 0,1 [--jobs dcgan,cgan,pix2pix]
        [--arms none,diffaug,ada] [--data-root /work/shared/data] [--work /tmp/augment] [--n 10000]
        [--device auto] [--parallel 2 --threads 1] [--max-images N] [--set train.ada_target=0.6 ...] [--no-save]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

REPO = common.BENCH_DIR.parent
ARMS = ("none", "diffaug", "ada")


@dataclass(frozen=True)
class Job:
    """One family on one small subset: its preset, data folder (under ``--data-root``), subset size (0: the
    whole set, of ``images``), training images in a step (for the epochs and ADA's speed) and what is
    scored (lower is better?)."""

    preset: str
    data: str
    max_images: int
    batch: int
    metrics: dict[str, bool]
    images: int = 0

    @property
    def size(self) -> int:
        return self.max_images or self.images

    @property
    def paired(self) -> bool:
        return "val_l1" in self.metrics


JOBS = {
    "dcgan": Job("dcgan-fmnist32", "fashion-mnist", 1000, 128, {"fid_clf": True}),
    "cgan": Job("cgan", "fashion-mnist", 1000, 100, {"fid_clf": True, "cls_acc": False}),
    "pix2pix": Job("pix2pix", "cmp-facades-base", 50, 1, {"val_l1": True, "val_psnr": False, "val_ssim": False}),
    "dcgan-full": Job("dcgan-fmnist32", "fashion-mnist", 0, 128, {"fid_clf": True}, images=60000),
}


def run_folder(job: str, arm: str, seed: int, args: argparse.Namespace) -> Path:
    return args.work / f"{job}-{arm}-s{seed}"


def train_command(job: str, arm: str, seed: int, args: argparse.Namespace) -> list[str]:
    j = JOBS[job]
    if args.max_images:
        j = dataclasses.replace(j, max_images=args.max_images)
    epochs = math.ceil(args.steps / (j.size // j.batch))
    cmd = [sys.executable, "-m", "gankit", "train", j.preset, "--data", str(args.data_root / j.data)]
    cmd += ["--max-steps", str(args.steps), "--epochs", str(epochs), "--seed", str(seed), "--device", args.device]
    # no per-epoch snapshots, no previous full state: the small subsets end an epoch every few steps
    # (dcgan: 7), and these files would cost more time than the steps; training does not depend on them
    sets = ["train.keep_snapshots=0", "train.keep_prev_state=false"]
    sets += [f"data.max_images={j.max_images}"] if j.max_images else []
    sets += [f"train.augment={arm}"]
    if arm == "ada":
        kimg = args.ada_kimg or args.steps * j.batch / 5 / 1000
        sets.append(f"train.ada_kimg={kimg:g}")
    for s in sets + args.set:
        cmd += ["--set", s]
    return cmd + ["--out", str(run_folder(job, arm, seed, args)), "--no-progress"]


def eval_command(job: str, run: Path, args: argparse.Namespace) -> list[str]:
    metrics = list(JOBS[job].metrics)
    cmd = [sys.executable, "-m", "gankit", "eval", str(run), "--metrics", *metrics, "--n", str(args.n)]
    return cmd + ["--seed", "0", "--device", args.device]


def trained(run: Path, steps: int) -> bool:
    stats = common.read_jsonl(run / "stats.jsonl")
    return (run / "checkpoints" / "G_last.pt").is_file() and any(r["step"] >= steps for r in stats)


def train_all(settings: list[tuple[str, str, int]], args: argparse.Namespace) -> None:
    """Train what is not trained yet; an interrupted run resumes. Refuses folders of another command."""
    args.work.mkdir(parents=True, exist_ok=True)
    todo = []
    for job, arm, seed in settings:
        run = run_folder(job, arm, seed, args)
        cmd = train_command(job, arm, seed, args)
        record = run.with_suffix(".cmd")
        if run.exists() and (not record.is_file() or record.read_text() != shlex.join(cmd)):
            raise SystemExit(f"{run} exists but was not made by this command; remove it or pick another --work")
        if trained(run, args.steps):
            continue
        record.write_text(shlex.join(cmd))
        if (run / "checkpoints" / "last.pt").is_file():
            cmd = [*cmd, "--resume"]
        todo.append((cmd, run.with_suffix(".log")))
    common.gankit_pool(todo, parallel=args.parallel, threads=args.threads, cwd=REPO, src=REPO / "src")


def eval_all(settings: list[tuple[str, str, int]], args: argparse.Namespace) -> None:
    """``gankit eval`` of every noise run without a matching evaluation (pix2pix: its own validation)."""
    todo = []
    for job, arm, seed in settings:
        run = run_folder(job, arm, seed, args)
        if not JOBS[job].paired and common.last_eval(run, args.steps, args.n, JOBS[job].metrics) is None:
            todo.append((eval_command(job, run, args), run.with_suffix(".log")))
    common.gankit_pool(todo, parallel=args.parallel, threads=args.threads, cwd=REPO, src=REPO / "src")


def collect(job: str, arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The numbers of one run, with the commands that made them."""
    run = run_folder(job, arm, seed, args)
    out: dict[str, Any] = {"job": job, "arm": arm, "seed": seed, "steps": args.steps, "run": str(run)}
    if JOBS[job].paired:
        rows = [r for r in common.read_jsonl(run / "metrics.jsonl") if "val_l1" in r and r["step"] == args.steps]
        if not rows:
            raise SystemExit(f"{run / 'metrics.jsonl'}: no validation at step {args.steps}")
        out.update({m: rows[-1][m] for m in JOBS[job].metrics})
    else:
        row = common.last_eval(run, args.steps, args.n, JOBS[job].metrics)
        assert row is not None
        out.update({m: row[m] for m in JOBS[job].metrics})
        out["eval_cmd"] = shlex.join(eval_command(job, run, args))
    stats = common.read_jsonl(run / "stats.jsonl")
    if arm == "ada" and stats:
        out["ada_p_last"] = stats[-1].get("ada_p")
    out["train_cmd"] = run.with_suffix(".cmd").read_text()
    print(f"  {run.name}: " + ", ".join(f"{m} {out[m]:.4g}" for m in JOBS[job].metrics), flush=True)
    return out


def table(results: list[dict[str, Any]], seeds: list[int], arms: list[str]) -> str:
    """Markdown: one row per (job, arm); each metric per seed, the mean and its ratio to ``none``."""
    lines = []
    for job in dict.fromkeys(r["job"] for r in results):
        metrics = JOBS[job].metrics
        head = ["job", "augment"]
        for m, lower in metrics.items():
            better = "lower" if lower else "higher"
            head += [f"{m} s{s}" for s in seeds] + [f"{m} mean", f"{m} / none ({better} better)"]
        lines += ["", "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        means: dict[tuple[str, str], float] = {}
        for arm in arms:
            for m in metrics:
                vals = [r[m] for r in results if (r["job"], r["arm"]) == (job, arm)]
                if vals:
                    means[arm, m] = statistics.mean(vals)
        for arm in arms:
            cells = [job, arm]
            for m in metrics:
                by_seed = {r["seed"]: r[m] for r in results if (r["job"], r["arm"]) == (job, arm)}
                cells += [f"{by_seed[s]:.4g}" if s in by_seed else "-" for s in seeds]
                mean, base = means.get((arm, m)), means.get(("none", m))
                cells.append(f"**{mean:.4g}**" if mean is not None else "-")
                cells.append(f"{mean / base:.3f}" if mean is not None and base else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="training steps of every run (equal within a job)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--jobs", default=",".join(JOBS), help=f"some of {', '.join(JOBS)}")
    p.add_argument("--arms", default=",".join(ARMS), help="train.augment values to compare (the first: the baseline)")
    p.add_argument("--data-root", type=Path, default=common.DEFAULT_DATA_ROOT)
    p.add_argument("--work", type=Path, default=Path("/tmp/augment"), help="folder of the run folders")
    p.add_argument("--n", type=int, default=10000, help="samples (and test images) per fid_clf evaluation")
    p.add_argument("--max-images", type=int, default=0, help="subset size instead of the job's (0: the job's)")
    p.add_argument("--ada-kimg", type=float, default=0.0, help="train.ada_kimg of the ada arm (0: a fifth of the run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for every run")
    p.add_argument("--device", default="auto")
    p.add_argument("--parallel", type=int, default=1, help="commands at once (results do not depend on it)")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of every command (0: torch's default)")
    p.add_argument("--no-save", action="store_true", help=f"do not append to {common.RESULTS_FILE.name}")
    args = p.parse_args()
    jobs = [j for j in args.jobs.split(",") if j]
    arms = [a for a in args.arms.split(",") if a]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if bad := [j for j in jobs if j not in JOBS]:
        raise SystemExit(f"--jobs: unknown {', '.join(bad)} (known: {', '.join(JOBS)})")
    common.use_bench_cache()  # the facades build and decoded data go to benchmarks/.cache
    started = time.time()
    settings = [(j, a, s) for j in jobs for a in arms for s in seeds]
    train_all(settings, args)
    eval_all(settings, args)
    results = [collect(*x, args) for x in settings]
    text = table(results, seeds, arms)
    print(f"\nSmall-data quality at {args.steps} steps (fid_clf: gankit eval --n {args.n}; pix2pix: val split):")
    print(text)
    common.write_results(
        f"quality: train.augment on small subsets ({args.steps} steps)",
        results,
        argparse.Namespace(**vars(args)),
        {"table": text, "wall_s": round(time.time() - started, 1)},
    )


if __name__ == "__main__":
    main()
