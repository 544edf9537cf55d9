"""A corpus of bad inputs (issue #6): never a traceback.

(a) A data set with a few bad files among good ones still trains: each bad file is skipped or, where
    the fix is obvious, converted (RGBA -> RGB on white, 16-bit -> 8-bit, CMYK -> RGB; grayscale
    photos are skipped for colorization), and ONE summary line counts what was skipped and why.
(b) Fatal problems (empty folder, mismatched pairs, broken IDX files, bad configs, unknown family,
    checkpoints of another family, malicious or unreadable checkpoints) exit non-zero with a single
    line on stderr naming the file or option.

The CLI is driven in-process (``gankit.cli.main``) for speed; one real ``python -m gankit`` run
checks what a user actually sees.
"""

from __future__ import annotations

import builtins
import io
import pickle
import resource
import shutil
import struct
import subprocess
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GANKIT, make_tiny_cfg, subprocess_env, write_idx_dataset
from PIL import Image, ImageFile

from gankit.cli import main
from gankit.data.colorization import load_colorization
from gankit.data.errors import DataError
from gankit.data.folders import load_image_folder
from gankit.data.images import ImageReadError, is_grayscale, open_image, read_image
from gankit.data.paired import load_aligned, load_pair_folders

CPU = torch.device("cpu")
N_GOOD = 12
SIDE = 48

REFUSED = {
    "empty.png": "empty file",
    "truncated.jpg": "corrupt or truncated",
    "text.jpg": "not an image",
    "tiny.png": "too small",
    "bomb.png": "too large",
}
"""Bad files every loader skips, and the reason each is counted under."""
CONVERTED = ("rgba.png", "gray16.png", "rgb16.png", "cmyk.jpg", "gray_photo.jpg")
"""Bad-but-fixable files: decoded to plain 8-bit RGB."""
GRAYSCALE = ("gray16.png", "gray_photo.jpg")
"""Converted files without colour: kept for DCGAN, skipped for colorization."""

SMALL_DCGAN = [
    "model.ngf=8",
    "model.ndf=8",
    "model.z_dim=8",
    "data.resolution=32",
    "train.batch_size=4",
    "train.progress=false",
    "train.n_samples=4",
]
SMALL_PIX2PIX = [
    "model.ngf=8",
    "model.ndf=8",
    "data.resolution=32",
    "data.load_size=32",
    "train.batch_size=1",
    "train.progress=false",
    "train.n_samples=1",
]


@pytest.fixture(autouse=True)
def _sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real cache, no download (conftest does the same; repeated so this file stands alone)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "gankit_data_env"))

    def no_download(name: str) -> Path:
        raise RuntimeError(f"test tried to download {name}")

    monkeypatch.setattr("gankit.data.mnist.download", no_download)


# ------------------------------------------------------------------------------ the corpus


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, *, depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (PIL cannot write 16-bit RGB, nor lie about the size)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def bomb_png(width: int, height: int) -> bytes:
    """A valid-looking PNG of ~100 bytes that declares ``width`` x ``height`` RGB pixels."""
    return png_bytes(width, height, depth=8, color_type=2, rows=b"\0" * 64)


def rgb16_png(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of the (H, W, 3) uint16 array."""
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in arr)
    return png_bytes(arr.shape[1], arr.shape[0], depth=16, color_type=2, rows=rows)


def write_good(path: Path, seed: int, size: tuple[int, int] = (SIDE, SIDE)) -> None:
    """A colourful random image (PNG or JPEG by suffix)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def make_bad_corpus(folder: Path) -> Path:
    """``N_GOOD`` good 48x48 colour images plus one file of every bad kind, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(N_GOOD):
        write_good(folder / f"good{i:02d}.{'png' if i % 2 else 'jpg'}", seed=i)

    (folder / "empty.png").write_bytes(b"")
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(99).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "text.jpg").write_text("this is a text file that happens to be called .jpg\n" * 20)
    Image.new("RGB", (4, 4), (200, 30, 30)).save(folder / "tiny.png")
    (folder / "bomb.png").write_bytes(bomb_png(100_000, 100_000))

    # RGBA: left third opaque red, middle third half-transparent red, right third fully transparent blue
    rgba = np.zeros((SIDE, SIDE, 4), np.uint8)
    rgba[:, :16] = (255, 0, 0, 255)
    rgba[:, 16:32] = (255, 0, 0, 128)
    rgba[:, 32:] = (0, 0, 255, 0)
    Image.fromarray(rgba).save(folder / "rgba.png")
    # 16-bit grayscale: four bands of 65535, 32768, 257 and 0
    g16 = np.zeros((SIDE, SIDE), np.uint16)
    g16[:12], g16[12:24], g16[24:36] = 65535, 32768, 257
    Image.fromarray(g16).save(folder / "gray16.png")
    # 16-bit RGB: (65535, 32768, 0) everywhere
    (folder / "rgb16.png").write_bytes(
        rgb16_png(np.broadcast_to(np.array([65535, 32768, 0], np.uint16), (SIDE, SIDE, 3)))
    )
    # CMYK JPEG: left half pure red (0, 255, 255, 0), right half pure green (255, 0, 255, 0)
    cmyk = np.zeros((SIDE, SIDE, 4), np.uint8)
    cmyk[:, : SIDE // 2] = (0, 255, 255, 0)
    cmyk[:, SIDE // 2 :] = (255, 0, 255, 0)
    Image.frombytes("CMYK", (SIDE, SIDE), cmyk.tobytes()).save(folder / "cmyk.jpg", quality=95)
    # a grayscale photo stored as an RGB JPEG (three equal channels): fine for DCGAN, no use for colorization
    ramp = np.tile(np.linspace(0, 255, SIDE, dtype=np.uint8), (SIDE, 1))
    Image.fromarray(np.stack([ramp] * 3, axis=-1)).save(folder / "gray_photo.jpg")
    return folder


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_bad_corpus(tmp_path / "corpus")


def test_corpus_is_complete(corpus: Path) -> None:
    names = {p.name for p in corpus.iterdir()}
    assert set(REFUSED) | set(CONVERTED) <= names
    assert len(names) == N_GOOD + len(REFUSED) + len(CONVERTED)


# ------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("name, reason", REFUSED.items())
def test_refused_files_name_the_file_and_a_short_reason(corpus: Path, name: str, reason: str) -> None:
    for fn in (read_image, open_image):
        with pytest.raises(ImageReadError) as info:
            fn(corpus / name)
        err = info.value
        assert err.reason == reason
        assert err.path == corpus / name
        text = str(err)
        assert text.startswith(f"{corpus / name}: {reason}")
        assert "\n" not in text and len(text) < len(str(corpus / name)) + 200


def test_rgba_is_composited_on_white(corpus: Path) -> None:
    assert open_image(corpus / "rgba.png").mode == "RGBA"
    x = read_image(corpus / "rgba.png")
    assert x.shape == (3, SIDE, SIDE) and x.dtype == torch.uint8
    assert x[:, 10, 5].tolist() == [255, 0, 0]  # opaque red stays red
    half = x[:, 10, 20].tolist()  # red at alpha 128 over white
    assert half[0] == 255 and all(abs(v - 127) <= 1 for v in half[1:])
    assert x[:, 10, 40].tolist() == [255, 255, 255]  # transparent blue is white, not blue


def test_16bit_grayscale_is_scaled_to_8bit(corpus: Path) -> None:
    img = open_image(corpus / "gray16.png")
    assert img.mode == "L"
    x = read_image(corpus / "gray16.png")
    assert x.shape == (3, SIDE, SIDE) and x.dtype == torch.uint8
    assert [int(x[0, row, 5]) for row in (5, 15, 30, 40)] == [255, 128, 1, 0]
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert read_image(corpus / "gray16.png", channels=1).shape == (1, SIDE, SIDE)


def test_16bit_rgb_is_scaled_to_8bit(corpus: Path) -> None:
    assert open_image(corpus / "rgb16.png").mode == "RGB"
    x = read_image(corpus / "rgb16.png")
    assert x.shape == (3, SIDE, SIDE)
    assert x[:, 7, 7].tolist() == [255, 128, 0]


def test_float_image_in_unit_range_is_scaled_to_8bit(tmp_path: Path) -> None:
    arr = np.tile(np.array([0.0, 0.5, 1.0], np.float32).repeat(16), (SIDE, 1))
    Image.fromarray(arr).save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    x = read_image(tmp_path / "float.tif", channels=1)
    assert [int(x[0, 0, c]) for c in (0, 20, 40)] == [0, 128, 255]


def test_cmyk_is_converted_to_rgb(corpus: Path) -> None:
    assert open_image(corpus / "cmyk.jpg").mode == "RGB"
    x = read_image(corpus / "cmyk.jpg").int()
    assert x.shape == (3, SIDE, SIDE)
    red, green = x[:, SIDE // 2, SIDE // 4], x[:, SIDE // 2, 3 * SIDE // 4]
    assert (red - torch.tensor([255, 0, 0])).abs().max() <= 8, red
    assert (green - torch.tensor([0, 255, 0])).abs().max() <= 8, green


def test_grayscale_photo_decodes_and_is_recognized(corpus: Path) -> None:
    x = read_image(corpus / "gray_photo.jpg")
    assert x.shape == (3, SIDE, SIDE)
    assert (x[0].int() - x[1].int()).abs().max() <= 2 and (x[1].int() - x[2].int()).abs().max() <= 2
    for name in GRAYSCALE:
        assert is_grayscale(open_image(corpus / name))
    for name in ("rgba.png", "rgb16.png", "cmyk.jpg", "good00.jpg", "good01.png"):
        assert not is_grayscale(open_image(corpus / name)), name


def test_good_png_round_trips_exactly(corpus: Path) -> None:
    expected = np.random.default_rng(1).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    assert torch.equal(read_image(corpus / "good01.png"), torch.from_numpy(expected).permute(2, 0, 1))


def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared sizes above PIL's own limit and between gankit's and PIL's: never decoded, refused at once."""
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or real_load(self))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for w, h in ((100_000, 100_000), (13_000, 13_000), (1, 2_000_000_000)):
        path = tmp_path / f"bomb_{w}x{h}.png"
        path.write_bytes(bomb_png(w, h))
        assert path.stat().st_size < 200
        start = time.perf_counter()
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert time.perf_counter() - start < 0.5
        assert info.value.reason == "too large" and path.name in str(info.value)
    assert not loads, "a bomb reached the pixel decoder"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024


def test_bomb_below_pil_limit_names_its_declared_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(13_000, 13_000))
    with pytest.raises(ImageReadError, match=r"bomb\.png: too large \(declares 13000x13000 pixels"):
        open_image(path)


def test_unreadable_path_is_an_image_read_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        open_image(tmp_path / "missing.png")
    assert info.value.reason == "unreadable" and "missing.png" in str(info.value)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageReadError, match="dir.png: unreadable"):
        open_image(tmp_path / "dir.png")


# ------------------------------------------------------------------------------ data sets


def _one_summary(lines: list[str], total: int, counts: dict[str, int]) -> str:
    assert len(lines) == 1, lines
    line = lines[0]
    assert "\n" not in line and f"skipped {total} file(s)" in line, line
    for reason, n in counts.items():
        assert f"{n} {reason} (e.g. " in line, (reason, line)
    return line


def test_image_folder_skips_bad_files_and_logs_one_summary(corpus: Path) -> None:
    lines: list[str] = []
    ds = load_image_folder(corpus, resolution=32, log=lines.append)
    kept = N_GOOD + len(CONVERTED)
    assert len(ds) == kept and ds.images.shape == (kept, 3, 32, 32) and ds.images.dtype == torch.uint8
    _one_summary(lines, len(REFUSED), {reason: 1 for reason in REFUSED.values()})
    assert ds.labels is None  # a flat folder has no classes
    from gankit.data import EpochSampler

    sampler = EpochSampler(len(ds), 4, seed=0)
    x = ds.batch(sampler.indices(0), device=CPU)["image"]
    assert x.shape == (4, 3, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_threaded_decoding_leaves_the_warning_filters_alone(corpus: Path) -> None:
    before = list(warnings.filters)
    for _ in range(3):
        load_image_folder(corpus, resolution=16, use_cache=False, log=lambda m: None)
    assert warnings.filters == before


def test_cached_image_folder_still_reports_what_it_skipped(corpus: Path) -> None:
    for _ in range(2):
        lines: list[str] = []
        load_image_folder(corpus, resolution=32, log=lines.append)
        _one_summary(lines, len(REFUSED), {reason: 1 for reason in REFUSED.values()})


def test_colorization_also_skips_grayscale_photos(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_bad_corpus(root / "train")
    for i in range(2):
        write_good(root / "val" / f"v{i}.png", seed=100 + i)
    lines: list[str] = []
    ds = load_colorization(root, "train", resolution=16, load_size=16, log=lines.append)
    assert len(ds) == N_GOOD + len(CONVERTED) - len(GRAYSCALE)
    assert not set(GRAYSCALE) & set(ds.names) and set(CONVERTED) - set(GRAYSCALE) <= set(ds.names)
    _one_summary(lines, len(REFUSED) + len(GRAYSCALE), {"grayscale": 2, **{r: 1 for r in REFUSED.values()}})
    b = ds.batch(torch.arange(4), device=CPU, generator=torch.Generator().manual_seed(0))
    assert b["input"].shape == (4, 1, 16, 16) and b["target"].shape == (4, 2, 16, 16)


def test_aligned_odd_width_is_skipped_with_a_count(tmp_path: Path) -> None:
    for i in range(3):
        write_good(tmp_path / "train" / f"pair{i}.jpg", seed=i, size=(64, 32))
    write_good(tmp_path / "train" / "odd.jpg", seed=9, size=(63, 32))
    lines: list[str] = []
    ds = load_aligned(tmp_path, "train", resolution=16, load_size=16, log=lines.append)
    assert len(ds) == 3
    line = _one_summary(lines, 1, {"odd width": 1})
    assert "odd.jpg" in line


def test_pair_folder_with_bad_partner_skips_that_pair(tmp_path: Path) -> None:
    for stem in ("p0", "p1", "p2"):
        write_good(tmp_path / "train" / "a" / f"{stem}.png", seed=1)
        write_good(tmp_path / "train" / "b" / f"{stem}.png", seed=2)
    (tmp_path / "train" / "b" / "p1.png").write_bytes(b"")
    lines: list[str] = []
    ds = load_pair_folders(tmp_path, "train", resolution=16, load_size=16, log=lines.append)
    assert [Path(n).stem for n in ds.names] == ["p0", "p2"]  # the pair whose partner broke, and only it
    _one_summary(lines, 1, {"empty file": 1})


def test_pair_folders_fatal_cases_raise_data_error(tmp_path: Path) -> None:
    sizes = tmp_path / "sizes"
    write_good(sizes / "a" / "x.png", seed=1, size=(40, 40))
    write_good(sizes / "b" / "x.png", seed=2, size=(48, 40))
    with pytest.raises(DataError, match=r"partners differ in size: .*a/x\.png is 40x40 but .*b/x\.png is 48x40"):
        load_pair_folders(sizes, "train", resolution=16, load_size=16, log=lambda m: None)
    lonely = tmp_path / "lonely"
    write_good(lonely / "a" / "x.png", seed=1)
    write_good(lonely / "a" / "y.png", seed=1)
    write_good(lonely / "b" / "x.png", seed=2)
    with pytest.raises(DataError, match=r"a/y\.png has no partner"):
        load_pair_folders(lonely, "train", resolution=16, load_size=16, log=lambda m: None)


# ------------------------------------------------------------------------------ CLI: fatal cases


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``gankit ARGS`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *names: object) -> str:
    assert code != 0
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def _empty_folder(tmp: Path) -> tuple[list[object], list[object]]:
    (tmp / "empty").mkdir()
    return ["train", "dcgan", "--data", tmp / "empty", "--set", *SMALL_DCGAN], [tmp / "empty"]


def _only_bad_files(tmp: Path) -> tuple[list[object], list[object]]:
    folder = tmp / "allbad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_text("not an image")
    return ["train", "dcgan", "--data", folder, "--set", *SMALL_DCGAN], [folder]


def _pair_sizes_differ(tmp: Path) -> tuple[list[object], list[object]]:
    root = tmp / "pairs"
    write_good(root / "a" / "x.png", seed=1, size=(40, 40))
    write_good(root / "b" / "x.png", seed=2, size=(48, 40))
    return ["train", "pix2pix", "--data", root, "--set", *SMALL_PIX2PIX], [root / "a" / "x.png", root / "b" / "x.png"]


def _pair_missing_partner(tmp: Path) -> tuple[list[object], list[object]]:
    root = tmp / "pairs"
    for stem in ("x", "y"):
        write_good(root / "a" / f"{stem}.png", seed=1)
    write_good(root / "b" / "x.png", seed=2)
    return ["train", "pix2pix", "--data", root, "--set", *SMALL_PIX2PIX], [root / "a" / "y.png"]


def _idx_bad_magic(tmp: Path) -> tuple[list[object], list[object]]:
    folder = write_idx_dataset(tmp / "idx", n_train=20, n_test=10)
    f = folder / "train-images-idx3-ubyte"
    f.write_bytes(b"\x12\x34" + f.read_bytes()[2:])
    return ["train", "gan", "--data", folder], [f, "magic"]


def _idx_truncated(tmp: Path) -> tuple[list[object], list[object]]:
    folder = write_idx_dataset(tmp / "idx", n_train=20, n_test=10)
    f = folder / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    return ["train", "gan", "--data", folder], [f, "truncated"]


def _config_unknown_key(tmp: Path) -> tuple[list[object], list[object]]:
    (tmp / "bad.yaml").write_text("train:\n  batch_size: 10\n  no_such_key: 3\n")
    return ["train", "gan", "--data", write_idx_dataset(tmp / "idx"), "--config", tmp / "bad.yaml"], [
        tmp / "bad.yaml",
        "train.no_such_key",
    ]


def _config_wrong_type(tmp: Path) -> tuple[list[object], list[object]]:
    (tmp / "bad.yaml").write_text("train:\n  batch_size: lots\n")
    return ["train", "gan", "--data", write_idx_dataset(tmp / "idx"), "--config", tmp / "bad.yaml"], [
        tmp / "bad.yaml",
        "train.batch_size",
    ]


def _set_unknown_key(tmp: Path) -> tuple[list[object], list[object]]:
    return ["train", "gan", "--data", write_idx_dataset(tmp / "idx"), "--set", "train.no_such_key=3"], [
        "--set",
        "train.no_such_key",
    ]


def _set_wrong_type(tmp: Path) -> tuple[list[object], list[object]]:
    return ["train", "gan", "--data", write_idx_dataset(tmp / "idx"), "--set", "train.batch_size=lots"], [
        "--set",
        "train.batch_size",
    ]


FATAL_CASES: dict[str, Callable[[Path], tuple[list[object], list[object]]]] = {
    "empty folder": _empty_folder,
    "folder of only bad files": _only_bad_files,
    "pair sizes differ": _pair_sizes_differ,
    "pair missing partner": _pair_missing_partner,
    "IDX bad magic": _idx_bad_magic,
    "IDX truncated body": _idx_truncated,
    "--config unknown key": _config_unknown_key,
    "--config wrong type": _config_wrong_type,
    "--set unknown key": _set_unknown_key,
    "--set wrong type": _set_wrong_type,
}


@pytest.mark.parametrize("case", FATAL_CASES)
def test_fatal_input_exits_with_one_line_naming_it(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, names = FATAL_CASES[case](tmp_path)
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "run")
    line = assert_one_line_error(code, err, *names)
    assert line.startswith("gankit train: error: ")


def test_unknown_family_exits_non_zero_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "train", "nosuchfamily")
    assert code == 2 and "Traceback" not in err
    assert "nosuchfamily" in err.strip().splitlines()[-1]


def test_unknown_family_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "train", "nosuchfamily")
    assert_one_line_error(code, err, "nosuchfamily")


# ------------------------------------------------------------------------------ CLI: checkpoints


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny gan run of 2 epochs (so it holds last.pt, last.prev.pt and G_last.pt); read-only."""
    from gankit.launch import train

    base = tmp_path_factory.mktemp("gan_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(base / "xdg_cache"))
        mp.setenv("GANKIT_DATA", str(base / "gankit_data_env"))
        mp.setattr("gankit.training.callbacks.plot_losses", lambda *a, **k: None)
        cfg = make_tiny_cfg("gan", base, **{"train.epochs": 2, "train.batch_size": 100, "train.n_samples": 4})
        train(cfg, base / "run", log=lambda m: None)
    ckpt = base / "run" / "checkpoints"
    assert {"last.pt", "last.prev.pt", "G_last.pt"} <= {p.name for p in ckpt.iterdir()}
    return base / "run"


@pytest.fixture
def run_copy(gan_run: Path, tmp_path: Path) -> Path:
    """A private copy of the gan run that a test may damage."""
    return Path(shutil.copytree(gan_run, tmp_path / "run"))


def test_resume_with_another_family_is_refused(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "train", "cgan", "--resume", "--out", run_copy)
    line = assert_one_line_error(code, err, run_copy, "gan", "cgan")
    assert "--resume" in line


def test_translate_with_a_gan_checkpoint_is_refused(
    run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_good(tmp_path / "in.png", seed=0)
    code, _, err = run_cli(
        capsys, "translate", run_copy, tmp_path / "in.png", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert_one_line_error(code, err, "G_last.pt", "gan", "pix2pix")
    assert not (tmp_path / "out").exists()


class _Payload:
    """Unpickling this runs ``exec``: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return builtins.exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",)


def write_malicious(path: Path, marker: Path, *, raw: bool = False) -> Path:
    """A checkpoint whose unpickling runs code: a torch zip file, or (``raw``) a bare pickle."""
    obj = {"config": {}, "G": _Payload(marker), "step": 1}
    if raw:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path)
    return path


def test_the_malicious_payload_is_live(tmp_path: Path) -> None:
    """Guards the tests below: an unsafe load of this payload does run code."""
    marker = tmp_path / "pwned_by_unsafe_load"
    pickle.loads(write_malicious(tmp_path / "raw.pt", marker, raw=True).read_bytes())
    assert marker.exists()
    marker.unlink()
    torch.load(write_malicious(tmp_path / "zip.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("raw", [False, True], ids=["torch-zip", "raw-pickle"])
def test_malicious_checkpoint_is_refused_without_running_it(
    raw: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    evil = write_malicious(tmp_path / "evil.pt", marker, raw=raw)
    code, _, err = run_cli(capsys, "sample", evil, "--n", "2", "--out", tmp_path / "samples", "--device", "cpu")
    assert_one_line_error(code, err, evil)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["torch-zip", "raw-pickle-protocol-4", "garbage"])
def test_refused_checkpoint_message_is_one_clean_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    path = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        path.write_bytes(b"garbage" * 100)
    elif kind == "torch-zip":
        write_malicious(path, tmp_path / "pwned")
    else:  # pickle.dumps' default protocol: what a hand-made malicious file most likely is
        path.write_bytes(pickle.dumps({"config": {}, "G": _Payload(tmp_path / "pwned")}, protocol=4))
    code, _, err = run_cli(capsys, "sample", path, "--out", tmp_path / "samples", "--device", "cpu")
    line = assert_one_line_error(code, err, path, *(["exec"] if kind == "torch-zip" else []))
    assert "\x1b" not in line and "weights_only" not in line, line
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)], [str(w.message) for w in recwarn]
    assert not (tmp_path / "pwned").exists()


def test_malicious_resume_state_is_refused_without_running_it(
    run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    for name in ("last.pt", "last.prev.pt"):
        write_malicious(run_copy / "checkpoints" / name, marker)
    code, _, err = run_cli(capsys, "train", "gan", "--resume", "--out", run_copy)
    assert_one_line_error(code, err, run_copy / "checkpoints" / "last.pt")
    assert not marker.exists()


def test_resume_fails_clearly_when_every_checkpoint_is_unreadable(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = run_copy / "checkpoints"
    (ckpt / "last.pt").write_bytes(b"garbage" * 100)
    (ckpt / "last.prev.pt").write_bytes(b"")
    code, _, err = run_cli(capsys, "train", "gan", "--resume", "--out", run_copy)
    line = assert_one_line_error(code, err, ckpt / "last.pt", ckpt / "last.prev.pt")
    assert "no usable checkpoint" in line


def test_resume_falls_back_to_the_previous_checkpoint_with_a_warning(
    run_copy: Path, capsys: pytest.CaptureFixture[str], no_loss_plot: None
) -> None:
    (run_copy / "checkpoints" / "last.pt").write_bytes(b"garbage" * 100)
    code, out, err = run_cli(capsys, "train", "gan", "--resume", "--out", run_copy, "--set", "train.epochs=3")
    assert code == 0, err
    assert "Traceback" not in err
    warnings = [line for line in (out + err).splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and "last.pt" in warnings[0] and "last.prev.pt" in warnings[0], out + err
    # last.prev.pt is the state saved at the last step before the end-of-run work (which is then redone)
    assert "resumed" in out and "at step 4 " in out
    state = torch.load(run_copy / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 6


# ------------------------------------------------------------------------------ end to end


def test_dcgan_trains_on_the_mixed_corpus_and_prints_the_summary(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_loss_plot: None
) -> None:
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "train",
        "dcgan",
        "--data",
        corpus,
        "--out",
        run,
        "--max-steps",
        "2",
        "--set",
        "model.ngf=8",
        "model.ndf=8",
        "data.resolution=32",
        "train.batch_size=4",
        "train.progress=false",
    )
    assert code == 0, err
    assert "Traceback" not in err
    summaries = [line for line in out.splitlines() if "skipped" in line]
    assert len(summaries) == 1 and f"skipped {len(REFUSED)} file(s)" in summaries[0], out
    assert f"{N_GOOD + len(CONVERTED)} images" in out
    assert (run / "checkpoints" / "G_last.pt").is_file()


def test_real_cli_refuses_a_malicious_checkpoint_in_one_line(tmp_path: Path, mpl_config_dir: Path) -> None:
    """What a user sees: exit 1, one line on stderr naming the file, no traceback, no code run."""
    marker = tmp_path / "pwned"
    evil = write_malicious(tmp_path / "evil.pt", marker)
    res = subprocess.run(
        [*GANKIT, "sample", str(evil), "--out", str(tmp_path / "samples")],
        env=subprocess_env(tmp_path, mpl_config_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    assert_one_line_error(res.returncode, res.stderr, evil)
    assert not marker.exists()


# ------------------------------------------------------------------------------ one photo as --data


@pytest.mark.parametrize(
    "preset, hint",
    [
        ("colorize", "gankit colorize RUN {photo}"),
        ("pix2pix", "gankit translate RUN {photo}"),
        ("dcgan", ""),
        ("gan", ""),
    ],
)
def test_one_photo_as_training_data_never_suggests_its_folder(
    preset: str, hint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The photo's folder may be /tmp or the home folder: training would search all of it.
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(photo)
    assert main(["train", preset, "--data", str(photo), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"gankit train: error: --data {photo} is one image")
    assert f"--data {tmp_path} " not in err + " " and "folder that holds only training images" in err
    assert (hint.format(photo=photo) in err) if hint else "RUN" not in err
    assert not (tmp_path / "run").exists()


def test_colorizing_two_photos_of_one_name_names_the_colorize_command(tmp_path: Path) -> None:
    from gankit.translate import plan_outputs

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / sub / "x.jpg")
    with pytest.raises(DataError, match="rename one or colorize them in separate runs"):
        plan_outputs([tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg"], tmp_path / "out", command="colorize")
