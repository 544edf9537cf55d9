"""The dataset registry (gankit.data.registry): a new kind is one loader and one registration, and every
path that names datasets (build_dataset, --data inference, gankit list, training) reads it; storage
stays under the dataset (the store, the recorded choice, colorization's Lab layer)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_cfg, quiet
from PIL import Image

from gankit.cli import main
from gankit.config import DataConfig
from gankit.data import DataError, build_dataset, infer_dataset_name, register_dataset
from gankit.data.base import EpochSampler, ImageTensorDataset, TrainSet, to_unit_range
from gankit.data.colorization import LabCache
from gankit.data.feed import batches
from gankit.data.registry import unregister_dataset
from gankit.launch import train

NPY = "npy-images"


# The whole of a new dataset kind: one loader ...
def load_npy_images(cfg: DataConfig, split: str, log: Callable[[str], None]) -> TrainSet:
    """uint8 grayscale images (N, H, W) kept in FOLDER/images.npy."""
    images = torch.from_numpy(np.load(Path(cfg.path) / "images.npy"))[:, None]  # type: ignore[arg-type]
    ds = ImageTensorDataset(images, resolution=cfg.resolution, channels=cfg.channels)
    ds.info.source = str(Path(cfg.path).resolve())  # type: ignore[arg-type]
    return ds


@pytest.fixture
def npy_kind() -> Iterator[None]:
    # ... and one registration
    register_dataset(
        NPY,
        kind="noise",
        description="grayscale images in one images.npy file",
        load=load_npy_images,
        accepts="arrays",
        detect=lambda folder: (folder / "images.npy").is_file(),
        needs_path="FOLDER holding images.npy",
    )
    yield
    unregister_dataset(NPY)


def _npy_folder(root: Path, n: int = 40, side: int = 28) -> tuple[Path, np.ndarray]:
    root.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (n, side, side), dtype=np.uint8)
    np.save(root / "images.npy", images)
    return root, images


def test_a_new_dataset_kind_is_one_loader_and_one_registration(
    tmp_path: Path, npy_kind: None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, images = _npy_folder(tmp_path / "arrays")
    # --data FOLDER is recognized by the kind's own detector, whatever the noise preset's default
    assert infer_dataset_name(str(folder), "fashion-mnist") == (NPY, str(folder))
    with pytest.raises(DataError, match=f"holds {NPY} data, for noise families; this preset trains a paired"):
        infer_dataset_name(str(folder), "aligned")
    # gankit list reads the registry
    assert main(["list"]) == 0
    assert any(line.split()[:1] == [NPY] and "images.npy" in line for line in capsys.readouterr().out.splitlines())
    # build_dataset: the registry's path check, then the loader; info says what was loaded
    with pytest.raises(DataError, match=f"dataset '{NPY}' needs a path: --data FOLDER holding images.npy"):
        build_dataset(DataConfig(name=NPY), log=quiet)
    ds = build_dataset(DataConfig(name=NPY, path=str(folder), resolution=28, channels=1), log=quiet)
    info = ds.info
    assert (info.dataset, info.source, info.num_images, info.storage) == (NPY, str(folder.resolve()), 40, "memory")
    # batched through the feed the loop uses
    sampler = EpochSampler(len(ds), 8, seed=0)
    first = next(batches(ds, sampler, start=0, stop=1, device=torch.device("cpu"), augment=False))
    want = to_unit_range(torch.from_numpy(images)[sampler.indices(0)][:, None])
    assert torch.equal(first["image"], want)
    # and trained on, one step, with the run record naming the kind
    cfg = make_tiny_cfg("gan", tmp_path, **{"data.name": NPY, "data.path": str(folder), "train.max_steps": 1})
    assert train(cfg, tmp_path / "run", log=quiet).step == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]["name"] == NPY


def test_a_name_is_registered_once(npy_kind: None) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset(NPY, kind="noise", description="", load=load_npy_images, accepts="arrays")


def _photos(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    return root


def test_colorization_in_memory_keeps_the_uint8_store_and_a_lab_layer_over_it(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos")
    cfg = DataConfig(name="colorization", path=str(photos), resolution=16, load_size=20)
    mem = build_dataset(replace(cfg, storage="memory"), log=quiet)
    mapped = build_dataset(replace(cfg, storage="mmap"), log=quiet)
    index = torch.tensor([3, 0, 4])
    cpu = torch.device("cpu")
    # storage's rule: item i is the same uint8 tensor whatever the backend
    assert mem.store.kind == "memory" and mem.store.pixels.dtype == torch.uint8
    assert torch.equal(mem.store.gather(index, cpu), mapped.store.gather(index, cpu))
    # the Lab is a named layer beside it, computed once, in memory only
    assert isinstance(mem.lab_cache, LabCache) and mapped.lab_cache is None
    assert mem.lab_cache.lab.dtype == torch.float16 and len(mem.lab_cache) == len(mem.store) == 6
    a = mem.batch(index, device=cpu, generator=torch.Generator().manual_seed(0))
    b = mapped.batch(index, device=cpu, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])
    small = mem.subset(2)
    assert torch.equal(small.lab, mem.lab[:2]) and small.store.pixels.dtype == torch.uint8


def test_the_storage_choice_is_recorded_in_data_info(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 12)
    lines: list[str] = []
    ds = build_dataset(DataConfig(name="folder", path=str(photos), resolution=16), log=lines.append)
    assert ds.info.storage == "memory"
    assert ds.info.storage_choice.startswith("data.storage=auto -> memory: 12 images decode to ")
    assert f"{ds.info.storage_choice} (train split)" in lines
    streamed = build_dataset(DataConfig(name="folder", path=str(photos), resolution=16, storage="stream"), log=quiet)
    assert (streamed.info.storage, streamed.info.storage_choice) == ("stream", "data.storage=stream")


def test_the_storage_layer_does_not_reach_up_into_the_datasets() -> None:
    code = (
        "import sys, torch\n"
        "from gankit.data.storage import MemoryStore\n"
        "MemoryStore(torch.zeros(2, 1, 2, 2, dtype=torch.uint8)).gather(torch.tensor([1]), torch.device('cpu'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('gankit.data.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gankit.data.base" not in out.stdout, out.stdout
