"""Lab colorization (pix2pix L -> ab, Isola et al. 2017 Sec. 4.7) on BSDS500 photos: the reference
training step vs gankit's ``colorize`` preset.

Baseline = ``junyanz/pytorch-CycleGAN-and-pix2pix`` ``--model colorization`` as published
(:mod:`seed_pix2pix` with 1 input and 2 output channels): the pix2pix step with its defaults (batch 1,
``DataLoader(shuffle=True, num_workers=4)``), fed by its ``ColorizationDataset`` per sample
(``Resize([286, 286], BICUBIC)``, ``RandomCrop(256)``, ``RandomHorizontalFlip``, ``skimage.color.rgb2lab``,
L/50 - 1 and ab/110; :class:`seed_data.SeedColorization`). gankit's ``colorize`` preset loads at 256
without a crop (``data.load_size 256``) and keeps the photos in memory as Lab. The reference trains
with batch 1, so that is the default here (the gankit preset itself trains with 16); ``--resolution 128``
for quick checks (reference load 143).

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
    load = round(286 * args.resolution / 256)  # the reference's --load_size 286 for a 256 crop
    ds = seed_data.SeedColorization(root / "train", load_size=load, crop_size=args.resolution)
    return seed_pix2pix.baseline_runner(name, ds, 1, 2, args)


if __name__ == "__main__":
    seed_pix2pix.main(__doc__, build, "colorize", "bsds500")
