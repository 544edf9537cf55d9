"""CMP Facade builder and facades lookup, on generated palette images (never the real data, never the network)."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import urllib.error
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit.data.facades as facades
from gankit.data.errors import DataError
from gankit.data.facades import (
    CMP_PALETTE,
    build_facades,
    download_facades,
    facades_direction,
    find_facades,
    split_of,
)
from gankit.data.paired import load_aligned

PHOTO = (200, 120, 40)
# Quadrant classes of every generated label map: (top-left, top-right, bottom-left, bottom-right).
QUADRANTS = (3, 11, 6, 12)


def _label_png(path: Path, w: int = 40, h: int = 30) -> None:
    idx = np.empty((h, w), dtype=np.uint8)
    idx[: h // 2, : w // 2], idx[: h // 2, w // 2 :] = QUADRANTS[0], QUADRANTS[1]
    idx[h // 2 :, : w // 2], idx[h // 2 :, w // 2 :] = QUADRANTS[2], QUADRANTS[3]
    img = Image.fromarray(idx).convert("P")
    # A deliberately wrong palette: the builder must colour from the indices by CMP_PALETTE.
    img.putpalette([v for i in range(256) for v in (255 - i, (7 * i) % 256, 128)])
    img.save(path)


def _cmp_folder(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        _label_png(root / f"cmp_b{i:04d}.png")
        Image.new("RGB", (40, 30), PHOTO).save(root / f"cmp_b{i:04d}.jpg")
    return root


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test away from the user's cache and from the network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANKIT_DATA", raising=False)

    def no_download(*args: object, **kwargs: object) -> Path:
        raise AssertionError("a test tried to download the facades release")

    monkeypatch.setattr(facades, "download_facades", no_download)


def test_split_counts_for_the_378_cmp_base_pairs() -> None:
    assert Counter(split_of(i) for i in range(378)) == {"train": 304, "val": 37, "test": 37}
    assert [split_of(i) for i in range(10)] == ["train"] * 8 + ["val", "test"]


def test_build_maps_labels_by_table_pairs_and_splits(tmp_path: Path) -> None:
    src = _cmp_folder(tmp_path / "cmp")
    (src / "cmp_b0003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupt label: pair skipped
    _label_png(src / "cmp_b0100.png")  # label without photo
    Image.new("RGB", (40, 30), PHOTO).save(src / "cmp_b0101.jpg")  # photo without label
    lines: list[str] = []
    dst = tmp_path / "out"
    manifest = build_facades(src, dst, log=lines.append)

    # Split by sorted index over the 12 complete pairs: #8 (cmp_b0009) val, #9 (cmp_b0010) test.
    assert manifest["counts"] == {"train": 9, "val": 1, "test": 1}
    assert sorted(p.name for p in (dst / "val").iterdir()) == ["cmp_b0009.jpg"]
    assert sorted(p.name for p in (dst / "test").iterdir()) == ["cmp_b0010.jpg"]
    assert "cmp_b0003.jpg" not in {p.name for p in (dst / "train").iterdir()}
    assert manifest["skipped"]["no partner"] == 2 and sum(manifest["skipped"].values()) == 3
    assert len(lines) == 1 and "skipped 3 file(s)" in lines[0]
    assert json.loads((dst / "manifest.json").read_text())["counts"] == manifest["counts"]

    out = Image.open(dst / "train" / "cmp_b0001.jpg")
    assert out.size == (512, 256) and out.mode == "RGB"
    px = np.asarray(out).astype(int)
    for (y, x), cls in zip([(64, 64), (64, 192), (192, 64), (192, 192)], QUADRANTS):
        assert np.abs(px[y, x] - CMP_PALETTE[cls]).max() <= 4, (cls, px[y, x])
    assert np.abs(px[128, 256 + 128] - PHOTO).max() <= 4  # B half: the photo


def test_built_folder_loads_as_aligned_labels_to_photo(tmp_path: Path) -> None:
    dst = tmp_path / "out"
    build_facades(_cmp_folder(tmp_path / "cmp", n=3), dst, size=32, log=lambda s: None)
    assert facades_direction(dst) == "AtoB"
    ds = load_aligned(dst, "train", resolution=32, direction=facades_direction(dst), log=lambda s: None)
    b = ds.batch(torch.arange(len(ds)), device=torch.device("cpu"), generator=None)
    photo = ((b["target"].mean(dim=(0, 2, 3)) + 1) * 127.5).round()
    assert np.abs(photo.numpy() - PHOTO).max() <= 3
    # The input's top-left quadrant is class 3's colour.
    tl = ((b["input"][0, :, 4, 4] + 1) * 127.5).round().numpy()
    assert np.abs(tl - CMP_PALETTE[QUADRANTS[0]]).max() <= 6
    assert facades_direction(tmp_path / "cmp") == "BtoA"  # no manifest: the pix2pix release layout


def test_find_facades_builds_once_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "data"))
    src = _cmp_folder(tmp_path / "cmp", n=4)
    calls: list[Path] = []
    real_build = facades.build_facades

    def counting_build(s: Path, d: Path, **kw: object) -> dict:
        calls.append(d)
        return real_build(s, d, size=16, log=lambda m: None)

    monkeypatch.setattr(facades, "build_facades", counting_build)
    root = find_facades(src, log=lambda s: None)
    assert root == tmp_path / "data" / "facades" and calls == [root]
    assert (root / "train").is_dir() and (root / "manifest.json").is_file()
    assert find_facades(src, log=lambda s: None) == root and len(calls) == 1  # reused
    assert find_facades(log=lambda s: None) == root and len(calls) == 1  # found without a path
    Image.new("RGB", (40, 30), PHOTO).save(src / "cmp_b0099.jpg")  # the source changed: rebuild
    find_facades(src, log=lambda s: None)
    assert len(calls) == 2


def test_find_facades_accepts_an_aligned_release_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "datasets" / "facades"
    (release / "train").mkdir(parents=True)
    (release / "val").mkdir()
    assert find_facades(release) == release
    assert find_facades(tmp_path / "datasets") == release  # a folder holding facades/
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "datasets"))
    assert find_facades() == release


def test_find_facades_without_data_downloads_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Path] = []
    monkeypatch.setattr(facades, "download_facades", lambda dest, log=print: asked.append(dest) or dest)
    # XDG_CACHE_HOME (set by conftest) decides, as for every other cache
    expected = Path(os.environ["XDG_CACHE_HOME"]) / "gankit" / "facades"
    assert find_facades(log=lambda s: None) == expected
    assert asked == [expected]


def test_find_facades_rejects_other_folders(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="neither the CMP Facade base folder"):
        find_facades(tmp_path / "photos")
    with pytest.raises(DataError, match="does not exist"):
        find_facades(tmp_path / "missing")


def test_download_failure_says_where_to_put_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(facades.urllib.request, "urlopen", offline)  # nothing leaves the machine
    dest = tmp_path / "cache" / "facades"
    with pytest.raises(DataError) as e:
        download_facades(dest, log=lambda s: None)
    assert str(dest) in str(e.value) and "cmp_b" in str(e.value) and "GANKIT_DATA" in str(e.value)
    assert not (tmp_path / "cache" / "facades.tar.gz.part").exists()


def test_safe_extract_refuses_paths_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:gz") as tar, pytest.raises(DataError, match="evil"):
        facades._safe_extract(tar, tmp_path / "x")
    assert not (tmp_path / "evil.txt").exists()


def test_build_refuses_to_overwrite_foreign_folders(tmp_path: Path) -> None:
    dst = tmp_path / "mine"
    (dst / "train").mkdir(parents=True)
    (dst / "train" / "keep.jpg").write_bytes(b"user data")
    with pytest.raises(DataError, match="refusing to overwrite"):
        build_facades(_cmp_folder(tmp_path / "cmp", n=2), dst, size=16)
    assert (dst / "train" / "keep.jpg").exists()


# ------------------------------------------------------------------ two processes, killed builds


def _release_tar() -> bytes:
    """A tiny pix2pix-release archive: facades/{train,val,test}/1.jpg."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split in ("train", "val", "test"):
            jpg = io.BytesIO()
            Image.new("RGB", (32, 16), PHOTO).save(jpg, format="JPEG")
            info = tarfile.TarInfo(f"facades/{split}/1.jpg")
            info.size = len(jpg.getvalue())
            tar.addfile(info, io.BytesIO(jpg.getvalue()))
    return buf.getvalue()


class _SlowResponse:
    """An HTTP response that sends half the archive, then waits for ``gate`` before the rest."""

    def __init__(self, data: bytes, gate: threading.Event, started: threading.Event) -> None:
        self.data, self.gate, self.started, self.sent = data, gate, started, 0
        self.headers = {"Content-Length": str(len(data))}

    def __enter__(self) -> _SlowResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self, n: int) -> bytes:
        if self.sent == 0:
            chunk = self.data[: len(self.data) // 2]
        else:
            self.started.set()
            assert self.gate.wait(10)
            chunk = self.data[self.sent :]
        self.sent += len(chunk)
        return chunk


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as e:  # reported by the test
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_second_download_waits_and_uses_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes downloading the release at once would write one facades.tar.gz.part together."""
    gate, started, opened = threading.Event(), threading.Event(), []
    data = _release_tar()

    def fake_urlopen(url: str, timeout: float) -> _SlowResponse:  # nothing leaves the machine
        opened.append(url)
        return _SlowResponse(data, gate, started)

    monkeypatch.setattr(facades.urllib.request, "urlopen", fake_urlopen)
    dest = tmp_path / "cache" / "facades"
    first, r1 = _in_thread(lambda: download_facades(dest, log=lambda s: None))
    assert started.wait(10)  # the first is half-way through the archive
    lines: list[str] = []
    second, r2 = _in_thread(lambda: download_facades(dest, log=lines.append))
    second.join(timeout=0.5)
    assert second.is_alive() and len(opened) == 1  # waiting, not downloading
    assert len(lines) == 1 and lines[0].startswith(f"waiting for another process building the facades set in {dest}")
    gate.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert r1 == {"value": dest} and r2 == {"value": dest} and len(opened) == 1
    assert lines[-1] == f"using the facades set in {dest} (downloaded by another process)"
    # the splits, and the marker that tells `gankit cache` the folder is a download
    assert sorted(p.name for p in dest.iterdir()) == [".gankit-downloaded", "test", "train", "val"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["facades"]  # no archive, lock or temp folder left


def test_a_second_build_waits_and_reuses_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "data"))
    src = _cmp_folder(tmp_path / "cmp", n=4)
    gate, started, converted = threading.Event(), threading.Event(), []
    real_convert = facades._convert_pair

    def slow_convert(png: Path, jpg: Path, out: Path, size: int) -> None:
        converted.append(png.name)
        started.set()
        assert gate.wait(10)
        real_convert(png, jpg, out, 16)

    monkeypatch.setattr(facades, "_convert_pair", slow_convert)
    first, r1 = _in_thread(lambda: find_facades(src, log=lambda s: None))
    assert started.wait(10)
    lines: list[str] = []
    second, r2 = _in_thread(lambda: find_facades(src, log=lines.append))
    second.join(timeout=0.5)
    assert second.is_alive() and "value" not in r2
    assert any(line.startswith("waiting for another process building the facades set") for line in lines)
    gate.set()
    first.join(timeout=30)
    second.join(timeout=30)
    root = tmp_path / "data" / "facades"
    assert r1 == {"value": root} and r2 == {"value": root}
    assert len(converted) == 4  # each pair once: the second process reused the first one's build
    assert json.loads((root / "manifest.json").read_text())["counts"] == {"train": 4, "val": 0, "test": 0}
    assert sorted(p.name for p in root.iterdir()) == ["manifest.json", "test", "train", "val"]


def test_a_killed_build_is_rebuilt_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "data"))
    src = _cmp_folder(tmp_path / "cmp", n=4)
    real_convert = facades._convert_pair

    def dies_at_the_third(png: Path, jpg: Path, out: Path, size: int) -> None:
        if png.name == "cmp_b0003.png":
            raise KeyboardInterrupt  # the process is killed half-way
        real_convert(png, jpg, out, 16)

    monkeypatch.setattr(facades, "_convert_pair", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        find_facades(src, log=lambda s: None)
    root = tmp_path / "data" / "facades"
    assert (root / "train").is_dir() and not (root / "manifest.json").exists()
    monkeypatch.setattr(facades, "_convert_pair", lambda p, j, o, s: real_convert(p, j, o, 16))
    lines: list[str] = []
    assert find_facades(log=lines.append) == root  # no path: found in GANKIT_DATA, finished from its source
    assert lines[0] == f"{root} holds an unfinished facades build; finishing it from {src.resolve()}"
    assert len(list((root / "train").glob("*.jpg"))) == 4 and (root / "manifest.json").is_file()
    assert not (root / ".gankit-building").exists()


def test_a_killed_build_without_its_source_is_a_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "facades"
    (root / "train").mkdir(parents=True)
    (root / ".gankit-building").write_text(json.dumps({"source": str(tmp_path / "gone")}))
    with pytest.raises(DataError) as e:
        find_facades(root, log=lambda s: None)
    assert str(e.value) == (
        f"{root} holds an unfinished gankit facades build (interrupted, no manifest.json); pass the CMP Facade "
        "base folder (cmp_b*.png + cmp_b*.jpg) as the data path to rebuild it, or delete it"
    )
