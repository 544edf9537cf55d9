"""``gankit serve``: a local web demo of trained runs, one tab per run, built with gradio.

Every tab calls the library functions the CLI calls (:func:`gankit.sampling.load_generator`,
:func:`gankit.sampling.sample`, :func:`gankit.translate.translate_image` and
:func:`gankit.translate.colorize_image`), so a grid shown here is the grid ``gankit sample`` writes
for the same seed, and a translated image is the file ``gankit translate`` writes.

What a page offers per family:

* gan / dcgan: a grid of N samples from a seed ("new seed" draws one), and a latent walk (spherical
  interpolation) between the first images of two seeds;
* cgan: the same for one chosen class, and a class-by-seed grid (one seed per row, one class per column);
* pix2pix: a label map uploaded or drawn with the facade label palette (the 12 CMP classes) -> photo
  at the input's size; the first val pairs as examples;
* colorize: any photo -> colourized at full resolution, with a download of the full-size PNG.

Safe by default: the server binds 127.0.0.1, makes no public link unless ``share``, serves no file
but its own outputs (gradio serves only uploads, outputs and ``allowed_paths``, left empty here),
refuses uploads above :data:`MAX_UPLOAD_BYTES` or :data:`MAX_UPLOAD_PIXELS` before decoding them
(the decoding itself goes through :func:`gankit.data.images.open_image`, the guard training data
uses against decompression bombs), runs one model call at a time per run (a queue), and reports bad
input as a one-sentence error on the page. gradio is imported only in here (``pip install 'gankit[demo]'``).
"""

from __future__ import annotations

import functools
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gankit.data.errors import DataError
from gankit.data.images import ImageReadError
from gankit.run import RunFolder
from gankit.rundata import RunData, run_data
from gankit.sampling import LoadedGenerator, choose_labels, load_generator, sample
from gankit.training.checkpoint import CheckpointError

DEMO_HINT = "gankit serve needs gradio: pip install 'gankit[demo]'"

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Largest upload accepted (bytes); gradio refuses bigger files before they reach the model."""
MAX_UPLOAD_PIXELS = 4096 * 4096
"""Largest image accepted (pixels, about 16.8 Mpx: a 4000x3000 photo fits), checked from the header."""
MAX_GRID = 64
"""Most samples in one grid."""
MAX_WALK = 16
"""Most frames in one latent walk."""
MAX_SEED = 2**31 - 1
GB = 1e9

FACADE_CLASSES = (
    "background", "facade", "window", "door", "cornice", "sill",
    "balcony", "blind", "deco", "molding", "pillar", "shop",
)  # fmt: skip
"""Names of the CMP labels 1..12, in the order of :data:`gankit.data.facades.CMP_PALETTE`."""
CANVAS_SIZE = 256
CANVAS_FILL = 2
"""The drawing canvas starts as all facade (label 2)."""


class UserError(Exception):
    """Bad input from the page: shown there as one sentence."""


# ---------------------------------------------------------------------------------------- runs


def _read_step(path: Path) -> int | None:
    """The training step stored in a generator snapshot (memory-mapped: the weights are not read)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        step = state.get("step") if isinstance(state, dict) else None
        return int(step) if step is not None else None
    except Exception:  # noqa: BLE001 -- the step is decoration; load_generator has checked the file
        return None


class RunModel:
    """One run folder served by the app: its generator (loaded once, run through ``engine``: see
    :mod:`gankit.engine`; None: ``$GANKIT_ENGINE``, else ``auto``) and what the page says about it."""

    def __init__(
        self,
        run: str | Path,
        device: str | torch.device = "cpu",
        engine: str | None = None,
        log: Callable[[str], object] = print,
    ) -> None:
        self.run = Path(run)
        self.device, self.engine, self.log = device, engine, log
        self.lock = threading.Lock()
        self.loaded: LoadedGenerator = self._load()
        self.step = _read_step(self.loaded.path)
        self.loaded_at = time.time()

    def _load(self) -> LoadedGenerator:
        from gankit.engine import use_engine

        loaded = load_generator(self.run, device=self.device)
        use_engine(loaded, self.engine, log=lambda line: self.log(f"{self.run}: {line}"))
        return loaded

    @property
    def family(self) -> str:
        return self.loaded.family.name

    @property
    def task(self) -> str:
        """gan, cgan, dcgan, pix2pix or colorize (an imported colorizer reports its family as pix2pix)."""
        if self.loaded.family.kind == "paired":
            return "colorize" if self.loaded.info.space == "lab" else "pix2pix"
        return self.family

    @property
    def name(self) -> str:
        return RunFolder.at(self.run).path.name or str(self.run)

    def reload(self) -> str:
        """Load the newest snapshot of the run again (a run that is still training writes new ones)."""
        with self.lock:
            self.loaded = self._load()
            self.step = _read_step(self.loaded.path)
            self.loaded_at = time.time()
        return self.describe()

    def recorded_data(self) -> RunData:
        """What the run trained on (run.json), else what its checkpoint recorded."""
        folder = RunFolder.of_checkpoint(self.loaded.path)
        record = folder.read_record() if folder is not None else {}
        return run_data(record, self.loaded.cfg.data, self.loaded.info)

    def dataset(self) -> str:
        """The dataset the run actually trained on (run.json), else what its checkpoint recorded."""
        return self.recorded_data().describe()

    def describe(self) -> str:
        """Markdown header of the run's tab."""
        step = "?" if self.step is None else f"{self.step:,}"
        snap = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.loaded.path.stat().st_mtime))
        return (
            f"**{self.name}** · family **{self.task}** · step **{step}** · dataset {self.dataset()}  \n"
            f"snapshot `{self.loaded.path}` (written {snap}) · device {self.device}"
        )


# ------------------------------------------------------------------------------- checking input


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    """An integer from a page value (numbers arrive as int, float or str), within [lo, hi]."""
    if isinstance(value, bool) or value is None:
        raise UserError(f"{what} must be a whole number from {lo} to {hi}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a whole number from {lo} to {hi}, not {str(value)[:40]!r}") from None
    if not math.isfinite(f) or f != int(f) or not lo <= f <= hi:
        raise UserError(f"{what} must be a whole number from {lo} to {hi}, not {str(value)[:40]}")
    return int(f)


def _upload_path(payload: Any, what: str) -> tuple[Path, str]:
    """The file behind an uploaded image (gradio has checked it lies in its upload folder) and its name."""
    if payload is None:
        raise UserError(f"no {what}: upload an image first")
    if isinstance(payload, dict) and "composite" in payload:  # an ImageEditor value
        payload = payload.get("composite")
        if payload is None:
            raise UserError(f"no {what}: draw on the canvas first")
    if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
        raise UserError(f"the {what} must be an image file")
    path = Path(payload["path"])
    name = str(payload.get("orig_name") or path.name)[:80]
    if not path.is_file():
        raise UserError(f"{name}: the upload is gone; upload it again")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise UserError(f"{name} is {size / 1e6:.0f} MB; uploads are limited to {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    return path, name


def _check_pixels(path: Path, name: str) -> None:
    """Refuse images above :data:`MAX_UPLOAD_PIXELS` from their header, before any pixel is decoded."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 -- not an image, corrupt ...: open_image names the problem
        return
    if w * h > MAX_UPLOAD_PIXELS:
        raise UserError(
            f"{name} is {w}x{h} ({w * h / 1e6:.1f} megapixels); this demo takes images up to "
            f"{MAX_UPLOAD_PIXELS / 1e6:.1f} megapixels (e.g. 4096x4096): shrink it first"
        )


def load_upload(payload: Any, what: str) -> torch.Tensor:
    """A checked upload as a (1, 3, H, W) float image in [0, 1] (grayscale becomes three equal channels)."""
    from gankit.translate import load_rgb01  # the reader gankit translate/colorize use

    path, name = _upload_path(payload, what)
    _check_pixels(path, name)
    try:
        return load_rgb01(path)
    except ImageReadError as e:
        raise UserError(str(e).replace(str(e.path), name, 1)) from None


def snap_to_palette(rgb01: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Each pixel of a drawn label map set to the nearest facade label colour; also the fraction changed.

    The brush only offers palette colours, but a canvas antialiases the edges of its strokes.
    """
    from gankit.data.facades import CMP_PALETTE

    palette = torch.tensor(list(CMP_PALETTE.values()), dtype=torch.float32) / 255  # (12, 3)
    x = rgb01[0].permute(1, 2, 0).reshape(-1, 3)
    nearest = torch.cdist(x, palette).argmin(1)
    snapped = palette[nearest]
    changed = float((snapped - x).abs().amax(1).gt(1.5 / 255).float().mean())
    return snapped.reshape(*rgb01.shape[2:], 3).permute(2, 0, 1)[None].contiguous(), changed


# ------------------------------------------------------------------------------------ outputs


class Outputs:
    """A private temporary folder for the images the app hands out (gradio copies them to its cache)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gankit-serve-"))

    def path(self, stem: str, suffix: str = ".png") -> Path:
        return self.dir / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"

    def save(self, rgb01: torch.Tensor, stem: str) -> Path:
        """Write a (1, 3, H, W) [0, 1] image as PNG (lossless, full size) with the CLI's writer."""
        from gankit.translate import save_image

        out = self.path(stem)
        save_image(rgb01, out, "png")
        return out

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _grid(images: torch.Tensor, out: Path, *, nrow: int, caption: str, columns: list[str] | None = None) -> Path:
    from gankit.visualize import save_grid, to_display

    save_grid(to_display(images), out, nrow=nrow, caption=caption, column_labels=columns)
    return out


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of Gaussian latents (keeps their norm, unlike a straight line)."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def _first_latent(rm: RunModel, seed: int) -> torch.Tensor:
    """The noise of the first image of ``gankit sample RUN --n 1 --seed SEED``."""
    return torch.randn(1, rm.loaded.cfg.model.z_dim, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ actions
# Plain functions of (RunModel, page values): the app wires them to buttons, the tests call them too.


def action_grid(rm: RunModel, out: Outputs, seed: Any, n: Any, label: Any = None) -> tuple[str, str]:
    """A grid of ``n`` samples from ``seed`` (cgan: all of class ``label``); returns (path, CLI line)."""
    seed = _int(seed, "seed", 0, MAX_SEED)
    n = _int(n, "samples", 1, MAX_GRID)
    loaded = rm.loaded
    k = None
    if loaded.num_classes:
        k = _int(label, "class", 0, loaded.num_classes - 1)
    labels = choose_labels(n, loaded.num_classes, label=k)
    with rm.lock:
        images = sample(rm.loaded, n, labels=labels, seed=seed)
    what = f", class {_class_name(rm, k)}" if k is not None else ""
    path = _grid(
        images, out.path(f"grid-seed{seed}"), nrow=min(8, n), caption=f"{rm.task} {rm.name}, seed {seed}{what}"
    )
    cmd = f"gankit sample {rm.run} --n {n} --seed {seed}" + (f" --label {k}" if k is not None else "") + " --out OUT"
    return str(path), f"seed **{seed}** · the same images: `{cmd}`"


def action_walk(rm: RunModel, out: Outputs, seed_a: Any, seed_b: Any, steps: Any, label: Any = None) -> str:
    """A strip of ``steps`` images walking from the first image of ``seed_a`` to that of ``seed_b``."""
    seed_a = _int(seed_a, "seed A", 0, MAX_SEED)
    seed_b = _int(seed_b, "seed B", 0, MAX_SEED)
    steps = _int(steps, "steps", 2, MAX_WALK)
    loaded = rm.loaded
    k = _int(label, "class", 0, loaded.num_classes - 1) if loaded.num_classes else None
    z = _slerp(_first_latent(rm, seed_a), _first_latent(rm, seed_b), torch.linspace(0, 1, steps))
    labels = torch.full((steps,), k, dtype=torch.long) if k is not None else None
    with rm.lock, torch.no_grad():
        device = next(rm.loaded.G.parameters()).device
        images = rm.loaded(z.to(device), labels.to(device) if labels is not None else None).float().cpu()
    caption = f"{rm.task} {rm.name}: seed {seed_a} -> seed {seed_b}"
    return str(_grid(images, out.path(f"walk-{seed_a}-{seed_b}"), nrow=steps, caption=caption))


def _class_name(rm: RunModel, k: int) -> str:
    names = rm.loaded.info.class_names
    return names[k] if k < len(names) else str(k)


def class_choices(rm: RunModel) -> list[tuple[str, int]]:
    return [(f"{k}: {_class_name(rm, k)}", k) for k in range(rm.loaded.num_classes)]


def action_class_grid(rm: RunModel, out: Outputs, seed: Any, rows: Any) -> str:
    """Rows = seeds ``seed .. seed+rows-1``, columns = classes; a cell is ``gankit sample --n 1 --seed S --label K``."""
    seed = _int(seed, "seed", 0, MAX_SEED - 16)
    rows = _int(rows, "rows", 1, 8)
    K = rm.loaded.num_classes
    with rm.lock:
        cells = [sample(rm.loaded, 1, labels=torch.tensor([k]), seed=seed + r) for r in range(rows) for k in range(K)]
    names = [_class_name(rm, k) for k in range(K)]
    caption = f"cgan {rm.name}: seeds {seed}..{seed + rows - 1} (rows) x classes"
    return str(_grid(torch.cat(cells), out.path(f"classes-seed{seed}"), nrow=K, caption=caption, columns=names))


def _memory_check(rm: RunModel, h: int, w: int) -> str:
    """The strategy ``gankit translate`` would use, refused (with the numbers) above the memory limit."""
    from gankit.inference import DEFAULT_STRATEGY
    from gankit.translate import default_memory_limit, translate_memory

    limit = default_memory_limit(torch.device(rm.device))
    need = translate_memory(rm.loaded, h, w, DEFAULT_STRATEGY)
    if need > limit:
        raise UserError(
            f"a {w}x{h} image needs about {need / GB:.1f} GB to translate, over the {limit / GB:.1f} GB "
            "one request may use on this machine; upload a smaller image"
        )
    return DEFAULT_STRATEGY


def action_translate(rm: RunModel, out: Outputs, payload: Any, *, drawn: bool = False) -> tuple[str, str]:
    """pix2pix on an uploaded (or drawn) label map; the photo has the input's size. Returns (path, note)."""
    from gankit.translate import translate_image

    rgb = load_upload(payload, "drawing" if drawn else "label map")
    note = ""
    if drawn:
        rgb, changed = snap_to_palette(rgb)
        if changed:
            note = f"{changed:.1%} of the drawn pixels (stroke edges) were set to the nearest label colour. "
    h, w = rgb.shape[-2:]
    strategy = _memory_check(rm, h, w)
    with rm.lock:
        rm.loaded.sampling_mode_on()  # the snapshot's mode (train.sampling)
        result = translate_image(rm.loaded, rgb, strategy=strategy)
    path = out.save(result, "photo")
    return str(path), note + f"{w}x{h} in, {w}x{h} out (as `gankit translate {rm.run} IMAGE --out OUT`)"


def action_colorize(rm: RunModel, out: Outputs, payload: Any) -> tuple[str, str, str]:
    """Colourize an uploaded photo at full resolution. Returns (shown image, download file, note)."""
    from gankit.translate import colorize_image

    rgb = load_upload(payload, "photo")
    h, w = rgb.shape[-2:]
    with rm.lock:
        rm.loaded.sampling_mode_on()  # the snapshot's mode (train.sampling)
        result = colorize_image(rm.loaded, rgb)
    path = out.save(result, "colorized")
    return str(path), str(path), f"{w}x{h} in, {w}x{h} out (as `gankit colorize {rm.run} PHOTO --out OUT`)"


def val_examples(rm: RunModel, out: Outputs, k: int = 4) -> list[str]:
    """The inputs of the first ``k`` val pairs of the run's dataset, as PNG files ([] if the data is not here).

    Only data present on this machine are read, where the run recorded them
    (:meth:`gankit.rundata.RunData.local_config`): nothing is downloaded or built.
    """
    from gankit.data import build_dataset
    from gankit.visualize import to_display

    data_cfg, _ = rm.recorded_data().local_config()
    if data_cfg is None:
        return []
    try:
        ds = build_dataset(data_cfg, "val", log=lambda s: None)
        n = min(k, len(ds))
        batch = ds.batch(torch.arange(n), device=torch.device("cpu"))
    except (DataError, ImageReadError, ValueError, OSError):
        return []
    return [str(out.save(to_display(x[None]), f"val{i}")) for i, x in enumerate(batch["input"])]


# ------------------------------------------------------------------------------------ the app


def _require_gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError:
        from gankit.config import ConfigError

        raise ConfigError(DEMO_HINT) from None
    return gr


def _on_page(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input (and any library error) -> one sentence on the page; a bug -> one sentence, traceback in the log."""
    gr = _require_gradio()

    @functools.wraps(fn)
    def wrapped(*args: Any) -> Any:
        try:
            return fn(*args)
        except (UserError, ImageReadError, DataError, CheckpointError, ValueError) as e:
            raise gr.Error(str(e).splitlines()[0][:300], print_exception=False) from None
        except MemoryError:
            raise gr.Error("out of memory: try a smaller image", print_exception=False) from None
        except Exception as e:  # noqa: BLE001 -- never a traceback on the page
            traceback.print_exc(file=sys.stderr)
            first = (str(e).splitlines() or [""])[0][:200]
            raise gr.Error(f"internal error ({type(e).__name__}: {first})", print_exception=False) from None

    return wrapped


def _palette_legend() -> str:
    from gankit.data.facades import CMP_PALETTE

    cells = "".join(
        f'<span style="display:inline-block;margin:2px 8px 2px 0"><span style="display:inline-block;'
        f'width:14px;height:14px;vertical-align:middle;border:1px solid #888;background:rgb{rgb}"></span> {name}</span>'
        for name, rgb in zip(FACADE_CLASSES, CMP_PALETTE.values())
    )
    return f'<div id="facade-legend">{cells}</div>'


LoadEvent = tuple[Callable[..., Any], list[Any], list[Any]]
"""(function, inputs, outputs) that the page runs once it has loaded."""


def _noise_tab(gr: Any, rm: RunModel, out: Outputs, group: str) -> list[LoadEvent]:
    conditional = bool(rm.loaded.num_classes)
    label = None
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed", elem_id=f"{group}-seed")
        n = gr.Slider(1, MAX_GRID, value=16 if not conditional else 10, step=1, label="samples")
        if conditional:
            label = gr.Dropdown(choices=class_choices(rm), value=0, label="class", elem_id=f"{group}-class")
    with gr.Row():
        new_seed = gr.Button("new seed", variant="primary", elem_id=f"{group}-new-seed")
        show = gr.Button("show this seed", elem_id=f"{group}-show")
    grid = gr.Image(label="samples", format="png", type="filepath", interactive=False, elem_id=f"{group}-grid")
    how = gr.Markdown(elem_id=f"{group}-how")
    extra = [label] if label is not None else []

    def grid_fn(s: Any, k: Any, *lab: Any) -> tuple[str, str]:
        return action_grid(rm, out, s, k, *lab)

    def new_fn(k: Any, *lab: Any) -> tuple[int, str, str]:
        s = random.randint(0, 999_999)
        return (s, *action_grid(rm, out, s, k, *lab))

    kw = dict(concurrency_id=group, concurrency_limit=1, preprocess=False)
    show.click(_on_page(grid_fn), [seed, n, *extra], [grid, how], api_name=f"{group}_grid", **kw)
    # the page opens with its panels filled for the values shown (seed 0, ...), by the snapshot loaded now
    on_load: list[LoadEvent] = [(_on_page(grid_fn), [seed, n, *extra], [grid, how])]
    new_seed.click(_on_page(new_fn), [n, *extra], [seed, grid, how], api_name=f"{group}_new_seed", **kw)

    with gr.Accordion("latent walk between two seeds (their first images, spherical interpolation)", open=True):
        with gr.Row():
            seed_a = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="from seed")
            seed_b = gr.Number(value=1, precision=0, minimum=0, maximum=MAX_SEED, label="to seed")
            steps = gr.Slider(2, MAX_WALK, value=8, step=1, label="steps")
        walk_btn = gr.Button("walk", elem_id=f"{group}-walk")
        # no label badge: it would cover the caption of a wide strip; the caption says what it shows
        walk = gr.Image(
            label="latent walk", show_label=False, format="png", interactive=False, elem_id=f"{group}-walk-strip"
        )

    def walk_fn(a: Any, b: Any, k: Any, *lab: Any) -> str:
        return action_walk(rm, out, a, b, k, *lab)

    walk_btn.click(_on_page(walk_fn), [seed_a, seed_b, steps, *extra], [walk], api_name=f"{group}_walk", **kw)
    on_load.append((_on_page(walk_fn), [seed_a, seed_b, steps, *extra], [walk]))

    if conditional:
        with gr.Accordion("class-by-seed grid", open=True):
            with gr.Row():
                first = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED - 16, label="first seed")
                rows = gr.Slider(1, 8, value=4, step=1, label="rows (seeds)")
            cls_btn = gr.Button("class grid", elem_id=f"{group}-class-grid")
            cls = gr.Image(
                label="rows: seeds, columns: classes", format="png", interactive=False, elem_id=f"{group}-classes"
            )

        def cls_fn(s: Any, r: Any) -> str:
            return action_class_grid(rm, out, s, r)

        cls_btn.click(_on_page(cls_fn), [first, rows], [cls], api_name=f"{group}_class_grid", **kw)
        on_load.append((_on_page(cls_fn), [first, rows], [cls]))
    return on_load


def _pix2pix_tab(gr: Any, rm: RunModel, out: Outputs, group: str) -> list[LoadEvent]:
    from gankit.data.facades import CMP_PALETTE

    kw = dict(concurrency_id=group, concurrency_limit=1, preprocess=False)
    gr.HTML(_palette_legend())
    with gr.Row():
        with gr.Column():
            with gr.Tab("upload a label map"):
                upload = gr.Image(
                    label="label map (any size)", type="filepath", sources=["upload", "clipboard"],
                    elem_id=f"{group}-upload",
                )  # fmt: skip
                up_btn = gr.Button("translate", variant="primary", elem_id=f"{group}-translate")
                examples = val_examples(rm, out)
                if examples:
                    gr.Examples([[p] for p in examples], inputs=[upload], label="val split (click one)")
            with gr.Tab("draw one"):
                fill = np.zeros((CANVAS_SIZE, CANVAS_SIZE, 3), dtype=np.uint8) + np.array(
                    CMP_PALETTE[CANVAS_FILL], np.uint8
                )
                colors = [f"rgb{rgb}" for rgb in CMP_PALETTE.values()]
                canvas = gr.ImageEditor(
                    value={"background": fill, "layers": [], "composite": fill},
                    type="filepath", image_mode="RGB", label="draw with the label colours (legend above)",
                    brush=gr.Brush(colors=colors, default_color=colors[2], color_mode="fixed"),
                    canvas_size=(CANVAS_SIZE, CANVAS_SIZE), layers=False, format="png", elem_id=f"{group}-canvas",
                )  # fmt: skip
                draw_btn = gr.Button("translate drawing", variant="primary", elem_id=f"{group}-translate-drawing")
        with gr.Column():
            photo = gr.Image(
                label="photo (the input's size)", format="png", interactive=False, elem_id=f"{group}-photo"
            )
            note = gr.Markdown()

    def up_fn(p: Any) -> tuple[str, str]:
        return action_translate(rm, out, p)

    def draw_fn(p: Any) -> tuple[str, str]:
        return action_translate(rm, out, p, drawn=True)

    up_btn.click(_on_page(up_fn), [upload], [photo, note], api_name=f"{group}_translate", **kw)
    draw_btn.click(_on_page(draw_fn), [canvas], [photo, note], api_name=f"{group}_translate_drawing", **kw)
    return []


def _colorize_tab(gr: Any, rm: RunModel, out: Outputs, group: str) -> list[LoadEvent]:
    kw = dict(concurrency_id=group, concurrency_limit=1, preprocess=False)
    with gr.Row():
        with gr.Column():
            photo = gr.Image(
                label="photo (colour or grayscale, any size)", type="filepath", sources=["upload", "clipboard"],
                elem_id=f"{group}-upload",
            )  # fmt: skip
            btn = gr.Button("colorize", variant="primary", elem_id=f"{group}-colorize")
        with gr.Column():
            result = gr.Image(
                label="colourized (full resolution)", format="png", interactive=False, elem_id=f"{group}-result"
            )
            download = gr.DownloadButton("download full-size PNG", elem_id=f"{group}-download")
            note = gr.Markdown()

    def fn(p: Any) -> tuple[str, str, str]:
        return action_colorize(rm, out, p)

    btn.click(_on_page(fn), [photo], [result, download, note], api_name=f"{group}_colorize", **kw)
    return []


def build_app(runs: list[RunModel], out: Outputs) -> Any:
    """The gradio Blocks: one tab per run; each run's events share one queue slot (concurrency 1).
    A noise run's tab shows its grid, walk (and class grid) for the values shown as soon as the page has loaded."""
    gr = _require_gradio()
    # by kind, so that a newly registered noise family gets a tab with no edit here
    builders = {"pix2pix": _pix2pix_tab, "colorize": _colorize_tab}
    with gr.Blocks(title="gankit serve", analytics_enabled=False) as app:
        gr.Markdown("# gankit serve\nTrained runs, one tab each. Everything runs on this machine.")
        with gr.Tabs():
            for i, rm in enumerate(runs):
                group = f"run{i}"
                with gr.Tab(f"{rm.name} ({rm.task})", id=group, elem_id=f"tab-{group}"):
                    with gr.Row():
                        header = gr.Markdown(rm.describe(), elem_id=f"{group}-info")
                        reload = gr.Button("reload", size="sm", scale=0, elem_id=f"{group}-reload")
                    reload.click(
                        _on_page(rm.reload), [], [header], api_name=f"{group}_reload",
                        concurrency_id=group, concurrency_limit=1,
                    )  # fmt: skip
                    for j, (fn, inputs, outputs) in enumerate(builders.get(rm.task, _noise_tab)(gr, rm, out, group)):
                        app.load(
                            fn, inputs, outputs, api_name=f"{group}_on_load{j}", preprocess=False,
                            concurrency_id=group, concurrency_limit=1,
                        )  # fmt: skip
    return app


def launch(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    block: bool = True,
) -> Any:
    """Start the server (``block=False`` returns at once; call ``app.close()`` to stop it)."""
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=[],
        ssr_mode=False,
        quiet=not share,  # gradio prints the public link it made
        footer_links=["api"],
    )
    return app


def serve(
    runs: list[str | Path],
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    device: str = "auto",
    engine: str | None = None,
) -> None:
    """``gankit serve RUN [RUN ...]``: load every run once, then serve the page until interrupted.

    ``engine`` runs the generators (``auto``, ``torch`` or ``onnxruntime``: :mod:`gankit.engine`;
    None: ``$GANKIT_ENGINE``, else ``auto``); one line per run says which.
    """
    _require_gradio()
    from gankit.devices import resolve_device
    from gankit.engine import engine_name

    engine_name(engine)  # a typo is refused before any model loads
    dev = resolve_device(device)
    models = [RunModel(r, dev, engine) for r in runs]
    out = Outputs()
    try:
        app = build_app(models, out)
        where = f"http://{host if host not in ('0.0.0.0', '::') else 'localhost'}:{port}"
        print(
            f"serving {len(models)} run(s) at {where} ({', '.join(m.name for m in models)}); Ctrl+C stops", flush=True
        )
        try:
            launch(app, host=host, port=port, share=share, block=True)
        except OSError as e:
            why = "in use" if "empty port" in str(e) else (str(e).splitlines() or ["cannot bind"])[0][:120]
            raise DataError(f"--port {port}: cannot listen on {host}:{port} ({why}); try another --port") from None
    finally:
        out.cleanup()
