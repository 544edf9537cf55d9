"""A pix2pix run on the CMP base set records the folder the user passed as well as the aligned set
built from it in the cache: in run.json, the checkpoints, the report and the web demo's tab."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from gankit.cli import main
from gankit.paths import cache_dir
from gankit.sampling import load_generator


def _cmp_folder(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        labels = np.full((40, 32), 1 + i % 12, dtype=np.uint8)
        labels[10:30, 8:24] = 3
        Image.fromarray(labels).convert("P").save(root / f"cmp_b{i:04d}.png")
        Image.fromarray(rng.integers(0, 256, (40, 32, 3), dtype=np.uint8)).save(root / f"cmp_b{i:04d}.jpg")
    return root


def test_pix2pix_on_cmp_records_the_folder_given_and_the_set_built_from_it(
    tmp_path: Path, monkeypatch, capsys, no_loss_plot
) -> None:
    monkeypatch.delenv("GANKIT_DATA")  # built into the cache, as for a user without GANKIT_DATA
    cmp = _cmp_folder(tmp_path / "cmp-facades-base")
    run = tmp_path / "run"
    argv = ["train", "pix2pix", "--data", str(cmp), "--out", str(run), "--max-steps", "1", "--device", "cpu"]
    argv += ["--no-progress", "--set", "model.ngf=8", "model.ndf=8", "data.resolution=32", "data.load_size=32"]
    assert main([*argv, "train.batch_size=2", "train.n_samples=2"]) == 0
    built = cache_dir() / "facades"
    dataset = json.loads((run / "run.json").read_text())["dataset"]
    assert dataset["name"] == "facades"
    assert dataset["source"] == str(built.resolve()) and dataset["given"] == str(cmp.resolve())
    assert load_generator(run).info.given == str(cmp.resolve())  # in the checkpoint too

    assert main(["report", str(run), "--device", "cpu"]) == 0
    html = (run / "report.html").read_text()
    assert f"from {cmp.resolve()} (data in {built.resolve()})" in html

    from gankit.serve import RunModel

    assert RunModel(run).dataset() == f"facades ({cmp.resolve()} (data in {built.resolve()}))"


def test_data_read_where_given_record_no_second_path(tmp_path: Path, no_loss_plot) -> None:
    from conftest import make_tiny_cfg

    from gankit.launch import train

    cfg = make_tiny_cfg("gan", tmp_path, **{"train.max_steps": 1})
    train(cfg, tmp_path / "run")
    dataset = json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]
    assert dataset["given"] == "" and dataset["source"] == str(Path(cfg.data.path).resolve())
    assert os.path.isdir(dataset["source"])
