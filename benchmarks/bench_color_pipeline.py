"""The colorization data path alone: the reference per-sample pipeline vs gankit's ``ColorizationDataset``.

Seed: the reference ``ColorizationDataset`` (``junyanz/pytorch-CycleGAN-and-pix2pix``) run with
``--load_size 256 --crop_size 256`` (gankit's preset sizes, so both sides produce the same tensors): per
photo, PIL open + resize to 256 (bicubic) + random flip + ``skimage.color.rgb2lab`` + L/50 - 1, ab/110,
batched by a DataLoader (``--num-workers``; the list runs one contestant each).
gankit: :func:`gankit.data.colorization.load_colorization` decodes, resizes and converts every
photo to Lab once (the first-epoch cost, reported separately), then each ``batch()`` crops/flips
the float16 Lab cache and casts it. ``gankit storage=mmap`` is the large-data path: uint8 RGB in a
memory-mapped cache, each batch converted to Lab on the device (the crossover of issue 14). All
produce the same tensors: (B, 1, 256, 256) L and (B, 2, 256, 256) ab in model scaling.
Target: gankit >= 5x the seed pipeline.

    python benchmarks/bench_color_pipeline.py [--batch-size 16] [--num-workers 0,2] [--synthetic]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch.utils.data import DataLoader

import common
import seed_data


class GankitColorData:
    """gankit's colorization data path as the training loop drives it: sampler -> ``batch()``."""

    def __init__(self, root: Any, args: argparse.Namespace, name: str = "") -> None:
        from gankit.data.base import EpochSampler
        from gankit.data.colorization import load_colorization

        # "gankit ColorizationDataset": memory storage, Lab converted once at load (float16);
        # "gankit storage=mmap": uint8 RGB memory-mapped, Lab converted per batch on the device
        storage = name.split("storage=")[1] if "storage=" in name else "memory"
        t = time.perf_counter()
        self.data = load_colorization(
            root, "train", resolution=args.resolution, load_size=args.resolution, storage=storage, log=lambda m: None
        )
        self.decode_s = time.perf_counter() - t
        self.sampler = EpochSampler(len(self.data), args.batch_size, seed=0)
        self.device = torch.device(args.device)
        self.images_per_step = args.batch_size
        self.info = {"decode_s": self.decode_s, "train_images": len(self.data)}
        self.step_no = 0

    def begin_round(self) -> None:
        pass

    def step(self) -> None:
        idx = self.sampler.indices(self.step_no)
        batch = self.data.batch(idx, device=self.device, generator=self.sampler.augment_generator(self.step_no))
        assert batch["input"].shape[1] == 1 and batch["target"].shape[1] == 2
        self.step_no += 1

    def end_round(self) -> None:
        pass


def build(name: str, args: argparse.Namespace) -> common.Runner:
    root = seed_data.colorization_root(args.data_root, args.synthetic)
    if name.startswith("gankit"):
        return GankitColorData(root, args, name)
    device = torch.device(args.device)
    ds = seed_data.SeedColorization(root / "train", load_size=args.resolution, crop_size=args.resolution)
    workers = int(name.split("nw=")[1])
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers, drop_last=True)

    def consume(batch: dict[str, torch.Tensor]) -> None:
        batch["A"].to(device), batch["B"].to(device)

    return common.BaselineRunner(loader, consume, args.batch_size, {"train_images": len(ds)})


def main() -> None:
    p = common.base_parser(
        __doc__.splitlines()[0], batch_size=16, num_workers="0,2", rounds=5, steps=4, warmup=1, options="default"
    )
    p.add_argument("--resolution", type=int, default=256)
    args = p.parse_args()
    names = [f"seed nw={w}" for w in common.parse_workers(args.num_workers)] + [
        "gankit ColorizationDataset",
        "gankit storage=mmap",
    ]
    results = common.run_contestants(build, names, args)
    data = "synthetic" if args.synthetic else "bsds500 train"
    title = f"colorization data path ({data}, {args.resolution}px, batch {args.batch_size}, {args.device})"
    # first epoch = one-time decode and Lab conversion + one epoch of batches; the seed pays it every epoch
    first: dict[str, dict[str, float]] = {}
    for r in results:
        if r["name"].startswith("gankit") and r.get("ok") and "images_per_s" in r:
            n = r["info"]["train_images"]
            secs = r["info"]["decode_s"] + n / r["images_per_s"]
            first[r["name"]] = {
                "decode_s": r["info"]["decode_s"],
                "first_epoch_s": secs,
                "first_epoch_images_per_s": n / secs,
            }
    common.report(title, results, args, {"first_epoch": first})
    base = results[0].get("images_per_s")
    for name, f in first.items():
        ratio = f" = {f['first_epoch_images_per_s'] / base:.2f}x {results[0]['name']}" if base else ""
        print(
            f"{name}: first epoch incl. one-time decode + Lab {f['decode_s']:.2f} s: {f['first_epoch_s']:.2f} s, "
            f"{f['first_epoch_images_per_s']:.1f} images/s{ratio}"
        )


if __name__ == "__main__":
    main()
