"""Training with ``train.augment`` (gankit.augment) through the real Trainer: every family trains with
DiffAugment, D's step and G's both judge augmented images, and ADA's p follows D's signs on reals as
logged. Exact resume with augmentation on: tests/training/test_resume.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gankit.augment import AdaptiveAugment, DiffAugment
from gankit.families import FAMILIES
from gankit.training.loop import Trainer
from gankit.training.stats import read_jsonl


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_trains_with_diffaug(
    name: str, tmp_path: Path, tiny_cfg, fake_paired_data, no_loss_plot, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_call = DiffAugment.__call__

    def counting(self, x, generator=None, *, cond=None):
        calls.append(x.shape[0])
        return real_call(self, x, generator, cond=cond)

    monkeypatch.setattr(DiffAugment, "__call__", counting)
    cfg = tiny_cfg(name, tmp_path, **{"train.augment": "diffaug", "train.epochs": 3, "train.max_steps": 3})
    if FAMILIES[name].kind == "paired":
        fake_paired_data(cfg)
    result = Trainer(cfg, tmp_path / "run", log=lambda msg: None).fit()
    assert result.step == 3
    assert len(calls) == 3 * 3  # per step: reals and fakes in D's step, fakes in G's
    rows = read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(v) for r in rows for v in r.values())


def test_ada_p_follows_the_logged_signs(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """Replaying the logged d_real_sign of each step through ADA's rule gives the logged p."""
    lines: list[str] = []
    overrides = {"train.augment": "ada", "train.ada_kimg": 0.1, "train.ada_target": 0.3, "train.epochs": 2}
    cfg = tiny_cfg("gan", tmp_path, **overrides)
    tr = Trainer(cfg, tmp_path / "run", log=lines.append)
    tr.fit()
    rows = read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert len(rows) == 20  # 2 epochs of 10 steps; train.log_every = 1: a row per step
    replay = AdaptiveAugment(target=0.3, kimg=0.1, images_per_step=20)
    for row in rows:
        replay.update(torch.tensor(row["d_real_sign"]))
        assert row["ada_p"] == pytest.approx(replay.p, abs=1e-7), row
    assert len({r["ada_p"] for r in rows}) > 1, "p never moved"
    assert tr.ada is not None and tr.ada.p == replay.p
    assert any("ada_p" in line for line in lines if line.startswith("epoch"))  # shown in the epoch line
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["ada"]["p"] == replay.p
