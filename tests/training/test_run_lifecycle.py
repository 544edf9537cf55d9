"""A run's end: interruptions at an epoch's end or at the last step, and what a finished run says.

A stop signal during the step that ends an epoch (or the run) saves that step and leaves the
end-of-epoch work (grid, validation, metrics row, snapshots, plot) to ``--resume``; a SIGKILL in
the middle of that work leaves a state that says it is still owed. Either way the resumed run ends
with the files of an uninterrupted one.

The signals are real and arrive at a chosen moment (deterministic, unlike a timer in the test):
SIGINT and SIGTERM are sent to this process during the step, through the loop's own handler;
SIGKILL to a CLI process of its own while it writes the loss plot. Production code has no hook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import subprocess_env
from PIL import Image

from gankit.cli import main

KILLED_CLI = textwrap.dedent(
    """
    import os, signal, sys

    import gankit.training.callbacks as callbacks
    from gankit.cli import main
    from gankit.training.stats import read_jsonl

    at = int(sys.argv[1])
    plot = callbacks.plot_losses

    def plot_losses(stats, *args, **kwargs):  # SIGKILL while the end-of-run work of step `at` runs
        if read_jsonl(stats)[-1]["step"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return plot(stats, *args, **kwargs)

    callbacks.plot_losses = plot_losses
    sys.exit(main(sys.argv[2:]))
    """
)


STEPS = 5  # 6 pairs in batches of 2: epoch 1 ends at step 3, the run at step 5 (within epoch 2)


def _pairs(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / split / f"{i}.png")
    return root


def _train_args(data: Path, run: Path, steps: int = STEPS) -> list[str]:
    return [
        "train",
        "pix2pix",
        "--data",
        str(data),
        "--out",
        str(run),
        "--max-steps",
        str(steps),
        "--device",
        "cpu",
        "--no-progress",
        "--set",
        "data.resolution=32",
        "data.load_size=36",
        "model.ngf=4",
        "model.ndf=4",
        "train.batch_size=2",
        "train.n_samples=2",
        "train.log_every=1",
        "train.epochs=3",
        "optim.decay_epochs=1",
    ]


def _outputs(run: Path) -> dict[str, object]:
    """What the end-of-epoch work leaves in a run folder (timings left out)."""
    ckpt = run / "checkpoints"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = torch.load(ckpt / "G_best.pt", weights_only=True)
    last = torch.load(ckpt / "G_last.pt", weights_only=True)
    return {
        "samples": {p.name: p.read_bytes() for p in sorted((run / "samples").iterdir())},
        "metrics": [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")} for m in metrics],
        "loss.png": (run / "loss.png").is_file(),
        "G_best": (best["step"], [v.sum().item() for v in best["G"].values()]),
        "G_last": (last["step"], [v.sum().item() for v in last["G"].values()]),
        "state": torch.load(ckpt / "last.pt", weights_only=True)["pending_epoch_end"],
    }


def _signal_during_step(monkeypatch: pytest.MonkeyPatch, sig: signal.Signals, at: int) -> None:
    """Send ``sig`` to this process while step ``at`` runs (the loop's handler takes it)."""
    from gankit.training.loop import Trainer

    step = Trainer.train_step

    def train_step(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        if self.step + 1 == at:
            os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_interrupted_epoch_and_run_ends_are_completed_on_resume(
    tmp_path: Path, mpl_config_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = _pairs(tmp_path / "pairs")
    script = tmp_path / "killed_cli.py"
    script.write_text(KILLED_CLI)
    killed = tmp_path / "sigkill_end_of_run_work"
    proc = subprocess.Popen(  # a real SIGKILL needs a process of its own; it runs beside the rest
        [sys.executable, str(script), str(STEPS), *_train_args(data, killed)],
        env=subprocess_env(tmp_path, mpl_config_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert main(_train_args(data, tmp_path / "straight")) == 0
        straight_out = capsys.readouterr().out
        want = _outputs(tmp_path / "straight")
        assert sorted(want["samples"]) == ["epoch_0001.png", "step_0000005.png"]
        assert [m["step"] for m in want["metrics"]] == [3, 5] and want["state"] is None
        for sig, at in ((signal.SIGINT, STEPS), (signal.SIGTERM, 3)):  # the last step; the step ending epoch 1
            with monkeypatch.context() as m:
                _signal_during_step(m, sig, at)
                assert main(_train_args(data, tmp_path / sig.name)) == 128 + sig.value
            out = capsys.readouterr().out
            assert f"{sig.name}: saved step {at}" in out and "samples, snapshots and plots due now" in out
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, out + err

    for name, at in (("SIGINT", STEPS), ("SIGTERM", 3), (killed.name, STEPS)):
        run = tmp_path / name
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert state["step"] == at and state["pending_epoch_end"]["epoch"] == (at - 1) // 3, name
        assert main(["train", "pix2pix", "--resume", "--out", str(run), "--no-progress"]) == 0, name
        printed = capsys.readouterr().out
        assert f"step {at}: doing the end-of-" in printed
        assert "nothing to do" not in printed
        assert f"done: {STEPS} steps, epoch 2 in {run}" in printed
        assert _outputs(run) == want, name

    # a finished run: the same "done" line, and how to go on
    run = tmp_path / "SIGINT"
    assert main(["train", "pix2pix", "--resume", "--out", str(run), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"nothing to do: {run} is at step 5 of 5 (epoch 2 of 4); pass --max-steps 8 to train longer" in printed
    done = [line for line in straight_out.splitlines() if line.startswith("done: ")]
    assert done and done[0].replace("straight", "SIGINT") in printed.splitlines()
    assert main(["train", "pix2pix", "--resume", "--out", str(run), "--no-progress", "--max-steps", "8"]) == 0
    assert f"done: 8 steps, epoch 3 in {run}" in capsys.readouterr().out


def test_finished_run_by_epochs_suggests_more_epochs(tmp_path: Path, tiny_cfg, capsys) -> None:
    """Without --max-steps the epochs end the run, and only more epochs continue it."""
    cfg = tiny_cfg("gan", tmp_path, **{"train.epochs": 1, "data.max_images": 60})  # 3 steps
    from gankit.launch import train

    assert train(cfg, tmp_path / "run", log=lambda m: None).epoch == 1
    lines: list[str] = []
    result = train(cfg, tmp_path / "run", resume=True, log=lines.append)
    assert (result.step, result.epoch) == (3, 1)
    assert f"nothing to do: {tmp_path / 'run'} is at step 3 of 3 (epoch 1 of 1); pass --epochs 2 to train longer" in (
        lines
    )
