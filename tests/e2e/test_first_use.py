"""What a newcomer meets in the first hour: a fast CLI, clear errors, honest logs, readable pictures,
resumes that say what changed, and runs that never leave debris or lose their place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GANKIT, ROOT, make_tiny_cfg, subprocess_env, write_idx_dataset
from PIL import Image

from gankit.cli import _cli_overrides, build_parser, main
from gankit.config import ConfigError, TrainConfig
from gankit.launch import train
from gankit.training.loop import Trainer
from gankit.training.stats import loss_panels, plot_losses, read_jsonl
from gankit.visualize import save_grid

# ------------------------------------------------------------------------------ start-up


def _run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["train", "nope"], ["--version"], ["list"]])
def test_help_list_and_argument_errors_do_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from gankit.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    proc = _run_python(code)
    assert proc.stdout.strip().splitlines()[-1] == "NO-TORCH", proc.stdout + proc.stderr


def test_openmp_waits_passively_unless_the_user_chose() -> None:
    code = (
        "import os; from gankit.cli import _set_thread_waiting; "
        "_set_thread_waiting(); print(os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _run_python(code, env).stdout.strip() == "PASSIVE"
    assert _run_python(code, {**env, "OMP_WAIT_POLICY": "ACTIVE"}).stdout.strip() == "ACTIVE"


def test_version_and_defaults_in_help(capsys) -> None:
    from gankit import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"gankit {__version__}"
    text = build_parser().format_help()
    assert "Train, evaluate and run the classic GANs" in text and ":class:" not in text and "``" not in text
    sample_help = subprocess.run([*GANKIT, "sample", "--help"], capture_output=True, text=True).stdout
    assert "(default: 64)" in sample_help and "(default: auto)" in sample_help


# ------------------------------------------------------------------------------ errors and debris


@pytest.mark.parametrize("device", ["gpu", "mps", "xpu", "cuda:x", "tpu"])
def test_unknown_device_is_a_one_line_error_and_leaves_no_folder(device: str, tmp_path: Path, capsys) -> None:
    idx = write_idx_dataset(tmp_path / "idx", n_train=40, n_test=10)
    out = tmp_path / "run"
    assert main(["train", "gan", "--data", str(idx), "--out", str(out), "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--device {device}" in err and "cpu" in err
    assert not out.exists()


def test_failed_start_leaves_no_run_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty_images"
    empty.mkdir()
    cfg = make_tiny_cfg("dcgan", tmp_path, **{"data.path": str(empty)})
    out = tmp_path / "runs" / "dcgan-x"
    with pytest.raises(ValueError):  # DataError: no images
        train(cfg, out)
    assert not out.exists()


def test_cli_keeps_memory_but_the_python_api_opts_in() -> None:
    assert TrainConfig().keep_memory is False
    args = build_parser().parse_args(["train", "gan"])
    assert _cli_overrides(args)["train.keep_memory"] is True


# ------------------------------------------------------------------------------ logs


def _tiny_gan(tmp_path: Path, out: Path, *extra: str, steps: int = 25) -> subprocess.CompletedProcess:
    idx = tmp_path / "idx"
    if not idx.exists():
        write_idx_dataset(idx)
    cmd = [*GANKIT, "train", "gan", "--data", str(idx), "--out", str(out), "--max-steps", str(steps), "--set"]
    cmd += ["model.g_hidden=[16]", "model.d_hidden=[16]", "model.z_dim=8", "train.batch_size=20", "train.log_every=5"]
    cmd += list(extra)
    mpl = tmp_path / "mpl"
    return subprocess.run(
        cmd, cwd=tmp_path, env=subprocess_env(tmp_path, mpl), capture_output=True, text=True, timeout=300
    )


def test_piped_run_has_no_progress_bar_and_epochs_agree_across_logs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _tiny_gan(tmp_path, out)  # stderr is a pipe, not a terminal
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "img/s]" not in proc.stderr
    epoch_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    logged = [int(line.split()[1].split("/")[0]) for line in epoch_lines]
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == logged == [1, 2, 3]
    stats = read_jsonl(out / "stats.jsonl")
    # 10 steps per epoch: rows at steps 5 and 10 belong to epoch 1, 15 and 20 to epoch 2, 25 to epoch 3
    assert [(r["step"], r["epoch"]) for r in stats] == [(5, 1), (10, 1), (15, 2), (20, 2), (25, 3)]
    assert "next: gankit sample" in proc.stdout


def test_resume_lists_changes_and_refuses_architecture_changes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _tiny_gan(tmp_path, out, steps=10).returncode == 0
    proc = _tiny_gan(tmp_path, out, "optim.lr_g=0.002", "--resume", steps=20)
    assert proc.returncode == 0, proc.stderr
    assert "resume: optim.lr_g changed: 0.001 -> 0.002" in proc.stdout
    assert "resume: train.max_steps changed: 10 -> 20" in proc.stdout
    proc = _tiny_gan(tmp_path, out, "model.g_hidden=[32]", "--resume", steps=30)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "'model.g_hidden'" in err and "Traceback" not in err


def test_resume_with_another_batch_size_keeps_the_position_in_the_data(tmp_path: Path) -> None:
    common = {"train.epochs": 3, "train.log_every": 5}
    cfg = make_tiny_cfg("gan", tmp_path, **common, **{"train.batch_size": 20, "train.max_steps": 15})
    out = tmp_path / "run"
    train(cfg, out, log=lambda m: None)  # 15 steps x 20 = 300 images
    cfg2 = make_tiny_cfg("gan", tmp_path, **common, **{"train.batch_size": 40, "train.max_steps": 20})
    lines: list[str] = []
    trainer = Trainer(cfg2, out, resume=True, log=lines.append)
    assert trainer.position == 300 // 40  # 7 batches of 40 images: the data position, not the step count
    assert trainer.step == 15  # --max-steps 20: 5 more steps
    assert any("batch 20 -> 1 x 40" in line and "300 images" in line for line in lines), lines
    trainer.fit()
    steps = [r["step"] for r in read_jsonl(out / "stats.jsonl")]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # the curves stay monotonic
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["images_seen"] == 12 * 40 and state["batch_size"] == 40


# ------------------------------------------------------------------------------ disk


def test_keep_snapshots_bounds_the_epoch_snapshots(tmp_path: Path, no_loss_plot) -> None:
    cfg = make_tiny_cfg("gan", tmp_path, **{"train.epochs": 6, "train.keep_snapshots": 2, "train.log_every": 5})
    train(cfg, tmp_path / "run", log=lambda m: None)
    ckpt = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("G_epoch*.pt")) == ["G_epoch0005.pt", "G_epoch0006.pt"]
    assert (ckpt / "G_last.pt").is_file() and (ckpt / "last.pt").is_file()


def test_run_record_says_what_was_loaded(tmp_path: Path, no_loss_plot) -> None:
    cfg = make_tiny_cfg("gan", tmp_path, **{"train.max_steps": 2})
    train(cfg, tmp_path / "run", log=lambda m: None)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["dataset"]["train_images"] == 200
    assert record["dataset"]["source"]
    assert record["family"] == "gan" and record["torch"] == str(torch.__version__)


# ------------------------------------------------------------------------------ pictures


def test_noise_grids_are_upscaled_and_captioned(tmp_path: Path) -> None:
    images = torch.rand(16, 3, 28, 28)
    save_grid(images, tmp_path / "plain.png", nrow=4, min_width=0)
    save_grid(images, tmp_path / "big.png", nrow=4, caption="gan: epoch 1, step 600")
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "big.png") as b:
        assert a.size == (122, 122)
        assert b.size[0] >= 512 and b.size[0] % 122 == 0 and b.size[1] > b.size[0]  # caption band on top
        factor = b.size[0] // 122
        # the grid itself is the plain grid, scaled by nearest neighbour, below the caption band
        top = b.size[1] - 122 * factor
        scaled = a.convert("RGB").resize((122 * factor, 122 * factor), Image.Resampling.NEAREST)
        below = b.convert("RGB").crop((0, top, b.size[0], b.size[1]))
        assert np.array_equal(np.asarray(below), np.asarray(scaled))
        band = np.asarray(b.convert("L").crop((0, 0, b.size[0], top)))
        assert band.min() < 128  # the caption text is drawn


def test_image_to_image_loss_plot_gives_g_loss_its_own_panel(tmp_path: Path) -> None:
    assert loss_panels(["d_loss", "g_adv", "g_l1", "g_loss"]) == [["d_loss", "g_adv", "g_l1"], ["g_loss"]]
    assert loss_panels(["d_loss", "g_loss"]) == [["d_loss", "g_loss"]]
    stats, metrics = tmp_path / "stats.jsonl", tmp_path / "metrics.jsonl"
    stats.write_text(
        "".join(
            json.dumps({"step": s, "d_loss": 0.6, "g_adv": 1.0, "g_l1": 0.3, "g_loss": 31.0}) + "\n"
            for s in range(1, 30)
        )
    )
    metrics.write_text(
        "".join(json.dumps({"step": s, "epoch": s // 10, "val_l1": 0.3, "val_psnr": 12.0}) + "\n" for s in (10, 20))
    )
    plot_losses(stats, tmp_path / "one.png")
    plot_losses(stats, tmp_path / "four.png", metrics_path=metrics)
    with Image.open(tmp_path / "one.png") as one, Image.open(tmp_path / "four.png") as four:
        assert four.size[0] > one.size[0] * 1.4  # two loss panels + two validation panels


# ------------------------------------------------------------------------------ distributed


WAIT_SCRIPT = r"""
import os, sys, time
from datetime import timedelta
import torch, torch.distributed as dist
from gankit.training import distributed
rank = int(os.environ["RANK"])
env = distributed.DistEnv(rank, 2, rank)
# the training group with a 2 s timeout: a rank blocked in it while rank 0 works 5 s fails
dist.init_process_group("gloo", timeout=timedelta(seconds=2))
distributed._wait_group = dist.new_group(backend="gloo", timeout=timedelta(minutes=1))
if rank == 0:
    time.sleep(5)  # a long end-of-epoch evaluation on rank 0 alone
if sys.argv[1] == "wait":
    distributed.wait_for_main(env)
t = torch.ones(1)
dist.all_reduce(t)
print("ok", rank, float(t))
distributed.shutdown()
"""


@pytest.mark.parametrize("mode", ["wait", "no-wait"])
def test_other_ranks_wait_for_rank_zero_beyond_the_collective_timeout(mode: str, tmp_path: Path) -> None:
    script = tmp_path / "wait.py"
    script.write_text(WAIT_SCRIPT)
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1")
        env["MASTER_PORT"] = str(29_400 + (os.getpid() % 500) + (mode == "wait"))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=120) for p in procs]
    ok = [p.returncode == 0 and "ok" in o[0] for p, o in zip(procs, outs)]
    if mode == "wait":
        assert all(ok), outs
    else:  # the control: without the wait, rank 1 times out in the training collective
        assert not all(ok)


def test_the_torch_free_catalog_matches_the_registries(capsys: pytest.CaptureFixture[str]) -> None:
    from gankit import catalog
    from gankit.families import FAMILIES

    # gankit list reads the family registry itself (tests/test_new_family.py lists a new one)
    assert not hasattr(catalog, "FAMILIES")
    main(["list"])
    listed = capsys.readouterr().out.split("presets:")[0]
    assert all(f"{f.name:<16} {f.kind:<7} {f.description}" in listed for f in FAMILIES.values())
    # (datasets are read from their registry: tests/test_data_registry.py)


def test_old_relu_cgan_checkpoints_are_refused_not_silently_misread(tmp_path: Path) -> None:
    from gankit.sampling import load_generator
    from gankit.training.checkpoint import CheckpointError

    cfg = make_tiny_cfg("cgan", tmp_path, **{"train.max_steps": 1})
    train(cfg, tmp_path / "run", log=lambda m: None)
    snap = tmp_path / "run" / "checkpoints" / "G_last.pt"
    assert load_generator(snap).family.name == "cgan"  # today's format loads
    state = torch.load(snap, weights_only=True)
    state["format"] = 1
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="LeakyReLU"):
        load_generator(tmp_path / "old.pt")


def test_six_photos_train_colorize_at_its_default_batch(tmp_path: Path, no_loss_plot) -> None:
    import yaml

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photos / f"p{i}.jpg")
    over = {"data.path": str(photos), "train.batch_size": 16, "train.max_steps": 2, "train.epochs": 3}
    cfg = make_tiny_cfg("colorize", tmp_path, **over)
    lines: list[str] = []
    result = train(cfg, tmp_path / "run", log=lines.append)
    assert result.step == 2
    assert any("training with train.batch_size=6" in line for line in lines), lines
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["batch_size"] == 6


def test_every_option_of_every_command_has_help() -> None:
    import argparse

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "gankit")
    assert not missing


@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_with_only_generator_weights_is_never_trained_over(resume: bool, tmp_path: Path) -> None:
    cfg = make_tiny_cfg("gan", tmp_path, **{"train.max_steps": 1})
    ckpt = tmp_path / "imported" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "G_last.pt").write_bytes(b"weights someone imported")
    with pytest.raises(ConfigError, match="no training state"):
        train(cfg, tmp_path / "imported", resume=resume)
    assert (ckpt / "G_last.pt").read_bytes() == b"weights someone imported"


def test_help_states_each_default_once_and_checkpoint_defaults_agree() -> None:
    from gankit.sampling import DEFAULT_CHECKPOINT

    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in ("translate", "colorize", "eval", "export"):
        text = subs[name].format_help()
        assert text.count("(default: last)") == 1, name
        assert subs[name].get_default("checkpoint") == DEFAULT_CHECKPOINT
    assert "(default: onnx) (default" not in subs["export"].format_help()


# ------------------------------------------------------------------------------ make demo


def _demo_commands(epochs: int) -> list[list[str]]:
    """The gankit lines of the Makefile's demo recipe, as argv (``$(EPOCHS)`` filled in)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:] if line.startswith("\t")]
    assert lines and all(line.startswith("$(BIN)/gankit ") for line in lines), lines
    return [line.replace("$(EPOCHS)", str(epochs)).split()[1:] for line in lines]


def test_make_demo_runs_again_and_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # make demo's own commands on tiny Fashion-MNIST-like data (200 images: 4 steps of the preset's
    # batch of 50 per epoch); a second and a third make demo must succeed too.
    write_idx_dataset(Path(os.environ["GANKIT_DATA"]) / "fashion-mnist")
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "runs" / "gan-demo" / "generated.png"
    for attempt in range(3):
        for argv in _demo_commands(epochs=1):
            code = main(argv + (["--no-progress"] if argv[0] == "train" else []))
            out = capsys.readouterr()
            assert code == 0, f"make demo #{attempt + 1}: gankit {' '.join(argv)}\n{out.out}\n{out.err}"
        assert len(list((tmp_path / "runs" / "gan-demo" / "generated").glob("*.png"))) == 64 and grid.is_file()
    # a longer demo continues the same run
    for argv in _demo_commands(epochs=2):
        assert main(argv + (["--no-progress"] if argv[0] == "train" else [])) == 0
    assert torch.load(tmp_path / "runs" / "gan-demo" / "checkpoints" / "last.pt", weights_only=True)["step"] == 8
