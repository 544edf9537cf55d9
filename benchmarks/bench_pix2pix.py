"""pix2pix (Isola et al. 2017) on CMP facades: the reference training step vs gankit's ``pix2pix`` preset.

Baseline (:mod:`seed_pix2pix`): ``unet_256`` + ``basic`` PatchGAN with BatchNorm, dropout 0.5,
GANLoss 'vanilla' (BCEWithLogits), L1 x 100, D loss 0.5 * (real + fake), Adam(2e-4, (0.5, 0.999)),
fed by the ``AlignedDataset`` path per sample (A|B JPEG, resize 286 bicubic, shared random crop 256
and flip) through a DataLoader. Both sides read the same A|B files: gankit's build of the CMP base
set (label map -> photo). ``--resolution 128`` halves the side (load 143, a 7-level U-Net) for quick checks.

    python benchmarks/bench_pix2pix.py [--batch-size 1|4] [--resolution 256|128] [--options all] [--synthetic]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

import common
import seed_data
from seed_pix2pix import pix2pix_step


def load_size(resolution: int) -> int:
    return round(286 * resolution / 256)


def build(name: str, args: argparse.Namespace) -> common.Runner:
    root = seed_data.facades_root(args.data_root, args.synthetic)
    if name.startswith("gankit"):
        return common.gankit_runner(
            "pix2pix",
            name,
            args,
            {"data.path": str(root), "data.resolution": args.resolution, "data.load_size": load_size(args.resolution)},
        )
    ds = seed_data.SeedAligned(root / "train", load_size=load_size(args.resolution), crop_size=args.resolution)
    workers = int(name.split("nw=")[1])
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers, drop_last=True)
    step = pix2pix_step(3, 3, torch.device(args.device), resolution=args.resolution)
    return common.BaselineRunner(loader, step, args.batch_size, {"train_images": len(ds)})


def main() -> None:
    p = common.base_parser(
        __doc__.splitlines()[0],
        batch_size=1,
        num_workers="2",
        rounds=3,
        steps=3,
        warmup=2,
        options="default,channels_last",
    )
    p.add_argument("--resolution", type=int, default=256, choices=[128, 256])
    args = p.parse_args()
    results = common.run_contestants(build, common.contestant_names(args), args)
    data = "synthetic" if args.synthetic else "facades"
    common.report(
        f"pix2pix ({data} {args.resolution}x{args.resolution}, batch {args.batch_size}, {args.device})", results, args
    )


if __name__ == "__main__":
    main()
