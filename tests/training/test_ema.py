"""Generator EMA: the shadow is the running average computed by hand, moves only on generator
steps, is what snapshots hold, and survives an interrupted run bitwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from gankit.training.ema import EMA
from gankit.training.loop import Trainer

DECAY = 0.9


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_shadow_is_the_running_average() -> None:
    model = _model()
    ema = EMA(model, DECAY)
    expected = {k: p.detach().clone() for k, p in model.named_parameters()}
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * (step + 1))
        model(torch.randn(8, 3))  # train mode: moves the BatchNorm running statistics
        ema.update(model)
        for k, p in model.named_parameters():
            expected[k] = DECAY * expected[k] + (1 - DECAY) * p.detach()
        shadow = dict(ema.shadow.named_parameters())
        for k in expected:
            assert torch.allclose(shadow[k], expected[k], rtol=1e-6, atol=1e-6), (step, k)
        # buffers are not averaged: the shadow uses the model's current statistics
        for (k, b), (_, b_ema) in zip(model.named_buffers(), ema.shadow.named_buffers()):
            assert torch.equal(b, b_ema), k
    # after 5 steps of moves of 1..5 the average lags the weights, so this is not a plain copy
    assert not torch.allclose(dict(ema.shadow.named_parameters())["0.weight"], model[0].weight)
    assert not ema.shadow.training and not any(p.requires_grad for p in ema.shadow.parameters())


def test_shadow_is_a_separate_copy() -> None:
    model = _model()
    ema = EMA(model, DECAY)
    before = ema.shadow[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert torch.equal(ema.shadow[0].weight, before)  # untouched until update()
    ema2 = EMA(_model(), DECAY)
    ema2.load_state_dict(ema.state_dict())
    assert torch.equal(ema2.shadow[0].weight, before)


def test_trainer_updates_ema_on_generator_steps_only(tmp_path: Path, tiny_cfg) -> None:
    cfg = tiny_cfg("gan", tmp_path, **{"train.ema_decay": DECAY})
    tr = Trainer(cfg, tmp_path / "run", log=lambda m: None)
    assert tr.ema is not None
    batch = tr.data.batch(tr.sampler.indices(0), device=tr.device, generator=None)
    shadow0 = {k: p.clone() for k, p in tr.ema.shadow.named_parameters()}
    tr.train_step(batch, g_step=False)
    assert all(torch.equal(p, shadow0[k]) for k, p in tr.ema.shadow.named_parameters())
    tr.train_step(batch, g_step=True)
    for k, p in tr.G.named_parameters():
        want = DECAY * shadow0[k] + (1 - DECAY) * p.detach()
        assert torch.allclose(dict(tr.ema.shadow.named_parameters())[k], want, rtol=1e-6, atol=1e-7), k
    snap = tr.snapshot()
    assert snap["ema"] is True
    assert all(torch.equal(snap["G"][k], v) for k, v in tr.ema.shadow.state_dict().items())


@pytest.mark.parametrize("preset", ["gan", "dcgan"])
def test_resume_keeps_the_ema(preset: str, tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """N steps, stop, resume to 2N: the EMA (and the G_last snapshot made from it) equals that of 2N
    straight steps, bitwise."""
    n = 7  # 5 steps per epoch (100 IDX images or the 40 of the dcgan folder): N crosses an epoch boundary
    batch_size = {"gan": 20, "dcgan": 8}[preset]

    def cfg(max_steps: int):
        return tiny_cfg(
            preset,
            tmp_path,
            **{
                "data.max_images": 100,
                "train.batch_size": batch_size,
                "train.epochs": 3,
                "train.max_steps": max_steps,
                "train.ema_decay": DECAY,
            },
        )

    quiet = lambda m: None  # noqa: E731
    straight = Trainer(cfg(2 * n), tmp_path / "A", log=quiet)
    assert straight.steps_per_epoch == 5 and straight.fit().step == 2 * n
    first = Trainer(cfg(n), tmp_path / "B", log=quiet)
    assert first.fit().step == n
    half = {k: v.clone() for k, v in first.ema.state_dict().items()}
    resumed = Trainer(cfg(2 * n), tmp_path / "B", resume=True, log=quiet)
    assert all(torch.equal(resumed.ema.state_dict()[k], v) for k, v in half.items())  # restored, not re-copied from G
    assert not all(torch.equal(resumed.G.state_dict()[k], v) for k, v in half.items() if v.is_floating_point())
    resumed.fit()
    want = straight.ema.state_dict()
    got = resumed.ema.state_dict()
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []
    assert not all(torch.equal(half[k], want[k]) for k in want)  # the EMA moved in the second half
    snap = torch.load(tmp_path / "B" / "checkpoints" / "G_last.pt", weights_only=True)
    straight_snap = torch.load(tmp_path / "A" / "checkpoints" / "G_last.pt", weights_only=True)
    assert snap["ema"] is True and all(torch.equal(snap["G"][k], straight_snap["G"][k]) for k in want)
    # the EMA's weights; a BatchNorm generator's buffers hold its standing statistics (train.sampling)
    assert all(torch.equal(snap["G"][k], p) for k, p in straight.ema.shadow.named_parameters())
