"""Paired (pix2pix) data: aligned A|B files, pair folders, joint augmentation, skips and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.base import crop_flip
from gankit.data.errors import DataError
from gankit.data.paired import PairedDataset, load_aligned, load_pair_folders

CPU = torch.device("cpu")
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def _solid(w: int, h: int, color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def _aligned(path: Path, left: tuple[int, int, int], right: tuple[int, int, int], w: int = 64, h: int = 32) -> None:
    img = Image.new("RGB", (w, h), right)
    img.paste(_solid(w // 2, h, left), (0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _color_of(x: torch.Tensor) -> torch.Tensor:
    """Mean colour of a [-1, 1] batch, back in 0..255."""
    return ((x.mean(dim=(0, 2, 3)) + 1) * 127.5).round()


# --- aligned ---------------------------------------------------------------------------------


def test_aligned_split_into_a_and_b(tmp_path: Path) -> None:
    for i in range(3):
        _aligned(tmp_path / "val" / f"{i}.png", RED, BLUE)
    ds = load_aligned(tmp_path, "val", resolution=16, log=lambda s: None)
    assert len(ds) == 3 and ds.names == ["0.png", "1.png", "2.png"]
    assert ds.info.channels == 3 and ds.info.in_channels == 3 and ds.info.resolution == 16 and ds.info.space == "rgb"
    b = ds.batch(torch.arange(3), device=CPU, generator=torch.Generator().manual_seed(0))
    assert b["input"].shape == (3, 3, 16, 16) and b["target"].shape == (3, 3, 16, 16)
    assert b["input"].dtype == torch.float32
    assert _color_of(b["input"]).tolist() == list(RED)
    assert _color_of(b["target"]).tolist() == list(BLUE)
    # Every pixel, not just the mean: no blue may leak into A at the cut.
    assert (b["input"][:, 0] > 0.95).all() and (b["input"][:, 2] < -0.95).all()


def test_direction_swaps_input_and_target(tmp_path: Path) -> None:
    _aligned(tmp_path / "val" / "x.png", RED, BLUE)
    ds = load_aligned(tmp_path, "val", resolution=16, direction="BtoA", log=lambda s: None)
    b = ds.batch(torch.tensor([0]), device=CPU, generator=None)
    assert _color_of(b["input"]).tolist() == list(BLUE)
    assert _color_of(b["target"]).tolist() == list(RED)
    with pytest.raises(ValueError, match="direction"):
        load_aligned(tmp_path, "val", resolution=16, direction="AB", log=lambda s: None)


def test_odd_width_and_corrupt_files_are_skipped_and_counted(tmp_path: Path) -> None:
    _aligned(tmp_path / "train" / "a.png", RED, BLUE)
    _aligned(tmp_path / "train" / "b_odd.png", RED, BLUE, w=65)
    (tmp_path / "train" / "c_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    lines: list[str] = []
    ds = load_aligned(tmp_path, "train", resolution=16, log=lines.append)
    assert ds.names == ["a.png"]
    assert len(lines) == 1
    assert "skipped 2 file(s)" in lines[0] and "odd width" in lines[0] and "b_odd.png" in lines[0]
    assert "c_bad.jpg" in lines[0]


def test_missing_or_empty_split_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"no image files in .*train"):
        load_aligned(tmp_path, "train", resolution=16)
    with pytest.raises(DataError, match=r"val"):
        load_aligned(tmp_path, "val", resolution=16)
    with pytest.raises(DataError, match="does not exist"):
        load_aligned(tmp_path / "nowhere", "train", resolution=16)


def test_only_corrupt_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no usable image pairs"):
        load_aligned(tmp_path, "train", resolution=16, log=lambda s: None)


def test_pairs_are_decoded_once(tmp_path: Path) -> None:
    _aligned(tmp_path / "train" / "a.png", RED, BLUE)
    ds = load_aligned(tmp_path, "train", resolution=16, load_size=20, log=lambda s: None)
    shutil.rmtree(tmp_path / "train")  # later epochs must come from memory
    b = ds.batch(torch.tensor([0]), device=CPU, generator=torch.Generator().manual_seed(1))
    assert _color_of(b["input"]).tolist() == list(RED)
    assert ds.a.dtype == torch.uint8 and ds.a.shape == (1, 3, 20, 20)


# --- joint augmentation ----------------------------------------------------------------------


def _random_pairs(n: int = 8, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    a = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return a, 255 - a  # B is a pixelwise function of A: aligned crops give target == -input exactly


def _window(stored: torch.Tensor, out: torch.Tensor) -> tuple[int, int, bool] | None:
    """The (top, left, flipped) window of ``stored`` (C, S, S) that ``out`` (C, R, R) is, if any."""
    r, s = out.shape[-1], stored.shape[-1]
    for top in range(s - r + 1):
        for left in range(s - r + 1):
            win = stored[:, top : top + r, left : left + r]
            if torch.equal(win, out):
                return top, left, False
            if torch.equal(win.flip(-1), out):
                return top, left, True
    return None


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().to(torch.uint8)


def test_joint_crop_and_flip_keep_a_and_b_aligned() -> None:
    a, b = _random_pairs()
    ds = PairedDataset(a, b, resolution=32, load_size=40, train=True, flip=True)
    batch = ds.batch(torch.arange(8), device=CPU, generator=torch.Generator().manual_seed(5))
    assert batch["input"].shape == (8, 3, 32, 32)
    assert torch.allclose(batch["target"], -batch["input"], atol=1e-6)
    windows = [_window(a[i], _to_uint8(batch["input"][i])) for i in range(8)]
    assert all(w is not None for w in windows), windows
    assert len({(t, l) for t, l, _ in windows}) > 1  # per-pair offsets, not one for the batch
    flips = [f for _, _, f in windows]
    assert any(flips) and not all(flips)


def test_generator_seed_drives_the_augmentation() -> None:
    a, b = _random_pairs()
    ds = PairedDataset(a, b, resolution=32, load_size=40)
    idx = torch.arange(8)
    x1 = ds.batch(idx, device=CPU, generator=torch.Generator().manual_seed(1))["input"]
    x1_again = ds.batch(idx, device=CPU, generator=torch.Generator().manual_seed(1))["input"]
    x2 = ds.batch(idx, device=CPU, generator=torch.Generator().manual_seed(2))["input"]
    assert torch.equal(x1, x1_again)
    assert not torch.equal(x1, x2)


def test_no_flip_and_no_generator() -> None:
    a, b = _random_pairs()
    ds = PairedDataset(a, b, resolution=32, load_size=40, flip=False)
    x = ds.batch(torch.arange(8), device=CPU, generator=torch.Generator().manual_seed(3))["input"]
    assert not any(_window(a[i], _to_uint8(x[i]))[2] for i in range(8))
    # Without a generator a training set gives the centre crop.
    centre = ds.batch(torch.arange(8), device=CPU, generator=None)["input"]
    assert torch.equal(_to_uint8(centre), a[:, :, 4:36, 4:36])


def test_val_split_is_never_augmented(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        arr = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        (tmp_path / "val").mkdir(exist_ok=True)
        Image.fromarray(arr).save(tmp_path / "val" / f"{i}.png")
    ds = load_aligned(tmp_path, "val", resolution=32, load_size=40, log=lambda s: None)
    assert ds.a.shape[-1] == 32  # stored at the model resolution, no jitter margin
    idx = torch.arange(4)
    with_gen = ds.batch(idx, device=CPU, generator=torch.Generator().manual_seed(9))
    without = ds.batch(idx, device=CPU, generator=None)
    assert torch.equal(with_gen["input"], without["input"]) and torch.equal(with_gen["target"], without["target"])
    first = np.array(Image.open(tmp_path / "val" / "0.png"))[:, :32]
    assert torch.equal(_to_uint8(with_gen["input"][0]), torch.from_numpy(first).permute(2, 0, 1))


def test_crop_flip_rejects_too_small() -> None:
    with pytest.raises(ValueError, match="cannot crop"):
        crop_flip(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 16, None, flip=False)


def test_dataset_resizes_lists_of_any_size_once() -> None:
    a = [torch.full((3, 10, 20), 200, dtype=torch.uint8), torch.full((3, 30, 30), 50, dtype=torch.uint8)]
    b = [torch.full((1, 10, 20), 9, dtype=torch.uint8), torch.full((1, 30, 30), 9, dtype=torch.uint8)]
    ds = PairedDataset(a, b, resolution=16, train=False, names=["p", "q"])
    assert ds.a.shape == (2, 3, 16, 16) and ds.b.shape == (2, 1, 16, 16)
    assert ds.info.channels == 1 and ds.info.in_channels == 3
    assert (ds.a[0] == 200).all() and (ds.a[1] == 50).all()
    assert len(ds.subset(1)) == 1 and ds.subset(1).names == ["p"]


# --- pair folders ----------------------------------------------------------------------------


def _pair_folders(root: Path, stems: list[str], a_name: str = "a", b_name: str = "b") -> None:
    for s in stems:
        for sub, color in ((a_name, GREEN), (b_name, BLUE)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            _solid(24, 20, color).save(root / sub / f"{s}.png")


def test_pair_folders_with_split_folders_and_upper_case(tmp_path: Path) -> None:
    _pair_folders(tmp_path / "train", ["x", "y"], "A", "B")
    _pair_folders(tmp_path / "val", ["z"], "A", "B")
    ds = load_pair_folders(tmp_path, "train", resolution=16, log=lambda s: None)
    assert ds.names == ["x.png", "y.png"]
    b = ds.batch(torch.arange(2), device=CPU, generator=None)
    assert _color_of(b["input"]).tolist() == list(GREEN) and _color_of(b["target"]).tolist() == list(BLUE)
    assert load_pair_folders(tmp_path, "val", resolution=16, log=lambda s: None).names == ["z.png"]
    with pytest.raises(DataError, match="test"):
        load_pair_folders(tmp_path, "test", resolution=16)


def test_pair_folders_without_splits_hold_out_every_tenth_for_val(tmp_path: Path) -> None:
    stems = [f"{i:02d}" for i in range(20)]
    _pair_folders(tmp_path, stems)
    lines: list[str] = []
    train = load_pair_folders(tmp_path, "train", resolution=8, log=lines.append)
    assert lines == []
    val = load_pair_folders(tmp_path, "val", resolution=8, log=lines.append)
    assert [n[:2] for n in val.names] == ["09", "19"]  # the rule of gankit.data.splits, as for photos
    assert [n[:2] for n in train.names] == [s for s in stems if s not in ("09", "19")]
    expected = "held out every 10th pair of train (2 of 20, deterministic by name)"
    assert train.info.val_source == val.info.val_source == expected
    assert len(lines) == 1 and "no val/ split" in lines[0] and "2 of 20" in lines[0]  # said once, when val is loaded


def test_missing_partner_names_file_and_folder(tmp_path: Path) -> None:
    _pair_folders(tmp_path, ["one", "two"])
    (tmp_path / "b" / "two.png").unlink()
    with pytest.raises(DataError) as e:
        load_pair_folders(tmp_path, "train", resolution=8)
    msg = str(e.value)
    assert "two.png" in msg and str(tmp_path / "b") in msg and "no partner" in msg


def test_size_mismatch_names_both_files_and_sizes(tmp_path: Path) -> None:
    _pair_folders(tmp_path / "train", ["p"])
    _solid(30, 20, BLUE).save(tmp_path / "train" / "b" / "p.png")
    with pytest.raises(DataError) as e:
        load_pair_folders(tmp_path, "train", resolution=8)
    msg = str(e.value)
    assert str(tmp_path / "train" / "a" / "p.png") in msg and str(tmp_path / "train" / "b" / "p.png") in msg
    assert "24x20" in msg and "30x20" in msg


def test_pair_folder_corrupt_file_skips_its_pair(tmp_path: Path) -> None:
    _pair_folders(tmp_path / "train", ["good", "bad"])
    (tmp_path / "train" / "b" / "bad.png").write_bytes(b"\x89PNG broken")
    lines: list[str] = []
    ds = load_pair_folders(tmp_path, "train", resolution=8, log=lines.append)
    assert ds.names == ["good.png"]
    assert len(lines) == 1 and "skipped 1 file(s)" in lines[0] and "bad.png" in lines[0]


def test_pair_folders_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="no a/ and b/ subfolders"):
        load_pair_folders(tmp_path, "train", resolution=8)
