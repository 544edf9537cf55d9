"""pix2pix (Isola et al. 2017) on CMP facades: the reference training step vs gankit's ``pix2pix`` preset.

Baseline = ``junyanz/pytorch-CycleGAN-and-pix2pix`` ``--model pix2pix`` as published (:mod:`seed_pix2pix`):
``unet_256`` + ``basic`` PatchGAN with BatchNorm, dropout 0.5, GANLoss 'vanilla' (BCEWithLogits), L1 x 100,
D loss 0.5 * (real + fake), Adam(2e-4, (0.5, 0.999)), batch 1, fed by its ``AlignedDataset`` per sample
(A|B JPEG, ``Resize([286, 286], BICUBIC)``, shared random crop 256 and flip, :class:`seed_data.SeedAligned`)
through ``DataLoader(shuffle=True, num_workers=4)`` (``--num_threads 4``). Both sides read the same A|B
files: gankit's build of the CMP base set (label map -> photo). ``--resolution 128`` halves the side
(load 143, a 7-level U-Net) for quick checks.

    python benchmarks/bench_pix2pix.py [--batch-size 1|4] [--resolution 256|128] [--options all] [--synthetic]
"""

from __future__ import annotations

import argparse

import common
import seed_data
import seed_pix2pix


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
    return seed_pix2pix.baseline_runner(name, ds, 3, 3, args)


if __name__ == "__main__":
    seed_pix2pix.main(__doc__, build, "pix2pix", "facades")
