"""Running a fully convolutional image-to-image generator on images of any size and aspect ratio.

The pix2pix U-Net (Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017) is trained on square crops, but being fully convolutional it runs on any
height and width that are multiples of its total stride (``UNetGenerator.multiple``). The helpers
here bridge the gap to arbitrary images:

* ``pad``: reflect-pad up to the next multiple, run once, crop back. Keeps full detail and the
  native scale; the usual choice.
* ``resize``: squash to the training resolution, run, resize back. Matches the training
  distribution exactly but distorts the aspect ratio and loses detail on large images.
* ``tile``: run on overlapping training-size tiles and blend them with a smooth window. Each
  tile looks like a training crop, and memory stays bounded by the tile size.

None of these functions switches the module between train and eval mode or disables autograd:
that is the caller's choice (pix2pix, for instance, is sometimes sampled with dropout kept on).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRATEGIES = ("pad", "resize", "tile")
PAD_MODES = ("reflect", "replicate", "constant")

Padding = tuple[int, int, int, int]
"""(left, right, top, bottom), the order of :func:`torch.nn.functional.pad` for the last two dims."""


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


def _run_tiled(G: nn.Module, x: Tensor, tile: int, overlap: int) -> Tensor:
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


def run_any_size(
    G: nn.Module,
    x: Tensor,
    *,
    multiple: int,
    resolution: int,
    max_side: int | None = None,
    strategy: str = "pad",
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
        strategy: ``pad``, ``resize`` or ``tile`` (see the module docstring).
        tile_overlap: pixels shared by neighbouring tiles (``tile`` only); defaults to
            ``resolution // 4`` and must be at most ``resolution // 2``.

    Returns:
        (N, C_out, H, W): always exactly the input's height and width.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}' (expected one of {', '.join(STRATEGIES)})")
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if multiple < 1 or resolution < 1:
        raise ValueError(f"multiple and resolution must be positive, got {multiple} and {resolution}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if strategy == "tile":
        if resolution % multiple:
            raise ValueError(f"tile size (resolution={resolution}) must be a multiple of {multiple}")
        overlap = resolution // 4 if tile_overlap is None else tile_overlap
        if not 0 <= overlap <= resolution // 2:
            raise ValueError(f"tile_overlap must be in [0, {resolution // 2}], got {overlap}")

    h, w = x.shape[-2:]
    if strategy == "resize":
        return _resize(G(_resize(x, (resolution, resolution))), (h, w))

    work = x
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        work = _resize(x, (max(1, round(h * scale)), max(1, round(w * scale))))

    if strategy == "pad":
        padded, pad = pad_to_multiple(work, multiple)
        y = crop_padding(G(padded), pad)
    else:
        y = _run_tiled(G, work, resolution, overlap)
    return _resize(y, (h, w))
