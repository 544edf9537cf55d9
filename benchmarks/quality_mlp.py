"""Quality of the MLP presets per training recipe (issue 22): EMA of G, batch size, learning rates, label
smoothing, alone or combined, on the notes' networks.

Every family (``--families``: gan, cgan) is trained with its preset on Fashion-MNIST under every arm
(``--arms``) and seed, and scored after each of ``--epochs`` (a comma list, e.g. ``5,50``) with
``gankit eval`` of ``G_last.pt``, which holds the EMA weights when the EMA is on: ``fid_clf`` (the
domain classifier's feature space against the test split), and for cgan ``cls_acc`` (the share of
samples the classifier gives the label they were made for). An arm is ``none`` (the preset as is) or
tokens joined by ``+`` (e.g. ``b32+hl10``), each adding ``--set`` overrides:

* ``decayD``: ``train.ema_decay=D``, e.g. ``decay0.999`` (the constant decay gankit had before);
* ``hlK`` / ``hlKrR``: ``train.ema_halflife_kimg=K`` with ``train.ema_rampup=R`` (default 0.05,
  StyleGAN2-ADA's; ``r0`` = no ramp-up), e.g. ``hl10``, ``hl10r0``;
* ``bN``: ``train.batch_size=N``; ``lrX``: both rates X, ``lrgX`` / ``lrdX``: G's / D's rate
  (e.g. ``lrd4e-4+lrg1e-4``, TTUR); ``lsS``: ``loss.label_smoothing=S``; ``beta1B``: ``optim.beta1=B``;
* a name given with ``--variant NAME KEY=VALUE ...``.

A run reaches each ``--epochs`` value in turn: ``gankit train FAMILY --epochs E1 ...``, its evaluation,
then ``--resume --epochs E2`` and its evaluation, so ``--epochs 5,50`` costs 50 epochs, not 55; an exact
resume (gankit's tests check it bitwise on CPU) makes the epoch-5 numbers those of a 5-epoch run (the
presets' learning rates are constant). The commands are printed, logged beside the run and recorded.

Resumable: rerun the same command. A trained stage (``metrics.jsonl`` reached the epoch) and its
evaluation (``eval.jsonl``: ``G_last.pt`` at that step, same metrics and n) are kept; an interrupted run
continues with ``--resume``. A run folder made with other options (``WORK/RUN.cmd`` differs) is refused.
The table: per family, epochs and arm, each metric per seed, the mean and its ratio to ``none``.
One line per invocation is appended to ``results.jsonl`` (unless ``--no-save``).

    python benchmarks/quality_mlp.py --epochs 5,50 [--families gan,cgan] [--arms none,decay0.999,hl10]
        [--seeds 0,1] [--data-root /work/shared/data] [--work /tmp/ema] [--n 10000] [--device auto]
        [--parallel 2 --threads 1] [--set data.max_images=500 ...] [--variant NAME KEY=VALUE ...] [--no-save]
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common

REPO = common.BENCH_DIR.parent
METRICS = {"gan": {"fid_clf": True}, "cgan": {"fid_clf": True, "cls_acc": False}}
"""What is scored per family, and whether lower is better."""


TOKENS: list[tuple[str, Callable[[re.Match[str]], list[str]]]] = [
    (r"decay(0?\.\d+)", lambda m: [f"train.ema_decay={m[1]}"]),
    (
        r"hl(\d+(?:\.\d+)?)(?:r(\d+(?:\.\d+)?))?",
        lambda m: [f"train.ema_halflife_kimg={m[1]}", f"train.ema_rampup={m[2] or '0.05'}"],
    ),
    (r"b(\d+)", lambda m: [f"train.batch_size={m[1]}"]),
    (r"lr([\d.e-]+)", lambda m: [f"optim.lr_g={m[1]}", f"optim.lr_d={m[1]}"]),
    (r"lr([gd])([\d.e-]+)", lambda m: [f"optim.lr_{m[1]}={m[2]}"]),
    (r"ls(0?\.\d+)", lambda m: [f"loss.label_smoothing={m[1]}"]),
    (r"beta1(0?\.\d+)", lambda m: [f"optim.beta1={m[1]}"]),
]
"""Arm tokens (see the module docstring) -> their ``--set`` overrides."""
VARIANTS: dict[str, list[str]] = {}
"""Arm tokens named with ``--variant NAME KEY=VALUE ...``."""


def arm_overrides(arm: str) -> list[str]:
    """The ``--set`` values of an arm name (see the module docstring); a bad name is a one-line exit."""
    if arm == "none":
        return []
    sets = []
    for token in arm.split("+"):
        if token in VARIANTS:
            sets += VARIANTS[token]
            continue
        for pattern, overrides in TOKENS:
            if m := re.fullmatch(pattern, token):
                sets += overrides(m)
                break
        else:
            raise SystemExit(
                f"--arms: unknown {token!r} in {arm!r}; use none, or tokens joined by + (decayD, hlK, hlKrR, bN, "
                "lrX, lrgX, lrdX, lsS, beta1B) or a --variant name"
            )
    return sets


def run_folder(family: str, arm: str, seed: int, args: argparse.Namespace) -> Path:
    return args.work / f"{family}-{arm}-s{seed}"


def beside(run: Path, suffix: str) -> Path:
    """``WORK/RUN.log``, ``WORK/RUN.cmd`` (not ``with_suffix``: arm names hold dots, e.g. decay0.999)."""
    return run.parent / f"{run.name}{suffix}"


def train_command(family: str, arm: str, seed: int, epochs: int, args: argparse.Namespace) -> list[str]:
    data = args.data_root / "fashion-mnist"
    cmd = [sys.executable, "-m", "gankit", "train", family, "--data", str(data), "--seed", str(seed)]
    cmd += ["--epochs", str(epochs), "--device", args.device]
    # the per-epoch snapshots and the previous full state are not needed (scores are of G_last.pt)
    for s in ["train.keep_snapshots=0", "train.keep_prev_state=false", *arm_overrides(arm), *args.set]:
        cmd += ["--set", s]
    return cmd + ["--out", str(run_folder(family, arm, seed, args)), "--no-progress"]


def eval_command(family: str, run: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "gankit", "eval", str(run), "--metrics", *METRICS[family], "--n", str(args.n)]
    return cmd + ["--seed", "0", "--device", args.device]


def step_at(run: Path, epochs: int) -> int | None:
    """The step at which the run finished epoch ``epochs`` (None: not reached)."""
    steps = [r["step"] for r in common.read_jsonl(run / "metrics.jsonl") if r.get("epoch") == epochs]
    return steps[-1] if steps else None


def check_folders(settings: list[tuple[str, str, int]], args: argparse.Namespace) -> None:
    """Refuse run folders made with other options; record the options of new ones (``RUN.cmd``: the
    training command without ``--epochs``, which grows from stage to stage)."""
    args.work.mkdir(parents=True, exist_ok=True)
    for family, arm, seed in settings:
        run = run_folder(family, arm, seed, args)
        cmd = train_command(family, arm, seed, 0, args)
        i = cmd.index("--epochs")
        record, options = beside(run, ".cmd"), shlex.join(cmd[:i] + cmd[i + 2 :])
        if run.exists() and (not record.is_file() or record.read_text() != options):
            raise SystemExit(f"{run} exists but was not made with these options; remove it or pick another --work")
        record.write_text(options)


def stage(settings: list[tuple[str, str, int]], epochs: int, args: argparse.Namespace) -> None:
    """Train every run to ``epochs`` (resuming where it stopped), then evaluate each at that epoch."""
    todo = []
    for family, arm, seed in settings:
        run = run_folder(family, arm, seed, args)
        if step_at(run, epochs) is not None:
            continue
        done = [r["epoch"] for r in common.read_jsonl(run / "metrics.jsonl") if "epoch" in r]
        if done and max(done) > epochs:
            raise SystemExit(f"{run} is past epoch {epochs} without a score there; remove it or drop {epochs}")
        cmd = train_command(family, arm, seed, epochs, args)
        todo.append(([*cmd, "--resume"] if (run / "checkpoints" / "last.pt").is_file() else cmd, beside(run, ".log")))
    common.gankit_pool(todo, parallel=args.parallel, threads=args.threads, cwd=REPO, src=REPO / "src")
    todo = []
    for family, arm, seed in settings:
        run = run_folder(family, arm, seed, args)
        step = step_at(run, epochs)
        if step is None:
            raise SystemExit(f"{run / 'metrics.jsonl'}: epoch {epochs} not reached; see {beside(run, '.log')}")
        if common.last_eval(run, step, args.n, METRICS[family]) is None:
            todo.append((eval_command(family, run, args), beside(run, ".log")))
    common.gankit_pool(todo, parallel=args.parallel, threads=args.threads, cwd=REPO, src=REPO / "src")


def collect(family: str, arm: str, seed: int, epochs: int, args: argparse.Namespace) -> dict[str, Any]:
    """The numbers of one run at one epoch, with the commands that made them."""
    run = run_folder(family, arm, seed, args)
    step = step_at(run, epochs)
    assert step is not None
    row = common.last_eval(run, step, args.n, METRICS[family])
    assert row is not None
    out: dict[str, Any] = {"family": family, "arm": arm, "seed": seed, "epochs": epochs, "step": step}
    out.update({m: row[m] for m in METRICS[family]})
    out["run"], out["sets"] = str(run), arm_overrides(arm) + args.set
    out["train_cmd"] = shlex.join(train_command(family, arm, seed, epochs, args))
    out["eval_cmd"] = shlex.join(eval_command(family, run, args))
    print(f"  {run.name} @ {epochs}: " + ", ".join(f"{m} {out[m]:.4g}" for m in METRICS[family]), flush=True)
    return out


def table(results: list[dict[str, Any]], seeds: list[int], arms: list[str]) -> str:
    """Markdown: per family, one row per (epochs, arm); each metric per seed, the mean and its ratio to ``none``."""
    lines = []
    for family in dict.fromkeys(r["family"] for r in results):
        metrics = METRICS[family]
        head = ["family", "epochs", "arm"]
        for m, lower in metrics.items():
            head += [f"{m} s{s}" for s in seeds] + [
                f"{m} mean",
                f"{m} / none ({'lower' if lower else 'higher'} better)",
            ]
        lines += ["", "| " + " | ".join(head) + " |", "|---|---:|---|" + "---:|" * (len(head) - 3)]
        for epochs in dict.fromkeys(r["epochs"] for r in results):
            group = [r for r in results if (r["family"], r["epochs"]) == (family, epochs)]
            for arm in arms:
                cells = [family, str(epochs), arm]
                for m in metrics:
                    by_seed = {r["seed"]: r[m] for r in group if r["arm"] == arm}
                    base = [r[m] for r in group if r["arm"] == "none"]
                    mean = statistics.mean(by_seed.values()) if by_seed else None
                    cells += [f"{by_seed[s]:.4g}" if s in by_seed else "-" for s in seeds]
                    cells.append(f"**{mean:.4g}**" if mean is not None else "-")
                    ratio = (
                        mean / statistics.mean(base) if mean is not None and base and statistics.mean(base) else None
                    )
                    cells.append(f"{ratio:.3f}" if ratio is not None else "-")
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", default="5", help="epochs at which every run is scored, a comma list (e.g. 5,50)")
    p.add_argument("--families", default="gan,cgan", help=f"some of {', '.join(METRICS)}")
    p.add_argument("--arms", default="none,decay0.999,hl10", help="recipes (see above; none: the baseline)")
    p.add_argument(
        "--variant", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE", help="name an arm token"
    )
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--data-root", type=Path, default=common.DEFAULT_DATA_ROOT, help="holds fashion-mnist/")
    p.add_argument("--work", type=Path, default=Path("/tmp/ema"), help="folder of the run folders")
    p.add_argument("--n", type=int, default=10000, help="samples (and test images) per evaluation")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for every run")
    p.add_argument("--device", default="auto")
    p.add_argument("--parallel", type=int, default=1, help="commands at once (results do not depend on it)")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of every command (0: torch's default)")
    p.add_argument("--no-save", action="store_true", help=f"do not append to {common.RESULTS_FILE.name}")
    args = p.parse_args()
    for name, *sets in args.variant:
        VARIANTS[name] = sets
    epochs = sorted({int(e) for e in args.epochs.split(",") if e})
    families = [f for f in args.families.split(",") if f]
    arms = [a for a in args.arms.split(",") if a]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if bad := [f for f in families if f not in METRICS]:
        raise SystemExit(f"--families: unknown {', '.join(bad)} (known: {', '.join(METRICS)})")
    for arm in arms:
        arm_overrides(arm)
    common.use_bench_cache()
    started = time.time()
    settings = [(f, a, s) for f in families for a in arms for s in seeds]
    check_folders(settings, args)
    for e in epochs:
        stage(settings, e, args)
    results = [collect(*x, e, args) for e in epochs for x in settings]
    text = table(results, seeds, arms)
    print(f"\nMLP recipes (gankit eval --n {args.n} of G_last.pt, the EMA weights when on):")
    print(text)
    common.write_results(
        f"quality: recipes of the MLP presets (epochs {args.epochs})",
        results,
        argparse.Namespace(**vars(args)),
        {"table": text, "wall_s": round(time.time() - started, 1)},
    )


if __name__ == "__main__":
    main()
