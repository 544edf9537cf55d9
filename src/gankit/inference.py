"""Running a fully convolutional image-to-image generator on images of any size and aspect ratio.

The pix2pix U-Net (Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017) is trained on square crops, but being fully convolutional it runs on any
height and width that are multiples of its total stride (``UNetGenerator.multiple``). The helpers
here bridge the gap to arbitrary images:

* ``pad``: reflect-pad up to the next multiple, run once, crop back. Keeps the native scale, at
  the cost of memory growing with the image (about 4.5 GB of tensors for 3000x4000 at ngf=64).
* ``resize`` (the default, see :data:`DEFAULT_STRATEGY`): squash to the training resolution, run,
  resize back. Matches the training distribution; distorts the aspect ratio inside the model and
  gives no detail finer than the training resolution.
* ``tile``: run on overlapping training-size tiles and blend them with a smooth window. Each
  tile looks like a training crop, and memory stays bounded by the tile size.

None of these functions switches the module between train and eval mode or disables autograd:
that is the caller's choice (pix2pix, for instance, is sometimes sampled with dropout kept on).

At the training size, the innermost conv and transposed conv of the U-Net use only the centre 2x2
of their 4x4 kernels; the other taps see zero padding, get no gradient and keep their initial
values. :func:`zero_unused_taps` (applied by :func:`gankit.loading.load_generator`) zeroes them,
so that on larger inputs they add nothing the model did not learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

STRATEGIES = ("pad", "resize", "tile")
DEFAULT_STRATEGY = "resize"
"""The strategy used unless told otherwise, chosen by measurement (benchmarks/quality_strategies.py:
an early facades model, ngf=32 after 240 steps on a busy CPU, on its 37 val pairs). At the training
size all strategies agree (val L1 0.368). On the pairs upscaled to 512 only ``resize`` stays as
good (L1 0.358, PSNR 13.2 dB, against 0.375 / 12.8 dB for ``pad`` and 0.377 / 12.8 dB for
``tile``), likewise at 384; on two facades side by side (256x512) all four are within 0.001 L1.
It also needs the least memory."""
PAD_MODES = ("reflect", "replicate", "constant")

Padding = tuple[int, int, int, int]
"""(left, right, top, bottom), the order of :func:`torch.nn.functional.pad` for the last two dims."""

Generator = Callable[[Tensor], Tensor]
"""What runs the network: an ``nn.Module`` or any callable, e.g. a loaded generator with its engine."""


def _pad(x: Tensor, pad: Padding, mode: str) -> Tensor:
    """``F.pad`` over H and W that also accepts reflect pads as large as or larger than the image."""
    if mode not in PAD_MODES:
        raise ValueError(f"unknown pad mode '{mode}' (expected one of {', '.join(PAD_MODES)})")
    if mode != "reflect":
        return F.pad(x, pad, mode=mode) if any(pad) else x
    left, right, top, bottom = pad
    x = _reflect_axis(x, left, right, horizontal=True)
    return _reflect_axis(x, top, bottom, horizontal=False)


def _reflect_axis(x: Tensor, before: int, after: int, *, horizontal: bool) -> Tensor:
    """Reflect-pad W (``horizontal``) or H by any amount.

    ``F.pad`` reflect needs each pad to be smaller than the side it mirrors. Larger pads are done in
    rounds, each reflecting the already padded tensor; this continues the mirror pattern (the image
    tiled with alternating flips) rather than smearing the border pixels as replicate would. A side
    of length 1 has nothing to mirror, and replicating it is what mirroring would give anyway.
    """
    while before or after:
        n = x.shape[-1] if horizontal else x.shape[-2]
        step = (before, after) if n == 1 else (min(before, n - 1), min(after, n - 1))
        x = F.pad(x, (*step, 0, 0) if horizontal else (0, 0, *step), mode="replicate" if n == 1 else "reflect")
        before, after = before - step[0], after - step[1]
    return x


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> tuple[Tensor, Padding]:
    """Pad the last two dims of ``x`` ((N, C, H, W) or (C, H, W)) up to multiples of ``multiple``.

    The padding is split evenly between the two sides (the extra pixel, if any, going right/bottom)
    so the content stays centred and both borders see the same amount of synthetic context.
    ``mode`` is ``reflect`` (default; works for pads of any size, see above), ``replicate`` or
    ``constant`` (zeros). Returns the padded tensor and the ``(left, right, top, bottom)`` padding
    to hand to :func:`crop_padding`.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    extra_h = -h % multiple
    extra_w = -w % multiple
    pad = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    return _pad(x, pad, mode), pad


def crop_padding(x: Tensor, pad: Padding) -> Tensor:
    """Undo :func:`pad_to_multiple`: remove ``(left, right, top, bottom)`` pixels from the last two dims."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    # antialias matters when shrinking (it low-passes instead of skipping pixels); it is a no-op
    # for enlarging, so one call serves both directions.
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _ramp_window(size: int, overlap: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """1-D blending weights: 1 in the middle, raised-cosine ramps of length ``overlap`` at both ends.

    The ramps stay strictly positive, so pixels covered by a single tile (the image borders) keep a
    nonzero weight and normalizing by the summed weights returns that tile's value unchanged.
    """
    window = torch.ones(size, device=device, dtype=dtype)
    if overlap > 0:
        t = torch.arange(1, overlap + 1, device=device, dtype=dtype) / (overlap + 1)
        ramp = 0.5 - 0.5 * torch.cos(math.pi * t)
        window[:overlap] = ramp
        window[size - overlap :] = ramp.flip(0)
    return window


def _tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering [0, size): every ``stride`` pixels, with the last tile flush to the end."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, stride)) + [size - tile]


def _run_tiled(G: Generator, x: Tensor, tile: int, overlap: int) -> Tensor:
    h, w = x.shape[-2:]
    # Images smaller than a tile are mirrored up to tile size so every tile the model sees is full.
    grow_h, grow_w = max(tile - h, 0), max(tile - w, 0)
    pad = (grow_w // 2, grow_w - grow_w // 2, grow_h // 2, grow_h - grow_h // 2)
    x = _pad(x, pad, "reflect")
    hp, wp = x.shape[-2:]
    stride = tile - overlap
    out: Tensor | None = None
    weight: Tensor | None = None
    for top in _tile_starts(hp, tile, stride):
        for left in _tile_starts(wp, tile, stride):
            y = G(x[..., top : top + tile, left : left + tile])
            if out is None:
                # Allocated from the first output, since the generator decides channels and device.
                # Sums are kept in at least float32 so half-precision outputs blend without banding.
                out_dtype = y.dtype
                acc_dtype = torch.promote_types(out_dtype, torch.float32)
                out = torch.zeros(*y.shape[:-2], hp, wp, device=y.device, dtype=acc_dtype)
                weight = torch.zeros(hp, wp, device=y.device, dtype=acc_dtype)
                ramp = _ramp_window(tile, overlap, y.device, acc_dtype)
                window = ramp[:, None] * ramp[None, :]
            out[..., top : top + tile, left : left + tile] += y * window
            weight[top : top + tile, left : left + tile] += window
    assert out is not None and weight is not None
    return crop_padding(out / weight, pad).to(out_dtype)


@dataclass(frozen=True)
class Fitted:
    """How :func:`fit_to_generator` changed an image, and so how :func:`restore_size` undoes it."""

    size: tuple[int, int]
    """The input's (H, W): the output is brought back to it."""
    pad: Padding | None = None
    """``pad``: cropped off the generator's output."""
    tile: tuple[int, int] | None = None
    """``tile``: (tile side, overlap); the generator runs on blended tiles (:func:`run_fitted`)."""


def fit_to_generator(
    x: Tensor,
    *,
    multiple: int,
    resolution: int,
    max_side: int | None = None,
    strategy: str = DEFAULT_STRATEGY,
    tile_overlap: int | None = None,
) -> tuple[Tensor, Fitted]:
    """The first third of :func:`run_any_size`: ``x`` resized, shrunk or padded for the generator.

    Split out so that a folder of images can be fitted in worker threads and the generator run on
    batches of fitted images of one shape (:mod:`gankit.pipeline`). Arguments as :func:`run_any_size`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}' (expected one of {', '.join(STRATEGIES)})")
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if multiple < 1 or resolution < 1:
        raise ValueError(f"multiple and resolution must be positive, got {multiple} and {resolution}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    overlap = 0
    if strategy == "tile":
        if resolution % multiple:
            raise ValueError(f"tile size (resolution={resolution}) must be a multiple of {multiple}")
        overlap = resolution // 4 if tile_overlap is None else tile_overlap
        if not 0 <= overlap <= resolution // 2:
            raise ValueError(f"tile_overlap must be in [0, {resolution // 2}], got {overlap}")

    h, w = x.shape[-2:]
    if strategy == "resize":
        return _resize(x, (resolution, resolution)), Fitted((h, w))
    work = x
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        work = _resize(x, (max(1, round(h * scale)), max(1, round(w * scale))))
    if strategy == "pad":
        padded, pad = pad_to_multiple(work, multiple)
        return padded, Fitted((h, w), pad=pad)
    return work, Fitted((h, w), tile=(resolution, overlap))


def run_fitted(G: Generator, x: Tensor, fitted: Fitted) -> Tensor:
    """The second third of :func:`run_any_size`: the generator on a fitted image (or its tiles)."""
    return _run_tiled(G, x, *fitted.tile) if fitted.tile is not None else G(x)


def restore_size(y: Tensor, fitted: Fitted) -> Tensor:
    """The last third of :func:`run_any_size`: the generator's output cropped and resized to the input's size."""
    if fitted.pad is not None:
        y = crop_padding(y, fitted.pad)
    return _resize(y, fitted.size)


def run_any_size(
    G: Generator,
    x: Tensor,
    *,
    multiple: int,
    resolution: int,
    max_side: int | None = None,
    strategy: str = DEFAULT_STRATEGY,
    tile_overlap: int | None = None,
) -> Tensor:
    """Apply the image-to-image generator ``G`` to a batch ``x`` of any height and width.

    Args:
        G: a fully convolutional generator whose output has the spatial size of its input.
        x: (N, C, H, W) images, already in the range the model expects (e.g. [-1, 1]).
        multiple: H and W that ``G`` accepts must be multiples of this (``UNetGenerator.multiple``).
        resolution: the side of the square images ``G`` was trained on; the ``resize`` target and
            the ``tile`` size (must be a multiple of ``multiple`` for tiling).
        max_side: memory guard. When given and max(H, W) > max_side, the image is first shrunk
            (antialiased bilinear, aspect ratio kept) so its longer side is ``max_side``, processed
            with ``strategy``, and the result upsampled back to H x W. This bounds activation memory
            at the cost of fine detail. Ignored by ``resize``, which always works at ``resolution``.
        strategy: ``pad``, ``resize`` or ``tile`` (see the module docstring); default
            :data:`DEFAULT_STRATEGY`.
        tile_overlap: pixels shared by neighbouring tiles (``tile`` only); defaults to
            ``resolution // 4`` and must be at most ``resolution // 2``.

    Returns:
        (N, C_out, H, W): always exactly the input's height and width.
    """
    fitted_x, fitted = fit_to_generator(
        x, multiple=multiple, resolution=resolution, max_side=max_side, strategy=strategy, tile_overlap=tile_overlap
    )
    return restore_size(run_fitted(G, fitted_x, fitted), fitted)


@torch.no_grad()
def colorize(G: Generator, rgb01: Tensor, resolution: int) -> Tensor:
    """A colorization generator (L -> ab) on photos of any size, RGB in [0, 1] (N, 3, H, W) -> RGB.

    ab is predicted from an antialiased ``resolution`` x ``resolution`` copy, upsampled bilinearly to
    the full size and joined with the photo's own full-resolution L: edges and fine detail come from
    the original, only the colour from the network (``gankit colorize``).
    """
    L_small, L_full = colorize_input(rgb01, resolution)
    return colorize_output(G(L_small), L_full)


@torch.no_grad()
def colorize_input(rgb01: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """The first step of :func:`colorize`: the generator's input (the L of a ``resolution`` copy, model
    scaled) and the photo's own L at full size."""
    from gankit.color import rgb_to_model

    L_full, _ = rgb_to_model(rgb01)
    small = F.interpolate(rgb01, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    L_small, _ = rgb_to_model(small.clamp(0, 1))
    return L_small, L_full


@torch.no_grad()
def colorize_output(ab_small: Tensor, L_full: Tensor) -> Tensor:
    """The last step of :func:`colorize`: the predicted ab upsampled and joined with the full-size L."""
    from gankit.color import model_to_rgb

    ab_full = F.interpolate(ab_small.float(), size=L_full.shape[-2:], mode="bilinear", align_corners=False)
    return model_to_rgb(L_full, ab_full)


# ------------------------------------------------------------------------------ untrained taps


def _used_taps(
    n_in: int, n_out: int, kernel: int, stride: int, padding: int, dilation: int, *, transposed: bool
) -> Tensor:
    """Which of a conv's ``kernel`` taps along one axis ever touch a real (non-padding) position.

    Conv: output ``o`` reads input ``o*stride - padding + j*dilation`` with tap ``j``. Transposed
    conv: input ``i`` writes output ``i*stride - padding + j*dilation``. A tap is used if that index
    lands inside the input (conv) or the kept output (transposed conv) for some ``o`` (or ``i``).
    """
    j = torch.arange(kernel) * dilation
    k = torch.arange(n_in if transposed else n_out) * stride - padding
    limit = n_out if transposed else n_in
    idx = k[:, None] + j[None, :]
    return ((idx >= 0) & (idx < limit)).any(0)


class _PeakTensorBytes(TorchDispatchMode):
    """Bytes held by the live tensor storages created inside the mode, and their peak.

    ``transient(n)`` counts ``n`` more bytes at the current moment only (the inside of a model
    call that is not run, see :func:`estimate_memory`).
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps __torch_dispatch__ in torch._disable_dynamo when the class is made,
        # and the first call imports all of torch._dynamo (seconds); nothing here is compiled.
        return False

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def _current(self) -> int:
        # Storages freed since the last op no longer count; sum what is alive right now.
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        return sum(n for _, n in self.live.values())

    def transient(self, nbytes: float) -> None:
        self.peak = max(self.peak, int(self._current() + nbytes))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                storage = t.untyped_storage()
                ref = StorageWeakRef(storage)
                self.live.setdefault(ref.cdata, (ref, storage.nbytes()))
        self.peak = max(self.peak, self._current())
        return out


@dataclass
class GeneratorProfile:
    """What one forward pass at the training size tells about a fully convolutional generator."""

    size: tuple[int, int]
    """The (H, W) it was measured at (the training size)."""
    out_channels: int
    peak_bytes_per_pixel: float
    """Peak bytes of the tensors the forward pass holds at once (without autograd), per input pixel
    and image. Every activation of a fully convolutional net scales with H x W, so this times the
    pixel count is the forward pass's peak at any size that is a multiple of ``G.multiple``."""
    unused_taps: dict[str, Tensor]
    """Conv / transposed-conv name -> bool (kH, kW) mask of taps that see only zero padding at ``size``."""

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values; :meth:`from_dict` makes the profile again."""
        taps = {name: mask.tolist() for name, mask in self.unused_taps.items()}
        return {"size": list(self.size), "out_channels": self.out_channels,
                "peak_bytes_per_pixel": self.peak_bytes_per_pixel, "unused_taps": taps}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GeneratorProfile:
        """The profile of :meth:`to_dict`'s values; ValueError, TypeError or KeyError when malformed."""
        h, w = (int(v) for v in d["size"])  # type: ignore[attr-defined]
        taps = {str(k): torch.tensor(v, dtype=torch.bool) for k, v in d["unused_taps"].items()}  # type: ignore[attr-defined]
        if any(t.dim() != 2 for t in taps.values()):
            raise ValueError("a tap mask is not 2-d")
        return cls((h, w), int(d["out_channels"]), float(d["peak_bytes_per_pixel"]), taps)  # type: ignore[arg-type]


@torch.no_grad()
def profile_generator(G: nn.Module, size: tuple[int, int], in_channels: int) -> GeneratorProfile:
    """Run ``G`` once on a zero image of ``size`` (in eval mode, restored after) and profile it.

    At its training size, the pix2pix U-Net's innermost conv reads a 2x2 map padded to 4x4, so 12
    of its 16 taps only ever multiply zeros, and the innermost transposed conv crops away the same
    border: those weights get no gradient and keep their random initial values, yet on larger
    inputs they meet real activations. :attr:`GeneratorProfile.unused_taps` finds them for any
    zero-padded ``Conv2d`` / ``ConvTranspose2d`` from the shapes each one saw.
    """
    convs = {name: m for name, m in G.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            shapes.setdefault(name, (tuple(inputs[0].shape[-2:]), tuple(output.shape[-2:])))

        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in convs.items()]
    modes = {m: m.training for m in G.modules()}
    param = next(iter(G.parameters()), None)
    x = torch.zeros(1, in_channels, *size, device=param.device if param is not None else "cpu")
    tracker = _PeakTensorBytes()
    try:
        G.eval()  # BatchNorm in train mode would fold this zero image into its running statistics
        with tracker:
            y = G(x)
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
    unused: dict[str, Tensor] = {}
    for name, m in convs.items():
        if name not in shapes or getattr(m, "padding_mode", "zeros") != "zeros" or isinstance(m.padding, str):
            continue  # not run, or padded with real values (reflect/replicate), or "same"/"valid"
        (h_in, w_in), (h_out, w_out) = shapes[name]
        transposed = isinstance(m, nn.ConvTranspose2d)
        used = [
            _used_taps(n_in, n_out, m.kernel_size[a], m.stride[a], m.padding[a], m.dilation[a], transposed=transposed)
            for a, (n_in, n_out) in enumerate(((h_in, h_out), (w_in, w_out)))
        ]
        mask = ~(used[0][:, None] & used[1][None, :])
        if mask.any():
            unused[name] = mask
    return GeneratorProfile(tuple(size), y.shape[1], tracker.peak / (size[0] * size[1]), unused)


@torch.no_grad()
def zero_unused_taps(G: nn.Module, profile: GeneratorProfile) -> int:
    """Set the taps of ``profile.unused_taps`` to zero, in place; returns how many weights changed.

    At the training size this changes nothing: those taps only ever multiplied zero padding. At
    any other size they would otherwise inject their untrained initial values; zeroed, each output
    of the innermost block depends only on the input block it saw in training.
    """
    modules = dict(G.named_modules())
    count = 0
    for name, mask in profile.unused_taps.items():
        w = modules[name].weight
        m = mask.to(w.device)
        count += int(m.sum()) * w.shape[0] * w.shape[1]
        w.masked_fill_(m, 0.0)
    return count


# ------------------------------------------------------------------------------ memory estimate


def estimate_memory(
    profile: GeneratorProfile,
    shape: tuple[int, int, int, int],
    *,
    multiple: int,
    resolution: int,
    max_side: int | None = None,
    strategy: str = "pad",
    tile_overlap: int | None = None,
) -> int:
    """Peak bytes of the tensors :func:`run_any_size` allocates for an input of ``shape`` (N, C, H, W).

    Counts what the code above holds at once: resized/padded copies, the generator's activations
    (``profile.peak_bytes_per_pixel`` times the pixels of each call), tile accumulators and the
    output; not the input itself, the weights, or scratch space inside kernels (oneDNN's blocked
    copies add up to ~1.5x on CPU; see benchmarks/quality_strategies.py for measured peaks).
    Assumes float32 activations.
    """
    n, c, h, w = shape
    f = 4 * n
    c_out, bpp = profile.out_channels, profile.peak_bytes_per_pixel * n
    px = h * w
    # Each strategy has two moments of peak: during a generator call, and while its output is
    # resized back (or, for tiles, blended) with the generator's intermediates already freed.
    if strategy == "resize":
        r = resolution * resolution
        return int(max(f * c * r + bpp * r, f * c_out * (r + px)))
    scaled = max_side is not None and max(h, w) > max_side
    if scaled:
        assert max_side is not None
        k = max_side / max(h, w)
        h, w = max(1, round(h * k)), max(1, round(w * k))
    work = f * c * h * w if scaled else 0
    back = f * c_out * px if scaled else 0  # the result resized back to the input size
    if strategy == "pad":
        hp, wp = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
        padded = f * c * hp * wp if (hp, wp) != (h, w) else 0
        return int(work + padded + max(bpp * hp * wp, f * c_out * hp * wp + back))
    hp, wp = max(h, resolution), max(w, resolution)
    grown = f * c * hp * wp if (hp, wp) != (h, w) else 0
    accumulators = f * (c_out + 1) * hp * wp
    per_tile = (bpp + f * c_out) * resolution * resolution  # a tile's activations and its weighted copy
    blended = f * c_out * hp * wp
    return int(work + max(grown + accumulators + max(per_tile, blended), blended + back))
