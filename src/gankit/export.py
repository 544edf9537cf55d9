"""ONNX export of gankit generators, checked against PyTorch before the file is declared done.

``gankit export RUN --format onnx --out G.onnx`` writes the generator of any family as an ONNX graph
(opset 18, fp32, eval mode: BatchNorm running statistics, dropout off) through PyTorch's
``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``). The graphs:

* noise families (gan, cgan, dcgan): input ``z`` (N, z_dim) float32 and, for cgan, ``label`` (N,)
  int64; output ``image`` (N, C, R, R) in [-1, 1]. The batch size N is dynamic.
* pix2pix: input ``input`` (N, C_in, H, W) in [-1, 1]; output ``output`` (N, C_out, H, W) in [-1, 1].
  N, H and W are dynamic: the graph reflect-pads to the U-Net's multiple and crops back inside, as
  ``gankit translate --strategy pad`` does, so any size >= 2 pixels works (memory grows with the
  image; tile large images outside the graph).
* colorize: input ``L`` (N, 1, H, W) = L*/50 - 1; output ``ab`` (N, 2, H, W) = a*b*/110, padded
  inside likewise. With ``pipeline=True`` (``--pipeline``) the whole of ``gankit colorize`` is in the
  graph instead: input ``image`` (H, W, C) uint8 with C = 3 (RGB) or 1 (gray), output ``rgb``
  (H, W, 3) uint8 at full size; the sRGB <-> Lab conversion (:mod:`gankit.color`) and the resizes run
  inside the graph, so a deployment needs only onnxruntime (see ``examples/onnx_colorize.py``).

Every export is verified before it is renamed into place: onnxruntime and PyTorch run the same
random inputs at two sizes (two batch sizes for noise models) and the largest absolute difference
must be at most ``tolerance`` (1e-4). The pipeline's uint8 output is compared with what
``gankit colorize`` writes for the same image and may differ by at most one level in a few pixels:
float32 rounding differences of ~1e-5 in L and ab (the resize, the cube roots) grow to ~1e-4 through
the sRGB companding and flip the rounding of pixels that sit on a half level. A mismatch raises
:class:`ExportError` and leaves no file behind. Requires ``pip install 'gankit[export]'``.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.color import model_to_rgb, rgb_to_model
from gankit.errors import MissingExtra, OutputExists
from gankit.loading import LoadedGenerator, load_generator
from gankit.locks import lock_file
from gankit.onnxcache import OPSET, session

"""Opset 18 has Resize with antialiasing, which the colorize pipeline needs."""
TOLERANCE = 1e-4
PIPELINE_TOLERANCE = 1
"""uint8 levels the pipeline may differ from ``gankit colorize`` by (rounding flips, see above)."""
MAX_DIFFERING = 0.01
"""Pipeline: the largest fraction of output values allowed to differ at all (flips are ~0.03%)."""


class ExportError(ValueError):
    """An export failed or did not reproduce PyTorch; the message says which file and why."""


class ExportExists(ExportError, OutputExists):
    """``--out`` exists and ``overwrite`` was not given (exit code 2)."""


class ExportNeedsExtra(ExportError, MissingExtra):
    """onnx, onnxscript or onnxruntime is not installed (exit code 2)."""


# ------------------------------------------------------------------------------- graph modules


def reflect_index(n: Tensor | int, before: Tensor | int, after: Tensor | int) -> Tensor:
    """Source indices for reflect-padding an axis of length ``n`` by ``before`` / ``after`` (any size).

    The mirror pattern continues periodically (period 2n - 2, a side of length 1 is repeated), which
    is what :func:`gankit.inference.pad_to_multiple` produces with its rounds of ``F.pad``. Built from
    index arithmetic rather than ``F.pad`` so that pads larger than the image trace into a graph
    whose sizes stay dynamic.
    """
    i = torch.arange(-before, n + after)
    # The period as a 0-d tensor: the exporter cannot take the remainder by a symbolic Python int.
    period = torch.full((), 2 * n - 2, dtype=torch.int64).clamp(min=1)
    j = torch.remainder(i, period)
    return torch.where(j >= n, period - j, j)


class PaddedUNet(nn.Module):
    """The U-Net on any H x W: reflect-pad to its multiple, run, crop (``run_any_size(strategy="pad")``)."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G
        self.multiple = int(G.multiple)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        m = self.multiple
        # Written as multiples of m so that torch.export can prove the U-Net's shape arithmetic exact.
        extra_h, extra_w = (h + m - 1) // m * m - h, (w + m - 1) // m * m - w
        top, left = extra_h // 2, extra_w // 2
        rows = reflect_index(h, top, extra_h - top)
        cols = reflect_index(w, left, extra_w - left)
        padded = x.index_select(2, rows).index_select(3, cols)
        y = self.G(padded)
        # Cropped by index_select as well: slicing with symbolic bounds makes torch.export demand
        # bound checks it cannot prove, and it would then fix the size to the example's.
        return y.index_select(2, torch.arange(h) + top).index_select(3, torch.arange(w) + left)


class NoiseGraph(nn.Module):
    """An unconditional noise-to-image generator: ``z`` -> ``image``."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: Tensor) -> Tensor:
        return self.G(z)


class ConditionalNoiseGraph(nn.Module):
    """A class-conditional generator: (``z``, ``label``) -> ``image``."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: Tensor, label: Tensor) -> Tensor:
        return self.G(z, label)


class ColorizePipeline(nn.Module):
    """``gankit colorize`` as one module: uint8 (H, W, C) photo -> uint8 (H, W, 3) colour photo.

    The same steps as :func:`gankit.inference.colorize`: ab is predicted from an antialiased
    ``resolution`` x ``resolution`` copy, upsampled bilinearly to full size and joined with the
    photo's own full-resolution L.
    """

    def __init__(self, G: nn.Module, resolution: int) -> None:
        super().__init__()
        self.G = G
        self.resolution = resolution

    def forward(self, image: Tensor) -> Tensor:
        # Channel c of the output reads input channel min(c, C - 1): gray (C = 1) becomes three equal
        # channels and RGB passes through, with no branch on C in the graph.
        idx = torch.arange(3).clamp(max=image.shape[-1] - 1)
        full = image.index_select(2, idx).permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0
        L_full, _ = rgb_to_model(full)
        res = self.resolution
        small = F.interpolate(full, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
        L_small, _ = rgb_to_model(small.clamp(0, 1))
        ab_small = self.G(L_small)
        ab_full = F.interpolate(ab_small, size=full.shape[-2:], mode="bilinear", align_corners=False)
        rgb = model_to_rgb(L_full, ab_full)
        return (rgb[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)


# ------------------------------------------------------------------------------------ reports


@dataclass
class ExportReport:
    """What was exported and how closely onnxruntime reproduced PyTorch."""

    path: Path
    family: str
    graph: str
    """``generator`` or ``pipeline``."""
    inputs: list[str]
    outputs: list[str]
    checkpoint: Path
    checks: list[tuple[str, float]] = field(default_factory=list)
    """(input shapes, max abs difference) per verification run."""
    tolerance: float = TOLERANCE
    differing: float = 0.0
    """Pipeline only: the fraction of output values that differ from PyTorch's (by one level)."""

    @property
    def max_abs_diff(self) -> float:
        return max(d for _, d in self.checks)

    def summary(self) -> str:
        if self.graph == "pipeline":
            checks = "; ".join(f"{shape}: {diff:.0f}" for shape, diff in self.checks)
            diff = (
                f"{self.max_abs_diff:.0f} uint8 level(s) <= {self.tolerance:g} "
                f"({100 * self.differing:.3f}% of values differ) [{checks}]"
            )
        else:
            checks = "; ".join(f"{shape}: {diff:.2e}" for shape, diff in self.checks)
            diff = f"{self.max_abs_diff:.2e} <= {self.tolerance:g} [{checks}]"
        return (
            f"exported {self.family} {self.graph} to {self.path} "
            f"({', '.join(self.inputs)} -> {', '.join(self.outputs)}); onnxruntime vs PyTorch max abs diff {diff}"
        )


# ------------------------------------------------------------------------------------ export


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``; :class:`ExportNeedsExtra` (one line, with the pip command) when the extra is missing."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError as e:
        raise ExportNeedsExtra(
            f"ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({e.name} is missing); "
            "install them with: pip install 'gankit[export]'"
        ) from None
    return onnx, onnxruntime


def load_for_export(run: str | Path | LoadedGenerator, checkpoint: str = "last") -> LoadedGenerator:
    """The generator of ``run`` for ``checkpoint`` = ``best``, ``last`` or a checkpoint file path
    (or ``run`` itself, already loaded).

    A snapshot written for train-mode sampling (``train.sampling=train``: batch statistics) is
    refused: an ONNX graph would bake in the statistics of the batch it was traced on. A standing
    snapshot exports as is (its recomputed statistics are in its BatchNorm buffers).
    """
    loaded = run if isinstance(run, LoadedGenerator) else load_generator(run, which=checkpoint)
    if loaded.sampling == "train":
        raise ExportError(
            f"{loaded.path}: this run samples in train mode (train.sampling=train, batch statistics), which an "
            f"ONNX graph cannot carry; train with --set train.sampling=standing (the default) to export it"
        )
    return loaded


def open_session(path: Path, ort: Any, **options: Any) -> Any:
    """An onnxruntime CPU session of ``path`` with as many threads as PyTorch uses
    (:func:`gankit.onnxcache.session`, which takes the other ``options``)."""
    return session(path, ort, threads=torch.get_num_threads(), **options)


def _graph_for(loaded: LoadedGenerator, pipeline: bool) -> tuple[nn.Module, str, dict[str, Any]]:
    """(module to export, graph kind, facts) for a loaded generator."""
    fam, info, cfg = loaded.family, loaded.info, loaded.cfg
    facts: dict[str, Any] = {"family": fam.name, "resolution": info.resolution}
    if pipeline:
        if info.space != "lab":
            raise ExportError(
                f"--pipeline: {loaded.path} is a '{fam.name}' model; the uint8 image pipeline is for colorize models"
            )
        facts.update(inputs=["image"], outputs=["rgb"])
        return ColorizePipeline(loaded.G, info.resolution), "pipeline", facts
    if fam.kind == "noise":
        facts.update(z_dim=cfg.model.z_dim, num_classes=loaded.num_classes, outputs=["image"])
        if loaded.num_classes:
            facts["inputs"] = ["z", "label"]
            return ConditionalNoiseGraph(loaded.G), "generator", facts
        facts["inputs"] = ["z"]
        return NoiseGraph(loaded.G), "generator", facts
    lab = info.space == "lab"
    facts.update(
        in_channels=info.in_channels,
        channels=info.channels,
        multiple=int(loaded.G.multiple),
        inputs=["L" if lab else "input"],
        outputs=["ab" if lab else "output"],
    )
    return PaddedUNet(loaded.G), "generator", facts


def _example_inputs(loaded: LoadedGenerator, graph: str, variant: int, seed: int) -> tuple[Tensor, ...]:
    """Random inputs; ``variant`` 0 and 1 give two different batch sizes / image sizes."""
    g = torch.Generator().manual_seed(seed)
    info, cfg = loaded.info, loaded.cfg
    res = info.resolution
    if graph == "pipeline":
        h, w, c = ((res + 7, 2 * res - 3, 3), (res // 2 + 1, res + 10, 1))[variant]
        return (torch.randint(0, 256, (h, w, c), generator=g, dtype=torch.uint8),)
    if loaded.family.kind == "noise":
        n = (1, 3)[variant]
        z = torch.randn(n, cfg.model.z_dim, generator=g)
        if loaded.num_classes:
            return z, torch.randint(0, loaded.num_classes, (n,), generator=g)
        return (z,)
    # One size that needs no padding, one that needs it on both axes (odd amounts, non-square).
    n, h, w = ((1, res, res), (2, res + res // 2 + 3, res - 5))[variant]
    return (torch.rand(n, info.in_channels, h, w, generator=g) * 2 - 1,)


@torch.no_grad()
def _reference(loaded: LoadedGenerator, graph: str, inputs: tuple[Tensor, ...]) -> Tensor:
    """What gankit itself computes for ``inputs`` (its own inference code, not the export wrappers)."""
    if graph == "pipeline":
        from gankit.inference import colorize

        (image,) = inputs
        rgb01 = image.permute(2, 0, 1).unsqueeze(0).float().expand(1, 3, -1, -1) / 255.0
        # quantized as gankit colorize saves its PNGs
        rgb = colorize(loaded.G, rgb01, loaded.info.resolution)
        return (rgb[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    if loaded.family.kind == "noise":
        return loaded.G(*inputs)
    from gankit.inference import run_any_size

    G = loaded.G
    return run_any_size(G, inputs[0], multiple=G.multiple, resolution=loaded.info.resolution, strategy="pad")


def _difference(got: Any, want: Tensor) -> tuple[float, float]:
    """(max abs difference, fraction of values that differ); inf when the shapes differ."""
    import numpy as np

    if got.shape != tuple(want.shape):
        return float("inf"), 1.0
    diff = np.abs(got.astype(np.float64) - want.double().numpy())
    return float(diff.max()), float((diff > 0).mean())


def _dynamic_shapes(loaded: LoadedGenerator, graph: str) -> dict[str, Any]:
    from torch.export import Dim

    if graph == "pipeline":
        return {"image": {0: Dim("height", min=2), 1: Dim("width", min=2), 2: Dim("channels", min=1, max=4)}}
    batch = Dim("batch", min=1)
    if loaded.family.kind == "noise":
        shapes: dict[str, Any] = {"z": {0: batch}}
        if loaded.num_classes:
            shapes["label"] = {0: batch}
        return shapes
    return {"x": {0: batch, 2: Dim("height", min=2), 3: Dim("width", min=2)}}


def export_onnx(
    run: str | Path | LoadedGenerator,
    out: str | Path,
    *,
    checkpoint: str = "last",
    pipeline: bool = False,
    overwrite: bool = False,
    tolerance: float | None = None,
    seed: int = 0,
    log: Any = print,
) -> ExportReport:
    """Export the generator of ``run`` to ONNX at ``out``, verified against PyTorch (see the module docstring).

    Args:
        run: run folder or generator checkpoint file, or a generator already loaded (in eval mode;
            its weights are exported as they are in memory).
        out: the ``.onnx`` file to write; an existing file is an error unless ``overwrite``.
        checkpoint: ``last`` (default), ``best`` or a path to a checkpoint file.
        pipeline: colorize models only: export the uint8 image -> uint8 image pipeline.
        tolerance: the largest onnxruntime-vs-PyTorch difference accepted: default :data:`TOLERANCE`
            (:data:`PIPELINE_TOLERANCE` uint8 levels for the pipeline).
        seed: seed of the random verification inputs.

    Returns:
        An :class:`ExportReport`; raises :class:`ExportError` when the export fails or does not match,
        and :class:`gankit.locks.Busy` (one line) while another process exports to ``out``.
    """
    _, ort = require_onnx()
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; pass a file name such as {out / 'G.onnx'}")
    with _out_lock(out):
        if out.exists() and not overwrite:
            raise ExportExists(f"--out {out} already exists; pass --overwrite to replace it or choose another name")
        report = _export_verified(
            run, out, ort, checkpoint=checkpoint, pipeline=pipeline, tolerance=tolerance, seed=seed
        )
    log(report.summary())
    return report


@contextlib.contextmanager
def _out_lock(out: Path) -> Iterator[None]:
    """Refuse, in one line, a second export to ``out`` while this one runs: held from the existence
    check to the rename, as two exports would both find ``out`` missing and the second would silently
    replace the first one's file. The lock file ``.<name>.lock`` beside ``out`` is removed after."""

    def busy(holder: str) -> str:
        who = f" ({holder})" if holder else ""
        return f"--out {out}: another process{who} is exporting to this file; wait for it, or choose another --out"

    created = not out.parent.exists()
    try:
        with lock_file(out.parent / f".{out.name}.lock", wait=False, busy=busy, note="gankit export", remove=True):
            yield
    finally:
        if created:
            try:
                out.parent.rmdir()  # only when nothing was written: a failed export leaves no empty folder
            except OSError:
                pass


def _export_verified(
    run: str | Path | LoadedGenerator,
    out: Path,
    ort: Any,
    *,
    checkpoint: str,
    pipeline: bool,
    tolerance: float | None,
    seed: int,
) -> ExportReport:
    """Export to a temporary file beside ``out``, check it with onnxruntime, then rename it to ``out``."""
    loaded = load_for_export(run, checkpoint)
    if isinstance(run, LoadedGenerator) and loaded.G.training:  # the caller's generator: its mode stays the caller's
        raise ExportError(f"{loaded.path}: the generator is in train mode (dropout, batch statistics); export is eval")
    loaded.G.float().eval()
    module, graph, facts = _graph_for(loaded, pipeline)
    module.eval()
    if tolerance is None:
        tolerance = PIPELINE_TOLERANCE if graph == "pipeline" else TOLERANCE

    examples = [_example_inputs(loaded, graph, v, seed + v) for v in (0, 1)]
    # Traced on the first example (RGB for the pipeline, so that the channel count stays dynamic).
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        _export(module, examples[0], tmp, loaded, graph, facts)
        report = ExportReport(
            out, loaded.family.name, graph, facts["inputs"], facts["outputs"], loaded.path, tolerance=tolerance
        )
        session = open_session(tmp, ort)
        for inputs in examples:
            feed = {name: t.numpy() for name, t in zip(facts["inputs"], inputs)}
            (got,) = session.run(None, feed)
            diff, differing = _difference(got, _reference(loaded, graph, inputs))
            report.checks.append((" ".join("x".join(map(str, t.shape)) for t in inputs), diff))
            if graph == "pipeline":
                report.differing = max(report.differing, differing)
        # A systematic one-level offset would pass the pipeline's level check; rounding flips are rare.
        offset = graph == "pipeline" and report.differing > MAX_DIFFERING
        if not report.max_abs_diff <= tolerance or offset:  # "not <=" also catches NaN
            raise ExportError(
                f"{out}: the ONNX graph does not reproduce PyTorch (max abs difference {report.max_abs_diff:.3g}, "
                f"tolerance {tolerance:g}"
                + (f"; {100 * report.differing:.2f}% of values differ" if offset else "")
                + "); nothing was written. Please report this with the run's config.yaml"
            )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return report


def _export(
    module: nn.Module, example: tuple[Tensor, ...], path: Path, loaded: LoadedGenerator, graph: str, facts: dict
) -> None:
    """Run the exporter (its progress lines silenced) and write ``path`` with gankit metadata."""
    import torch.fx.experimental._config as fx_config

    import gankit

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Size-oblivious reasoning: without it torch.export guards on "this size is not 1" in
            # contiguity checks (e.g. a U-Net bottleneck of side ceil(H / multiple)) and then refuses
            # the dynamic height and width. Those checks only concern memory layout, not values.
            with fx_config.patch(backed_size_oblivious=True):
                exported = torch.export.export(
                    module, example, dynamic_shapes=_dynamic_shapes(loaded, graph), strict=False
                )
            program = torch.onnx.export(
                exported,
                dynamo=True,
                opset_version=OPSET,
                input_names=facts["inputs"],
                output_names=facts["outputs"],
            )
    except Exception as e:  # the exporter raises many types; give one line and the gankit context
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ExportError(
            f"{loaded.path}: torch.onnx.export failed for the {facts['family']} {graph}: {first}"
        ) from None
    assert program is not None
    meta = {f"gankit.{k}": str(v) for k, v in facts.items()}
    meta.update({"gankit.version": gankit.__version__, "gankit.checkpoint": str(loaded.path), "gankit.graph": graph})
    program.model.metadata_props.update(meta)
    program.save(str(path), external_data=False)
