"""Faults on disk: damaged decoded-data caches are rebuilt with a one-line warning, a reader never
opens a cache that is being built, and two processes writing into one output folder never mix
(gankit.locks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import quiet, write_image_folder

from gankit.cli import main
from gankit.data import storage as st
from gankit.data.folders import load_image_folder
from gankit.locks import OUTPUT_LOCK, Busy, atomic_path, lock_file, output_lock


def _source(root: Path) -> st.ItemSource:
    from gankit.data.folders import _decode

    files = sorted(p for p in root.iterdir() if p.suffix in (".png", ".jpg"))
    return st.ItemSource(
        kind="folder",
        root=root,
        items=files,
        decode=partial(_decode, size=16, channels=3),
        shape=(3, 16, 16),
        params="16px-3c",
    )


def _edit_meta(folder: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    change(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "pixels.u8 truncated": (
        lambda f: os.truncate(f / "pixels.u8", 5 * 768 + 100),
        r"pixels.u8 holds 3,940 bytes, meta.json's shape \[10, 3, 16, 16\] needs 7,680",
    ),
    "pixels.u8 longer": (lambda f: open(f / "pixels.u8", "ab").write(b"x" * 768), "pixels.u8 holds 8,448 bytes"),
    "pixels.u8 missing": (lambda f: (f / "pixels.u8").unlink(), "meta.json without pixels.u8"),
    "meta.json truncated": (
        lambda f: (f / "meta.json").write_text((f / "meta.json").read_text()[:40]),
        r"meta.json is not valid JSON \(truncated\?\)",
    ),
    "meta.json binary garbage": (lambda f: (f / "meta.json").write_bytes(b"\xff\xfe\x00garbage"), "meta.json"),
    "meta.json not an object": (lambda f: (f / "meta.json").write_text("[1, 2, 3]"), "not a JSON object"),
    "meta.json without shape": (
        lambda f: _edit_meta(f, lambda m: m.pop("shape")),
        "meta.json has no valid 'shape'",
    ),
    "meta.json of another item count": (
        lambda f: _edit_meta(f, lambda m: m.update(items=12, kept=list(range(10)))),
        "meta.json describes 12 items, the folder has 10",
    ),
    "meta.json kept indices out of range": (
        lambda f: _edit_meta(f, lambda m: m.update(kept=[0, 1, 2, 3, 4, 5, 6, 7, 8, 99])),
        "list of kept items does not fit",
    ),
    "meta.json missing beside pixels.u8": (lambda f: (f / "meta.json").unlink(), "pixels.u8 without meta.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_pixel_cache_is_rebuilt_with_one_warning(tmp_path: Path, damage: str) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    folder, good = st.open_cache(_source(root), pixels=True, log=quiet)
    expected = (folder / "pixels.u8").read_bytes()
    spoil, why = DAMAGE[damage]
    spoil(folder)

    lines: list[str] = []
    again = load_image_folder(root, resolution=16, storage="mmap", log=lines.append)  # what training opens

    warnings = [line for line in lines if "is damaged (" in line]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith(f"decoded-data cache {folder} is damaged (") and "\n" not in warnings[0]
    assert warnings[0].endswith("; rebuilding it")
    import re

    assert re.search(why, warnings[0]), warnings[0]
    assert (folder / "pixels.u8").read_bytes() == expected
    assert json.loads((folder / "meta.json").read_text())["shape"] == good["shape"]
    assert torch.equal(again.images, torch.from_numpy(np.frombuffer(expected, np.uint8).reshape(10, 3, 16, 16)))
    lines.clear()
    load_image_folder(root, resolution=16, storage="mmap", log=lines.append)
    assert not [line for line in lines if "is damaged (" in line or line.startswith("cached")]  # now used as is


@pytest.mark.parametrize("damage", ["meta.json truncated", "meta.json kept indices out of range"])
def test_a_damaged_stream_scan_is_rescanned_with_one_warning(tmp_path: Path, damage: str) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    folder, _ = st.open_cache(_source(root), pixels=False, log=quiet)
    assert not (folder / "pixels.u8").exists()
    DAMAGE[damage][0](folder)
    lines: list[str] = []
    streamed = load_image_folder(root, resolution=16, storage="stream", log=lines.append)
    assert sum("is damaged (" in line and line.endswith("; rebuilding it") for line in lines) == 1, lines
    assert streamed.store.kept == list(range(10))
    in_ram = load_image_folder(root, resolution=16, storage="memory", log=quiet)
    assert torch.equal(streamed.store.decode_items(torch.arange(10)), in_ram.images)


def _open_in_thread(source: st.ItemSource, lines: list[str]) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        result["cache"] = st.open_cache(source, pixels=True, log=lines.append)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("state", ["half-written", "damaged"])
def test_a_reader_waits_for_the_process_building_the_cache(tmp_path: Path, state: str) -> None:
    """While another process holds a cache's lock (building or rebuilding it), a reader neither opens
    the half-written file nor the damaged one: it waits, and then uses (or builds) a whole cache."""
    root = write_image_folder(tmp_path / "imgs", 10)
    source = _source(root)
    name, key = st.cache_key(source)
    folder = st.storage_root() / f"{name}-{key}"
    if state == "damaged":
        st.open_cache(source, pixels=True, log=quiet)
        os.truncate(folder / "pixels.u8", 1000)
    else:  # what a builder killed (or still running) leaves: a temporary file, no meta.json
        folder.mkdir(parents=True)
        (folder / "pixels.u8.tmp-999999").write_bytes(b"\0" * 1000)
    lines: list[str] = []
    with lock_file(st.storage_root() / f"{folder.name}.lock", note="building"):
        thread, result = _open_in_thread(source, lines)
        thread.join(timeout=1.0)
        assert thread.is_alive() and "cache" not in result  # waiting, not reading
        assert lines == [f"waiting for another process that is preparing {folder.name} ..."]
    thread.join(timeout=30)
    got, meta = result["cache"]
    assert got == folder and meta["shape"] == [10, 3, 16, 16]
    assert (folder / "pixels.u8").stat().st_size == 10 * 768
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "pixels.u8"]  # the leftover is gone


def test_gankit_cache_lists_and_clears_a_damaged_cache(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    folder, _ = st.open_cache(_source(root), pixels=True, log=quiet)
    _edit_meta(folder, lambda m: m.pop("source"))
    assert main(["cache"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if folder.name in x)
    assert " broken " in line and "(damaged: meta.json has no valid 'source'; the next run rebuilds it)" in line
    assert main(["cache", "--clear"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 cache(s), 7.8 KB freed")
    assert not folder.exists()


def test_a_cache_folder_with_a_dot_in_its_name_is_cleared_under_its_own_lock(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data.v2", 10)
    folder, _ = st.open_cache(_source(root), pixels=True, log=quiet)
    assert "." in folder.name
    with lock_file(st.storage_root() / f"{folder.name}.lock"):  # being rebuilt by another process
        removed, busy = st.clear_caches()
    assert [e.path for e in busy] == [folder] and not removed and folder.exists()


# ------------------------------------------------------------------------------- gankit.locks


def test_output_lock_refuses_a_second_writer_in_one_line_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out, "gankit colorize"):
        assert (out / OUTPUT_LOCK).read_text() == f"pid {os.getpid()}, gankit colorize\n"
        with pytest.raises(Busy) as err:
            with output_lock(out, "gankit colorize"):
                pass
        assert str(err.value) == (
            f"--out {out}: another process (pid {os.getpid()}, gankit colorize) is writing into this folder; "
            "wait for it to finish, or choose another --out"
        )
        (out / "x.png").write_bytes(b"png")
    assert sorted(p.name for p in out.iterdir()) == ["x.png"]  # the lock file is gone
    with output_lock(tmp_path / "unused", "gankit sample"):
        pass
    assert not (tmp_path / "unused").exists()  # nothing written: no empty folder left behind


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import os\nfrom gankit.locks import output_lock\n"
        f"with output_lock({str(out)!r}, 'gankit translate'):\n    os._exit(9)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 9
    assert (out / OUTPUT_LOCK).exists()  # the file stays, but the kernel released the lock with the process
    with output_lock(out, "gankit translate"):
        pass
    assert not (out / OUTPUT_LOCK).exists()


def test_a_waiter_on_a_removed_lock_file_takes_the_new_one(tmp_path: Path) -> None:
    """The holder removes the lock file on release; a process that opened the old file meanwhile must
    not think it holds the lock while a third holds the new file."""
    path = tmp_path / "x.lock"
    order: list[str] = []
    first = lock_file(path, remove=True)
    first.__enter__()

    def waiter() -> None:
        with lock_file(path, remove=True):
            order.append("waiter in")
            time.sleep(0.3)
            order.append("waiter out")

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    time.sleep(0.3)
    first.__exit__(None, None, None)
    time.sleep(0.1)
    with lock_file(path, remove=True):
        order.append("third in")
    thread.join(timeout=5)
    assert order == ["waiter in", "waiter out", "third in"]


def test_atomic_path_leaves_the_old_file_or_none_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.glob("*a.png*")] == ["a.png"]


# --------------------------------------------------------------------------------- gankit sample


@pytest.fixture
def dcgan_run(tmp_path: Path) -> Path:
    from gankit.config import make_config
    from gankit.data.base import DataInfo
    from gankit.families import get_family
    from gankit.training.checkpoint import atomic_save, generator_snapshot

    cfg = make_config("dcgan", overrides={"data.resolution": 32, "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8})
    info = DataInfo(channels=1, resolution=32)
    G, _ = get_family("dcgan").build(cfg, info, init=True)
    run = tmp_path / "run"
    atomic_save(generator_snapshot(cfg, info, G.state_dict()), run / "checkpoints" / "G_last.pt")
    return run


def test_a_second_sample_into_the_same_folder_refuses(
    dcgan_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "samples"
    with output_lock(out, "gankit sample"):  # another `gankit sample` writing there
        assert main(["sample", str(dcgan_run), "--n", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another process (pid" in err and "choose another --out" in err
    assert main(["sample", str(dcgan_run), "--n", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png"]  # no lock file left


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("cut in half", "truncated or corrupt file"),
        ("last 30 bytes missing", "truncated or corrupt file"),  # torch: a bare "[Errno 22] Invalid argument"
        ("first 100 bytes", "truncated or corrupt file"),
        ("empty", "empty or truncated file"),
        ("text", "not a torch.save file, or corrupt"),  # torch: a bare KeyError
    ],
)
def test_a_damaged_generator_checkpoint_is_one_line_saying_so(
    dcgan_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, damage: str, reason: str
) -> None:
    """torch's own message for a cut-short zip is a paragraph about miniz; every caller of safe_load
    (sample, eval, translate, export, serve, resume) now names the file and says it is truncated."""
    path = dcgan_run / "checkpoints" / "G_last.pt"
    whole = path.read_bytes()
    damaged = {
        "cut in half": whole[: len(whole) // 2],
        "last 30 bytes missing": whole[:-30],
        "first 100 bytes": whole[:100],
        "empty": b"",
        "text": b"hello, not a checkpoint",
    }
    path.write_bytes(damaged[damage])
    assert main(["sample", str(dcgan_run), "--n", "2", "--out", str(tmp_path / "s")]) == 1
    assert capsys.readouterr().err == f"gankit sample: error: {path}: not a readable gankit checkpoint ({reason})\n"
