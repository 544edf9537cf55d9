"""``data.max_images=N``: a fixed, seeded subset (not the first N items) for every dataset kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import N_TRAIN, quiet, write_image_folder
from PIL import Image

from gankit.config import DataConfig
from gankit.data import build_dataset
from gankit.data.colorization import load_colorization
from gankit.data.folders import load_image_folder
from gankit.data.paired import load_pair_folders
from gankit.data.splits import SUBSET_SEED, describe_subset, seeded_subset

CPU = torch.device("cpu")


def test_the_subset_is_fixed_sorted_and_not_the_first_items() -> None:
    pick = seeded_subset(1000, 50)
    assert pick == seeded_subset(1000, 50) == seeded_subset(1000, 50, SUBSET_SEED)
    assert pick == sorted(set(pick)) and len(pick) == 50 and 0 <= pick[0] and pick[-1] < 1000
    assert pick != list(range(50)) and pick[-1] > 500  # spread over the set, not its head
    assert seeded_subset(1000, 50, seed=1) != pick
    assert seeded_subset(30, 0) == seeded_subset(30, 30) == seeded_subset(30, 99) == list(range(30))
    assert describe_subset(60000, 1000) == "1,000 of 60,000, seeded (seed 0)"
    assert describe_subset(30, 30) == describe_subset(30, 0) == ""


def test_idx_takes_the_seeded_subset_and_says_so(tiny_idx: Path) -> None:
    full = build_dataset(DataConfig(name="fashion-mnist", path=str(tiny_idx)), log=quiet)
    lines: list[str] = []
    small = build_dataset(DataConfig(name="fashion-mnist", path=str(tiny_idx), max_images=30), log=lines.append)
    keep = torch.tensor(seeded_subset(N_TRAIN, 30))
    assert torch.equal(small.images, full.images[keep])
    assert not torch.equal(small.images, full.images[:30])
    assert torch.equal(small.labels, full.labels[keep])
    assert small.info.num_images == 30 and small.info.num_classes == 10
    assert small.info.subset == f"30 of {N_TRAIN}, seeded (seed 0)"
    assert any(line.startswith("data.max_images=30: training on 30 of 200") for line in lines)
    assert full.info.subset == ""


def _photos(root: Path, n: int) -> Path:
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"p{i:03d}.png")
    return root


def _pair_folders(root: Path, n: int) -> Path:
    rng = np.random.default_rng(2)
    for side in ("a", "b"):
        (root / "val" / side).mkdir(parents=True)  # a val/ split: every train pair is a training pair
        (root / "train" / side).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "val" / side / "v.png")
    for i in range(n):
        for side in ("a", "b"):
            arr = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / "train" / side / f"{i:02d}.png")
    return root


@pytest.mark.parametrize("storage", ["memory", "mmap", "stream"])
def test_image_folders_take_the_same_subset_in_every_storage(storage: str, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", n=40)
    ds = load_image_folder(root, resolution=8, max_images=10, storage=storage, workers=1, log=quiet)
    full = load_image_folder(root, resolution=8, storage="memory", log=quiet)
    keep = torch.tensor(seeded_subset(40, 10))
    got = ds.batch(torch.arange(10), device=CPU)["image"]
    assert torch.equal(got, full.batch(keep, device=CPU)["image"])
    assert not torch.equal(got, full.batch(torch.arange(10), device=CPU)["image"])
    assert ds.info.subset == "10 of 40, seeded (seed 0)"


@pytest.mark.parametrize("storage", ["memory", "stream"])
def test_pairs_and_photos_take_the_seeded_subset(storage: str, tmp_path: Path) -> None:
    opts: dict[str, Any] = dict(resolution=16, load_size=16, max_images=6, storage=storage, workers=1, log=quiet)
    pairs = load_pair_folders(_pair_folders(tmp_path / "pairs", 20), "train", **opts)
    assert pairs.names == [f"{i:02d}.png" for i in seeded_subset(20, 6)]
    assert pairs.info.subset == "6 of 20, seeded (seed 0)"
    photos_root = _photos(tmp_path / "photos", 40)  # no split folders: every 10th is held out for val
    photos = load_colorization(photos_root, "train", **opts)
    train_files = [f"p{i:03d}.png" for i in range(40) if i % 10 != 9]
    assert photos.names == [train_files[i] for i in seeded_subset(36, 6)]
    assert photos.info.subset == "6 of 36, seeded (seed 0)"


def test_run_json_records_the_subset(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    from gankit.launch import train

    cfg = tiny_cfg("gan", tmp_path, **{"data.max_images": 40, "train.max_steps": 1})
    train(cfg, tmp_path / "run", log=quiet)
    dataset = json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]
    assert dataset["subset"] == f"40 of {N_TRAIN}, seeded (seed 0)" and dataset["train_images"] == 40
