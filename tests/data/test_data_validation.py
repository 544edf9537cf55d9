"""Paired data without a val split: the facades release of the course notes (train/a, train/b, test/a,
test/b), a handful of photos, train/ + test/ only. One rule (gankit.data.splits): val/ if present,
else every 10th training item held out, else (fewer than 10) validation on the training items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_cfg
from PIL import Image

from gankit.config import DataConfig
from gankit.data import build_dataset, infer_dataset_name
from gankit.data.facades import CMP_PALETTE
from gankit.data.splits import holdout

CPU = torch.device("cpu")
PALETTE = np.array(list(CMP_PALETTE.values()))


def _label_map(path: Path, seed: int) -> None:
    """Quadrants of CMP palette colours, as the release's label maps."""
    rng = np.random.default_rng(seed)
    colours = PALETTE[rng.choice(len(PALETTE), 4, replace=False)]
    arr = np.empty((40, 40, 3), dtype=np.uint8)
    arr[:20, :20], arr[:20, 20:], arr[20:, :20], arr[20:, 20:] = colours
    Image.fromarray(arr).save(path, quality=95)


def _photo(path: Path, seed: int) -> None:
    """Unsaturated noise around a brownish grey, like a photo of a facade."""
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal((140, 120, 100), 25, (40, 40, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=95)


def facades_release(root: Path, n_train: int = 12, n_test: int = 3, *, labels_in: str = "b") -> Path:
    """The release as the course notes lay it out: train/a, train/b, test/a, test/b, no val/."""
    for split, n in (("train", n_train), ("test", n_test)):
        for side in "ab":
            (root / split / side).mkdir(parents=True)
        for i in range(n):
            name = f"{split}{i:02d}.jpg"
            _photo(root / split / ("a" if labels_in == "b" else "b") / name, seed=i)
            _label_map(root / split / labels_in / name, seed=100 + i)
    return root


def _palette_share(x: torch.Tensor) -> float:
    """The share of pixels of a [-1, 1] (3, H, W) image within JPEG error of a palette colour."""
    px = ((x.permute(1, 2, 0).reshape(-1, 3) + 1) * 127.5).numpy()
    return float((np.abs(px[:, None] - PALETTE[None]).max(-1).min(-1) <= 24).mean())


@pytest.mark.parametrize("labels_in", ["b", "a"])
def test_facades_release_layout_holds_out_every_tenth_train_pair(labels_in: str, tmp_path: Path) -> None:
    root = facades_release(tmp_path / "facades", labels_in=labels_in)
    assert infer_dataset_name(str(root), "facades") == ("facades", str(root))
    cfg = DataConfig(name="facades", path=str(root), resolution=16, load_size=16)
    lines: list[str] = []
    train = build_dataset(cfg, "train", log=lines.append)
    val = build_dataset(cfg, "val", log=lines.append)
    test = build_dataset(cfg, "test", log=lines.append)
    assert val.names == ["train09.jpg"] and train.names == [f"train{i:02d}.jpg" for i in range(12) if i != 9]
    assert test.names == ["test00.jpg", "test01.jpg", "test02.jpg"]  # test/ stays the test set
    source = "held out every 10th pair of train (1 of 12, deterministic by name)"
    for ds, n in ((train, 11), (val, 1)):
        assert (ds.info.dataset, ds.info.num_images, ds.info.val_source) == ("facades", n, source)
        assert ds.info.source == str(root.resolve())
    assert any(f"label maps in {labels_in}/" in line for line in lines)  # which side, and how it was told
    assert sum("no val/ split" in line and source in line for line in lines) == 1
    # data.direction=AtoB means label map -> photo, whichever folder holds the label maps
    b = train.batch(torch.arange(len(train)), device=CPU, generator=None)
    # (resizing 40 -> 16 blends the quadrant borders, so about 3/4 of a label map stays pure palette)
    assert min(map(_palette_share, b["input"])) > 0.6 and max(map(_palette_share, b["target"])) < 0.1


def test_pair_folders_name_on_the_release_layout_needs_no_val(tmp_path: Path) -> None:
    root = facades_release(tmp_path / "rel", n_train=20)
    cfg = DataConfig(name="pair-folders", path=str(root), resolution=16, load_size=16)
    train, val = build_dataset(cfg, "train", log=lambda m: None), build_dataset(cfg, "val", log=lambda m: None)
    assert val.names == ["train09.jpg", "train19.jpg"] and len(train) == 18
    assert not set(train.names) & set(val.names)
    assert train.info.dataset == "pair-folders" and "2 of 20" in val.info.val_source


def test_pairs_that_are_not_facades_keep_the_direction_asked_for(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    for side in "ab":
        (root / "train" / side).mkdir(parents=True)
        for i in range(3):
            _photo(root / "train" / side / f"{i}.jpg", seed=i + (10 if side == "b" else 0))
    # given to the pix2pix preset (default facades), photos on both sides: not facades, no swap
    assert infer_dataset_name(str(root), "facades") == ("pair-folders", str(root))


def test_an_aligned_release_without_val_holds_out_of_train(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    for i in range(10):
        Image.new("RGB", (32, 16), (i * 20, 0, 0)).save(tmp_path / "train" / f"{i}.png")
    cfg = DataConfig(name="aligned", path=str(tmp_path), resolution=8)
    lines: list[str] = []
    train, val = build_dataset(cfg, "train", log=lines.append), build_dataset(cfg, "val", log=lines.append)
    assert val.names == ["9.png"] and len(train) == 9 and "1 of 10" in val.info.val_source
    assert lines[0].startswith("data.storage=auto -> memory: 9 image pairs decode to")  # said for train only
    assert len(lines) == 2 and "no val/ split" in lines[1]


def _colour_photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)


def test_six_colour_photos_validate_on_the_training_photos(tmp_path: Path) -> None:
    for i in range(6):
        _colour_photo(tmp_path / "mine" / f"p{i}.jpg", seed=i)
    cfg = DataConfig(name="colorization", path=str(tmp_path / "mine"), resolution=16, load_size=16)
    lines: list[str] = []
    train = build_dataset(cfg, "train", log=lines.append)
    val = build_dataset(cfg, "val", log=lines.append)
    assert train.names == val.names == [f"p{i}.jpg" for i in range(6)]
    assert val.info.val_source == train.info.val_source == "train (too few photos to hold out: 6 < 10)"
    assert (val.info.dataset, val.info.num_images) == ("colorization", 6)
    assert len(lines) == 2 and "measure fit, not generalization" in lines[1]
    assert val.lab.shape[-1] == 16 and not val.flip  # validation is never augmented


def test_photos_in_train_and_test_without_val_keep_test_out_of_training(tmp_path: Path) -> None:
    for i in range(10):
        _colour_photo(tmp_path / "train" / f"t{i}.png", seed=i)
    for i in range(2):
        _colour_photo(tmp_path / "test" / f"x{i}.png", seed=50 + i)
    cfg = DataConfig(name="colorization", path=str(tmp_path), resolution=16, load_size=16)
    train, val = build_dataset(cfg, "train", log=lambda m: None), build_dataset(cfg, "val", log=lambda m: None)
    test = build_dataset(cfg, "test", log=lambda m: None)
    assert val.names == ["t9.png"] and train.names == [f"t{i}.png" for i in range(9)]
    assert test.names == ["x0.png", "x1.png"]


def test_a_few_pairs_validate_on_train_and_the_rule_is_deterministic() -> None:
    assert holdout(6, what="pairs").on_train and holdout(6).val == list(range(6))
    plan = holdout(400)
    assert plan.val == list(range(9, 400, 10)) and len(plan.train) == 360
    assert holdout(400) == plan  # no seed involved


@pytest.mark.parametrize("preset", ["pix2pix", "colorize"])
def test_paired_families_train_without_a_val_split(preset: str, tmp_path: Path, no_loss_plot: None) -> None:
    from gankit.launch import train

    if preset == "pix2pix":
        data = facades_release(tmp_path / "facades", n_train=4, n_test=1)
    else:
        data = tmp_path / "photos"
        for i in range(6):
            _colour_photo(data / f"p{i}.jpg", seed=i)
    cfg = make_tiny_cfg(preset, tmp_path, **{"data.path": str(data), "train.max_steps": 2})
    lines: list[str] = []
    train(cfg, tmp_path / "run", log=lines.append)
    info = torch.load(tmp_path / "run" / "checkpoints" / "G_last.pt", weights_only=True)["info"]
    what = "pairs" if preset == "pix2pix" else "photos"
    assert info["val_source"] == f"train (too few {what} to hold out: {4 if preset == 'pix2pix' else 6} < 10)"
    assert any("no val/ split" in line for line in lines)
