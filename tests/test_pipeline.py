"""Folders at full speed: worker threads and batches write the files of the one-at-a-time loop, in
order, inside the memory estimate, with images/s on the progress bar."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import snapshot_run
from PIL import Image

import gankit.translate as translate_mod
from gankit.cli import main
from gankit.data.images import ImageReadError, SkipReport
from gankit.pipeline import Prepared, run_files
from gankit.translate import colorize_files, translate_files


def _photo(path: Path, h: int, w: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Photos of three sizes in two subfolders (runs of one size, then another), and a broken file."""
    sizes = [(40, 40)] * 5 + [(36, 50)] * 2 + [(40, 40)] * 2 + [(64, 33)]
    for i, (h, w) in enumerate(sizes):
        _photo(tmp_path / "in" / ("a" if i < 6 else "b") / f"{i:02d}.png", h, w, seed=i)
    (tmp_path / "in" / "a" / "03b.png").write_bytes(b"not an image")
    return tmp_path / "in"


# ------------------------------------------------------------------------------ the same files


ORT = pytest.param(
    "colorize-onnxruntime",
    marks=[
        pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed"),
        pytest.mark.slow,  # one ONNX export
    ],
)


@pytest.mark.parametrize("command", ["translate", "translate-tile", "colorize", "translate-train", ORT])
def test_the_pipeline_writes_the_files_of_the_sequential_loop(folder: Path, tmp_path: Path, command: str) -> None:
    """With the same engine (the tests' default: torch; and onnxruntime)."""
    family = "colorize" if command.startswith("colorize") else "pix2pix"
    run = snapshot_run(family, tmp_path)
    convert = colorize_files if family == "colorize" else translate_files
    options: dict = {"strategy": "tile"} if command == "translate-tile" else {}
    if command == "translate-train":  # one image per generator call; dropout draws in input order
        options = {"train_mode": True}
    if command == "colorize-onnxruntime":
        options = {"engine": "onnxruntime"}
    done = {}
    for name, workers in (("sequential", 0), ("pipelined", 3)):
        torch.manual_seed(0)
        done[name] = convert(run, [folder], tmp_path / name, workers=workers, log=lambda line: None, **options)
    seq, par = done["sequential"], done["pipelined"]
    assert [p.relative_to(tmp_path / "pipelined") for p in par.written] == [
        p.relative_to(tmp_path / "sequential") for p in seq.written
    ]  # the same names, in input order
    assert [p.as_posix() for p in seq.written][:2] == [
        f"{tmp_path}/sequential/a/00.png",
        f"{tmp_path}/sequential/a/01.png",
    ]
    assert len(par.written) == 10 and par.skipped == seq.skipped == 1
    for a, b in zip(seq.written, par.written):
        assert a.read_bytes() == b.read_bytes(), b  # byte for byte
        assert Image.open(a).size == Image.open(folder / b.relative_to(tmp_path / "pipelined")).size


def test_same_shape_inputs_are_batched_in_order_and_nothing_else() -> None:
    shapes = [1, 1, 1, 1, 1, 1, 2, 2, 1, 3]  # the generator input's side, per item
    calls: list[list[int]] = []

    def prepare(i: int) -> Prepared:
        if i == 4:
            raise ImageReadError(f"{i}.png", "unreadable")
        return Prepared(torch.full((1, 1, shapes[i], shapes[i]), float(i)), i, batchable=i != 9)

    def generate(x: torch.Tensor, contexts: list) -> torch.Tensor:
        calls.append(contexts)
        assert x.shape[0] == len(contexts)
        return x * 2

    def finish(i: int, y: torch.Tensor, context: int) -> float:
        assert context == i and y.shape[0] == 1
        return float(y.flatten()[0])

    report = SkipReport("inputs")
    got = run_files(range(10), prepare, generate, finish, report=report, desc="t", workers=2, in_flight=12, max_batch=4)
    assert got == [0.0, 2.0, 4.0, 6.0, None, 10.0, 12.0, 14.0, 16.0, 18.0] and report.total == 1
    assert calls == [[0, 1, 2, 3], [5], [6, 7], [8], [9]]  # a new shape or a full batch starts a batch
    sequential: list[list[int]] = []
    calls, report = sequential, SkipReport("inputs")
    assert run_files(range(10), prepare, generate, finish, report=report, desc="t", workers=0) == got
    assert sequential == [[i] for i in range(10) if i != 4]


def test_at_most_in_flight_items_are_held(tmp_path: Path) -> None:
    lock, held, peak = threading.Lock(), [0], [0]

    def prepare(i: int) -> Prepared:
        with lock:
            held[0] += 1
            peak[0] = max(peak[0], held[0])
        return Prepared(torch.zeros(1, 1, 2, 2), i)

    def finish(i: int, y: torch.Tensor, context: int) -> int:
        with lock:
            held[0] -= 1
        return i

    for in_flight in (1, 3, 5):
        peak[0] = 0
        got = run_files(
            range(23), prepare, lambda x, c: x, finish, report=SkipReport("x"), desc="t", workers=4,
            in_flight=in_flight, max_batch=4,
        )  # fmt: skip
        assert got == list(range(23)) and 1 <= peak[0] <= in_flight


def test_an_error_while_writing_stops_the_run(tmp_path: Path) -> None:
    def finish(i: int, y: torch.Tensor, context: int) -> int:
        if i == 5:
            raise OSError("disk full")
        return i

    with pytest.raises(OSError, match="disk full"):
        run_files(
            range(40), lambda i: Prepared(torch.zeros(1, 1, 2, 2), i), lambda x, c: x, finish,
            report=SkipReport("x"), desc="t", workers=2,
        )  # fmt: skip


# ----------------------------------------------------------------------------------- memory


def test_images_held_at_once_fit_the_memory_limit(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = snapshot_run("pix2pix", tmp_path)
    seen: dict = {}

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.update(kwargs)
        return run_files(*args, **kwargs)

    monkeypatch.setattr(translate_mod, "run_files", spy)
    loaded = translate_mod.load_generator(run)
    fixed = translate_mod._fixed_bytes(loaded)
    largest = translate_mod._translate_bytes(loaded, 64, 33, "pad", None)  # the largest input, padded to 64x64
    assert largest > max(translate_mod._translate_bytes(loaded, h, w, "pad", None) for h, w in [(40, 40), (36, 50)])
    for fits, want in ((2.5, 2), (1.2, 1), (100, 12)):
        limit = (fixed + fits * largest) / 1e9
        translate_files(run, [folder], tmp_path / f"o{fits}", strategy="pad", max_memory=limit, log=lambda line: None)
        assert seen["in_flight"] == want and seen["max_batch"] == 4  # (run_files batches at most in_flight)
    translate_files(run, [folder], tmp_path / "t", train_mode=True, log=lambda line: None)
    assert seen["max_batch"] == 1 and seen["in_flight"] == 3  # batch statistics are each image's own


# ---------------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_images_per_second(folder: Path, tmp_path: Path) -> None:
    run = snapshot_run("colorize", tmp_path)
    err = _Terminal()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["colorize", str(run), str(folder), "--out", str(tmp_path / "o")]) == 0
    last = [state for state in err.getvalue().split("\r") if state.strip()][-1]  # before it is cleared
    assert last.startswith("colorize: 100%|") and "| 11/11 [" in last
    rate = last.rsplit(", ", 1)[1]
    assert rate.endswith(" img/s]") and float(rate.split()[0].replace(",", "")) > 0
