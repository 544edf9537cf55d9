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

import common
import seed_data
import seed_pix2pix


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
    return seed_pix2pix.baseline_runner(name, ds, 1, 2, args)


if __name__ == "__main__":
    seed_pix2pix.main(__doc__, build, "colorize", "bsds500")
