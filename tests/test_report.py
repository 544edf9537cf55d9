"""``gankit report``: the HTML page of a run is self-contained, shows what the run folder holds,
says what is missing, and works in a real (headless Chromium) browser."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import (
    GANKIT,
    FakePairedSet,
    fake_paired_for,
    make_tiny_cfg,
    quiet,
    subprocess_env,
    trained_run,
    write_idx_dataset,
)
from PIL import Image

import gankit
from gankit.cli import main
from gankit.data import build_dataset
from gankit.evaluate import evaluate
from gankit.launch import train
from gankit.report import loss_plots, metric_plots, write_report
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


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pytest.MonkeyPatch]:
    """The isolation of conftest's autouse fixture, for the module-scoped runs below."""
    root = tmp_path_factory.mktemp("report_env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_DATA", str(root / "data"))
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        mp.setenv("MPLCONFIGDIR", str(root / "mpl"))
        mp.setattr("gankit.data.mnist.download", lambda name: pytest.fail(f"tried to download {name}"))
        mp.setattr("gankit.training.callbacks.plot_losses", lambda *a, **k: None)  # loss.png: not the report's input
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

    def fake(data_cfg: Any, split: str = "train", **kw: Any) -> Any:  # the module's other runs keep their data
        return sets[split] if data_cfg.path == str(tmp / "pairs") else build_dataset(data_cfg, split, **kw)

    env.setattr("gankit.training.loop.build_dataset", fake)
    env.setattr("gankit.evaluate.build_dataset", fake)
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


def test_speed_keeps_two_significant_digits(gan_run: Path, tmp_path: Path) -> None:
    from gankit.charts import significant

    assert [significant(x) for x in (0.5, 0.049, 9.96, 12.3, 1234, 0)] == ["0.50", "0.049", "10", "12", "1,200", "0"]
    run = tmp_path / "run"
    shutil.copytree(gan_run, run)
    rows = read_jsonl(run / "metrics.jsonl")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r | {"images_per_s": 0.5}) + "\n" for r in rows))
    _, tags = _report(run)
    assert "speed 0.50 img/s (mean over epochs)" in " ".join(" ".join(tags.text).split())  # not "0 img/s"


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
    res = val.inputs.shape[-1]
    for fig_id in ("examples-best", "examples-worst"):
        section = page.split(f'id="{fig_id}"')[1].split("</figure></div>")[0]
        assert section.count('<img src="data:image/png;base64,') == 3
        # the column labels are page text (legible at any size), not pixels drawn into the thumbnail
        figures = section.split("<figure>")[1:]
        assert all(re.findall(r"<span>(\w+)</span>", f) == ["input", "output", "target"] for f in figures)
        for uri in re.findall(r'<img src="(data:image/png;base64,[^"]+)"', section):
            w, h = Image.open(io.BytesIO(decoded(uri))).size
            factor = w // (3 * res + 8)  # three cells and padding 2, upscaled by a whole factor
            assert (w, h) == ((3 * res + 8) * factor, (res + 4) * factor) and w >= 2 * 384


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


REPORT_SHOTS = {"pix2pix": "report.png", "gan": "report_gan.png"}
"""The screenshot of the page down to its config tables that each family's browser test saves to
``$GANKIT_SCREENSHOTS`` when set. README shows the pix2pix one: it has every section of a report,
the best and worst val examples too."""
MIN_CHARTS = {"pix2pix": 6, "gan": 1}
"""Charts every report of the family shows: pix2pix 3 loss panels and val L1/PSNR/SSIM; gan its losses."""


def _report_page(family: str, request: pytest.FixtureRequest, tmp_path: Path, mpl_config_dir: Path) -> Path:
    """The report page of the ``family`` run the browser test opens: of the trained run in
    ``$GANKIT_SCREENSHOT_RUNS`` (README's screenshot) by the real ``gankit report``, in a process of its
    own (this module's fake val sets stay out of it); else of this module's tiny run."""
    trained = trained_run(family)
    out = tmp_path / "report.html"
    if trained is not None:
        cmd = [*GANKIT, "report", str(trained), "--out", str(out)]
        done = subprocess.run(cmd, env=subprocess_env(tmp_path, mpl_config_dir), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return out
    run = request.getfixturevalue("pix2pix_run")[0] if family == "pix2pix" else request.getfixturevalue("gan_run")
    return write_report(run, out, device="cpu", log=quiet)


@pytest.mark.parametrize("family", ["pix2pix", "gan"])
def test_report_in_headless_chromium(
    family: str, request: pytest.FixtureRequest, tmp_path: Path, mpl_config_dir: Path
) -> None:
    """The page works in Chromium: every image loads, the grid slider steps back an epoch, the examples'
    labels are readable. With ``$GANKIT_SCREENSHOTS`` set, a screenshot of the page is saved there
    (:data:`REPORT_SHOTS`); README's comes from a trained run (see :data:`conftest.SCREENSHOT_RUNS`)::

        GANKIT_SCREENSHOT_RUNS=runs/results GANKIT_SCREENSHOTS=docs python -m pytest tests/test_report.py -k chromium
    """
    browser, driver_path = _chrome()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out = _report_page(family, request, tmp_path, mpl_config_dir)
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
        grids = driver.execute_script("return Array.from(document.querySelectorAll('#grids img')).map(i => i.alt)")
        n_examples = 6 if family == "pix2pix" else 0  # the 3 best and 3 worst
        widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) >= len(grids) + n_examples + MIN_CHARTS[family] and all(w > 0 for w in widths)
        visible = "return Array.from(document.querySelectorAll('#grids img')).map(i => !i.hidden)"
        assert driver.execute_script(visible) == [False] * (len(grids) - 1) + [True]  # the last epoch first
        if trained_run(family) is None:  # the tiny runs train 2 epochs: the slider has somewhere to go
            assert len(grids) == 2 and grids[0].startswith("epoch 1")
        if len(grids) > 1:
            label = driver.find_element(By.ID, "grid-label").text
            driver.find_element(By.ID, "grid-slider").send_keys(Keys.ARROW_LEFT)
            assert driver.execute_script(visible) == [False] * (len(grids) - 2) + [True, False]
            assert driver.find_element(By.ID, "grid-label").text != label
            assert driver.find_element(By.ID, "grid-label").text.startswith(grids[-2])
        shown = driver.execute_script(
            "return document.querySelector('#grids img:not([hidden])').getBoundingClientRect().height"
        )
        assert shown >= 100  # drawn at a readable size, not collapsed
        # the best/worst labels: page text of at least 12 px over each 384 px thumbnail (the labels drawn into
        # a 776 px facade triplet shrank to ~6 px there)
        labels = driver.execute_script(
            "return Array.from(document.querySelectorAll('.examples figure')).map(f => {"
            "  const row = f.querySelector('.columns'), img = f.querySelector('img');"
            "  const width = e => e.getBoundingClientRect().width;"
            "  const size = s => [s.textContent, parseFloat(getComputedStyle(s).fontSize), s.offsetHeight];"
            "  return row && [Array.from(row.children).map(size), width(row), width(img)];"
            "})"
        )
        assert len(labels) == n_examples and all(labels)
        for spans, row_width, img_width in labels:
            assert [t for t, _, _ in spans] == ["input", "output", "target"]
            assert row_width == img_width == 384
            assert all(size >= 12 and height >= size and size >= 0.09 * img_width / 3 for _, size, height in spans)
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        if os.environ.get("GANKIT_SCREENSHOTS"):
            folder = Path(os.environ["GANKIT_SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            if len(grids) > 1:  # the last epoch again, as the page opens
                driver.find_element(By.ID, "grid-slider").send_keys(Keys.ARROW_RIGHT)
                assert driver.execute_script(visible)[-1]
                driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
            width, height = driver.execute_script(
                "return [document.documentElement.clientWidth,"
                " document.getElementById('config').getBoundingClientRect().top + window.scrollY]"
            )
            clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            png = driver.execute_cdp_cmd("Page.captureScreenshot", {"clip": clip, "captureBeyondViewport": True})
            (folder / REPORT_SHOTS[family]).write_bytes(base64.b64decode(png["data"]))
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
        mp.setattr("gankit.evaluate.build_dataset", fake)  # the report scores its examples through evaluate
        train(cfg, tmp_path / "run", log=quiet)
        page, tags = _report(tmp_path / "run")
    assert_self_contained(page, tags)
    captions = re.findall(r"<figcaption>([^<]*): L1 ([0-9.]+)</figcaption>", page)
    assert len(captions) == 4  # 3 best, and the one image left for the worst
    mean = float(re.search(r"mean ([0-9.]+);", page).group(1))
    assert mean == pytest.approx(read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["val_l1"], abs=2e-4)
    # the MLP fields of config.yaml are not colorize's: its model table leaves them out
    assert not {"z_dim", "g_hidden", "d_hidden", "embed_dim"} & set(_model_table(page))
    assert {"ngf", "ndf", "norm", "n_layers"} <= set(_model_table(page))


# ----------------------------------------------------------------------------- charts and config


@dataclasses.dataclass
class Saved:
    fig: Any
    pixels: np.ndarray
    """RGB as saved."""
    titles: list[tuple[str, Any]]
    """(text, window extent) of each axes title, as drawn."""


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list[Saved]:
    """Every matplotlib figure saved during the test, as it was drawn."""
    from matplotlib.figure import Figure

    saved: list[Saved] = []
    savefig = Figure.savefig

    def spy(fig: Figure, *args: Any, **kwargs: Any) -> None:
        fig.canvas.draw()
        titles = [(ax.get_title(), ax.title.get_window_extent(fig.canvas.get_renderer())) for ax in fig.axes]
        saved.append(Saved(fig, np.asarray(fig.canvas.buffer_rgba())[..., :3].copy(), titles))
        savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def assert_points_drawn(fig: Any, pixels: np.ndarray) -> None:
    """Each single-point series of ``fig`` shows its point in its colour, and its value as a y tick."""
    from matplotlib.colors import to_rgb

    for ax in fig.axes:
        values = []
        for line in ax.get_lines():
            (x,), (y,) = line.get_xdata(), line.get_ydata()
            values.append(y)
            px, py = ax.transData.transform((x, y))
            row, col = int(round(fig.bbox.height - py)), int(round(px))
            patch = pixels[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3).astype(int)
            colour = np.array(to_rgb(line.get_color())) * 255
            assert np.abs(patch - colour).max(1).min() < 40, (ax.get_title(), line.get_label())
        assert list(ax.get_xticks()) == [x]  # not 29.90 ... 30.10
        assert sorted(ax.get_yticks()) == sorted(values)  # not a tick every 0.5 around one value
        assert [t.get_text() for t in ax.get_yticklabels()] == [f"{v:.4g}" for v in sorted(values)]


def test_one_logged_point_is_drawn_with_its_value(saved_figures: list[Saved]) -> None:
    """A 2-3 step run logs one row: each loss panel shows that point, at its step and value."""
    row = {"step": 30, "epoch": 1, "d_loss": 1.25, "g_adv": 0.75, "g_l1": 0.31, "g_loss": 31.75}
    assert len(loss_plots([row])) == 3
    metric_plots([{"step": 30, "val_l1": 0.4, "val_psnr": 30.0}], ["val_l1", "val_psnr"])
    assert len(saved_figures) == 5
    for saved in saved_figures[:3]:
        assert_points_drawn(saved.fig, saved.pixels)
    for saved in saved_figures[3:]:
        (ax,) = saved.fig.axes
        assert list(ax.get_xticks()) == [30] and len(ax.get_yticks()) == 1


def test_titles_lie_inside_their_figures(saved_figures: list[Saved]) -> None:
    rows = [{"step": s, "colorfulness": 20.0 + s, "colorfulness_real": 38.5} for s in (100, 200)]
    metric_plots(rows, ["colorfulness", "colorfulness_real"])
    loss_plots([{"step": s, "d_loss": 1.5, "g_adv": 1.25 + s, "g_l1": 0.5, "g_loss": 0.5 + s} for s in (1, 2)])
    assert len(saved_figures) == 4
    for saved in saved_figures:
        ((text, box),) = saved.titles
        figure = saved.fig.bbox
        assert figure.x0 <= box.x0 and box.x1 <= figure.x1 and box.y1 <= figure.y1, text
    assert "colorfulness_real" in saved_figures[0].titles[0][0]  # wrapped, not cut


def _model_table(page: str) -> list[str]:
    table = page.split("<th colspan=2>model</th>")[1].split("</table>")[0]
    return re.findall(r"<tr><td>(\w+)</td>", table)


def test_config_table_lists_only_the_model_fields_the_family_uses(pix2pix_run: tuple[Path, Any], gan_run: Path) -> None:
    page, _ = _report(pix2pix_run[0])
    fields = _model_table(page)
    assert "ngf" in fields and "n_layers" in fields and "d_norm" in fields
    assert not {"z_dim", "g_hidden", "d_hidden", "embed_dim", "d_dropout"} & set(fields)
    assert "also holds 5 that it ignores" in page
    page, _ = _report(gan_run)
    assert {"z_dim", "g_hidden", "d_hidden"} <= set(_model_table(page)) and "ngf" not in _model_table(page)


@pytest.mark.parametrize("family", ["gan", "cgan", "dcgan", "pix2pix", "colorize"])
def test_a_family_declares_the_model_fields_its_builder_reads(family: str) -> None:
    """The report hides the other fields, so the declaration must match what the models are built from."""
    from gankit.config import ModelConfig, make_config
    from gankit.data.base import DataInfo
    from gankit.families import get_family

    seen: set[str] = set()
    names = {f.name for f in dataclasses.fields(ModelConfig)}

    class Recording(ModelConfig):
        def __getattribute__(self, name: str) -> Any:
            if name in names:
                seen.add(name)
            return super().__getattribute__(name)

    cfg = make_config(family)
    small = {"ngf": 4, "ndf": 4, "g_hidden": [8], "d_hidden": [8], "z_dim": 4}
    cfg.model = Recording(**{**dataclasses.asdict(cfg.model), **small})
    seen.clear()
    paired = get_family(family).kind == "paired"
    info = DataInfo(channels=3, resolution=32, num_classes=10 if family == "cgan" else 0, in_channels=3 * paired)
    get_family(family).build(cfg, info)
    assert sorted(seen) == sorted(get_family(family).model_fields)
