"""What ``--data`` names is what is trained on (or a one-line error), and DataInfo records what was loaded.

Fixtures are made here: IDX folders whose pixel statistics are MNIST's or Fashion-MNIST's (the
real files are never read), a generic IDX folder, a photo, an IDX file.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import idx_bytes, write_idx_dataset, write_image_folder
from PIL import Image

import gankit.data.mnist as mnist
from gankit.cli import main
from gankit.config import DataConfig
from gankit.data import build_dataset, infer_dataset_name
from gankit.data.base import DataInfo
from gankit.data.errors import DataError
from gankit.data.mnist import identify_idx, load_idx

MEAN_BLOCK = {"mnist": 10, "fashion-mnist": 15}
"""Side of the white square in each 28x28 image: 100 px -> mean 32.5/255 (MNIST's 33.3), 225 px -> 73.2 (72.9)."""


def write_lookalike(folder: Path, kind: str, n: int = 1000, *, gz: bool = False) -> Path:
    """``n`` 28x28 images, labels 0-9, whose mean pixel is ``kind``'s (too few bytes to be the real files)."""
    side = MEAN_BLOCK[kind]
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, y in enumerate(labels):
        top = int(y) % (28 - side)
        images[i, top : top + side, 4 : 4 + side] = 255
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------ IDX by content


@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("default", ["fashion-mnist", "mnist"])
def test_an_idx_folder_is_named_by_its_content_not_by_the_preset(kind: str, default: str, tmp_path: Path) -> None:
    folder = write_lookalike(tmp_path / "data", kind)
    assert infer_dataset_name(str(folder), default) == (kind, str(folder))
    ident = identify_idx(folder)
    assert ident.kind == kind and "mean pixel" in ident.how


def test_too_few_or_other_images_are_a_generic_idx_dataset(tmp_path: Path) -> None:
    assert identify_idx(write_idx_dataset(tmp_path / "tiny")).kind == "idx"  # 200 images: statistics not trusted
    big = write_lookalike(tmp_path / "inverted", "mnist")
    arr = mnist.read_idx(big / "train-images-idx3-ubyte")
    (big / "train-images-idx3-ubyte").write_bytes(idx_bytes(255 - arr))  # mean 222: neither data set
    assert identify_idx(big).kind == "idx"
    assert infer_dataset_name(str(big), "fashion-mnist") == ("idx", str(big))


@pytest.mark.parametrize("gz", [False, True])
def test_the_published_md5_of_the_decompressed_file_identifies_it(
    gz: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_idx_dataset(tmp_path / "d", gz=gz)
    raw = idx_bytes(mnist.read_idx(folder / ("train-images-idx3-ubyte" + (".gz" if gz else ""))))
    monkeypatch.setitem(mnist.IMAGES_MD5, hashlib.md5(raw).hexdigest(), ("mnist", "train"))
    mnist._identify_file.cache_clear()
    ident = identify_idx(folder)
    assert ident.kind == "mnist" and "by md5" in ident.how  # whatever gzip made of the bytes


def test_data_name_contradicting_the_content_is_an_error(tmp_path: Path) -> None:
    folder = write_lookalike(tmp_path / "digits", "mnist")
    with pytest.raises(DataError, match=r"holds MNIST, not Fashion-MNIST .*data\.name=mnist"):
        build_dataset(DataConfig(name="fashion-mnist", path=str(folder)))
    ds = build_dataset(DataConfig(name="mnist", path=str(folder)))
    assert (ds.info.dataset, ds.info.num_images, ds.info.class_names[:2]) == ("mnist", 1000, ["0", "1"])


def test_a_generic_idx_folder_is_loaded_and_recorded_as_such(tiny_idx: Path) -> None:
    ds = build_dataset(DataConfig(name="idx", path=str(tiny_idx)))
    info = ds.info
    assert (info.dataset, info.source, info.num_images) == ("idx", str(tiny_idx.resolve()), 200)
    assert info.num_classes == 10 and info.class_names == []  # no Fashion-MNIST names assumed
    # Named explicitly, unknown files are taken as asked, and the log says they are not the standard ones.
    lines: list[str] = []
    named = build_dataset(DataConfig(name="fashion-mnist", path=str(tiny_idx), max_images=30), log=lines.append)
    assert (named.info.dataset, named.info.num_images) == ("fashion-mnist", 30)
    assert len(lines) == 2 and "not a standard" in lines[0] and "treated as fashion-mnist" in lines[0]
    assert lines[1].startswith("data.max_images=30: training on 30 of 200, seeded")


def test_a_given_folder_is_the_only_place_looked_in(tiny_idx: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(tiny_idx, tmp_path / "gankit_data_env" / "fashion-mnist")  # found without a path ...
    assert len(load_idx("fashion-mnist").images) == 200
    empty = tmp_path / "mine"
    empty.mkdir()
    with pytest.raises(DataError, match=str(empty)):  # ... but never in place of the folder given
        load_idx("fashion-mnist", empty)


# ------------------------------------------------------------------------------ files and typos


def test_a_file_where_a_folder_is_expected_says_so(tmp_path: Path) -> None:
    photo = tmp_path / "pics" / "photo.jpg"
    photo.parent.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(photo)
    for default in ("fashion-mnist", "celeba", "facades", "colorization"):
        with pytest.raises(DataError, match=r"photo\.jpg is one image, not a folder of training images; pass a folder"):
            infer_dataset_name(str(photo), default)
    idx_file = write_idx_dataset(tmp_path / "idx", gz=True) / "train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match=rf"is an IDX file, not a folder; .*--data {tmp_path / 'idx'}$"):
        infer_dataset_name(str(idx_file), "fashion-mnist")


def test_a_missing_path_or_mistyped_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder.*did you mean the dataset 'fashion-mnist'"):
        infer_dataset_name("fashon-mnist", "fashion-mnist")
    with pytest.raises(DataError, match=rf"{tmp_path / 'nope'}: no such file or folder"):
        infer_dataset_name(str(tmp_path / "nope"), "fashion-mnist")


@pytest.mark.parametrize("what", ["photo", "idx-file"])
def test_train_gan_on_a_file_is_a_one_line_error_and_trains_nothing(
    what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if what == "photo":
        path = tmp_path / "photo.jpg"
        Image.new("RGB", (32, 32)).save(path)
    else:
        path = write_idx_dataset(tmp_path / "idx", gz=True) / "train-images-idx3-ubyte.gz"
    code, _, err = run_cli(capsys, "train", "gan", "--data", path, "--out", tmp_path / "run", "--max-steps", "1")
    line = one_line(err)
    assert code == 1 and str(path) in line and "not a folder" in line
    assert not (tmp_path / "run").exists()


def test_dcgan_on_an_idx_folder_names_the_dcgan_fmnist_preset(
    tiny_idx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "train", "dcgan", "--data", tiny_idx, "--out", tmp_path / "run")
    line = one_line(err)
    assert code == 1 and "IDX files" in line and f"gankit train dcgan-fmnist --data {tiny_idx}" in line


# ------------------------------------------------------------------------------ what was loaded


def test_train_gan_on_an_mnist_folder_records_mnist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_loss_plot: None
) -> None:
    folder = write_lookalike(tmp_path / "digits", "mnist", gz=True)
    run = tmp_path / "run"
    small = ["model.z_dim=8", "model.g_hidden=[16]", "model.d_hidden=[16]", "train.batch_size=50", "train.n_samples=4"]
    args = ["train", "gan", "--data", folder, "--out", run, "--max-steps", "1", "--device", "cpu", "--no-progress"]
    code, _, err = run_cli(capsys, *args, "--set", *small)
    assert code == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["name"] == "mnist"
    info = torch.load(run / "checkpoints" / "G_last.pt", weights_only=True)["info"]
    assert (info["dataset"], info["source"], info["num_images"]) == ("mnist", str(folder.resolve()), 1000)


def test_every_kind_records_dataset_source_and_count(tiny_idx: Path, tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "imgs", n=12)
    folder = build_dataset(DataConfig(name="folder", path=str(images), resolution=16), log=lambda m: None)
    assert (folder.info.dataset, folder.info.source, folder.info.num_images) == ("folder", str(images.resolve()), 12)
    assert folder.info.val_source == ""  # noise-to-image data has no validation split
    test = build_dataset(DataConfig(name="idx", path=str(tiny_idx)), "test")
    assert (test.info.dataset, test.info.num_images) == ("idx", 50)


def test_data_info_of_old_checkpoints_still_loads(tmp_path: Path) -> None:
    old = {"channels": 1, "resolution": 28, "num_classes": 10, "class_names": [], "in_channels": 0, "space": "rgb"}
    info = DataInfo(**old)  # how gankit.sampling rebuilds it
    assert (info.dataset, info.source, info.num_images, info.val_source) == ("", "", 0, "")
    new = dataclasses.replace(info, dataset="mnist", source="/x", num_images=5, val_source="")
    torch.save({"info": dataclasses.asdict(new)}, tmp_path / "c.pt")
    assert DataInfo(**torch.load(tmp_path / "c.pt", weights_only=True)["info"]) == new
    assert DataInfo.from_dict({**dataclasses.asdict(new), "added_later": 1}) == new


def test_a_download_is_recorded_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_download(name: str) -> Path:  # stands in for torchvision: files land in the cache
        return write_idx_dataset(mnist.cache_dir() / name / "FashionMNIST" / "raw", gz=True)

    monkeypatch.setattr(mnist, "download", fake_download)
    ds = build_dataset(DataConfig(name="fashion-mnist"), log=lambda m: None)
    cache = tmp_path / "xdg_cache" / "gankit" / "fashion-mnist"
    assert (ds.info.dataset, ds.info.source) == ("fashion-mnist", f"torchvision download into {cache}")
    again = build_dataset(DataConfig(name="fashion-mnist"), log=lambda m: None)  # found in the cache now
    assert again.info.source == str((cache / "FashionMNIST" / "raw").resolve())
