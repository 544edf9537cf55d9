"""``gankit serve`` in a real browser: headless Chromium (Debian's chromium + chromium-driver) via selenium.

The test starts the real CLI on a free port with five tiny runs, checks that the noise tabs show their
panels as soon as the page has loaded, presses "new seed" in them, uploads images in the pix2pix and
colorize tabs, waits for each output image, checks its size, and saves a screenshot of every tab (to
``$GANKIT_SCREENSHOTS`` if set, e.g. ``docs``; else a temp folder).
A machine without the browser or the driver skips with a reason; CI installs both (``.ci/run``).

README's screenshots come from trained runs: with ``$GANKIT_SCREENSHOT_RUNS`` set to the folder
``benchmarks/results.py`` trained (``gan-s0`` ... ``colorize-s0``), those runs are served instead, and
the uploads are real inputs from each run's own test split (a facades label map, a BSDS500 photo in
grayscale at its own size)::

    GANKIT_SCREENSHOT_RUNS=runs/results GANKIT_SCREENSHOTS=docs GANKIT_REQUIRE_BROWSER=1 \
        python -m pytest -q -p no:cacheprovider tests/test_serve_browser.py tests/test_report.py -k chromium
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SCREENSHOT_RUNS, subprocess_env, trained_run
from PIL import Image
from test_serve import FAMILIES, free_port, make_runs

pytest.importorskip("gradio", reason="gankit serve needs gradio (pip install 'gankit[demo]')")
selenium = pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no headless browser: apt-get install chromium chromium-driver (CI's .ci/run does)",
)
WAIT = 120  # seconds for the server and for each model call on a busy CI machine


def served_runs(root: Path) -> dict[str, Path]:
    """The trained runs of ``$GANKIT_SCREENSHOT_RUNS`` if set, else tiny runs trained under ``root``."""
    if SCREENSHOT_RUNS:
        return {f: trained_run(f) for f in FAMILIES}  # type: ignore[misc]
    return make_runs(root)


def input_from_test_split(run: Path, folder: Path) -> Path:
    """An input from the test split of ``run``'s own data, found where the run recorded them, as a PNG
    in ``folder``: for pix2pix the first label map as training saw it; for colorize the most colourful
    photo (so that the screenshot shows whether colour comes back), the file itself at its own size
    (not squashed to the model's square), in grayscale."""
    from gankit.data import build_dataset
    from gankit.data.base import to_uint8
    from gankit.data.colorization import load_colorization
    from gankit.metrics.colorfulness import colorfulness
    from gankit.run import RunFolder
    from gankit.rundata import run_data
    from gankit.visualize import save_png

    rf = RunFolder.at(run)
    cfg = rf.load_config(log=lambda s: None)
    data_cfg, why = run_data(rf.read_record(), cfg.data).local_config()
    if data_cfg is None:
        pytest.fail(f"{run}: {why}")
    path = folder / f"{run.name}-test0.png"
    if cfg.family == "colorize":  # its names are relative to the split's folder, its info.source
        photos = load_colorization(data_cfg.path, "test", resolution=data_cfg.resolution, log=lambda s: None)
        scores = [colorfulness(p[None] / 255.0).item() for p in photos.store.pixels]
        best = photos.names[scores.index(max(scores))]
        Image.open(Path(photos.info.source) / best).convert("L").save(path)
    else:
        pairs = build_dataset(data_cfg, "test", log=lambda s: None)
        save_png(to_uint8(pairs.batch(torch.arange(1), device=torch.device("cpu"))["input"][0]), path)
    return path


def made_up_inputs(folder: Path) -> dict[str, Path]:
    """Inputs for the tiny runs: a 200x180 label map of random facade colours, a 300x220 gray ramp."""
    from gankit.data.facades import CMP_PALETTE

    colours = np.array(list(CMP_PALETTE.values()), dtype=np.uint8)
    labels = colours[np.random.default_rng(0).integers(0, 12, (6, 5))].repeat(30, 0).repeat(40, 1)
    Image.fromarray(labels).save(folder / "labels.png")
    gray = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (220, 1))
    Image.fromarray(gray, mode="L").save(folder / "gray.png")
    return {"pix2pix": folder / "labels.png", "colorize": folder / "gray.png"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: Path):
    """``(url, runs, uploads)``: the page of ``gankit serve`` on the five runs, and the images to upload."""
    runs = served_runs(tmp_path_factory.getbasetemp() / "serve-runs")
    tmp = tmp_path_factory.mktemp("serve-cli")
    env = subprocess_env(tmp, mpl_config_dir) | {"GRADIO_ANALYTICS_ENABLED": "False"}
    if SCREENSHOT_RUNS:
        with pytest.MonkeyPatch.context() as mp:  # the server's data caches: built once, here
            for key in ("GANKIT_DATA", "XDG_CACHE_HOME"):
                mp.setenv(key, env[key])
            uploads = {f: input_from_test_split(runs[f], tmp) for f in ("pix2pix", "colorize")}
    else:
        uploads = made_up_inputs(tmp)
    port = free_port()
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 -- closed below
    cmd = [sys.executable, "-m", "gankit", "serve", *(str(runs[f]) for f in FAMILIES), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + WAIT
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.close()
                pytest.fail(f"gankit serve did not start: {(tmp / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, runs, uploads
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1100",
    ):
        opts.add_argument(arg)
    os.environ["SE_OFFLINE"] = "true"  # selenium must not look for a driver online
    try:
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    except Exception as e:  # noqa: BLE001 -- a broken browser install is a skip, with its reason
        pytest.skip(f"headless chromium would not start: {str(e).splitlines()[0]}")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("GANKIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open_tab(driver, run: Path, family: str) -> None:
    """Click the tab of ``run``: its label is the run folder's name and the family."""
    tab = WebDriverWait(driver, WAIT).until(
        lambda d: next(
            (b for b in d.find_elements(By.CSS_SELECTOR, "button[role='tab']") if b.text == f"{run.name} ({family})"),
            None,
        )
    )
    tab.click()


def _output_size(driver, elem_id: str, previous: str | None = None) -> tuple[int, int, str]:
    """Wait until the image of ``#elem_id`` is loaded (and differs from ``previous``); its natural size and src."""

    def ready(d):
        for img in d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img"):
            src = img.get_attribute("src") or ""
            w = d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
            if src and src != previous and w:
                return int(w), int(d.execute_script("return arguments[0].naturalHeight", img)), src
        return None

    return WebDriverWait(driver, WAIT).until(ready)


def _upload(driver, elem_id: str, path: Path) -> None:
    field = WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type='file']")
    )
    field.send_keys(str(path))
    # the upload shows a preview before the button may be pressed
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img"))


FACADE_DRAWING = [
    (4, 4, [[(10, 16), (246, 16)]]),  # cornice
    (2, 11, [[(x, y), (x, y + 30)] for y in (44, 104, 164) for x in (40, 98, 158, 216)]),  # windows
    (3, 14, [[(128, 214), (128, 244)]]),  # door
    (11, 14, [[(24, 228), (76, 228)], [(180, 228), (232, 228)]]),  # shop windows
]
"""A facade for the 256x256 canvas: (label colour's index in CMP_PALETTE, brush size, strokes as points)."""


def _draw(driver, elem_id: str, drawing: list) -> None:
    """Draw ``drawing`` on the gradio ImageEditor ``#elem_id`` with its own colour swatches and brush size."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def find(css: str) -> list:  # the editor draws its toolbar and pop-ups a moment after it shows or a click
        return WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} {css}"))

    canvas = find("canvas")[0]
    zoom = WebDriverWait(driver, WAIT).until(  # the editor's zoom label, e.g. "113%": canvas -> page pixels
        lambda d: d.execute_script(
            f"return Array.from(document.querySelectorAll('#{elem_id} *'))"
            ".map(e => e.textContent.trim()).find(t => /^[0-9]+%$/.test(t))"
        )
    )
    scale = int(zoom[:-1]) / 100

    def tool(label: str) -> None:
        find(f"button[aria-label='{label}']")[0].click()

    def page(x: float, y: float) -> tuple[int, int]:  # offset from the canvas element's centre
        return round((x - 128) * scale), round((y - 128) * scale)

    for colour, size, strokes in drawing:
        tool("Color")
        find("menu.swatch button")[colour].click()
        tool("Color")
        tool("Brush Size")
        slider = find("input[type='range']")[0]
        steps = int(slider.get_attribute("value")) - size
        slider.send_keys(*[Keys.ARROW_LEFT if steps > 0 else Keys.ARROW_RIGHT] * abs(steps))
        tool("Brush Size")
        for (x0, y0), (x1, y1) in strokes:
            chain = ActionChains(driver).move_to_element_with_offset(canvas, *page(x0, y0)).click_and_hold()
            (ax, ay), (bx, by) = page(x0, y0), page(x1, y1)
            for _ in range(4):  # in steps, so the brush paints a line rather than two dots
                chain = chain.move_by_offset((bx - ax) // 4, (by - ay) // 4)
            chain.release().perform()


def _shot(driver, folder: Path, family: str) -> Path:
    """Save the page as ``serve_<family>.png``, once no error toast is shown."""
    errors = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body'].error")]
    assert errors == [], f"{family}: the page shows an error: {errors}"
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 900), 2000))
    time.sleep(0.5)
    path = folder / f"serve_{family}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1100)
    return path


def test_pages_in_headless_chromium(server, browser, shots: Path) -> None:
    url, runs, uploads = server
    browser.get(url)
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[role='tab']"))
    assert browser.title == "gankit serve"

    # gan: the page opens with the grid of seed 0, no click needed (as the README's screenshot shows)
    _open_tab(browser, runs["gan"], "gan")
    w, h, on_load = _output_size(browser, "run0-grid")
    assert (w, h) == (3 * (8 * 30 + 2), 3 * (2 * 30 + 2) + 24)
    assert "--seed 0 " in browser.find_element(By.ID, "run0-how").text
    assert _output_size(browser, "run0-walk-strip")[:2] == (3 * (8 * 30 + 2), 3 * 32 + 24)  # 8 frames, seed 0 -> 1
    # "new seed" shows another grid and the seed it drew
    browser.find_element(By.ID, "run0-new-seed").click()
    w, h, first = _output_size(browser, "run0-grid", previous=on_load)
    # 16 samples of 28 px in 2 rows of 8 (2 px padding), upscaled x3 to >= 512 px, plus a 24 px caption
    assert (w, h) == (3 * (8 * 30 + 2), 3 * (2 * 30 + 2) + 24)
    seed = browser.find_element(By.CSS_SELECTOR, "#run0-seed input").get_attribute("value")
    assert f"--seed {seed} " in browser.find_element(By.ID, "run0-how").text
    browser.find_element(By.ID, "run0-walk").click()
    _shot(browser, shots, "gan")

    # cgan and dcgan: the same buttons on their own tabs
    for i, family in ((1, "cgan"), (2, "dcgan")):
        _open_tab(browser, runs[family], family)
        _, _, on_load = _output_size(browser, f"run{i}-grid")  # shown before any click
        if family == "cgan":
            _output_size(browser, "run1-classes")  # the class-by-seed grid too
        browser.find_element(By.ID, f"run{i}-new-seed").click()
        _output_size(browser, f"run{i}-grid", previous=on_load)
        _shot(browser, shots, family)

    # pix2pix: upload a label map, get a photo of its size
    _open_tab(browser, runs["pix2pix"], "pix2pix")
    _upload(browser, "run3-upload", uploads["pix2pix"])
    browser.find_element(By.ID, "run3-translate").click()
    w, h, uploaded = _output_size(browser, "run3-photo")
    assert (w, h) == Image.open(uploads["pix2pix"]).size
    _shot(browser, shots, "pix2pix")
    # the drawing canvas (256x256, all facade to start with; a drawn facade for trained runs) gives a 256x256 photo
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role='tab']") if b.text == "draw one").click()
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run3-canvas canvas"))
    if SCREENSHOT_RUNS:  # README's screenshot shows a drawn facade (~1 min of strokes in software rendering)
        _draw(browser, "run3-canvas", FACADE_DRAWING)
    browser.find_element(By.ID, "run3-translate-drawing").click()
    assert _output_size(browser, "run3-photo", previous=uploaded)[:2] == (256, 256)
    _shot(browser, shots, "pix2pix_draw")

    # colorize: upload a grayscale photo, get it in colour at full size
    _open_tab(browser, runs["colorize"], "colorize")
    _upload(browser, "run4-upload", uploads["colorize"])
    browser.find_element(By.ID, "run4-colorize").click()
    assert _output_size(browser, "run4-result")[:2] == Image.open(uploads["colorize"]).size
    _shot(browser, shots, "colorize")
    for family in FAMILIES:
        assert Image.open(shots / f"serve_{family}.png").width >= 1000
