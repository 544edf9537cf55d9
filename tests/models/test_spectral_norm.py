"""model.d_spectral_norm: every conv/linear weight of D spectrally normalized, for every family, and a run
with it resumes bit-exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import deep_equal, trainer_states
from torch import nn
from torch.nn.utils import parametrize

from gankit.families import FAMILIES
from gankit.training.loop import Trainer

_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def _quiet(msg: str) -> None:
    pass


def _cfg(name: str, tmp_path: Path, tiny_cfg, fake_paired_data, **overrides):
    cfg = tiny_cfg(name, tmp_path, **{"train.batch_size": 4, "model.d_spectral_norm": True, **overrides})
    if FAMILIES[name].kind == "paired":
        fake_paired_data(cfg)
    return cfg


@pytest.mark.parametrize("name", list(FAMILIES))
def test_spectral_norm_bounds_the_top_singular_value_of_every_d_weight(
    name: str, tmp_path: Path, tiny_cfg, fake_paired_data, no_loss_plot
) -> None:
    # at the DCGAN rate for every family: the MLP presets' 1e-3 moves D's weights 5x further per step, and
    # the lagging one-iteration estimate let sigma reach 1.15 after 5 steps (the converged bound below holds)
    rate = {"optim.lr_d": 2e-4, "optim.lr_g": 2e-4}
    cfg = _cfg(name, tmp_path, tiny_cfg, fake_paired_data, **{"train.max_steps": 5, **rate})
    tr = Trainer(cfg, tmp_path / "run", log=_quiet)
    layers = [m for m in tr.D.modules() if isinstance(m, _WEIGHTED)]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in tr.G.modules())  # G is left alone
    assert any(isinstance(m, nn.BatchNorm2d) for m in tr.D.modules()) == (name in ("dcgan", "pix2pix", "colorize"))
    tr.fit()
    tr.D.eval()  # reading the weight in train mode would run one more power iteration
    for m in layers:
        # one power iteration per step tracks sigma from below, so the normalized weight's top singular
        # value is about 1, a little above when the top two singular values lie close (measured <= 1.016)
        assert 0.999 <= _sigma(m) <= 1.05, (m, _sigma(m))
    # with the power iteration converged (more forwards in train mode), the bound is tight
    tr.D.train()
    with torch.no_grad():
        for _ in range(300):
            for m in layers:
                m.weight  # noqa: B018 - each read in train mode is one power iteration
    tr.D.eval()
    for m in layers:
        assert _sigma(m) <= 1 + 1e-3, (m, _sigma(m))


def _sigma(m: nn.Module) -> float:
    """The top singular value of the (normalized) weight as the layer uses it."""
    with torch.no_grad():
        return float(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2))


def test_spectral_norm_is_off_by_default(tmp_path: Path, tiny_cfg) -> None:
    tr = Trainer(tiny_cfg("dcgan", tmp_path), tmp_path / "run", log=_quiet)
    assert not any(parametrize.is_parametrized(m) for m in tr.D.modules())
    assert any(k.endswith("weight") for k in tr.D.state_dict())


def test_spectral_norm_run_resumes_bitwise(tmp_path: Path, tiny_cfg, no_loss_plot, fake_paired_data) -> None:
    n = 3

    def cfg(max_steps: int):
        return _cfg("dcgan", tmp_path, tiny_cfg, fake_paired_data, **{"train.max_steps": max_steps})

    straight = Trainer(cfg(2 * n), tmp_path / "A", log=_quiet)
    straight.fit()
    first = Trainer(cfg(n), tmp_path / "B", log=_quiet)
    first.fit()
    half = trainer_states(first)
    assert any("parametrizations.weight.original" in k for k in half["D"])
    assert any(k.endswith("_u") for k in half["D"])  # the power iteration's vectors are saved too
    resumed = Trainer(cfg(2 * n), tmp_path / "B", resume=True, log=_quiet)
    assert deep_equal(trainer_states(resumed), half) == []
    resumed.fit()
    diffs = deep_equal(trainer_states(resumed), trainer_states(straight))
    assert diffs == [], diffs[:5]


def test_resume_refuses_to_switch_spectral_norm(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    from gankit.config import ConfigError

    Trainer(tiny_cfg("gan", tmp_path, **{"train.max_steps": 1}), tmp_path / "run", log=_quiet).fit()
    cfg = tiny_cfg("gan", tmp_path, **{"train.max_steps": 2, "model.d_spectral_norm": True})
    with pytest.raises(ConfigError, match="'model.d_spectral_norm' changes the networks"):
        Trainer(cfg, tmp_path / "run", resume=True, log=_quiet)
