"""MNIST / Fashion-MNIST IDX files: parsing, validation, where they are looked for, no downloads."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DEFAULT_SYSTEM_DIRS, N_TEST, N_TRAIN, idx_bytes, tiny_fashion_arrays, write_idx_dataset

import gankit.data.mnist as mnist
from gankit.config import DataConfig
from gankit.data import build_dataset, infer_dataset_name
from gankit.data.errors import DataError
from gankit.data.mnist import FASHION_CLASSES, load_idx, load_mnist_like, locate, missing_message, read_idx

REAL_DOWNLOAD = mnist.download
"""The module's own download (conftest replaces it with one that raises); tests fake only its fetch."""

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"


# ------------------------------------------------------------------------------------ read_idx


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gz(tmp_path: Path, gz: bool) -> None:
    folder = write_idx_dataset(tmp_path / "d", gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx(folder / (TRAIN_IMAGES + suffix))
    labels = read_idx(folder / (TRAIN_LABELS + suffix))
    exp_images, exp_labels = tiny_fashion_arrays(N_TRAIN, 0)
    assert images.dtype == np.uint8 and images.shape == (N_TRAIN, 28, 28)
    assert np.array_equal(images, exp_images) and np.array_equal(labels, exp_labels)
    assert read_idx(folder / ("t10k-images-idx3-ubyte" + suffix)).shape == (N_TEST, 28, 28)


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    arr = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    (tmp_path / "x").write_bytes(idx_bytes(arr))
    out = read_idx(tmp_path / "x")
    assert out.shape == (2, 3) and out.tolist() == arr.tolist()


@pytest.mark.parametrize("head", [b"\x08\x03\x00\x00", b"\x00\x00\x42\x03", b"\x01\x00\x08\x03", b"", b"\x00\x00"])
def test_wrong_magic_names_the_file(tmp_path: Path, head: bytes) -> None:
    path = tmp_path / "weird-images-idx3-ubyte"
    path.write_bytes(head + b"\x00" * 12)
    with pytest.raises(DataError, match="weird-images-idx3-ubyte.*not an IDX file"):
        read_idx(path)


def test_html_error_page_saved_as_idx(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"<html>403 Forbidden</html>")  # a failed download; not even gzip
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 100, 28 * 28 * N_TRAIN])
def test_truncated_body(tmp_path: Path, cut: int) -> None:
    images, _ = tiny_fashion_arrays(N_TRAIN, 0)
    data = idx_bytes(images)
    path = tmp_path / "t-images-idx3-ubyte"
    path.write_bytes(data[:-cut])
    with pytest.raises(DataError, match="t-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_body_too_long(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros((2, 3), np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="long: IDX body has 7 bytes.*needs 6"):
        read_idx(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02")  # 3 dims announced, 1 given
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    images, _ = tiny_fashion_arrays(20, 0)
    blob = gzip.compress(idx_bytes(images))
    path = tmp_path / "cut-images-idx3-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="cut-images-idx3-ubyte.gz"):
        read_idx(path)


# ------------------------------------------------------------------------------------ locate


def _two_files(folder: Path, *, gz: bool = False, stems: tuple[str, str] = (TRAIN_IMAGES, TRAIN_LABELS)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = tiny_fashion_arrays(30, 0)
    for stem, arr in zip(stems, (images, labels)):
        data = idx_bytes(arr)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return folder


def test_locate_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    cache = tmp_path / "xdg_cache" / "gankit" / "fashion-mnist"
    explicit = tmp_path / "explicit"
    monkeypatch.setenv("GANKIT_DATA", str(env))
    places = [explicit, env / "fashion-mnist", env, cache]
    for p in places:
        _two_files(p)
    assert locate("fashion-mnist", explicit)[0].parent == explicit
    for p in places[1:]:  # without a path: the first place that has the files wins
        assert locate("fashion-mnist", None)[0].parent == p
        for f in p.glob("*-ubyte"):
            f.unlink()
    assert locate("fashion-mnist", None) is None


def test_locate_torchvision_raw_layout_and_names(tmp_path: Path) -> None:
    root = tmp_path / "tv"
    _two_files(root / "FashionMNIST" / "raw", gz=True)
    found = locate("fashion-mnist", root)
    assert found == (
        root / "FashionMNIST" / "raw" / (TRAIN_IMAGES + ".gz"),
        root / "FashionMNIST" / "raw" / (TRAIN_LABELS + ".gz"),
    )
    assert locate("mnist", root) is None  # MNIST's own layout is MNIST/raw
    _two_files(root / "MNIST" / "raw")
    assert locate("mnist", root)[0] == root / "MNIST" / "raw" / TRAIN_IMAGES
    dotted = _two_files(tmp_path / "dotted", stems=("train-images.idx3-ubyte", "train-labels.idx1-ubyte"))
    assert locate("fashion-mnist", dotted)[0].name == "train-images.idx3-ubyte"


def test_locate_needs_both_files_of_the_split(tmp_path: Path) -> None:
    folder = _two_files(tmp_path / "d")
    (folder / TRAIN_LABELS).unlink()
    assert locate("fashion-mnist", folder) is None
    assert locate("fashion-mnist", _two_files(tmp_path / "e"), split="test") is None


# ------------------------------------------------------------------------------ load & errors


@pytest.mark.parametrize("fixture", ["tiny_idx", "tiny_idx_gz"])
def test_load_mnist_like(fixture: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(fixture)
    images, labels = load_mnist_like("fashion-mnist", folder)
    exp_images, exp_labels = tiny_fashion_arrays(N_TRAIN, 0)
    assert images.shape == (N_TRAIN, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == exp_labels.tolist()
    assert torch.equal(images[:, 0], torch.from_numpy(exp_images))
    test_images, _ = load_mnist_like("fashion-mnist", folder, split="test")
    assert len(test_images) == N_TEST


def test_missing_data_message_lists_places_and_apt_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gankit.data.mnist as mnist

    calls: list[str] = []

    def failing_download(name: str) -> Path:
        calls.append(name)
        raise OSError("no network")

    monkeypatch.setattr(mnist, "download", failing_download)
    with pytest.raises(DataError) as e:
        load_mnist_like("fashion-mnist")
    assert calls == ["fashion-mnist"]  # without a path, a download is tried once, then the message
    msg = str(e.value)
    for place in (
        tmp_path / "gankit_data_env" / "fashion-mnist",
        tmp_path / "gankit_data_env",
        tmp_path / "xdg_cache" / "gankit" / "fashion-mnist",
        mnist.SYSTEM_DIRS["fashion-mnist"][0],
    ):
        assert f"\n  {place}\n" in msg, place
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    assert "train-images-idx3-ubyte" in msg and "GANKIT_DATA" in msg
    assert "apt-get" not in missing_message("mnist", None)


def test_the_debian_package_folder_is_searched_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a path, /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist) is looked in
    after $GANKIT_DATA and the cache, and the message for missing data names it."""
    import gankit.data.mnist as mnist

    monkeypatch.setattr(mnist, "SYSTEM_DIRS", DEFAULT_SYSTEM_DIRS)  # the module's own value (conftest saved it)
    debian = Path("/usr/share/datasets/fashion-mnist")
    looked = mnist._candidates("fashion-mnist", None)
    cache = tmp_path / "xdg_cache" / "gankit" / "fashion-mnist"
    assert looked.index(debian) > looked.index(cache) > looked.index(tmp_path / "gankit_data_env")
    assert debian / "FashionMNIST" / "raw" in looked
    assert missing_message("fashion-mnist", None).splitlines()[-3:-2] == [f"  {debian}"]
    assert debian not in mnist._candidates("fashion-mnist", tmp_path)  # a given path is the only place


def test_no_download_when_a_path_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gankit.data.mnist as mnist

    calls: list[str] = []
    monkeypatch.setattr(mnist, "download", lambda name: calls.append(name) or tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        load_mnist_like("fashion-mnist", empty)
    assert str(empty) in str(e.value)
    with pytest.raises(DataError, match="no such file or folder"):
        load_mnist_like("fashion-mnist", tmp_path / "does-not-exist")
    with pytest.raises(DataError):
        load_mnist_like("fashion-mnist", None, allow_download=False)
    assert calls == []


def test_found_data_is_used_without_download(tiny_idx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # data in $GANKIT_DATA/<name> is found with no path and no download
    import os

    target = Path(os.environ["GANKIT_DATA"]) / "fashion-mnist"
    shutil.copytree(tiny_idx, target)
    images, _ = load_mnist_like("fashion-mnist")  # the autouse fixture makes a download raise
    assert len(images) == N_TRAIN


def test_inconsistent_files(tmp_path: Path) -> None:
    folder = _two_files(tmp_path / "d")
    _, labels = tiny_fashion_arrays(29, 0)
    (folder / TRAIN_LABELS).write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match="expected images .* and N labels"):
        load_mnist_like("fashion-mnist", folder)
    with pytest.raises(DataError, match="unknown IDX dataset"):
        load_mnist_like("kmnist", folder)


def test_corrupt_file_in_a_found_folder(tmp_path: Path) -> None:
    folder = _two_files(tmp_path / "d")
    (folder / TRAIN_IMAGES).write_bytes((folder / TRAIN_IMAGES).read_bytes()[:-5])
    with pytest.raises(DataError, match=f"{folder / TRAIN_IMAGES}.*truncated"):
        load_mnist_like("fashion-mnist", folder)


# ------------------------------------------------------------- damaged files, concurrent downloads


def _fake_fetch(fetched: list[str], gate: threading.Event | None = None) -> object:
    """A stand-in for torchvision's download (nothing leaves the machine): writes the tiny data set in
    torchvision's layout, half of it before waiting for ``gate``."""

    def fetch(name: str, root: Path) -> None:
        fetched.append(name)
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        (raw / TRAIN_IMAGES).write_bytes(b"\0\0\x08\x03")  # torchvision writes in place, file by file
        if gate is not None:
            assert gate.wait(10)
        write_idx_dataset(raw)

    return fetch


def test_a_truncated_gz_in_a_data_folder_names_the_file_and_the_fix(tmp_path: Path) -> None:
    folder = write_idx_dataset(tmp_path / "d", gz=True)
    gz = folder / (TRAIN_IMAGES + ".gz")
    gz.write_bytes(gz.read_bytes()[:100])  # a copy cut short
    with pytest.raises(DataError) as e:
        load_idx("fashion-mnist", folder)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{gz}: cannot read IDX file (")
    assert msg.endswith("; replace it with a whole copy, or delete it")
    with pytest.raises(DataError) as e:  # what `--data FOLDER` reads first, to tell which data set it is
        mnist.identify_idx(folder)
    assert str(e.value) == msg


def test_a_truncated_download_is_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    raw = write_idx_dataset(tmp_path / "xdg_cache" / "gankit" / "fashion-mnist" / "FashionMNIST" / "raw")
    os.truncate(raw / TRAIN_IMAGES, 1000)  # what a download killed mid-file left (before downloads were atomic)
    fetched: list[str] = []
    monkeypatch.setattr(mnist, "download", REAL_DOWNLOAD)
    monkeypatch.setattr(mnist, "_fetch", _fake_fetch(fetched))
    loaded = load_idx("fashion-mnist")
    assert fetched == ["fashion-mnist"] and len(loaded.images) == N_TRAIN and loaded.downloaded
    out = capsys.readouterr().out
    assert out == (
        f"{raw / TRAIN_IMAGES}: IDX body has 984 bytes, header shape ({N_TRAIN}, 28, 28) needs {N_TRAIN * 784} "
        "(truncated or corrupt); downloading fashion-mnist again\n"
    )
    assert sorted(p.name for p in (tmp_path / "xdg_cache" / "gankit").iterdir()) == ["fashion-mnist"]  # no leftovers
    # without downloads allowed, the same damage is a one-line error with the fix
    os.truncate(raw / TRAIN_IMAGES, 1000)
    with pytest.raises(
        DataError, match=r"truncated or corrupt\); delete it, and gankit downloads fashion-mnist again$"
    ):
        load_idx("fashion-mnist", allow_download=False)


def test_an_interrupted_download_leaves_nothing_that_looks_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(name: str, root: Path) -> None:
        _fake_fetch([])(name, root)
        raise KeyboardInterrupt  # before torchvision returned: the files may be half-written

    monkeypatch.setattr(mnist, "download", REAL_DOWNLOAD)
    monkeypatch.setattr(mnist, "_fetch", killed)
    with pytest.raises(KeyboardInterrupt):
        load_idx("fashion-mnist")
    assert locate("fashion-mnist") is None
    assert list((tmp_path / "xdg_cache" / "gankit").iterdir()) == []


def test_a_second_download_waits_and_uses_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, fetched = threading.Event(), []
    monkeypatch.setattr(mnist, "download", REAL_DOWNLOAD)
    monkeypatch.setattr(mnist, "_fetch", _fake_fetch(fetched, gate))
    results: dict[str, object] = {}

    def load(key: str) -> None:
        results[key] = load_idx("fashion-mnist")

    first = threading.Thread(target=load, args=("first",), daemon=True)
    first.start()
    while not fetched:
        threading.Event().wait(0.01)
    lines: list[str] = []
    # a second process: it finds no files, downloads, and must wait for the first download
    second = threading.Thread(target=lambda: results.update(second=REAL_DOWNLOAD("fashion-mnist", log=lines.append)))
    second.daemon = True
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive() and locate("fashion-mnist") is None  # waiting, and nothing half-written in sight
    cache = tmp_path / "xdg_cache" / "gankit" / "fashion-mnist"
    assert len(lines) == 1 and lines[0].startswith(
        f"waiting for another process downloading fashion-mnist into {cache}"
    )
    gate.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert fetched == ["fashion-mnist"] and results["second"] == cache  # downloaded once
    assert len(results["first"].images) == N_TRAIN  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ through build_dataset


def test_build_dataset_from_idx(tiny_idx: Path) -> None:
    ds = build_dataset(DataConfig(name="fashion-mnist", path=str(tiny_idx)))
    assert len(ds) == N_TRAIN
    assert (ds.info.channels, ds.info.resolution, ds.info.num_classes) == (1, 28, 10)
    assert ds.info.class_names == FASHION_CLASSES
    b = ds.batch(torch.arange(4), device=torch.device("cpu"))
    assert b["image"].shape == (4, 1, 28, 28) and b["image"].min() >= -1 and b["image"].max() <= 1
    small = build_dataset(
        DataConfig(name="fashion-mnist", path=str(tiny_idx), max_images=30, resolution=32, channels=3)
    )
    assert len(small) == 30
    assert small.batch(torch.arange(2), device=torch.device("cpu"))["image"].shape == (2, 3, 32, 32)
    assert len(build_dataset(DataConfig(name="fashion-mnist", path=str(tiny_idx)), "test")) == N_TEST


def test_infer_dataset_name(tiny_idx: Path, image_folder: Path) -> None:
    # The tiny fixture is neither MNIST nor Fashion-MNIST (md5 differs, too few images for statistics).
    assert infer_dataset_name(str(tiny_idx), "fashion-mnist") == ("idx", str(tiny_idx))
    assert infer_dataset_name(str(image_folder), "fashion-mnist") == ("folder", str(image_folder))
    assert infer_dataset_name("mnist", "fashion-mnist") == ("mnist", None)


def test_a_truncated_download_without_network_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = write_idx_dataset(tmp_path / "xdg_cache" / "gankit" / "fashion-mnist" / "FashionMNIST" / "raw")
    os.truncate(raw / TRAIN_LABELS, 20)

    def offline(name: str, root: Path) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://..., got: no network")

    monkeypatch.setattr(mnist, "download", REAL_DOWNLOAD)
    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(DataError) as e:
        load_idx("fashion-mnist")
    assert str(e.value) == (
        f"{raw / TRAIN_LABELS}: IDX body has 12 bytes, header shape ({N_TRAIN},) needs {N_TRAIN} (truncated or "
        "corrupt); could not download fashion-mnist again (Tried https://..., got: no network); "
        f"put whole files in {raw}"
    )
    assert (raw / TRAIN_IMAGES).exists()  # the old files stay where they were
