"""Running fully convolutional generators on images of any size (gankit.inference)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import snapshot_run
from torch import Tensor, nn

from gankit.config import Config
from gankit.data.base import DataInfo
from gankit.families import FAMILIES, get_family
from gankit.inference import (
    GeneratorProfile,
    crop_padding,
    pad_to_multiple,
    profile_generator,
    run_any_size,
    zero_unused_taps,
)
from gankit.models.unet import UNetGenerator
from gankit.training.checkpoint import atomic_save, safe_load

ODD_SIZES = [(300, 517), (37, 1000)]


class Recorder(nn.Module):
    """Wraps a model and records the spatial size of every input it receives."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.sizes.append((x.shape[-2], x.shape[-1]))
        return self.inner(x)


def _images(n: int, h: int, w: int, c: int = 3) -> Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(h * w)) * 2 - 1


# ------------------------------------------------------------------------------------- padding


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
@pytest.mark.parametrize(
    "shape, multiple", [((1, 3, 300, 517), 256), ((2, 1, 37, 1000), 64), ((3, 5, 7), 32), ((1, 2, 64, 32), 32)]
)
def test_pad_to_multiple_round_trips(shape: tuple[int, ...], multiple: int, mode: str) -> None:
    x = torch.randn(shape)
    padded, pad = pad_to_multiple(x, multiple, mode)
    h, w = shape[-2:]
    assert padded.shape[:-2] == x.shape[:-2]
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple
    left, right, top, bottom = pad
    assert (left + right, top + bottom) == (padded.shape[-1] - w, padded.shape[-2] - h)
    assert abs(left - right) <= 1 and abs(top - bottom) <= 1  # centred
    assert torch.equal(crop_padding(padded, pad), x)


def test_reflect_pad_larger_than_image_keeps_mirroring() -> None:
    x = torch.arange(15.0).view(1, 1, 3, 5)
    padded, (left, right, top, bottom) = pad_to_multiple(x, 32)
    assert padded.shape == (1, 1, 32, 32) and min(left, right, top, bottom) > 5
    # Mirror symmetry about the first row/column of the image holds across the whole pad,
    # including beyond the reach of a single F.pad reflect (which allows pad < side only).
    for k in range(1, top + 1):
        assert torch.equal(padded[..., top - k, :], padded[..., top + k, :])
    for k in range(1, left + 1):
        assert torch.equal(padded[..., left - k], padded[..., left + k])
    # Only image values appear (no zeros from constant padding, no clamping artefacts).
    assert set(padded.unique().tolist()) <= set(x.unique().tolist())


def test_reflect_pad_of_single_pixel_side_replicates() -> None:
    x = torch.arange(4.0).view(1, 1, 1, 4)
    padded, pad = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded, padded[..., :1, :].expand_as(padded))
    assert torch.equal(crop_padding(padded, pad), x)


def test_pad_to_multiple_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pad_to_multiple(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError):
        pad_to_multiple(torch.zeros(1, 1, 4, 4), 8, mode="wrap")


# ---------------------------------------------------------------------------------- run_any_size


@pytest.fixture(scope="module")
def small_unet() -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(3, 2, resolution=64, ngf=4).eval()


@pytest.mark.parametrize("strategy", ["pad", "resize", "tile"])
@pytest.mark.parametrize("h, w", ODD_SIZES)
def test_run_any_size_returns_input_size(small_unet: UNetGenerator, strategy: str, h: int, w: int) -> None:
    g = Recorder(small_unet)
    with torch.no_grad():
        y = run_any_size(g, _images(2, h, w), multiple=small_unet.multiple, resolution=64, strategy=strategy)
    assert y.shape == (2, 2, h, w)
    assert torch.isfinite(y).all()
    if strategy == "pad":
        assert len(g.sizes) == 1 and all(s % 64 == 0 for s in g.sizes[0])
    else:  # resize and tile only ever feed the model training-size squares
        assert set(g.sizes) == {(64, 64)}
    assert len(g.sizes) > 1 if strategy == "tile" else len(g.sizes) == 1


@pytest.mark.parametrize("strategy", ["pad", "tile"])
@pytest.mark.parametrize("h, w", ODD_SIZES + [(256, 256), (5, 3)])
def test_identity_generator_is_reproduced_exactly(strategy: str, h: int, w: int) -> None:
    x = _images(2, h, w)
    y = run_any_size(nn.Identity(), x, multiple=256, resolution=256, strategy=strategy)
    assert y.shape == x.shape
    assert (y - x).abs().max() <= 1e-6


def test_tiling_a_pointwise_model_equals_running_it_whole() -> None:
    # A 1x1 conv commutes with cropping, so any seam or misweighted blend would show up here.
    torch.manual_seed(0)
    g = nn.Conv2d(1, 2, 1)
    x = _images(1, 300, 517, c=1)
    with torch.no_grad():
        expected = g(x)
        for overlap in (0, 8, 16, 32):
            y = run_any_size(g, x, multiple=1, resolution=64, strategy="tile", tile_overlap=overlap)
            torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_tiles_overlap_and_cover_the_image() -> None:
    seen = Recorder(nn.Identity())
    x = torch.zeros(1, 1, 100, 150)
    run_any_size(seen, x, multiple=1, resolution=64, strategy="tile", tile_overlap=16)
    # 100 -> starts 0, 36 (flush); 150 -> starts 0, 48, 86 (flush): 2 x 3 tiles.
    assert len(seen.sizes) == 6


def test_max_side_bounds_the_model_input(small_unet: UNetGenerator) -> None:
    x = _images(1, 300, 517)
    for strategy in ("pad", "tile"):
        g = Recorder(small_unet)
        with torch.no_grad():
            y = run_any_size(g, x, multiple=64, resolution=64, max_side=128, strategy=strategy)
        assert y.shape == (1, 2, 300, 517)
        if strategy == "pad":
            assert g.sizes == [(128, 128)]  # 300x517 -> 74x128 -> padded to multiples of 64
        else:
            assert set(g.sizes) == {(64, 64)} and len(g.sizes) == 6
    # Below the limit nothing is resized: the identity comes back exactly.
    y = run_any_size(nn.Identity(), x, multiple=64, resolution=64, max_side=517, strategy="pad")
    assert torch.equal(y, x)
    # Above it a smooth image survives the down/up round trip closely but not exactly.
    ramp = torch.linspace(-1, 1, 517).expand(1, 3, 300, 517)
    y = run_any_size(nn.Identity(), ramp, multiple=64, resolution=64, max_side=128, strategy="pad")
    assert 0 < (y - ramp)[..., 8:-8, 8:-8].abs().max() < 0.02


def test_resize_strategy_round_trips_smooth_images() -> None:
    ramp = torch.linspace(-1, 1, 517).expand(1, 3, 300, 517)
    y = run_any_size(nn.Identity(), ramp, multiple=256, resolution=256, strategy="resize")
    assert y.shape == ramp.shape
    assert (y - ramp)[..., 4:-4, 4:-4].abs().max() < 0.02


@pytest.mark.parametrize("strategy", ["pad", "resize", "tile"])
def test_run_any_size_leaves_module_mode_alone(strategy: str) -> None:
    g = UNetGenerator(3, 3, resolution=32, ngf=4, norm="instance")
    x = _images(1, 40, 70)
    for mode in (True, False):
        g.train(mode)
        run_any_size(g, x, multiple=32, resolution=32, strategy=strategy)
        assert all(m.training == mode for m in g.modules())


def test_run_any_size_rejects_bad_arguments() -> None:
    x = torch.zeros(1, 3, 40, 40)
    with pytest.raises(ValueError, match="strategy"):
        run_any_size(nn.Identity(), x, multiple=32, resolution=32, strategy="crop")
    with pytest.raises(ValueError):
        run_any_size(nn.Identity(), x[0], multiple=32, resolution=32)
    with pytest.raises(ValueError):
        run_any_size(nn.Identity(), x, multiple=32, resolution=48, strategy="tile")
    with pytest.raises(ValueError):
        run_any_size(nn.Identity(), x, multiple=32, resolution=32, strategy="tile", tile_overlap=17)


class TileMean(nn.Module):
    """A deliberately non-local "generator": every output pixel is the mean of its whole tile."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x)


@pytest.mark.parametrize("overlap, smooth", [(16, True), (0, False)])
def test_tile_blending_hides_seams(overlap: int, smooth: bool) -> None:
    # Input = column index, so neighbouring tiles produce constants ~48 apart. With a ramp window
    # the output crosses from one to the other gradually; with hard seams it jumps.
    x = torch.arange(200.0).expand(1, 1, 64, 200)
    y = run_any_size(TileMean(), x, multiple=1, resolution=64, strategy="tile", tile_overlap=overlap)
    row = y[0, 0, 0]
    steps = row[1:] - row[:-1]
    assert (steps >= -1e-4).all()  # monotonic: blending never overshoots
    assert (steps.max() < 6.0) if smooth else (steps.max() > 30.0)


# ------------------------------------------------------------------------------ load_generator


@pytest.mark.parametrize("preset", ["cgan", "pix2pix"])
def test_load_generator_hands_back_an_nn_module(preset, tmp_path, tiny_cfg, fake_paired_data, no_loss_plot) -> None:
    from gankit.launch import train
    from gankit.sampling import load_generator, sample

    cfg = tiny_cfg(preset, tmp_path, **{"train.max_steps": 1, "train.n_samples": 2})
    if preset == "pix2pix":
        fake_paired_data(cfg, 2)
    train(cfg, tmp_path / "run")
    G = load_generator(tmp_path / "run")
    assert isinstance(G, nn.Module) and not G.training and not G.G.training
    assert G.train() is G and G.training and G.G.training  # mode changes reach the network
    assert G.eval() is G and not G.G.training and G.to("cpu") is G
    assert sum(p.numel() for p in G.parameters()) == sum(p.numel() for p in G.G.parameters()) > 0
    assert G.cfg.family == preset and G.family.name == preset and G.path.name == "G_last.pt"
    with torch.no_grad():
        if preset == "cgan":
            z, y = torch.randn(3, cfg.model.z_dim), torch.tensor([0, 1, 2])
            assert torch.equal(G(z, y), G.G(z, y)) and G(z, y).shape == (3, 1, 28, 28)
            assert sample(G, 2, labels=torch.tensor([4, 5])).shape == (2, 1, 28, 28)
        else:
            x = torch.rand(1, 3, 32, 32) * 2 - 1
            assert torch.equal(G(x), G.G(x)) and G.profile is not None


# ------------------------------------------------------------------ the meta build


def _same_profile(a: GeneratorProfile, b: GeneratorProfile) -> bool:
    return (
        (a.size, a.out_channels, a.peak_bytes_per_pixel) == (b.size, b.out_channels, b.peak_bytes_per_pixel)
        and a.unused_taps.keys() == b.unused_taps.keys()
        and all(torch.equal(a.unused_taps[k], b.unused_taps[k]) for k in a.unused_taps)
    )


def _ordinary_load(ckpt: Path) -> tuple[nn.Module, GeneratorProfile | None]:
    """What load_generator did before the meta build: build, copy the weights in, profile for real."""
    state = safe_load(ckpt)
    cfg, info = Config.from_dict(state["config"]), DataInfo.from_dict(state["info"])
    fam = get_family(cfg.family)
    G, _ = fam.build(cfg, info, init=False)
    G.load_state_dict(state["G"])
    G.eval()
    profile = None
    if fam.kind == "paired":
        profile = profile_generator(G, (info.resolution,) * 2, info.in_channels)
        zero_unused_taps(G, profile)
    return G, profile


def _assert_same_network(G: nn.Module, H: nn.Module) -> None:
    """Same weights and buffers: values, dtypes, devices, layouts, parameter-ness and requires_grad."""
    tensors = dict(G.named_parameters()) | dict(G.named_buffers())
    expected = dict(H.named_parameters()) | dict(H.named_buffers())
    assert tensors.keys() == expected.keys()
    for name, t in tensors.items():
        e = expected[name]
        assert torch.equal(t, e) and (t.dtype, t.device, t.stride()) == (e.dtype, e.device, e.stride()), name
        assert (type(t), t.requires_grad) == (type(e), e.requires_grad), name


@pytest.mark.parametrize("family", ["gan", "cgan", "dcgan", "pix2pix", "colorize"])
def test_load_generator_built_on_meta_equals_the_ordinary_build(family: str, tmp_path: Path) -> None:
    from gankit.sampling import load_generator

    run = snapshot_run(family, tmp_path)
    loaded = load_generator(run)
    G, profile = _ordinary_load(run / "checkpoints" / "G_last.pt")
    _assert_same_network(loaded.G, G)
    assert (loaded.profile is None) == (profile is None)
    assert profile is None or _same_profile(loaded.profile, profile)


def test_weights_saved_in_another_dtype_load_as_the_network_declares_them(tmp_path: Path) -> None:
    from gankit.sampling import load_generator

    ckpt = snapshot_run("pix2pix", tmp_path) / "checkpoints" / "G_last.pt"
    state = safe_load(ckpt)
    state["G"] = {k: v.double() if v.is_floating_point() else v for k, v in state["G"].items()}
    atomic_save(state, ckpt)
    G, _ = _ordinary_load(ckpt)
    _assert_same_network(load_generator(ckpt).G, G)  # float32, as load_state_dict's copy made them


@pytest.mark.parametrize("trait", ["non-persistent buffer", "computes in __init__"])
def test_a_generator_that_cannot_live_on_meta_is_built_the_ordinary_way(
    trait: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gankit.sampling import load_generator

    fam = FAMILIES["pix2pix"]

    def build(cfg: Config, info: DataInfo) -> tuple[nn.Module, nn.Module]:
        G, D = fam.build_models(cfg, info)
        if trait == "non-persistent buffer":  # not in the state dict: assigning weights leaves it on meta
            G.register_buffer("gain", torch.ones(()), persistent=False)
        else:
            G.gain = torch.ones(()).item()  # no value on meta: RuntimeError
        return G, D

    monkeypatch.setitem(FAMILIES, "pix2pix", dataclasses.replace(fam, build_models=build))
    run = snapshot_run("pix2pix", tmp_path)
    loaded = load_generator(run)
    G, profile = _ordinary_load(run / "checkpoints" / "G_last.pt")
    _assert_same_network(loaded.G, G)
    assert loaded.profile is not None and profile is not None and _same_profile(loaded.profile, profile)
    assert float(loaded.G.gain) == 1.0


def test_the_profile_is_remembered_per_architecture_and_a_torn_memo_is_profiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gankit import loading
    from gankit.paths import cache_dir
    from gankit.sampling import load_generator

    profiled: list[int] = []
    real = loading.profile_generator
    monkeypatch.setattr(loading, "profile_generator", lambda *a: profiled.append(1) or real(*a))
    run = snapshot_run("pix2pix", tmp_path / "a")
    first = load_generator(run)
    (memo,) = (cache_dir() / loading.PROFILES).glob("pix2pix-*.json")
    assert len(profiled) == 1 and first.profile is not None and first.profile.unused_taps  # taps to zero
    other_weights = snapshot_run("pix2pix", tmp_path / "b", seed=1)  # same architecture, another run
    again = load_generator(other_weights)
    assert len(profiled) == 1 and again.profile is not None and _same_profile(again.profile, first.profile)
    G, fresh = _ordinary_load(other_weights / "checkpoints" / "G_last.pt")  # profiled for real
    _assert_same_network(again.G, G)  # the remembered profile zeroed the same taps
    assert fresh is not None and _same_profile(again.profile, fresh)

    memo.write_text('{"of": 1, "profile": {"size": [')  # torn by hand
    load_generator(run)
    assert len(profiled) == 2 and json.loads(memo.read_text())["profile"]["out_channels"] == 3
    colorize = load_generator(snapshot_run("colorize", tmp_path / "c"))  # another architecture: its own
    assert len(profiled) == 3 and colorize.profile is not None and colorize.profile.out_channels == 2
    assert len(list((cache_dir() / loading.PROFILES).glob("*.json"))) == 2


def test_load_generator_maps_the_snapshot_and_reads_a_pre_zip_file_as_usual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gankit.sampling import load_generator

    run = snapshot_run("pix2pix", tmp_path)
    ckpt = run / "checkpoints" / "G_last.pt"
    loads: list[bool] = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("mmap", False)) or real(*a, **k))
    mapped = load_generator(run)
    assert loads == [True]  # mapped: the weights the engine never uses are never read
    G, _ = _ordinary_load(ckpt)
    _assert_same_network(mapped.G, G)
    state = safe_load(ckpt)
    torch.save(state, ckpt, _use_new_zipfile_serialization=False)  # torch's old format cannot be mapped
    loads.clear()
    _assert_same_network(load_generator(run).G, G)
    assert loads == [True, False]
