"""pix2pix at sizes other than the training size: output quality and memory of each strategy.

Quality: a trained facades run (label map -> photo) translates every val pair at the training size
(256) and at larger sizes, with each strategy of :func:`gankit.inference.run_any_size`; the table
gives val L1 (model range [-1, 1]), PSNR and SSIM (RGB in [0, 1]) against the target at the same size.

* ``256``: the val pairs as trained on (all strategies coincide here, up to resampling).
* ``512 (x2)``: each pair upscaled twice (label map nearest-neighbour, so it stays a label map;
  photo bilinear): the same facade with twice the pixels.
* ``384 (x1.5)``: likewise, and not a multiple of the U-Net's stride (256), so ``pad`` pads.
* ``256x512 (2 side by side)``: two facades next to each other at the training scale, a wider
  canvas rather than a zoom (resize must squash it to a square and back).

Strategies: ``pad (taps as saved)`` is ``pad`` before the fix (the innermost taps that only saw
zero padding in training keep their random initial values); ``pad`` zeroes them first (what
:func:`gankit.sampling.load_generator` now does), then reflect-pads to a multiple of 256;
``resize`` squashes to 256x256 and back; ``tile`` runs 256x256 tiles with 64 px overlap.

Memory (``--memory``): peak RSS of ``gankit translate`` on one 3000x4000 label map, per strategy,
each in its own process (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``), next to gankit's
estimate; the model is a freshly initialised generator with ``--ngf`` (64 = the preset), since
memory does not depend on the weights.

    python benchmarks/quality_strategies.py RUN [--data FACADES_ROOT] [--n N]
    python benchmarks/quality_strategies.py RUN --memory [--ngf 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from gankit.data.facades import data_root
from gankit.inference import run_any_size
from gankit.metrics.paired import PairedMetrics
from gankit.sampling import LoadedGenerator, load_generator
from gankit.translate import translate_memory
from PIL import Image

STRATEGIES = {  # name -> (strategy, taps zeroed)
    "pad (taps as saved)": ("pad", False),
    "pad": ("pad", True),
    "resize": ("resize", True),
    "tile": ("tile", True),
}


def val_pairs(root: Path, n: int | None, direction: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, target) uint8 (3, 256, 256) tensors of the aligned val split (A | B side by side)."""
    files = sorted((root / "val").glob("*.jpg")) + sorted((root / "val").glob("*.png"))
    pairs = []
    for f in files[:n]:
        ab = torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1)
        w = ab.shape[-1] // 2
        a, b = ab[..., :w], ab[..., w:]
        pairs.append((a, b) if direction == "AtoB" else (b, a))
    if not pairs:
        raise SystemExit(f"{root / 'val'}: no val pairs")
    return pairs


def scale(a: torch.Tensor, b: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Input label map by nearest neighbour (it stays a label map), target photo bilinearly."""
    if factor == 1:
        return a, b
    size = (round(a.shape[-2] * factor), round(a.shape[-1] * factor))
    a2 = F.interpolate(a[None].float(), size=size, mode="nearest")[0]
    b2 = F.interpolate(b[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return a2.round().to(torch.uint8), b2.round().clamp(0, 255).to(torch.uint8)


def scenarios(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    side = [
        (torch.cat([pairs[i][0], pairs[i + 1][0]], -1), torch.cat([pairs[i][1], pairs[i + 1][1]], -1))
        for i in range(0, len(pairs) - 1, 2)
    ]
    return {
        "256": pairs,
        "512 (x2)": [scale(a, b, 2) for a, b in pairs],
        "384 (x1.5)": [scale(a, b, 1.5) for a, b in pairs],
        "256x512 (2 side by side)": side,
    }


@torch.no_grad()
def score(loaded: LoadedGenerator, items: list[tuple[torch.Tensor, torch.Tensor]], strategy: str) -> dict[str, float]:
    G, res = loaded.G, loaded.info.resolution
    m = PairedMetrics("rgb")
    for a, b in items:
        x = a[None].float() / 127.5 - 1
        y = run_any_size(G, x, multiple=G.multiple, resolution=res, strategy=strategy).float()
        m.update(x, y, b[None].float() / 127.5 - 1)
    return m.compute()


def quality(args: argparse.Namespace) -> None:
    models = {zero: load_generator(args.run, which=args.checkpoint, zero_taps=zero) for zero in (False, True)}
    loaded = models[True]
    root = Path(args.data) if args.data else data_root() / "facades"
    pairs = val_pairs(root, args.n, loaded.cfg.data.direction)
    print(f"model {loaded.path} (ngf={loaded.cfg.model.ngf}); {len(pairs)} val pairs from {root / 'val'}")
    rows = []
    for scen, items in scenarios(pairs).items():
        for name, (strategy, zero) in STRATEGIES.items():
            t = time.perf_counter()
            r = score(models[zero], items, strategy)
            rows.append({"scenario": scen, "strategy": name, **r, "seconds": time.perf_counter() - t})
            print(json.dumps(rows[-1]), file=sys.stderr)
    print("\n| size | strategy | val L1 | PSNR dB | SSIM |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['strategy']} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['ssim']:.4f} |")


def memory(args: argparse.Namespace) -> None:
    from gankit.data.facades import CMP_PALETTE
    from gankit.training.checkpoint import atomic_save, safe_load

    src = load_generator(args.run, which=args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        state = safe_load(src.path)
        state["config"]["model"]["ngf"] = args.ngf
        cfg_state = dict(state["config"])
        from gankit.config import Config

        cfg = Config.from_dict(cfg_state)
        G, _ = src.family.build(cfg, src.info, init=True)
        state["G"] = G.state_dict()
        state.pop("ema", None)
        atomic_save(state, tmp / "G.pt")
        # A big label map: random rectangles of the facade palette, like a real one.
        rng = np.random.default_rng(0)
        img = np.zeros((args.height, args.width, 3), np.uint8)
        colours = list(CMP_PALETTE.values())
        for _ in range(400):
            y, x = rng.integers(0, args.height), rng.integers(0, args.width)
            img[y : y + rng.integers(50, 600), x : x + rng.integers(50, 600)] = colours[rng.integers(len(colours))]
        Image.fromarray(img).save(tmp / "big.png")
        gankit = Path(sys.executable).with_name("gankit")
        big = load_generator(tmp / "G.pt")
        print(f"{args.height}x{args.width} label map, ngf={args.ngf}, {torch.get_num_threads()} thread(s)")
        print("| strategy | peak RSS GB | gankit's estimate GB | seconds |")
        print("|---|---|---|---|")
        for strategy in ("pad", "tile", "resize"):
            cmd = [str(gankit), "translate", str(tmp / "G.pt"), str(tmp / "big.png"), "--out", str(tmp / strategy)]
            cmd += ["--strategy", strategy, "--max-memory", "1000", "--device", "cpu", "--overwrite"]
            code = (
                "import resource, subprocess, sys, time; t = time.perf_counter(); "
                "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
                "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
                "time.perf_counter() - t); print(r.stdout + r.stderr)"
            )
            # A fresh parent per strategy, so RUSAGE_CHILDREN is that one translate's peak alone.
            out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=os.environ)
            head, _, log = out.stdout.partition("\n")
            rc, kb, secs = head.split()
            est = translate_memory(big, args.height, args.width, strategy) / 1e9
            if rc != "0":
                print(f"| {strategy} | failed (rc {rc}): {log.strip()[-200:]} | | |")
                continue
            print(f"| {strategy} | {int(kb) / 1e6:.2f} | {est:.2f} | {float(secs):.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="trained pix2pix run folder (facades, 256)")
    ap.add_argument("--checkpoint", default="last", help="best, last or a checkpoint file")
    ap.add_argument("--data", help="aligned facades root with val/ (default: gankit's built copy)")
    ap.add_argument("--n", type=int, help="first N val pairs only")
    ap.add_argument("--memory", action="store_true", help="peak RSS of a large translate per strategy instead")
    ap.add_argument("--ngf", type=int, default=64, help="--memory: generator width")
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--width", type=int, default=4000)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    (memory if args.memory else quality)(args)


if __name__ == "__main__":
    main()
