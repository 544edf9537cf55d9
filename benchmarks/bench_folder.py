"""Whole-command time of ``gankit colorize`` / ``gankit translate`` over a folder, per inference engine.

Contestants, interleaved round by round (order reversed every round), each a fresh CLI process as a
user runs it: ``before`` (the gankit of ``--before-src``, e.g. a worktree of the commit before the
inference engine), ``torch`` and ``onnxruntime`` (this checkout's ``--engine``). The ONNX export is made
once before the timed rounds (it is cached per snapshot), so the rounds time what a user pays on every
later run. Prints the median seconds, images/s and the ratio to ``before`` (and to ``junyanz``). RUN must
be readable by the earlier gankit: make (or import) it with that one, since a newer gankit reads older
checkpoints but an older one refuses config keys added since::

    python benchmarks/bench_folder.py colorize RUN PHOTOS --before-src /path/to/old/src [--rounds 3]

``translate`` can add ``junyanz`` (``--junyanz REF``): ``test.py`` of junyanz/pytorch-CycleGAN-and-pix2pix,
run unmodified from its checkout REF, on the same images with the same weights. RUN must then be a run
folder made by ``gankit import pix2pix-repo NET_G.pth``: the benchmark reads its ``imported.json``, copies
the ``.pth`` it names into a temp ``checkpoints/jz/latest_net_G.pth`` (checked against the sha256 recorded
at import) and builds the same network from the record: ``--model test`` (``--dataset_mode single``, one
image at a time), ``--netG unet_256 --norm batch --ngf 64`` (and ``--no_dropout`` when imported so),
``--num_test`` = the number of images (its default is 50), PNGs and an HTML page in ``--results_dir``.
Its ``test.py`` runs in train mode (dropout on, per-image BatchNorm statistics) unless ``--eval``, so the
mode is set on both sides: by default eval mode (``test.py --eval``, ``gankit translate --eval-mode``);
with ``--train-mode``, train mode (``test.py`` as its README runs it, ``gankit translate --train-mode``),
which onnxruntime cannot run, so that contestant and the export are left out. ``test.py`` writes the
input beside each output (``*_real.png``, ``*_fake.png``) and resizes to 256x256 (a no-op for 256x256
inputs, as is gankit's default ``--strategy resize``). Facades pairs from gankit's build (512x256, A = the
label map on the left) are translated with ``--a-halves``: their A halves are cropped into a temp folder
of PNGs once, and every contestant reads that folder::

    PYTHONPATH=OLD/src python -m gankit import pix2pix-repo /tmp/jz/latest_net_G.pth --out /tmp/jz-run
    python benchmarks/bench_folder.py translate /tmp/jz-run FACADES/test --a-halves --before-src OLD/src \\
        --junyanz /path/to/pytorch-CycleGAN-and-pix2pix --ref-pythonpath /path/to/its/extra/deps [--train-mode]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))
IMAGES = (".jpg", ".jpeg", ".png")


def run(cmd: list[str], pythonpath: str, threads: int) -> float:
    """Seconds the command took, start to exit; exits the benchmark with its output when it fails."""
    env = dict(os.environ, PYTHONPATH=pythonpath, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def crop_a_halves(pairs: Path, dst: Path) -> Path:
    """The left (A) half of every A|B pair image in ``pairs``, as PNGs in ``dst``."""
    from PIL import Image

    dst.mkdir(parents=True)
    for f in sorted(pairs.iterdir()):
        if f.suffix.lower() in IMAGES:
            with Image.open(f) as im:
                w, h = im.size
                im.convert("RGB").crop((0, 0, w // 2, h)).save(dst / f"{f.stem}.png")
    return dst


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def junyanz_command(args: argparse.Namespace, inputs: Path, n: int, work: Path) -> Callable[..., list[str]]:
    """``test.py`` of the reference checkout with the network and weights of RUN's import record: a
    function of the results folder (and the number of images, default ``n``) to the command."""
    from gankit.run import RunFolder

    record_file = RunFolder(Path(args.run)).imported_record
    if not record_file.is_file():
        sys.exit(f"{args.run} has no imported.json; make RUN with: gankit import pix2pix-repo NET_G.pth --out RUN")
    record = json.loads(record_file.read_text())
    g = record["netG"]
    checkpoints = work / "checkpoints"
    weights = checkpoints / "jz" / "latest_net_G.pth"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(g["file"], weights)
    if sha256(weights) != g["sha256"]:
        sys.exit(f"{g['file']} changed since RUN was imported from it (sha256 differs); import it again")
    cmd = [sys.executable, str(args.junyanz / "test.py"), "--dataroot", str(inputs), "--name", "jz"]
    cmd += ["--checkpoints_dir", str(checkpoints), "--model", "test", "--netG", g["netG"], "--norm", g["norm"]]
    cmd += ["--ngf", str(g["ngf"]), "--input_nc", str(g["in_channels"]), "--output_nc", str(g["out_channels"])]
    cmd += [] if record["dropout"] else ["--no_dropout"]
    cmd += [] if args.train_mode else ["--eval"]

    def command(target: Path, num: int = n) -> list[str]:
        return [*cmd, "--num_test", str(num), "--results_dir", str(target)]

    return command


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["colorize", "translate"])
    p.add_argument("run")
    p.add_argument("inputs", type=Path)
    p.add_argument("--before-src", type=Path, required=True, help="src/ of the gankit to compare against")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--a-halves", action="store_true", help="INPUTS holds A|B pairs: translate their left halves")
    p.add_argument("--junyanz", type=Path, help="translate: also time test.py of this reference checkout")
    p.add_argument("--ref-pythonpath", default="", help="PYTHONPATH for the reference (its wandb/dominate)")
    p.add_argument("--train-mode", action="store_true", help="translate in train mode (test.py's default)")
    args = p.parse_args()
    if args.command != "translate" and (args.junyanz or args.train_mode or args.a_halves):
        p.error("--junyanz, --train-mode and --a-halves are for translate")
    out = Path(tempfile.mkdtemp(prefix="bench-folder-"))
    inputs = crop_a_halves(args.inputs, out / "a-halves") if args.a_halves else args.inputs
    n = sum(1 for f in inputs.iterdir() if f.suffix.lower() in IMAGES)
    base = [sys.executable, "-m", "gankit", args.command, args.run, str(inputs)]
    mode = [] if args.command == "colorize" else ["--train-mode" if args.train_mode else "--eval-mode"]

    def gankit(src: Path, *extra: str) -> tuple[Callable[..., list[str]], str]:
        """A gankit contestant: its command as a function of the output folder, and its PYTHONPATH."""
        return (lambda target: [*base, "--out", str(target), *mode, *extra]), str(src)

    contestants = {"before": gankit(args.before_src), "torch": gankit(SRC, "--engine", "torch")}
    if not args.train_mode:  # an ONNX graph runs eval mode only
        contestants["onnxruntime"] = gankit(SRC, "--engine", "onnxruntime")
        run(contestants["onnxruntime"][0](out / "warm"), str(SRC), args.threads)  # export once (cached)
    if args.junyanz:
        jz = junyanz_command(args, inputs, n, out)
        contestants["junyanz"] = jz, args.ref_pythonpath
        run(jz(out / "warm-jz", 1), args.ref_pythonpath, args.threads)  # its weights into the page cache
    times: dict[str, list[float]] = {k: [] for k in contestants}
    for r in range(args.rounds):
        for name in list(contestants)[:: 1 if r % 2 == 0 else -1]:
            command, pythonpath = contestants[name]
            target = out / f"{name}-{r}"
            times[name].append(run(command(target), pythonpath, args.threads))
            shutil.rmtree(target)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    how = f", {'train' if args.train_mode else 'eval'} mode" if args.command == "translate" else ""
    print(f"{args.command} of {n} images, {args.threads} threads, {args.rounds} rounds{how} (median, whole command):")
    for name, ts in times.items():
        m = medians[name]
        each = ", ".join(f"{t:.1f}" for t in ts)
        vs = f"x{medians['before'] / m:.2f} vs before"
        vs += f"  x{medians['junyanz'] / m:.2f} vs junyanz" if "junyanz" in medians else ""
        print(f"  {name:12s} {m:6.1f} s  {n / m:5.2f} img/s  {vs}   ({each})")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
