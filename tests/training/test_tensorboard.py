"""TensorBoard output: the tags and steps written, read back with tensorboard's own event reader,
and a resume that continues the curves without duplicate steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_tiny_cfg

from gankit.config import make_config
from gankit.launch import train
from gankit.training.stats import read_jsonl

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _events(run: Path):
    acc = event_accumulator.EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_images_hparams_and_resume(tmp_path: Path, no_loss_plot) -> None:
    common = {"train.tensorboard": True, "train.epochs": 3, "train.log_every": 5}
    run = tmp_path / "run"
    train(make_tiny_cfg("gan", tmp_path, **common, **{"train.max_steps": 15}), run, log=lambda m: None)
    train(make_tiny_cfg("gan", tmp_path, **common, **{"train.max_steps": 25}), run, resume=True, log=lambda m: None)

    acc = _events(run)
    tags = set(acc.Tags()["scalars"])
    assert {"loss/d_loss", "loss/g_loss", "lr/g", "lr/d", "speed/images_per_s", "speed/seconds"} <= tags
    # the same curve as stats.jsonl, each step once, across the resume
    stats = read_jsonl(run / "stats.jsonl")
    d_loss = acc.Scalars("loss/d_loss")
    assert [e.step for e in d_loss] == [r["step"] for r in stats] == [5, 10, 15, 20, 25]
    assert [round(e.value, 5) for e in d_loss] == [round(r["d_loss"], 5) for r in stats]
    assert [e.value for e in acc.Scalars("lr/g")] == pytest.approx([make_config("gan").optim.lr_g] * 5)  # the preset's
    # one sample grid per epoch end (steps 10, 20) and per final partial epoch (15, 25)
    assert sorted({e.step for e in acc.Images("samples")}) == [10, 15, 20, 25]
    assert acc.Images("samples")[0].width >= 512
    assert "final/d_loss" in tags  # the hyperparameter summary's metric


def test_missing_tensorboard_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from gankit.config import ConfigError

    real_import = builtins.__import__

    def no_tb(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(ConfigError, match=r"pip install 'gankit\[tensorboard\]'"):
        train(make_tiny_cfg("gan", tmp_path, **{"train.tensorboard": True, "train.max_steps": 1}), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_tensorboard_image_to_image_logs_validation(tmp_path: Path, no_loss_plot, fake_paired_data) -> None:
    over = {"train.tensorboard": True, "train.epochs": 2, "optim.decay_epochs": 0, "train.batch_size": 2}
    cfg = make_tiny_cfg("pix2pix", tmp_path, **over)
    fake_paired_data(cfg, n=8)
    train(cfg, tmp_path / "run", log=lambda m: None)
    acc = _events(tmp_path / "run")
    tags = set(acc.Tags()["scalars"])
    assert {"loss/d_loss", "loss/g_l1", "loss/g_adv", "val/l1", "val/psnr"} <= tags
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [round(e.value, 5) for e in acc.Scalars("val/l1")] == [round(m["val_l1"], 5) for m in metrics]
    assert len(acc.Images("samples")) == 2  # one input | output | target grid per epoch
