"""evaluate(), real_vs_real() and plot_metrics() on tiny trained runs (no Inception or LPIPS weights).

The shipped classifiers live in the package; tests that need "no classifier at all" point
``WEIGHTS_DIR`` at an empty folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import fake_paired_for

from gankit.cli import main
from gankit.config import Config
from gankit.evaluate import NoMetricsComputed, evaluate, plot_metrics, real_vs_real
from gankit.metrics.classifier import train_classifier
from gankit.metrics.features import INCEPTION_URL
from gankit.training.checkpoint import CheckpointError
from gankit.training.loop import train


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def quiet(msg: str) -> None:
    pass


@pytest.fixture
def no_shipped_classifiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "no_weights").mkdir()
    monkeypatch.setattr("gankit.metrics.classifier.WEIGHTS_DIR", tmp_path / "no_weights")


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
    assert f"classifier: the classifier {classifier}" in logs
    # the numbers actually used: 60 samples, but the tiny test split has only 50 images
    assert any("(test split: 60 generated, 50 reference test images)" in m for m in logs)
    assert "fid" not in first and "precision" not in first
    assert {"fid_clf", "kid_clf", "kid_clf_std", "precision_clf", "recall_clf"} <= set(first)
    assert "cls_acc" not in first  # unconditional gan
    assert list((tmp_path / "xdg_cache" / "gankit" / "stats").glob("fashion-mnist-test-*classifier*-n50.pt"))
    second = evaluate(run, **kw)
    assert second == first
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["step"] == 5 and rows[0]["split"] == "test"
    assert (rows[0]["n"], rows[0]["n_ref"], rows[0]["classifier"]) == (60, 50, str(classifier))
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
    logs: list[str] = []
    out = evaluate(run / "checkpoints" / "G_last.pt", n=40, device="cpu", log=logs.append)
    assert f"classifier: the user-trained classifier {found} (it takes precedence over a shipped one)" in logs
    per_class = [out[f"cls_acc_{k}"] for k in range(10)]
    assert len([k for k in out if k.startswith("cls_acc_")]) == 10
    assert out["cls_acc"] == pytest.approx(sum(per_class) / 10)  # the mean over classes (oracle tests: test_classifier)
    assert all(a in (0.0, 0.25, 0.5, 0.75, 1.0) for a in per_class)  # 40 balanced samples: 4 per class
    assert "fid_clf" in out
    assert (run / "eval.jsonl").exists()  # a checkpoint inside RUN/checkpoints logs to RUN


def test_real_vs_real_floor_is_far_below_an_untrained_generator(
    tmp_path: Path, tiny_cfg: Callable[..., Config], classifier: Path, no_loss_plot: None
) -> None:
    cfg = tiny_cfg("gan", tmp_path)
    logs: list[str] = []
    floor = real_vs_real(cfg.data, n=100, classifier=classifier, device="cpu", log=logs.append)
    assert set(floor) >= {"fid_clf", "kid_clf", "precision_clf", "recall_clf"}
    assert any("(100 train vs 50 test images)" in m for m in logs)
    run, _ = tiny_run("gan", tmp_path, tiny_cfg)
    fake = evaluate(run, n=100, classifier=classifier, device="cpu", log=quiet)
    assert floor["fid_clf"] < 0.1 * fake["fid_clf"] and floor["kid_clf"] < 0.1 * fake["kid_clf"]
    assert floor["precision_clf"] > 0.5 > fake["precision_clf"]


def test_eval_right_after_training_uses_the_shipped_classifier(
    tmp_path: Path, tiny_cfg: Callable[..., Config], no_loss_plot: None, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = tiny_run("gan", tmp_path, tiny_cfg)
    assert main(["eval", str(run), "--n", "60", "--device", "cpu", "--batch-size", "30"]) == 0
    printed = capsys.readouterr().out
    assert "classifier: the shipped classifier" in printed and "fashion-mnist.pt (sha256 verified" in printed
    row = json.loads((run / "eval.jsonl").read_text())
    assert row["classifier"].endswith("weights/fashion-mnist.pt") and row["fid_clf"] > 0


def test_no_computable_metric_is_an_error_that_names_the_fix(
    tmp_path: Path,
    tiny_cfg: Callable[..., Config],
    no_loss_plot: None,
    no_shipped_classifiers: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, cfg = tiny_run("gan", tmp_path, tiny_cfg)
    with pytest.raises(NoMetricsComputed, match="fix: gankit train classifier --data"):
        evaluate(run, n=60, device="cpu", log=quiet)
    assert not (run / "eval.jsonl").exists()
    assert main(["eval", str(run), "--n", "60", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gankit eval: error: ") and "no metric could be computed" in err
    assert f"fix: gankit train classifier --data {cfg.data.path} --out " in err
    assert f"fix: download {INCEPTION_URL} into {tmp_path / 'torch_home' / 'hub' / 'checkpoints'}/" in err
    assert not (run / "eval.jsonl").exists()
    # the printed command is the fix: afterwards the same eval works and says which classifier it used
    fix = err.split("fix: gankit ")[1].splitlines()[0].split()
    assert main([*fix, "--max-steps", "2", "--batch-size", "50", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "60", "--device", "cpu"]) == 0
    assert "classifier: the user-trained classifier" in capsys.readouterr().out
    assert len((run / "eval.jsonl").read_text().splitlines()) == 1


def test_eval_checkpoint_option(
    tmp_path: Path, tiny_cfg: Callable[..., Config], classifier: Path, no_loss_plot: None
) -> None:
    run, _ = tiny_run("gan", tmp_path, tiny_cfg)
    kw = dict(n=40, metrics=["fid_clf"], classifier=classifier, device="cpu", log=quiet)
    last = evaluate(run, **kw)
    assert evaluate(run, checkpoint="last", **kw) == last
    assert evaluate(run, checkpoint=run / "checkpoints" / "G_last.pt", **kw) == last
    with pytest.raises(CheckpointError, match="G_best.pt"):
        evaluate(run, checkpoint="best", **kw)  # noise runs have no G_best.pt: an error, not a silent G_last
    with pytest.raises(CheckpointError, match="no such file"):
        evaluate(run, checkpoint=tmp_path / "nope.pt", **kw)
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["checkpoint"] for r in rows] == ["G_last.pt"] * 3


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
    assert any("(val split, 6 pairs)" in m for m in logs)  # not the requested n=10000
    row = json.loads((tmp_path / "run" / "eval.jsonl").read_text())
    assert (row["n"], row["checkpoint"]) == (6, "G_last.pt") and "n_ref" not in row
    evaluate(tmp_path / "run", metrics=["l1"], checkpoint="best", device="cpu", log=quiet)
    assert json.loads((tmp_path / "run" / "eval.jsonl").read_text().splitlines()[-1])["checkpoint"] == "G_best.pt"

    import torchvision

    empty_torch_hub.mkdir(parents=True)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, empty_torch_hub / "alexnet-owt-7be5be79.pth")
    again = evaluate(tmp_path / "run", metrics=["l1", "lpips"], device="cpu", log=quiet)
    assert again["l1"] == out["l1"] and again["lpips"] > 0
    with pytest.raises(ValueError, match="noise models"):
        evaluate(tmp_path / "run", metrics=["fid"], device="cpu", log=quiet)


# ----------------------------------------------------------------------------- loss.png


def test_loss_png_of_one_logged_point_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2-3 step run logs one stats row (and one val row): loss.png shows each point, at its step and value."""
    import numpy as np
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from PIL import Image

    from gankit.training.stats import plot_losses

    (tmp_path / "stats.jsonl").write_text(
        json.dumps({"step": 30, "epoch": 1, "d_loss": 1.25, "g_adv": 0.75, "g_l1": 0.31, "g_loss": 31.75}) + "\n"
    )
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 30, "epoch": 1, "val_l1": 0.4}) + "\n")
    figures = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figures.append(fig), savefig(fig, *a, **k))[1])
    plot_losses(tmp_path / "stats.jsonl", tmp_path / "loss.png", "losses", metrics_path=tmp_path / "metrics.jsonl")
    pixels = np.asarray(Image.open(tmp_path / "loss.png").convert("RGB")).astype(int)
    (fig,) = figures
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert len(axes) == 3  # d_loss, g_adv, g_l1 | g_loss | val_l1
    for ax in axes:
        values = []
        for line in ax.get_lines():
            (x,), (y,) = line.get_xdata(), line.get_ydata()
            values.append(y)
            px, py = ax.transData.transform((x, y))
            row, col = int(round(fig.bbox.height - py)), int(round(px))
            patch = pixels[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3)
            assert np.abs(patch - np.array(to_rgb(line.get_color())) * 255).max(1).min() < 40, line.get_label()
        assert list(ax.get_xticks()) == [30]  # not 29.90 ... 30.10
        assert [t.get_text() for t in ax.get_yticklabels()] == [f"{v:.4g}" for v in sorted(values)]
