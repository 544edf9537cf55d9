"""The ``gankit`` command line: a thin layer of subcommands over the library.

gankit train PRESET [--data PATH] [--out RUN_DIR] [--epochs N] [--max-steps N] ...
gankit sample RUN_OR_CHECKPOINT --n N [--label K | --labels balanced] --out DIR [--grid FILE]
gankit translate RUN INPUT --out DIR          (pix2pix)
gankit colorize RUN INPUT --out DIR           (Lab colorization)
gankit list
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from gankit.config import PRESETS, Config, ConfigError, apply_overrides, make_config, parse_set_args, validate


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model family (or named preset)",
        description="Train a GAN. PRESET is a family name (gan, cgan, dcgan, pix2pix, colorize) "
        "or a named preset from `gankit list`.",
    )
    p.add_argument(
        "preset",
        choices=[*PRESETS, "classifier"],
        metavar="PRESET",
        help="family or preset: " + ", ".join(PRESETS) + "; or 'classifier' (the metrics' domain CNN)",
    )
    p.add_argument("--data", help="dataset name or path (IDX folder, image folder, facades, pairs ...)")
    p.add_argument("--out", help="run folder (default: runs/PRESET-DATE-TIME)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="mixed precision")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], help="paired data: which side is the input")
    p.add_argument("--config", help="YAML/JSON file of config sections (see config.yaml in any run folder)")
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys, e.g. optim.lr_g=1e-4"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (default: the newest run of PRESET); a new --out folder is started",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="speed options: channels_last + torch.compile (+ bf16 autocast and TF32 on CUDA)",
    )
    p.add_argument("--eval-every", type=int, metavar="EPOCHS", help="evaluate (gankit eval) every N epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch line stays)")


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for flag, key in (
        ("epochs", "train.epochs"),
        ("max_steps", "train.max_steps"),
        ("batch_size", "train.batch_size"),
        ("seed", "train.seed"),
        ("device", "train.device"),
        ("amp", "train.amp"),
        ("direction", "data.direction"),
        ("eval_every", "train.eval_every"),
    ):
        if getattr(args, flag) is not None:
            o[key] = getattr(args, flag)
    if args.no_progress:
        o["train.progress"] = False
    if args.fast:
        o["train.fast"] = True
    return o


def _newest_run(preset: str) -> Path | None:
    runs = sorted(Path("runs").glob(f"{preset}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def cmd_train_classifier(args: argparse.Namespace) -> int:
    """``gankit train classifier --data fashion-mnist``: the CNN whose features the *_clf metrics use."""
    from gankit.config import DataConfig
    from gankit.data import infer_dataset_name
    from gankit.metrics.classifier import default_classifier_path, train_classifier

    name, path = infer_dataset_name(args.data or "fashion-mnist", "fashion-mnist")
    data_cfg = DataConfig(name=name, path=path)
    out = Path(args.out) if args.out else default_classifier_path(name)
    result = train_classifier(
        data_cfg,
        out,
        epochs=args.epochs or 5,
        batch_size=args.batch_size or 128,
        seed=args.seed or 0,
        device=args.device or "auto",
    )
    print(f"classifier test accuracy {result['test_accuracy']:.4f}; saved to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gankit.evaluate import evaluate, plot_metrics, real_vs_real

    if args.real:
        from gankit.config import DataConfig

        real_vs_real(
            DataConfig(name=args.real, path=args.data),
            args.metrics,
            n=args.n,
            classifier=args.classifier,
            device=args.device,
            seed=args.seed,
            batch_size=args.batch_size,
        )
        return 0
    if not args.run:
        raise ConfigError("gankit eval needs a RUN folder or checkpoint (or --real DATASET for the real-data floor)")
    evaluate(
        args.run,
        metrics=args.metrics,
        n=args.n,
        split=args.split,
        classifier=args.classifier,
        device=args.device,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    run = Path(args.run)
    if run.is_dir():
        plot_metrics(run.parent if run.name == "checkpoints" else run)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from gankit.data import infer_dataset_name

    if args.preset == "classifier":
        return cmd_train_classifier(args)
    from gankit.errors import TrainingInterrupted
    from gankit.training.loop import train

    overrides = _cli_overrides(args)
    overrides.update(parse_set_args(args.set))
    out = Path(args.out) if args.out else None
    resuming = args.resume and out is not None and (out / "config.yaml").is_file()
    if args.resume and out is None:
        out = _newest_run(args.preset)
        if out is None:
            raise ConfigError(f"--resume: no run to resume (no runs/{args.preset}-* folder; pass --out RUN_DIR)")
        resuming = True
    elif args.resume and not resuming:  # --resume --out NEW: start it (handy for preemptible jobs and make demo)
        print(f"--resume: {out} holds no run yet; starting a new one there")
    if resuming:
        assert out is not None
        if not (out / "config.yaml").is_file():
            raise ConfigError(f"--resume: {out} has no config.yaml")
        import yaml

        cfg = Config.from_dict(yaml.safe_load((out / "config.yaml").read_text()), source=str(out / "config.yaml"))
        if cfg.family != PRESETS[args.preset]["family"]:
            raise ConfigError(f"--resume: {out} is a '{cfg.family}' run, not '{PRESETS[args.preset]['family']}'")
        if args.config:
            raise ConfigError("--resume uses the run's own config.yaml; pass changes with --set instead of --config")
        if args.data:
            overrides["data.path"] = args.data
        apply_overrides(cfg, overrides)
        validate(cfg)
    else:
        if args.data:
            name, path = infer_dataset_name(args.data, str(PRESETS[args.preset].get("data.name", "fashion-mnist")))
            overrides.setdefault("data.name", name)
            if path is not None:
                overrides.setdefault("data.path", path)
        cfg = make_config(args.preset, config_file=args.config, overrides=overrides)
        out = out or Path("runs") / f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = train(cfg, out, resume=resuming)
    except TrainingInterrupted as e:
        return 128 + e.signum
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 reports
        return 0
    print(
        f"done: {result.step} steps in {result.out_dir} "
        f"(samples/, loss.png, checkpoints/G_last.pt); "
        f"sample with: gankit sample {result.out_dir} --n 64 --out samples"
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from gankit.data.base import to_uint8
    from gankit.sampling import choose_labels, load_generator, sample
    from gankit.training.loop import resolve_device
    from gankit.visualize import save_grid, save_png, to_display

    loaded = load_generator(args.run, device=resolve_device(args.device))
    if args.n <= 0:
        raise ConfigError("--n must be positive")
    labels = choose_labels(
        args.n,
        loaded.num_classes,
        label=args.label,
        balanced=args.labels == "balanced",
        generator=torch.Generator().manual_seed(args.seed + 1),
    )
    images = sample(loaded, args.n, labels=labels, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    u8 = to_uint8(images)
    for i, img in enumerate(u8):
        name = f"{i:05d}" + (f"_class{int(labels[i])}" if labels is not None else "")
        save_png(img, out / f"{name}.png")
    if args.grid:
        nrow = loaded.num_classes if args.labels == "balanced" and loaded.num_classes else 8
        save_grid(to_display(images), args.grid, nrow=nrow)
    print(f"wrote {args.n} images to {out}" + (f" and a grid to {args.grid}" if args.grid else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from gankit.data import DATASETS
    from gankit.families import FAMILIES

    print("families:")
    for f in FAMILIES.values():
        print(f"  {f.name:<16} {f.kind:<7} {f.description}")
    print("presets:")
    for name, p in PRESETS.items():
        extra = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in p.items() if k in ("data.resolution", "data.channels"))
        print(f"  {name:<16} family={p['family']:<9} data={p.get('data.name')}" + (f" ({extra})" if extra else ""))
    print("datasets:")
    for name, desc in DATASETS.items():
        print(f"  {name:<16} {desc}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from gankit.translate import run_translate

    return run_translate(args)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump); subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gankit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)

    s = sub.add_parser("sample", help="generate images from a trained noise-to-image model")
    s.add_argument("run", help="run folder or checkpoint file")
    s.add_argument("--n", type=int, default=64)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--label", type=int, help="cgan: class of every sample")
    g.add_argument("--labels", choices=["balanced", "random"], default="random", help="cgan: label choice")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="folder for the PNG files")
    s.add_argument("--grid", help="also write one grid image here")
    s.add_argument("--device", default="auto")

    for name, what in (
        ("translate", "pix2pix: translate images of any size"),
        ("colorize", "colorize photos at full resolution"),
    ):
        t = sub.add_parser(name, help=what)
        t.add_argument("run", help="run folder or checkpoint file")
        t.add_argument("inputs", nargs="+", help="image files or folders")
        t.add_argument("--out", required=True, help="output folder")
        t.add_argument(
            "--checkpoint",
            choices=["best", "last"],
            default="best",
            help="which snapshot of a run folder (default: best by val L1, else last)",
        )
        mode = t.add_mutually_exclusive_group()
        mode.add_argument(
            "--eval-mode",
            dest="train_mode",
            action="store_false",
            help="dropout off, BatchNorm running statistics (default; deterministic)",
        )
        mode.add_argument(
            "--train-mode",
            dest="train_mode",
            action="store_true",
            help="dropout on and per-image statistics, as the reference pix2pix test script",
        )
        t.add_argument("--device", default="auto")
        if name == "translate":
            t.add_argument(
                "--strategy",
                choices=["pad", "resize", "tile"],
                default="pad",
                help="how to fit any size to the U-Net: reflect-pad (default), resize, or tiles",
            )
        t.set_defaults(command_name=name, train_mode=False)

    e = sub.add_parser("eval", help="metrics of a trained model (FID/KID/precision-recall, L1/PSNR/SSIM, ...)")
    e.add_argument("run", nargs="?", help="run folder or checkpoint file")
    e.add_argument("--metrics", nargs="+", help="metric names (default: the family's standard set)")
    e.add_argument("--n", type=int, default=10000, help="generated samples / reference images")
    e.add_argument("--split", help="reference split: test (noise models, default) or val (image-to-image)")
    e.add_argument("--classifier", help="domain-classifier checkpoint for the *_clf metrics")
    e.add_argument("--real", metavar="DATASET", help="instead of a run: real train split vs test split (the floor)")
    e.add_argument("--data", help="with --real: dataset path")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--device", default="auto")

    sub.add_parser("list", help="show families, presets and datasets")
    return parser


def main(argv: list[str] | None = None) -> int:
    from gankit.data.errors import DataError
    from gankit.data.images import ImageReadError
    from gankit.errors import NonFiniteLoss
    from gankit.training.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    handlers = {
        "train": cmd_train,
        "sample": cmd_sample,
        "list": cmd_list,
        "eval": cmd_eval,
        "translate": cmd_translate,
        "colorize": cmd_translate,
    }
    try:
        return handlers[args.command](args)
    except (ConfigError, DataError, CheckpointError, ImageReadError, NonFiniteLoss, ValueError) as e:
        print(f"gankit {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
