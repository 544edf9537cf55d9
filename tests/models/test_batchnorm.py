"""train.sampling: BatchNorm generators sample with standing statistics by default, in the epoch grids,
validation and snapshots alike, and everything that loads a snapshot samples in its mode."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.config import ConfigError, make_config
from gankit.data.base import DataInfo, to_uint8
from gankit.export import ExportError, load_for_export
from gankit.families import get_family
from gankit.launch import train
from gankit.sampling import load_generator, sample
from gankit.training.checkpoint import atomic_save, generator_snapshot


def _spread(images: torch.Tensor) -> float:
    """Per-pixel standard deviation across samples, grey levels 0-255, averaged over pixels."""
    return float(to_uint8(images).float().std(dim=0).mean())


def _bn_buffers(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if k.endswith(("running_mean", "running_var"))}


def test_a_30_step_dcgan_samples_varied_images(tmp_path: Path, tiny_cfg, no_loss_plot) -> None:
    """Default settings: 64 samples of a 30-step DCGAN spread at least twice as much as the same G with
    its running statistics (the eval mode every snapshot had before train.sampling)."""
    overrides = {"train.batch_size": 8, "train.max_steps": 30, "train.epochs": 6, "train.keep_snapshots": 0}
    cfg = tiny_cfg("dcgan", tmp_path, **overrides)
    run = train(cfg, tmp_path / "run", log=lambda m: None).out_dir
    standing = _spread(sample(load_generator(run), 64, seed=3))
    running = load_generator(run / "checkpoints" / "last.pt")  # the full state: running statistics, eval mode
    assert not running.G.training
    eval_mode = _spread(sample(running, 64, seed=3))
    assert standing >= 2 * eval_mode, (standing, eval_mode)


def test_snapshot_holds_standing_statistics_and_the_state_the_running_ones(
    tmp_path: Path, tiny_cfg, no_loss_plot
) -> None:
    cfg = tiny_cfg("dcgan", tmp_path, **{"train.batch_size": 8, "train.max_steps": 3, "train.epochs": 1})
    run = train(cfg, tmp_path / "run", log=lambda m: None).out_dir
    snap = torch.load(run / "checkpoints" / "G_last.pt", weights_only=True)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert snap["sampling"] == "standing" and snap["standing"] == {"batches": 16, "batch_size": 32}
    ours, theirs = _bn_buffers(snap["G"]), _bn_buffers(state["G"])
    assert ours and ours.keys() == theirs.keys()
    assert all(not torch.allclose(ours[k], theirs[k]) for k in ours)
    # the weights are the same: only the statistics differ
    assert all(torch.equal(snap["G"][k], v) for k, v in state["G"].items() if k not in ours and "num_batches" not in k)
    # train.sampling=eval: the snapshot keeps the running statistics (the course notes' sampling)
    cfg_eval = tiny_cfg("dcgan", tmp_path, **{"train.batch_size": 8, "train.max_steps": 3, "train.sampling": "eval"})
    run_eval = train(cfg_eval, tmp_path / "run_eval", log=lambda m: None).out_dir
    snap_eval = torch.load(run_eval / "checkpoints" / "G_last.pt", weights_only=True)
    assert snap_eval["sampling"] == "eval" and "standing" not in snap_eval
    assert all(torch.equal(v, theirs[k]) for k, v in _bn_buffers(snap_eval["G"]).items())


def test_a_10_step_pix2pix_grid_is_not_flat(
    tmp_path: Path, tiny_cfg, fake_paired_data, no_loss_plot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output column of the epoch grid (the generator in the run's sampling mode) varies."""
    import gankit.training.callbacks as callbacks

    shown: list[torch.Tensor] = []
    real = callbacks.paired_triplets

    def spy(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, space: str) -> torch.Tensor:
        shown.append(outputs.detach().clone())
        return real(inputs, outputs, targets, space)

    monkeypatch.setattr(callbacks, "paired_triplets", spy)
    cfg = tiny_cfg("pix2pix", tmp_path, **{"train.max_steps": 10, "train.epochs": 3, "train.n_samples": 4})
    fake_paired_data(cfg)
    train(cfg, tmp_path / "run", log=lambda m: None)
    out = to_uint8(shown[-1]).float()
    # grey levels within each output image: 8.8 here (train mode 8.9); eval mode with the running
    # statistics, the grid before train.sampling, gives 0.97: a flat tile
    assert float(out.std(dim=(1, 2, 3)).mean()) > 4.0


def _tiny_snapshot(path: Path, family: str, **extra: object) -> Path:
    cfg = make_config(family, overrides={"model.ngf": 4, "data.resolution": 32, "model.z_dim": 8})
    info = (
        DataInfo(channels=3, resolution=32, in_channels=3)
        if family == "pix2pix"
        else DataInfo(channels=1, resolution=32)
    )
    G, _ = get_family(family).build(cfg, info)
    atomic_save(generator_snapshot(cfg, info, G.state_dict(), **extra), path)
    return path


def test_loaders_take_the_snapshots_mode(tmp_path: Path) -> None:
    old = load_generator(_tiny_snapshot(tmp_path / "old.pt", "dcgan"))  # no "sampling": eval, as before
    standing = load_generator(_tiny_snapshot(tmp_path / "s.pt", "dcgan", sampling="standing"))
    trained = load_generator(_tiny_snapshot(tmp_path / "t.pt", "dcgan", sampling="train"))
    assert (old.sampling, old.G.training) == ("eval", False)
    assert (standing.sampling, standing.G.training) == ("standing", False)
    assert (trained.sampling, trained.G.training) == ("train", True)
    trained.eval()
    assert trained.sampling_mode_on().G.training  # what serve does before each request
    with pytest.raises(ExportError, match=r"t\.pt: .*train\.sampling=train.*train\.sampling=standing"):
        load_for_export(tmp_path / "t.pt")
    assert not load_for_export(tmp_path / "s.pt").G.training


def test_translate_uses_the_snapshots_mode_unless_forced(tmp_path: Path) -> None:
    from PIL import Image

    ckpt = _tiny_snapshot(tmp_path / "p.pt", "pix2pix", sampling="train")
    Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp_path / "in.png")
    modes = []
    for flags in ([], ["--eval-mode"], ["--train-mode"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(
                ["translate", str(ckpt), str(tmp_path / "in.png"), "--out", str(tmp_path / "o"), "--overwrite", *flags]
            )
        assert rc == 0
        modes.append(re.search(r"\((\w+) mode, ", out.getvalue()).group(1))
    assert modes == ["train", "eval", "train"]


def test_a_bad_sampling_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"^train\.sampling must be eval, train or standing, not 'batch'$"):
        make_config("dcgan", overrides={"train.sampling": "batch"})
    assert main(["train", "dcgan", "--set", "train.sampling=batch", "--max-steps", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.sampling" in err
