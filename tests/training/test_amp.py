"""Mixed precision: bf16 autocast on CPU trains; fp16 with a gradient scaler (CUDA) trains; the
gradient penalty follows PyTorch's AMP recipe (autograd.grad on the scaled output, then unscale)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from gankit.losses import gradient_penalty, r1_penalty
from gankit.training.loop import Trainer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 training needs CUDA")


def _params(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in m.named_parameters()}


def _moved(before: dict[str, torch.Tensor], m: nn.Module) -> bool:
    return any(not torch.equal(before[k], p.detach()) for k, p in m.named_parameters())


def _first_batch(tr: Trainer) -> dict[str, torch.Tensor]:
    return tr.data.batch(tr.sampler.indices(0), device=tr.device, generator=None)


def _critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


# --------------------------------------------------------------------------- penalty recipe


def test_scaled_penalty_equals_unscaled_penalty_and_scales_the_backward(monkeypatch) -> None:
    """Under fp16 autocast with a GradScaler, autograd.grad sees scale * output, and the penalty
    (formed from the unscaled gradients) equals the fp32 penalty without a scaler."""
    D = _critic()
    real, fake = torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)
    reference = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(1))

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    seen: list[torch.Tensor] = []
    grad = torch.autograd.grad

    def spy(outputs, inputs, **kwargs):
        seen.append(outputs.detach().clone())
        return grad(outputs, inputs, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    with torch.autocast("cpu", dtype=torch.float16):
        scaled = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(1), scaler=scaler)
        logits_sum = (
            D(
                torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(1)) * real
                + (1 - torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(1))) * fake
            )
            .float()
            .sum()
        )
    assert len(seen) == 1
    assert seen[0].item() == pytest.approx(2.0**12 * logits_sum.item(), rel=1e-3)  # the scaled output
    assert scaled.dtype == torch.float32
    assert scaled.item() == pytest.approx(reference.item(), rel=2e-2)  # fp16 activations, unscaled grads
    # the penalty trains the critic: scaled.backward gives scale x the fp32 penalty's weight gradients
    scaler.scale(scaled).backward()
    got = {k: p.grad.clone() / 2.0**12 for k, p in D.named_parameters() if p.grad is not None}
    D.zero_grad(set_to_none=True)
    reference.backward()
    want = {k: p.grad.clone() for k, p in D.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys() == {"1.weight", "1.bias", "3.weight"}
    for k in ("1.weight", "3.weight"):
        assert torch.allclose(got[k], want[k], rtol=5e-2, atol=1e-3 * want[k].abs().max().item()), k


def test_disabled_scaler_is_the_plain_penalty() -> None:
    D = _critic()
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    plain = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(2))
    off = torch.amp.GradScaler("cpu", enabled=False)
    same = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(2), scaler=off)
    assert torch.equal(plain, same)


def test_overflowing_penalty_skips_the_step_and_lowers_the_scale(tmp_path: Path, tiny_cfg) -> None:
    """fp16 + wgan-gp through Trainer.train_step (fp16 autocast and a GradScaler on CPU stand in for
    CUDA): a scale so large that the penalty's scaled backward overflows must not stop training as a
    non-finite loss; the scaler skips that D update and halves its scale, and the next step trains."""
    tr = Trainer(tiny_cfg("gan", tmp_path, **{"loss.gan": "wgan-gp"}), tmp_path / "run", log=lambda m: None)
    tr.autocast_dtype = torch.float16
    tr.scaler_D = torch.amp.GradScaler("cpu", init_scale=2.0**100)  # scale * gradient > fp16 max
    batch = _first_batch(tr)
    d0 = _params(tr.D)
    stats = tr.train_step(batch, g_step=False)
    assert not _moved(d0, tr.D)  # the overflowed update was skipped ...
    assert tr.scaler_D.get_scale() == 2.0**99  # ... and the scale lowered
    assert "gp" not in stats and torch.isfinite(stats["d_loss"])
    tr.scaler_D = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    stats = tr.train_step(batch, g_step=False)
    assert _moved(d0, tr.D) and torch.isfinite(stats["gp"]) and stats["gp"] > 0
    assert tr.scaler_D.get_scale() == 2.0**8


# ---------------------------------------------------------------------------- training steps


@pytest.mark.parametrize("preset", ["gan", "dcgan"])
def test_bf16_autocast_trains_on_cpu(preset: str, tmp_path: Path, tiny_cfg) -> None:
    tr = Trainer(tiny_cfg(preset, tmp_path, **{"train.amp": "bf16"}), tmp_path / "run", log=lambda m: None)
    assert tr.autocast_dtype == torch.bfloat16 and not tr.scaler_D.is_enabled()
    g0, d0 = _params(tr.G), _params(tr.D)
    seen: list[torch.dtype] = []
    hook = tr.D.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    stats = tr.train_step(_first_batch(tr), g_step=True)
    hook.remove()
    assert torch.bfloat16 in seen  # the critic really ran in bf16
    assert {"d_loss", "g_loss"} <= set(stats) and all(torch.isfinite(v) for v in stats.values())
    assert _moved(g0, tr.G) and _moved(d0, tr.D)
    assert all(p.dtype == torch.float32 for p in [*tr.G.parameters(), *tr.D.parameters()])  # fp32 master weights


@needs_cuda
@pytest.mark.parametrize("loss", ["vanilla", "wgan-gp"])
def test_fp16_with_scaler_trains_on_cuda(loss: str, tmp_path: Path, tiny_cfg) -> None:
    cfg = tiny_cfg("dcgan", tmp_path, **{"train.amp": "fp16", "train.device": "cuda", "loss.gan": loss})
    tr = Trainer(cfg, tmp_path / "run", log=lambda m: None)
    assert tr.autocast_dtype == torch.float16 and tr.scaler_D.is_enabled() and tr.scaler_G.is_enabled()
    g0, d0 = _params(tr.G), _params(tr.D)
    batch = _first_batch(tr)
    for _ in range(20):  # the first steps may overflow while the scaler finds its scale
        stats = tr.train_step(batch, g_step=True)
        assert torch.isfinite(stats["d_loss"]) and torch.isfinite(stats["g_loss"])
    assert _moved(g0, tr.G) and _moved(d0, tr.D)
    if loss == "wgan-gp":
        assert torch.isfinite(stats["gp"])
    assert all(torch.isfinite(p).all() for p in [*tr.G.parameters(), *tr.D.parameters()])


# --------------------------------------------------------------------------- R1 under fp16


def test_scaled_r1_equals_the_fp32_r1() -> None:
    D = _critic()
    real = torch.randn(6, 3, 2, 2)
    reference = r1_penalty(D, real)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    with torch.autocast("cpu", dtype=torch.float16):
        scaled = r1_penalty(D, real, scaler=scaler)
    assert scaled.dtype == torch.float32
    assert scaled.item() == pytest.approx(reference.item(), rel=2e-2)
    assert torch.equal(r1_penalty(D, real, scaler=torch.amp.GradScaler("cpu", enabled=False)), reference)


def test_overflowing_r1_skips_the_step_and_lowers_the_scale(tmp_path: Path, tiny_cfg) -> None:
    """As for the WGAN-GP penalty: an R1 whose scaled backward overflows is the scaler's to handle."""
    over = {"loss.r1_gamma": 10.0, "loss.r1_every": 1}
    tr = Trainer(tiny_cfg("gan", tmp_path, **over), tmp_path / "run", log=lambda m: None)
    tr.autocast_dtype = torch.float16
    tr.scaler_D = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    batch = _first_batch(tr)
    d0 = _params(tr.D)
    stats = tr.train_step(batch, g_step=False)
    assert not _moved(d0, tr.D) and tr.scaler_D.get_scale() == 2.0**99
    assert "r1" not in stats and torch.isfinite(stats["d_loss"])
    tr.scaler_D = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    stats = tr.train_step(batch, g_step=False)
    assert _moved(d0, tr.D) and torch.isfinite(stats["r1"]) and stats["r1"] > 0
