"""Every command follows one table of exit codes (gankit.errors.ExitCode, README "Exit codes"):
0 done, 1 an input that cannot be used, 2 a command line that cannot be carried out as given (an
existing output without --overwrite among them), 130/143 interrupted, 141 stdout closed."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, ROOT
from PIL import Image

from gankit.cli import main
from gankit.errors import ExitCode, TrainingInterrupted

INTEROP = FIXTURES / "interop"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Imported runs (dcgan, pix2pix, colorize) from the reference fixtures, and a photo."""
    w = tmp_path_factory.mktemp("exit_codes")
    for name, kind, extra in (
        ("pe_dcgan_nz16_ngf8_G", "dcgan-example", []),
        ("jz_unet128_ngf4_batch_G", "pix2pix-repo", []),
        ("jz_unet128_ngf4_instance_1to2_G", "pix2pix-repo", ["--task", "colorize"]),
    ):
        pth = w / f"{name}.pth"
        torch.save(torch.load(INTEROP / f"{name}.pt", weights_only=True)["state_dict"], pth)
        run = {"dcgan-example": "dcgan", "pix2pix-repo": "pix2pix"}[kind] if not extra else "colorize"
        assert main(["import", kind, str(pth), "--out", str(w / run), *extra]) == 0
    Image.new("RGB", (40, 30), (120, 80, 40)).save(w / "photo.jpg")
    for name in ("taken", "taken_translate", "taken_colorize"):
        (w / name).mkdir()
    (w / "taken" / "00000.png").write_bytes(b"mine")
    (w / "taken_translate" / "photo.png").write_bytes(b"mine")
    (w / "taken_colorize" / "photo.png").write_bytes(b"mine")
    (w / "taken.onnx").write_bytes(b"mine")
    (w / "taken.pt").write_bytes(b"mine")
    (w / "taken.html").write_bytes(b"mine")
    (w / "junk.pth").write_bytes(b"not a checkpoint")
    return w


CASES = [
    # (command line with W = the fixture folder, expected code); one line per command and kind of error
    ("train gan --out W/dcgan", ExitCode.USAGE),  # a folder that holds a run, without --resume
    ("train gan --set optim.lr=1", ExitCode.USAGE),
    ("train gan --data W/missing --out W/new", ExitCode.ERROR),
    ("train dcgan --set data.name=folder data.path=W/missing data.resolution=100 --out W/new", ExitCode.USAGE),
    ("train classifier --data mnist --out W/taken.pt", ExitCode.USAGE),
    ("sample W/dcgan --n 1 --out W/taken", ExitCode.USAGE),
    ("sample W/dcgan --n 0 --out W/s", ExitCode.USAGE),
    ("sample W/missing --out W/s", ExitCode.ERROR),
    ("sample W/pix2pix --out W/s", ExitCode.ERROR),  # a run of another kind: the input
    ("translate W/pix2pix W/photo.jpg --out W/taken_translate --device cpu", ExitCode.USAGE),
    ("translate W/pix2pix W/missing.jpg --out W/t", ExitCode.ERROR),
    ("translate W/colorize W/photo.jpg --out W/t --device cpu", ExitCode.ERROR),
    ("colorize W/colorize W/photo.jpg --out W/taken_colorize --device cpu", ExitCode.USAGE),
    ("colorize W/pix2pix W/photo.jpg --out W/c --device cpu", ExitCode.ERROR),
    ("export W/dcgan --out W/taken.onnx", ExitCode.USAGE),
    ("export W/missing --out W/x.onnx", ExitCode.ERROR),
    ("import pix2pix-repo W/jz_unet128_ngf4_batch_G.pth --out W/dcgan", ExitCode.USAGE),  # --out holds a run
    ("import dcgan-example W/junk.pth --out W/i", ExitCode.ERROR),
    ("report W/dcgan --out W/taken.html", ExitCode.USAGE),
    ("report W/missing", ExitCode.ERROR),
    ("report W/photo.jpg", ExitCode.ERROR),
    ("eval", ExitCode.USAGE),
    ("eval W/missing", ExitCode.ERROR),
    ("serve W/dcgan --port 0", ExitCode.USAGE),
    ("cache --clear no-such-cache", ExitCode.ERROR),
    ("list --long", ExitCode.USAGE),
    ("nosuchcommand", ExitCode.USAGE),
]


@pytest.mark.parametrize("line, code", CASES, ids=[c[0].split(" W/")[0] + f"-{c[1]}" for c in CASES])
def test_every_command_follows_the_exit_code_table(line: str, code: int, world: Path, capsys) -> None:
    argv = [a.replace("W/", f"{world}/") for a in line.split()]
    try:
        got = main(argv)
    except SystemExit as e:  # argparse
        got = e.code
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err and err.count("\n") == 1, err  # one line, naming what to do


@pytest.mark.parametrize("command, module", [("export", "onnx"), ("serve", "gradio")])
def test_a_missing_optional_package_is_a_usage_error(command: str, module: str, world: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    assert (
        main([command, str(world / "dcgan"), *(["--out", str(world / "m.onnx")] if command == "export" else [])]) == 2
    )


def test_interruptions_exit_with_128_plus_the_signal(world: Path, monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gankit.caches.list_kept", interrupted)
    assert main(["cache"]) == ExitCode.INTERRUPTED == 130
    assert capsys.readouterr().err == "gankit: interrupted\n"

    def terminated(*args, **kwargs):
        raise TrainingInterrupted(signal.SIGTERM, 3)

    monkeypatch.setattr("gankit.launch.train", terminated)
    assert main(["train", "gan", "--out", str(world / "t")]) == ExitCode.TERMINATED == 143


def test_the_readme_table_lists_every_code() -> None:
    readme = (ROOT / "README.md").read_text()
    after = readme.split("### Exit codes", 1)[1]
    table = after[after.index("\n|") :].split("\n\n", 1)[0].strip().splitlines()
    rows = {int(r.split("|")[1].strip(" `")) for r in table[2:]}
    assert rows == {int(c) for c in ExitCode}
