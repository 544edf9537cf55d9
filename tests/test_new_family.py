"""A sixth family in the three steps that :mod:`gankit.families` documents: one model file (here,
the two classes below), one registration and one preset. Nothing else in gankit is edited: the
CLI trains it, ``load_generator`` samples it, ``gankit list`` and the report show it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import write_idx_dataset
from torch import Tensor, nn

from gankit.cli import main
from gankit.config import Config
from gankit.data.base import DataInfo
from gankit.families import FAMILIES, register_family, register_preset
from gankit.presets import PRESETS
from gankit.sampling import load_generator, sample

# ----------------------------------------------------------------------------- step 1: the model file


class ToyGenerator(nn.Module):
    """One linear layer from noise to pixels."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(z_dim, math.prod(shape)), nn.Tanh())

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z).view(-1, *self.shape)


class ToyDiscriminator(nn.Module):
    """One linear layer from pixels to a logit."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = nn.Linear(math.prod(shape), 1)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


# ----------------------------------------------------------------------------- steps 2 and 3


@pytest.fixture
def toy() -> Iterator[str]:
    """Registers the toy family and its preset for one test, then removes both."""
    families, presets = dict(FAMILIES), dict(PRESETS)

    @register_family("toy", kind="noise", description="toy GAN: one linear layer each", model_fields=("z_dim",))
    def _toy(cfg: Config, info: DataInfo) -> tuple[nn.Module, nn.Module]:
        shape = (info.channels, info.resolution, info.resolution)
        return ToyGenerator(cfg.model.z_dim, shape), ToyDiscriminator(shape)

    register_preset("toy", "toy", {"data.name": "fashion-mnist", "model.z_dim": 8, "train.batch_size": 10})
    try:
        yield "toy"
    finally:
        FAMILIES.clear()
        FAMILIES.update(families)
        PRESETS.clear()
        PRESETS.update(presets)


def test_a_sixth_family_trains_samples_and_is_listed(
    toy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idx = write_idx_dataset(tmp_path / "idx", n_train=40, n_test=10)
    run = tmp_path / "run"
    args = ["train", toy, "--data", str(idx), "--out", str(run), "--max-steps", "2", "--device", "cpu"]
    assert main([*args, "--no-progress", "--set", "train.n_samples=4"]) == 0
    out = capsys.readouterr().out
    assert f"done: 2 steps, epoch 1 in {run}" in out
    assert f"next: gankit sample {run} --n 64" in out  # the next step follows the family's kind

    loaded = load_generator(run)
    assert loaded.family.name == "toy" and isinstance(loaded.G, ToyGenerator)
    assert loaded.cfg.model.z_dim == 8  # from the preset
    images = sample(loaded, 4, seed=0)
    assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1
    assert not torch.equal(images[0], images[1])

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"\n  toy +noise +toy GAN: one linear layer each\n", listed)
    assert re.search(r"\n  toy +family=toy +data=fashion-mnist\n", listed)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "PRESET is a family name (gan, cgan, dcgan, pix2pix, colorize, toy)" in capsys.readouterr().out

    assert main(["report", str(run), "--device", "cpu"]) == 0
    page = (run / "report.html").read_text()
    model_table = re.search(r"<th colspan=2>model</th></tr>(.*?)</table>", page).group(1)
    assert re.findall(r"<tr><td>(\w+)</td>", model_table) == ["z_dim", "init", "init_gain", "d_spectral_norm"]


def test_a_preset_is_checked_when_it_is_registered(toy: str) -> None:
    from gankit.config import ConfigError

    with pytest.raises(ConfigError, match="model.z_dimm"):
        register_preset("toy-typo", toy, {"model.z_dimm": 8})
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        register_preset("nope", "nope", {})
    assert "toy-typo" not in PRESETS and "nope" not in PRESETS
