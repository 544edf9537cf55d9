"""The warning in the log when D wins outright (training/callbacks.py: DiscriminatorWins)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gankit.config import make_config
from gankit.training.callbacks import DiscriminatorWins, default_callbacks


def _feed(losses: list[float], *, gan: str = "vanilla", every: int = 10) -> list[str]:
    """The lines the detector logs over stats rows with these ``d_loss`` values, one row per ``every`` steps."""
    cfg = make_config("gan", overrides={"loss.gan": gan, "train.log_every": every})
    lines: list[str] = []
    tr = SimpleNamespace(cfg=cfg, step=0, log=lines.append)
    cb = DiscriminatorWins()
    for d_loss in losses:
        tr.step += every
        cb.on_stats(tr, {"d_loss": d_loss, "g_loss": 7.0, "d_real": 9.0, "d_fake": -9.0})  # type: ignore[arg-type]
    return lines


def test_a_forced_collapse_warns_once_naming_the_options() -> None:
    lines = _feed([0.9] * 20 + [0.001] * 100)  # 1,000 steps with D winning
    assert len(lines) == 1
    quarter = f"optim.lr_d={make_config('gan').optim.lr_d / 4:g}"  # a quarter of the run's D rate
    for option in ("loss.r1_gamma=10", "model.d_spectral_norm=true", quarter, "train.augment=diffaug"):
        assert option in lines[0]
    assert lines[0].startswith("warning: D is winning outright: its loss stayed below 0.05 for the last 200 steps")


def test_a_healthy_run_and_short_dips_give_no_warning() -> None:
    assert _feed([0.6, 1.3, 0.9, 1.1] * 50) == []
    assert _feed(([0.01] * 15 + [0.8]) * 10) == []  # 150 steps below, then back: not a win


def test_a_long_collapse_warns_again_only_after_repeat_steps() -> None:
    assert len(_feed([0.001] * 700)) == 2  # 7,000 steps: at step 200 and again at 5,200


@pytest.mark.parametrize("gan", ["lsgan", "hinge"])
def test_the_rule_applies_to_losses_with_a_floor_of_zero(gan: str) -> None:
    assert len(_feed([0.001] * 100, gan=gan)) == 1


def test_wgan_gp_critic_losses_get_no_warning() -> None:
    assert _feed([0.001] * 100, gan="wgan-gp") == []


def test_the_detector_is_a_default_callback() -> None:
    assert any(isinstance(cb, DiscriminatorWins) for cb in default_callbacks(make_config("gan")))
