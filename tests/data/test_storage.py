"""Storage backends (gankit.data.storage, gankit.data.feed): memory, mmap and stream serve the same
batches, training and exact resume do not depend on the backend, and the mmap cache is built once,
atomically, safely under concurrency, and again when the folder changes."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import deep_equal, free_port, quiet, trainer_states, wait_for_rows, write_image_folder
from PIL import Image

from gankit.config import ConfigError, DataConfig
from gankit.data import EpochSampler, build_dataset
from gankit.data import storage as st
from gankit.data.colorization import load_colorization
from gankit.data.errors import DataError
from gankit.data.feed import batches
from gankit.data.folders import load_image_folder
from gankit.data.images import ImageReadError
from gankit.data.paired import load_aligned, load_pair_folders
from gankit.training.loop import Trainer

BACKENDS = ("memory", "mmap", "stream")
CPU = torch.device("cpu")


def _photos(root: Path, n: int, *, size: tuple[int, int] = (40, 36), seed: int = 0) -> Path:
    """``n`` colourful RGB JPEGs of ``size`` under ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"p{i:03d}.jpg", quality=90)
    return root


def _aligned(root: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(root / "train" / f"{i:02d}.png")
    return root


def _pair_folders(root: Path, n: int) -> Path:
    rng = np.random.default_rng(2)
    for side in ("a", "b"):
        (root / "train" / side).mkdir(parents=True)
    for i in range(n):
        for side in ("a", "b"):
            arr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / "train" / side / f"{i:02d}.png")
    return root


def _load(kind: str, root: Path, storage: str) -> Any:
    """A training set of ``kind`` stored with ``storage`` (stream: 2 decoding worker processes)."""
    common: dict[str, Any] = dict(storage=storage, workers=2, log=quiet)
    if kind == "folder":
        return load_image_folder(root, resolution=16, **common)
    if kind == "aligned":
        return load_aligned(root, "train", resolution=16, load_size=20, **common)
    if kind == "pair-folders":
        return load_pair_folders(root, "train", resolution=16, load_size=20, direction="BtoA", **common)
    return load_colorization(root, "train", resolution=16, load_size=20, **common)


@pytest.mark.parametrize("kind", ["folder", "aligned", "pair-folders", "colorization"])
def test_every_backend_serves_the_same_batches(kind: str, tmp_path: Path) -> None:
    make = {
        "folder": lambda r: write_image_folder(r, 24, classes=2),
        "aligned": lambda r: _aligned(r, 12),
        "pair-folders": lambda r: _pair_folders(r, 12),
        "colorization": lambda r: _photos(r, 12),
    }[kind]
    root = make(tmp_path / kind)
    sub = {"folder": "class0", "aligned": "train", "pair-folders": "train/a"}.get(kind, "")
    (root / sub / "zz_broken.png").write_bytes(b"not a png")
    if kind == "pair-folders":
        (root / "train/b/zz_broken.png").write_bytes(b"not a png")
    augment = kind != "folder"
    served: dict[str, list[dict[str, torch.Tensor]]] = {}
    for storage in BACKENDS:
        ds = _load(kind, root, storage)
        assert type(ds.store).__name__.lower().startswith(storage)
        sampler = EpochSampler(len(ds), 4, seed=3)
        # 3 epochs' worth of steps, from step 0 and (as after a resume) from step 5
        served[storage] = list(batches(ds, sampler, start=0, stop=9, device=CPU, augment=augment))
        resumed = list(batches(ds, sampler, start=5, stop=9, device=CPU, augment=augment))
        assert all(deep_equal(a, b) == [] for a, b in zip(resumed, served[storage][5:], strict=True))
    assert len(ds) == (24 if kind == "folder" else 11)  # the broken file is skipped (and every 10th held out)
    for storage in ("mmap", "stream"):
        diffs = [d for a, b in zip(served["memory"], served[storage], strict=True) for d in deep_equal(a, b)]
        assert diffs == [], f"{storage}: {diffs[:3]}"
    if kind == "folder":
        assert "label" in served["memory"][0]
    if augment:  # the crops and flips did something, so agreeing means something
        plain = ds.batch(EpochSampler(len(ds), 4, seed=3).indices(0), device=CPU, generator=None)
        assert not torch.equal(served["memory"][0]["input"], plain["input"])


def test_colorization_converts_per_batch_outside_memory(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos", 6)
    mem, mapped = _load("colorization", root, "memory"), _load("colorization", root, "mmap")
    assert mem.lab_at_load and not mapped.lab_at_load  # float16 Lab in RAM; uint8 RGB on disk
    assert mapped.store.array.dtype == np.uint8 and mapped.store.item_shape == (3, 20, 20)
    assert torch.equal(mem.lab, mapped.lab)


def _tiny_train_cfg(tiny_cfg, tmp_path: Path, preset: str, storage: str, max_steps: int):
    if preset == "dcgan":
        folder = tmp_path / "faces"
        if not folder.exists():
            write_image_folder(folder, 30)
        over = {"data.path": str(folder), "train.batch_size": 6}
    else:  # colorize on real photos: the Lab path of each backend
        folder = tmp_path / "photos"
        if not folder.exists():
            _photos(folder, 12, size=(40, 40))
        over = {"data.path": str(folder), "data.name": "colorization", "data.load_size": 36}
    return tiny_cfg(
        preset,
        tmp_path,
        **{**over, "data.storage": storage, "data.workers": 1, "train.epochs": 3, "train.max_steps": max_steps},
    )


@pytest.mark.parametrize("preset", ["dcgan", "colorize"])
def test_training_and_resume_are_bitwise_equal_across_backends(
    preset: str, tmp_path: Path, tiny_cfg, no_loss_plot
) -> None:
    n = 4  # crosses the first epoch boundary of both (5 and 5 steps an epoch)
    straight = Trainer(_tiny_train_cfg(tiny_cfg, tmp_path, preset, "memory", 2 * n), tmp_path / "mem", log=quiet)
    assert straight.info.storage == "memory"
    straight.fit()
    want = trainer_states(straight)
    for storage in ("mmap", "stream"):
        first = Trainer(_tiny_train_cfg(tiny_cfg, tmp_path, preset, storage, n), tmp_path / storage, log=quiet)
        assert first.info.storage == storage
        first.fit()
        del first
        cfg = _tiny_train_cfg(tiny_cfg, tmp_path, preset, storage, 2 * n)
        resumed = Trainer(cfg, tmp_path / storage, resume=True, log=quiet)
        resumed.fit()
        diffs = deep_equal(trainer_states(resumed), want)
        assert diffs == [], f"{storage}: {diffs[:3]}"
        assert json.loads((tmp_path / storage / "run.json").read_text())["dataset"]["storage"] == storage


# ------------------------------------------------------------------------------- the mmap cache


def _source(root: Path, decode=None) -> st.ItemSource:
    from gankit.data.folders import _decode

    files = sorted(p for p in root.iterdir() if p.suffix in (".png", ".jpg"))
    return st.ItemSource(
        kind="folder",
        root=root,
        items=files,
        decode=decode or partial(_decode, size=16, channels=3),
        shape=(3, 16, 16),
        params="16px-3c",
    )


def _cache_files() -> list[str]:
    return sorted(str(p.relative_to(st.storage_root())) for p in st.storage_root().rglob("*") if p.is_file())


def test_the_cache_is_reused_and_rebuilt_when_the_folder_changes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    lines: list[str] = []
    folder, meta = st.open_cache(_source(root), pixels=True, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("cached 10 images of") and meta["shape"] == [10, 3, 16, 16]
    inode = (folder / "pixels.u8").stat().st_ino
    again, _ = st.open_cache(_source(root), pixels=True, log=lines.append)
    assert again == folder and (folder / "pixels.u8").stat().st_ino == inode and len(lines) == 1  # not rebuilt

    changed = root / "img003.jpg"
    assert _source(root).items[3] == changed
    Image.new("RGB", (30, 30), (255, 0, 0)).save(changed)  # same name, new content
    rebuilt, _ = st.open_cache(_source(root), pixels=True, log=lines.append)
    assert rebuilt != folder and len(lines) == 2
    assert not folder.exists()  # the stale cache of the same folder is removed
    first_five = dataclasses.replace(_source(root), items=_source(root).items[:5])  # as data.max_images=5
    quick, _ = st.open_cache(first_five, pixels=True, log=lines.append)
    assert quick != rebuilt and rebuilt.exists()  # a quick run's cache does not evict the full one
    pixels = st.MmapStore(rebuilt / "pixels.u8", (10, 3, 16, 16)).pixels
    assert pixels[3, 0].min() >= 250 and pixels[3, 1:].max() <= 5  # the new red image (a JPEG: 254 or so)


def _interrupting_decode(path: Path) -> torch.Tensor:
    if path.stem == "img006":
        raise KeyboardInterrupt
    from gankit.data.folders import _decode

    return _decode(path, 16, 3)


def test_an_interrupted_build_leaves_no_cache(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    with pytest.raises(KeyboardInterrupt):
        st.open_cache(_source(root, _interrupting_decode), pixels=True, log=quiet)
    assert not [f for f in _cache_files() if not f.endswith(".lock")]  # no half-written pixels, no meta
    folder, meta = st.open_cache(_source(root), pixels=True, log=quiet)
    assert meta["shape"][0] == 10 and (folder / "pixels.u8").stat().st_size == 10 * 3 * 16 * 16


def _slow_decode(path: Path) -> torch.Tensor:
    time.sleep(0.02)
    from gankit.data.folders import _decode

    return _decode(path, 16, 3)


def _build_in_child(root: str, out: Any) -> None:
    lines: list[str] = []
    folder, _ = st.open_cache(_source(Path(root), _slow_decode), pixels=True, log=lines.append)
    out.put((str(folder), lines))


def test_two_processes_building_one_cache_build_it_once(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", 30)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(str(root), out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    folders = {f for f, _ in results}
    logs = [line for _, lines in results for line in lines]
    assert len(folders) == 1
    assert sum(line.startswith("cached 30 images") for line in logs) == 1  # one build; the other waited
    assert sum(line.startswith("waiting for another process") for line in logs) == 1
    assert [f for f in _cache_files() if ".tmp" in f] == []


def test_a_cache_that_does_not_fit_on_the_disk_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    monkeypatch.setattr(st.shutil, "disk_usage", lambda p: _Usage())
    with pytest.raises(DataError, match=r"the cache needs 7.7 KB but .* has 100 B free; .*data.storage=stream"):
        st.open_cache(_source(root), pixels=True, log=quiet)


class _Usage:
    total, used, free = 1000, 900, 100


# ------------------------------------------------------------------------------------ choosing


def test_auto_chooses_by_size_ram_disk_and_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    src = _source(root)  # 10 x 768 B
    assert st.choose(src)[0] == "memory"
    monkeypatch.setattr(st, "MEMORY_MAX_BYTES", 10 * 768 * 3)
    assert st.choose(src)[0] == "memory"
    assert st.choose(src, memory_factor=4.0)[0] == "mmap"  # e.g. float16 Lab costs twice the bytes
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # 4 torchrun processes would each hold a copy
    backend, why = st.choose(src)
    assert backend == "mmap" and "4 processes x 7.7 KB in RAM is more than 23.0 KB" in why
    monkeypatch.setattr(st, "_free_disk", lambda p: 100)
    backend, why = st.choose(src)
    assert backend == "stream" and "would not fit" in why
    st.open_cache(src, pixels=True, log=quiet)
    assert st.choose(src)[0] == "mmap"  # a cache that exists is used


def test_auto_says_what_it_chose_in_the_run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    cfg = DataConfig(name="folder", path=str(root), resolution=16)
    lines: list[str] = []
    ds = build_dataset(cfg, log=lines.append)
    assert ds.info.storage == "memory" and lines[0].startswith("data.storage=auto -> memory: 10 images decode to")
    monkeypatch.setattr(st, "MEMORY_MAX_BYTES", 100)
    lines.clear()
    ds = build_dataset(cfg, log=lines.append)
    assert ds.info.storage == "mmap"  # from the cache the memory run left (so nothing is decoded again)
    assert lines[0].startswith("data.storage=auto -> mmap: 10 images decode to 7.7 KB; 7.7 KB in RAM is more than")


def test_a_wrong_storage_name_is_a_config_error() -> None:
    from gankit.config import make_config

    with pytest.raises(ConfigError, match="data.storage must be auto, memory, mmap or stream, not 'disk'"):
        make_config("dcgan", overrides={"data.storage": "disk"})


# ------------------------------------------------------------------------------------ streaming


def test_a_file_that_breaks_after_the_scan_stops_the_stream_in_one_line(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", 12)
    ds = load_image_folder(root, resolution=16, storage="stream", workers=1, log=quiet)
    victim = Path(ds.store.source.items[ds.store.kept[0]])
    victim.write_bytes(b"broken now")
    sampler = EpochSampler(len(ds), 12, seed=0)  # every step reads every file
    with pytest.raises(DataError) as e:
        list(batches(ds, sampler, start=0, stop=2, device=CPU, augment=False))
    msg = str(e.value)
    assert "\n" not in msg and str(victim) in msg and "changed during training" in msg


def test_stream_items_are_decoded_by_the_same_function_as_the_cache(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", 8)
    streamed = load_image_folder(root, resolution=16, storage="stream", log=quiet)
    mapped = load_image_folder(root, resolution=16, storage="mmap", log=quiet)
    index = torch.arange(len(mapped))
    assert torch.equal(streamed.store.decode_items(index), mapped.images)
    with pytest.raises(AttributeError, match="streamed dataset keeps no pixels"):
        streamed.images  # noqa: B018


def test_idx_data_stay_in_memory_and_say_so(tiny_idx: Path) -> None:
    lines: list[str] = []
    ds = build_dataset(DataConfig(name="fashion-mnist", path=str(tiny_idx), storage="mmap"), log=lines.append)
    assert ds.info.storage == "memory"
    assert any("IDX data are small and held in memory (data.storage=mmap applies to image files)" in m for m in lines)


def test_read_errors_while_building_are_skipped_not_cached_as_pixels(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", 6)
    (root / "img000.png").write_bytes(b"")
    folder, meta = st.open_cache(_source(root), pixels=True, log=quiet)
    assert meta["kept"] == [1, 2, 3, 4, 5] and "1 empty file" in meta["skipped"]
    assert (folder / "pixels.u8").stat().st_size == 5 * 768
    with pytest.raises(ImageReadError):
        _source(root).decode(root / "img000.png")


# ----------------------------------------------------------------------------- torchrun, 2 ranks

DDP_WORKER = """
import os, sys, torch
from gankit.config import make_config
from gankit.training import distributed
from gankit.training.loop import Trainer
data, out, storage = sys.argv[1:4]
torch.set_num_threads(1)
cfg = make_config("dcgan", overrides={
    "data.name": "folder", "data.path": data, "data.resolution": 16, "data.storage": storage,
    "data.workers": 1, "model.ngf": 4, "model.ndf": 4, "model.z_dim": 8, "train.batch_size": 4,
    "train.max_steps": 6, "train.device": "cpu", "train.progress": False, "train.n_samples": 4,
})
t = Trainer(cfg, out, log=print)
t.fit()
torch.save(t.G.state_dict(), os.path.join(out, f"G_rank{t.dist.rank}.pt"))
distributed.shutdown()
"""


def test_two_ranks_share_one_cache_and_every_backend_trains_alike(tmp_path: Path, mpl_config_dir: Path) -> None:
    import subprocess
    import sys

    from conftest import subprocess_env

    env = subprocess_env(tmp_path, mpl_config_dir)
    data = write_image_folder(tmp_path / "faces", 24)
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    weights = {}
    for storage in ("mmap", "stream"):
        out = tmp_path / storage
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), str(script), str(data), str(out), storage]  # fmt: skip
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        g = [torch.load(out / f"G_rank{r}.pt", weights_only=True) for r in range(2)]
        params = [{k: v for k, v in w.items() if "running" not in k and "num_batches" not in k} for w in g]
        assert deep_equal(params[0], params[1]) == []  # (BatchNorm statistics are per rank without sync_bn)
        weights[storage] = g[0]
    caches = list(Path(env["XDG_CACHE_HOME"], "gankit", "storage").glob("*/pixels.u8"))
    assert len(caches) == 1  # both ranks of the mmap run opened the one cache file (one built it)
    assert deep_equal(weights["mmap"], weights["stream"]) == []


def test_gankit_cache_lists_and_clears_the_caches(tmp_path: Path, capsys) -> None:
    from gankit.cli import main
    from gankit.data.mnist import cache_dir

    root = write_image_folder(tmp_path / "imgs", 10)
    folder, _ = st.open_cache(_source(root), pixels=True, log=quiet)
    st.open_cache(dataclasses.replace(_source(root), items=_source(root).items[:4]), pixels=False, log=quiet)
    old = cache_dir() / "folders" / "imgs-64px-3c-0123.pt"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 1000)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    total = (
        (folder / "pixels.u8").stat().st_size + 1000 + sum(f.stat().st_size for f in st.storage_root().rglob("*.json"))
    )
    assert total > 8680 and out.startswith(f"decoded-data caches in {st.storage_root()}: 3, {st._human(total)}")
    line = next(x for x in out.splitlines() if folder.name in x)
    assert line.split()[1:6] == ["7.9", "KB", "pixels", "10", "items"] and line.endswith(str(root))
    assert "scan" in out and "(gankit <= 0.2 format, no longer read)" in out
    assert main(["cache", "--clear", "nothing-like-this"]) == 1
    assert "no cache named nothing-like-this*" in capsys.readouterr().err
    assert main(["cache", "--clear", "imgs-16px"]) == 0  # the two caches of imgs/, by name prefix
    assert capsys.readouterr().out.startswith("removed 2 cache(s)")
    assert not folder.exists() and old.exists()
    assert main(["cache", "--clear"]) == 0 and not old.exists()
    main(["cache"])
    assert ": 0, 0 B" in capsys.readouterr().out


def test_a_disk_that_cannot_hold_the_cache_is_an_error_before_any_pixel_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    root = write_image_folder(tmp_path / "imgs", 10)

    def full(fd: int, offset: int, length: int) -> None:  # the space check passed, then the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(st.os, "posix_fallocate", full)
    with pytest.raises(DataError, match=r"the cache needs 7.7 KB .*free some space \(gankit cache\)"):
        st.open_cache(_source(root), pixels=True, log=quiet)
    assert [f for f in _cache_files() if not f.endswith(".lock")] == []


def test_an_unwritable_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_image_folder(tmp_path / "imgs", 10)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setattr(st, "storage_root", lambda: blocked / "storage")
    with pytest.raises(DataError, match=r"cannot write the decoded-data cache in .*XDG_CACHE_HOME"):
        load_image_folder(root, resolution=16, storage="mmap", log=quiet)
    lines: list[str] = []
    streamed = load_image_folder(root, resolution=16, storage="stream", log=lines.append)
    assert len(streamed) == 10 and "scanning the folder without keeping the result" in lines[0]
    in_ram = load_image_folder(root, resolution=16, storage="memory", log=quiet)  # the cache was only a speed-up
    assert torch.equal(in_ram.images, streamed.store.decode_items(torch.arange(10)))


def test_a_file_system_without_fallocate_still_gets_its_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    root = write_image_folder(tmp_path / "imgs", 10)

    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(st.os, "posix_fallocate", unsupported)
    folder, meta = st.open_cache(_source(root), pixels=True, log=quiet)
    assert meta["shape"][0] == 10 and (folder / "pixels.u8").stat().st_size == 10 * 768


def test_ctrl_c_to_the_process_group_of_a_streaming_run_saves_and_resumes(tmp_path: Path, mpl_config_dir: Path) -> None:
    """A terminal's Ctrl-C reaches the decode workers too; the run must still save, say so and resume."""
    import signal
    import subprocess

    from conftest import GANKIT, subprocess_env

    data = write_image_folder(tmp_path / "faces", 40)
    run = tmp_path / "run"
    cmd = [*GANKIT, "train", "dcgan", "--data", str(data), "--out", str(run), "--device", "cpu", "--no-progress",
           "--epochs", "1000", "--batch-size", "4", "--set", "data.resolution=16", "data.storage=stream",
           "data.workers=2", "model.ngf=4", "model.ndf=4", "model.z_dim=8", "train.log_every=1",
           "train.n_samples=4"]  # fmt: skip
    env = subprocess_env(tmp_path, mpl_config_dir)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        wait_for_rows(proc, run / "stats.jsonl", 3)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "DataLoader worker" not in err, err
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert f"SIGINT: saved step {saved} to" in out + err
    res = subprocess.run([*GANKIT, "train", "dcgan", "--resume", "--out", str(run), "--max-steps", str(saved + 2)],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resumed {run} at step {saved}" in res.stdout + res.stderr
