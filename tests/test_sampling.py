"""gankit.sampling.sample_to_folder: ``gankit sample`` as a library function."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.config import ConfigError, make_config
from gankit.data.base import DataInfo
from gankit.errors import OutputExists
from gankit.families import get_family
from gankit.locks import atomic_save
from gankit.sampling import load_generator, sample_to_folder
from gankit.training.checkpoint import generator_snapshot

CLASSES = ["cat", "dog", "owl"]


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding an untrained tiny class-conditional generator (three named classes)."""
    run = tmp_path_factory.mktemp("cgan")
    cfg = make_config("cgan", overrides={"data.resolution": 8, "data.channels": 1})
    info = DataInfo(channels=1, resolution=8, num_classes=3, class_names=CLASSES)
    torch.manual_seed(0)
    G, _ = get_family("cgan").build(cfg, info, init=True)
    atomic_save(generator_snapshot(cfg, info, G.state_dict()), run / "checkpoints" / "G_last.pt")
    return run


def test_sample_to_folder_writes_what_gankit_sample_writes(cgan_run: Path, tmp_path: Path) -> None:
    loaded = load_generator(cgan_run)
    notes: list[str] = []
    done = sample_to_folder(
        loaded, 4, tmp_path / "py", balanced=True, seed=3, grid=tmp_path / "py.png", log=notes.append
    )
    names = ["00000_class0.png", "00001_class1.png", "00002_class2.png", "00003_class0.png"]
    assert done.images == [tmp_path / "py" / n for n in names] and done.grid == tmp_path / "py.png"
    assert notes == [done.note, "engine: torch (inference_mode)"]  # which engine ran is said too
    assert "class 0 gets 2" in done.note  # 4 images over 3 classes
    with contextlib.redirect_stdout(io.StringIO()):
        args = ["sample", str(cgan_run), "--n", "4", "--labels", "balanced", "--seed", "3", "--out"]
        assert main([*args, str(tmp_path / "cli"), "--device", "cpu"]) == 0
    for n in names:  # the same images, byte for byte
        assert (tmp_path / "py" / n).read_bytes() == (tmp_path / "cli" / n).read_bytes()


def test_sample_to_folder_refuses_in_python_terms(cgan_run: Path, tmp_path: Path) -> None:
    done = sample_to_folder(cgan_run, 2, tmp_path / "s", label="Dog", device="cpu")
    assert [p.name for p in done.images] == ["00000_class1.png", "00001_class1.png"] and done.grid is None
    with pytest.raises(OutputExists, match=r"class1.png exists \(2 files would be replaced\); pass overwrite=True$"):
        sample_to_folder(cgan_run, 2, tmp_path / "s", label=1)
    assert sample_to_folder(cgan_run, 2, tmp_path / "s", label=1, overwrite=True).images == done.images
    with pytest.raises(ConfigError, match=r"^label='doge': not a class of this model; did you mean 'dog'\?"):
        sample_to_folder(cgan_run, 2, tmp_path / "t", label="doge")
    with pytest.raises(ConfigError, match=r"^n must be positive$"):
        sample_to_folder(cgan_run, 0, tmp_path / "t")
    assert not (tmp_path / "t").exists()
