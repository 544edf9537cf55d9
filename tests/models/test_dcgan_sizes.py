"""DCGAN at 32 to 256 px: one stride-2 block per factor of two, widths capped at ngf*8 / ndf*8, and the
64-px network still the PyTorch example's (its keys and shapes, so its checkpoints import)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, write_image_folder
from PIL import Image
from torch import nn

from gankit.cli import main
from gankit.config import PRESETS, ConfigError, make_config
from gankit.data.base import DataInfo
from gankit.families import get_family
from gankit.models.dcgan import MAX_WIDTH_MULT, DCGANDiscriminator, DCGANGenerator, feature_widths
from gankit.sampling import load_generator
from gankit.training.checkpoint import CheckpointError


def _convs(m: nn.Module, kind: type) -> list[nn.Module]:
    return [c for c in m.modules() if type(c) is kind]


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256, 512])
def test_g_and_d_shapes_at_each_resolution(resolution: int) -> None:
    G = DCGANGenerator(8, 3, resolution=resolution, ngf=4)
    D = DCGANDiscriminator(3, resolution=resolution, ndf=4)
    out = G(torch.randn(2, 8))
    assert out.shape == (2, 3, resolution, resolution)
    assert D(out).shape == (2,)
    # one stride-2 conv per doubling from the 4x4 base, in G and in D
    blocks = resolution.bit_length() - 3
    assert sum(c.stride == (2, 2) for c in _convs(G, nn.ConvTranspose2d)) == blocks
    assert sum(c.stride == (2, 2) for c in _convs(D, nn.Conv2d)) == blocks


def test_the_width_rule() -> None:
    assert feature_widths(32, 64) == [256, 128, 64]
    assert feature_widths(64, 64) == [512, 256, 128, 64]
    assert feature_widths(128, 64) == [512, 512, 256, 128, 64]
    assert feature_widths(256, 64) == [512, 512, 512, 256, 128, 64]


@pytest.mark.parametrize("resolution", [128, 256])
def test_widths_stop_at_8x_and_the_extra_blocks_are_the_only_new_weights(resolution: int) -> None:
    G = DCGANGenerator(100, 3, resolution=resolution)
    D = DCGANDiscriminator(3, resolution=resolution)
    g_convs, d_convs = _convs(G, nn.ConvTranspose2d), _convs(D, nn.Conv2d)
    assert max(max(c.in_channels, c.out_channels) for c in g_convs[1:]) == 64 * MAX_WIDTH_MULT
    assert max(max(c.in_channels, c.out_channels) for c in d_convs[:-1]) == 64 * MAX_WIDTH_MULT
    assert g_convs[0].out_channels == 512 and d_convs[-1].in_channels == 512
    assert [(c.in_channels, c.out_channels) for c in g_convs[-4:]] == [(512, 256), (256, 128), (128, 64), (64, 3)]
    assert [(c.in_channels, c.out_channels) for c in d_convs[:4]] == [(3, 64), (64, 128), (128, 256), (256, 512)]
    # each block beyond 64 px is a 512 -> 512 4x4 conv and a BatchNorm(512) more than the 64-px network
    extra = (resolution // 64).bit_length() - 1
    block = 512 * 512 * 16 + 2 * 512
    assert _count(G) == 3_576_704 + extra * block  # the PyTorch tutorial's 64-px counts
    assert _count(D) == 2_765_568 + extra * block


def _reference_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """Key and shape of each entry of a pytorch/examples DCGAN state dict (tests/fixtures/interop)."""
    out = []
    for line in (FIXTURES / "interop" / f"{name}.keys.txt").read_text().splitlines():
        key, shape, _ = line.split("\t")
        out.append((key, tuple(int(d) for d in shape.strip("()").split(",") if d.strip())))
    return out


def test_the_64px_network_keeps_the_pytorch_example_keys_and_shapes() -> None:
    G, D = get_family("dcgan").build(make_config("dcgan"), DataInfo(channels=3, resolution=64), init=False)
    for module, ref in ((G, "pe_dcgan_nz100_ngf64_G"), (D, "pe_dcgan_ndf64_D")):
        ours = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
        assert ours == _reference_layout(ref)
    params = [(k, tuple(p.shape)) for k, p in G.named_parameters()]
    assert params == [
        ("main.0.weight", (100, 512, 4, 4)),
        ("main.1.weight", (512,)),
        ("main.1.bias", (512,)),
        ("main.3.weight", (512, 256, 4, 4)),
        ("main.4.weight", (256,)),
        ("main.4.bias", (256,)),
        ("main.6.weight", (256, 128, 4, 4)),
        ("main.7.weight", (128,)),
        ("main.7.bias", (128,)),
        ("main.9.weight", (128, 64, 4, 4)),
        ("main.10.weight", (64,)),
        ("main.10.bias", (64,)),
        ("main.12.weight", (64, 3, 4, 4)),
    ]


@pytest.mark.parametrize("resolution", [8, 48, 100, 200])
def test_unsupported_resolutions_are_one_line_errors(resolution: int) -> None:
    cfg = make_config("dcgan", overrides={"data.resolution": resolution})
    msg = rf"data.resolution={resolution} is not supported; DCGAN needs a power of two >= 16"
    with pytest.raises(ValueError, match=msg):
        get_family("dcgan").build(cfg, DataInfo(channels=3, resolution=resolution))
    with pytest.raises(ConfigError, match=msg):
        get_family("dcgan").check(cfg)


def test_a_bad_resolution_is_refused_before_the_data_is_read(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-folder"  # read first, it would be exit code 1 (an input that cannot be used)
    data = ["data.name=folder", f"data.path={missing}", "data.resolution=100"]
    assert main(["train", "dcgan", "--set", *data, "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.resolution=100 is not supported" in err
    assert not (tmp_path / "r").exists()


def test_presets_for_128_and_256() -> None:
    for name, res in (("dcgan128", 128), ("dcgan256", 256)):
        cfg = make_config(name)
        assert (cfg.family, cfg.data.resolution, cfg.data.name) == ("dcgan", res, "celeba")
        # the DCGAN paper's recipe, as the 64-px preset's
        dcgan = make_config("dcgan")
        assert (cfg.model, cfg.optim, cfg.loss) == (dcgan.model, dcgan.optim, dcgan.loss)
        assert cfg.train.batch_size == dcgan.train.batch_size
    assert {"dcgan128", "dcgan256"} <= set(PRESETS)


def test_gankit_list_shows_the_presets(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "dcgan128" in out and "resolution=128" in out
    assert "dcgan256" in out and "resolution=256" in out


@pytest.mark.parametrize("preset, resolution", [("dcgan128", 128), ("dcgan256", 256)])
def test_one_training_step_from_the_cli_then_sample(
    preset: str, resolution: int, tmp_path: Path, no_loss_plot, capsys
) -> None:
    images = write_image_folder(tmp_path / "images", n=8)
    run = tmp_path / "run"
    small = ["model.ngf=4", "model.ndf=4", "model.z_dim=8", "train.batch_size=4", "train.n_samples=4"]
    argv = ["train", preset, "--data", str(images), "--out", str(run), "--max-steps", "1", "--device", "cpu"]
    assert main([*argv, "--no-progress", "--set", *small]) == 0, capsys.readouterr().err
    loaded = load_generator(run)
    assert loaded.info.resolution == resolution
    g_convs = _convs(loaded.G, nn.ConvTranspose2d)
    assert max(c.out_channels for c in g_convs) == 4 * MAX_WIDTH_MULT
    with torch.no_grad():
        out = loaded(torch.randn(2, 8))
    assert out.shape == (2, 3, resolution, resolution) and torch.isfinite(out).all()
    (grid,) = (run / "samples").glob("*.png")
    assert main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "gen"), "--device", "cpu"]) == 0
    assert Image.open(next((tmp_path / "gen").glob("*.png"))).size == (resolution, resolution)
    assert Image.open(grid).size[0] > 2 * resolution  # the 2x2 grid of 4 samples


def test_an_older_gankit_dcgan_above_64px_is_refused_not_misread(tmp_path: Path) -> None:
    """Before the cap, widths doubled past ngf*8 (ngf*16 at 128): such snapshots (format 2) do not fit."""
    from gankit.training.checkpoint import atomic_save, generator_snapshot

    for res in (64, 128):
        cfg = make_config("dcgan", overrides={"model.ngf": 4, "model.ndf": 4, "model.z_dim": 8, "data.resolution": res})
        info = DataInfo(channels=3, resolution=res)
        G, _ = get_family("dcgan").build(cfg, info)
        snap = generator_snapshot(cfg, info, G.state_dict())
        atomic_save({**snap, "format": 2}, tmp_path / f"old{res}.pt")
    assert load_generator(tmp_path / "old64.pt").info.resolution == 64  # 64 px and below did not change
    with pytest.raises(CheckpointError, match=r"a 128px DCGAN checkpoint of an older gankit.*Retrain it"):
        load_generator(tmp_path / "old128.pt")
