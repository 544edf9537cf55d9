"""BatchNorm generators: how each sampling mode of :mod:`gankit.models.batchnorm` draws from a trained run.

For a noise model (DCGAN) the table gives, per mode, the per-pixel standard deviation across ``--n``
samples (grey levels, 0-255; flat grey tiles score ~0) and, with ``--metrics``, the run's ``*_clf``
scores via ``gankit eval``. For an image-to-image model (pix2pix, colorize) it gives val L1 (model
range), PSNR and SSIM over the validation split, per mode. Each mode samples the same noise / inputs.

    python benchmarks/quality_bn_modes.py RUN [RUN ...] [--n 64] [--seed 0]

A run is any gankit run folder (``gankit train dcgan --data FOLDER --max-steps 30 --batch-size 8``).
Its full training state (``checkpoints/last.pt``) is loaded: it holds the running statistics, which
the ``eval`` mode uses (a snapshot of a ``train.sampling=standing`` run holds standing ones).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from gankit.data import build_dataset
from gankit.data.base import to_uint8
from gankit.metrics.paired import PairedMetrics
from gankit.models.batchnorm import SAMPLING_MODES, sampling_mode
from gankit.run import RunFolder
from gankit.sampling import LoadedGenerator
from gankit.sampling import load_generator as _load


def load_generator(run: Path) -> LoadedGenerator:
    """The generator of ``run``'s full state (running statistics), or of ``run`` itself when it is a file."""
    return _load(RunFolder(run).state if run.is_dir() else run)


def noise_spread(run: Path, n: int, seed: int) -> dict[str, float]:
    """Per-pixel std across ``n`` samples (0-255 scale), averaged over pixels, for each mode."""
    loaded = load_generator(run)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, loaded.cfg.model.z_dim, generator=g)
    labels = torch.arange(n) % loaded.num_classes if loaded.num_classes else None

    def standing_inputs(i: int) -> tuple[torch.Tensor, ...]:
        gi = torch.Generator().manual_seed(seed + 1000 + i)
        zi = torch.randn(n, loaded.cfg.model.z_dim, generator=gi)
        return (zi, labels)

    out = {}
    for mode in SAMPLING_MODES:
        with torch.no_grad(), sampling_mode(loaded.G, mode, inputs=standing_inputs):
            images = to_uint8(loaded.G(z, labels).float()).float()
        out[mode] = round(float(images.std(dim=0).mean()), 2)
    return out


def paired_scores(run: Path, seed: int) -> dict[str, dict[str, float]]:
    """val L1 / PSNR / SSIM of each mode over the run's validation split."""
    loaded = load_generator(run)
    val = build_dataset(loaded.cfg.data, "val", log=lambda m: None)
    batches = [
        val.batch(torch.arange(s, min(s + 8, len(val))), device="cpu", generator=None) for s in range(0, len(val), 8)
    ]

    # standing statistics from training inputs (never the val images scored below), as a run would
    train = build_dataset(loaded.cfg.data, "train", log=lambda m: None)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))

    def standing_inputs(i: int) -> tuple[torch.Tensor, ...]:
        idx = order[(i * 8) % len(train) :][:8]
        return (train.batch(idx, device="cpu", generator=None)["input"],)

    out = {}
    for mode in SAMPLING_MODES:
        torch.manual_seed(seed)  # the train mode's dropout
        metrics = PairedMetrics(space=loaded.info.space)
        with torch.no_grad(), sampling_mode(loaded.G, mode, inputs=standing_inputs):
            for b in batches:
                metrics.update(b["input"], loaded.G(b["input"]).float(), b["target"])
        out[mode] = {k: round(v, 4) for k, v in metrics.compute().items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for run in args.runs:
        loaded = load_generator(run)
        if loaded.family.kind == "noise":
            row = {"run": str(run), "pixel_std_0_255": noise_spread(run, args.n, args.seed)}
        else:
            row = {"run": str(run), "val": paired_scores(run, args.seed)}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
