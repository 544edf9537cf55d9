"""Image-to-image inference on files: ``gankit translate`` (pix2pix) and ``gankit colorize``.

Both accept images of any size and aspect ratio and write outputs of exactly the input's size.

* translate: the U-Net runs on the image reflect-padded to a multiple of its stride (or resized,
  or tiled; see :func:`gankit.inference.run_any_size`).
* colorize: ab is predicted at the model's training resolution from a resized copy, upsampled
  to the full size and combined with the photo's own full-resolution L channel, so edges and fine
  detail come from the original, only the colour from the network.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.data.errors import DataError
from gankit.data.images import ImageReadError, SkipReport, list_images, open_image, pil_to_tensor, to_rgb
from gankit.inference import run_any_size
from gankit.sampling import LoadedGenerator, load_generator
from gankit.visualize import save_png


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the images inside (sorted)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError(f"{p}: no image files found")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return out


def _load_rgb01(path: Path) -> Tensor:
    """(1, 3, H, W) float in [0, 1]; grayscale files become three equal channels."""
    return pil_to_tensor(to_rgb(open_image(path))).unsqueeze(0).float() / 255.0


def _save_rgb01(img: Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png((img[0].clamp(0, 1) * 255).round().to(torch.uint8), path)


@torch.no_grad()
def translate_image(loaded: LoadedGenerator, rgb01: Tensor, *, strategy: str = "pad") -> Tensor:
    """pix2pix output for one (1, C, H, W) image in [0, 1]; returns (1, 3, H, W) in [0, 1]."""
    G, info = loaded.G, loaded.info
    device = next(G.parameters()).device
    x = rgb01.to(device)
    if info.in_channels == 1 and x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    y = run_any_size(G, x * 2 - 1, multiple=G.multiple, resolution=info.resolution, strategy=strategy)
    y = (y.float() + 1) / 2
    return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y


@torch.no_grad()
def colorize_image(loaded: LoadedGenerator, rgb01: Tensor) -> Tensor:
    """Colour version of a (1, 3, H, W) photo in [0, 1] (grayscale or colour) at its full resolution."""
    from gankit.color import model_to_rgb, rgb_to_model

    G, res = loaded.G, loaded.info.resolution
    device = next(G.parameters()).device
    full = rgb01.to(device)
    L_full, _ = rgb_to_model(full)
    small = F.interpolate(full, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    L_small, _ = rgb_to_model(small.clamp(0, 1))
    ab_small = G(L_small).float()
    ab_full = F.interpolate(ab_small, size=full.shape[-2:], mode="bilinear", align_corners=False)
    return model_to_rgb(L_full, ab_full)


def run_translate(args: argparse.Namespace) -> int:
    """The ``translate`` and ``colorize`` subcommands."""
    from gankit.training.loop import resolve_device

    command = args.command_name
    loaded = load_generator(
        args.run,
        device=resolve_device(args.device),
        prefer_best=args.checkpoint == "best",
        family="colorize" if command == "colorize" else "pix2pix",
    )
    if command == "colorize" and loaded.info.space != "lab":
        raise DataError(f"{loaded.path}: a '{loaded.family.name}' model, not a colorization model")
    if command == "translate" and loaded.info.space == "lab":
        raise DataError(f"{loaded.path}: a colorization model; use `gankit colorize`")
    loaded.G.train(args.train_mode)
    files = expand_inputs(args.inputs)
    out_dir = Path(args.out)
    report = SkipReport("inputs")
    written = 0
    for f in files:
        try:
            rgb = _load_rgb01(f)
        except ImageReadError as e:
            report.add(e)
            continue
        if command == "colorize":
            result = colorize_image(loaded, rgb)
        else:
            result = translate_image(loaded, rgb, strategy=args.strategy)
        _save_rgb01(result, out_dir / f"{f.stem}.png")
        written += 1
    if report.total:
        print(report.summary())
    print(f"wrote {written} image(s) to {out_dir} ({'train' if args.train_mode else 'eval'} mode, {loaded.path.name})")
    return 0 if written else 1
