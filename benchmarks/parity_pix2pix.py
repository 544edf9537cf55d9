"""pix2pix quality per step: gankit vs the authors' code on the same facades split, scored by one function.

Arms (``ARMS``, plus ``--variant``): gankit's ``pix2pix`` preset through ``gankit train`` (with ``--set``
overrides per arm), and ``junyanz``: ``train.py --model pix2pix`` of junyanz/pytorch-CycleGAN-and-pix2pix,
run unmodified from a checkout outside this repository (``--ref``). Both read the same files: gankit's
build of the CMP base set (``build_facades``: ``DST/{train,val,test}``, 512x256 A|B, A = label map), 304
train pairs (``--pairs N``: the first N by name, for smoke tests), batch 1, each side's defaults (the
paper's recipe: load 286, random crop 256 and flip, Adam 2e-4 / 0.5, L1 x 100, dropout 0.5).

Each (arm, seed) trains ``--epochs E`` at the constant learning rate, as the first E epochs of the full
recipes do (gankit decays after epoch 100, junyanz after ``--n_epochs 100``): gankit with
``train.epochs=E optim.decay_epochs=0``, junyanz with ``--n_epochs E --n_epochs_decay 0``. Every epoch
leaves a generator: gankit's ``G_epochNNNN.pt`` (``train.sampling=eval``, so it holds the running BatchNorm
statistics; sampling modes never change training), junyanz's ``{epoch}_net_G.pth`` (``--save_epoch_freq 1``).

Scoring, the same for every arm (:class:`Scorer`): the generator is loaded by gankit's own loader (a junyanz
file first goes through ``gankit.interop.import_pix2pix_repo``) and run over the 37 val pairs at 256 without
jitter, in eval mode (running statistics, dropout off) and, unless ``--no-standing``, with standing
statistics (recomputed over the same 8 batches of 8 training inputs for every arm, as
``train.sampling=standing`` does); the numbers are ``gankit.metrics.paired.PairedMetrics``': L1 in [-1, 1],
PSNR and SSIM on [0, 1]. Seconds per epoch are each tool's own: gankit's ``metrics.jsonl`` (training steps
only), junyanz's "Time Taken" (whole seconds, data loading and the epoch's checkpoint included).

junyanz's ``train.py`` has no seed option: its replicates are independent draws, the seed only names the run.

The reference checkout this was written for: commit 2a7afba (2025-08-06, the newest; no ``--gpu_ids`` or visdom
there, it takes ``cuda:0`` when there is one, so ``--device cpu`` hides the GPUs from it). Its ``util/visualizer.py``
imports ``wandb`` and ``util/html.py`` ``dominate`` at the top: install them outside gankit's environment,
e.g. ``pip install --target /work/ref/pylib wandb dominate``, and pass ``--ref-pythonpath /work/ref/pylib``
(``--use_wandb`` stays off). Disk: a 3-epoch gankit run keeps ~1.8 GB (full state + snapshots), a junyanz
run 0.23 GB per epoch.

Resumable: one row per (data, arm, seed, epoch) in ``WORK/results.jsonl`` (the last row of a key counts);
scored epochs are skipped, an interrupted gankit run continues with ``--resume``, an interrupted junyanz
run starts again (and its epochs are scored again). ``--jobs 2`` runs two (arm, seed) jobs at once, each
training with ``--threads`` torch/OpenMP threads (its DataLoader workers stay junyanz's default, 4).

    python benchmarks/parity_pix2pix.py --ref /work/ref/pytorch-CycleGAN-and-pix2pix --work /work/parity \\
        --epochs 3 --seeds 0,1,2 --jobs 2 [--arms gankit,junyanz] [--variant NAME KEY=VALUE ...] [--report]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402
from gankit.config import make_config  # noqa: E402
from gankit.data import build_dataset  # noqa: E402
from gankit.data.facades import build_facades  # noqa: E402
from gankit.interop import import_pix2pix_repo  # noqa: E402
from gankit.metrics.paired import PairedMetrics  # noqa: E402
from gankit.models.batchnorm import sampling_mode  # noqa: E402
from gankit.sampling import load_generator  # noqa: E402
from gankit.training.standing import standing_inputs  # noqa: E402

REFERENCE = "junyanz"
ARMS: dict[str, list[str]] = {
    "gankit": [],  # the preset as is
    "gankit-ref-dropout": ["model.g_dropout_blocks=reference"],  # dropout in the decoder blocks junyanz uses
    REFERENCE: [],  # train.py --model pix2pix
}
"""Arm name -> extra gankit ``--set`` overrides (the reference arm takes none); add variants here or with --variant."""
CMP_BASE = Path(os.environ.get("GANKIT_BENCH_DATA", "/work/shared/data")) / "cmp-facades-base"
_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


def flat(opts: dict[str, Any]) -> list[str]:
    """``{"--a": 1}`` -> ``["--a", "1"]``."""
    return [str(x) for kv in opts.items() for x in kv]


def git_commit(path: Path) -> str:
    """``path``'s checked-out commit (``+dirty`` with uncommitted changes), or ``unknown``."""
    run = lambda *a: subprocess.run(["git", "-C", str(path), *a], capture_output=True, text=True)
    head = run("rev-parse", "HEAD")
    if head.returncode:
        return "unknown"
    dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def prepare_data(work: Path, pairs: int) -> Path:
    """The facades build under ``work`` (made once); with ``pairs``, a copy holding only the first ``pairs``
    train pairs by name (and every val pair), read by both sides."""
    full = work / "data" / "facades"
    build_facades(CMP_BASE, full, log=lambda m: None)
    if not pairs:
        return full
    sub = work / "data" / f"facades-{pairs}"
    if not (sub / "manifest.json").is_file():
        for split, files in (("train", sorted((full / "train").glob("*.jpg"))[:pairs]), ("val", None)):
            (sub / split).mkdir(parents=True, exist_ok=True)
            for f in files if files is not None else sorted((full / split).glob("*.jpg")):
                shutil.copy2(f, sub / split / f.name)
        shutil.copy2(full / "manifest.json", sub / "manifest.json")  # the layout: labels -> photo is AtoB
    return sub


class Scorer:
    """val L1/PSNR/SSIM of a generator, in eval mode and with standing statistics; one instance for every arm."""

    def __init__(self, dst: Path, standing: bool) -> None:
        cfg = make_config("pix2pix", overrides={"data.path": str(dst)})
        quiet = lambda m: None
        val = build_dataset(cfg.data, "val", log=quiet)
        self.batches = [
            val.batch(torch.arange(s, min(s + 8, len(val))), device=torch.device("cpu"), generator=None)
            for s in range(0, len(val), 8)
        ]
        self.standing = None
        if standing:  # the run's standing inputs (seed 0 for every arm): training crops/flips, never val images
            train = build_dataset(cfg.data, "train", log=quiet)
            self.standing = standing_inputs(cfg, train, noise=False, num_classes=0, device=torch.device("cpu"))

    @torch.no_grad()
    def score(self, G: torch.nn.Module) -> dict[str, dict[str, float]]:
        out = {}
        for mode in ["eval"] + (["standing"] if self.standing else []):
            st = self.standing
            metrics = PairedMetrics(space="rgb")
            with sampling_mode(G, mode, inputs=st.inputs if st else None, batches=st.batches if st else 0):
                for b in self.batches:
                    metrics.update(b["input"], G(b["input"]).float(), b["target"])
            out[mode] = {k: round(v, 5) for k, v in metrics.compute().items()}
        return out


class Job:
    """One (arm, seed): its run folder, training command, per-epoch generators and seconds."""

    def __init__(self, arm: str, seed: int, args: argparse.Namespace) -> None:
        self.arm, self.seed, self.args = arm, seed, args
        self.dir = args.work / "runs" / args.tag / f"{arm}-s{seed}"
        self.log = args.work / "logs" / args.tag / f"{arm}-s{seed}.log"
        self.ref = arm == REFERENCE

    def command(self) -> list[str]:
        a, e = self.args, self.args.epochs
        if self.ref:
            opts = {"--model": "pix2pix", "--dataroot": a.dst, "--name": "run", "--checkpoints_dir": self.dir,
                    "--direction": "AtoB", "--n_epochs": e, "--n_epochs_decay": 0, "--save_epoch_freq": 1}  # fmt: skip
            return [sys.executable, "train.py", *flat(opts), "--no_html"]
        sets = [f"train.epochs={e}", "optim.decay_epochs=0", f"train.keep_snapshots={e}", "train.sampling=eval",
                "train.keep_prev_state=false", *a.arms[self.arm]]  # fmt: skip
        opts = {"--data": a.dst, "--out": self.dir, "--seed": self.seed, "--device": a.device}
        resume = ["--resume"] if (self.dir / "checkpoints" / "last.pt").is_file() else []
        return [
            sys.executable,
            "-m",
            "gankit",
            "train",
            "pix2pix",
            *flat(opts),
            "--no-progress",
            *resume,
            "--set",
            *sets,
        ]

    def generator_file(self, epoch: int) -> Path:
        if self.ref:
            return self.dir / "run" / f"{epoch}_net_G.pth"
        return self.dir / "checkpoints" / f"G_epoch{epoch:04d}.pt"

    def seconds(self) -> dict[int, float]:
        """Seconds of each finished epoch, as the tool reports them."""
        if self.ref:
            text = self.log.read_text() if self.log.is_file() else ""
            return {int(k): float(s) for k, s in re.findall(r"End of epoch (\d+) / \d+ \t Time Taken: (\d+) sec", text)}
        rows = (self.dir / "metrics.jsonl").read_text().splitlines() if (self.dir / "metrics.jsonl").is_file() else []
        return {int(r["epoch"]): float(r["seconds"]) for r in map(json.loads, rows)}

    def trained(self) -> bool:
        done = self.seconds()
        return all(e in done and self.generator_file(e).is_file() for e in range(1, self.args.epochs + 1))

    def train(self) -> bool:
        """Train unless finished; True when it trained from scratch (junyanz cannot resume: an unfinished
        run starts again, and its earlier epochs are other generators than those scored before)."""
        if self.trained():
            return False
        fresh = self.ref or not (self.dir / "checkpoints" / "last.pt").is_file()
        if fresh and self.dir.exists():
            shutil.rmtree(self.dir)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(self.args.threads),
            "MKL_NUM_THREADS": str(self.args.threads),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        }
        if self.ref:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self.args.ref_pythonpath, env.get("PYTHONPATH")) if p)
            if self.args.device == "cpu":
                env["CUDA_VISIBLE_DEVICES"] = ""  # its train.py takes cuda:0 whenever there is one
        else:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd, t0 = self.command(), time.perf_counter()
        say(f"[{self.arm} s{self.seed}] $ {' '.join(cmd)}")
        with self.log.open("w" if self.ref else "a") as f:
            rc = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=self.args.ref if self.ref else REPO
            ).returncode
        if rc or not self.trained():
            tail = "\n".join(self.log.read_text().strip().splitlines()[-5:])
            raise RuntimeError(f"[{self.arm} s{self.seed}] training failed (exit {rc}), see {self.log}:\n{tail}")
        say(f"[{self.arm} s{self.seed}] trained {self.args.epochs} epochs in {time.perf_counter() - t0:.0f} s")
        return fresh

    def load(self, epoch: int) -> torch.nn.Module:
        """The epoch's generator through gankit's loader (junyanz weights imported first)."""
        if not self.ref:
            return load_generator(self.generator_file(epoch)).G
        with tempfile.TemporaryDirectory(dir=self.args.work) as tmp:
            run = import_pix2pix_repo(self.generator_file(epoch), Path(tmp) / "run")
            return load_generator(run).G


def run_job(job: Job, done: set[tuple[str, int, int]], scorer: Scorer, args: argparse.Namespace) -> None:
    fresh = job.train()
    seconds = job.seconds()
    for epoch in range(1, args.epochs + 1):
        if (job.arm, job.seed, epoch) in done and not fresh:
            continue
        scores = scorer.score(job.load(epoch))
        row = {
            "data": args.tag,
            "arm": job.arm,
            "seed": job.seed,
            "epoch": epoch,
            "n_train": args.n_train,
            "seconds": seconds.get(epoch),
            **scores,
            "set": args.arms[job.arm],
            "gankit": args.gankit_commit,
            "reference": args.ref_commit if job.ref else None,
        }
        with (args.work / "results.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        ev = scores["eval"]
        say(f"[{job.arm} s{job.seed}] epoch {epoch}: L1 {ev['l1']:.4f} PSNR {ev['psnr']:.2f} SSIM {ev['ssim']:.4f}")


def load_rows(args: argparse.Namespace) -> dict[tuple[str, int, int], dict[str, Any]]:
    """The results of this data set (``--pairs``), the last row of each (arm, seed, epoch)."""
    path = args.work / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return {(r["arm"], r["seed"], r["epoch"]): r for r in rows if r["data"] == args.tag}


def table(rows: dict[tuple[str, int, int], dict[str, Any]], args: argparse.Namespace) -> str:
    """Markdown: per arm and epoch, mean ± std over seeds, seconds per epoch, and the ratios to junyanz."""
    modes = ["eval"] + (["standing"] if any("standing" in r for r in rows.values()) else [])

    def stats(arm: str, epoch: int) -> dict[str, Any]:
        got = [r for (a, _, e), r in sorted(rows.items()) if (a, e) == (arm, epoch)]
        out: dict[str, Any] = {"n": len(got), "s": [r["seconds"] for r in got if r.get("seconds") is not None]}
        for m in modes:
            for k in ("l1", "psnr", "ssim"):
                out[m, k] = [r[m][k] for r in got if m in r]
        return out

    def cell(v: list[float], fmt: str) -> str:
        if not v:
            return "-"
        return fmt.format(statistics.mean(v)) + (" ± " + fmt.format(statistics.stdev(v)) if len(v) > 1 else "")

    head = ["arm", "epoch", "seeds"]
    for m in modes:
        head += [f"{m} L1", f"{m} PSNR", f"{m} SSIM"]
    head += ["s/epoch", "time / jz", "eval L1 / jz"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * (len(head) - 3)]
    epochs = sorted({e for (_, _, e) in rows})
    for arm in [a for a in args.arms if any(k[0] == a for k in rows)]:
        for epoch in epochs:
            s, ref = stats(arm, epoch), stats(REFERENCE, epoch)
            if not s["n"]:
                continue
            cells = [arm, str(epoch), str(s["n"])]
            for m in modes:
                cells += [cell(s[m, "l1"], "{:.4f}"), cell(s[m, "psnr"], "{:.2f}"), cell(s[m, "ssim"], "{:.4f}")]
            ratio = lambda a, b: f"{statistics.mean(a) / statistics.mean(b):.3f}" if a and b else "-"
            cells += [cell(s["s"], "{:.0f}"), ratio(s["s"], ref["s"]), ratio(s["eval", "l1"], ref["eval", "l1"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--ref", type=Path, help="checkout of junyanz/pytorch-CycleGAN-and-pix2pix (needed for its arm)")
    p.add_argument(
        "--ref-pythonpath",
        default=os.environ.get("PARITY_REF_PYTHONPATH", ""),
        help="extra PYTHONPATH for the reference (its wandb/dominate imports), e.g. /work/ref/pylib",
    )
    p.add_argument(
        "--work", type=Path, required=True, help="data build, runs, logs and results.jsonl (outside the repo)"
    )
    p.add_argument(
        "--arms", dest="arm_names", help=f"comma list of {', '.join(ARMS)} and --variant names (default: all)"
    )
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "KEY=VALUE"),
        help="one more gankit arm: its name and --set overrides (repeatable)",
    )
    p.add_argument("--seeds", default="0", help="comma list of seeds")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (< 20: one snapshot per epoch)")
    p.add_argument("--pairs", type=int, default=0, help="train on the first N train pairs only (smoke test); 0 = all")
    p.add_argument("--jobs", type=int, default=1, help="(arm, seed) jobs at once")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each training and torch threads here")
    p.add_argument("--device", default="cpu", help="cpu or cuda (scoring stays on the CPU)")
    p.add_argument("--no-standing", action="store_true", help="score in eval mode only")
    p.add_argument("--report", action="store_true", help="print the table of WORK/results.jsonl; train nothing")
    args = p.parse_args()
    args.arms = {**ARMS, **{v[0]: v[1:] for v in args.variant}}
    wanted = [a for a in args.arm_names.split(",") if a] if args.arm_names else list(args.arms)
    if bad := [a for a in wanted if a not in args.arms]:
        raise SystemExit(f"--arms: unknown {', '.join(bad)} (known: {', '.join(args.arms)}; add one with --variant)")
    if not 0 < args.epochs < 20:
        raise SystemExit(f"--epochs {args.epochs}: gankit snapshots every epoch only in runs of 1-19 epochs")
    args.work = args.work.resolve()
    args.tag = f"facades-{args.pairs}" if args.pairs else "facades"
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.report:
        print(table(load_rows(args), args))
        return
    if REFERENCE in wanted and not (args.ref and (args.ref / "train.py").is_file()):
        raise SystemExit("the junyanz arm needs --ref: a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (train.py)")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("GANKIT_DATA", str(args.work / "gankit-data"))  # gankit's caches stay in the work dir
    args.dst = prepare_data(args.work, args.pairs)
    args.n_train = len(list((args.dst / "train").glob("*.jpg")))
    args.gankit_commit, args.ref_commit = git_commit(REPO), git_commit(args.ref) if args.ref else None
    print(f"data {args.dst} ({args.n_train} train pairs); gankit {args.gankit_commit}; junyanz {args.ref_commit}")
    print("junyanz's train.py has no seed option: its replicates are independent draws (the seed names the run)")
    scorer = Scorer(args.dst, standing=not args.no_standing)
    done = set(load_rows(args))
    jobs = [Job(a, s, args) for s in seeds for a in wanted]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_job, j, done, scorer, args) for j in jobs]
    failed = [str(e) for f in futures if (e := f.exception()) is not None]
    print(f"\npix2pix on {args.tag} ({args.n_train} train pairs, batch 1); val: 37 pairs at 256 without jitter;")
    print("eval = running BatchNorm statistics, standing = recomputed over 64 training inputs; dropout off")
    print(table(load_rows(args), args))
    if failed:
        raise SystemExit("\n".join(failed))


if __name__ == "__main__":
    main()
