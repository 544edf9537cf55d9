"""The ``gankit`` command line: a thin layer of subcommands over the library.

Arguments are parsed before torch is imported (each command imports what it needs), so ``--help``,
``gankit list`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from gankit import __version__
from gankit.config import PRESETS, Config, ConfigError, apply_overrides, make_config, parse_set_args, validate

DESCRIPTION = """\
Train, evaluate and run the classic GANs: an MLP GAN and a conditional GAN on Fashion-MNIST,
DCGAN on faces or any image folder, pix2pix on facades, and pix2pix-style colorization.

typical use:
  gankit train gan --epochs 10                    train; writes runs/gan-DATE-TIME/
  gankit sample runs/gan-... --n 64 --out gen     images from a trained noise model
  gankit eval runs/gan-...                        FID-style metrics (offline)
  gankit translate runs/pix2pix-... labels.png --out out
  gankit colorize runs/colorize-... photo.jpg --out out
  gankit list                                     families, presets, datasets

Run 'gankit COMMAND --help' for the options of a command.
"""

NEXT_STEP = {
    "noise": "gankit sample {run} --n 64 --out {run}/generated --grid {run}/grid.png",
    "conditional": "gankit sample {run} --n 100 --labels balanced --out {run}/generated --grid {run}/classes.png",
    "paired": "gankit translate {run} LABELS.png --out {run}/translated",
    "colorization": "gankit colorize {run} PHOTO.jpg --out {run}/colorized",
}
"""What to run after training, by the family's kind (so that every registered family has a line)."""


def next_step(cfg: Config, run: Path) -> str:
    """The command to try after training ``cfg`` into ``run``."""
    from gankit.families import get_family

    family = get_family(cfg.family)
    kind = "conditional" if family.conditional else family.kind
    if kind == "paired" and cfg.data.name == "colorization":
        kind = "colorization"
    return NEXT_STEP[kind].format(run=run)


def _set_thread_waiting() -> None:
    """Let OpenMP threads sleep instead of spin while they wait (unless the user chose otherwise).

    With the default spin-waiting, two OpenMP threads made an MLP GAN step 7x slower whenever another
    process held a core (BENCHMARKS.md, "OpenMP waiting"); on an idle machine PASSIVE costs little.
    Must run before torch (and its OpenMP runtime) is loaded.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_FLAGS = {"fmt": "--format"}
"""Library settings whose flag is not ``--`` + the name with dashes."""


def flag(name: str, value: object = None) -> str:
    """How the CLI names a library setting in messages (:class:`gankit.formatting.Spelling`):
    ``flag("max_side", 0)`` -> ``"--max-side 0"``, ``flag("overwrite", True)`` -> ``"--overwrite"``."""
    option = _FLAGS.get(name, "--" + name.replace("_", "-"))
    return option if value is None or value is True else f"{option} {value}"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps description line breaks and shows each option's default (where it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        stated = "%(default)" in text or "(default" in text  # the help text already says it
        if stated or default is None or default is False or default in (argparse.SUPPRESS, []):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and "did you mean" for mistyped choices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else "choose from " + ", ".join(choices)
            message = f"{message.split(':')[0]}: unknown '{m.group(1)}'; {hint}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.families import FAMILIES  # the registry (no torch): a registered family is named here

    p = sub.add_parser(
        "train",
        help="train a model family or named preset",
        description="Train a GAN into a run folder (config.yaml, checkpoints/, samples/, stats.jsonl, loss.png).\n"
        f"PRESET is a family name ({', '.join(FAMILIES)}) or a named preset (see 'gankit list');\n"
        "'classifier' trains the small CNN whose features the offline *_clf metrics use.\n\n"
        "examples:\n"
        "  gankit train gan --epochs 10\n"
        "  gankit train dcgan --data ~/celeba/img_align_celeba\n"
        "  gankit train pix2pix --data path/to/facades --set train.epochs=50\n"
        "  gankit train gan --resume --out runs/gan-20260101-120000",
    )
    p.add_argument(
        "preset",
        choices=[*PRESETS, "classifier"],
        metavar="PRESET",
        help="family or preset: " + ", ".join(PRESETS) + "; or 'classifier'",
    )
    p.add_argument("--data", help="dataset name or path: IDX folder, image folder, facades, paired folders, photos")
    p.add_argument(
        "--out",
        help="run folder (default: runs/PRESET-DATE-TIME); for 'classifier' the .pt file (default: "
        "~/.cache/gankit/classifiers/DATA.pt, where gankit eval --classifier user finds it; an existing file "
        "needs --overwrite)",
    )
    p.add_argument("--epochs", type=int, help="epochs of training (default: the preset's)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total")
    p.add_argument("--batch-size", type=int, help="images per step and process (default: the preset's)")
    p.add_argument("--seed", type=int, help="seed of weights, data order and noise (default: 0)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto = cuda if available)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="mixed precision (default: none)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], help="paired data: which side is the input (default: AtoB)")
    p.add_argument("--config", help="YAML/JSON file of config sections (see config.yaml in any run folder)")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. optim.lr_g=1e-4",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (without --out: the newest runs/PRESET-* folder); "
        "--set changes are listed before training continues",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="GPU speed options: channels_last + torch.compile (+ bf16 autocast and TF32 on CUDA); none on CPU",
    )
    p.add_argument("--eval-every", type=int, metavar="EPOCHS", help="evaluate (as gankit eval) every N epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch line stays)")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs to RUN/tb/ (= --set train.tensorboard=true; "
        "pip install 'gankit[tensorboard]')",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="classifier only: replace an existing classifier file at --out",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="classifier only: make it gankit eval's default for its dataset, also where one is shipped "
        "(fashion-mnist, mnist: otherwise the shipped one stays the default)",
    )


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    # The CLI owns its process, so it keeps freed memory (train.keep_memory); a Python caller opts in.
    o: dict[str, Any] = {"train.keep_memory": True}
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
    if args.tensorboard:
        o["train.tensorboard"] = True
    return o


def cmd_train_classifier(args: argparse.Namespace) -> int:
    """``gankit train classifier --data DATA``: the CNN whose features the *_clf metrics use.

    Writes ``--out`` (default: the user cache, where ``gankit eval`` finds it); an existing file is
    never replaced without ``--overwrite``. Where a classifier is shipped (fashion-mnist, mnist),
    ``gankit eval`` keeps the shipped one unless this one is ``--install``ed or named with
    ``--classifier``, so a quick try never changes later numbers.
    """
    from gankit.config import DataConfig
    from gankit.data import infer_dataset_name
    from gankit.metrics.classifier import (
        default_classifier_path,
        shipped_manifest,
        train_classifier,
        user_classifier_paths,
    )

    name, path = infer_dataset_name(args.data or "fashion-mnist", "fashion-mnist")
    data_cfg = DataConfig(name=name, path=path)
    out = Path(args.out) if args.out else default_classifier_path(name, path)
    looked_at = user_classifier_paths(name, path)
    if args.install and out not in looked_at:
        raise ConfigError(
            f"--install writes where gankit eval looks ({looked_at[-1]}); drop --out {out}, "
            f"or use that file with: gankit eval RUN --classifier {out}"
        )
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; pass a file name such as {out / (name + '.pt')}")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it, or --out NEW.pt to keep it")
    result = train_classifier(
        data_cfg,
        out,
        epochs=args.epochs or 5,
        max_steps=args.max_steps or 0,
        batch_size=args.batch_size or 128,
        seed=args.seed or 0,
        device=args.device or "auto",
        overwrite=args.overwrite,
        install=args.install,
    )
    print(
        f"classifier ({result['dataset']}, {result['steps']} steps): test accuracy {result['test_accuracy']:.4f}; "
        f"saved to {out}"
    )
    shipped = shipped_manifest().get(result["dataset"])
    if out not in looked_at:
        print(f"use it with: gankit eval RUN --classifier {out}")
    elif shipped is None:
        print("gankit eval uses it for runs on this data (no classifier is shipped for it)")
    elif args.install:
        print(f"installed: gankit eval uses it for {result['dataset']} runs instead of the shipped classifier")
    else:
        print(
            f"gankit eval keeps the shipped {result['dataset']} classifier (test accuracy "
            f"{shipped['test_accuracy']:.4f}); use this one with: gankit eval RUN --classifier user\n"
            f"  or make it the default for {result['dataset']}: the same command with --install --overwrite"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``gankit eval RUN`` (or ``--real DATASET``): metrics appended to RUN/eval.jsonl; exit 1 when none ran."""
    from gankit.evaluate import NoMetricsComputed, evaluate, plot_metrics, real_vs_real

    try:
        if args.real:
            from gankit.evaluate import real_data_config

            real_vs_real(
                real_data_config(args.real, args.data),
                args.metrics,
                n=args.n,
                classifier=args.classifier,
                device=args.device,
                seed=args.seed,
                batch_size=args.batch_size,
            )
            return 0
        if not args.run:
            raise ConfigError("gankit eval needs a RUN folder or checkpoint (or --real DATASET: the real-data floor)")
        evaluate(
            args.run,
            metrics=args.metrics,
            n=args.n,
            split=args.split,
            classifier=args.classifier,
            checkpoint=args.checkpoint,
            device=args.device,
            seed=args.seed,
            batch_size=args.batch_size,
            engine=args.engine,
        )
    except NoMetricsComputed as e:
        print(f"gankit eval: error: {e}", file=sys.stderr)
        return 1
    if Path(args.run).is_dir():
        from gankit.run import RunFolder

        plot_metrics(RunFolder.at(args.run).path)
    return 0


def _resume_config(out: Path, args: argparse.Namespace, overrides: dict[str, Any]) -> Config:
    """The saved config of the run in ``out`` with this command's changes applied (and checked)."""
    from gankit.config import describe_changes, diff_configs
    from gankit.run import RunFolder

    cfg = RunFolder(out).load_config()
    if cfg.family != PRESETS[args.preset]["family"]:
        raise ConfigError(f"--resume: {out} is a '{cfg.family}' run, not '{PRESETS[args.preset]['family']}'")
    if args.config:
        raise ConfigError("--resume uses the run's own config.yaml; pass changes with --set instead of --config")
    if args.data:
        overrides["data.path"] = args.data
    saved = Config.from_dict(cfg.to_dict())
    apply_overrides(cfg, overrides)
    validate(cfg)
    describe_changes(diff_configs(saved, cfg))  # refuses architecture changes before torch loads; the run logs the rest
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    if args.preset == "classifier":
        return cmd_train_classifier(args)
    if args.overwrite:
        raise ConfigError("--overwrite is for 'gankit train classifier'; a run folder is continued with --resume")
    if args.install:
        raise ConfigError("--install is for 'gankit train classifier'")
    overrides = _cli_overrides(args)
    overrides.update(parse_set_args(args.set))
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; pass a folder for the run")
    from gankit.run import RUNS, RunFolder

    resuming = False
    if args.resume:  # a config.yaml, or a state that holds a copy of it
        resuming = out is not None and RunFolder(out).holds_run()
    if args.resume and out is None:
        newest = RunFolder.newest(args.preset)
        if newest is None:
            raise ConfigError(f"--resume: no run to resume (no {RUNS}/{args.preset}-* folder; pass --out RUN_DIR)")
        out = newest.path
        if not newest.holds_run():
            raise ConfigError(f"--resume: {out} has no {newest.config.name} (not a gankit run folder)")
        resuming = True
    elif args.resume and not resuming:  # --resume --out NEW: start it (handy for preemptible jobs and make demo)
        print(f"--resume: {out} holds no run yet; starting a new one there")
    if resuming:
        assert out is not None
        cfg = _resume_config(out, args, overrides)
    else:
        from gankit.data import infer_dataset_name

        if args.data:
            name, path = infer_dataset_name(args.data, str(PRESETS[args.preset].get("data.name", "fashion-mnist")))
            overrides.setdefault("data.name", name)
            if path is not None:
                overrides.setdefault("data.path", path)
        cfg = make_config(args.preset, config_file=args.config, overrides=overrides)
        out = out or RunFolder.new(args.preset).path

    from gankit.errors import TrainingInterrupted
    from gankit.launch import train

    try:
        result = train(cfg, out, resume=resuming)
    except TrainingInterrupted as e:
        return 128 + e.signum
    from gankit.training.distributed import launch_rank

    if launch_rank() != 0:  # torchrun: only rank 0 reports
        return 0
    run = result.out_dir
    print(f"done: {result.step} steps, epoch {result.epoch} in {run} (samples/, loss.png, checkpoints/G_last.pt)")
    print("next: " + next_step(cfg, run))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``gankit sample RUN --n N --out OUT``: see :func:`gankit.sampling.sample_to_folder`."""
    from gankit.sampling import sample_to_folder

    done = sample_to_folder(
        args.run,
        args.n,
        args.out,
        label=args.label,
        balanced=args.labels == "balanced",
        seed=args.seed,
        grid=args.grid,
        overwrite=args.overwrite,
        device=args.device,
        engine=args.engine,
        spell=flag,
    )
    print(f"wrote {len(done.images)} images to {Path(args.out)}" + (f" and a grid to {args.grid}" if args.grid else ""))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from gankit.catalog import DATASETS
    from gankit.families import FAMILIES  # the registry itself: no torch import

    print("families:")
    for name, family in FAMILIES.items():
        print(f"  {name:<16} {family.kind:<7} {family.description}")
    print("presets:")
    for name, p in PRESETS.items():
        extra = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in p.items() if k in ("data.resolution", "data.channels"))
        print(f"  {name:<16} family={p['family']:<9} data={p.get('data.name')}" + (f" ({extra})" if extra else ""))
    print("datasets:")
    for name, desc in DATASETS.items():
        print(f"  {name:<16} {desc}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """``gankit cache``: everything gankit keeps on disk (see :mod:`gankit.caches`); ``--clear`` removes it."""
    from gankit.caches import REBUILT, TITLES, clear_kind, list_kept
    from gankit.formatting import human_bytes
    from gankit.paths import cache_dir

    kept = list_kept()
    kinds = list(dict.fromkeys(k.kind for k in kept))
    storage_there = any(p.exists() for k in kept if k.kind == "storage" for p in k.paths)
    if args.clear is not None:
        names = args.clear or list(REBUILT)
        prefixes = [n for n in names if n not in kinds]
        for name in dict.fromkeys(n for n in names if n in kinds):
            if name == "storage" and not storage_there:
                continue
            freed, removed, busy = clear_kind(name)
            if name == "storage":
                print(f"removed {len(removed)} cache(s), {human_bytes(freed)} freed")
            elif removed:
                print(f"removed {name}: {human_bytes(freed)} freed ({', '.join(map(str, removed))})")
            for b in busy:
                print(f"  kept {b}: another process is building it")
        if prefixes:
            from gankit.data.storage import clear_caches

            gone, busy_caches = clear_caches(prefixes)
            if not gone and not busy_caches:
                print(
                    f"gankit cache: error: no cache named {' or '.join(prefixes)}* "
                    f"(kinds: {', '.join(kinds)}; see: gankit cache)",
                    file=sys.stderr,
                )
                return 1
            print(f"removed {len(gone)} cache(s), {human_bytes(sum(e.bytes for e in gone))} freed")
            for e in busy_caches:
                print(f"  kept {e.path.name}: another process is building it")
        if not args.clear:
            left = [k for k in kept if k.kind not in REBUILT and k.files]
            if left:
                sizes = ", ".join(f"{k.kind} ({human_bytes(k.bytes)})" for k in left)
                print(f"kept {sizes}: name a kind to remove it (gankit cache --clear KIND)")
        return 0

    entries = []
    root = cache_dir() / "storage"
    if storage_there:  # the storage module loads torch: only when there is something to list
        from gankit.data.storage import list_caches

        entries = list_caches()
    print(f"decoded-data caches in {root}: {len(entries)}, {human_bytes(sum(e.bytes for e in entries))}")
    width = max((len(e.path.name) for e in entries), default=0)
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used))
        items = f"{e.items:,} items" if e.items else ""
        print(f"  {e.path.name:<{width}}  {human_bytes(e.bytes):>9}  {e.what:<6} {items:>14}  used {used}  {e.source}")
    others = [k for k in kept if k.kind != "storage"]
    print("also kept (remove with: gankit cache --clear KIND):")
    width = max(len(k.kind) for k in others)
    for k in others:
        what = k.title + (f", {k.note}" if k.note else "")
        files = f"{k.files:,} file" + ("s" if k.files != 1 else "")
        print(f"  {k.kind:<{width}}  {human_bytes(k.bytes):>9}  {files:>11}  {k.path}  {what}")
    print(f"in all: {human_bytes(sum(k.bytes for k in kept))}")
    rebuilt = ", ".join(REBUILT[:-1]) + " and " + REBUILT[-1]
    print(
        f"remove: gankit cache --clear [KIND|NAME ...]  (no argument: {rebuilt}, which the next run rebuilds;\n"
        f"  KIND: {', '.join(dict.fromkeys([*TITLES, *kinds]))}; NAME: decoded-data caches by name prefix)"
    )
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    """``gankit translate|colorize RUN INPUTS --out OUT``: see :mod:`gankit.translate`; exit 1 when
    no input could be read."""
    from gankit.translate import colorize_files, translate_files

    common: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "fmt": args.format,
        "quality": args.quality,
        "overwrite": args.overwrite,
        "train_mode": args.train_mode,
        "device": args.device,
        "engine": args.engine,
        "spell": flag,
    }
    if args.command == "translate":
        done = translate_files(
            args.run,
            args.inputs,
            args.out,
            strategy=args.strategy,
            max_side=args.max_side,
            max_memory=args.max_memory,
            **common,
        )
    else:
        done = colorize_files(args.run, args.inputs, args.out, **common)
    mode = "train" if done.train_mode else "eval"
    print(f"wrote {len(done.written)} image(s) under {Path(args.out)} ({mode} mode, {done.checkpoint})")
    return 0 if done.written else 1


def cmd_export(args: argparse.Namespace) -> int:
    """``gankit export RUN --out G.onnx``: see :mod:`gankit.export`."""
    from gankit.export import export_onnx

    export_onnx(args.run, args.out, checkpoint=args.checkpoint, pipeline=args.pipeline, overwrite=args.overwrite)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``gankit import pix2pix-repo|dcgan-example ...``: see :mod:`gankit.interop`."""
    from gankit.interop import import_dcgan_example, import_pix2pix_repo

    if args.source == "pix2pix-repo":
        run = import_pix2pix_repo(
            args.netG, args.out, task=args.task, netD=args.netD, dropout=not args.no_dropout, overwrite=args.overwrite
        )
        use = f"gankit {'colorize' if args.task == 'colorize' else 'translate'} {run} INPUT --out OUT"
    else:
        run = import_dcgan_example(args.netG, args.out, netD=args.netD, overwrite=args.overwrite)
        use = f"gankit sample {run} --n 64 --out OUT"
    print(f"imported {args.netG}{' and ' + args.netD if args.netD else ''} into {run}; try: {use}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``gankit report RUN``: see :mod:`gankit.report`."""
    from gankit.report import write_report

    write_report(args.run, args.out, overwrite=args.overwrite, device=args.device)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``gankit serve RUN [RUN ...]``: see :mod:`gankit.serve` (gradio is imported there)."""
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be 1..65535")
    from gankit.serve import serve

    serve(args.runs, host=args.host, port=args.port, share=args.share, device=args.device, engine=args.engine)
    return 0


def _add_engine_option(p: argparse.ArgumentParser) -> None:
    """``--engine`` of sample, translate, colorize, eval and serve (see gankit.engine; no torch import here)."""
    p.add_argument(
        "--engine",
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the generator: onnxruntime (a verified ONNX export, cached per snapshot; needs "
        "pip install 'gankit[export]'), torch, or auto: onnxruntime where it can run the model as it "
        "samples, else torch (default: $GANKIT_ENGINE, else auto)",
    )


def _add_checkpoint_option(p: argparse.ArgumentParser) -> None:
    """``--checkpoint`` with the one default of translate, colorize, eval and export
    (gankit.sampling.DEFAULT_CHECKPOINT; a test keeps the two equal)."""
    p.add_argument(
        "--checkpoint",
        default="last",
        metavar="best|last|PATH",
        help="snapshot of a run folder: last (G_last.pt), best (G_best.pt, lowest val L1: often blurrier), "
        "or a checkpoint file",
    )


def _sample_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit sample``."""
    s = sub.add_parser(
        "sample",
        help="generate images from a trained noise-to-image model (gan, cgan, dcgan)",
        description="Generate images from a trained gan, cgan or dcgan run; one PNG per image, optionally a grid.",
    )
    s.add_argument("run", help="run folder or checkpoint file")
    s.add_argument("--n", type=int, default=64, help="number of images")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--label", help="cgan: class of every sample, as index or name (e.g. 7 or Sneaker)")
    g.add_argument("--labels", choices=["balanced", "random"], default="random", help="cgan: how labels are chosen")
    s.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same images)")
    s.add_argument("--out", required=True, help="folder for the PNG files")
    s.add_argument("--grid", help="also write one grid image here (.png or .jpg)")
    s.add_argument("--overwrite", action="store_true", help="replace existing files in --out and --grid")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_engine_option(s)


def _image_parser(sub: argparse._SubParsersAction, name: str, what: str) -> None:
    """``gankit translate`` or ``gankit colorize``: the same options, plus translate's size and memory ones."""
    t = sub.add_parser(
        name,
        help=what,
        description=f"{what[0].upper()}{what[1:]}.\nFolders are searched recursively and their tree is "
        "mirrored under --out (in/a/x.jpg -> OUT/a/x.png);\nexisting files are kept unless --overwrite.",
    )
    t.add_argument("run", help="run folder or checkpoint file")
    t.add_argument("inputs", nargs="+", help="image files or folders")
    t.add_argument("--out", required=True, help="output folder (input folders' subfolders are mirrored)")
    _add_checkpoint_option(t)
    t.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    t.add_argument("--format", choices=["png", "jpg"], default="png", help="output file format")
    t.add_argument("--quality", type=int, metavar="N", help="JPEG quality 1-100 with --format jpg (default 95)")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument(
        "--eval-mode",
        dest="train_mode",
        action="store_false",
        help="dropout off, the BatchNorm statistics stored in the snapshot (default, unless the run "
        "was trained with train.sampling=train; deterministic)",
    )
    mode.add_argument(
        "--train-mode",
        dest="train_mode",
        action="store_true",
        help="dropout on and per-image statistics, as the reference pix2pix test script "
        "(the default for a run trained with train.sampling=train)",
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_engine_option(t)
    if name == "translate":
        # No default here: an explicit --strategy is refused above --max-memory, while the
        # default gives way to tiles (gankit.translate.plan_strategies).
        t.add_argument(
            "--strategy",
            choices=["pad", "resize", "tile"],
            help="how to fit any size to the U-Net: resize (default: to the training size and back; "
            "best in benchmarks/quality_strategies.py), tile (training-size tiles, blended), "
            "pad (whole image, reflect-padded: most memory)",
        )
        t.add_argument(
            "--max-side",
            type=int,
            metavar="N",
            help="shrink images whose longer side exceeds N pixels before translating (output keeps the size)",
        )
        t.add_argument(
            "--max-memory",
            type=float,
            metavar="GB",
            help="memory one image may take (default: half the RAM, or 80%% of the GPU's)",
        )
    t.set_defaults(train_mode=None)  # the snapshot's mode (train.sampling)


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit eval``."""
    e = sub.add_parser(
        "eval",
        help="metrics of a trained model (FID/KID/precision-recall, L1/PSNR/SSIM, ...)",
        description="Score a run and append the numbers to RUN/eval.jsonl (plotted in RUN/metrics.png).\n"
        "Noise models are compared with the real test split: in Inception-v3 space when its weights\n"
        "are on the machine, and in the space of gankit's domain classifier (shipped for MNIST and\n"
        "Fashion-MNIST; `gankit train classifier` makes one for other labelled data).\n"
        "Image-to-image models are scored on their val split.\n"
        "When no metric can be computed, eval writes nothing, prints the fix and exits 1.",
    )
    e.add_argument("run", nargs="?", help="run folder or checkpoint file")
    e.add_argument("--metrics", nargs="+", help="metric names (default: the family's standard set)")
    e.add_argument("--n", type=int, default=10000, help="generated samples, and at most this many reference images")
    e.add_argument("--split", help="reference split: test (noise models, default) or val (image-to-image)")
    _add_checkpoint_option(e)
    e.add_argument(
        "--classifier",
        metavar="PATH",
        help="domain classifier for the *_clf metrics: a .pt file, 'shipped' or 'user' (the one gankit train "
        "classifier wrote to the cache); default: the shipped one (fashion-mnist, mnist) unless you installed "
        "your own with gankit train classifier --install; for other data the user-trained one",
    )
    e.add_argument(
        "--real",
        metavar="DATASET",
        help="instead of a run: real train split vs test split (the floor); a dataset name (found where "
        "gankit train finds it, or where a run in ./runs recorded it) or a data folder",
    )
    e.add_argument("--data", help="with --real: the dataset's folder")
    e.add_argument("--seed", type=int, default=0, help="seed of the noise and of the reference subset")
    e.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_engine_option(e)


def _export_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit export``."""
    x = sub.add_parser(
        "export",
        help="export a generator to ONNX, checked against PyTorch",
        description="Export the generator of a run to ONNX (fp32, eval mode). The file is written only after "
        "onnxruntime reproduces PyTorch on random inputs at two sizes (max abs difference <= 1e-4).",
    )
    x.add_argument("run", help="run folder or checkpoint file")
    _add_checkpoint_option(x)
    x.add_argument("--format", choices=["onnx"], default="onnx", help="output format")
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument(
        "--pipeline",
        action="store_true",
        help="colorize models: a graph from a uint8 RGB/gray image (H, W, C) to the colourized uint8 RGB image "
        "at full size (Lab conversion inside), so a deployment needs only onnxruntime",
    )
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _import_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit import pix2pix-repo|dcgan-example``."""
    im = sub.add_parser(
        "import",
        help="turn a reference implementation's checkpoint into a gankit run folder",
        description="Import weights trained with a reference implementation into a gankit run folder, "
        "usable by translate, colorize, sample, eval and export.",
    )
    isub = im.add_subparsers(dest="source", required=True, metavar="SOURCE")
    jz = isub.add_parser(
        "pix2pix-repo",
        help="junyanz/pytorch-CycleGAN-and-pix2pix: unet_256/unet_128 G, basic/n_layers PatchGAN D",
    )
    jz.add_argument("netG", help="the generator's .pth file (e.g. checkpoints/NAME/latest_net_G.pth)")
    jz.add_argument("--netD", help="the discriminator's .pth file (latest_net_D.pth), optional")
    jz.add_argument(
        "--task",
        choices=["pix2pix", "colorize"],
        default="pix2pix",
        help="what the model does: pix2pix (image -> image) or colorize (L -> ab)",
    )
    jz.add_argument(
        "--no-dropout", action="store_true", help="the model was trained with --no_dropout (matters in --train-mode)"
    )
    pe = isub.add_parser("dcgan-example", help="pytorch/examples dcgan: Generator (nz, ngf, nc from the shapes)")
    pe.add_argument("netG", help="the generator's .pth file (e.g. netG_epoch_24.pth)")
    pe.add_argument("--netD", help="the discriminator's .pth file, optional")
    for q in (jz, pe):
        q.add_argument("--out", required=True, help="the run folder to create")
        q.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


def _report_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit report``."""
    rp = sub.add_parser(
        "report",
        help="one self-contained HTML page of a run (summary, curves, samples, eval)",
        description="Write one HTML file that shows a run: summary, config, loss curves, validation and eval "
        "metrics over time, every epoch's sample grid (slider), the final eval table, and for image-to-image "
        "runs the best and worst val examples by L1. Images are embedded: it opens offline and can be mailed.",
    )
    rp.add_argument("run", help="run folder")
    rp.add_argument("--out", help="the .html file to write (default: RUN/report.html)")
    rp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    rp.add_argument("--device", default="auto", help="image-to-image runs: where val examples are scored")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit serve``."""
    sv = sub.add_parser(
        "serve",
        help="a local web demo of trained runs (gradio; pip install 'gankit[demo]')",
        description="Serve a web page with one tab per run: sample grids and latent walks (gan, cgan, dcgan), "
        "draw or upload a label map (pix2pix), upload a photo (colorize).\nBinds 127.0.0.1 unless --host; "
        "no public link unless --share.",
    )
    sv.add_argument("runs", nargs="+", metavar="RUN", help="run folders or checkpoint files")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface of this machine)")
    sv.add_argument("--port", type=int, default=7860, help="port to listen on")
    sv.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    sv.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_engine_option(sv)


def _cache_parser(sub: argparse._SubParsersAction) -> None:
    """``gankit cache``."""
    ca = sub.add_parser(
        "cache",
        help="list or clear what gankit keeps on disk (caches, built and downloaded data sets)",
        description="List, with sizes, everything gankit keeps in $XDG_CACHE_HOME/gankit (~/.cache/gankit)\n"
        "and what it built or downloaded into $GANKIT_DATA: decoded-data caches (storage),\n"
        "reference statistics (stats), ONNX exports of the onnxruntime engine (onnx), classifiers you\n"
        "trained (classifiers), facades pairs (facades), downloaded data sets. --clear removes by kind,\n"
        "or decoded-data caches by name; without a name, storage, stats and onnx (rebuilt when needed).\n"
        "Data you placed yourself are never removed.",
    )
    ca.add_argument(
        "--clear",
        nargs="*",
        metavar="KIND|NAME",
        help="remove a kind (storage, stats, onnx, classifiers, facades, a data set) or the decoded-data caches "
        "whose names start with NAME; without a name: storage, stats and onnx",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``gankit`` parser: one small function per subcommand, in the order ``--help`` lists them."""
    parser = _Parser(prog="gankit", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _sample_parser(sub)
    for name, what in (
        ("translate", "pix2pix: translate images of any size"),
        ("colorize", "colorize photos at full resolution"),
    ):
        _image_parser(sub, name, what)
    _eval_parser(sub)
    _export_parser(sub)
    _import_parser(sub)
    _report_parser(sub)
    _serve_parser(sub)
    sub.add_parser(
        "list", help="show families, presets and datasets", description="Show families, presets and datasets."
    )
    _cache_parser(sub)
    return parser


def _exit_code(e: BaseException) -> int:
    """The exit code of an error that ends a command (the table of :class:`gankit.errors.ExitCode`)."""
    from gankit.errors import ExitCode, MissingExtra, OutputExists

    if isinstance(e, (ConfigError, OutputExists, MissingExtra)):
        return ExitCode.USAGE
    return ExitCode.ERROR


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":  # answers without torch
        return cmd_list(args)
    with contextlib.ExitStack() as early:
        if args.command in ("translate", "colorize") and _may_run_onnxruntime(args):
            from gankit.onnxcache import open_early, snapshot_guess

            # the cached session opens in a thread while torch is imported (0.2 s of 2 on the 2-core CPU)
            early.enter_context(open_early(snapshot_guess(args.run, args.checkpoint)))
        return _run_command(args)


def _may_run_onnxruntime(args: argparse.Namespace) -> bool:
    """Whether a translate/colorize command might run on onnxruntime (decided for good by the engine)."""
    engine = args.engine or os.environ.get("GANKIT_ENGINE") or "auto"
    return engine != "torch" and args.device in ("auto", "cpu") and not args.train_mode


def _run_command(args: argparse.Namespace) -> int:
    # imported after parsing: these pull in torch, which --help and argument errors never need
    from gankit.data.errors import DataError
    from gankit.data.images import ImageReadError
    from gankit.errors import ExitCode, NonFiniteLoss, OutputExists, TrainingInterrupted
    from gankit.training.checkpoint import CheckpointError

    handlers = {
        "train": cmd_train,
        "sample": cmd_sample,
        "list": cmd_list,
        "eval": cmd_eval,
        "translate": cmd_translate,
        "colorize": cmd_translate,
        "export": cmd_export,
        "import": cmd_import,
        "report": cmd_report,
        "serve": cmd_serve,
        "cache": cmd_cache,
    }
    from gankit.locks import holding

    try:
        with holding():  # what a command locks with gankit.locks.hold is released when it ends
            return handlers[args.command](args)
    except (ConfigError, OutputExists, DataError, CheckpointError, ImageReadError, NonFiniteLoss, ValueError) as e:
        print(f"gankit {args.command}: error: {e}", file=sys.stderr)
        return _exit_code(e)
    except TrainingInterrupted as e:
        return 128 + e.signum
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run one ``gankit`` command; returns its exit code (README, "Exit codes").

    A reader that closes stdout early (``gankit cache | head -1``) ends the command quietly with
    :attr:`~gankit.errors.ExitCode.BROKEN_PIPE`, as other Unix tools, instead of a traceback.
    """
    _set_thread_waiting()
    try:
        try:
            return int(_run(argv))
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe prints a traceback
    except BrokenPipeError:
        from gankit.errors import ExitCode

        # Python flushes stdout again at exit: point it at /dev/null so that flush has nowhere to fail
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
