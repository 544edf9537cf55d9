"""Lab colorization (pix2pix L -> ab, Isola et al. 2017 Sec. 4.7) on BSDS500 photos: the reference
training step vs gankit's ``colorize`` preset.

Baseline (:mod:`seed_pix2pix` with 1 input and 2 output channels): the pix2pix step, fed by the
reference ``ColorizationDataset`` path per sample (PIL open + resize 256, random flip,
``skimage.color.rgb2lab``, L/50 - 1 and ab/110) through a DataLoader. gankit decodes the photos
once and converts whole batches to Lab in torch. The reference colorization runs use batch 1, so
that is the default here (the gankit preset itself trains with 16); ``--resolution 128`` for quick checks.

    python benchmarks/bench_colorize.py [--batch-size 1|4|16] [--resolution 256|128] [--options all] [--synthetic]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

import common
import seed_data
from seed_pix2pix import pix2pix_step


def build(name: str, args: argparse.Namespace) -> common.Runner:
    root = seed_data.colorization_root(args.data_root, args.synthetic)
    if name.startswith("gankit"):
        return common.gankit_runner(
            "colorize",
            name,
            args,
            {"data.path": str(root), "data.resolution": args.resolution, "data.load_size": args.resolution},
        )
    ds = seed_data.SeedColorization(root / "train", load_size=args.resolution, crop_size=args.resolution)
    workers = int(name.split("nw=")[1])
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers, drop_last=True)
    step = pix2pix_step(1, 2, torch.device(args.device), resolution=args.resolution)
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
    data = "synthetic" if args.synthetic else "bsds500"
    common.report(
        f"colorize ({data} {args.resolution}x{args.resolution}, batch {args.batch_size}, {args.device})", results, args
    )


if __name__ == "__main__":
    main()
