"""ONNX Runtime vs PyTorch CPU inference: the exported generator of every family against gankit's own.

Each family's generator is built at its preset size (gan/cgan: MLP on 28x28, dcgan: 64x64 ngf=64,
pix2pix: unet_256 ngf=64 RGB->RGB, colorize: unet_256 L->ab; PyTorch's default init, random
BatchNorm statistics; weights do not change the cost) and saved as a run snapshot, exported with
``gankit.export.export_onnx`` (which verifies it), and then both run the same inputs in interleaved
rounds: PyTorch ``G(x)`` under ``torch.inference_mode()`` (U-Nets through ``run_any_size(strategy="pad")``,
as the export does), onnxruntime ``session.run`` with the CPU provider. Both get ``--threads`` threads.
Printed: median ms per call, images/s, and the speed ratio onnxruntime / PyTorch (> 1: ONNX is faster);
also ``--pipeline``: the colorize uint8 pipeline vs gankit's ``colorize_image`` on a 512x384 photo.

    python benchmarks/bench_onnx.py [--families gan,cgan,dcgan,pix2pix,colorize] [--threads 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gankit.config import make_config  # noqa: E402
from gankit.data.base import DataInfo  # noqa: E402
from gankit.export import export_onnx  # noqa: E402
from gankit.families import get_family  # noqa: E402
from gankit.inference import run_any_size  # noqa: E402
from gankit.sampling import load_generator  # noqa: E402
from gankit.training.checkpoint import atomic_save, generator_snapshot  # noqa: E402

INFOS = {
    "gan": DataInfo(channels=1, resolution=28),
    "cgan": DataInfo(channels=1, resolution=28, num_classes=10),
    "dcgan": DataInfo(channels=3, resolution=64),
    "pix2pix": DataInfo(channels=3, resolution=256, in_channels=3),
    "colorize": DataInfo(channels=2, resolution=256, in_channels=1, space="lab"),
}
BATCH = {"gan": 256, "cgan": 256, "dcgan": 64, "pix2pix": 1, "colorize": 1}


def make_run(family: str, root: Path) -> Path:
    cfg = make_config(family)
    G, _ = get_family(family).build(cfg, INFOS[family], init=False)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    run = root / family
    atomic_save(generator_snapshot(cfg, INFOS[family], G.state_dict()), run / "checkpoints" / "G_last.pt")
    cfg.save(run / "config.yaml")
    return run


def timed(fn, rounds_out: list[float], calls: int) -> None:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    rounds_out.append((time.perf_counter() - t) / calls)


def bench(family: str, root: Path, args: argparse.Namespace, pipeline: bool = False) -> dict:
    import onnxruntime as ort

    run = make_run(family, root)
    path = root / f"{family}{'-pipeline' if pipeline else ''}.onnx"
    report = export_onnx(run, path, pipeline=pipeline, overwrite=True, log=lambda s: None)
    loaded = load_generator(run)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    n = 1 if pipeline else BATCH[family]
    if pipeline:
        from gankit.translate import colorize_image

        photo = torch.randint(0, 256, (384, 512, 3), generator=g, dtype=torch.uint8)
        rgb01 = photo.permute(2, 0, 1).unsqueeze(0).float() / 255
        feed = {"image": photo.numpy()}
        torch_fn = lambda: (colorize_image(loaded, rgb01)[0].clamp(0, 1) * 255).round().to(torch.uint8)
        shape = "384x512x3 uint8"
    elif loaded.family.kind == "noise":
        z = torch.randn(n, loaded.cfg.model.z_dim, generator=g)
        labels = torch.randint(0, 10, (n,), generator=g) if loaded.num_classes else None
        feed = {"z": z.numpy(), **({"label": labels.numpy()} if labels is not None else {})}
        torch_fn = lambda: loaded.G(z, labels)
        shape = f"z {n}x{z.shape[1]}"
    else:
        x = torch.rand(n, loaded.info.in_channels, 256, 256, generator=g) * 2 - 1
        feed = {session.get_inputs()[0].name: x.numpy()}
        torch_fn = lambda: run_any_size(loaded.G, x, multiple=loaded.G.multiple, resolution=256, strategy="pad")
        shape = f"{n}x{x.shape[1]}x256x256"
    ort_fn = lambda: session.run(None, feed)
    calls = args.calls or (20 if loaded.family.kind == "noise" and not pipeline else 3)
    t_torch: list[float] = []
    t_ort: list[float] = []
    with torch.inference_mode():
        torch_fn(), ort_fn()  # warm-up: allocations, onnxruntime's first-run planning
        for r in range(args.rounds):  # interleaved, alternating who goes first
            pair = [(torch_fn, t_torch), (ort_fn, t_ort)]
            for fn, out in pair if r % 2 == 0 else pair[::-1]:
                timed(fn, out, calls)
    mt, mo = statistics.median(t_torch), statistics.median(t_ort)
    return {
        "family": family + (" pipeline" if pipeline else ""),
        "input": shape,
        "torch_ms": 1e3 * mt,
        "ort_ms": 1e3 * mo,
        "torch_img_s": n / mt,
        "ort_img_s": n / mo,
        "ratio": mt / mo,
        "max_abs_diff": report.max_abs_diff,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", default="gan,cgan,dcgan,pix2pix,colorize")
    p.add_argument("--pipeline", action="store_true", help="also the colorize uint8 pipeline")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=0, help="calls per round (default 20 for noise models, 3 for U-Nets)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} thread(s), "
        f"median of {args.rounds} interleaved rounds"
    )
    print(
        f"{'family':<18} {'input':<18} {'torch ms':>9} {'ort ms':>9} {'torch img/s':>12} {'ort img/s':>10} "
        f"{'ort/torch':>9} {'export diff':>11}"
    )
    jobs = [(f, False) for f in args.families.split(",") if f] + ([("colorize", True)] if args.pipeline else [])
    with tempfile.TemporaryDirectory() as tmp:
        for family, pipeline in jobs:
            r = bench(family, Path(tmp), args, pipeline)
            # the pipeline's difference is in uint8 levels, the generators' in output units
            diff = f"{r['max_abs_diff']:.0f} level" if pipeline else f"{r['max_abs_diff']:.2e}"
            print(
                f"{r['family']:<18} {r['input']:<18} {r['torch_ms']:9.2f} {r['ort_ms']:9.2f} "
                f"{r['torch_img_s']:12.1f} {r['ort_img_s']:10.1f} {r['ratio']:8.2f}x {diff:>11}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
