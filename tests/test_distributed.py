"""Data-parallel training with torchrun on CPU (gloo, 2 processes).

Tolerance for the 1-process vs 2-process comparison: both runs see the same global batch of real
images at every step (rank r takes the r-th half of the 1-process batch), but every rank draws its
own noise, so fake-image terms differ by sampling noise. The logged losses (means over all ranks)
must agree within 0.15 absolute on every logged row of the first epochs; the weights must differ
(distinct noise) while staying close.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import subprocess_env, write_idx_dataset

WORKER = textwrap.dedent(
    """
    import os, sys, torch
    from gankit.config import make_config
    from gankit.training.loop import Trainer
    from gankit.training import distributed

    data, out, dump, steps, bs = sys.argv[1:6]
    torch.set_num_threads(1)
    cfg = make_config("gan", overrides={
        "data.path": data, "train.max_steps": int(steps), "train.batch_size": int(bs), "train.device": "cpu",
        "train.progress": False, "train.log_every": 2, "model.g_hidden": [32], "model.d_hidden": [32],
        "model.z_dim": 8, "train.n_samples": 4,
    })
    trainer = Trainer(cfg, out, log=lambda s: None)
    trainer.fit()
    rank = trainer.dist.rank
    torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict()}, os.path.join(dump, f"rank{rank}.pt"))
    distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, mpl: Path, data: Path, out: Path, dump: Path, *, nproc: int, bs: int, steps: int) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    dump.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        str(data),
        str(out),
        str(dump),
        str(steps),
        str(bs),
    ]
    if nproc == 1:  # plain process: the same code without torch.distributed
        cmd = [sys.executable, str(script), str(data), str(out), str(dump), str(steps), str(bs)]
    res = subprocess.run(cmd, env=subprocess_env(tmp_path, mpl), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: Path) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ddp")
    data = write_idx_dataset(tmp / "idx")
    _launch(tmp, mpl_config_dir, data, tmp / "run2", tmp / "dump2", nproc=2, bs=10, steps=24)
    _launch(tmp, mpl_config_dir, data, tmp / "run1", tmp / "dump1", nproc=1, bs=20, steps=24)
    return {"tmp": tmp, "run2": tmp / "run2", "run1": tmp / "run1"}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_ranks_hold_identical_parameters(runs: dict[str, Path]) -> None:
    r0 = torch.load(runs["tmp"] / "dump2" / "rank0.pt", weights_only=True)
    r1 = torch.load(runs["tmp"] / "dump2" / "rank1.pt", weights_only=True)
    for net in ("G", "D"):
        for k in r0[net]:
            assert torch.equal(r0[net][k], r1[net][k]), f"{net}.{k} differs between ranks"


def test_run_folder_written_once(runs: dict[str, Path]) -> None:
    rows = _rows(runs["run2"])
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps))  # no row written twice
    assert steps[-1] == 24
    # 200 images / (10 per rank x 2 ranks) = 10 steps per epoch -> 2 epoch grids + the final partial one
    assert sorted(p.name for p in (runs["run2"] / "samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
        "step_0000024.png",
    ]
    metrics = [json.loads(line) for line in (runs["run2"] / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    state = torch.load(runs["run2"] / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["images_seen"] == 24 * 20


def test_two_processes_match_one_with_same_global_batch(runs: dict[str, Path]) -> None:
    two, one = _rows(runs["run2"]), _rows(runs["run1"])
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(two, one):
        for key in ("d_loss", "g_loss"):
            assert abs(a[key] - b[key]) < 0.15, (a["step"], key, a[key], b[key])
    w2 = torch.load(runs["tmp"] / "dump2" / "rank0.pt", weights_only=True)["G"]
    w1 = torch.load(runs["tmp"] / "dump1" / "rank0.pt", weights_only=True)["G"]
    diffs = [(w2[k] - w1[k]).abs().max().item() for k in w1]
    assert 0 < max(diffs) < 0.05  # different noise, same data: close but not equal


def test_resume_under_another_world_size(runs: dict[str, Path], tmp_path: Path, mpl_config_dir: Path) -> None:
    """A 2-process run continues in 1 process at the same position in the data."""
    import shutil

    run = tmp_path / "moved"
    shutil.copytree(runs["run2"], run)
    data = runs["tmp"] / "idx"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gankit",
            "train",
            "gan",
            "--resume",
            "--out",
            str(run),
            "--data",
            str(data),
            "--max-steps",
            "30",
            "--batch-size",
            "20",
            "--no-progress",
        ],
        env=subprocess_env(tmp_path, mpl_config_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed" in res.stdout and "at step 24" in res.stdout  # 24 x 20 images = 24 steps of 20
    assert _rows(run)[-1]["step"] == 30


def test_sampler_shards_are_disjoint_and_cover_the_global_batch() -> None:
    from gankit.data.base import EpochSampler

    one = EpochSampler(100, 20, seed=3)
    ranks = [EpochSampler(100, 10, seed=3, rank=r, world_size=2) for r in range(2)]
    assert one.steps_per_epoch == ranks[0].steps_per_epoch == 5
    for step in range(12):  # crosses epoch boundaries: reshuffled per epoch, same on every rank
        a, b = (s.indices(step) for s in ranks)
        assert set(a.tolist()).isdisjoint(b.tolist())
        assert torch.equal(torch.cat([a, b]), one.indices(step))
    assert not torch.equal(one.indices(0), one.indices(5))  # epoch 1 is a new permutation
