"""gankit export: ONNX graphs of every family, verified against PyTorch, and the onnxruntime-only script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from conftest import FIXTURES, ROOT, snapshot_run  # noqa: E402

from gankit import export as export_mod  # noqa: E402
from gankit.cli import main  # noqa: E402
from gankit.export import ExportError, export_onnx, reflect_index  # noqa: E402
from gankit.inference import pad_to_multiple, run_any_size  # noqa: E402
from gankit.locks import lock_file  # noqa: E402
from gankit.sampling import load_generator  # noqa: E402

INTEROP = FIXTURES / "interop"


def ort_session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------- every family


@pytest.mark.slow  # the exporter takes seconds per graph
@pytest.mark.parametrize("family", ["gan", "cgan", "dcgan", "pix2pix", "colorize"])
def test_export_every_family_matches_pytorch(tmp_path: Path, family: str, capsys: pytest.CaptureFixture) -> None:
    run = snapshot_run(family, tmp_path)
    out = tmp_path / "G.onnx"
    if family == "gan":  # one family through the CLI, with --checkpoint naming a file
        ckpt = run / "checkpoints" / "G_last.pt"
        assert main(["export", str(run), "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "max abs diff" in printed and "1x16: " in printed and "3x16: " in printed
    else:
        report = export_onnx(run, out)
        assert len(report.checks) == 2 and report.max_abs_diff <= 1e-4
    assert out.is_file() and not list(tmp_path.glob(".G.onnx.tmp*"))

    # A third input size, not one of the two the export checked, through a fresh session.
    session = ort_session(out)
    loaded = load_generator(run)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        if loaded.family.kind == "noise":
            z = torch.randn(5, loaded.cfg.model.z_dim, generator=g)
            feed = {"z": z.numpy()}
            labels = None
            if family == "cgan":
                labels = torch.randint(0, 10, (5,), generator=g)
                feed["label"] = labels.numpy()
            want = loaded.G(z, labels)
            assert [i.name for i in session.get_inputs()] == list(feed)
        else:
            x = torch.rand(3, loaded.info.in_channels, 45, 70, generator=g) * 2 - 1
            want = run_any_size(loaded.G, x, multiple=loaded.G.multiple, resolution=32, strategy="pad")
            feed = {session.get_inputs()[0].name: x.numpy()}
            assert session.get_inputs()[0].name == ("L" if family == "colorize" else "input")
        (got,) = session.run(None, feed)
    assert got.shape == tuple(want.shape)
    assert np.abs(got - want.numpy()).max() <= 1e-4
    assert want.std() > 0.01  # the comparison is not between two near-constant outputs
    assert np.abs(got).max() <= 1.0
    # batch (and for U-Nets height and width) are symbolic in the graph, not fixed to the example's
    dims = session.get_inputs()[0].shape
    assert isinstance(dims[0], str)
    if loaded.family.kind == "paired":
        assert isinstance(dims[2], str) and isinstance(dims[3], str)


def test_reflect_index_matches_gankit_padding() -> None:
    """The in-graph padding is the same mirror padding as ``gankit translate --strategy pad``."""
    for h in (1, 2, 3, 5, 9, 31, 32, 33):
        x = torch.randn(1, 2, h, 32)
        want, (_, _, top, bottom) = pad_to_multiple(x, 32)
        got = x.index_select(2, reflect_index(h, top, bottom))
        assert torch.equal(got, want), h


# ------------------------------------------------------------------------- refusals and safety


def test_existing_out_is_not_overwritten(tmp_path: Path) -> None:
    run = snapshot_run("gan", tmp_path)
    out = tmp_path / "G.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        export_onnx(run, out)
    assert out.read_bytes() == b"keep me"
    assert main(["export", str(run), "--out", str(tmp_path)]) == 1  # a folder is not a file name


def test_a_second_export_to_the_same_file_refuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two exports to one file would both find it missing; the second would replace the first's file."""
    run = snapshot_run("gan", tmp_path)
    out = tmp_path / "models" / "G.onnx"
    with lock_file(out.parent / ".G.onnx.lock", note="gankit export"):  # another export is writing G.onnx
        assert main(["export", str(run), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"gankit export: error: --out {out}: another process (pid {os.getpid()}, gankit export) is exporting "
            "to this file; wait for it, or choose another --out\n"
        )
        assert not out.exists()
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["G.onnx"]  # no lock or temporary file left
    with pytest.raises(ExportError, match="already exists"):  # checked under the lock, after the other finished
        export_onnx(run, out, log=lambda s: None)
    assert main(["export", str(run), "--out", str(tmp_path / "unused" / "G.onnx"), "--checkpoint", "best"]) == 1
    assert not (tmp_path / "unused").exists()  # a failed export leaves no empty folder


def test_pipeline_needs_a_colorize_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = snapshot_run("pix2pix", tmp_path)
    assert main(["export", str(run), "--pipeline", "--out", str(tmp_path / "p.onnx")]) == 1
    assert "the uint8 image pipeline is for colorize models" in capsys.readouterr().err
    assert main(["export", str(run), "--checkpoint", "best", "--out", str(tmp_path / "p.onnx")]) == 1
    assert "no G_best.pt" in capsys.readouterr().err
    assert not (tmp_path / "p.onnx").exists()


@pytest.mark.slow  # the exporter takes seconds per graph
def test_mismatch_is_an_error_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If onnxruntime disagreed with PyTorch, the export fails and nothing is left that looks valid."""
    run = snapshot_run("gan", tmp_path)
    reference = export_mod._reference
    monkeypatch.setattr(export_mod, "_reference", lambda *a: reference(*a) + 1e-3)
    out = tmp_path / "G.onnx"
    with pytest.raises(ExportError, match=r"does not reproduce PyTorch \(max abs difference 0.001"):
        export_onnx(run, out)
    assert list(tmp_path.glob("*.onnx*")) == [] and list(tmp_path.glob(".G.onnx*")) == []


# ------------------------------------------------------------- colorize pipeline and the script


@pytest.fixture
def imported_colorizer(tmp_path: Path) -> Path:
    """The reference colorization U-Net (unet_128, instance norm), imported: weights that are not gankit's."""
    from gankit.interop import import_pix2pix_repo

    pth = tmp_path / "latest_net_G.pth"
    torch.save(torch.load(INTEROP / "jz_unet128_ngf4_instance_1to2_G.pt", weights_only=True)["state_dict"], pth)
    return import_pix2pix_repo(pth, tmp_path / "colorizer", task="colorize")


@pytest.mark.slow  # the exporter takes seconds per graph
def test_colorize_pipeline_and_onnxruntime_only_script(tmp_path: Path, imported_colorizer: Path) -> None:
    out = tmp_path / "colorize.onnx"
    report = export_onnx(imported_colorizer, out, pipeline=True)
    assert report.graph == "pipeline" and report.max_abs_diff <= 1 and report.differing < 0.01

    rng = np.random.default_rng(1)
    photos = tmp_path / "photos"
    photos.mkdir()
    # a smooth colour photo (non-square, not a multiple of anything) and a gray one
    yy, xx = np.mgrid[0:83, 0:141]
    rgb = np.stack([xx * 1.8, yy * 3.0, (xx + yy) * 1.1], -1) + rng.normal(0, 8, (83, 141, 3))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(photos / "color.png")
    Image.fromarray(rng.integers(0, 256, (60, 50), dtype=np.uint8), mode="L").save(photos / "gray.png")

    assert main(["colorize", str(imported_colorizer), str(photos), "--out", str(tmp_path / "gankit")]) == 0
    script = ROOT / "examples" / "onnx_colorize.py"
    # torch and gankit are made unimportable: the script must run on onnxruntime, numpy and Pillow alone
    runner = (
        "import runpy, sys; sys.modules['torch'] = None; sys.modules['gankit'] = None; "
        f"sys.argv = [{str(script)!r}] + sys.argv[1:]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    for name in ("color.png", "gray.png"):
        result = tmp_path / f"onnx_{name}"
        proc = subprocess.run(
            [sys.executable, "-c", runner, str(out), str(photos / name), str(result)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        got = np.asarray(Image.open(result))
        want = np.asarray(Image.open(tmp_path / "gankit" / name))
        assert got.shape == want.shape == (*Image.open(photos / name).size[::-1], 3)
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())
