"""End to end through the command line: train, look at the run folder, sample, list, and error paths.

One real ``python -m gankit train`` subprocess (module fixture); the other commands call
:func:`gankit.cli.main` in-process, which is what ``python -m gankit`` runs, so they exercise the same
argument parsing and error handling without paying for another interpreter start.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from conftest import GANKIT, subprocess_env, write_idx_dataset
from PIL import Image

from gankit.cli import flag, main
from gankit.config import PRESETS, ConfigError, make_config
from gankit.families import FAMILIES
from gankit.sampling import label_index
from gankit.training.stats import read_jsonl

STEPS = 25  # 200 images / batch 20 = 10 steps per epoch: two epoch ends and a final partial epoch
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _grid_size(n: int, nrow: int, side: int, pad: int = 2, *, text_lines: int = 1) -> tuple[int, int]:
    """Size of a saved grid: upscaled by a whole factor to >= 512 px wide, plus its caption lines."""
    cols, rows = min(n, nrow), -(-n // nrow)
    w, h = cols * (side + pad) + pad, rows * (side + pad) + pad
    f = -(-512 // w)
    return w * f, h * f + (20 * text_lines + 4 if text_lines else 0)


def _one_line_error(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gankit {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: Path) -> tuple[Path, Path, str]:
    """A gan run trained by the real CLI in a subprocess: (run folder, IDX folder, stdout)."""
    base = tmp_path_factory.mktemp("cli")
    idx = write_idx_dataset(base / "idx")
    run = base / "run"
    cmd = [
        *GANKIT,
        "train",
        "gan",
        "--data",
        str(idx),
        "--out",
        str(run),
        "--max-steps",
        str(STEPS),
        "--device",
        "cpu",
        "--no-progress",
        "--set",
        "model.g_hidden=[32,32]",
        "model.d_hidden=[32, 32]",
        "model.z_dim=16",
        "train.batch_size=20",
        "train.log_every=5",
        "train.n_samples=16",
        "optim.lr_d=0.0003",
    ]
    proc = subprocess.run(
        cmd, cwd=base, env=subprocess_env(base, mpl_config_dir), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return run, idx, proc.stdout


def test_train_writes_a_complete_run_folder(gan_run: tuple[Path, Path, str]) -> None:
    run, idx, stdout = gan_run
    assert f"done: {STEPS} steps, epoch 3 in {run}" in stdout
    assert f"next: gankit sample {run} --n 64" in stdout  # the right next command for the family

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["family"] == "gan" and cfg["preset"] == "gan"
    assert cfg["model"]["g_hidden"] == [32, 32] and cfg["model"]["d_hidden"] == [32, 32]
    assert cfg["model"]["z_dim"] == 16 and cfg["train"]["batch_size"] == 20
    assert cfg["optim"]["lr_d"] == 0.0003 and cfg["optim"]["lr_g"] == make_config("gan").optim.lr_g  # --set, preset
    assert cfg["train"]["max_steps"] == STEPS and cfg["train"]["device"] == "cpu"
    # the tiny IDX fixture is neither MNIST nor Fashion-MNIST: recorded as a generic IDX data set
    assert cfg["data"]["name"] == "idx" and cfg["data"]["path"] == str(idx)

    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == STEPS and last["family"] == "gan"
    assert {"G", "D", "opt_G", "opt_D", "rng", "config"} <= set(last)
    assert last["config"] == cfg
    snap = torch.load(run / "checkpoints" / "G_last.pt", weights_only=True)
    assert snap["step"] == STEPS and "D" not in snap
    assert snap["G"]["net.0.weight"].shape == (32, 16)
    # the snapshot holds the generator that samples: the preset's EMA of G, kept in the state as "ema"
    assert isinstance(last["ema"], dict) and cfg["train"]["ema_halflife_kimg"] > 0
    assert all(torch.equal(snap["G"][k], last["ema"][k]) for k in last["G"])

    samples = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert samples == ["epoch_0001.png", "epoch_0002.png", f"step_{STEPS:07d}.png"]
    for name in samples:
        with Image.open(run / "samples" / name) as img:
            assert img.format == "PNG" and img.size == _grid_size(16, 4, 28)

    rows = read_jsonl(run / "stats.jsonl")
    steps = [r["step"] for r in rows]
    assert steps == [5, 10, 15, 20, 25]
    for r in rows:
        assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(r)
        assert all(isinstance(r[k], float) and abs(r[k]) < 1e6 for k in ("d_loss", "g_loss"))

    png = (run / "loss.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    with Image.open(run / "loss.png") as img:
        assert img.size[0] > 100 and img.size[1] > 100


def test_sample_writes_n_images_and_a_grid(gan_run: tuple[Path, Path, str], tmp_path: Path, capsys) -> None:
    run, _, _ = gan_run
    out, grid = tmp_path / "samples", tmp_path / "g.png"
    assert main(["sample", str(run), "--n", "10", "--out", str(out), "--grid", str(grid), "--device", "cpu"]) == 0
    assert "wrote 10 images" in capsys.readouterr().out
    files = sorted(out.iterdir())
    assert len(files) == 10 and all(f.suffix == ".png" for f in files)
    for f in files:
        with Image.open(f) as img:
            assert img.size == (28, 28) and img.mode == "L"
    with Image.open(grid) as img:
        assert img.size == _grid_size(10, 8, 28)
    jpg = tmp_path / "g.jpg"  # the suffix picks the format
    assert main(["sample", str(run), "--n", "10", "--out", str(tmp_path / "s2"), "--grid", str(jpg)]) == 0
    with Image.open(jpg) as img:
        assert img.format == "JPEG" and img.size == _grid_size(10, 8, 28)
    # same seed, same images; another seed, others
    again = tmp_path / "again"
    main(["sample", str(run / "checkpoints" / "G_last.pt"), "--n", "10", "--out", str(again), "--device", "cpu"])
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in sorted(again.iterdir())]
    other = tmp_path / "other"
    main(["sample", str(run), "--n", "10", "--out", str(other), "--seed", "1", "--device", "cpu"])
    assert [f.read_bytes() for f in files] != [f.read_bytes() for f in sorted(other.iterdir())]


def test_sample_from_unconditional_model_has_no_labels(gan_run: tuple[Path, Path, str], tmp_path: Path, capsys) -> None:
    # The gan family ignores labels; Fashion-MNIST having classes must not make its samples "class k".
    run, _, _ = gan_run
    main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s"), "--device", "cpu"])
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "3", "--label", "3", "--out", str(tmp_path / "t"), "--device", "cpu"]) == 2
    assert "not class-conditional" in _one_line_error(capsys.readouterr().err, "sample")


def test_cgan_train_and_sample_by_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    idx = write_idx_dataset(tmp_path / "idx")
    run = tmp_path / "cgan"
    assert (
        main(
            [
                "train",
                "cgan",
                "--data",
                str(idx),
                "--out",
                str(run),
                "--max-steps",
                "3",
                "--device",
                "cpu",
                "--no-progress",
                "--set",
                "model.g_hidden=[16]",
                "model.d_hidden=[16]",
                "model.z_dim=8",
                "train.batch_size=20",
                "train.n_samples=20",
            ]
        )
        == 0
    )
    with Image.open(run / "samples" / "step_0000003.png") as img:  # one column per class, named
        assert img.size == _grid_size(20, 10, 28, text_lines=2)

    out = tmp_path / "three"
    assert main(["sample", str(run), "--n", "6", "--label", "3", "--out", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}_class3.png" for i in range(6)]

    out, grid = tmp_path / "balanced", tmp_path / "balanced.png"
    assert (
        main(
            [
                "sample",
                str(run),
                "--n",
                "20",
                "--labels",
                "balanced",
                "--out",
                str(out),
                "--grid",
                str(grid),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}_class{i % 10}.png" for i in range(20)]
    with Image.open(grid) as img:
        assert img.size == _grid_size(20, 10, 28, text_lines=2)

    # a bad index names the range
    out = tmp_path / "sevens"
    assert main(["sample", str(run), "--n", "2", "--label", "7", "--out", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "2", "--label", "10", "--out", str(tmp_path / "x"), "--device", "cpu"]) == 2
    assert "classes 0-9" in _one_line_error(capsys.readouterr().err, "sample")
    # existing files are not replaced without --overwrite
    assert main(["sample", str(run), "--n", "2", "--label", "7", "--out", str(out), "--device", "cpu"]) == 2
    assert "--overwrite" in _one_line_error(capsys.readouterr().err, "sample")
    assert main(["sample", str(run), "--n", "2", "--label", "7", "--out", str(out), "--overwrite"]) == 0


FMNIST_CLASSES = [
    *("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"),
    *("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
]


@pytest.mark.parametrize(
    "label, expected",
    [("7", 7), ("Sneaker", 7), ("sneaker", 7), ("ankle boot", 9), ("0", 0)],
)
def test_label_by_index_or_class_name(label: str, expected: int) -> None:
    assert label_index(label, FMNIST_CLASSES, 10) == expected


@pytest.mark.parametrize(
    "label, message",
    [("Snekaer", "did you mean 'Sneaker'?"), ("10", "classes 0-9"), ("-1", "classes 0-9"), ("Zebra", "Sneaker")],
)
def test_bad_label_names_the_classes(label: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        label_index(label, FMNIST_CLASSES, 10, flag)


def test_list_shows_every_family_and_preset(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name, fam in FAMILIES.items():
        assert any(line.split()[:2] == [name, fam.kind] for line in lines), name
    for name, p in PRESETS.items():
        assert any(line.split()[:2] == [name, f"family={p['family']}"] for line in lines), name


# -------------------------------------------------------------------------------- error paths


def test_unknown_preset(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown 'nope'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["train", "cgna"], "did you mean 'cgan'?"),
        (["trian", "gan"], "did you mean 'train'?"),
        (["train", "dcgan-fmnist31"], "did you mean 'dcgan-fmnist32'?"),
    ],
)
def test_mistyped_names_get_a_suggestion(argv: list[str], hint: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert hint in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.bogus=1", "unknown config key 'train.bogus'"),
        ("optim.lr=1e-3", "did you mean 'optim.lr_g'?"),
        ("train.batchsize=4", "did you mean 'train.batch_size'?"),
        ("lr_d=1e-3", "did you mean 'optim.lr_d'?"),
        ("train.batch_size=abc", "'train.batch_size' must be int"),
        ("train.batch_size", "key=value"),
    ],
)
def test_bad_set(item: str, message: str, tmp_path: Path, capsys) -> None:
    idx = write_idx_dataset(tmp_path / "idx", n_train=20, n_test=10)
    out = tmp_path / "run"
    assert main(["train", "gan", "--data", str(idx), "--out", str(out), "--set", item]) == 2
    assert message in _one_line_error(capsys.readouterr().err, "train")
    assert not out.exists()  # nothing is created for a config that does not resolve


def test_missing_data_folder(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-data"
    assert (
        main(
            ["train", "gan", "--data", str(missing), "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]
        )
        == 1
    )
    line = _one_line_error(capsys.readouterr().err, "train")
    assert str(missing) in line and "no such file or folder" in line


def test_existing_run_folder_needs_resume(gan_run: tuple[Path, Path, str], capsys) -> None:
    run, idx, _ = gan_run
    before = (run / "checkpoints" / "last.pt").read_bytes()
    assert main(["train", "gan", "--data", str(idx), "--out", str(run), "--device", "cpu", "--no-progress"]) == 2
    assert "already holds a run" in _one_line_error(capsys.readouterr().err, "train")
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_without_a_run(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no runs/ folder here
    assert main(["train", "gan", "--resume"]) == 2
    assert "no run to resume" in _one_line_error(capsys.readouterr().err, "train")


def test_resume_into_a_new_folder_starts_the_run(tiny_idx: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fresh"
    args = [
        "train",
        "gan",
        "--resume",
        "--out",
        str(out),
        "--data",
        str(tiny_idx),
        "--max-steps",
        "2",
        "--no-progress",
        "--set",
        "model.g_hidden=[16]",
        "model.d_hidden=[16]",
    ]
    assert main(args) == 0
    assert "holds no run yet; starting a new one" in capsys.readouterr().out
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    assert main(args) == 0  # again: the run is complete, nothing to do
    assert "nothing to do" in capsys.readouterr().out


def test_sample_from_missing_path(tmp_path: Path, capsys) -> None:
    assert main(["sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    assert "no such run folder or checkpoint file" in _one_line_error(capsys.readouterr().err, "sample")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert main(["sample", str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "no generator checkpoint found" in _one_line_error(capsys.readouterr().err, "sample")


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_sample_never_unpickles_code(fmt: str, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"config": {"family": "gan"}, "G": _Payload(marker), "info": {}}
    if fmt == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    assert not marker.exists()
    assert main(["sample", str(evil), "--n", "2", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 1
    line = _one_line_error(capsys.readouterr().err, "sample")
    assert str(evil) in line and "not a readable gankit checkpoint" in line
    assert not marker.exists()
    assert not (tmp_path / "o").exists()
    # the payload does work when unpickled unsafely, so the check above can fail
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_sample_rejects_non_checkpoints(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(2)}, junk)
    assert main(["sample", str(junk), "--out", str(tmp_path / "o")]) == 1
    assert "not a gankit checkpoint" in _one_line_error(capsys.readouterr().err, "sample")
    text = tmp_path / "notes.pt"
    text.write_text(json.dumps({"hello": 1}))
    assert main(["sample", str(text), "--out", str(tmp_path / "o")]) == 1
    _one_line_error(capsys.readouterr().err, "sample")


def test_sample_grid_names_the_label_and_balanced_says_what_it_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import os

    write_idx_dataset(Path(os.environ["GANKIT_DATA"]) / "fashion-mnist")  # data.name fashion-mnist: class names
    run = tmp_path / "cgan"
    argv = ["train", "cgan", "--out", str(run), "--max-steps", "1", "--device", "cpu", "--no-progress", "--set"]
    assert main([*argv, "model.g_hidden=[16]", "model.d_hidden=[16]", "model.z_dim=8", "train.n_samples=10"]) == 0
    captions: list[str] = []
    monkeypatch.setattr("gankit.visualize.save_grid", lambda images, path, **kw: captions.append(kw["caption"]))
    capsys.readouterr()
    out = ["--out", str(tmp_path / "s"), "--grid", str(tmp_path / "g.png"), "--overwrite", "--device", "cpu"]
    assert main(["sample", str(run), "--n", "4", "--label", "Sneaker", *out]) == 0
    assert captions[-1] == "cgan (cgan), class 7 (Sneaker), seed 0"
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "64", "--labels", "balanced", *out]) == 0
    assert captions[-1] == "cgan (cgan), seed 0"
    assert capsys.readouterr().out.splitlines()[0] == (
        "--labels balanced: 64 images over 10 classes: classes 0-3 get 7, classes 4-9 get 6 "
        "(--n 70 or --n 60 gives the same number of each)"
    )
    assert main(["sample", str(run), "--n", "20", "--labels", "balanced", *out]) == 0
    assert "--labels balanced" not in capsys.readouterr().out  # a multiple of the classes: nothing to say


def test_sample_checks_the_grid_before_writing_any_image(gan_run: tuple[Path, Path, str], tmp_path: Path) -> None:
    run, _, _ = gan_run
    (tmp_path / "g.png").write_bytes(b"mine")
    out = tmp_path / "s"
    assert main(["sample", str(run), "--n", "2", "--out", str(out), "--grid", str(tmp_path / "g.png")]) == 2
    assert not out.exists() and (tmp_path / "g.png").read_bytes() == b"mine"


def test_repeated_set_options_all_apply() -> None:
    """`--set a=1 --set b=2` used to keep only the last one (argparse replaced the list each time)."""
    from gankit.cli import build_parser

    args = build_parser().parse_args(
        ["train", "gan", "--set", "train.max_steps=4", "--set", "train.device=cpu", "optim.lr_g=1e-3"]
    )
    assert args.set == ["train.max_steps=4", "train.device=cpu", "optim.lr_g=1e-3"]
    assert build_parser().parse_args(["train", "gan"]).set == []  # the default list is not shared or grown
