"""gankit translate / colorize on files: output trees, overwriting, formats, checkpoint choice,
the memory guard, and what the U-Net does at sizes other than its training size."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import flag, main
from gankit.config import make_config
from gankit.data.base import DataInfo
from gankit.data.errors import DataError
from gankit.families import get_family
from gankit.inference import (
    DEFAULT_STRATEGY,
    _PeakTensorBytes,
    estimate_memory,
    profile_generator,
    run_any_size,
    zero_unused_taps,
)
from gankit.models.unet import UNetGenerator
from gankit.sampling import DEFAULT_CHECKPOINT, load_generator, resolve_checkpoint
from gankit.training.checkpoint import CheckpointError, atomic_save, generator_snapshot
from gankit.translate import Job, check_overwrite, plan_outputs, plan_strategies, translate_memory

RES = 32


def _run(*args: str) -> subprocess.CompletedProcess:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _snapshot(G: torch.nn.Module, family: str = "pix2pix", ngf: int = 4) -> dict:
    cfg = make_config(family, overrides={"data.resolution": RES, "model.ngf": ngf, "model.ndf": 4})
    space, cin, cout = ("lab", 1, 2) if family == "colorize" else ("rgb", 3, 3)
    info = DataInfo(channels=cout, resolution=RES, in_channels=cin, space=space)
    return generator_snapshot(cfg, info, G.state_dict())


def _build(family: str = "pix2pix", ngf: int = 4, seed: int = 0) -> torch.nn.Module:
    cfg = make_config(family, overrides={"data.resolution": RES, "model.ngf": ngf, "model.ndf": 4})
    cin, cout = (1, 2) if family == "colorize" else (3, 3)
    torch.manual_seed(seed)
    G, _ = get_family(family).build(cfg, DataInfo(channels=cout, resolution=RES, in_channels=cin), init=True)
    return G.eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with different G_last and G_best snapshots of a tiny pix2pix U-Net."""
    run = tmp_path_factory.mktemp("run")
    atomic_save(_snapshot(_build(seed=0)), run / "checkpoints" / "G_last.pt")
    atomic_save(_snapshot(_build(seed=1)), run / "checkpoints" / "G_best.pt")
    return run


def _img(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# ------------------------------------------------------------------------------ output tree


@pytest.fixture(scope="module")
def colorize_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("col")
    atomic_save(_snapshot(_build("colorize"), "colorize"), run / "checkpoints" / "G_last.pt")
    return run


@pytest.mark.parametrize("command", ["translate", "colorize"])
def test_folder_tree_is_mirrored_and_same_names_do_not_collide(
    run_dir: Path, colorize_dir: Path, tmp_path: Path, command: str
) -> None:
    _img(tmp_path / "in" / "a" / "x.jpg", 40, 40, seed=1)
    _img(tmp_path / "in" / "b" / "x.jpg", 40, 40, seed=2)
    _img(tmp_path / "in" / "top.png", 40, 40, seed=3)
    run = run_dir if command == "translate" else colorize_dir
    res = _run(command, str(run), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a/x.png", "b/x.png", "top.png"]
    assert "wrote 3 image(s)" in res.stdout
    # different inputs, different outputs: nothing was written over
    assert not np.array_equal(_read(tmp_path / "out" / "a" / "x.png"), _read(tmp_path / "out" / "b" / "x.png"))
    assert "\r" not in res.stderr  # stderr is not a terminal: no progress bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_folders_show_progress_on_a_terminal(run_dir: Path, tmp_path: Path) -> None:
    for i in range(3):
        _img(tmp_path / "in" / f"{i}.png", 40, 40, seed=i)
    err = _Terminal()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["translate", str(run_dir), str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 0
    assert "translate:" in err.getvalue() and "/3 [" in err.getvalue()  # a tqdm bar over the 3 images


def test_existing_outputs_are_kept_without_overwrite(run_dir: Path, tmp_path: Path) -> None:
    src = _img(tmp_path / "in" / "x.png", 40, 40)
    out = tmp_path / "out"
    assert _run("translate", str(run_dir), str(src), "--out", str(out), "--device", "cpu").returncode == 0
    (out / "x.png").write_bytes(b"mine")
    res = _run("translate", str(run_dir), str(src), "--out", str(out), "--device", "cpu")
    assert res.returncode == 2  # as every command's "exists; pass --overwrite" (README, Exit codes)
    line = res.stderr.strip()
    assert "\n" not in line and str(out / "x.png") in line and "--overwrite" in line
    assert (out / "x.png").read_bytes() == b"mine"
    res = _run("translate", str(run_dir), str(src), "--out", str(out), "--device", "cpu", "--overwrite")
    assert res.returncode == 0 and Image.open(out / "x.png").size == (40, 40)


@pytest.mark.parametrize("command", ["translate", "colorize"])
def test_a_second_run_into_the_same_out_refuses_while_the_first_writes(
    run_dir: Path, colorize_dir: Path, tmp_path: Path, command: str
) -> None:
    from gankit.locks import output_lock

    src = _img(tmp_path / "in" / "x.png", 40, 40)
    out = tmp_path / "out"
    run = run_dir if command == "translate" else colorize_dir
    with output_lock(out, f"gankit {command}"):  # the first run, still writing
        res = _run(command, str(run), str(src), "--out", str(out), "--device", "cpu")
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"gankit {command}: error: --out {out}: another process (pid ")
    assert res.stderr.strip().endswith("is writing into this folder; wait for it to finish, or choose another --out")
    assert not (out / "x.png").exists()
    assert _run(command, str(run), str(src), "--out", str(out), "--device", "cpu").returncode == 0
    assert [p.name for p in out.iterdir()] == ["x.png"]  # the lock file is removed at the end


def test_a_run_stopped_while_writing_leaves_no_torn_or_temporary_file(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        _img(tmp_path / "in" / f"{name}.png", 40, 40)
    out = tmp_path / "out"
    real_save, calls = Image.Image.save, []

    def save(self: Image.Image, fp, *args, **kwargs) -> None:  # noqa: ANN001
        calls.append(fp)
        if len(calls) == 2:  # Ctrl-C half-way through the second image
            Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half an image")
            raise KeyboardInterrupt
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    assert _run("translate", str(run_dir), str(tmp_path / "in"), "--out", str(out)).returncode == 130
    # files are written in worker threads, so another one may have been finished meanwhile: each
    # file is whole or not there at all, the interrupted one is missing, and no temporary file is left
    left = sorted(p.name for p in out.iterdir())
    assert 1 <= len(left) <= 2 and set(left) <= {"a.png", "b.png", "c.png"}
    assert all(Image.open(out / name).size == (40, 40) for name in left)
    monkeypatch.setattr(Image.Image, "save", real_save)
    res = _run("translate", str(run_dir), str(tmp_path / "in"), "--out", str(out), "--overwrite")
    assert res.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_inputs_that_would_write_the_same_file_are_refused(tmp_path: Path) -> None:
    a = _img(tmp_path / "a" / "x.jpg", 16, 16)
    b = _img(tmp_path / "b" / "x.jpg", 16, 16)
    with pytest.raises(DataError, match="would both be written to"):
        plan_outputs([a, b], tmp_path / "out")
    c = _img(tmp_path / "a" / "x.png", 16, 16)  # x.jpg and x.png in one folder -> x.png twice
    with pytest.raises(DataError, match="x.jpg and .*x.png would both"):
        plan_outputs([tmp_path / "a"], tmp_path / "out")
    assert plan_outputs([c], tmp_path / "out", "jpg") == [Job(c, tmp_path / "out" / "x.jpg")]
    check_overwrite(plan_outputs([c], tmp_path / "nothing-here"), overwrite=False)  # nothing exists: fine


def test_jpeg_format_and_quality(run_dir: Path, tmp_path: Path) -> None:
    src = _img(tmp_path / "x.png", 64, 64)
    sizes = {}
    for q in ("10", "95"):
        out = tmp_path / f"q{q}"
        args = ("translate", str(run_dir), str(src), "--out", str(out), "--format", "jpg", "--quality", q)
        assert _run(*args, "--device", "cpu").returncode == 0
        assert Image.open(out / "x.jpg").format == "JPEG" and not (out / "x.png").exists()
        sizes[q] = (out / "x.jpg").stat().st_size
    assert sizes["10"] < sizes["95"]
    res = _run("translate", str(run_dir), str(src), "--out", str(tmp_path / "p"), "--quality", "80")
    assert res.returncode == 1 and "--format jpg" in res.stderr and not (tmp_path / "p").exists()


# ------------------------------------------------------------------------------ checkpoints


def test_resolve_checkpoint_best_last_path(run_dir: Path, tmp_path: Path) -> None:
    ckpt = run_dir / "checkpoints"
    assert DEFAULT_CHECKPOINT == "last"
    assert resolve_checkpoint(run_dir) == ckpt / "G_last.pt"
    assert resolve_checkpoint(run_dir, "last") == ckpt / "G_last.pt"
    assert resolve_checkpoint(run_dir, "best") == ckpt / "G_best.pt"
    assert resolve_checkpoint(run_dir, "G_best.pt") == ckpt / "G_best.pt"  # relative to checkpoints/
    assert resolve_checkpoint(run_dir, str(ckpt / "G_best.pt")) == ckpt / "G_best.pt"
    assert resolve_checkpoint(ckpt / "G_best.pt") == ckpt / "G_best.pt"  # a file is used as is
    assert resolve_checkpoint(run_dir, prefer_best=True) == ckpt / "G_best.pt"  # the older spelling
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_checkpoint(run_dir, "G_nope.pt")
    no_best = tmp_path / "run"
    atomic_save({"x": 1}, no_best / "checkpoints" / "G_last.pt")
    with pytest.raises(CheckpointError, match="use --checkpoint last"):
        resolve_checkpoint(no_best, "best")
    assert resolve_checkpoint(no_best, prefer_best=True) == no_best / "checkpoints" / "G_last.pt"


@pytest.mark.parametrize("flag, name", [(None, "G_last.pt"), ("last", "G_last.pt"), ("best", "G_best.pt")])
def test_translate_checkpoint_option(run_dir: Path, tmp_path: Path, flag: str | None, name: str) -> None:
    src = _img(tmp_path / "x.png", RES, RES)
    args = ["translate", str(run_dir), str(src), "--out", str(tmp_path / "o"), "--device", "cpu"]
    res = _run(*args, *(["--checkpoint", flag] if flag else []))
    assert res.returncode == 0 and name in res.stdout
    expected = load_generator(run_dir / "checkpoints" / name).G
    x = torch.from_numpy(_read(src).astype(np.float32)).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        y = ((expected(x * 2 - 1) + 1) / 2 * 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(_read(tmp_path / "o" / "x.png") - y).max() <= 1


# ------------------------------------------------------------------------------ untrained taps


def test_innermost_border_taps_get_no_gradient_at_the_training_size() -> None:
    # The premise of the fix: the taps profile_generator reports are exactly those left untrained.
    G = UNetGenerator(3, 3, resolution=RES, ngf=4).train()
    G(torch.randn(2, 3, RES, RES)).square().mean().backward()
    unused = profile_generator(G, (RES, RES), 3).unused_taps
    assert set(unused) == {f"downs.{G.num_downs - 1}.1", "ups.0.1"}
    modules = dict(G.named_modules())
    for name, mask in unused.items():
        grad = modules[name].weight.grad.abs().sum((0, 1))
        assert mask.sum() == 12  # of 16 taps, only the centre 2x2 read real activations
        assert (grad[mask] == 0).all() and (grad[~mask] > 0).all()


def test_zeroing_unused_taps_keeps_training_size_output_and_removes_their_influence() -> None:
    G = UNetGenerator(3, 3, resolution=RES, ngf=4).eval()
    prof = profile_generator(G, (RES, RES), 3)
    x, big = torch.rand(1, 3, RES, RES) * 2 - 1, torch.rand(1, 3, 2 * RES, 3 * RES) * 2 - 1
    modules = dict(G.named_modules())
    with torch.no_grad():
        reference = G(x)
        assert zero_unused_taps(G, prof) == 2 * 12 * 32 * 32  # 12 taps of both innermost 32->32 convs
        zeroed, zeroed_big = G(x), G(big)
        for name, mask in prof.unused_taps.items():  # what those taps might hold after training
            modules[name].weight[..., mask] = 3.0
        # At the training size the values there make no difference; at any other size they do.
        torch.testing.assert_close(G(x), reference, atol=1e-6, rtol=0)
        torch.testing.assert_close(zeroed, reference, atol=1e-6, rtol=0)
        assert (G(big) - zeroed_big).abs().max() > 0.05
        zero_unused_taps(G, prof)
        assert torch.equal(G(big), zeroed_big)


def test_translate_output_at_other_sizes_ignores_untrained_taps(tmp_path: Path) -> None:
    # Before the fix the saved initial values of the never-trained taps changed every output larger
    # than the training size; now two checkpoints that differ only there translate identically.
    G = _build(seed=3)
    prof = profile_generator(G, (RES, RES), 3)
    name = f"downs.{G.num_downs - 1}.1"
    mask = prof.unused_taps[name]
    noisy = _build(seed=3)
    with torch.no_grad():
        dict(noisy.named_modules())[name].weight[..., mask] = torch.randn(int(mask.sum()))
    atomic_save(_snapshot(G), tmp_path / "a.pt")
    atomic_save(_snapshot(noisy), tmp_path / "b.pt")
    src = _img(tmp_path / "big.png", 3 * RES, 4 * RES)
    for ck in ("a", "b"):
        args = ("translate", str(tmp_path / f"{ck}.pt"), str(src), "--out", str(tmp_path / ck), "--strategy", "pad")
        assert _run(*args, "--device", "cpu").returncode == 0
    assert np.array_equal(_read(tmp_path / "a" / "big.png"), _read(tmp_path / "b" / "big.png"))


# ------------------------------------------------------------------------------ memory


@pytest.mark.parametrize("strategy", ["pad", "tile", "resize"])
@pytest.mark.parametrize("hw, max_side", [((100, 150), None), ((150, 230), None), ((150, 230), 96)])
def test_memory_estimate_matches_the_tensors_actually_held(strategy: str, hw: tuple[int, int], max_side) -> None:
    G = UNetGenerator(3, 3, resolution=RES, ngf=8).eval()
    prof = profile_generator(G, (RES, RES), 3)
    src = torch.rand(1, 3, *hw)
    tracker = _PeakTensorBytes()
    with torch.no_grad(), tracker:
        x = src.clone()  # made inside, so the tracker always counts it (the estimate does not)
        y = run_any_size(G, x, multiple=G.multiple, resolution=RES, strategy=strategy, max_side=max_side)
        del y
    est = estimate_memory(
        prof, tuple(x.shape), multiple=G.multiple, resolution=RES, strategy=strategy, max_side=max_side
    )
    measured = tracker.peak - x.numel() * 4
    assert 0.75 * measured <= est <= 1.35 * measured


def test_memory_guard_refuses_or_tiles_before_anything_runs(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    src = _img(tmp_path / "in" / "big.png", 300, 400)
    loaded = load_generator(run_dir)
    pad, tile = (translate_memory(loaded, 300, 400, s) for s in ("pad", "tile"))
    assert tile < pad
    limit_gb = (tile + (pad - tile) / 2) / 1e9  # room for tiles, not for the padded whole
    out = tmp_path / "out"
    res = _run(
        "translate", str(run_dir), str(src), "--out", str(out), "--strategy", "pad", "--max-memory", str(limit_gb)
    )
    line = res.stderr.strip()
    assert res.returncode == 1 and "\n" not in line
    assert "big.png: 400x300 needs about" in line and "--strategy tile" in line and "--max-memory" in line
    assert not out.exists()
    # The default strategy is not refused: it gives way to tiles, and says so.
    monkeypatch.setattr("gankit.translate.DEFAULT_STRATEGY", "pad")
    notes: list[str] = []
    jobs = plan_outputs([src], out)
    assert plan_strategies(
        loaded, jobs, strategy=None, max_side=None, limit=limit_gb * 1e9, say=notes.append, spell=flag
    ) == {src: "tile"}
    assert len(notes) == 1 and "using --strategy tile" in notes[0]
    # Under the limit, a large estimate is still told (the largest image's only).
    notes.clear()
    monkeypatch.setattr("gankit.translate.LARGE", tile / 2)
    _img(tmp_path / "in" / "small.png", 40, 40)
    plan_strategies(
        loaded,
        plan_outputs([tmp_path / "in"], out),
        strategy="tile",
        max_side=None,
        limit=pad,
        say=notes.append,
        spell=flag,
    )
    assert len(notes) == 1 and "big.png: 400x300 needs about" in notes[0] and "--max-memory" in notes[0]
    # Where shrinking would help, the error offers a --max-side that fits.
    shrunk = translate_memory(loaded, 300, 400, "pad", max_side=200)
    limit = shrunk + (pad - shrunk) * 0.1
    with pytest.raises(DataError, match=r"--max-side 200 .* or a higher --max-memory"):
        plan_strategies(loaded, jobs, strategy="pad", max_side=None, limit=limit, spell=flag)


def test_default_strategy_is_what_the_cli_uses(run_dir: Path, tmp_path: Path) -> None:
    src = _img(tmp_path / "x.png", 70, 90)
    assert _run("translate", str(run_dir), str(src), "--out", str(tmp_path / "d"), "--device", "cpu").returncode == 0
    args = ("translate", str(run_dir), str(src), "--out", str(tmp_path / "e"), "--strategy", DEFAULT_STRATEGY)
    assert _run(*args, "--device", "cpu").returncode == 0
    assert np.array_equal(_read(tmp_path / "d" / "x.png"), _read(tmp_path / "e" / "x.png"))
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
        main(["translate", "--help"])
    assert f"{DEFAULT_STRATEGY} (default" in " ".join(help_text.getvalue().split())


# ------------------------------------------------------------------------------ from Python


def test_translate_and_colorize_files_from_python(run_dir: Path, colorize_dir: Path, tmp_path: Path) -> None:
    """The library functions behind the commands take keyword settings, return what they wrote, and
    name settings as Python spells them (the CLI's flags only where the CLI calls them)."""
    from gankit.translate import colorize_files, translate_files

    src = _img(tmp_path / "in" / "sub" / "x.png", 40, 56)
    done = translate_files(run_dir, [tmp_path / "in"], tmp_path / "py", fmt="jpg", quality=90, device="cpu")
    assert done.written == [tmp_path / "py" / "sub" / "x.jpg"] and done.skipped == 0
    assert done.checkpoint.name == "G_last.pt" and not done.train_mode
    assert _run("translate", str(run_dir), str(tmp_path / "in"), "--out", str(tmp_path / "cli"), "--format", "jpg",
                "--quality", "90", "--device", "cpu").returncode == 0  # fmt: skip
    assert (tmp_path / "py" / "sub" / "x.jpg").read_bytes() == (tmp_path / "cli" / "sub" / "x.jpg").read_bytes()
    col = colorize_files(colorize_dir, [src], tmp_path / "col", device="cpu")
    assert col.written == [tmp_path / "col" / "x.png"] and Image.open(col.written[0]).size == (56, 40)
    with pytest.raises(DataError, match=r"^quality sets JPEG quality; add fmt='jpg'"):
        translate_files(run_dir, [src], tmp_path / "q", quality=80)
    with pytest.raises(DataError, match=r"^max_side=0: must be a positive number"):
        translate_files(run_dir, [src], tmp_path / "q", max_side=0)
    with pytest.raises(DataError, match=r"pass overwrite=True to replace, or choose another out$"):
        colorize_files(colorize_dir, [src], tmp_path / "col")
    assert not (tmp_path / "q").exists()
    res = _run("translate", str(run_dir), str(src), "--out", str(tmp_path / "q"), "--max-side", "0")
    assert res.returncode == 1 and "--max-side 0: must be a positive number" in res.stderr
