"""A run's disk use: ``train.keep_prev_state`` and the one warning when checkpoints would crowd the disk."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from gankit.run import save_training_state
from gankit.training import checkpoint
from gankit.training.checkpoint import expected_disk_use
from gankit.training.loop import Trainer

Usage = namedtuple("Usage", "total used free")


def _train(cfg, out: Path) -> list[str]:
    lines: list[str] = []
    Trainer(cfg, out, log=lines.append).fit()
    return lines


def _disk_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "checkpoints will take" in line]


def test_keep_prev_state_false_keeps_only_last_pt(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """Two epochs = two full states written; with keep_prev_state=false only last.pt (the newest) stays."""
    cfg = tiny_cfg("gan", tmp_path, **{"train.epochs": 2, "train.keep_prev_state": False})
    _train(cfg, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == ["G_epoch0001.pt", "G_epoch0002.pt", "G_last.pt", "last.pt"]
    assert torch.load(ckpt / "last.pt", weights_only=True)["step"] == 20  # 200 images / 20 = 10 steps per epoch


def test_keep_prev_false_removes_an_earlier_prev_and_writes_atomically(tmp_path: Path, monkeypatch) -> None:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    save_training_state(ckpt, {"step": 1})
    save_training_state(ckpt, {"step": 2})
    assert (ckpt / "last.prev.pt").exists()  # the default: the previous state is kept

    written: list[Path] = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: (written.append(Path(f.name)), real_save(obj, f)))
    save_training_state(ckpt, {"step": 3}, keep_prev=False)
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt"]
    assert torch.load(ckpt / "last.pt", weights_only=True) == {"step": 3}
    assert len(written) == 1 and written[0].name != "last.pt"  # written to a temporary file, then renamed


def test_expected_disk_use_matches_the_files_of_a_run(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """The estimate from the first state (README's "Disk" arithmetic) is what the run leaves on disk."""
    cfg = tiny_cfg("gan", tmp_path, **{"train.epochs": 3, "train.keep_snapshots": 2})
    _train(cfg, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints"
    use = expected_disk_use(torch.load(ckpt / "last.pt", weights_only=True))
    assert (use["states"], use["snapshots"], use["epoch_snapshots"]) == (2, 3, 2)  # G_last + 2 epoch snapshots
    on_disk = sum(p.stat().st_size for p in ckpt.iterdir())
    assert use["total"] == pytest.approx(on_disk, rel=0.05)
    assert use["full"] == pytest.approx((ckpt / "last.pt").stat().st_size, rel=0.05)
    # without keep_prev_state: one full state less
    one = expected_disk_use(torch.load(ckpt / "last.pt", weights_only=True), keep_prev=False)
    assert one["total"] == use["total"] - use["full"]


def test_a_crowded_disk_is_warned_about_once(tmp_path: Path, tiny_cfg, no_loss_plot, monkeypatch) -> None:
    """Checkpoints over 25% of the free disk: one line before the first full state, naming the sizes
    and the options that cut them; nothing when there is room."""
    cfg = tiny_cfg("gan", tmp_path, **{"train.epochs": 2})
    assert _disk_lines(_train(cfg, tmp_path / "roomy")) == []  # the test machine's real free disk

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 10**6, 10**6))  # 1 MB free
    lines = _train(tiny_cfg("gan", tmp_path, **{"train.epochs": 2}), tmp_path / "crowded")
    (line,) = _disk_lines(lines)  # two full states were written, one warning
    assert line.startswith("warning: ") and "2 full states of" in line and "has 977 KiB free" in line
    assert "train.keep_prev_state=false" in line and "train.keep_snapshots=0" in line
    assert lines.index(line) < next(i for i, m in enumerate(lines) if m.startswith("epoch 1/"))

    lines = _train(tiny_cfg("gan", tmp_path, **{"train.epochs": 2, "train.keep_prev_state": False}), tmp_path / "one")
    (line,) = _disk_lines(lines)
    assert "1 full state of" in line and "keep_prev_state" not in line  # already cut


def test_disk_warning_threshold(tmp_path: Path, monkeypatch) -> None:
    state = {"step": 1, "G": {"w": torch.zeros(1000)}, "D": {"w": torch.zeros(1000)}, "config": {}, "info": {}}
    total = expected_disk_use(state)["total"]  # 2 states x (G + D, each with 2 Adam moments) + G_last
    assert total == 2 * 3 * 8000 + 4000
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(0, 0, 4 * total))
    assert checkpoint.disk_use_warning(tmp_path, state) is None  # exactly 25%
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(0, 0, 4 * total - 4))
    assert checkpoint.disk_use_warning(tmp_path, state) is not None
