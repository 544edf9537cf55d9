"""Faults: SIGKILL at random moments, damaged checkpoints, snapshots, logs and run files, two processes
training one run folder, non-finite losses, unwritable outputs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import GANKIT, make_tiny_cfg, subprocess_env, write_idx_dataset

from gankit.config import ConfigError
from gankit.run import load_training_state, save_training_state
from gankit.training.checkpoint import CheckpointError
from gankit.training.loop import NonFiniteLoss, Trainer
from gankit.training.stats import read_jsonl

TRAIN_ARGS = [
    "--max-steps",
    "150",
    "--batch-size",
    "10",
    "--no-progress",
    "--seed",
    "5",
    "--set",
    "model.g_hidden=[32]",
    "model.d_hidden=[32]",
    "model.z_dim=8",
    "train.n_samples=4",
    "train.checkpoint_minutes=0.0002",
    "train.log_every=1",
]


def _checkpointed_since(run: Path, t: float) -> bool:
    try:
        return (run / "checkpoints" / "last.pt").stat().st_mtime > t
    except OSError:
        return False


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return {**{f"G.{k}": v for k, v in state["G"].items()}, **{f"D.{k}": v for k, v in state["D"].items()}}


def test_sigkill_at_random_times_then_resume_matches_straight_run(tmp_path: Path, mpl_config_dir: Path) -> None:
    """Kill a real training process with SIGKILL several times; every resume starts from an intact
    checkpoint, and the final weights equal those of an uninterrupted run bit for bit."""
    data = write_idx_dataset(tmp_path / "idx")
    env = subprocess_env(tmp_path, mpl_config_dir)
    straight = tmp_path / "straight"
    res = subprocess.run(
        [*GANKIT, "train", "gan", "--data", str(data), "--out", str(straight), *TRAIN_ARGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills, resumed_steps = 0, []
    for trial in range(8):
        args = [*GANKIT, "train", "gan", "--data", str(data), "--out", str(run), *TRAIN_ARGS]
        if trial:
            args.append("--resume")
        launched = time.time()
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        # kill only once this process trains (it has written a checkpoint of its own), at a random moment after
        while not _checkpointed_since(run, launched) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None and trial < 7:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err[-2000:]
        state = load_training_state(run / "checkpoints", log=lambda m: None)  # never corrupt
        assert state is not None and 0 <= state["step"] <= 150
        resumed_steps.append(state["step"])
    print(f"SIGKILL trials: {kills} kills, resumed from steps {resumed_steps}, final run completed")
    assert proc.returncode == 0
    assert kills >= 3, "the process finished before it could be killed often enough"
    assert resumed_steps == sorted(resumed_steps)  # no progress lost beyond the last checkpoint
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_truncated_last_checkpoint_falls_back_to_previous(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    save_training_state(ckpt, {"config": {}, "G": {}, "step": 1})
    save_training_state(ckpt, {"config": {}, "G": {}, "step": 2})
    data = (ckpt / "last.pt").read_bytes()
    (ckpt / "last.pt").write_bytes(data[: len(data) // 2])
    messages: list[str] = []
    state = load_training_state(ckpt, log=messages.append)
    assert state is not None and state["step"] == 1
    assert len(messages) == 1 and "last.pt" in messages[0] and "last.prev.pt" in messages[0]
    (ckpt / "last.prev.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        load_training_state(ckpt)


class _ExplodingLoss:
    """Wraps a GANLoss so that the discriminator loss is NaN at chosen calls."""

    def __init__(self, inner, bad_calls: set[int]) -> None:
        self.inner, self.bad, self.calls = inner, bad_calls, 0
        self.g, self.gradient_penalty = inner.g, inner.gradient_penalty

    def d(self, real, fake):
        self.calls += 1
        lr, lf = self.inner.d(real, fake)
        return (lr * float("nan"), lf) if self.calls in self.bad else (lr, lf)


def test_nonfinite_loss_stops_before_the_update_and_keeps_checkpoint(tmp_idx_trainer) -> None:
    trainer: Trainer = tmp_idx_trainer(**{"train.max_steps": 12})
    trainer.objective.loss = _ExplodingLoss(trainer.objective.loss, {8})
    with pytest.raises(NonFiniteLoss, match=r"step 8: d_loss = nan"):
        trainer.fit()
    assert trainer.step == 7  # detected within the step: nothing of step 8 applied
    assert all(torch.isfinite(p).all() for p in trainer.D.parameters())
    # the epoch-end checkpoint (5 steps per epoch) is the last good state
    assert torch.load(trainer.ckpt_dir / "last.pt", weights_only=True)["step"] == 5


def test_nonfinite_loss_skip_mode_drops_step_and_halves_lr(tmp_idx_trainer) -> None:
    trainer: Trainer = tmp_idx_trainer(**{"train.max_steps": 10, "train.on_nonfinite": "skip"})
    lr = trainer.cfg.optim.lr_d
    trainer.objective.loss = _ExplodingLoss(trainer.objective.loss, {3, 6})
    messages: list[str] = []
    trainer.log = messages.append
    trainer.fit()
    assert trainer.step == 10 and trainer.skipped_steps == 2
    assert trainer.opt_D.param_groups[0]["lr"] == pytest.approx(lr / 4)  # halved at each skipped step
    assert sum("step skipped" in m for m in messages) == 2
    assert all(torch.isfinite(p).all() for p in trainer.D.parameters())


@pytest.fixture
def tmp_idx_trainer(tmp_path: Path):
    data = write_idx_dataset(tmp_path / "idx", n_train=50)

    def make(**overrides) -> Trainer:
        cfg = make_tiny_cfg(
            "gan", tmp_path, **{"data.path": str(data), "train.batch_size": 10, "train.epochs": 10, **overrides}
        )
        return Trainer(cfg, tmp_path / "run", log=lambda s: None)

    return make


def test_output_path_that_is_a_file_fails_before_training(tmp_path: Path, tmp_idx_trainer) -> None:
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"run.*cannot write to the run folder"):
        tmp_idx_trainer()


def test_disk_full_during_checkpoint_is_a_clear_error(tmp_idx_trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer: Trainer = tmp_idx_trainer(**{"train.max_steps": 10})
    trainer.fit()  # a good checkpoint at step 10
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("gankit.training.checkpoint.torch.save", full)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint there is intact"):
        trainer.save()
    assert torch.load(trainer.ckpt_dir / "last.pt", weights_only=True)["step"] == 10


# ------------------------------------------------------------------ the run folder: damage and two writers


def _gan_args(run: Path, data: Path, steps: int) -> list[str]:
    return [
        "train",
        "gan",
        "--data",
        str(data),
        "--out",
        str(run),
        "--max-steps",
        str(steps),
        "--no-progress",
        "--set",
        "model.g_hidden=[16]",
        "model.d_hidden=[16]",
        "model.z_dim=8",
        "train.batch_size=20",
        "train.n_samples=4",
        "train.log_every=1",
    ]


@pytest.fixture
def finished_run(tmp_path: Path, tiny_idx: Path, no_loss_plot, capsys) -> tuple[Path, list[str]]:
    """A tiny gan run of 4 steps made by the CLI, and the arguments that made it."""
    from gankit.cli import main

    run = tmp_path / "run"
    args = _gan_args(run, tiny_idx, 4)
    assert main(args) == 0
    capsys.readouterr()
    return run, args


def test_second_trainer_of_a_run_folder_refuses(tmp_path: Path, tiny_idx: Path, no_loss_plot, capsys) -> None:
    """One process trains a run folder at a time; the second says who holds it, and never removes
    a folder the first one has just created."""
    from gankit.cli import main
    from gankit.launch import train
    from gankit.run import RunFolderBusy

    run = tmp_path / "run"
    cfg = make_tiny_cfg("gan", tmp_path, **{"data.path": str(tiny_idx), "train.max_steps": 2})
    first = Trainer(cfg, run, log=lambda m: None)  # a fresh folder, no checkpoint yet
    with pytest.raises(RunFolderBusy):
        train(cfg, run, log=lambda m: None)
    assert run.is_dir() and (run / "config.yaml").is_file()  # the first run's folder is left alone
    resume = ["train", "gan", "--resume", "--out", str(run), "--max-steps", "4", "--no-progress"]
    for args in (_gan_args(run, tiny_idx, 4), resume):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"gankit train: error: {run} is being trained by another process (pid {os.getpid()}); "
            f"wait for it or choose another --out"
        )
    assert first.fit().step == 2  # the first run is unharmed, and lets go of the folder when done
    assert main(resume) == 0
    assert [r["step"] for r in read_jsonl(run / "stats.jsonl")] == [1, 2, 3, 4]


def test_state_written_but_not_yet_renamed_is_found(tmp_path: Path) -> None:
    """A kill between the renames of save_training_state leaves .last.pt.new (complete) and no
    last.pt: the newest state is used; without it, last.prev.pt is used with a warning."""
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    save_training_state(ckpt, {"config": {}, "G": {}, "step": 1})
    save_training_state(ckpt, {"config": {}, "G": {}, "step": 2})
    save_training_state(ckpt, {"config": {}, "G": {}, "step": 3})
    os.replace(ckpt / "last.pt", ckpt / ".last.pt.new")
    messages: list[str] = []
    assert load_training_state(ckpt, log=messages.append)["step"] == 3 and messages == []
    (ckpt / ".last.pt.new").unlink()
    assert load_training_state(ckpt, log=messages.append)["step"] == 2
    assert messages == [f"warning: {ckpt / 'last.pt'}: missing; resuming from last.prev.pt instead"]


def test_damaged_generator_snapshots_are_rebuilt_or_forgotten(
    tmp_path: Path, tiny_cfg, fake_paired_data, no_loss_plot
) -> None:
    """G_last.pt is rebuilt from the training state; G_best.pt (older weights) cannot be, so the
    next validation writes a new one; a damaged per-epoch snapshot is named."""
    cfg = tiny_cfg("pix2pix", tmp_path, **{"train.max_steps": 4, "train.epochs": 2, "optim.decay_epochs": 0})
    fake_paired_data(cfg)  # 8 pairs in batches of 2: 4 steps per epoch
    Trainer(cfg, tmp_path / "run", log=lambda m: None).fit()
    ckpt = tmp_path / "run" / "checkpoints"
    good = torch.load(ckpt / "G_last.pt", weights_only=True)
    (ckpt / "G_last.pt").write_bytes(b"\0" * 100)
    (ckpt / "G_best.pt").write_bytes((ckpt / "G_best.pt").read_bytes()[:500])
    (ckpt / "G_epoch0001.pt").write_bytes((ckpt / "G_epoch0001.pt").read_bytes()[:500])
    messages: list[str] = []
    cfg.train.max_steps = 8
    tr = Trainer(cfg, tmp_path / "run", resume=True, log=messages.append)
    warnings = [m for m in messages if m.startswith("warning")]
    assert [m.split(": ")[1] for m in warnings] == [
        str(ckpt / name) for name in ("G_last.pt", "G_best.pt", "G_epoch0001.pt")
    ]
    assert "rewritten from" in warnings[0] and "the next validation writes a new one" in warnings[1]
    rebuilt = torch.load(ckpt / "G_last.pt", weights_only=True)
    assert rebuilt["step"] == 4 and all(torch.equal(rebuilt["G"][k], v) for k, v in good["G"].items())
    assert tr.best == {}
    tr.fit()
    assert torch.load(ckpt / "G_best.pt", weights_only=True)["step"] == 8


def test_torn_and_garbage_log_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    from gankit.training.stats import JsonlLog

    path = tmp_path / "eval.jsonl"
    path.write_bytes(
        b'{"step": 1, "x": 1}\n\xff\xfe\n[1, 2]\n{"step": "two"}\n\x00\x00\x00\n{"step": 3, "x": 3}\n{"step": 4, "x'
    )
    JsonlLog(path).append({"step": 5, "x": 5})  # after a torn line: a line of its own
    warnings: list[str] = []
    rows = read_jsonl(path, warn=warnings.append)
    assert [r["step"] for r in rows] == [1, 3, 5]
    assert warnings == [
        f"warning: {path}, line 2 (and 4 more): not a row of gankit's log (torn by a kill, or damaged); skipped"
    ]


def test_resume_drops_damaged_log_lines(finished_run: tuple[Path, list[str]], capsys) -> None:
    from gankit.cli import main

    run, args = finished_run
    with open(run / "stats.jsonl", "ab") as f:
        f.write(b'{"step": 5, "d_lo')  # a write torn by a kill
    assert main(["train", "gan", "--resume", "--out", str(run), "--max-steps", "6", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"warning: {run / 'stats.jsonl'}, line 5: not a row of gankit's log" in out
    assert [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()] == list(range(1, 7))


@pytest.mark.parametrize("damage", ["garbage", "missing", "not a mapping"])
def test_damaged_config_yaml_is_recovered_from_the_checkpoint(
    damage: str, finished_run: tuple[Path, list[str]], capsys
) -> None:
    from gankit.cli import main

    run, _ = finished_run
    config = run / "config.yaml"
    want = yaml.safe_load(config.read_text())
    if damage == "missing":
        config.unlink()
    else:
        config.write_bytes(b"\x00\x01 {[" if damage == "garbage" else b"- a list\n")
    assert main(["train", "gan", "--resume", "--out", str(run), "--max-steps", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"warning: {config}: {'missing' if damage == 'missing' else 'damaged'}" in out
    assert f"using the config saved in {run / 'checkpoints' / 'last.pt'}" in out
    assert "done: 5 steps" in out
    got = yaml.safe_load(config.read_text())
    assert got["model"] == want["model"] and got["train"]["max_steps"] == 5


def test_damaged_config_without_checkpoint_is_a_one_line_error(finished_run: tuple[Path, list[str]], capsys) -> None:
    from gankit.cli import main

    run, _ = finished_run
    (run / "config.yaml").write_text("model: [unclosed\n")
    for name in ("last.pt", "last.prev.pt"):
        (run / "checkpoints" / name).write_bytes(b"garbage")
    assert main(["train", "gan", "--resume", "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"gankit train: error: {run / 'config.yaml'}: damaged")
    assert err.endswith("restore the file, or train into another --out")


def test_damaged_run_record_is_rewritten(finished_run: tuple[Path, list[str]], capsys) -> None:
    from gankit.cli import main

    run, _ = finished_run
    (run / "run.json").write_text('["not", "a record"]')
    assert main(["train", "gan", "--resume", "--out", str(run), "--max-steps", "5", "--no-progress"]) == 0
    assert f"warning: {run / 'run.json'}: damaged (TypeError); rewritten" in capsys.readouterr().out
    assert json.loads((run / "run.json").read_text())["family"] == "gan"
