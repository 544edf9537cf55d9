"""gankit.run.RunFolder: one module owns a run folder's layout; the training package steps and is
handed its end-of-epoch work as callbacks."""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import gankit
from gankit.config import Config
from gankit.data.errors import DataError
from gankit.run import RunFolder, RunFolderBusy

SRC = Path(gankit.__file__).parent
RUN_FOLDER_NAMES = (
    "run.json",
    "stats.jsonl",
    "metrics.jsonl",
    "eval.jsonl",
    "config.yaml",
    "loss.png",
    "G_last.pt",
    "G_best.pt",
    "last.pt",
    "last.prev.pt",
)
TOOLS = ("evaluate", "report", "serve", "cli", "export", "interop", "launch")


def _imports(path: Path) -> set[str]:
    """The gankit modules ``path`` imports (module- and function-level alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("gankit")}


def test_run_folder_file_names_are_spelled_in_run_py_only() -> None:
    spellers = {
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        for name in RUN_FOLDER_NAMES
        if f'"{name}"' in p.read_text() or f"'{name}'" in p.read_text()
    }
    assert spellers == {"run.py"}


def test_the_training_package_imports_no_tools() -> None:
    """Periodic evaluation reaches the loop as a callback: training/ never imports evaluate & co."""
    for path in sorted((SRC / "training").glob("*.py")):
        tools = {m for m in _imports(path) if m.split(".")[1] in TOOLS}
        assert not tools, f"{path.name} imports {tools}"


def test_finding_a_run_from_its_folder_checkpoints_or_a_checkpoint_file(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "runs" / "gan-1")
    run.checkpoints.mkdir(parents=True)
    run.g_last.write_bytes(b"x")
    for path in (run.path, run.checkpoints, run.g_last):
        assert RunFolder.containing(path).path == run.path
    assert RunFolder.containing(tmp_path / "G_last.pt") is None  # a loose file belongs to no run
    with pytest.raises(DataError, match="no config.yaml"):
        RunFolder.find(run.checkpoints)
    run.config.write_text("family: gan\n")
    assert RunFolder.find(run.checkpoints).path == run.path
    with pytest.raises(DataError, match="is a file, not a run folder"):
        RunFolder.find(run.g_last)

    older = RunFolder(tmp_path / "runs" / "gan-0")
    older.path.mkdir()
    os.utime(older.path, (time.time() - 60, time.time() - 60))
    assert RunFolder.newest("gan", root=tmp_path / "runs").path == run.path
    assert RunFolder.newest("cgan", root=tmp_path / "runs") is None


def test_snapshots_due_and_pruning(tmp_path: Path) -> None:
    """A G_epoch snapshot every tenth of the run's epochs (none at a mid-epoch end); the newest kept."""
    run = RunFolder(tmp_path)
    assert run.snapshots_due(4, 20, final=False) == [run.g_last]
    assert run.snapshots_due(5, 20, final=False) == [run.g_last, run.checkpoints / "G_epoch0006.pt"]
    assert run.snapshots_due(5, 20, final=True) == [run.g_last]
    run.checkpoints.mkdir()
    for epoch in (2, 4, 6):
        run.epoch_snapshot(epoch).write_bytes(b"x")
    run.g_last.write_bytes(b"x")
    run.prune_snapshots(keep=1)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["G_epoch0006.pt", "G_last.pt"]


def test_a_damaged_run_record_reads_as_empty(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.read_record() == {} and run.recorded_dataset() == {}
    run.record.write_text('["not", "a", "record"]')
    assert run.read_record() == {}
    run.record.write_text('{"dataset": "facades"}')  # a dataset that is not a table
    assert run.recorded_dataset() == {}


def test_the_training_lock_names_its_holder(tmp_path: Path) -> None:
    first, second = RunFolder(tmp_path), RunFolder(tmp_path)
    first.lock()
    with pytest.raises(RunFolderBusy, match=rf"being trained by another process \(pid {os.getpid()}\)"):
        second.lock()
    first.release()
    second.lock()  # free again once released
    second.release()


# ------------------------------------------------------------------------------ callbacks


def test_callbacks_handed_to_the_trainer_see_every_epoch_end_in_order(
    tmp_path: Path, tiny_cfg: Callable[..., Config], no_loss_plot: None
) -> None:
    """A callback after the default ones sees what they made (grid, metrics row) at each epoch end,
    with the generator in eval mode, and the loop's RNG untouched by it."""
    from gankit.training.callbacks import Callback, EpochEnd, default_callbacks
    from gankit.training.loop import Trainer

    calls: list[Any] = []

    class Recorder(Callback):
        def on_start(self, tr: Any) -> None:
            calls.append(("start", tr.step))

        def on_stats(self, tr: Any, row: dict[str, float]) -> None:
            calls.append(("stats", tr.step))

        def on_epoch_end(self, tr: Any, end: EpochEnd) -> None:
            assert not tr.generator.training and end.grid is not None
            assert tr.run.grid(end.epoch, final=end.final, step=end.step).is_file()
            torch.rand(100)  # forked: the training stream does not see it
            calls.append(("epoch_end", end.epoch, end.final, end.row["step"], tr.run.g_last.is_file()))

        def on_fit_end(self, tr: Any, final: dict[str, float] | None) -> None:
            calls.append(("fit_end", sorted(final or {})))

    # 200 images in batches of 20: 10 steps per epoch; the run ends at step 15, mid-epoch 2
    cfg = tiny_cfg("gan", tmp_path, **{"train.epochs": 2, "train.max_steps": 15, "train.log_every": 5})
    tr = Trainer(cfg, tmp_path / "run", log=lambda m: None, callbacks=[*default_callbacks(cfg), Recorder()])
    tr.fit()
    assert calls == [
        ("start", 0),
        ("stats", 5),
        ("stats", 10),
        ("epoch_end", 0, False, 10, True),
        ("stats", 15),
        ("epoch_end", 1, True, 15, True),
        ("fit_end", ["d_fake", "d_loss", "d_real", "g_loss"]),
    ]
    plain = tiny_cfg("gan", tmp_path, **{"train.epochs": 2, "train.max_steps": 15, "train.log_every": 5})
    Trainer(plain, tmp_path / "plain", log=lambda m: None).fit()
    ours, theirs = (
        torch.load(p / "checkpoints" / "G_last.pt", weights_only=True)["G"] for p in (tr.out_dir, tmp_path / "plain")
    )
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_trainer_without_the_evaluation_callback_says_eval_every_does_nothing(
    tmp_path: Path, tiny_cfg: Callable[..., Config]
) -> None:
    from gankit.training.loop import Trainer

    logs: list[str] = []
    cfg = tiny_cfg("gan", tmp_path, **{"train.eval_every": 1, "train.max_steps": 1})
    Trainer(cfg, tmp_path / "run", log=logs.append).close()
    assert any(m.startswith("warning: train.eval_every:") and "gankit.train()" in m for m in logs)
