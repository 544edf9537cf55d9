"""Response times of ``gankit serve`` (issue 12): page load, a 64-sample gan grid, a 256x256 pix2pix
translate and a 1024x768 colorize, each end to end through gradio's client (upload, queue, model,
PNG, download), on the preset-sized generators (gan: MLP 100-256-512-1024; pix2pix/colorize: U-Net
ngf=64 at 256 px). Targets: < 0.3 s, < 2 s, < 3 s.

The generators are freshly initialized (not trained): the cost of a forward pass does not depend on
the weights. They are made once, and every measurement serves the same files. Each measurement is a
fresh process that loads them with ``gankit.serve``, launches the app and times ``--repeats`` calls
per endpoint after one untimed warm-up call (its median). Optionally (``--big``) also a 4000x3000
colorize. With ``--browser``, also in headless Chromium: the page load (navigation start to
the tabs drawn) and, for translate and colorize, the click on the button to the new image loaded on
the page (the file uploaded before, as a user does). The client rows include gradio_client's own
waiting (its SSE reader polls every 50 ms); the Chromium rows are what a user sees. The ``gradio
alone`` rows time the same client calls against a bare gradio app that returns a ready PNG: the
floor under the client rows without any model.

Engine: the measured gankit runs the engine a user gets (``GANKIT_ENGINE`` is removed from its
environment, so ``auto``: onnxruntime where the ``export`` extra is installed), or ``--engine``. The
ONNX export happens while a run loads (before anything is timed) into a cache folder of this
benchmark (``XDG_CACHE_HOME`` in its temp folder, removed at the end), so the first measurement
exports and later ones load the cached graph; the warm-up call takes onnxruntime's first-run costs.
The engine line each run logged is printed.

With ``--before-src OLD/src`` the same measurement also runs with that gankit (e.g. a worktree of the
commit before the inference engine; its ``serve`` has the same ``RunModel``/``build_app``/``launch``),
``--rounds`` times each, interleaved with the order reversed every round; it prints the median over
rounds per endpoint and the ratio before / now.

    .venv/bin/python benchmarks/bench_serve.py [--threads N] [--repeats 5] [--big] [--browser]
    .venv/bin/python benchmarks/bench_serve.py --before-src OLD/src --rounds 3 [--threads N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
PRESETS = ("gan", "pix2pix", "colorize")


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


def browser_times(url: str, uploads: dict[str, Path], repeats: int) -> dict[str, float]:
    """In headless Chromium: the page load (navigation to the tabs drawn), and for the translate and
    colorize tabs the time from the button's click to the new output image loaded on the page, the file
    uploaded beforehand as a user does (median of ``repeats`` clicks after one). Empty without selenium or
    chromium. Unlike gradio_client, whose SSE reader polls every 50 ms, this is the latency a user sees."""
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return {}
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        return {}
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
    tabs = "button[role='tab']"

    def output_src(elem_id: str, previous: str | None) -> str:
        def ready(d: Any) -> str | None:
            for img in d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img"):
                src = img.get_attribute("src") or ""
                if (
                    src
                    and src != previous
                    and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
                ):
                    return src
            return None

        return WebDriverWait(d, 120, poll_frequency=0.005).until(ready)

    try:
        loads = []
        for _ in range(4):
            t = time.perf_counter()
            d.get(url)
            WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, tabs))
            loads.append(time.perf_counter() - t)
        out = {"page load (headless Chromium, tabs drawn)": statistics.median(loads[1:])}
        for what, (tab, group, button, result) in {
            "pix2pix translate 256x256 (Chromium: click to image)": ("pix2pix", "run1", "translate", "photo"),
            "colorize 1024x768 (Chromium: click to image)": ("colorize", "run2", "colorize", "result"),
        }.items():
            next(b for b in d.find_elements(By.CSS_SELECTOR, tabs) if b.text.endswith(f"({tab})")).click()
            field = WebDriverWait(d, 60).until(
                lambda d, g=group: d.find_element(By.CSS_SELECTOR, f"#{g}-upload input[type='file']")
            )
            field.send_keys(str(uploads[tab]))
            WebDriverWait(d, 60).until(lambda d, g=group: d.find_elements(By.CSS_SELECTOR, f"#{g}-upload img"))
            src, times = None, []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                d.find_element(By.ID, f"{group}-{button}").click()
                src = output_src(f"{group}-{result}", src)
                times.append(time.perf_counter() - t)
            out[what] = statistics.median(times[1:])
        return out
    finally:
        d.quit()


def gradio_floor(tmp: Path, repeats: int) -> dict[str, float]:
    """The same client calls against a bare gradio app whose functions return a ready PNG at once: what
    upload, queue, file handling and download cost without gankit or a model (the floor of the rows above)."""
    import gradio as gr
    from gradio_client import Client, handle_file
    from PIL import Image

    ready = {name: tmp / f"ready-{name}" for name in ("labels.png", "photo.jpg")}
    for name, path in ready.items():  # outputs of the input's size, as PNG like gankit's
        Image.open(tmp / name).save(path.with_suffix(".png"), compress_level=1)
    with gr.Blocks(analytics_enabled=False) as bare:
        image, shown = gr.Image(type="filepath"), gr.Image(format="png", interactive=False)
        for name in ready:
            out = str(ready[name].with_suffix(".png"))
            gr.Button().click(lambda _p, out=out: out, [image], [shown], api_name=name.split(".")[0], preprocess=False)
    bare.queue(default_concurrency_limit=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bare.launch(server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False, allowed_paths=[str(tmp)])
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp / "dl-floor"))
    try:
        return {
            f"gradio alone, {what} (no model)": timed(
                lambda name=name: client.predict(handle_file(str(tmp / name)), api_name=f"/{name.split('.')[0]}"),
                repeats,
            )
            for name, what in (("labels.png", "256x256 in/out"), ("photo.jpg", "1024x768 in/out"))
        }
    finally:
        bare.close()


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Serve the runs under ``root`` with the gankit on ``sys.path`` and time its endpoints (in a child)."""
    import gankit
    import numpy as np
    import torch
    from gankit import serve as sv
    from gradio_client import Client, handle_file
    from PIL import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # the line per run saying which engine runs it
        models = [sv.RunModel(root / p) for p in PRESETS]
    engines = [line.replace(f"{root}{os.sep}", "") for line in log.getvalue().splitlines() if "engine:" in line]
    tmp = Path(tempfile.mkdtemp(prefix="calls-", dir=root))
    out = sv.Outputs()
    app = sv.build_app(models, out)
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
    results.update(gradio_floor(tmp, args.repeats))
    if args.browser:
        results.update(browser_times(url, {"pix2pix": tmp / "labels.png", "colorize": tmp / "photo.jpg"}, args.repeats))
    app.close()
    out.cleanup()
    shutil.rmtree(tmp)
    return {
        "gankit": str(Path(gankit.__file__).parent),
        "engines": engines or ["PyTorch eager (this gankit has no engine)"],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": results,
    }


def measure_in_child(args: argparse.Namespace, root: Path, src: Path, engine: str | None) -> dict[str, Any]:
    """:func:`measure` in a fresh process importing gankit from ``src`` (``engine``: its $GANKIT_ENGINE)."""
    env = {k: v for k, v in os.environ.items() if k != "GANKIT_ENGINE"}
    env.update(PYTHONPATH=str(src), XDG_CACHE_HOME=str(root / "cache"), GRADIO_ANALYTICS_ENABLED="False")
    if engine:
        env["GANKIT_ENGINE"] = engine
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, __file__, "--measure", str(root), "--repeats", str(args.repeats)]
    cmd += ["--threads", str(args.threads)] + ["--big"] * args.big + ["--browser"] * args.browser
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"measuring with {src} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big", action="store_true", help="also a 4000x3000 colorize")
    ap.add_argument(
        "--browser", action="store_true", help="also the page load and click-to-image times in headless Chromium"
    )
    ap.add_argument("--before-src", type=Path, help="src/ of an earlier gankit to compare against")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per gankit with --before-src")
    ap.add_argument("--engine", choices=["auto", "torch", "onnxruntime"], help="this gankit's (default: auto)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child: serve the runs in this folder
    ap.add_argument("--make-runs", type=Path, help=argparse.SUPPRESS)  # the child: write the run folders here
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args, args.measure)))
        return
    if args.make_runs:
        for preset in PRESETS:
            make_run(args.make_runs, preset)
        return
    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    # The runs are written by the earlier gankit when there is one: a newer gankit reads older
    # checkpoints, but an older one refuses config keys added since.
    env = dict(os.environ, PYTHONPATH=str(args.before_src or SRC))
    subprocess.run([sys.executable, __file__, "--make-runs", str(root)], env=env, check=True)
    contestants = {"now": SRC, **({"before": args.before_src} if args.before_src else {})}
    rounds = args.rounds if args.before_src else 1
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contestants}
    for r in range(rounds):
        for name in list(contestants)[:: 1 if r % 2 == 0 else -1]:
            runs[name].append(measure_in_child(args, root, contestants[name], args.engine))
    shutil.rmtree(root)
    first = runs["now"][0]
    print(f"gankit serve, torch {first['torch']}, {first['threads']} thread(s), {os.cpu_count()} CPU(s)")
    for name, rs in runs.items():
        print(f"  {name}: {rs[0]['gankit']}")
        for line in rs[0]["engines"]:
            print(f"    {line}")
    medians = {
        name: {k: statistics.median(m["results"][k] for m in rs) for k in rs[0]["results"]} for name, rs in runs.items()
    }
    if "before" not in runs:
        for what, seconds in medians["now"].items():
            print(f"  {what:<44} {seconds:7.3f} s")
        return
    print(f"  median over {rounds} rounds (each the median of {args.repeats} calls), interleaved:")
    print(f"  {'':<44} {'before':>9} {'now':>9}  before/now")
    for what, now in medians["now"].items():
        before = medians["before"][what]
        each = ", ".join(
            f"{m['results'][what]:.3f}/{n['results'][what]:.3f}" for m, n in zip(runs["before"], runs["now"])
        )
        print(f"  {what:<44} {before:7.3f} s {now:7.3f} s  x{before / now:.2f}   (rounds: {each})")


if __name__ == "__main__":
    main()
