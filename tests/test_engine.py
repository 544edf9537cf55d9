"""The inference engine: onnxruntime equals the torch engine (and the eager network) on every family,
its export is cached per snapshot, the sampling mode decides, and a mistyped engine is one line."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import snapshot_run
from PIL import Image

from gankit import engine as engine_mod
from gankit import export as export_mod
from gankit import onnxcache
from gankit.caches import clear_kind, list_kept
from gankit.cli import build_parser, main
from gankit.config import ConfigError
from gankit.engine import ENGINES, ENV, EngineUnavailable, engine_name, snapshot_key, use_engine
from gankit.export import TOLERANCE
from gankit.inference import STRATEGIES, colorize, run_any_size
from gankit.onnxcache import onnx_cache
from gankit.sampling import load_generator

HAVE_ORT = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="the export extra (onnx, onnxscript, onnxruntime) is not installed")
FAMILIES = ["gan", "cgan", "dcgan", "pix2pix", "colorize"]


@pytest.fixture(autouse=True)
def _engine_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest runs every other test on the torch engine; these tests choose for themselves."""
    monkeypatch.delenv(ENV, raising=False)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's errors
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def _photo(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _outputs(loaded, family: str) -> list[torch.Tensor]:  # noqa: ANN001
    """What the tools compute with ``loaded`` (through its engine) on fixed inputs."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        if loaded.family.kind == "noise":
            z = torch.randn(7, loaded.cfg.model.z_dim, generator=g)
            labels = torch.randint(0, 10, (7,), generator=g) if family == "cgan" else None
            return [loaded(z, labels)]
        if family == "colorize":
            rgb = torch.rand(2, 3, 45, 70, generator=g)
            return [colorize(loaded, rgb, 32), colorize(loaded, rgb[:1, :, :32, :32], 32)]
        x = torch.rand(2, 3, 45, 70, generator=g) * 2 - 1
        return [run_any_size(loaded, x, multiple=loaded.G.multiple, resolution=32, strategy=s) for s in STRATEGIES]


# ------------------------------------------------------------------------------ equal outputs


@needs_ort
@pytest.mark.slow  # one ONNX export per family
@pytest.mark.parametrize("family", FAMILIES)
def test_onnxruntime_equals_torch_within_the_export_tolerance(tmp_path: Path, family: str) -> None:
    run = snapshot_run(family, tmp_path)
    eager, fast, ort = (load_generator(run) for _ in range(3))
    logs: list[str] = []
    assert use_engine(fast, "torch", log=logs.append) == "torch"
    assert use_engine(ort, "onnxruntime", log=logs.append) == "onnxruntime"
    assert logs[0] == "engine: torch (inference_mode" + (", channels_last)" if fast.family.kind == "paired" else ")")
    assert logs[1].startswith("engine: onnxruntime (exported in ") and str(onnx_cache()) in logs[1]
    # every tool's path: noise batches, U-Nets through resize, pad and tile (tiles are not a multiple
    # of anything but the training size), colorize at two photo sizes
    for want, by_torch, by_ort in zip(_outputs(eager, family), _outputs(fast, family), _outputs(ort, family)):
        assert want.std() > 0.01  # not two near-constant outputs
        assert (by_torch - want).abs().max() <= TOLERANCE
        assert (by_ort - want).abs().max() <= TOLERANCE
        assert (by_ort - by_torch).abs().max() <= TOLERANCE


@needs_ort
def test_sessions_sleep_between_runs_with_torchs_thread_count(tmp_path: Path) -> None:
    import onnxruntime as ort

    run = snapshot_run("gan", tmp_path)
    path = tmp_path / "g.onnx"
    export_mod.export_onnx(load_generator(run), path, log=lambda line: None)
    options = export_mod.open_session(path, ort).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # no busy-waiting threads
    assert options.intra_op_num_threads == torch.get_num_threads()
    spinning = export_mod.open_session(path, ort, spinning=True).get_session_options()
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"


# ------------------------------------------------------------------------------ the cache


@needs_ort
@pytest.mark.slow  # two ONNX exports
def test_the_export_is_cached_per_snapshot_and_a_new_snapshot_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = snapshot_run("gan", tmp_path)
    exports: list[Path] = []
    real = export_mod.export_onnx

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        exports.append(Path(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(export_mod, "export_onnx", counted)
    hashed: list[object] = []
    hash_snapshot = engine_mod._hash_snapshot
    monkeypatch.setattr(engine_mod, "_hash_snapshot", lambda loaded: hashed.append(loaded) or hash_snapshot(loaded))
    logs: list[str] = []
    use_engine(load_generator(run), log=logs.append)  # auto
    use_engine(load_generator(run), log=logs.append)  # a second process, or the next command
    assert len(exports) == 1 and logs[1].startswith(f"engine: onnxruntime (cached export {exports[0]}, ")
    assert sorted(onnx_cache().glob("*.onnx")) == sorted([exports[0], _optimized(exports[0])])
    assert len(hashed) == 1  # the second load found the key remembered for the unchanged file

    snapshot_run("gan", tmp_path, seed=1)  # training wrote a newer G_last.pt
    use_engine(load_generator(run), log=logs.append)
    assert len(exports) == 2 and exports[1] != exports[0] and "exported in" in logs[2]
    # the older export of this file is gone, with its optimized graph
    assert sorted(onnx_cache().glob("*.onnx")) == sorted([exports[1], _optimized(exports[1])])

    kept = {k.kind: k for k in list_kept()}
    assert kept["onnx"].files == 3 and kept["onnx"].path == onnx_cache()  # export, optimized graph, key; listed
    freed, removed, _ = clear_kind("onnx")
    assert freed > 0 and removed == [onnx_cache()] and not onnx_cache().exists()


def _optimized(export: Path) -> Path:
    import onnxruntime as ort

    return export.with_name(f"{export.stem}.cpu-{onnxcache.cpu_tag(ort)}.onnx")


@needs_ort
def test_later_sessions_open_the_graph_optimized_for_this_cpu_and_a_torn_one_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = snapshot_run("pix2pix", tmp_path)
    opened: list[tuple[str, bool]] = []
    real = onnxcache.session

    def recorded(path, ort, **kwargs):  # noqa: ANN001, ANN003, ANN202
        opened.append((Path(path).name, kwargs.get("optimized", False)))
        return real(path, ort, **kwargs)

    monkeypatch.setattr(onnxcache, "session", recorded)
    eager = load_generator(run)
    want = _outputs(eager, "pix2pix")

    def outputs_through_onnxruntime() -> list[torch.Tensor]:
        loaded = load_generator(run)
        assert use_engine(loaded, "onnxruntime", log=lambda line: None) == "onnxruntime"
        return _outputs(loaded, "pix2pix")

    first = outputs_through_onnxruntime()  # exported, then optimized from the export and saved
    (export,) = [p for p in onnx_cache().glob("*.onnx") if ".cpu-" not in p.name]
    optimized = _optimized(export)
    assert optimized.is_file() and opened == [(export.name, False)]
    opened.clear()
    second = outputs_through_onnxruntime()  # the next command: the optimized graph, not optimized again
    assert opened == [(optimized.name, True)]
    for w, a, b in zip(want, first, second):
        assert (a - w).abs().max() <= TOLERANCE and torch.equal(a, b)

    optimized.write_bytes(b"torn")
    third = outputs_through_onnxruntime()  # could not open: optimized from the export again
    assert opened[1:] == [(optimized.name, True), (export.name, False)] and optimized.stat().st_size > 1000
    assert all(torch.equal(a, c) for a, c in zip(first, third))
    stale = optimized.with_name(f"{export.stem}.cpu-0123456789ab.onnx")  # another CPU's or onnxruntime's
    stale.write_bytes(b"x")
    optimized.unlink()
    outputs_through_onnxruntime()
    assert optimized.is_file() and not stale.exists()


@needs_ort
def test_open_early_hands_use_engine_the_session_it_opened_while_the_snapshot_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    run = snapshot_run("pix2pix", tmp_path)
    ckpt = run / "checkpoints" / "G_last.pt"
    with onnxcache.open_early(ckpt):  # nothing cached yet: nothing starts
        assert not onnxcache._EARLY
    first = load_generator(run)
    use_engine(first, "onnxruntime", log=lambda line: None)  # exports, optimizes, remembers the key
    opened: list[str] = []
    real = onnxcache.session

    def recorded(path, ort, **kwargs):  # noqa: ANN001, ANN003, ANN202
        opened.append(threading.current_thread().name)
        return real(path, ort, **kwargs)

    monkeypatch.setattr(onnxcache, "session", recorded)
    threads = torch.get_num_threads()
    with onnxcache.open_early(ckpt, threads=threads):
        assert len(onnxcache._EARLY) == 1
        loaded = load_generator(run)
        logs: list[str] = []
        assert use_engine(loaded, "onnxruntime", log=logs.append) == "onnxruntime"
    assert len(opened) == 1 and opened[0].startswith("gankit-session") and not onnxcache._EARLY
    assert "cached export" in logs[0]
    for a, b in zip(_outputs(first, "pix2pix"), _outputs(loaded, "pix2pix")):
        assert torch.equal(a, b)

    with onnxcache.open_early(ckpt, threads=threads):  # not taken: dropped when the block ends
        assert len(onnxcache._EARLY) == 1
    assert not onnxcache._EARLY
    opened.clear()
    with onnxcache.open_early(ckpt, threads=threads + 1):  # not the thread count the engine runs with
        use_engine(load_generator(run), "onnxruntime", log=lambda line: None)
        assert threading.current_thread().name in opened  # not taken: the engine opened its own
    # the run's snapshot is found by its remembered key (its file unchanged since), a file as given
    assert onnxcache.snapshot_guess(run, None) == ckpt.resolve() and onnxcache.snapshot_guess(ckpt, "best") == ckpt
    assert onnxcache.snapshot_guess(tmp_path / "nope", None) is None
    other = run / "checkpoints" / "G_epoch0001.pt"
    other.write_bytes(ckpt.read_bytes())
    use_engine(load_generator(other), "onnxruntime", log=lambda line: None)
    assert onnxcache.snapshot_guess(run, None) is None  # two remembered snapshots: no guess
    assert onnxcache.snapshot_guess(run, other) == other
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # the remembered key is not the file's now
    with onnxcache.open_early(ckpt):
        assert not onnxcache._EARLY


def test_the_snapshot_key_is_hashed_once_per_file_until_the_file_or_the_weights_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[object] = []
    real = engine_mod._hash_snapshot
    monkeypatch.setattr(engine_mod, "_hash_snapshot", lambda loaded: hashed.append(loaded) or real(loaded))
    run = snapshot_run("pix2pix", tmp_path)
    ckpt, memo = run / "checkpoints" / "G_last.pt", tmp_path / "cache" / "pix2pix-x.key.json"

    key = snapshot_key(load_generator(run), memo)
    assert len(hashed) == 1 and memo.is_file()
    assert snapshot_key(load_generator(run), memo) == key and len(hashed) == 1  # the same file: remembered
    assert snapshot_key(load_generator(run)) == key and len(hashed) == 2  # no memo: hashed
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: hashed again, same bytes
    assert snapshot_key(load_generator(run), memo) == key and len(hashed) == 3
    assert snapshot_key(load_generator(run), memo) == key and len(hashed) == 3

    snapshot_run("pix2pix", tmp_path, seed=1)  # training rewrote G_last.pt
    newer = snapshot_key(load_generator(run), memo)
    assert newer != key and len(hashed) == 4
    # loaded otherwise (the untrained taps kept), the weights differ: hashed, not taken from the memo
    assert snapshot_key(load_generator(run, zero_taps=False), memo) != newer and len(hashed) == 5
    assert snapshot_key(load_generator(run), memo) == newer and len(hashed) == 6

    loaded = load_generator(run)
    with torch.no_grad():
        next(loaded.G.parameters()).add_(1.0)  # changed in memory since the load
    assert snapshot_key(loaded, memo) not in (key, newer) and len(hashed) == 7
    memo.write_text("{torn")
    assert snapshot_key(load_generator(run), memo) == newer and len(hashed) == 8


# ---------------------------------------------------------------------------- sampling modes


def test_a_train_mode_snapshot_runs_on_torch_and_refuses_onnxruntime(tmp_path: Path) -> None:
    run = snapshot_run("pix2pix", tmp_path, sampling="train")
    logs: list[str] = []
    loaded = load_generator(run)
    assert use_engine(loaded, "auto", log=logs.append) == "torch" and loaded.G.training  # mode unchanged
    assert logs == [
        "engine: torch (inference_mode, channels_last); not onnxruntime: G_last.pt samples in train mode "
        "(train.sampling=train: batch statistics, dropout), which an ONNX graph cannot carry"
    ]
    assert not onnx_cache().exists()  # nothing was exported
    with pytest.raises(EngineUnavailable, match=r"^engine='onnxruntime': G_last.pt samples in train mode"):
        use_engine(load_generator(run), "onnxruntime")

    _photo(tmp_path / "in" / "a.png", 40, 40)
    code, out, err = _cli(
        "translate", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--engine", "onnxruntime"
    )
    assert code == 2 and out == "" and not (tmp_path / "o").exists()
    assert err.count("\n") == 1 and err.startswith("gankit translate: error: --engine onnxruntime: G_last.pt samples")
    assert err.endswith("; use --engine torch\n")


def test_forced_train_mode_runs_on_torch_with_the_reason(tmp_path: Path) -> None:
    run = snapshot_run("pix2pix", tmp_path)
    _photo(tmp_path / "in" / "a.png", 40, 40)
    code, out, _ = _cli("translate", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--train-mode")
    assert code == 0 and "(train mode, " in out
    assert "engine: torch (inference_mode, channels_last); not onnxruntime: the network runs in train mode" in out


def test_without_the_export_extra_auto_runs_on_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = snapshot_run("gan", tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else object())
    logs: list[str] = []
    assert use_engine(load_generator(run), log=logs.append) == "torch"
    assert logs == [
        "engine: torch (inference_mode); not onnxruntime: the export extra is not installed "
        "(pip install 'gankit[export]')"
    ]


# ---------------------------------------------------------------------------------- choosing


def test_a_mistyped_engine_is_one_line_with_did_you_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _cli("colorize", str(tmp_path), "x.png", "--out", str(tmp_path / "o"), "--engine", "onnx")
    assert code == 2 and out == ""
    assert err == (
        "gankit colorize: error: argument --engine: unknown 'onnx'; did you mean 'onnxruntime'? "
        "(see gankit colorize --help)\n"
    )
    with pytest.raises(ConfigError, match=r"^engine='torhc': unknown engine; did you mean 'torch'\?$"):
        engine_name("torhc")
    monkeypatch.setenv(ENV, "gpu")
    run = snapshot_run("gan", tmp_path)
    code, out, err = _cli("sample", str(run), "--n", "2", "--out", str(tmp_path / "s"))
    assert code == 2
    assert err == "gankit sample: error: GANKIT_ENGINE=gpu: unknown engine; choose from auto, torch, onnxruntime\n"
    monkeypatch.setenv(ENV, "torch")
    assert engine_name(None) == "torch" and engine_name("auto") == "auto"  # the option wins over the variable


def test_every_command_that_runs_a_generator_takes_engine() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in ("sample", "translate", "colorize", "eval", "serve"):
        (option,) = [a for a in sub[command]._actions if a.dest == "engine"]
        assert tuple(option.choices) == ENGINES and option.default is None  # None: $GANKIT_ENGINE, else auto


@needs_ort
@pytest.mark.slow  # one ONNX export
def test_the_cli_says_which_engine_ran_and_reuses_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = snapshot_run("colorize", tmp_path)
    _photo(tmp_path / "in" / "a.png", 40, 60)
    code, out, _ = _cli("colorize", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "o"))
    assert code == 0 and "engine: onnxruntime (exported in " in out and "wrote 1 image(s)" in out
    early: list[Path] = []
    real = onnxcache._start_early
    monkeypatch.setattr(onnxcache, "_start_early", lambda *a: early.append(real(*a)) or early[-1])
    code, out, _ = _cli("colorize", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--overwrite")
    assert code == 0 and "engine: onnxruntime (cached export " in out
    # started by the CLI before torch was imported (then not again by translate's own call)
    assert len(early) == 2 and early[0] is not None and early[1] is None
    code, out, _ = _cli("colorize", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "t"), "--engine", "torch")
    assert code == 0 and "engine: torch (inference_mode, channels_last)\n" in out
    a, b = (np.asarray(Image.open(p / "a.png"), dtype=np.int16) for p in (tmp_path / "o", tmp_path / "t"))
    assert np.abs(a - b).max() <= 1  # the same image, up to a rounding flip


def test_serve_says_which_engine_runs_each_model(tmp_path: Path) -> None:
    from gankit.serve import RunModel

    logs: list[str] = []
    rm = RunModel(snapshot_run("pix2pix", tmp_path, sampling="train"), engine="auto", log=logs.append)
    assert logs == [
        f"{rm.run}: engine: torch (inference_mode, channels_last); not onnxruntime: G_last.pt samples in "
        "train mode (train.sampling=train: batch statistics, dropout), which an ONNX graph cannot carry"
    ]
    rm.reload()  # a newer snapshot gets the engine chosen again
    assert len(logs) == 2 and rm.loaded.engine is not None


def test_the_thread_guess_made_without_torch_is_torchs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert onnxcache.torch_threads_guess() == 3
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = "import sys; from gankit.onnxcache import torch_threads_guess as g; n = g(); "
    code += "assert 'torch' not in sys.modules; import torch; print(n, torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    guess, torchs = out.split()
    assert guess == torchs
