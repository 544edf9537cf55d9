"""Data-parallel training with torchrun on CPU (gloo, 2 processes).

Tolerance for the 1-process vs 2-process comparison: both runs see the same global batch of real
images at every step (rank r takes the r-th half of the 1-process batch), but every rank draws its
own noise, so fake-image terms differ by sampling noise. The logged losses (means over all ranks)
must agree within 0.15 absolute on every logged row of the first epochs; the weights must differ
(distinct noise) while staying close.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import free_port, subprocess_env, write_idx_dataset

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
        str(free_port()),
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
    (tmp_path / f"stderr{nproc}.txt").write_text(res.stderr)


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


def test_torchrun_stderr_has_no_future_warning(runs: dict[str, Path]) -> None:
    """torch 2.14 deprecates DDP's ``broadcast_buffers``; passing it printed a FutureWarning per rank."""
    stderr = (runs["tmp"] / "stderr2.txt").read_text()
    assert "FutureWarning" not in stderr, stderr[-2000:]
    assert "Warning" not in stderr, stderr[-2000:]


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


def test_resume_with_fewer_processes_counts_steps_as_before(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    """2 processes x batch 10, resumed in 1 process x batch 10: a step is now half the images, but
    --max-steps, the messages, file names, stats.jsonl and the checkpoint count steps as before."""
    import shutil

    from gankit.cli import main

    run = tmp_path / "moved"
    shutil.copytree(runs["run2"], run)
    args = ["train", "gan", "--resume", "--out", str(run), "--no-progress"]
    capsys.readouterr()
    assert main([*args, "--max-steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "continuing at step 24 after 480 images seen" in out
    # 20 steps of 10 images per epoch from now on: one more epoch is 44
    assert f"nothing to do: {run} is at step 24 of 20 (epoch 3 of 20); pass --max-steps 44 to train longer" in out
    assert f"done: 24 steps, epoch 3 in {run}" in out

    assert main([*args, "--max-steps", "30"]) == 0
    out = capsys.readouterr().out
    assert f"resumed {run} at step 24" in out
    assert "20 steps/epoch, 30 steps," in out
    assert f"done: 30 steps, epoch 3 in {run}" in out
    assert [r["step"] for r in _rows(run)] == list(range(2, 31, 2))  # log_every 2, no gap, no repeat
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
        "step_0000024.png",
        "step_0000030.png",
    ]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [10, 20, 24, 30]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert (state["step"], state["position"], state["images_seen"], state["world_size"]) == (30, 54, 540, 1)
    assert torch.load(run / "checkpoints" / "G_last.pt", weights_only=True)["step"] == 30


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


# ------------------------------------------------------------ gradient penalty and sync_bn under DDP

PENALTY_WORKER = textwrap.dedent(
    """
    import copy, os, sys, torch
    from torch import nn
    import gankit.objectives as objectives
    from gankit.config import make_config
    from gankit.data.base import DataInfo
    from gankit.families import get_family
    from gankit.objectives import build_objective
    from gankit.training import distributed

    out, images, part = sys.argv[1:4]
    torch.set_num_threads(1)
    env, device = distributed.init(torch.device("cuda" if part == "sync_bn" else "cpu"))
    rank, world = env.rank, env.world_size
    N = 8
    g = torch.Generator().manual_seed(1)
    real, fake = (torch.rand(N, 1, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    alpha = torch.rand(N, 1, 1, 1, generator=g)
    lo, hi = rank * N // world, (rank + 1) * N // world  # this rank's share of the global batch
    dump = {}

    if part == "penalty":  # the WGAN-GP critic loss through DDP, the penalty via D_local (DCGAN, layer norm)
        cfg = make_config("dcgan", overrides={"loss.gan": "wgan-gp", "model.ngf": 4, "model.ndf": 4})
        info = DataInfo(channels=1, resolution=16)
        family = get_family("dcgan")
        torch.manual_seed(0)
        _, D = family.build(cfg, info)
        penalty = objectives.gradient_penalty

        def pinned(critic, r, f, generator=None, *, scaler=None):
            # the interpolates of the global batch, so that 1 and 2 processes see the same points
            x_hat = alpha[lo:hi] * r + (1 - alpha[lo:hi]) * f
            return penalty(critic, x_hat, x_hat, scaler=scaler)

        objectives.gradient_penalty = pinned
        obj = build_objective(cfg, info, family)
        D_step = distributed.wrap(D, env, device)
        loss, stats = obj.d_loss(D_step, {"image": real[lo:hi]}, fake[lo:hi], None, D_local=D)
        loss.backward()
        dump["gp"] = distributed.mean_across(stats["gp"].detach(), env)
        dump["loss"] = distributed.mean_across(loss.detach(), env)
        dump["grads"] = {k: p.grad.clone() for k, p in D.named_parameters()}
        dump["ddp"] = isinstance(D_step, nn.parallel.DistributedDataParallel)

    if part == "sync_bn":  # CUDA: BatchNorm -> SyncBatchNorm, running stats of the global batch
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 3)).to(device)
        x = torch.randn(N, 1, 8, 8, generator=g).to(device)
        ref = copy.deepcopy(net)
        ref(x)  # one process, the whole global batch
        wrapped = distributed.wrap(net, env, device, sync_bn=True)
        wrapped(x[lo:hi]).sum().backward()
        bn = distributed.unwrap(wrapped)[1]
        dump["bn_type"] = type(bn).__name__
        dump["bn"] = {k: v.cpu() for k, v in bn.named_buffers()}
        dump["bn_ref"] = {k: v.cpu() for k, v in ref[1].named_buffers()}

        from gankit.training.loop import Trainer  # a real run with train.sync_bn: DCGAN on a tiny folder

        tcfg = make_config("dcgan", overrides={
            "data.name": "folder", "data.path": images, "data.resolution": 16, "data.channels": 1,
            "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8, "train.batch_size": 4, "train.max_steps": 3,
            "train.device": "cuda", "train.progress": False, "train.n_samples": 4, "train.sync_bn": True,
        })
        tr = Trainer(tcfg, os.path.join(out, "run"), log=lambda s: None)
        tr.fit()
        dump["trainer_bn_types"] = sorted({type(m).__name__ for net in (tr.G, tr.D) for m in net.modules()
                                           if "BatchNorm" in type(m).__name__})
        dump["trainer_buffers"] = {f"{n}.{k}": v.cpu() for n, net in (("G", tr.G), ("D", tr.D))
                                   for k, v in net.named_buffers()}
    if part == "ada":  # a real train.augment=ada run (DCGAN on a tiny folder); p and r_t recorded per rank
        from gankit.augment import AdaptiveAugment
        from gankit.training.loop import Trainer

        seen = {"p": [], "local": [], "mean": []}
        update = AdaptiveAugment.update

        def recording(self, sign, reduce=None):
            def recorded_reduce(t):
                mean = reduce(t)
                seen["local"].append(float(t))
                seen["mean"].append(float(mean))
                return mean

            update(self, sign, recorded_reduce)
            seen["p"].append(self.p)

        AdaptiveAugment.update = recording
        tcfg = make_config("dcgan", overrides={
            "data.name": "folder", "data.path": images, "data.resolution": 16, "data.channels": 1,
            "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8, "train.batch_size": 4, "train.max_steps": 12,
            "train.epochs": 4, "train.device": "cpu", "train.progress": False, "train.n_samples": 4,
            "train.augment": "ada", "train.ada_target": 0.3, "train.ada_kimg": 0.128,  # p moves 0.25 a time
        })
        Trainer(tcfg, os.path.join(out, "run"), log=lambda s: None).fit()
        dump["ada"] = seen
    torch.save(dump, os.path.join(out, f"rank{rank}.pt"))
    distributed.shutdown()
    """
)


def _run_worker(tmp: Path, mpl: Path, part: str, nprocs: tuple[int, ...]) -> dict[int, list[dict]]:
    from conftest import write_image_folder

    script = tmp / "penalty_worker.py"
    script.write_text(PENALTY_WORKER)
    images = write_image_folder(tmp / "images", n=24)
    dumps: dict[int, list[dict]] = {}
    for nproc in nprocs:
        out = tmp / f"{part}{nproc}"
        out.mkdir()
        cmd = [sys.executable, str(script), str(out), str(images), part]
        if nproc > 1:
            launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
            cmd[1:1] = [*launcher, "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
        res = subprocess.run(cmd, env=subprocess_env(tmp, mpl), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        dumps[nproc] = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(nproc)]
    return dumps


@pytest.fixture(scope="module")
def penalty_runs(tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: Path) -> dict[int, list[dict]]:
    return _run_worker(tmp_path_factory.mktemp("ddp_gp"), mpl_config_dir, "penalty", (1, 2))


def test_gradient_penalty_under_ddp_matches_one_process(penalty_runs: dict[int, list[dict]]) -> None:
    """The penalty runs through the module inside DDP (double backward is not supported by DDP); its
    gradients still join DDP's all-reduce, so 2 processes with half the batch each give the penalty,
    loss and critic gradients of 1 process with the whole batch."""
    (one,), (r0, r1) = penalty_runs[1], penalty_runs[2]
    assert not one["ddp"] and r0["ddp"] and r1["ddp"]
    assert one["gp"].item() > 0
    assert r0["gp"].item() == pytest.approx(one["gp"].item(), rel=1e-5)
    assert r0["loss"].item() == pytest.approx(one["loss"].item(), rel=1e-5, abs=1e-6)
    assert one["grads"].keys() == r0["grads"].keys()
    for k, want in one["grads"].items():
        assert torch.equal(r0["grads"][k], r1["grads"][k]), k  # averaged across ranks
        assert torch.allclose(r0["grads"][k], want, rtol=1e-4, atol=1e-6), k


@pytest.mark.slow  # two torchrun processes training a few steps
def test_ada_keeps_one_p_on_every_rank(tmp_path: Path, mpl_config_dir: Path) -> None:
    """train.augment=ada under DDP: ADA's r_t is averaged over the ranks, whose own halves of the batch
    give different values, so every rank moves p the same way."""
    (r0, r1) = _run_worker(tmp_path, mpl_config_dir, "ada", (2,))[2]
    a, b = r0["ada"], r1["ada"]
    assert len(a["mean"]) == 3  # 12 steps: an adjustment every 4
    assert a["local"] != b["local"], "the ranks saw the same signs: the test cannot tell a mean from a copy"
    assert a["mean"] == b["mean"] == [pytest.approx((x + y) / 2) for x, y in zip(a["local"], b["local"])]
    assert a["p"] == b["p"] and len(set(a["p"])) > 1


def test_sync_bn_on_cpu_is_a_clear_error() -> None:
    """SyncBatchNorm has GPU kernels only: a multi-process CPU run with train.sync_bn stops with one
    line naming the option (DDP would raise deep inside its constructor)."""
    from gankit.config import ConfigError
    from gankit.training.distributed import DistEnv, wrap

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with pytest.raises(ConfigError, match=r"^train.sync_bn: SyncBatchNorm runs on CUDA only.*drop train.sync_bn"):
        wrap(net, DistEnv(rank=0, world_size=2), torch.device("cpu"), sync_bn=True)
    assert wrap(net, DistEnv(), torch.device("cpu"), sync_bn=True) is net  # one process: nothing to sync


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="SyncBatchNorm needs CUDA; 2 processes need 2 GPUs")
def test_sync_bn_uses_global_batch_statistics(tmp_path: Path, mpl_config_dir: Path) -> None:
    """wrap(sync_bn=True) turns BatchNorm into SyncBatchNorm whose running statistics are those of one
    BatchNorm over the global batch; a train.sync_bn run leaves both ranks with equal statistics
    (each rank's own half-batch statistics would differ)."""
    (r0, r1) = _run_worker(tmp_path, mpl_config_dir, "sync_bn", (2,))[2]
    assert r0["bn_type"] == r1["bn_type"] == "SyncBatchNorm"
    for k, want in r0["bn_ref"].items():
        assert torch.allclose(r0["bn"][k].float(), want.float(), rtol=1e-4, atol=1e-5), k
        assert torch.allclose(r1["bn"][k].float(), want.float(), rtol=1e-4, atol=1e-5), k
    assert r0["trainer_bn_types"] == ["SyncBatchNorm"]
    assert any(k.startswith("D.") and k.endswith("running_var") for k in r0["trainer_buffers"])
    for k, v in r0["trainer_buffers"].items():
        assert torch.allclose(v.float(), r1["trainer_buffers"][k].float(), rtol=1e-5, atol=1e-6), k
