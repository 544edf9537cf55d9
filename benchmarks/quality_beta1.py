"""Quality: Adam beta1 for the MLP presets (issue 10).

The course notes create both MLP optimizers as ``Adam(lr=0.0002)``, i.e. betas (0.9, 0.999); gankit's
``gan`` and ``cgan`` presets use (0.5, 0.999), the DCGAN paper's setting. This script trains each
preset with both values of ``optim.beta1`` for a few epochs and several seeds through the real CLI,
scores every run with ``gankit eval`` against the Fashion-MNIST test split in the feature space of
one fixed domain classifier (``fid_clf``; ``cls_acc`` too for the conditional model: the share of
samples the classifier assigns to the label they were generated for) and prints a table: per
setting, both seeds and their mean.

    python benchmarks/quality_beta1.py [--classifier CLF.pt] [--families gan,cgan] [--betas 0.5,0.9]
        [--seeds 0,1] [--epochs 5] [--n 10000] [--out /tmp/beta] [--reuse] [--parallel 8 --threads 1]

Every run is ``gankit train FAMILY --epochs E --seed S --set optim.beta1=B --out OUT/FAMILY-bB-sS
--no-progress --data DATA`` then ``gankit eval OUT/FAMILY-bB-sS --n N --classifier CLF`` (the
commands are printed and recorded). ``--reuse`` keeps a finished run folder (its ``metrics.jsonl``
reaches epoch E) and its last evaluation with the same classifier and n, instead of refusing.
One line per invocation is appended to ``results.jsonl`` (runs, commands, numbers, machine).
Runs go one after the other (the machine is shared; nothing here is timed against anything else).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import common

REPO = common.BENCH_DIR.parent
GANKIT = REPO / ".venv" / "bin" / "gankit"
METRICS = {"gan": ["fid_clf"], "cgan": ["fid_clf", "cls_acc"]}


def finished(run: Path, epochs: int) -> bool:
    return (run / "checkpoints" / "G_last.pt").is_file() and any(
        r.get("epoch") == epochs for r in common.read_jsonl(run / "metrics.jsonl")
    )


def snapshot(run: Path, args: argparse.Namespace) -> Path:
    """The generator that is scored: ``G_last.pt``, or with ``--eval-epoch K`` the epoch-K snapshot."""
    name = f"G_epoch{args.eval_epoch:04d}.pt" if args.eval_epoch else "G_last.pt"
    return run / "checkpoints" / name


def run_folder(family: str, beta1: float, seed: int, args: argparse.Namespace) -> Path:
    return args.out / f"{family}-b{beta1:g}-s{seed}"


def train_command(family: str, beta1: float, seed: int, args: argparse.Namespace) -> list[str]:
    run = run_folder(family, beta1, seed, args)
    cmd = [str(GANKIT), "train", family, "--epochs", str(args.epochs), "--seed", str(seed)]
    return cmd + ["--set", f"optim.beta1={beta1:g}", "--out", str(run), "--no-progress", "--data", str(args.data)]


def eval_command(run: Path, args: argparse.Namespace) -> list[str]:
    target = snapshot(run, args) if args.eval_epoch else run
    return [str(GANKIT), "eval", str(target), "--n", str(args.n), "--classifier", str(args.classifier)]


def matching_evals(run: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The run's evaluations with this classifier and sample count."""
    return [
        r
        for r in common.read_jsonl(run / "eval.jsonl")
        if r.get("classifier") == str(args.classifier)
        and r.get("n") == args.n
        and r.get("checkpoint") == snapshot(run, args).name
        and "fid_clf" in r
    ]


def collect(family: str, beta1: float, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The numbers of one trained and evaluated setting, with the commands that made them."""
    run = run_folder(family, beta1, seed, args)
    last = matching_evals(run, args)[-1]
    out: dict[str, Any] = {"family": family, "beta1": beta1, "seed": seed, "run": str(run)}
    out["epochs"] = args.eval_epoch or args.epochs
    metrics = common.read_jsonl(run / "metrics.jsonl")
    epochs = [r for r in metrics if "images_per_s" in r and r["epoch"] <= out["epochs"]]
    out["checkpoint"] = last.get("checkpoint")
    out.update({m: last.get(m) for m in METRICS[family]})
    out["train_s"] = round(sum(r.get("seconds", 0) for r in epochs), 1)
    out["eval_s"] = last.get("seconds")
    out["commands"] = [shlex.join(train_command(family, beta1, seed, args)), shlex.join(eval_command(run, args))]
    print(f"  {run.name}: " + ", ".join(f"{m} {out[m]:.4g}" for m in METRICS[family] if out[m] is not None), flush=True)
    return out


def train_all(settings: list[tuple[str, float, int]], args: argparse.Namespace) -> None:
    """Train every setting whose run folder is not a finished run (with ``--eval-epoch``: has no such snapshot)."""
    args.out.mkdir(parents=True, exist_ok=True)
    if args.eval_epoch:
        missing = [run_folder(*x, args) for x in settings if not snapshot(run_folder(*x, args), args).is_file()]
        if missing:
            raise SystemExit(f"--eval-epoch {args.eval_epoch}: no such snapshot in {', '.join(map(str, missing))}")
        return
    todo = [x for x in settings if not finished(run_folder(*x, args), args.epochs)]
    for x in todo:
        if run_folder(*x, args).exists():
            raise SystemExit(f"{run_folder(*x, args)} exists and is not a finished {args.epochs}-epoch run; remove it")
    jobs = [(train_command(*x, args), args.out / f"{run_folder(*x, args).name}.log") for x in todo]
    common.gankit_pool(jobs, parallel=args.parallel, threads=args.threads, cwd=REPO)


def eval_all(settings: list[tuple[str, float, int]], args: argparse.Namespace) -> None:
    """Evaluate every run that has no evaluation with this classifier and n yet."""
    runs = [run_folder(*x, args) for x in settings]
    jobs = [(eval_command(r, args), args.out / f"{r.name}.log") for r in runs if not matching_evals(r, args)]
    common.gankit_pool(jobs, parallel=args.parallel, threads=args.threads, cwd=REPO)


def table(runs: list[dict[str, Any]], seeds: list[int]) -> str:
    """Markdown table: one row per (family, beta1), each metric per seed and the mean."""
    lines = []
    head = ["family", "beta1"]
    for m in ("fid_clf", "cls_acc"):
        head += [f"{m} s{s}" for s in seeds] + [f"{m} mean"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    keys = sorted({(r["family"], r["beta1"]) for r in runs}, key=lambda k: (k[0] != "gan", k[0], k[1]))
    for fam, b in keys:
        cells = [fam, f"{b:g}" + (" (notes)" if b == 0.9 else " (preset)" if b == 0.5 else "")]
        for m in ("fid_clf", "cls_acc"):
            vals = {r["seed"]: r.get(m) for r in runs if (r["family"], r["beta1"]) == (fam, b)}
            got = [vals.get(s) for s in seeds]
            fmt = "{:.1f}" if m == "fid_clf" else "{:.3f}"
            cells += [fmt.format(v) if v is not None else "-" for v in got]
            ok = [v for v in got if v is not None]
            cells.append(f"**{fmt.format(statistics.mean(ok))}**" if ok and len(ok) == len(got) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", type=Path, help="domain classifier for every eval (default: the shipped one)")
    p.add_argument("--families", default="gan,cgan")
    p.add_argument("--betas", default="0.5,0.9")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--n", type=int, default=10000, help="samples (and test images) per evaluation")
    p.add_argument("--data", type=Path, default=common.DEFAULT_DATA_ROOT / "fashion-mnist")
    p.add_argument("--out", type=Path, default=Path("/tmp/beta"), help="folder of the run folders")
    p.add_argument("--reuse", action="store_true", help="keep finished runs and their evaluations")
    p.add_argument("--parallel", type=int, default=1, help="trainings at once (results do not depend on it)")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of every training (0: torch's default)")
    p.add_argument(
        "--train-only",
        action="store_true",
        help="only train (e.g. while the classifier is still being made); evaluate later with --reuse",
    )
    p.add_argument(
        "--eval-epoch",
        type=int,
        default=0,
        help="score the epoch-K snapshots (G_epoch000K.pt) instead of G_last.pt, e.g. of runs still training",
    )
    p.add_argument("--no-save", action="store_true", help=f"do not append to {common.RESULTS_FILE.name}")
    args = p.parse_args()
    families = [f for f in args.families.split(",") if f]
    if bad := [f for f in families if f not in METRICS]:
        raise SystemExit(f"--families: unknown {', '.join(bad)} (known: {', '.join(METRICS)})")
    betas = [float(b) for b in args.betas.split(",") if b]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.train_only:
        train_all([(f, b, s) for f in families for b in betas for s in seeds], args)
        return
    if args.classifier is None:
        sys.path.insert(0, str(REPO / "src"))
        from gankit.metrics.classifier import shipped_classifier

        args.classifier = shipped_classifier("fashion-mnist")
        if args.classifier is None:
            raise SystemExit("no shipped Fashion-MNIST classifier: pass --classifier CLF.pt (gankit train classifier)")
    args.classifier = args.classifier.resolve()
    if not args.classifier.is_file():
        raise SystemExit(f"--classifier {args.classifier}: no such file")
    # the run's speed does not matter here, but OpenMP spinning on a shared machine wastes everyone's CPU
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    started = time.time()
    settings = [(f, b, s) for f in families for b in betas for s in seeds]
    if not args.reuse:
        for x in settings:
            if run_folder(*x, args).exists():
                raise SystemExit(f"{run_folder(*x, args)} exists; remove it, pick --out, or pass --reuse")
    train_all(settings, args)
    eval_all(settings, args)
    runs = [collect(f, b, s, args) for f, b, s in settings]
    text = table(runs, seeds)
    print(f"\nQuality after {args.eval_epoch or args.epochs} epochs (gankit eval --n {args.n}, {args.classifier}):")
    print(text)
    if not args.no_save:
        common.write_results(
            f"quality: Adam beta1 for the MLP presets ({args.eval_epoch or args.epochs} epochs, n={args.n})",
            runs,
            argparse.Namespace(device="cpu", **{k: v for k, v in vars(args).items() if k != "device"}),
            {"table": text, "wall_s": round(time.time() - started, 1)},
        )


if __name__ == "__main__":
    main()
