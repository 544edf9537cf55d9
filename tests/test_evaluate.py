"""evaluate(), real_vs_real() and plot_metrics() on tiny trained runs (no Inception or LPIPS weights).

The shipped classifiers live in the package; tests that need "no classifier at all" point
``WEIGHTS_DIR`` at an empty folder.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fake_paired_for, quiet, write_idx_dataset
from matplotlib.figure import Figure
from PIL import Image

import gankit.evaluate as evaluate_mod
from gankit.cli import main
from gankit.config import Config
from gankit.evaluate import Evaluation, NoMetricsComputed, evaluate, plot_metrics, real_vs_real
from gankit.launch import train
from gankit.metrics.classifier import shipped_classifier, shipped_manifest, train_classifier
from gankit.metrics.features import ClassifierFeatures
from gankit.training.checkpoint import CheckpointError


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


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
    assert any(m.startswith(f"classifier: the classifier {classifier} (test accuracy 0.") for m in logs)
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
    assert png == run / "metrics.png"
    with Image.open(png) as im:  # a drawn chart: sized for a page, with ink on it
        pixels = np.asarray(im.convert("L"))
    assert pixels.shape[1] >= 400 and (pixels < 128).mean() > 0.005


def test_evaluate_cgan_reports_class_accuracy_with_a_found_classifier(
    tmp_path: Path, tiny_cfg: Callable[..., Config], classifier: Path, no_loss_plot: None
) -> None:
    run, _ = tiny_run("cgan", tmp_path, tiny_cfg)
    found = tmp_path / "gankit_data_env" / "classifiers" / "fashion-mnist.pt"  # $GANKIT_DATA/classifiers/
    found.parent.mkdir(parents=True)
    torch.save({**torch.load(classifier, weights_only=True), "installed": True}, found)
    logs: list[str] = []
    out = evaluate(run / "checkpoints" / "G_last.pt", n=40, device="cpu", log=logs.append)
    assert any(m.startswith(f"classifier: the installed user-trained classifier {found} (test accuracy") for m in logs)
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
    assert "fix: pip install 'gankit[fid]'" in err
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
        evaluate(tmp_path / "run", metrics=["fid_clf"], device="cpu", log=quiet)


# ------------------------------------------------------------------------------ which classifier


def test_a_quick_classifier_changes_no_later_eval_unless_named_or_installed(
    tmp_path: Path, tiny_cfg: Callable[..., Config], no_loss_plot: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue: `gankit train classifier --max-steps 20` (67%) wrote into the cache and replaced the shipped 91%
    classifier in every later eval (fid_clf 342 -> 16), with one log line as the only notice."""
    write_idx_dataset(tmp_path / "gankit_data_env" / "fashion-mnist")  # `--data fashion-mnist` finds it by name
    run, _ = tiny_run("gan", tmp_path, tiny_cfg)
    quick = ["train", "classifier", "--data", "fashion-mnist", "--max-steps", "2", "--batch-size", "50"]
    assert main([*quick, "--device", "cpu"]) == 0
    shipped_acc = shipped_manifest()["fashion-mnist"]["test_accuracy"]
    printed = capsys.readouterr().out
    assert f"gankit eval keeps the shipped fashion-mnist classifier (test accuracy {shipped_acc:.4f})" in printed
    assert "--classifier user" in printed and "--install" in printed
    evaluation = ["eval", str(run), "--n", "40", "--device", "cpu", "--metrics", "fid_clf"]
    assert main(evaluation) == 0
    printed = capsys.readouterr().out
    assert f"[classifier fashion-mnist.pt: shipped, test accuracy {shipped_acc:.4f}]" in printed
    assert "not used: the user-trained" in printed
    assert main([*evaluation, "--classifier", "user"]) == 0
    assert "[classifier fashion-mnist.pt: user-trained, test accuracy 0." in capsys.readouterr().out
    assert main([*quick, "--device", "cpu", "--install", "--overwrite"]) == 0
    assert "installed: gankit eval uses it for fashion-mnist runs" in capsys.readouterr().out
    assert main(evaluation) == 0
    assert "[classifier fashion-mnist.pt: installed, test accuracy 0." in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["classifier_source"] for r in rows] == ["shipped", "user-trained", "installed"]
    assert rows[0]["classifier_accuracy"] == shipped_acc and rows[1]["classifier_accuracy"] < 0.9
    assert len({r["classifier_sha256"] for r in rows}) == 3
    assert rows[0]["fid_clf"] != rows[1]["fid_clf"]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures plot_metrics and the report draw, instead of their PNG files."""
    figures: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figures.append(self))
    return figures


def panels(figures: list[Figure]) -> dict[str, object]:
    return {ax.get_title(): ax for fig in figures for ax in fig.axes if ax.get_title()}


EVAL_ROWS = [
    # the shipped classifier at n=1000 (steps 100, 200), a user-trained one (step 300), the shipped one at n=100
    {"step": 100, "n": 1000, "classifier": "/x/fashion-mnist.pt", "classifier_source": "shipped",
     "classifier_accuracy": 0.9139, "classifier_sha256": "aaa", "fid_clf": 342.0, "fid": 90.0},
    {"step": 200, "n": 1000, "classifier": "/x/fashion-mnist.pt", "classifier_source": "shipped",
     "classifier_accuracy": 0.9139, "classifier_sha256": "aaa", "fid_clf": 300.0, "fid": 80.0},
    {"step": 300, "n": 1000, "classifier": "/c/fashion-mnist.pt", "classifier_source": "user-trained",
     "classifier_accuracy": 0.67, "classifier_sha256": "bbb", "fid_clf": 16.0, "fid": 70.0, "cls_acc": 0.3},
    {"step": 300, "n": 100, "classifier": "/x/fashion-mnist.pt", "classifier_source": "shipped",
     "classifier_accuracy": 0.9139, "classifier_sha256": "aaa", "fid_clf": 400.0, "fid": 120.0},
]  # fmt: skip


def series(ax: object) -> dict[str, list[float]]:
    """legend label -> the x values of that line."""
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]  # type: ignore[attr-defined]
    return {ln.get_label(): list(ln.get_xdata()) for ln in lines}


def test_metrics_png_and_report_never_join_other_classifiers_or_n(tmp_path: Path, drawn: list[Figure]) -> None:
    from gankit.report import eval_plots

    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in EVAL_ROWS))
    plot_metrics(tmp_path)
    eval_plots(EVAL_ROWS, ["fid_clf", "fid", "cls_acc"])
    assert len(drawn) == 4  # metrics.png, then the report's three panels
    for figures in (drawn[:1], drawn[1:]):
        p = panels(figures)
        assert set(p) == {"fid_clf (lower is better)", "fid (lower is better)", "cls_acc (higher is better)"}
        assert series(p["fid_clf (lower is better)"]) == {
            "n=1000, fashion-mnist.pt (shipped, acc 0.914)": [100.0, 200.0],
            "n=1000, fashion-mnist.pt (user-trained, acc 0.670)": [300.0],
            "n=100, fashion-mnist.pt (shipped, acc 0.914)": [300.0],
        }
        # Inception FID does not depend on the classifier: split by n alone
        assert series(p["fid (lower is better)"]) == {"n=1000": [100.0, 200.0, 300.0], "n=100": [300.0]}


def test_a_one_point_panel_has_one_tick_at_the_value(tmp_path: Path, drawn: list[Figure]) -> None:
    """Issue: a single evaluation got y ticks like 28.5 ... 31.5 around its one value."""
    (tmp_path / "eval.jsonl").write_text(json.dumps({"step": 600, "n": 60, "fid_clf": 30.0}) + "\n")
    plot_metrics(tmp_path)
    ax = panels(drawn)["fid_clf (lower is better)"]
    assert list(ax.get_yticks()) == [30.0] and list(ax.get_xticks()) == [600.0]  # type: ignore[attr-defined]
    lo, hi = ax.get_ylim()  # type: ignore[attr-defined]
    assert lo < 30.0 < hi and 30.0 - lo == pytest.approx(hi - 30.0) and hi - lo < 10


# ------------------------------------------------------------------------------ finding the data, notices


def test_eval_real_finds_the_folder_a_run_trained_on(
    tmp_path: Path,
    tiny_cfg: Callable[..., Config],
    no_loss_plot: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue: `gankit eval --real fashion-mnist` as README writes it failed offline after `train --data FOLDER`."""
    cfg = tiny_cfg("gan", tmp_path, **{"train.max_steps": 2})
    train(cfg, tmp_path / "runs" / "gan-1", log=quiet)
    monkeypatch.chdir(tmp_path)
    real = ["eval", "--real", "fashion-mnist", "--n", "40", "--device", "cpu", "--metrics", "fid_clf"]
    assert main(real) == 0
    out = capsys.readouterr().out
    assert f"data: fashion-mnist from {cfg.data.path} (recorded in runs/gan-1/run.json)" in out
    assert "fashion-mnist (40 train vs 40 test images): fid_clf " in out
    # a folder works too, as with train --data (these tiny files are 'idx' data: no classifier is assumed)
    assert (
        main(["eval", "--real", str(cfg.data.path), *real[3:], "--classifier", str(shipped_classifier("mnist"))]) == 0
    )
    assert "(40 train vs 40 test images): fid_clf " in capsys.readouterr().out


def test_a_data_error_comes_without_the_inception_notice_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no runs here, no data anywhere
    assert main(["eval", "--real", "mnist", "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("gankit eval: error: mnist not found")
    assert "Inception" not in captured.out


def test_the_inception_notice_is_printed_once_per_command_not_per_eval_every(
    tmp_path: Path, tiny_cfg: Callable[..., Config], no_loss_plot: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluate_mod, "SHOWN_NOTICES", set())  # a fresh command
    cfg = tiny_cfg("gan", tmp_path, **{"train.epochs": 3, "train.eval_every": 1, "train.eval_n": 40})
    cfg.train.eval_metrics = ["fid", "fid_clf"]
    logs: list[str] = []
    train(cfg, tmp_path / "run", log=logs.append)
    assert len((tmp_path / "run" / "eval.jsonl").read_text().splitlines()) == 3
    assert sum("put it in:" in m for m in logs) == 1  # the long notice: once
    skipped = [m for m in logs if m.startswith("fid: skipped")]
    assert len(skipped) == 3 and all("(details printed above)" in m for m in skipped[1:])


# ------------------------------------------------------------------------------ faults on disk


def test_damaged_reference_stats_are_recomputed_with_a_warning_naming_the_file(
    tmp_path: Path, tiny_cfg: Callable[..., Config], no_loss_plot: None
) -> None:
    run, _ = tiny_run("gan", tmp_path, tiny_cfg)
    first = evaluate(run, n=40, metrics=["fid_clf", "pr_clf"], device="cpu", log=quiet)
    stats = sorted((tmp_path / "xdg_cache" / "gankit" / "stats").glob("*.pt"))
    assert len(stats) == 2
    data = stats[0].read_bytes()
    stats[0].write_bytes(data[: len(data) // 3])  # truncated
    stats[1].write_bytes(b"\x00garbage" * 100)
    logs: list[str] = []
    assert evaluate(run, n=40, metrics=["fid_clf", "pr_clf"], device="cpu", log=logs.append) == first
    for path in stats:
        assert any(m.startswith(f"warning: {path}: damaged reference statistics") for m in logs)
        assert torch.load(path, weights_only=True)["features"].shape[0] == 40  # whole again
    logs.clear()
    evaluate(run, n=40, metrics=["fid_clf", "pr_clf"], device="cpu", log=logs.append)
    assert not any("warning" in m or "computing" in m for m in logs)


def _features_in_child(cfg: Config, clf: Path, out: multiprocessing.Queue) -> None:
    ev = Evaluation(
        cfg.data, split="test", n=50, seed=0, batch_size=50, device=torch.device("cpu"), classifier=clf, log=quiet
    )
    out.put(float(ev.dataset_features("test", ClassifierFeatures(clf)).sum()))


def test_two_processes_writing_the_same_reference_stats_leave_one_whole_file(
    tmp_path: Path, tiny_cfg: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg("gan", tmp_path)
    clf = shipped_classifier("fashion-mnist")
    assert clf is not None
    ctx = multiprocessing.get_context("fork")
    barrier, real_save = ctx.Barrier(2), torch.save

    def slow_save(obj: object, f: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        barrier.wait(timeout=60)  # both processes write at the same time, in small pieces
        data = buf.getvalue()
        for i in range(0, len(data), 2048):
            f.write(data[i : i + 2048])
            f.flush()
            time.sleep(0.002)

    monkeypatch.setattr(torch, "save", slow_save)
    results: multiprocessing.Queue = ctx.Queue()
    children = [ctx.Process(target=_features_in_child, args=(cfg, clf, results)) for _ in range(2)]
    for c in children:
        c.start()
    for c in children:
        c.join(timeout=120)
    assert [c.exitcode for c in children] == [0, 0]
    sums = [results.get(timeout=5) for _ in children]
    stats = tmp_path / "xdg_cache" / "gankit" / "stats"
    files = list(stats.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"  # no temporary file left behind
    saved = torch.load(files[0], weights_only=True)["features"]
    assert saved.shape == (50, 128) and sums[0] == sums[1] == pytest.approx(float(saved.sum()))


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
