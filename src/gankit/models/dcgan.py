"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016), as in the PyTorch DCGAN example.

For 64x64 images the layers are exactly those of the PyTorch tutorial (nz=100, ngf=ndf=64), with its
parameter names (``main.0.weight`` ...), so its checkpoints load unchanged. Other power-of-two
resolutions add or remove one stride-2 block per factor of two around the same 4x4 base, the way
the paper's architecture extends: 32 has one block fewer, 128 one more, 256 two more.

The channel rule: a feature map of side ``s`` in an ``R`` x ``R`` network has
``base * min(R / (2 * s), 8)`` channels (``base`` is ``ngf`` in G, ``ndf`` in D). Widths double per
block towards the 4x4 end, as in the paper, but stop at ``base * 8``, the widest layer of the 64-px
network (see :data:`MAX_WIDTH_MULT`): at 128 G's channels run nz -> 8 -> 8 -> 4 -> 2 -> 1 (x ngf)
-> image, at 256 nz -> 8 -> 8 -> 8 -> 4 -> 2 -> 1. At 64 and below the cap is never reached, so
those networks are the uncapped ones.
"""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn

from gankit.models.layers import norm_layer

MAX_WIDTH_MULT = 8
"""Widest layer as a multiple of ``ngf``/``ndf``: the 64-px network's, kept at every resolution
(doubling on would give 16x at 128 and 32x at 256)."""

MIN_RESOLUTION = 16


def check_resolution(resolution: int) -> None:
    """Raise a one-line ValueError unless ``resolution`` is a power of two >= :data:`MIN_RESOLUTION`."""
    if resolution < MIN_RESOLUTION or resolution & (resolution - 1):
        raise ValueError(
            f"dcgan: data.resolution={resolution} is not supported; DCGAN needs a power of two "
            f">= {MIN_RESOLUTION} (e.g. 32, 64, 128 or 256)"
        )


def feature_widths(resolution: int, base: int) -> list[int]:
    """Channels of the feature maps from the 4x4 one up to side ``resolution // 2``.

    ``base * min(resolution / (2 * side), MAX_WIDTH_MULT)`` per side: G runs through them in this
    order, D in reverse. At 64 with ``base=64``: ``[512, 256, 128, 64]``.
    """
    check_resolution(resolution)
    n = resolution.bit_length() - 3  # feature maps at sides 4, 8, ..., resolution // 2
    return [base * min(2 ** (n - 1 - k), MAX_WIDTH_MULT) for k in range(n)]


class DCGANGenerator(nn.Module):
    """z (N, nz) -> transposed convs with BatchNorm + ReLU -> Tanh image (N, channels, R, R).

    A 4x4 transposed conv from z to the 4x4 map, then one stride-2 block per doubling of the side;
    channel widths follow :func:`feature_widths` (capped at ``ngf * 8``).
    """

    def __init__(
        self, z_dim: int = 100, channels: int = 3, *, resolution: int = 64, ngf: int = 64, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        widths = feature_widths(resolution, ngf)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False),
            norm_layer(norm, widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                norm_layer(norm, w_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.main(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Image -> strided convs with BatchNorm + LeakyReLU(0.2) -> one logit per image.

    The mirror of :class:`DCGANGenerator`: one stride-2 conv per halving of the side down to 4x4
    (widths :func:`feature_widths` reversed, capped at ``ndf * 8``), then a 4x4 conv to one logit.
    ``norm`` is ``batch`` in the DCGAN paper; a WGAN-GP critic uses ``layer`` (or ``none``), since its
    gradient penalty is defined per sample and batch statistics would mix the samples.
    """

    def __init__(self, channels: int = 3, *, resolution: int = 64, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        widths = feature_widths(resolution, ndf)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for w_in, w_out in pairwise(widths):
            layers += [
                nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False),
                norm_layer(norm, w_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.main(x).flatten()
