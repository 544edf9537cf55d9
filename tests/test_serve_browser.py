"""``gankit serve`` in a real browser: headless Chromium (Debian's chromium + chromium-driver) via selenium.

The test starts the real CLI on a free port with five tiny runs, checks that the noise tabs show their
panels as soon as the page has loaded, presses "new seed" in them, uploads images in the pix2pix and
colorize tabs, waits for each output image, checks its size, and saves a screenshot of every tab (to
``$GANKIT_SCREENSHOTS`` if set, e.g. ``docs``; else a temp folder).
A machine without the browser or the driver skips with a reason; CI installs both (``.ci/run``).
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
from conftest import subprocess_env
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mpl_config_dir: Path):
    runs = make_runs(tmp_path_factory.getbasetemp() / "serve-runs")
    tmp = tmp_path_factory.mktemp("serve-cli")
    port = free_port()
    env = subprocess_env(tmp, mpl_config_dir) | {"GRADIO_ANALYTICS_ENABLED": "False"}
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
    yield url, runs
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


def _open_tab(driver, family: str) -> None:
    tab = WebDriverWait(driver, WAIT).until(
        lambda d: next(
            (b for b in d.find_elements(By.CSS_SELECTOR, "button[role='tab']") if b.text == f"{family} ({family})"),
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


def _shot(driver, folder: Path, family: str) -> Path:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 900), 2000))
    time.sleep(0.5)
    path = folder / f"serve_{family}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1100)
    return path


def test_pages_in_headless_chromium(server, browser, shots: Path, tmp_path: Path) -> None:
    url, runs = server
    browser.get(url)
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[role='tab']"))
    assert browser.title == "gankit serve"

    # gan: the page opens with the grid of seed 0, no click needed (as the README's screenshot shows)
    _open_tab(browser, "gan")
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
        _open_tab(browser, family)
        _, _, on_load = _output_size(browser, f"run{i}-grid")  # shown before any click
        if family == "cgan":
            _output_size(browser, "run1-classes")  # the class-by-seed grid too
        browser.find_element(By.ID, f"run{i}-new-seed").click()
        _output_size(browser, f"run{i}-grid", previous=on_load)
        _shot(browser, shots, family)

    # pix2pix: upload a label map, get a photo of its size
    from gankit.data.facades import CMP_PALETTE

    colours = np.array(list(CMP_PALETTE.values()), dtype=np.uint8)
    labels = colours[np.random.default_rng(0).integers(0, 12, (6, 5))].repeat(30, 0).repeat(40, 1)  # 180x200
    Image.fromarray(labels).save(tmp_path / "labels.png")
    _open_tab(browser, "pix2pix")
    _upload(browser, "run3-upload", tmp_path / "labels.png")
    browser.find_element(By.ID, "run3-translate").click()
    _, _, uploaded = _output_size(browser, "run3-photo")
    assert _output_size(browser, "run3-photo")[:2] == (200, 180)
    _shot(browser, shots, "pix2pix")
    # the drawing canvas (256x256, all facade to start with) gives a 256x256 photo
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role='tab']") if b.text == "draw one").click()
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run3-canvas canvas"))
    browser.find_element(By.ID, "run3-translate-drawing").click()
    assert _output_size(browser, "run3-photo", previous=uploaded)[:2] == (256, 256)
    _shot(browser, shots, "pix2pix_draw")

    # colorize: upload a grayscale photo, get it in colour at full size
    gray = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (220, 1))
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    _open_tab(browser, "colorize")
    _upload(browser, "run4-upload", tmp_path / "gray.png")
    browser.find_element(By.ID, "run4-colorize").click()
    assert _output_size(browser, "run4-result")[:2] == (300, 220)
    _shot(browser, shots, "colorize")
    for family in FAMILIES:
        assert Image.open(shots / f"serve_{family}.png").width >= 1000
