"""``gankit serve`` through gradio's own client: every tab of a page serving five tiny runs.

The runs are trained once per test session (:func:`make_runs`, shared with test_serve_browser.py)
on tiny local data: IDX files for gan/cgan, an image folder for dcgan, an aligned A|B folder with a
val split for pix2pix (so the page has val examples) and a photo folder for colorize.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import free_port, make_tiny_cfg, write_idx_dataset
from PIL import Image

FAMILIES = ("gan", "cgan", "dcgan", "pix2pix", "colorize")
# gradio's queue calls pandas options that pandas 3 deprecates: not ours to fix
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


# ------------------------------------------------------------------------------------ tiny runs


def _write_facades(root: Path, seed: int = 0) -> Path:
    """train/ (4) and val/ (2) A|B pairs, 64x32: A a label map in facade colours, B a noisy photo."""
    from gankit.data.facades import CMP_PALETTE

    colours = np.array(list(CMP_PALETTE.values()), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for split, n in (("train", 4), ("val", 2)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            labels = colours[rng.integers(0, 12, (4, 4))].repeat(8, 0).repeat(8, 1)
            photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([labels, photo], axis=1)).save(root / split / f"{i}.png")
    return root


def _write_photos(root: Path, n: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    return root


def make_runs(root: Path) -> dict[str, Path]:
    """One tiny trained run per family under ``root`` (trained only if not there yet)."""
    from gankit.launch import train

    runs = {f: root / f for f in FAMILIES}
    if all((p / "checkpoints" / "G_last.pt").is_file() for p in runs.values()):
        return runs
    data = root / "data"
    write_idx_dataset(data / "tiny_idx", n_train=40, n_test=10)
    extra: dict[str, dict[str, Any]] = {
        "pix2pix": {"data.name": "aligned", "data.path": str(_write_facades(data / "facades"))},
        "colorize": {"data.name": "colorization", "data.path": str(_write_photos(data / "photos"))},
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gankit.training.callbacks.plot_losses", lambda *a, **k: None)
        for family, out in runs.items():
            overrides = {"train.max_steps": 1, "train.n_samples": 4, **extra.get(family, {})}
            cfg = make_tiny_cfg(family, data, **overrides)
            train(cfg, out, log=lambda s: None)
    return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_runs(tmp_path_factory.getbasetemp() / "serve-runs")


# ------------------------------------------------------------------------------ the served app

gr = pytest.importorskip("gradio", reason="gankit serve needs gradio (pip install 'gankit[demo]')")
gradio_client = pytest.importorskip("gradio_client")

from gankit import serve as sv  # noqa: E402  (after the importorskip)


@pytest.fixture(scope="module")
def app(runs: dict[str, Path]):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    models = [sv.RunModel(runs[f]) for f in FAMILIES]
    out = sv.Outputs()
    blocks = sv.build_app(models, out)
    port = free_port()
    sv.launch(blocks, port=port, block=False)
    client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(out.dir / "dl"))
    yield {"client": client, "models": dict(zip(FAMILIES, models)), "port": port, "out": out, "blocks": blocks}
    blocks.close()
    out.cleanup()


def _api(app: dict, family: str, name: str) -> str:
    return f"/run{FAMILIES.index(family)}_{name}"


def _png(tmp_path: Path, arr: np.ndarray, name: str = "in.png") -> str:
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return str(path)


def _error(app: dict, *args: Any, api_name: str) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        app["client"].predict(*args, api_name=api_name)
    return str(info.value)


def test_every_run_has_a_tab_with_its_facts(app: dict, runs: dict[str, Path]) -> None:
    config = app["client"].config
    tabs = [c["props"] for c in config["components"] if c.get("type") == "tabitem"]
    labels = [t["label"] for t in tabs if str(t.get("elem_id", "")).startswith("tab-run")]
    assert labels == [f"{f} ({f})" for f in FAMILIES]
    for family, rm in app["models"].items():
        text = rm.describe()
        assert f"family **{family}**" in text and "step **1**" in text
        assert str(runs[family] / "checkpoints" / "G_last.pt") in text
    assert "fashion-mnist" in app["models"]["gan"].describe()  # from run.json: what was loaded
    assert "aligned" in app["models"]["pix2pix"].describe()


@pytest.mark.parametrize("family", ["gan", "dcgan"])
def test_grid_is_the_grid_gankit_sample_writes(app: dict, family: str) -> None:
    from gankit.sampling import sample
    from gankit.visualize import save_grid, to_display

    path, how = app["client"].predict(7, 12, api_name=_api(app, family, "grid"))
    rm = app["models"][family]
    assert "--n 12 --seed 7" in how and str(rm.run) in how
    ref = app["out"].dir / f"ref-{family}.png"
    save_grid(to_display(sample(rm.loaded, 12, seed=7)), ref, nrow=8, caption=f"{family} {family}, seed 7")
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(Image.open(ref).convert("RGB")))
    other, _ = app["client"].predict(8, 12, api_name=_api(app, family, "grid"))
    assert not np.array_equal(np.asarray(Image.open(other)), np.asarray(Image.open(path)))


def test_noise_tabs_fill_their_panels_when_the_page_loads(app: dict) -> None:
    """What the page runs on load, with the values its fields start with: the grid of seed 0 (as "show
    this seed" draws it), the walk from seed 0 to 1 and, for cgan, the class-by-seed grid."""
    blocks = app["blocks"]
    on_load = [d for d in blocks.fns.values() if any(event == "load" for _, event in d.targets)]

    def loaded(elem_id: str) -> list[Any]:
        """The outputs of the load event that fills ``#elem_id`` (called as the page calls it)."""
        panel = [c for c in blocks.blocks.values() if getattr(c, "elem_id", None) == elem_id]
        deps = [d for d in on_load if any(o in panel for o in d.outputs)]
        if not panel or not deps:
            return []
        assert len(deps) == 1
        out = deps[0].fn(*(c.value for c in deps[0].inputs))
        return list(out) if isinstance(out, tuple) else [out]

    def image(path: str) -> np.ndarray:
        img = np.asarray(Image.open(path).convert("RGB"))
        assert img.shape[1] >= 512 and img.std() > 10  # an upscaled grid of samples, not a blank panel
        return img

    for i, family in enumerate(FAMILIES):
        if family not in ("gan", "cgan", "dcgan"):
            assert not [d for d in on_load if d.concurrency_id == f"run{i}"]
            continue
        path, how = loaded(f"run{i}-grid")
        assert "--seed 0 " in how
        label = [0] if family == "cgan" else []
        same, _ = app["client"].predict(0, 16 if family != "cgan" else 10, *label, api_name=_api(app, family, "grid"))
        assert np.array_equal(np.asarray(Image.open(same).convert("RGB")), image(path))
        (walk,) = loaded(f"run{i}-walk-strip")
        assert image(walk).shape[0] < image(path).shape[0]  # one row of 8 frames; the grid has two rows
        classes = loaded(f"run{i}-classes")
        assert len(classes) == (family == "cgan")
        if classes:
            image(classes[0])


def test_new_seed_returns_the_seed_it_drew(app: dict) -> None:
    seed, path, how = app["client"].predict(16, api_name=_api(app, "gan", "new_seed"))
    assert isinstance(seed, int | float) and 0 <= seed and f"--seed {int(seed)}" in how
    again, _ = app["client"].predict(int(seed), 16, api_name=_api(app, "gan", "grid"))
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(again)))


def test_walk_starts_and_ends_at_the_first_image_of_each_seed(app: dict) -> None:
    from gankit.sampling import sample

    rm = app["models"]["gan"]
    path = app["client"].predict(3, 5, 4, api_name=_api(app, "gan", "walk"))
    img = Image.open(path)
    # save_grid: 4 cells of 28 px + padding 2, upscaled to >= 512 px wide, plus a caption strip
    factor = -(-512 // (4 * 30 + 2))
    assert img.width == (4 * 30 + 2) * factor
    ends = sample(rm.loaded, 1, seed=3), sample(rm.loaded, 1, seed=5)
    z = torch.cat([sv._first_latent(rm, 3), sv._first_latent(rm, 5)])
    with torch.no_grad():
        assert torch.allclose(rm.loaded.G(z, None), torch.cat(ends), atol=1e-6)


def test_cgan_class_picker_and_class_by_seed_grid(app: dict) -> None:
    from gankit.sampling import sample

    rm = app["models"]["cgan"]
    names = [c["props"] for c in app["client"].config["components"] if c["props"].get("elem_id") == "run1-class"]
    assert [label for label, _ in names[0]["choices"]][:3] == ["0: T-shirt/top", "1: Trouser", "2: Pullover"]
    path, how = app["client"].predict(4, 6, 7, api_name=_api(app, "cgan", "grid"))
    assert "--label 7" in how
    grid = app["client"].predict(2, 3, api_name=_api(app, "cgan", "class_grid"))
    assert Image.open(grid).width > Image.open(path).width  # 10 columns against 6
    # row r, column k is `gankit sample --n 1 --seed 2+r --label k`: different classes differ
    a = sample(rm.loaded, 1, labels=torch.tensor([0]), seed=2)
    b = sample(rm.loaded, 1, labels=torch.tensor([9]), seed=2)
    assert not torch.equal(a, b)
    assert "class must be a whole number from 0 to 9" in _error(app, 4, 6, 10, api_name=_api(app, "cgan", "grid"))


def test_pix2pix_upload_keeps_the_size_and_matches_translate(app: dict, tmp_path: Path) -> None:
    from gankit.translate import load_rgb01, translate_image

    rng = np.random.default_rng(1)
    src = _png(tmp_path, rng.integers(0, 256, (45, 70, 3), dtype=np.uint8))
    path, note = app["client"].predict(gradio_client.handle_file(src), api_name=_api(app, "pix2pix", "translate"))
    out = Image.open(path)
    assert out.size == (70, 45) and "70x45 out" in note
    rm = app["models"]["pix2pix"]
    ref = translate_image(rm.loaded, load_rgb01(Path(src)))
    expect = (ref[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(out.convert("RGB")), expect)


def test_pix2pix_drawing_is_snapped_to_the_label_palette(app: dict, tmp_path: Path) -> None:
    from gankit.data.facades import CMP_PALETTE

    arr = np.zeros((64, 64, 3), dtype=np.uint8) + np.array(CMP_PALETTE[2], np.uint8)
    arr[10:30, 10:30] = CMP_PALETTE[3]
    arr[30, 10:30] = (20, 60, 240)  # an antialiased stroke edge: no class colour
    f = gradio_client.handle_file(_png(tmp_path, arr))
    path, note = app["client"].predict(
        {"background": f, "layers": [], "composite": f}, api_name=_api(app, "pix2pix", "translate_drawing")
    )
    assert Image.open(path).size == (64, 64)
    assert "0.5% of the drawn pixels" in note  # 20 of 4096 pixels
    snapped, changed = sv.snap_to_palette(torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255)
    assert changed == pytest.approx(20 / 4096)
    assert tuple((snapped[0, :, 30, 15] * 255).round().int().tolist()) == CMP_PALETTE[3]


def test_pix2pix_examples_come_from_the_val_split(app: dict) -> None:
    files = sv.val_examples(app["models"]["pix2pix"], app["out"])
    assert len(files) == 2  # the two val pairs
    arr = np.asarray(Image.open(files[0]).convert("RGB"))
    from gankit.data.facades import CMP_PALETTE

    colours = {tuple(c) for c in arr.reshape(-1, 3).tolist()}
    assert colours <= set(CMP_PALETTE.values())  # the label side, not the photo
    examples = [c for c in app["client"].config["components"] if c.get("type") == "dataset"]
    assert len(examples) == 1 and len(examples[0]["props"]["samples"]) == 2


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_colorize_full_resolution_with_download(app: dict, tmp_path: Path, mode: str) -> None:
    from gankit.translate import colorize_image, load_rgb01

    rng = np.random.default_rng(2)
    shape = (300, 410) if mode == "L" else (300, 410, 3)
    src = _png(tmp_path, rng.integers(0, 256, shape, dtype=np.uint8))
    shown, download, note = app["client"].predict(
        gradio_client.handle_file(src), api_name=_api(app, "colorize", "colorize")
    )
    assert Image.open(shown).size == (410, 300) and Image.open(download).size == (410, 300)
    ref = colorize_image(app["models"]["colorize"].loaded, load_rgb01(Path(src)))
    expect = (ref[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(download).convert("RGB")), expect)
    assert "410x300 out" in note


def test_a_4000x3000_photo_passes_the_limits(app: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload guards, the full-size PNG and its download at 12 Mpx; the model's cost at that size
    is measured in benchmarks/bench_serve.py (tens of seconds here), so a stand-in colours the photo."""
    seen = []

    def stand_in(loaded: Any, rgb01: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(rgb01.shape))
        return rgb01

    monkeypatch.setattr("gankit.translate.colorize_image", stand_in)
    arr = np.zeros((3000, 4000), dtype=np.uint8)
    arr[:, 2000:] = 200  # compresses to a few kB
    src = _png(tmp_path, arr, "big.png")
    shown, download, _ = app["client"].predict(
        gradio_client.handle_file(src), api_name=_api(app, "colorize", "colorize")
    )
    assert seen == [(1, 3, 3000, 4000)]
    assert Image.open(download).size == (4000, 3000)
    assert np.asarray(Image.open(download))[0, 3999].tolist() == [200, 200, 200]


def test_bad_uploads_are_one_sentence_errors(app: dict, tmp_path: Path) -> None:
    api = _api(app, "colorize", "colorize")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert _error(app, gradio_client.handle_file(str(text)), api_name=api) == "notes.png: not an image"
    # a decompression bomb: 5000x5000 declared, a few kB of file; refused from the header
    bomb = _png(tmp_path, np.zeros((5000, 5000), dtype=np.uint8), "bomb.png")
    assert os.path.getsize(bomb) < 100_000
    msg = _error(app, gradio_client.handle_file(bomb), api_name=api)
    assert msg.startswith("bomb.png is 5000x5000 (25.0 megapixels)") and "16.8 megapixels" in msg
    assert "\n" not in msg and "Traceback" not in msg
    tiny = _png(tmp_path, np.zeros((4, 4, 3), dtype=np.uint8), "tiny.png")
    assert "too small" in _error(app, gradio_client.handle_file(tiny), api_name=api)
    assert "upload an image first" in _error(app, None, api_name=api)


def test_bad_numbers_are_refused(app: dict) -> None:
    api = _api(app, "gan", "grid")
    assert "samples must be a whole number from 1 to 64" in _error(app, 0, 65, api_name=api)
    assert "seed must be a whole number" in _error(app, 1.5, 4, api_name=api)
    assert "steps must be a whole number from 2 to 16" in _error(app, 0, 1, 40, api_name=_api(app, "gan", "walk"))


def test_uploads_limited_in_bytes(app: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sv, "MAX_UPLOAD_BYTES", 1000)
    src = _png(tmp_path, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert "uploads are limited to 0 MB" in _error(
        app, gradio_client.handle_file(src), api_name=_api(app, "pix2pix", "translate")
    )


def test_translate_refuses_an_image_over_the_memory_limit(
    app: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gankit.translate.default_memory_limit", lambda device: 1e6)
    src = _png(tmp_path, np.zeros((300, 400, 3), dtype=np.uint8))
    msg = _error(app, gradio_client.handle_file(src), api_name=_api(app, "pix2pix", "translate"))
    assert msg.startswith("a 400x300 image needs about") and "over the 0.0 GB one request may use" in msg


def test_no_file_outside_the_outputs_is_served(app: dict, runs: dict[str, Path]) -> None:
    import urllib.error
    import urllib.request

    base = f"http://127.0.0.1:{app['port']}/gradio_api/file="
    for path in (runs["gan"] / "config.yaml", runs["gan"] / "checkpoints" / "G_last.pt", Path("/etc/passwd")):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + str(path.resolve()), timeout=10)
        assert info.value.code == 403
    # nor can a request hand the model a file that was not uploaded (raw HTTP: the client would upload it)
    url = f"http://127.0.0.1:{app['port']}/gradio_api/call/run4_colorize"
    body = json.dumps({"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=10).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}/{event}", timeout=30).read().decode()
    assert "event: error" in stream and "root:" not in stream


def test_one_call_at_a_time_per_run(app: dict) -> None:
    deps = app["blocks"].fns.values()
    for i in range(len(FAMILIES)):
        mine = [d for d in deps if d.concurrency_id == f"run{i}"]
        assert mine and all(d.concurrency_limit == 1 for d in mine)


def test_reload_picks_up_a_newer_snapshot(app: dict, runs: dict[str, Path], tmp_path: Path) -> None:
    from gankit.training.checkpoint import atomic_save, safe_load

    rm = app["models"]["gan"]
    snap = runs["gan"] / "checkpoints" / "G_last.pt"
    state = safe_load(snap)
    before = {k: v.clone() for k, v in rm.loaded.G.state_dict().items()}
    try:
        state["step"] = 99
        state["G"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["G"].items()}
        atomic_save(state, snap)
        text = app["client"].predict(api_name=_api(app, "gan", "reload"))
        assert "step **99**" in text
        after = rm.loaded.G.state_dict()
        assert not all(torch.equal(before[k], after[k]) for k in before)
    finally:
        state["step"] = 1
        state["G"] = {k: v - 1 if v.is_floating_point() else v for k, v in state["G"].items()}
        atomic_save(state, snap)
        rm.reload()


def test_host_and_share_defaults_are_safe() -> None:
    from gankit.cli import build_parser

    args = build_parser().parse_args(["serve", "RUN"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)


def test_without_gradio_serve_says_what_to_install(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gankit.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main(["serve", str(runs["gan"])]) == 2
    assert capsys.readouterr().err == "gankit serve: error: gankit serve needs gradio: pip install 'gankit[demo]'\n"


def test_cli_stays_free_of_gradio_and_torch() -> None:
    code = "import sys, gankit.cli; print(sorted(m for m in ('torch', 'gradio') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "[]"
