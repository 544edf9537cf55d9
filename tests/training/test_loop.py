"""One D step and one G step per family through the real :class:`Trainer` (CPU, tiny configs).

The D half must change only D, the G half only G; ``n_critic`` sets how often G steps; every
registered adversarial loss trains without NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from gankit.config import Config
from gankit.families import FAMILIES
from gankit.losses import GAN_LOSSES
from gankit.training.loop import Trainer
from gankit.training.stats import read_jsonl

ParamSnapshot = dict[str, torch.Tensor]


def _params(m: nn.Module) -> ParamSnapshot:
    return {k: p.detach().clone() for k, p in m.named_parameters()}


def _changed(before: ParamSnapshot, m: nn.Module) -> list[str]:
    return [k for k, p in m.named_parameters() if not torch.equal(before[k], p.detach())]


def _trainer(name: str, tmp_path: Path, tiny_cfg: Callable[..., Config], fake_paired_data, **overrides) -> Trainer:
    cfg = tiny_cfg(name, tmp_path, **overrides)
    if FAMILIES[name].kind == "paired":
        fake_paired_data(cfg)
    return Trainer(cfg, tmp_path / "run", log=lambda msg: None)


def _first_batch(tr: Trainer) -> dict[str, torch.Tensor]:
    gen = tr.sampler.augment_generator(0) if tr.family.kind == "paired" else None
    return tr.data.batch(tr.sampler.indices(0), device=tr.device, generator=gen)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_d_step_changes_only_d(name: str, tmp_path: Path, tiny_cfg, fake_paired_data) -> None:
    tr = _trainer(name, tmp_path, tiny_cfg, fake_paired_data)
    batch = _first_batch(tr)
    g0, d0 = _params(tr.G), _params(tr.D)
    stats = tr.train_step(batch, g_step=False)
    assert _changed(g0, tr.G) == []
    assert all(p.grad is None for p in tr.G.parameters())  # fakes were made without a graph
    changed = _changed(d0, tr.D)
    # everything that got a gradient moved (a cGAN embedding row of an absent class may not)
    assert len(changed) >= len(d0) - (1 if name == "cgan" else 0), set(d0) - set(changed)
    assert "d_loss" in stats and "g_loss" not in stats
    assert torch.isfinite(stats["d_loss"])


@pytest.mark.parametrize("name", list(FAMILIES))
def test_g_half_changes_only_g(name: str, tmp_path: Path, tiny_cfg, fake_paired_data) -> None:
    tr = _trainer(name, tmp_path, tiny_cfg, fake_paired_data)
    batch = _first_batch(tr)
    g0 = _params(tr.G)
    after_d: dict[str, ParamSnapshot] = {}

    def snapshot_after_d_step(opt, args, kwargs) -> None:
        after_d["G"], after_d["D"] = _params(tr.G), _params(tr.D)
        after_d["D_grad"] = {k: p.grad.clone() for k, p in tr.D.named_parameters() if p.grad is not None}

    handle = tr.opt_D.register_step_post_hook(snapshot_after_d_step)
    stats = tr.train_step(batch, g_step=True)
    handle.remove()

    assert after_d, "train_step made no D step"
    assert after_d["G"].keys() == g0.keys() and _changed(g0, tr.G) != []
    assert all(torch.equal(after_d["G"][k], g0[k]) for k in g0)  # D half left G alone
    assert _changed(after_d["D"], tr.D) == []  # G half left D's weights alone ...
    for k, p in tr.D.named_parameters():  # ... and did not accumulate gradients into D
        assert torch.equal(p.grad, after_d["D_grad"][k]) if k in after_d["D_grad"] else p.grad is None
        assert p.requires_grad  # D is trainable again for the next step
    changed_by_g = _changed(after_d["G"], tr.G)
    assert len(changed_by_g) >= len(g0) - (1 if name == "cgan" else 0)
    assert {"d_loss", "g_loss"} <= set(stats)
    if FAMILIES[name].kind == "paired":
        assert {"g_adv", "g_l1"} <= set(stats)
        assert stats["g_loss"].item() == pytest.approx(
            stats["g_adv"].item() + tr.cfg.loss.l1_weight * stats["g_l1"].item(), rel=1e-5
        )


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.kind == "paired"])
def test_pretrain_step_is_l1_only_and_touches_only_g(name: str, tmp_path: Path, tiny_cfg, fake_paired_data) -> None:
    tr = _trainer(name, tmp_path, tiny_cfg, fake_paired_data)
    g0, d0 = _params(tr.G), _params(tr.D)
    stats = tr.train_step(_first_batch(tr), pretrain=True)
    assert set(stats) == {"g_l1"}
    assert _changed(d0, tr.D) == [] and _changed(g0, tr.G) != []


def test_n_critic_2_with_wgan_gp_steps_g_every_second_step(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    tr = _trainer("gan", tmp_path, tiny_cfg, None, **{"loss.gan": "wgan-gp", "loss.n_critic": 2, "train.max_steps": 6})
    events: list[str] = []
    tr.opt_D.register_step_post_hook(lambda *a: events.append("D"))
    tr.opt_G.register_step_post_hook(lambda *a: events.append("G"))
    result = tr.fit()
    assert result.step == 6
    assert events == ["D", "D", "G"] * 3
    rows = read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert ["g_loss" in r for r in rows] == [False, True] * 3
    assert all("gp" in r and r["gp"] >= 0 for r in rows)


@pytest.mark.parametrize("loss", list(GAN_LOSSES))
def test_every_loss_trains_gan_without_nan(loss: str, tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    tr = _trainer("gan", tmp_path, tiny_cfg, None, **{"loss.gan": loss, "train.max_steps": 3})
    g0, d0 = _params(tr.G), _params(tr.D)
    result = tr.fit()
    assert result.step == 3
    assert _changed(g0, tr.G) and _changed(d0, tr.D)
    for m in (tr.G, tr.D):
        assert all(torch.isfinite(p).all() for p in m.parameters())
    rows = read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert len(rows) == 3
    for r in rows:
        assert all(torch.isfinite(torch.tensor(v)) for k, v in r.items() if k not in ("step", "epoch"))
        assert {"d_loss", "g_loss"} <= set(r)
        assert ("gp" in r) == (loss == "wgan-gp")


def test_cgan_gradient_penalty_pairs_real_and_fake_of_the_same_label(tmp_path: Path, tiny_cfg) -> None:
    """With wgan-gp, each interpolate lies between a real image and a fake *of the same label*, and the
    critic scores it under that label (fakes with random labels would mix two classes)."""
    tr = _trainer("cgan", tmp_path, tiny_cfg, None, **{"loss.gan": "wgan-gp"})
    batch = _first_batch(tr)
    labels = batch["label"]
    assert len(labels.unique()) > 1
    fake, fake_labels = tr.objective.generate(tr.G, batch)
    assert torch.equal(fake_labels, labels)
    # the fake of sample i was made for label i: same image as G(z_i, label_i) made on its own
    torch.manual_seed(3)
    fake, fake_labels = tr.objective.generate(tr.G, batch)
    torch.manual_seed(3)
    z = tr.objective.sample_z(len(labels), tr.device)
    assert torch.allclose(fake, tr.G(z, labels), atol=1e-6)

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    critic = tr.objective.critic
    tr.objective.critic = lambda D, x, cond: calls.append((x.detach(), cond)) or critic(D, x, cond)  # type: ignore
    tr.objective.d_loss(tr.D, batch, fake, fake_labels)
    (x_real, c_real), (x_fake, c_fake), (x_hat, c_hat) = calls
    assert torch.equal(c_real, labels) and torch.equal(c_fake, labels) and torch.equal(c_hat, labels)
    # x_hat[i] = a_i real[i] + (1 - a_i) fake[i] for one a_i in [0, 1] per sample
    real = batch["image"].flatten(1)
    diff, off = (real - fake.detach().flatten(1)), (x_hat.flatten(1) - fake.detach().flatten(1))
    a = (off * diff).sum(1) / (diff * diff).sum(1)
    assert ((a >= 0) & (a <= 1)).all()
    assert torch.allclose(off, a[:, None] * diff, atol=1e-5)


def test_cgan_without_penalty_keeps_random_fake_labels(tmp_path: Path, tiny_cfg) -> None:
    """The notes' cGAN draws the fakes' labels at random (only the penalty needs them paired)."""
    tr = _trainer("cgan", tmp_path, tiny_cfg, None)
    batch = _first_batch(tr)
    _, fake_labels = tr.objective.generate(tr.G, batch)
    assert not torch.equal(fake_labels, batch["label"])


def test_readme_wgan_gp_dcgan_example_trains(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """`gankit train dcgan-fmnist32 --set loss.gan=wgan-gp loss.n_critic=5 optim.beta1=0.0` (tiny): the
    critic gets layer norm (logged), the generator keeps batch norm, and the penalty stays finite."""
    overrides = {"loss.gan": "wgan-gp", "loss.n_critic": 5, "optim.beta1": 0.0, "train.max_steps": 10}
    cfg = tiny_cfg("dcgan-fmnist32", tmp_path, **overrides)
    assert cfg.train.channels_last  # the preset's NHWC layout must work with layer norm too
    logs: list[str] = []
    tr = Trainer(cfg, tmp_path / "run", log=logs.append)
    assert any("layer norm instead of batch norm" in m and "loss.gan=wgan-gp" in m for m in logs), logs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in tr.D.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in tr.D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in tr.G.modules())
    g0, d0 = _params(tr.G), _params(tr.D)
    assert tr.fit().step == 10
    assert _changed(g0, tr.G) and _changed(d0, tr.D)
    rows = read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert [("g_loss" in r) for r in rows] == [False, False, False, False, True] * 2
    assert all(r["gp"] >= 0 and torch.isfinite(torch.tensor(r["gp"])) for r in rows)


def test_the_epoch_line_never_reads_zero_images_per_second() -> None:
    """A pix2pix epoch on a busy CPU ran at 0.9 img/s and the log said "0 img/s"."""
    from gankit.training.progress import epoch_line

    assert epoch_line(0, 2, 8, {"d_loss": 0.5}, {"seconds": 8.0, "images": 7}).endswith("| 8.0 s, 0.88 img/s")
    assert epoch_line(0, 2, 8, {"d_loss": 0.5}, {"seconds": 2.0, "images": 5900}).endswith("| 2.0 s, 2950 img/s")


def test_the_epoch_lines_count_to_the_epoch_where_max_steps_stops(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """pix2pix's 100 decay epochs made a 2,000-step run log "epoch 1/140" and stop at epoch 40."""

    def epochs(cfg: Config, out: Path) -> list[str]:
        lines: list[str] = []
        tr = Trainer(cfg, out, log=lines.append)
        tr.fit()
        return [line.split()[1] for line in lines if line.startswith("epoch ")]

    spe = Trainer(tiny_cfg("gan", tmp_path), tmp_path / "probe").steps_per_epoch
    assert epochs(tiny_cfg("gan", tmp_path, **{"train.epochs": 5, "train.max_steps": spe + 1}), tmp_path / "a") == [
        "1/2",
        "2/2",
    ]
    assert epochs(tiny_cfg("gan", tmp_path, **{"train.epochs": 2}), tmp_path / "b") == ["1/2", "2/2"]


@pytest.mark.parametrize("name", ["cgan", "dcgan", "pix2pix"])
def test_lazy_r1_trains_finite_and_logs_r1_on_every_kth_step(
    name: str, tmp_path: Path, tiny_cfg, fake_paired_data, no_loss_plot
) -> None:
    over = {"loss.r1_gamma": 10.0, "loss.r1_every": 2, "train.max_steps": 4, "train.batch_size": 4}
    tr = _trainer(name, tmp_path, tiny_cfg, fake_paired_data, **over)
    bn = [m for m in tr.D.modules() if isinstance(m, nn.BatchNorm2d)]
    d0 = _params(tr.D)
    assert tr.fit().step == 4
    assert _changed(d0, tr.D)
    for m in (tr.G, tr.D):
        assert all(torch.isfinite(p).all() for p in m.parameters())
    rows = read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert ["r1" in r for r in rows] == [True, False, True, False]
    assert all(r["r1"] > 0 and torch.isfinite(torch.tensor(r["r1"])) for r in rows if "r1" in r)
    if bn:
        # reals and fakes of the D step, fakes of the G step: the R1 pass does not count the reals again
        assert int(bn[0].num_batches_tracked) == 4 * 3
