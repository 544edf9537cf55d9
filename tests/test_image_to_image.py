"""End-to-end pix2pix and colorization on tiny synthetic data: training writes validation metrics,
grids and a best snapshot; translate/colorize keep any input size."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.color import rgb_to_lab
from gankit.config import make_config
from gankit.data.base import DataInfo
from gankit.families import get_family
from gankit.launch import train
from gankit.sampling import load_generator
from gankit.training.checkpoint import atomic_save, generator_snapshot, safe_load

TINY = {
    "data.resolution": 32,
    "data.load_size": 36,
    "model.ngf": 4,
    "model.ndf": 4,
    "train.batch_size": 2,
    "train.device": "cpu",
    "train.progress": False,
    "train.n_samples": 4,
    "train.epochs": 2,
    "optim.decay_epochs": 1,
}


def _aligned_folder(root: Path, n_train: int = 6, n_val: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            b = 255 - a  # a learnable mapping: the negative
            Image.fromarray(np.concatenate([a, b], axis=1)).save(root / split / f"{i:03d}.png")
    return root


def _photo_folder(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        img = np.zeros((48, 40, 3), dtype=np.uint8)
        img[..., 0] = rng.integers(60, 255)
        img[..., 1] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :]
        img[..., 2] = rng.integers(0, 120)
        Image.fromarray(img).save(root / f"photo_{i:02d}.jpg", quality=95)
    Image.fromarray(np.full((48, 40), 128, np.uint8)).save(root / "gray.jpg")  # skipped: grayscale
    return root


def _run(*args: str) -> subprocess.CompletedProcess:
    """The CLI in-process (fast); one test below runs it as a real subprocess."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("p2p")
    data = _aligned_folder(tmp / "pairs")
    cfg = make_config("pix2pix", overrides={**TINY, "data.name": "aligned", "data.path": str(data)})
    train(cfg, tmp / "run", log=lambda s: None)
    return tmp / "run"


@pytest.fixture(scope="module")
def colorize_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("col")
    photos = _photo_folder(tmp / "photos")
    cfg = make_config("colorize", overrides={**TINY, "data.path": str(photos), "train.pretrain_epochs": 1})
    train(cfg, tmp / "run", log=lambda s: None)
    return tmp / "run"


def test_pix2pix_run_folder(pix2pix_run: Path) -> None:
    rows = [json.loads(line) for line in (pix2pix_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # 2 constant-rate epochs + 1 decay epoch
    for r in rows:
        assert 0 < r["val_l1"] < 2 and 0 < r["val_ssim"] <= 1 and r["val_psnr"] > 0
    best = safe_load(pix2pix_run / "checkpoints" / "G_best.pt")
    assert best["step"] == min(rows, key=lambda r: r["val_l1"])["step"]
    w, h = Image.open(pix2pix_run / "samples" / "epoch_0003.png").size
    # n_samples=4 but only 3 val pairs: 3 rows of (input | output | target), 32 px + 2 px padding,
    # upscaled by a whole factor to be legible, with a caption strip below
    assert w % (3 * 34 + 2) == 0 and w >= 512 and w <= h < 1.5 * w


def test_pix2pix_lr_decays_linearly(pix2pix_run: Path) -> None:
    state = safe_load(pix2pix_run / "checkpoints" / "last.pt")
    # the last epoch is the 1st of 1 decay epochs: factor 1 - 1/2
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5)


def _snapshot(G: torch.nn.Module, family: str, overrides: dict) -> dict:
    cfg = make_config(family, overrides=overrides)
    space, cin, cout = ("lab", 1, 2) if family == "colorize" else ("rgb", 3, 3)
    info = DataInfo(channels=cout, resolution=cfg.data.resolution, in_channels=cin, space=space)
    return generator_snapshot(cfg, info, G.state_dict())


def _tanh_unet(path: Path) -> Path:
    """A pix2pix checkpoint whose U-Net computes exactly tanh(x), pixel by pixel, at any size.

    The first conv copies each 2x2 block of the 3 channels into 24 channels (x and -x for each of
    the 4 positions, taps 1..2 of a 4x4/stride-2/pad-1 kernel); the outermost transposed conv puts
    them back from the skip connection (relu(x) - relu(-x) = x). Every other weight feeds zero.
    """
    overrides = {"data.resolution": 32, "model.ngf": 24, "model.ndf": 4}
    cfg = make_config("pix2pix", overrides=overrides)
    G, _ = get_family("pix2pix").build(cfg, DataInfo(channels=3, resolution=32, in_channels=3), init=True)
    with torch.no_grad():
        for p in G.parameters():
            p.zero_()
        down, up = G.downs[0], G.ups[-1][1]
        k = 0
        for c in range(3):
            for dy in (0, 1):
                for dx in (0, 1):
                    for sign in (1.0, -1.0):
                        down.weight[k, c, 1 + dy, 1 + dx] = sign
                        up.weight[24 + k, c, 1 + dy, 1 + dx] = sign  # the skip half of the concatenation
                        k += 1
    atomic_save(_snapshot(G, "pix2pix", overrides), path)
    return path


@pytest.mark.parametrize("strategy", ["pad", "tile", "resize"])
def test_translate_at_the_training_size_is_the_model_output(pix2pix_run: Path, tmp_path: Path, strategy: str) -> None:
    rgb = np.random.default_rng(5).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    out = tmp_path / "out"
    res = _run("translate", str(pix2pix_run), str(tmp_path / "x.png"), "--out", str(out), "--strategy", strategy)
    assert res.returncode == 0, res.stderr
    G = load_generator(pix2pix_run).G
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = ((G(x * 2 - 1) + 1) / 2 * 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(Image.open(out / "x.png"), dtype=np.float64) - expected).max() <= 1


@pytest.mark.parametrize("strategy", ["pad", "tile", "resize"])
def test_translate_any_size_reproduces_a_known_model(tmp_path: Path, strategy: str) -> None:
    ckpt = _tanh_unet(tmp_path / "tanh.pt")
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 255, (300, 517, 3), dtype=np.uint8)
    gray = np.zeros((37, 61), np.uint8) + np.arange(61, dtype=np.uint8)[None] * 4
    yy, xx = np.mgrid[0:90, 0:250]
    smooth = np.stack([xx, yy * 2, xx // 2 + yy], -1).astype(np.uint8)  # slow ramps survive resizing
    images = {"smooth": smooth} if strategy == "resize" else {"odd": noise, "small_gray": gray, "smooth": smooth}
    for name, arr in images.items():
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
    res = _run("translate", str(ckpt), *(str(tmp_path / f"{n}.png") for n in images), "--out", str(tmp_path / "o"),
               "--strategy", strategy)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name, arr in images.items():
        rgb = np.asarray(Image.fromarray(arr).convert("RGB"), dtype=np.float64) / 255
        expected = (np.tanh(2 * rgb - 1) + 1) / 2 * 255
        got = np.asarray(Image.open(tmp_path / "o" / f"{name}.png"), dtype=np.float64)
        assert got.shape == rgb.shape
        err = np.abs(got - expected)
        if strategy == "resize":  # 250x90 squashed to 32x32 and back: close on ramps, away from the border
            assert err[4:-4, 4:-4].max() < 6
        else:  # padding, cropping and tile blending must put every pixel back exactly
            assert err.max() <= 0.5 + 1e-6


def test_translate_eval_mode_is_deterministic(pix2pix_run: Path, tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
    outs = []
    for i, mode in enumerate(["--eval-mode", "--eval-mode", "--train-mode"]):
        assert _run("translate", str(pix2pix_run), str(img), "--out", str(tmp_path / f"o{i}"), mode).returncode == 0
        outs.append(np.asarray(Image.open(tmp_path / f"o{i}" / "x.png"), dtype=np.int16))
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])  # dropout and batch statistics change the output


def test_colorize_full_resolution_keeps_lightness(colorize_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    colour = rng.integers(0, 255, (300, 517, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(colour.mean(axis=2).astype(np.uint8)).save(tmp_path / "gray.png")
    res = _run(
        "colorize",
        str(colorize_run),
        str(tmp_path / "colour.png"),
        str(tmp_path / "gray.png"),
        "--out",
        str(tmp_path / "out"),
        "--device",
        "cpu",
    )
    assert res.returncode == 0, res.stderr
    for name, src in (("colour", colour), ("gray", np.asarray(Image.open(tmp_path / "gray.png").convert("RGB")))):
        out = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert out.shape == (300, 517, 3)
        L_in = rgb_to_lab(torch.from_numpy(src.copy()).permute(2, 0, 1).float() / 255)[0]
        L_out = rgb_to_lab(torch.from_numpy(out.copy()).permute(2, 0, 1).float() / 255)[0]
        # full-resolution detail comes from the input's own L; only gamut clipping and 8-bit rounding differ
        assert (L_in - L_out).abs().median() < 1.0


def test_colorize_keeps_the_lightness_of_every_pixel(tmp_path: Path) -> None:
    # A colorization model that predicts ab = 0 turns every photo into the gray of its own L:
    # colorize must then return exactly that L, pixel for pixel, up to 8-bit rounding.
    overrides = {"data.resolution": 32, "model.ngf": 4, "model.ndf": 4}
    cfg = make_config("colorize", overrides=overrides)
    G, _ = get_family("colorize").build(cfg, DataInfo(channels=2, resolution=32, in_channels=1), init=True)
    with torch.no_grad():
        G.ups[-1][1].weight.zero_()
        G.ups[-1][1].bias.zero_()
    atomic_save(_snapshot(G, "colorize", overrides), tmp_path / "flat.pt")
    colour = np.random.default_rng(6).integers(0, 255, (300, 517, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    res = _run("colorize", str(tmp_path / "flat.pt"), str(tmp_path / "colour.png"), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "colour.png"), dtype=np.int16)
    assert np.abs(out - out[..., :1]).max() <= 1  # gray: R = G = B
    L_in = rgb_to_lab(torch.from_numpy(colour.copy()).permute(2, 0, 1).float() / 255)[0]
    L_out = rgb_to_lab(torch.from_numpy(out.astype(np.float32)).permute(2, 0, 1) / 255)[0]
    assert (L_in - L_out).abs().max() < 0.5  # half an 8-bit gray level is at most ~0.45 L


def test_colorize_run_logged_pretraining(colorize_run: Path) -> None:
    rows = [json.loads(line) for line in (colorize_run / "stats.jsonl").read_text().splitlines()]
    first_epoch = [r for r in rows if r["epoch"] == 1]  # epochs count from 1, as in the log
    later = [r for r in rows if r["epoch"] >= 2]
    assert first_epoch and all("d_loss" not in r and "g_l1" in r for r in first_epoch)  # L1-only pretraining
    assert later and all("d_loss" in r and "g_adv" in r for r in later)


def test_wrong_command_for_model(pix2pix_run: Path, tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(img)
    res = subprocess.run(
        [sys.executable, "-m", "gankit", "colorize", str(pix2pix_run), str(img), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert "not a colorization model" in res.stderr and "Traceback" not in res.stderr
