"""evaluate(), real_vs_real() and plot_metrics() on tiny trained runs (no Inception or LPIPS weights)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import fake_paired_for

from gankit.config import Config
from gankit.evaluate import evaluate, plot_metrics, real_vs_real
from gankit.metrics.classifier import train_classifier
from gankit.training.loop import train


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def quiet(msg: str) -> None:
    pass


def tiny_run(preset: str, tmp_path: Path, tiny_cfg: Callable[..., Config]) -> tuple[Path, Config]:
    cfg = tiny_cfg(preset, tmp_path, **{"train.max_steps": 5})
    train(cfg, tmp_path / preset, log=quiet)
    return tmp_path / preset, cfg


@pytest.fixture
def classifier(tmp_path: Path, tiny_cfg: Callable[..., Config]) -> Path:
    cfg = tiny_cfg("gan", tmp_path)
    out = tmp_path / "clf.pt"
    train_classifier(cfg.data, out, epochs=1, batch_size=50, log=quiet)
    return out


def test_evaluate_gan_skips_inception_and_is_deterministic(
    tmp_path: Path, tiny_cfg: Callable[..., Config], classifier: Path, no_loss_plot: None
) -> None:
    run, _ = tiny_run("gan", tmp_path, tiny_cfg)
    logs: list[str] = []
    kw = dict(n=60, classifier=classifier, device="cpu", batch_size=32, log=logs.append)
    first = evaluate(run, **kw)
    assert any(m.startswith("fid: skipped") and "weights-inception-2015-12-05-6726825d.pth" in m for m in logs)
    assert "fid" not in first and "precision" not in first
    assert {"fid_clf", "kid_clf", "kid_clf_std", "precision_clf", "recall_clf"} <= set(first)
    assert "cls_acc" not in first  # unconditional gan
    assert list((tmp_path / "xdg_cache" / "gankit" / "stats").glob("fashion-mnist-test-*classifier*-n50.pt"))
    second = evaluate(run, **kw)
    assert second == first
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["step"] == 5 and rows[0]["split"] == "test" and rows[0]["n"] == 60
    assert rows[1]["fid_clf"] == first["fid_clf"]
    png = plot_metrics(run)
    assert png == run / "metrics.png" and png.stat().st_size > 0


def test_evaluate_cgan_reports_class_accuracy_with_a_found_classifier(
    tmp_path: Path, tiny_cfg: Callable[..., Config], classifier: Path, no_loss_plot: None
) -> None:
    run, _ = tiny_run("cgan", tmp_path, tiny_cfg)
    found = tmp_path / "gankit_data_env" / "classifiers" / "fashion-mnist.pt"  # $GANKIT_DATA/classifiers/
    found.parent.mkdir(parents=True)
    found.write_bytes(classifier.read_bytes())
    out = evaluate(run / "checkpoints" / "G_last.pt", n=40, device="cpu", log=quiet)
    assert 0.0 <= out["cls_acc"] <= 1.0 and len([k for k in out if k.startswith("cls_acc_")]) == 10
    assert "fid_clf" in out
    assert (run / "eval.jsonl").exists()  # a checkpoint inside RUN/checkpoints logs to RUN


def test_real_vs_real_floor(tmp_path: Path, tiny_cfg: Callable[..., Config], classifier: Path) -> None:
    cfg = tiny_cfg("gan", tmp_path)
    out = real_vs_real(cfg.data, n=100, classifier=classifier, device="cpu", log=quiet)
    assert set(out) >= {"fid_clf", "kid_clf", "precision_clf", "recall_clf"} and out["fid_clf"] >= 0


def test_evaluate_colorize_skips_lpips_until_its_weights_exist(
    tmp_path: Path,
    tiny_cfg: Callable[..., Config],
    fake_paired_data: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    empty_torch_hub: Path,
    no_loss_plot: None,
) -> None:
    cfg = tiny_cfg("colorize", tmp_path, **{"train.max_steps": 2})
    fake_paired_data(cfg)
    train(cfg, tmp_path / "run", log=quiet)
    val = fake_paired_for(cfg, 6)
    monkeypatch.setattr("gankit.evaluate.build_dataset", lambda data_cfg, split="train", **kw: val)
    logs: list[str] = []
    out = evaluate(tmp_path / "run", device="cpu", log=logs.append)
    assert {"l1", "psnr", "ssim", "colorfulness", "colorfulness_real"} <= set(out) and "lpips" not in out
    assert any(m.startswith("lpips: skipped") and "alexnet-owt-7be5be79.pth" in m for m in logs)
    assert out["colorfulness_real"] > 0

    import torchvision

    empty_torch_hub.mkdir(parents=True)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, empty_torch_hub / "alexnet-owt-7be5be79.pth")
    again = evaluate(tmp_path / "run", metrics=["l1", "lpips"], device="cpu", log=quiet)
    assert again["l1"] == out["l1"] and again["lpips"] > 0
    with pytest.raises(ValueError, match="noise models"):
        evaluate(tmp_path / "run", metrics=["fid"], device="cpu", log=quiet)
