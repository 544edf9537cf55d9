"""Image-to-image inference on files: ``gankit translate`` (pix2pix) and ``gankit colorize``.

Both accept images of any size and aspect ratio and write outputs of exactly the input's size.

* translate (:func:`translate_files`): the U-Net runs on the image resized to its training size (by
  default), on the whole image reflect-padded to a multiple of its stride, or on blended
  training-size tiles (see :func:`gankit.inference.run_any_size`). Before anything runs, the memory
  each image needs is estimated; above ``max_memory`` (``--max-memory``) the default strategy gives
  way to ``tile`` (with a note), and an explicitly chosen one is refused with the options that would fit.
* colorize (:func:`colorize_files`): ab is predicted at the model's training resolution from a resized copy, upsampled
  to the full size and combined with the photo's own full-resolution L channel, so edges and fine
  detail come from the original, only the colour from the network (:func:`gankit.inference.colorize`).

A folder runs through :func:`gankit.pipeline.run_files`: files are decoded and written in worker
threads while the generator (through the engine of :mod:`gankit.engine`) runs on batches of
same-shape inputs; as many files are held at once as their memory estimates allow within
``--max-memory``, and the files written are the ones the one-at-a-time loop writes.

Outputs mirror the inputs: ``in/a/x.jpg`` given as the folder ``in`` is written to
``OUT/a/x.png``; files named directly go to ``OUT/<name>.png``. Nothing is overwritten unless
asked (``overwrite=True``, ``--overwrite``), and two inputs that would write the same output are an error. Each file
is written whole (temporary file, then rename), and a second run into the same ``--out`` while one
is writing there refuses (:func:`gankit.locks.output_lock`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from gankit.data.errors import DataError
from gankit.data.images import SkipReport, list_images, open_image, pil_to_tensor, to_rgb
from gankit.errors import OutputExists
from gankit.formatting import Spelling, image_size, keyword
from gankit.inference import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Fitted,
    colorize,
    colorize_input,
    colorize_output,
    estimate_memory,
    fit_to_generator,
    restore_size,
    run_fitted,
)
from gankit.locks import atomic_path, output_lock
from gankit.pipeline import Prepared, run_files
from gankit.sampling import LoadedGenerator, load_generator

FORMATS = {"png": "PNG", "jpg": "JPEG"}
DEFAULT_JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNGs translate/colorize/serve write. PIL's default (6) made encoding as slow as the
generator: a 1024x768 photo took 0.99 s at 6, 0.33 s at 3 and 0.19 s at 1 for a 5% larger file (1.14 vs
1.20 MB; OpenCV's default is 1 too). Lossless either way."""

GB = 1e9
LARGE = 2 * GB
"""Estimates above this are printed before the run starts (the largest image's), even under the limit."""
KERNEL_OVERHEAD = 1.36
PROCESS_BASELINE = 0.53 * GB
"""Peak RSS = PROCESS_BASELINE + weights + KERNEL_OVERHEAD x counted tensor bytes, fitted to the
peaks of 3000x4000 CPU translates (ngf=64: pad 7.09 GB, tile 1.65 GB, resize 1.66 GB; see
benchmarks/quality_strategies.py --memory). The overhead is what kernels keep beyond the tensors
(oneDNN's blocked copies of conv inputs and outputs); the baseline is Python, torch and PIL."""
COLORIZE_BYTES_PER_PIXEL = 104
"""Peak tensor bytes per pixel of one photo through :func:`colorize_image` and its PNG quantization,
besides the generator at its training size (counted by ``gankit.inference``'s tensor counter: 103.1
at 480x320 and 103.0 at 1500x1000; the sRGB <-> Lab conversions hold several full-size copies)."""
MAX_BATCH = 4
"""Most same-shape images per generator call in a folder. On one thread of the 2-core CPU a batch of 4
ran the colorize unet_256 at 103-114 ms per image against 163-191 ms one by one on the torch engine
(channels_last), and at 82-85 against 86-90 ms on onnxruntime."""


@dataclass(frozen=True)
class Job:
    """One input file and the output file it becomes."""

    src: Path
    dst: Path


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the images inside (recursively, sorted)."""
    return [job.src for job in plan_outputs(items, Path("."), "png")]


def plan_outputs(items: Iterable[str | Path], out_dir: Path, fmt: str = "png", command: str = "translate") -> list[Job]:
    """Map inputs to outputs under ``out_dir``, mirroring each input folder's tree.

    A folder's images keep their path relative to that folder (``in/a/x.jpg`` -> ``out/a/x.png``);
    a file named directly is written as ``out/<stem>.<fmt>``. Raises :class:`DataError` for a
    missing input, an empty folder, or two inputs that would write the same output file (the
    message names ``command``, the subcommand that was run).
    """
    jobs: list[Job] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError(f"{p}: no image files found")
            jobs += [Job(f, out_dir / f.relative_to(p).with_suffix(f".{fmt}")) for f in found]
        elif p.is_file():
            jobs.append(Job(p, out_dir / f"{p.stem}.{fmt}"))
        else:
            raise DataError(f"{p}: no such file or folder")
    seen: dict[Path, Path] = {}
    for job in jobs:
        other = seen.setdefault(job.dst, job.src)
        if other != job.src:
            raise DataError(
                f"{other} and {job.src} would both be written to {job.dst}; "
                f"rename one or {command} them in separate runs"
            )
    return jobs


class OutputsExist(DataError, OutputExists):
    """An output file exists and --overwrite was not given (exit code 2)."""


def check_overwrite(jobs: list[Job], overwrite: bool, spell: Spelling = keyword) -> None:
    """Refuse (before anything is written) to replace existing outputs unless ``overwrite``
    (``spell`` names the settings in the message, see :class:`gankit.formatting.Spelling`)."""
    if overwrite:
        return
    existing = [j.dst for j in jobs if j.dst.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputsExist(
            f"{existing[0]} already exists{more}; pass {spell('overwrite', True)} to replace, "
            f"or choose another {spell('out')}"
        )


def load_rgb01(path: Path) -> Tensor:
    """(1, 3, H, W) float in [0, 1]; grayscale files become three equal channels."""
    return pil_to_tensor(to_rgb(open_image(path))).unsqueeze(0).float() / 255.0


def save_image(img: Tensor, path: Path, fmt: str = "png", quality: int = DEFAULT_JPEG_QUALITY) -> None:
    """Write a (1, 3, H, W) image in [0, 1] as PNG or JPEG, atomically: a run stopped mid-write
    leaves no file (and no temporary file), never a torn image."""
    arr = (img[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    options = {"quality": quality} if fmt == "jpg" else {"compress_level": PNG_COMPRESS_LEVEL}
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format=FORMATS[fmt], **options)


def _model_input(loaded: LoadedGenerator, rgb01: Tensor) -> Tensor:
    x = rgb01
    if loaded.info.in_channels == 1 and x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x * 2 - 1


@torch.no_grad()
def translate_image(
    loaded: LoadedGenerator, rgb01: Tensor, *, strategy: str = DEFAULT_STRATEGY, max_side: int | None = None
) -> Tensor:
    """pix2pix output for one (1, C, H, W) image in [0, 1]; returns (1, 3, H, W) in [0, 1].

    The generator runs as ``loaded(...)``, through its engine if one is attached (:mod:`gankit.engine`).
    """
    x, fitted = translate_input(loaded, rgb01, strategy=strategy, max_side=max_side)
    return translate_output(run_fitted(loaded, x, fitted), fitted)


@torch.no_grad()
def translate_input(
    loaded: LoadedGenerator, rgb01: Tensor, *, strategy: str = DEFAULT_STRATEGY, max_side: int | None = None
) -> tuple[Tensor, Fitted]:
    """The first step of :func:`translate_image`: the generator's input for the image, and how it was fitted."""
    device = next(loaded.G.parameters()).device
    x = _model_input(loaded, rgb01.to(device))
    return fit_to_generator(
        x, multiple=loaded.G.multiple, resolution=loaded.info.resolution, strategy=strategy, max_side=max_side
    )


@torch.no_grad()
def translate_output(y: Tensor, fitted: Fitted) -> Tensor:
    """The last step of :func:`translate_image`: the generator's output at the image's size, RGB in [0, 1]."""
    y = (restore_size(y, fitted).float() + 1) / 2
    return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y


def translate_memory(loaded: LoadedGenerator, h: int, w: int, strategy: str, max_side: int | None = None) -> int:
    """Estimated peak bytes of :func:`translate_image` on an h x w image, weights included.

    The tensors are counted exactly (:func:`gankit.inference.estimate_memory`, plus the decoded
    image and the [0, 1] output), scaled by :data:`KERNEL_OVERHEAD` for what kernels keep, plus
    the weights and :data:`PROCESS_BASELINE`: an estimate of the process's peak RSS.
    """
    return int(_fixed_bytes(loaded) + _translate_bytes(loaded, h, w, strategy, max_side))


def _fixed_bytes(loaded: LoadedGenerator) -> int:
    """What a process holds whatever the images: :data:`PROCESS_BASELINE` and the weights."""
    weights = sum(t.numel() * t.element_size() for t in [*loaded.G.parameters(), *loaded.G.buffers()])
    return int(PROCESS_BASELINE + weights)


def _translate_bytes(loaded: LoadedGenerator, h: int, w: int, strategy: str, max_side: int | None) -> int:
    """The part of :func:`translate_memory` that one image adds."""
    G = loaded.G
    assert loaded.profile is not None, "load_generator profiles image-to-image models"
    c = loaded.info.in_channels
    px = h * w
    run = estimate_memory(
        loaded.profile, (1, c, h, w), multiple=G.multiple, resolution=loaded.info.resolution,
        strategy=strategy, max_side=max_side,
    )  # fmt: skip
    decoded = 3 * px + 12 * px  # uint8 RGB and the float copy in [0, 1]
    model_input = 4 * c * px
    post = 2 * 12 * px  # (y + 1) / 2 and its temporary
    return int(KERNEL_OVERHEAD * (decoded + model_input + max(run, post)))


def _colorize_bytes(loaded: LoadedGenerator, h: int, w: int) -> int:
    """What one photo adds to the memory of ``gankit colorize``: its conversions at full size and
    the generator at the training size (see :data:`COLORIZE_BYTES_PER_PIXEL`)."""
    assert loaded.profile is not None, "load_generator profiles image-to-image models"
    res = loaded.info.resolution
    return int(KERNEL_OVERHEAD * (COLORIZE_BYTES_PER_PIXEL * h * w + loaded.profile.peak_bytes_per_pixel * res * res))


def _size(nbytes: float) -> str:
    return f"{nbytes / GB:.1f} GB" if nbytes >= 0.1 * GB else f"{nbytes / 1e6:.0f} MB"


def default_memory_limit(device: torch.device) -> float:
    """Bytes a single translate may use: half of the machine's RAM, or 80% of the GPU's memory."""
    if device.type == "cuda":
        return 0.8 * torch.cuda.get_device_properties(device).total_memory
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a modest machine
        return 8 * GB


def image_sizes(jobs: list[Job]) -> dict[Path, tuple[int, int] | None]:
    """Every input's (H, W), from the file headers (None where unreadable)."""
    return {job.src: _image_size(job.src) for job in jobs}


def _image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the header (no decoding); None if unreadable (reported when it is loaded)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotations by 90 degrees
                h, w = w, h
            return h, w
    except Exception:  # noqa: BLE001 -- any failure is reported properly by open_image later
        return None


def plan_strategies(
    loaded: LoadedGenerator,
    jobs: list[Job],
    *,
    strategy: str | None,
    max_side: int | None,
    limit: float,
    say: Callable[[str], object] = print,
    spell: Spelling = keyword,
    sizes: dict[Path, tuple[int, int] | None] | None = None,
) -> dict[Path, str]:
    """The strategy for each input, checked against the memory ``limit`` before anything runs.

    With ``strategy=None`` (the default, :data:`gankit.inference.DEFAULT_STRATEGY`), an image
    whose estimate exceeds ``limit`` is tiled instead, with a one-line note; an explicitly chosen
    strategy over the limit, or an image too large even for tiles, is a :class:`DataError` that
    names the options that help (as ``spell`` names them). Under the limit, the largest estimate
    is still told to ``say`` if it is over :data:`LARGE`. ``sizes``: the inputs' (H, W) when
    already read (:func:`image_sizes`).
    """
    chosen = strategy or DEFAULT_STRATEGY
    out: dict[Path, str] = {}
    largest: tuple[int, str] = (0, "")
    sizes = sizes if sizes is not None else image_sizes(jobs)
    for job in jobs:
        size = sizes[job.src]
        out[job.src] = chosen
        if size is None:
            continue
        h, w = size
        need = translate_memory(loaded, h, w, chosen, max_side)
        what = f"{job.src}: {image_size(w, h)} needs about {_size(need)} with {spell('strategy', chosen)}"
        if need <= limit:
            largest = max(largest, (need, what))
            continue
        tiled = translate_memory(loaded, h, w, "tile", max_side)
        if strategy is None and chosen != "tile" and tiled <= limit:
            say(f"{what} (limit {_size(limit)}); using {spell('strategy', 'tile')} (about {_size(tiled)})")
            out[job.src] = "tile"
            continue
        hints = [f"{spell('strategy', 'tile')} (about {_size(tiled)})"] if chosen != "tile" and tiled <= limit else []
        side = max(h, w) // 2
        while side >= loaded.info.resolution // 2 and translate_memory(loaded, h, w, chosen, side) > limit:
            side //= 2
        fits = side >= loaded.info.resolution // 2  # the halving above stopped because it fit
        if fits and (max_side is None or side < max_side):
            hints.append(f"{spell('max_side', side)} (about {_size(translate_memory(loaded, h, w, chosen, side))})")
        hints.append(f"a higher {spell('max_memory')} GB")
        options = ", ".join(hints[:-1]) + (" or " if len(hints) > 1 else "") + hints[-1]
        raise DataError(f"{what}, over the limit of {_size(limit)}; use {options}")
    if largest[0] > LARGE:  # worth knowing before a long run; one line for the largest image only
        say(f"{largest[1]} (limit {_size(limit)}, {spell('max_memory')})")
    return out


@torch.no_grad()
def colorize_image(loaded: LoadedGenerator, rgb01: Tensor) -> Tensor:
    """Colour version of a (1, 3, H, W) photo in [0, 1] (grayscale or colour) at its full resolution
    (:func:`gankit.inference.colorize`).

    The generator runs as ``loaded(...)``, through its engine if one is attached (:mod:`gankit.engine`).
    """
    return colorize(loaded, rgb01.to(next(loaded.G.parameters()).device), loaded.info.resolution)


@dataclass(frozen=True)
class WrittenImages:
    """What :func:`translate_files` or :func:`colorize_files` did."""

    written: list[Path]
    """The output files, in input order."""
    skipped: int
    """Inputs that could not be read (told, by reason, in one line to ``log``)."""
    checkpoint: Path
    """The generator snapshot that ran."""
    train_mode: bool
    """Whether it ran with dropout on and per-image statistics (see ``train_mode``)."""


def translate_files(
    run: str | Path,
    inputs: Iterable[str | Path],
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    strategy: str | None = None,
    max_side: int | None = None,
    max_memory: float | None = None,
    fmt: str = "png",
    quality: int | None = None,
    overwrite: bool = False,
    train_mode: bool | None = None,
    device: str = "auto",
    engine: str | None = None,
    workers: int | None = None,
    log: Callable[[str], object] = print,
    spell: Spelling = keyword,
) -> WrittenImages:
    """Translate image files with a pix2pix run (``gankit translate``), mirroring folders under ``out``.

    Args:
        run: a run folder or checkpoint file of an image-to-image model (not a colorization one).
        inputs: image files and folders (searched recursively; see :func:`plan_outputs`).
        out: the output folder; existing outputs are refused unless ``overwrite``.
        checkpoint: snapshot of a run folder: ``"last"`` (default), ``"best"`` or a file
            (:func:`gankit.sampling.resolve_checkpoint`).
        strategy: ``"resize"``, ``"pad"`` or ``"tile"`` (:data:`gankit.inference.STRATEGIES`); None
            is the default strategy, which gives way to tiles above ``max_memory``.
        max_side: shrink images whose longer side exceeds this many pixels before translating.
        max_memory: GB the run may take (default: half the RAM, or 80% of the GPU's memory): one
            image's estimate must fit (see ``strategy``), and a folder holds as many images at once
            as their estimates fit.
        fmt: ``"png"`` or ``"jpg"``; ``quality`` is the JPEG quality (1-100, default 95).
        train_mode: True: dropout on and per-image statistics, as the reference pix2pix test script;
            False: eval mode; None (default): the mode the snapshot was written for (the run's
            ``train.sampling``: eval mode with its standing statistics, or train mode).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        engine: what runs the generator: ``auto``, ``torch`` or ``onnxruntime`` (:mod:`gankit.engine`;
            None: ``$GANKIT_ENGINE``, else ``auto``).
        workers: threads that decode and write files while the generator runs (default: one per
            core but one, at least 1 and at most 4); 0: one file at a time in the calling thread.
        log: where notes go (the engine, memory estimates, unreadable inputs).
        spell: how messages name these settings (:class:`gankit.formatting.Spelling`).

    Raises :class:`DataError` for a setting out of range, a missing input or a model of the wrong
    kind, and :class:`OutputsExist` for an output that exists; nothing is written then.
    """
    if strategy is not None and strategy not in STRATEGIES:
        raise DataError(f"{spell('strategy', strategy)}: expected one of {', '.join(STRATEGIES)}")
    if max_side is not None and max_side < 1:
        raise DataError(f"{spell('max_side', max_side)}: must be a positive number of pixels")
    if max_memory is not None and not (max_memory > 0 and math.isfinite(max_memory)):
        raise DataError(f"{spell('max_memory', max_memory)}: must be a positive number of GB")
    settings = _Settings(
        "translate", fmt, quality, train_mode, engine, workers, log, spell, strategy, max_side, max_memory
    )
    return _convert_files(run, inputs, out, settings, checkpoint=checkpoint, overwrite=overwrite, device=device)


def colorize_files(
    run: str | Path,
    inputs: Iterable[str | Path],
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    fmt: str = "png",
    quality: int | None = None,
    overwrite: bool = False,
    train_mode: bool | None = None,
    device: str = "auto",
    engine: str | None = None,
    workers: int | None = None,
    log: Callable[[str], object] = print,
    spell: Spelling = keyword,
) -> WrittenImages:
    """Colorize photos at their full resolution with a colorize run (``gankit colorize``).

    The arguments are those of :func:`translate_files` (without its size and memory settings; a
    folder holds as many photos at once as fit in half the RAM, or 80% of the GPU's memory).
    """
    settings = _Settings("colorize", fmt, quality, train_mode, engine, workers, log, spell)
    return _convert_files(run, inputs, out, settings, checkpoint=checkpoint, overwrite=overwrite, device=device)


@dataclass(frozen=True)
class _Settings:
    """How :func:`_convert_files` runs: the command and the settings the caller chose."""

    command: str
    fmt: str
    quality: int | None
    train_mode: bool | None
    engine: str | None
    workers: int | None
    log: Callable[[str], object]
    spell: Spelling
    strategy: str | None = None
    max_side: int | None = None
    max_memory: float | None = None


def _convert_files(
    run: str | Path,
    inputs: Iterable[str | Path],
    out: str | Path,
    settings: _Settings,
    *,
    checkpoint: str | Path | None,
    overwrite: bool,
    device: str,
) -> WrittenImages:
    spell, fmt, quality = settings.spell, settings.fmt, settings.quality
    if fmt not in FORMATS:
        raise DataError(f"{spell('fmt', fmt)}: expected one of {', '.join(FORMATS)}")
    if quality is not None and fmt != "jpg":
        raise DataError(f"{spell('quality')} sets JPEG quality; add {spell('fmt', 'jpg')} (PNG is lossless)")
    if quality is not None and not 1 <= quality <= 100:
        raise DataError(f"{spell('quality', quality)}: must be 1..100 (95 is near-lossless, 75 is PIL's default)")
    out_dir = Path(out)
    jobs = plan_outputs(inputs, out_dir, fmt, settings.command)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{spell('out', out_dir)} is a file; pass a folder for the outputs")
    # A second run into the same folder refuses while this one writes, and the check for existing
    # outputs is made under the lock, so two runs never mix or overwrite each other's files.
    with output_lock(out_dir, f"gankit {settings.command}", option=spell("out")):
        check_overwrite(jobs, overwrite, spell)
        return _run_jobs(run, jobs, settings, checkpoint=checkpoint, device=device)


def _run_jobs(
    run: str | Path, jobs: list[Job], settings: _Settings, *, checkpoint: str | Path | None, device: str
) -> WrittenImages:
    from gankit.devices import resolve_device
    from gankit.engine import engine_name, use_engine
    from gankit.onnxcache import open_early
    from gankit.run import resolve_checkpoint
    from gankit.training.checkpoint import CheckpointError

    command, log, spell = settings.command, settings.log, settings.spell
    engine = engine_name(settings.engine, spell)  # a typo is refused before the model loads
    dev = resolve_device(device)
    family = "colorize" if command == "colorize" else "pix2pix"
    with contextlib.ExitStack() as early:  # the session opens while the snapshot loads
        if engine != "torch" and torch.device(dev).type == "cpu" and settings.train_mode is not True:
            with contextlib.suppress(CheckpointError):  # load_generator says what is wrong
                early.enter_context(open_early(resolve_checkpoint(run, checkpoint), threads=torch.get_num_threads()))
        loaded = load_generator(run, device=dev, which=checkpoint, family=family)
        if command == "colorize" and loaded.info.space != "lab":
            raise DataError(f"{loaded.path}: a '{loaded.family.name}' model, not a colorization model")
        if command == "translate" and loaded.info.space == "lab":
            raise DataError(f"{loaded.path}: a colorization model; use `gankit colorize`")
        max_gb = settings.max_memory
        limit = max_gb * GB if max_gb is not None else default_memory_limit(torch.device(dev))
        sizes = image_sizes(jobs)
        strategies: dict[Path, str] = {}
        if command == "translate":
            strategies = plan_strategies(
                loaded, jobs, strategy=settings.strategy, max_side=settings.max_side, limit=limit, say=log, spell=spell,
                sizes=sizes,
            )  # fmt: skip
        if settings.train_mode is not None:  # forced; else the snapshot's mode, as load_generator set it
            loaded.G.train(settings.train_mode)
        train_mode = loaded.G.training
        use_engine(loaded, settings.engine, log=log, spell=spell)

    def prepare(job: Job) -> Prepared:
        rgb = load_rgb01(job.src)
        if command == "colorize":
            return Prepared(*colorize_input(rgb.to(dev), loaded.info.resolution))
        x, fitted = translate_input(loaded, rgb, strategy=strategies[job.src], max_side=settings.max_side)
        return Prepared(x, fitted, batchable=fitted.tile is None)

    def generate(x: Tensor, contexts: list[Any]) -> Tensor:
        return loaded(x) if command == "colorize" else run_fitted(loaded, x, contexts[0])

    def finish(job: Job, y: Tensor, context: Tensor | Fitted) -> Path:
        result = colorize_output(y, context) if command == "colorize" else translate_output(y, context)
        save_image(result, job.dst, settings.fmt, settings.quality or DEFAULT_JPEG_QUALITY)
        return job.dst

    def image_bytes(src: Path, h: int, w: int) -> int:
        if command == "colorize":
            return _colorize_bytes(loaded, h, w)
        return _translate_bytes(loaded, h, w, strategies[src], settings.max_side)

    # As many images at once as their estimates fit beside the weights (at least one: the memory
    # guard above has checked that each image fits alone); in train mode one image per call, as
    # its batch statistics are the image's own.
    largest = max((image_bytes(src, *hw) for src, hw in sizes.items() if hw is not None), default=1)
    max_batch = 1 if train_mode else MAX_BATCH
    at_once = int(max(1, min(3 * max_batch, (limit - _fixed_bytes(loaded)) // max(largest, 1))))
    # One core for the generator, the others (at most 4) for the files: on the busy 2-core machine a
    # second file thread slowed the generator more than it helped (8 photos: 1.12-1.18 s, 1.28-1.49 s).
    workers = settings.workers if settings.workers is not None else max(1, min(4, (os.cpu_count() or 2) - 1))
    report = SkipReport("inputs")
    results = run_files(
        jobs, prepare, generate, finish, report=report, desc=command, workers=workers, in_flight=at_once,
        max_batch=max_batch,
    )  # fmt: skip
    if report.total:
        log(report.summary())
    return WrittenImages([r for r in results if r is not None], report.total, loaded.path, train_mode)
