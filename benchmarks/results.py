"""Trained results of every gankit family on real data: one command for README's "Results" section.

Trains each family with its preset (the course notes' networks and recipes), scores it with
``gankit eval`` (Inception FID/KID/precision-recall from ``gankit[fid]``, plus the family's own
metrics), and writes a table and small JPEGs to ``--publish`` (default ``docs/results/``)::

    python benchmarks/results.py --gan-epochs 30 --cgan-epochs 10 --budget-minutes 18 --n 1000   # 2-core CPU
    python benchmarks/results.py --budget-minutes 240 --device cuda --n 10000

Jobs (``--only`` picks some):

* ``gan``, ``cgan``: Fashion-MNIST for ``--gan-epochs`` / ``--cgan-epochs`` epochs (50: about
  convergence), one run per ``--seeds`` entry, since MLP GANs vary from seed to seed;
* ``dcgan`` (``dcgan-fmnist32``), ``colorize`` (BSDS500's 200 train photos), ``pix2pix`` (the CMP
  facades base set, 304 train pairs): seed 0, each for an equal share of ``--budget-minutes`` of
  training time (gankit's ``train.max_minutes``), as many epochs as that allows.

Noise models are scored with ``--n`` samples against as many Fashion-MNIST test images (FID grows as
n shrinks: compare figures at equal n only); image-to-image models on their val split (37 facades
pairs, 100 BSDS500 photos), outputs against targets, which is how published pix2pix FIDs are made.

Everything is resumable: rerun the same command after an interruption. Finished runs and
evaluations (``WORK/results.jsonl``) are kept; an unfinished run continues with ``--resume`` for
what is left of its time share. The runs live in ``--work`` (default ``runs/results/``, outside
the package); ``--publish`` is rewritten from whatever has finished.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from gankit.run import RunFolder
from gankit.training.stats import read_jsonl

from common import DEFAULT_DATA_ROOT

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """One family's training: its preset, its data folder (under the data root), and either a fixed
    number of epochs (``epochs``) or a share of the time budget (``epochs=0``)."""

    preset: str
    data: str
    epochs: int = 0
    seeds: tuple[int, ...] = (0,)
    caption: str = ""


def jobs(args: argparse.Namespace) -> dict[str, Job]:
    seeds = tuple(args.seeds)
    return {
        "gan": Job("gan", "fashion-mnist", args.gan_epochs, seeds, "MLP GAN, Fashion-MNIST"),
        "cgan": Job("cgan", "fashion-mnist", args.cgan_epochs, seeds, "cGAN, one row per class"),
        "dcgan": Job("dcgan-fmnist32", "fashion-mnist", caption="DCGAN 32x32, Fashion-MNIST"),
        "colorize": Job("colorize", "bsds500-color", caption="gray | gankit | original, BSDS500 test photos"),
        "pix2pix": Job("pix2pix", "cmp-facades-base", caption="label map | gankit | photo, facades test pairs"),
    }


# ------------------------------------------------------------------------------------------ runs


def gankit(*argv: str, threads: int, log: Path) -> None:
    """Run the gankit CLI as a user would, appending its output to ``log``; raise if it fails."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "gankit", *argv]
    print("  $ gankit " + shlex.join(argv), flush=True)
    with log.open("a") as f:
        f.write(f"$ gankit {shlex.join(argv)}\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(f"gankit {argv[0]} failed (exit {done.returncode}); see {log}")


def trained_seconds(run: Path) -> float:
    """Training time so far: the seconds of the run's ``metrics.jsonl`` rows (0 before its first row)."""
    return sum(float(r.get("seconds", 0.0)) for r in RunFolder(run).read_metrics())


def train(name: str, job: Job, seed: int, run: Path, args: argparse.Namespace, minutes: float) -> float:
    """Train (or finish training) ``run``; returns the wall seconds this call spent."""
    start = time.monotonic()
    if (run / "finished").exists():
        return 0.0
    argv = ["train", job.preset, "--data", str(args.data_root / job.data), "--out", str(run)]
    argv += ["--seed", str(seed), "--device", args.device, "--no-progress"]
    if job.epochs:
        argv += ["--epochs", str(job.epochs)]
    else:
        left = minutes - trained_seconds(run) / 60
        argv += ["--set", f"train.max_minutes={max(left, 0.1):.2f}"]
    if (run / "checkpoints" / "last.pt").exists():
        argv.append("--resume")
    gankit(*argv, threads=args.threads, log=run.parent / f"{run.name}.log")
    (run / "finished").write_text(_dt.datetime.now(_dt.UTC).isoformat() + "\n")
    return time.monotonic() - start


def evaluate(run: Path, args: argparse.Namespace) -> dict:
    """``gankit eval`` of the run's last snapshot; the eval.jsonl row it appended."""
    evals = RunFolder(run).evals
    rows_before = read_jsonl(evals)
    argv = ["eval", str(run), "--n", str(args.n), "--seed", "0", "--device", args.device]
    gankit(*argv, threads=args.threads, log=run.parent / f"{run.name}.log")
    rows = read_jsonl(evals)  # in the order written: the last is this call's
    if len(rows) <= len(rows_before):
        sys.exit(f"gankit eval wrote no row to {evals}")
    return rows[-1]


def _rows(path: Path) -> list[dict]:
    """The rows of this script's own ``results.jsonl`` (keyed by job, not by a training ``step``)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def training_facts(run: Path) -> dict:
    """Steps, epochs and training seconds of a finished run, from its metrics, stats, config and record."""
    folder = RunFolder(run)
    rows = folder.read_metrics()
    steps = max([r["step"] for r in rows + folder.read_stats()] or [0])
    batch = folder.load_config(log=lambda m: None).train.batch_size
    epochs = steps * batch / folder.recorded_dataset()["train_images"]
    return {"steps": steps, "epochs": round(epochs, 2), "train_s": round(sum(r.get("seconds", 0) for r in rows), 1)}


# -------------------------------------------------------------------------------------- pictures


def pictures(name: str, job: Job, run: Path, out: Path) -> Path:
    """The README picture of one family, as a JPEG in ``out``, from the run's last snapshot."""
    from gankit.data import build_dataset
    from gankit.sampling import load_generator, sample
    from gankit.visualize import paired_triplets, save_grid, to_display

    loaded = load_generator(run, which="last")
    path = out / f"{name}.jpg"
    torch.manual_seed(0)  # dropout, for generators sampled in train mode
    with torch.no_grad():
        if loaded.family.kind == "noise":
            classes = loaded.num_classes
            labels = torch.arange(classes).repeat_interleave(8) if classes else None
            x = sample(loaded, len(labels) if labels is not None else 64, labels=labels, seed=0)
            caption = job.caption
            if classes:
                caption += ": " + ", ".join(loaded.info.class_names or [str(i) for i in range(classes)])
            save_grid(to_display(x), path, nrow=8, caption=caption)
        else:
            test = build_dataset(loaded.cfg.data, "test", log=lambda m: None)
            batch = test.batch(torch.arange(min(6, len(test))), device="cpu", generator=None)
            y = loaded(batch["input"]).float()
            grid = paired_triplets(batch["input"], y, batch["target"], space=loaded.info.space)
            save_grid(grid, path, nrow=6, caption=job.caption)
    shrink(path)
    return path


def shrink(path: Path, width: int = 1024, quality: int = 85) -> None:
    """Keep README pictures light: at most ``width`` pixels wide, JPEG ``quality``."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
        im.save(path, quality=quality, optimize=True)


# ------------------------------------------------------------------------------------------ table

COLUMNS = [
    ("steps", "steps", "{:d}"),
    ("epochs", "epochs", "{:g}"),
    ("train_s", "train min", "{:.0f}"),
    ("fid", "FID", "{:.1f}"),
    ("kid", "KID x1e3", "{:.1f}"),
    ("precision", "precision", "{:.2f}"),
    ("recall", "recall", "{:.2f}"),
    ("fid_clf", "FID (classifier)", "{:.1f}"),
    ("cls_acc", "class acc.", "{:.3f}"),
    ("l1", "val L1", "{:.4f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("lpips", "LPIPS", "{:.3f}"),
    ("colorfulness", "colourfulness", "{:.1f}"),
]


def cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if key == "kid":
        value *= 1e3
    elif key == "train_s":
        value /= 60
    return fmt.format(value)


def table(rows: list[dict]) -> str:
    """Markdown table of the finished results: one line per (job, seed)."""
    keys = [(k, head, fmt) for k, head, fmt in COLUMNS if any(r.get(k) is not None for r in rows)]
    lines = ["| family | preset | seed | " + " | ".join(h for _, h, _ in keys) + " |"]
    lines.append("|" + "---|" * (3 + len(keys)))
    for r in rows:
        lines.append(
            f"| {r['job']} | {r['preset']} | {r['seed']} | " + " | ".join(cell(r, k, f) for k, _, f in keys) + " |"
        )
    return "\n".join(lines)


def publish(rows: list[dict], args: argparse.Namespace, images: dict[str, Path]) -> None:
    out = args.publish
    text = [
        "# gankit results",
        "",
        f"Written by `python benchmarks/results.py {shlex.join(args.argv)}` on {rows[-1]['date'] if rows else ''}",
        f"({rows[-1]['machine'] if rows else ''}). Noise models: {args.n} samples against {args.n} test images",
        "(Inception FID/KID/precision-recall, and FID in gankit's Fashion-MNIST classifier space);",
        "image-to-image: outputs vs targets over the val split. Pictures come from seed 0's last snapshot.",
        "",
        table(rows),
        "",
    ]
    for name, path in images.items():
        text += [f"![{name}]({path.name})", ""]
    (out / "README.md").write_text("\n".join(text))
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out / 'README.md'}, {out / 'results.json'} and {len(images)} pictures")


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--budget-minutes", type=float, default=60.0, help="training time shared by dcgan, colorize, pix2pix"
    )
    p.add_argument("--gan-epochs", type=int, default=50, help="epochs of gan (default: 50)")
    p.add_argument("--cgan-epochs", type=int, default=50, help="epochs of cgan (default: 50)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of gan and cgan (default: 0 1)")
    p.add_argument("--n", type=int, default=1000, help="samples (and test images) for noise-model metrics")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of each gankit process (0: torch's)")
    p.add_argument("--only", nargs="+", help="jobs to run (default: all): gan cgan dcgan colorize pix2pix")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "results")
    p.add_argument("--publish", type=Path, default=REPO / "docs" / "results")
    args = p.parse_args()
    args.argv = sys.argv[1:]
    all_jobs = jobs(args)
    chosen = args.only or list(all_jobs)
    unknown = sorted(set(chosen) - set(all_jobs))
    if unknown:
        p.error(f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(all_jobs)}")
    timed = [n for n in all_jobs if not all_jobs[n].epochs]
    share = args.budget_minutes / len(timed)
    args.work.mkdir(parents=True, exist_ok=True)
    args.publish.mkdir(parents=True, exist_ok=True)
    results_file = args.work / "results.jsonl"
    done = {(r["job"], r["seed"]): r for r in _rows(results_file)}

    for name in chosen:
        job = all_jobs[name]
        for seed in job.seeds:
            if (name, seed) in done:
                continue
            run = args.work / f"{name}-s{seed}"
            print(f"{name} seed {seed}: {job.epochs or f'{share:.1f} min of'} {'epochs' if job.epochs else 'training'}")
            wall = train(name, job, seed, run, args, share)
            row = {"job": name, "preset": job.preset, "seed": seed, "run": str(run)}
            row |= training_facts(run) | {"wall_s": round(wall, 1)}
            scores = evaluate(run, args)
            # the eval row's own step, time and (noise) seed are not the run's
            row |= {k: v for k, v in scores.items() if isinstance(v, int | float) and k not in ("time", "step", "seed")}
            row |= {
                "date": _dt.date.today().isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.device}",
                "torch": torch.__version__,
            }
            with results_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[(name, seed)] = row
            print("  " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)), flush=True)

    rows = [done[k] for k in sorted(done, key=lambda k: (list(all_jobs).index(k[0]), k[1]))]
    images = {}
    for name in all_jobs:
        run = args.work / f"{name}-s0"
        if (name, 0) in done:
            images[name] = pictures(name, all_jobs[name], run, args.publish)
    publish(rows, args, images)


if __name__ == "__main__":
    main()
