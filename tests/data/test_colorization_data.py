"""Colorization data: skipping grayscale/corrupt/tiny photos, splits, and Lab batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.color import rgb_to_lab
from gankit.data.colorization import ColorizationDataset, load_colorization
from gankit.data.errors import DataError

CPU = torch.device("cpu")


def _photo(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _quiet(_: str) -> None:
    pass


def test_skips_grayscale_corrupt_and_tiny_with_one_summary(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for i in range(3):
        _photo(root / "train" / f"c{i}.png", i)
    (root / "val").mkdir()
    Image.new("L", (40, 40), 128).save(root / "train" / "g_mode_l.png")
    grey = np.repeat(np.random.default_rng(5).integers(0, 256, (40, 40, 1), dtype=np.uint8), 3, axis=2)
    Image.fromarray(grey).save(root / "train" / "g_rgb_equal.png")  # RGB file, no colour in it
    (root / "train" / "x_corrupt.jpg").write_bytes(b"\xff\xd8\xff not really")
    _photo(root / "train" / "y_tiny.png", 9, size=(20, 20))
    lines: list[str] = []
    ds = load_colorization(root, "train", resolution=16, log=lines.append)
    assert ds.names == ["c0.png", "c1.png", "c2.png"]
    assert len(lines) == 1
    assert "skipped 4 file(s)" in lines[0] and "2 grayscale" in lines[0] and "1 too small" in lines[0]
    assert "x_corrupt.jpg" in lines[0]


def test_batch_shapes_ranges_and_info(tmp_path: Path) -> None:
    for i in range(4):
        _photo(tmp_path / "train" / f"{i}.png", i)
    (tmp_path / "val").mkdir()
    ds = load_colorization(tmp_path, "train", resolution=16, load_size=24, log=_quiet)
    assert ds.lab.shape == (4, 3, 24, 24) and ds.lab.dtype == torch.float16  # converted once, at load
    info = ds.info
    assert (info.channels, info.in_channels, info.resolution, info.space) == (2, 1, 16, "lab")
    b = ds.batch(torch.arange(4), device=CPU, generator=torch.Generator().manual_seed(0))
    assert b["input"].shape == (4, 1, 16, 16) and b["target"].shape == (4, 2, 16, 16)
    assert b["input"].min() >= -1 and b["input"].max() <= 1
    assert b["target"].abs().max() <= 1 and b["target"].abs().max() > 0.1  # real colour, not grey


def test_batch_L_equals_lab_of_the_stored_photo() -> None:
    g = torch.Generator().manual_seed(0)
    photos = torch.randint(0, 256, (3, 3, 16, 16), generator=g, dtype=torch.uint8)
    ds = ColorizationDataset(photos, resolution=16, flip=False)
    b = ds.batch(torch.tensor([2, 0]), device=CPU, generator=torch.Generator().manual_seed(1))
    lab = rgb_to_lab(photos[[2, 0]].float() / 255)
    # float16 cache: model units round by at most 2**-12, i.e. L* by 0.0122 and a*, b* by 0.0269
    assert torch.allclose((b["input"] + 1) * 50, lab[:, :1], atol=0.0123, rtol=0)
    assert torch.allclose(b["target"] * 110, lab[:, 1:], atol=0.027, rtol=0)


def test_random_crop_and_flip_are_windows_of_the_photo() -> None:
    g = torch.Generator().manual_seed(0)
    photos = torch.randint(0, 256, (6, 3, 20, 20), generator=g, dtype=torch.uint8)
    ds = ColorizationDataset(photos, resolution=16, load_size=20, flip=True)
    b = ds.batch(torch.arange(6), device=CPU, generator=torch.Generator().manual_seed(4))
    got = torch.cat([b["input"], b["target"]], 1)
    lab = ds.lab.float()  # cropping and flipping move the converted values; they never change them
    seen_flip = set()
    for i in range(6):
        windows = [(t, l, lab[i, :, t : t + 16, l : l + 16]) for t in range(5) for l in range(5)]
        match = [(t, l, f) for t, l, w in windows for f in (False, True) if torch.equal(w.flip(-1) if f else w, got[i])]
        assert match, f"photo {i} is not a crop of the stored photo"
        seen_flip.add(match[0][2])
    assert seen_flip == {False, True}
    other = ds.batch(torch.arange(6), device=CPU, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(other["input"], b["input"])


def test_flips_without_crop_mirror_exactly_the_chosen_photos() -> None:
    photos = torch.randint(0, 256, (8, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ds = ColorizationDataset(photos, resolution=16, flip=True)
    b = ds.batch(torch.arange(8), device=CPU, generator=torch.Generator().manual_seed(3))
    got = torch.cat([b["input"], b["target"]], 1)
    lab = ds.lab.float()
    flipped = [bool(torch.equal(got[i], lab[i].flip(-1))) for i in range(8)]
    kept = [bool(torch.equal(got[i], lab[i])) for i in range(8)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each photo: either mirrored or as stored
    assert 0 < sum(flipped) < 8
    assert torch.equal(ds.lab.float(), lab)  # the cache itself is untouched


def test_flat_folder_split_every_tenth_to_val_recursive(tmp_path: Path) -> None:
    for i in range(20):
        _photo(tmp_path / ("sub" if i % 2 else "") / f"{i:02d}.png", i)
    lines: list[str] = []
    train = load_colorization(tmp_path, "train", resolution=16, log=lines.append)
    val = load_colorization(tmp_path, "val", resolution=16, log=lines.append)
    every = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png"))
    assert val.names == [every[9], every[19]]
    assert train.names == [n for i, n in enumerate(every) if i % 10 != 9]
    assert len(lines) == 1 and "no val/ split" in lines[0] and "2 of 20" in lines[0]  # said once, by val
    assert train.info.val_source == val.info.val_source
    assert val.info.val_source == "held out every 10th photo of train (2 of 20, deterministic by name)"
    assert val.lab.shape[-1] == 16 and not val.flip
    test = load_colorization(tmp_path, "test", resolution=16, log=lines.append)
    assert test.names == val.names and len(lines) == 2
    assert len(load_colorization(tmp_path, "train", resolution=16, max_images=5, log=_quiet)) == 5


def test_empty_or_colourless_folders_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no image files .*empty"):
        load_colorization(tmp_path / "empty", "train", resolution=16)
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(3):
        Image.new("L", (40, 40), 50 * i).save(grey / f"{i}.png")
    with pytest.raises(DataError, match=r"no usable colour photos in .*grey"):
        load_colorization(grey, "train", resolution=16, log=_quiet)
    with pytest.raises(DataError, match="does not exist"):
        load_colorization(tmp_path / "nope", "train", resolution=16)
    (tmp_path / "split" / "train").mkdir(parents=True)
    (tmp_path / "split" / "val").mkdir()
    with pytest.raises(DataError, match="test"):
        load_colorization(tmp_path / "split", "test", resolution=16)
