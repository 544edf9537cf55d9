"""Exact resume: N steps, stop, resume to 2N gives bitwise the weights and optimizer states of 2N straight.

Also: SIGINT / SIGTERM to the real CLI saves a loadable checkpoint, exits 128 + signal, and
``--resume`` continues from the saved step.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import GANKIT, deep_equal, subprocess_env, trainer_states, wait_for_rows, write_idx_dataset

from gankit.cli import main
from gankit.training.loop import Trainer
from gankit.training.stats import read_jsonl

STEPS_PER_EPOCH, N = 5, 7  # N crosses the first epoch boundary; 2N crosses the second


@pytest.mark.parametrize(
    ("preset", "augment"),
    [
        ("gan", "none"),
        ("cgan", "none"),
        ("dcgan-fmnist32", "none"),
        ("pix2pix", "none"),
        ("colorize", "none"),
        # differentiable augmentation draws every step; ADA's p moves (and N = 7 stops mid-interval)
        ("cgan", "ada"),
        ("pix2pix", "diffaug"),
    ],
)
def test_resume_is_bitwise_exact(
    preset: str, augment: str, tmp_path: Path, tiny_cfg, no_loss_plot, fake_paired_data
) -> None:
    paired = preset in ("pix2pix", "colorize")
    batch_size = 2 if paired else 20

    def cfg(max_steps: int):
        c = tiny_cfg(
            preset,
            tmp_path,
            **{
                "data.max_images": STEPS_PER_EPOCH * batch_size,
                "train.batch_size": batch_size,
                "train.epochs": 3,
                "train.max_steps": max_steps,
                "train.augment": augment,
                "train.ada_kimg": 0.2,  # p moves by 0.4 every 4 steps
            },
        )
        if paired:  # tiny U-Net + PatchGAN on random pairs; the U-Net's dropout draws from the RNG each step
            assert c.model.g_dropout > 0
            fake_paired_data(c, n=STEPS_PER_EPOCH * batch_size)
        return c

    quiet = lambda msg: None  # noqa: E731
    if preset == "cgan":
        assert cfg(1).model.d_dropout > 0  # dropout in D draws from the global RNG every step

    straight = Trainer(cfg(2 * N), tmp_path / "A", log=quiet)
    assert straight.steps_per_epoch == STEPS_PER_EPOCH
    assert straight.fit().step == 2 * N

    first = Trainer(cfg(N), tmp_path / "B", log=quiet)
    first.fit()
    half = trainer_states(first)
    assert first.step == N
    assert deep_equal(half["G"], trainer_states(straight)["G"]), "training did not move G between N and 2N"
    del first

    messages: list[str] = []
    resumed = Trainer(cfg(2 * N), tmp_path / "B", resume=True, log=messages.append)
    assert resumed.step == N
    assert any(f"at step {N}" in m for m in messages)
    assert deep_equal(trainer_states(resumed), half) == []  # the checkpoint restores what was in memory
    assert resumed.fit().step == 2 * N

    diffs = deep_equal(trainer_states(resumed), trainer_states(straight))
    assert diffs == [], diffs[:5]
    # the logged losses agree too, and the resumed log has exactly one row per step
    rows_a = read_jsonl(tmp_path / "A" / "stats.jsonl")
    rows_b = read_jsonl(tmp_path / "B" / "stats.jsonl")
    assert [r["step"] for r in rows_b] == list(range(1, 2 * N + 1))
    assert rows_b == rows_a
    if augment == "ada":
        assert any(r["ada_p"] > 0 for r in rows_a[N:]), "p never rose: the resumed steps did not augment"
    saved = torch.load(tmp_path / "B" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == 2 * N
    assert deep_equal(saved["G"], straight.G.state_dict()) == []


def test_resume_refuses_another_family(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    from gankit.training.checkpoint import CheckpointError

    Trainer(tiny_cfg("gan", tmp_path, **{"train.max_steps": 1}), tmp_path / "run", log=lambda m: None).fit()
    with pytest.raises(CheckpointError, match="family 'gan'"):
        Trainer(tiny_cfg("cgan", tmp_path), tmp_path / "run", resume=True, log=lambda m: None)


def test_resume_falls_back_to_previous_checkpoint(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    cfg = tiny_cfg("gan", tmp_path, **{"train.max_steps": 25, "train.epochs": 3})  # 10 steps/epoch
    Trainer(cfg, tmp_path / "run", log=lambda m: None).fit()
    ckpt = tmp_path / "run" / "checkpoints"
    # the last step is saved once before the end-of-run work (marked as owed) and once after it
    prev = torch.load(ckpt / "last.prev.pt", weights_only=True)
    assert prev["step"] == 25 and prev["pending_epoch_end"]["final"] is True
    assert torch.load(ckpt / "last.pt", weights_only=True)["pending_epoch_end"] is None
    (ckpt / "last.pt").write_bytes((ckpt / "last.pt").read_bytes()[:1000])  # torn write
    messages: list[str] = []
    tr = Trainer(cfg, tmp_path / "run", resume=True, log=messages.append)
    assert tr.step == 25 and tr.pending_epoch_end is not None  # the end-of-run work is redone
    assert any("last.pt" in m and "last.prev.pt" in m for m in messages)


# ------------------------------------------------------------------------------------ signals


def test_sigint_and_sigterm_save_and_resume(tmp_path: Path, mpl_config_dir: Path, capsys) -> None:
    idx = write_idx_dataset(tmp_path / "idx")
    env = subprocess_env(tmp_path, mpl_config_dir)
    procs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        run = tmp_path / f"run_{sig.name}"
        cmd = [
            *GANKIT,
            "train",
            "gan",
            "--data",
            str(idx),
            "--out",
            str(run),
            "--device",
            "cpu",
            "--no-progress",
            "--epochs",
            "100000",
            "--set",
            "model.g_hidden=[16]",
            "model.d_hidden=[16]",
            "model.z_dim=8",
            "train.batch_size=20",
            "train.log_every=1",
            "train.n_samples=4",
        ]
        procs[sig] = (
            run,
            subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        )
    try:
        for sig, (run, proc) in procs.items():
            wait_for_rows(proc, run / "stats.jsonl", 3)
            proc.send_signal(sig)
        results = {sig: proc.communicate(timeout=120) for sig, (run, proc) in procs.items()}
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for sig, (run, proc) in procs.items():
        out, err = results[sig]
        assert proc.returncode == 128 + sig.value, (sig, proc.returncode, out, err)
        assert "Traceback" not in err, err
        assert f"{sig.name}: saved step" in out + err
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        step = state["step"]
        assert step >= 3
        assert torch.load(run / "checkpoints" / "G_last.pt", weights_only=True)["step"] == step
        rows = read_jsonl(run / "stats.jsonl")
        assert rows[-1]["step"] == step  # the interval up to the stop was flushed

        capsys.readouterr()
        assert main(["train", "gan", "--out", str(run), "--resume", "--max-steps", str(step + 4), "--no-progress"]) == 0
        printed = capsys.readouterr().out
        assert f"resumed {run} at step {step}" in printed
        assert f"done: {step + 4} steps" in printed
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == step + 4
        steps = [r["step"] for r in read_jsonl(run / "stats.jsonl")]
        assert steps == list(range(1, step + 5))
