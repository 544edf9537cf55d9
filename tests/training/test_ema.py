"""Generator EMA: the shadow is the running average computed by hand (constant decay, or StyleGAN2-ADA's
half-life in images with its ramp-up), moves only on generator steps, is what snapshots hold, and
survives an interrupted run bitwise."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gankit.training.ema import EMA, halflife_decay
from gankit.training.loop import Trainer

DECAY = 0.9
CONSTANT = {"train.ema_decay": DECAY, "train.ema_halflife_kimg": 0.0}
"""A constant decay (the gan preset's half-life off: the two are exclusive)."""
RAMPUP = {"train.ema_halflife_kimg": 0.1, "train.ema_rampup": 0.5}
"""A half-life of 100 images, ramped up over the first 200: tiny runs of 20-image batches cross both."""


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _assert_shadow(ema: EMA, model: nn.Module, expected: dict[str, torch.Tensor], step: int) -> None:
    """The shadow's parameters are ``expected``; its buffers (BatchNorm running statistics) are not
    averaged but the model's current ones."""
    shadow = dict(ema.shadow.named_parameters())
    for k in expected:
        assert torch.allclose(shadow[k], expected[k], rtol=1e-6, atol=1e-6), (step, k)
    for (k, b), (_, b_ema) in zip(model.named_buffers(), ema.shadow.named_buffers()):
        assert torch.equal(b, b_ema), k


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
        _assert_shadow(ema, model, expected, step)
    # after 5 steps of moves of 1..5 the average lags the weights, so this is not a plain copy
    assert not torch.allclose(dict(ema.shadow.named_parameters())["0.weight"], model[0].weight)
    assert not ema.shadow.training and not any(p.requires_grad for p in ema.shadow.parameters())


def test_halflife_decay_is_stylegan2_adas_beta() -> None:
    """``0.5 ** (batch / min(halflife, seen * rampup))``: 0 at the start, rising during the ramp-up, then constant."""
    kimg, rampup, batch = 10.0, 0.05, 100
    assert halflife_decay(batch, 0, kimg, rampup) == 0.0  # half-life 0: the first update copies G
    assert halflife_decay(batch, 100, kimg, rampup) == pytest.approx(0.5 ** (100 / 5))
    assert halflife_decay(batch, 60_000, kimg, rampup) == pytest.approx(0.5 ** (100 / 3_000))  # one epoch in
    assert halflife_decay(batch, 200_000, kimg, rampup) == pytest.approx(0.5 ** (100 / 10_000))  # the cap reached
    assert halflife_decay(batch, 10**9, kimg, rampup) == halflife_decay(batch, 200_000, kimg, rampup)
    assert halflife_decay(batch, 0, kimg, 0.0) == pytest.approx(0.5 ** (100 / 10_000))  # no ramp-up
    assert halflife_decay(batch * 5, 0, kimg, 0.0) == pytest.approx(halflife_decay(batch, 0, kimg, 0.0) ** 5)
    # the constant decay that matches a half-life: 0.999 per step of 100 images is ~69 kimg
    assert halflife_decay(batch, 0, 100 * math.log(0.5) / math.log(0.999) / 1000) == pytest.approx(0.999)


def test_halflife_shadow_is_the_running_average() -> None:
    """Three updates after 0, 20 and 40 images, decays 0, 0.5 ** (20 / 10), 0.5 ** (20 / 20) by hand."""
    model = _model()
    ema = EMA(model, halflife_kimg=0.1, rampup=0.5)
    expected = {k: torch.zeros_like(p) for k, p in model.named_parameters()}  # the first update replaces it
    for step, decay in enumerate([0.0, 0.25, 0.5]):
        assert ema.decay_at(20 * step, 20) == decay
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(8, 3))  # moves the BatchNorm running statistics
        ema.update(model, images_seen=20 * step, batch_images=20)
        for k, p in model.named_parameters():
            expected[k] = decay * expected[k] + (1 - decay) * p.detach()
        _assert_shadow(ema, model, expected, step)
    with pytest.raises(ValueError, match="batch_images"):
        ema.update(model)  # a half-life needs the update's images


def test_trainer_uses_images_seen_and_n_critic(tmp_path: Path, tiny_cfg) -> None:
    """Through the Trainer's steps: the decay of each generator step is halflife_decay of the images seen
    before it (the data position) over the n_critic batches since the previous generator step."""
    cfg = tiny_cfg("gan", tmp_path, **RAMPUP, **{"loss.n_critic": 2})
    tr = Trainer(cfg, tmp_path / "run", log=lambda m: None)
    assert tr.ema is not None and tr.ema.halflife_kimg == 0.1
    expected = {k: p.detach().clone() for k, p in tr.G.named_parameters()}
    decays = []
    for _ in range(6):
        batch = tr.data.batch(tr.sampler.indices(tr.position), device=tr.device, generator=None)
        g_step = (tr.step + 1) % 2 == 0
        tr.train_step(batch, g_step=g_step)
        if g_step:
            decay = halflife_decay(40, 20 * tr.position, 0.1, 0.5)
            decays.append(decay)
            for k, p in tr.G.named_parameters():
                expected[k] = decay * expected[k] + (1 - decay) * p.detach()
        tr.step += 1
        tr.position += 1
    assert decays == pytest.approx([0.5 ** (40 / 10), 0.5 ** (40 / 30), 0.5 ** (40 / 50)])
    for k, p in tr.ema.shadow.named_parameters():
        assert torch.allclose(p, expected[k], rtol=1e-5, atol=1e-6), k
    tr.close()


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
    cfg = tiny_cfg("gan", tmp_path, **CONSTANT)
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


@pytest.mark.parametrize("ema", ["decay", "rampup"])
@pytest.mark.parametrize("preset", ["gan", "dcgan"])
def test_resume_keeps_the_ema(preset: str, ema: str, tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """N steps, stop, resume to 2N: the EMA (and the G_last snapshot made from it) equals that of 2N
    straight steps, bitwise; with a ramp-up, the resumed steps' decays come from the saved position."""
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
                **(CONSTANT if ema == "decay" else RAMPUP),
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
