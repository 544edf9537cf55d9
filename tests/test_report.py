"""``gankit report``: the HTML page of a run is self-contained, shows what the run folder holds,
says what is missing, and works in a real (headless Chromium) browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FakePairedSet, fake_paired_for, make_tiny_cfg, write_idx_dataset

import gankit
from gankit.cli import main
from gankit.evaluate import evaluate
from gankit.report import write_report
from gankit.training.loop import train
from gankit.training.stats import read_jsonl


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    return p


def quiet(msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pytest.MonkeyPatch]:
    """The isolation of conftest's autouse fixture, for the module-scoped runs below."""
    root = tmp_path_factory.mktemp("report_env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_DATA", str(root / "data"))
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        mp.setenv("MPLCONFIGDIR", str(root / "mpl"))
        mp.setattr("gankit.data.mnist.download", lambda name: pytest.fail(f"tried to download {name}"))
        mp.setattr("gankit.training.loop.plot_losses", lambda *a, **k: None)  # loss.png: not the report's input
        yield mp


@pytest.fixture(scope="module")
def gan_run(env: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch MLP GAN on tiny IDX data (no eval yet)."""
    tmp = tmp_path_factory.mktemp("gan")
    write_idx_dataset(tmp / "tiny_idx", n_train=60)
    cfg = make_tiny_cfg("gan", tmp, **{"train.epochs": 2, "train.log_every": 1})
    train(cfg, tmp / "run", log=quiet)
    return tmp / "run"


@pytest.fixture(scope="module")
def pix2pix_run(env: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A 2-epoch tiny pix2pix on fake pairs (8 val images), evaluated once; returns (run, val set)."""
    tmp = tmp_path_factory.mktemp("pix2pix")
    (tmp / "pairs").mkdir()
    cfg = make_tiny_cfg(
        "pix2pix",
        tmp,
        **{"train.epochs": 2, "optim.decay_epochs": 0, "data.name": "aligned", "data.path": str(tmp / "pairs")},
    )
    sets = {"train": fake_paired_for(cfg, 8), "val": FakePairedSet(8, 3, 3, cfg.data.resolution, seed=1)}
    fake = lambda data_cfg, split="train", **kw: sets[split]  # noqa: E731
    env.setattr("gankit.training.loop.build_dataset", fake)
    env.setattr("gankit.evaluate.build_dataset", fake)
    env.setattr("gankit.report.build_dataset", fake)
    train(cfg, tmp / "run", log=quiet)
    evaluate(tmp / "run", metrics=["l1", "psnr", "ssim"], device="cpu", log=quiet)
    return tmp / "run", sets["val"]


def _report(run: Path, name: str = "report.html", **kw: Any) -> tuple[str, _Tags]:
    out = write_report(run, run.parent / name, overwrite=True, device="cpu", log=quiet, **kw)
    page = out.read_text()
    return page, parse(page)


def assert_self_contained(page: str, tags: _Tags) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    for tag, attrs in tags.tags:
        assert tag not in ("iframe", "object", "embed")
        if tag == "script":
            assert "src" not in attrs  # inline only
        if tag == "link":
            assert attrs["href"].startswith("data:")
        if tag == "img":
            assert attrs["src"].startswith("data:image/"), attrs["src"][:40]
    assert "default-src 'none'" in page  # the CSP forbids any request


def grid_images(tags: _Tags) -> list[dict[str, str]]:
    return [a for t, a in tags.tags if t == "img" and "data-label" in a]


def decoded(uri: str) -> bytes:
    return base64.b64decode(uri.split(",", 1)[1])


def test_noise_report_is_self_contained_and_shows_the_run(gan_run: Path) -> None:
    page, tags = _report(gan_run)
    assert_self_contained(page, tags)
    text = " ".join(" ".join(tags.text).split())
    rec = json.loads((gan_run / "run.json").read_text())
    metrics = read_jsonl(gan_run / "metrics.jsonl")
    last_step = read_jsonl(gan_run / "stats.jsonl")[-1]["step"]
    for expected in (
        "family gan",
        "preset gan",
        "fashion-mnist",
        f"{rec['dataset']['train_images']} train",
        f"steps {last_step}",
        "epochs 2 of 2",
        "device cpu",
        f"gankit {gankit.__version__}, torch {torch.__version__}",
        rec["started"].replace("T", " "),
    ):
        assert expected in text, expected
    wall = sum(r["seconds"] for r in metrics)
    assert f"{wall:.1f} s of training" in text
    # every epoch's grid, in order, embedded byte for byte, behind the slider
    grids = grid_images(tags)
    files = sorted((gan_run / "samples").glob("epoch_*.png"))
    assert len(files) == 2 and len(grids) == 2
    assert [decoded(g["src"]) for g in grids] == [f.read_bytes() for f in files]
    assert [g["data-label"] for g in grids] == [f"epoch {r['epoch']}, step {r['step']}" for r in metrics]
    slider = next(a for t, a in tags.tags if t == "input" and a.get("id") == "grid-slider")
    assert (slider["type"], slider["min"], slider["max"]) == ("range", "0", "1")
    # losses plotted with their meaning; no eval yet, and it says how to get one
    assert "neither lower nor higher is better" in page
    assert text.count(f"not computed yet — run gankit eval {gan_run}") == 2  # eval curves and final table
    assert "no validation split" in text
    assert "Best and worst" not in text


def test_paired_report_shows_val_eval_and_best_worst(pix2pix_run: tuple[Path, Any]) -> None:
    run, val = pix2pix_run
    page, tags = _report(run)
    assert_self_contained(page, tags)
    text = " ".join(" ".join(tags.text).split())
    titles = [a["title"] for t, a in tags.tags if t == "img" and "title" in a]
    for t in ("val_l1 (lower is better)", "val_psnr (higher is better)", "val_ssim (higher is better)"):
        assert t in titles
    for t in ("l1 (lower is better)", "psnr (higher is better)", "g_l1 (lower is better)"):
        assert t in titles
    # the final eval table is the last eval.jsonl row
    row = read_jsonl(run / "eval.jsonl")[-1]
    assert f"l1 {row['l1']:.4g} lower is better" in text
    assert f"psnr {row['psnr']:.4g} higher is better" in text
    assert len(grid_images(tags)) == len(list((run / "samples").glob("*.png"))) == 2

    # best/worst: 3 + 3 triplets, ordered by an L1 that agrees with the run's own validation
    captions = re.findall(r"<figcaption>([^<]*): L1 ([0-9.]+)</figcaption>", page)
    assert len(captions) == 6
    best, worst = [float(v) for _, v in captions[:3]], [float(v) for _, v in captions[3:]]
    assert best == sorted(best) and worst == sorted(worst, reverse=True) and max(best) <= min(worst)
    assert len({n for n, _ in captions}) == 6  # no example shown twice
    mean = float(re.search(r"mean ([0-9.]+); the last epoch's validation gave val_l1 ([0-9.]+)", text).group(1))
    assert mean == pytest.approx(read_jsonl(run / "metrics.jsonl")[-1]["val_l1"], abs=2e-4)
    for fig_id in ("examples-best", "examples-worst"):
        section = page.split(f'id="{fig_id}"')[1].split("</div>")[0]
        assert section.count('<img src="data:image/png;base64,') == 3


def test_paired_report_without_the_data_says_so(pix2pix_run: tuple[Path, Any], tmp_path: Path) -> None:
    run, _ = pix2pix_run
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    cfg = (moved / "config.yaml").read_text()
    path = re.search(r"\n  path: (.*)\n", cfg).group(1)
    (moved / "config.yaml").write_text(cfg.replace(f"path: {path}", f"path: {tmp_path / 'gone'}"))
    page, tags = _report(moved)
    assert_self_contained(page, tags)
    assert f"Best and worst examples not shown: the val data are not at {tmp_path / 'gone'}" in page
    assert "examples-best" not in page
    assert len(grid_images(tags)) == 2  # the rest of the report is all there


def test_cli_errors_and_no_overwrite(gan_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(gan_run, run)
    (run / "report.html").unlink(missing_ok=True)
    assert main(["report", str(run), "--device", "cpu"]) == 0
    first = (run / "report.html").read_bytes()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gankit report: error: {run / 'report.html'} already exists; pass --overwrite to replace it, or --out NEW.html"
    )
    assert (run / "report.html").read_bytes() == first
    assert main(["report", str(run), "--overwrite", "--device", "cpu"]) == 0
    for bad, why in (
        (tmp_path, "not a gankit run folder"),
        (run / "config.yaml", "is a file"),
        (tmp_path / "x", "no such"),
    ):
        capsys.readouterr()
        assert main(["report", str(bad)]) == 1  # an input that cannot be used (README, Exit codes)
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1


def test_a_run_with_only_its_config_is_reported_as_not_computed(gan_run: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(gan_run / "config.yaml", bare / "config.yaml")
    page, tags = _report(bare)
    text = " ".join(" ".join(tags.text).split())
    assert "wall time not recorded" in text and "No losses logged yet" in text and "No sample grids" in text
    assert "not computed yet — run gankit eval" in text


# ----------------------------------------------------------------------------- real browser


def _chrome() -> tuple[str, str]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    del webdriver
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    return browser, driver


def test_report_in_headless_chromium(pix2pix_run: tuple[Path, Any], tmp_path: Path) -> None:
    browser, driver_path = _chrome()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run, _ = pix2pix_run
    out = write_report(run, tmp_path / "report.html", device="cpu", log=quiet)
    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(out.as_uri())
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
        widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) >= 2 + 6 + 6 and all(w > 0 for w in widths)  # grids, examples, plots
        visible = "return Array.from(document.querySelectorAll('#grids img')).map(i => !i.hidden)"
        assert driver.execute_script(visible) == [False, True]  # the last epoch is shown first
        label = driver.find_element(By.ID, "grid-label").text
        driver.find_element(By.ID, "grid-slider").send_keys(Keys.ARROW_LEFT)
        assert driver.execute_script(visible) == [True, False]
        assert driver.find_element(By.ID, "grid-label").text != label
        assert driver.find_element(By.ID, "grid-label").text.startswith("epoch 1")
        shown = driver.execute_script(
            "return document.querySelector('#grids img:not([hidden])').getBoundingClientRect().height"
        )
        assert shown > 0
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()


def test_large_grids_are_embedded_as_jpeg_and_the_report_says_so(
    gan_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gankit.report.MAX_EMBEDDED_GRID_MB", 0.0)
    page, tags = _report(gan_run, "jpeg.html")
    grids = grid_images(tags)
    assert len(grids) == 2 and all(g["src"].startswith("data:image/jpeg;base64,") for g in grids)
    assert decoded(grids[0]["src"])[:2] == b"\xff\xd8"  # really JPEG
    assert "are embedded as JPEG (quality 90)" in page and str(gan_run / "samples") in page


def test_colorize_report_shows_lab_examples(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    cfg = make_tiny_cfg(
        "colorize", tmp_path, **{"train.epochs": 1, "optim.decay_epochs": 0, "data.path": str(tmp_path / "photos")}
    )
    sets = {"train": fake_paired_for(cfg, 4), "val": FakePairedSet(4, 1, 2, cfg.data.resolution, space="lab", seed=2)}
    with pytest.MonkeyPatch.context() as mp:
        fake = lambda data_cfg, split="train", **kw: sets[split]  # noqa: E731
        mp.setattr("gankit.training.loop.build_dataset", fake)
        mp.setattr("gankit.report.build_dataset", fake)
        train(cfg, tmp_path / "run", log=quiet)
        page, tags = _report(tmp_path / "run")
    assert_self_contained(page, tags)
    captions = re.findall(r"<figcaption>([^<]*): L1 ([0-9.]+)</figcaption>", page)
    assert len(captions) == 4  # 3 best, and the one image left for the worst
    mean = float(re.search(r"mean ([0-9.]+);", page).group(1))
    assert mean == pytest.approx(read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["val_l1"], abs=2e-4)
