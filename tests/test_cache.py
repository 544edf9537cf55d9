"""``gankit cache``: everything gankit keeps on disk, listed with sizes and cleared by kind; the one
rule of where things go (gankit.paths); and a closed stdout ends any command quietly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import GANKIT, subprocess_env, write_idx_dataset
from PIL import Image

from gankit.cli import main
from gankit.data.facades import find_facades
from gankit.errors import ExitCode
from gankit.formatting import human_bytes
from gankit.paths import cache_dir


def _cmp_folder(root: Path, n: int = 3) -> Path:
    """A tiny CMP Facade base folder: palette label maps and photos."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        Image.fromarray(np.full((30, 40), 1 + i % 12, dtype=np.uint8)).convert("P").save(root / f"cmp_b{i:04d}.png")
        Image.new("RGB", (40, 30), (90, 80, 70)).save(root / f"cmp_b{i:04d}.jpg")
    return root


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _row(out: str, kind: str) -> str:
    """The listing's row of ``kind`` (its first word)."""
    rows = [line for line in out.splitlines() if line.split()[:1] == [kind]]
    assert len(rows) == 1, out
    return rows[0]


@pytest.mark.parametrize(
    "argv, code",
    [(["cache"], ExitCode.BROKEN_PIPE), (["list"], ExitCode.BROKEN_PIPE), (["--help"], 0)],  # argparse: quiet itself
)
def test_a_closed_stdout_is_a_quiet_exit(argv: list[str], code: int, tmp_path: Path, mpl_config_dir: Path) -> None:
    # `gankit cache | head -1`, made deterministic: the reader is gone before gankit writes a byte.
    proc = subprocess.Popen(
        [*GANKIT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(tmp_path, mpl_config_dir),
        cwd=tmp_path,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == code and ExitCode.BROKEN_PIPE == 141
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit


def test_cache_lists_everything_gankit_keeps_with_sizes_and_clears_each_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    cache, data = cache_dir(), Path(os.environ["GANKIT_DATA"])
    (cache / "stats").mkdir(parents=True)
    (cache / "stats" / "fashion-mnist-test-clf-n10000.pt").write_bytes(b"s" * 68_000)
    (cache / "classifiers").mkdir()
    (cache / "classifiers" / "mine.pt").write_bytes(b"c" * 3_000)
    (cache / "folders").mkdir()
    (cache / "folders" / "imgs-64px-3c-0123.pt").write_bytes(b"o" * 1_000)  # an old-format storage cache
    write_idx_dataset(cache / "fashion-mnist")  # downloaded into the cache
    cmp = _cmp_folder(tmp_path / "cmp-facades-base")
    built = find_facades(cmp, log=lambda s: None)  # built into $GANKIT_DATA/facades
    assert built == data / "facades"
    mine = write_idx_dataset(data / "mnist")  # placed by the user: not gankit's to list or remove

    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"decoded-data caches in {cache / 'storage'}: 1, 1.0 KB")
    assert _row(out, "stats").split()[1:4] == ["68.0", "KB", "1"] and str(cache / "stats") in _row(out, "stats")
    assert _row(out, "classifiers").split()[1:3] == ["3.0", "KB"]
    fm = _row(out, "fashion-mnist")
    assert human_bytes(_size(cache / "fashion-mnist")) in fm and "4 files" in fm
    fa, fa_bytes = _row(out, "facades"), _size(built)
    assert str(built) in fa and f"built from {cmp}" in fa and human_bytes(_size(built)) in fa
    assert "mnist " not in out.replace("fashion-mnist", "") and str(mine) not in out
    total = sum(_size(p) for p in (cache / "stats", cache / "classifiers", cache / "folders", cache / "fashion-mnist"))
    assert f"in all: {human_bytes(total + _size(built))}" in out

    # a bare --clear removes what the next run rebuilds by itself, and says what it kept
    assert main(["cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert not (cache / "stats").exists() and not any((cache / "folders").iterdir())
    assert "kept classifiers (3.0 KB)" in out and "fashion-mnist" in out and "facades" in out
    assert (cache / "classifiers" / "mine.pt").is_file() and (cache / "fashion-mnist").is_dir() and built.is_dir()
    # every other kind by its name; the user's own data and the CMP source stay
    assert main(["cache", "--clear", "classifiers", "facades", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "removed classifiers: 3.0 KB freed" in out and f"removed facades: {human_bytes(fa_bytes)} freed" in out
    assert not (cache / "classifiers").exists() and not (cache / "fashion-mnist").exists() and not built.exists()
    assert (mine / "train-images-idx3-ubyte").is_file() and len(list(cmp.iterdir())) == 6
    assert main(["cache", "--clear", "mnist"]) == 1  # not gankit's: no such kind or cache
    assert "no cache named mnist*" in capsys.readouterr().err
    assert (mine / "train-images-idx3-ubyte").is_file()


def test_facades_the_user_placed_in_gankit_data_are_never_listed_or_removed(tmp_path: Path, capsys) -> None:
    theirs = Path(os.environ["GANKIT_DATA"]) / "facades" / "train"
    theirs.mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(theirs / "1.jpg")
    ours = cache_dir() / "facades" / "train"  # e.g. downloaded there before GANKIT_DATA was set
    ours.mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(ours / "1.jpg")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(ours.parent) in _row(out, "facades") and str(theirs.parent) not in out
    assert main(["cache", "--clear", "facades"]) == 0
    assert (theirs / "1.jpg").is_file() and not ours.exists()


def test_every_cache_follows_the_one_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """XDG_CACHE_HOME decides where every cache goes, facades builds included when GANKIT_DATA is unset."""
    from gankit.data.storage import storage_root
    from gankit.evaluate import stats_dir
    from gankit.metrics.classifier import default_classifier_path

    monkeypatch.delenv("GANKIT_DATA")
    xdg = tmp_path / "elsewhere"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    root = xdg / "gankit"
    assert find_facades(_cmp_folder(tmp_path / "cmp"), log=lambda s: None) == root / "facades"
    assert (root / "facades" / "train").is_dir()
    assert storage_root() == root / "storage" and stats_dir() == root / "stats"
    assert default_classifier_path("mnist", None).parent == root / "classifiers"
    from gankit.caches import list_kept

    kept = {k.kind: k for k in list_kept()}
    assert kept["facades"].path == root / "facades" and kept["facades"].note.startswith("built from ")
    assert {kept[k].path for k in ("storage", "stats", "classifiers")} == {
        root / "storage",
        root / "stats",
        root / "classifiers",
    }
