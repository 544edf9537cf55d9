"""Faults: SIGKILL at random moments, damaged checkpoints, non-finite losses, unwritable outputs."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import GANKIT, make_tiny_cfg, subprocess_env, write_idx_dataset

from gankit.config import ConfigError
from gankit.training.checkpoint import CheckpointError, load_training_state, save_training_state
from gankit.training.loop import NonFiniteLoss, Trainer

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
    trainer.objective.loss = _ExplodingLoss(trainer.objective.loss, {3, 6})
    messages: list[str] = []
    trainer.log = messages.append
    trainer.fit()
    assert trainer.step == 10 and trainer.skipped_steps == 2
    assert trainer.opt_D.param_groups[0]["lr"] == pytest.approx(2e-4 / 4)
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
