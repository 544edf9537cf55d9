"""Response times of ``gankit serve`` (issue 12): page load, a 64-sample gan grid, a 256x256 pix2pix
translate and a 1024x768 colorize, each end to end through gradio's client (upload, queue, model,
PNG, download), on the preset-sized generators (gan: MLP 100-256-512-1024; pix2pix/colorize: U-Net
ngf=64 at 256 px). Targets: < 0.3 s, < 2 s, < 3 s.

The generators are freshly initialized (not trained): the cost of a forward pass does not depend on
the weights. Each number is the median of ``--repeats`` calls after one warm-up call. Optionally
(``--big``) also a 4000x3000 colorize. With ``--browser``, the page load is also timed in headless
Chromium (navigation start to the tabs drawn).

    .venv/bin/python benchmarks/bench_serve.py [--threads N] [--repeats 5] [--big] [--browser]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def make_run(root: Path, preset: str) -> Path:
    """A run folder holding a G_last.pt snapshot of the preset's generator (initialized, step 0)."""
    from gankit.config import make_config
    from gankit.data.base import DataInfo
    from gankit.families import get_family
    from gankit.training.checkpoint import atomic_save, generator_snapshot

    cfg = make_config(preset, overrides={"train.device": "cpu"})
    info = {
        "gan": DataInfo(channels=1, resolution=28, num_classes=10, dataset="fashion-mnist"),
        "pix2pix": DataInfo(channels=3, resolution=256, in_channels=3, dataset="facades"),
        "colorize": DataInfo(channels=2, resolution=256, in_channels=1, space="lab", dataset="colorization"),
    }[preset]
    G, _ = get_family(cfg.family).build(cfg, info)
    state = generator_snapshot(cfg, info, G.state_dict())
    run = root / preset
    atomic_save(state, run / "checkpoints" / "G_last.pt")
    return run


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def browser_load(url: str) -> float | None:
    import shutil

    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return None
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        return None
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        times = []
        for _ in range(4):
            t = time.perf_counter()
            d.get(url)
            WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[role='tab']"))
            times.append(time.perf_counter() - t)
        return statistics.median(times[1:])
    finally:
        d.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big", action="store_true", help="also a 4000x3000 colorize")
    ap.add_argument("--browser", action="store_true", help="also the page load in headless Chromium")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from gankit import serve as sv
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    runs = [make_run(tmp, p) for p in ("gan", "pix2pix", "colorize")]
    out = sv.Outputs()
    app = sv.build_app([sv.RunModel(r) for r in runs], out)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sv.launch(app, port=port, block=False)
    url = f"http://127.0.0.1:{port}/"
    client = Client(url, verbose=False, download_files=str(tmp / "dl"))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp / "labels.png")
    Image.fromarray(rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8)).save(tmp / "photo.jpg", quality=90)
    results = {
        "page load (HTTP GET /)": timed(lambda: urllib.request.urlopen(url, timeout=30).read(), args.repeats),
        "gan grid, 64 samples": timed(lambda: client.predict(1, 64, 0, api_name="/run0_grid"), args.repeats),
        "pix2pix translate 256x256": timed(
            lambda: client.predict(handle_file(str(tmp / "labels.png")), api_name="/run1_translate"), args.repeats
        ),
        "colorize 1024x768": timed(
            lambda: client.predict(handle_file(str(tmp / "photo.jpg")), api_name="/run2_colorize"), args.repeats
        ),
    }
    if args.big:
        Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(tmp / "big.jpg", quality=90)
        results["colorize 4000x3000"] = timed(
            lambda: client.predict(handle_file(str(tmp / "big.jpg")), api_name="/run2_colorize"), 1
        )
    if args.browser:
        load = browser_load(url)
        if load is not None:
            results["page load (headless Chromium, tabs drawn)"] = load
    app.close()
    out.cleanup()
    print(f"gankit serve, torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s)")
    for name, seconds in results.items():
        print(f"  {name:<44} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
