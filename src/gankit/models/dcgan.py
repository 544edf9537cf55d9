"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016), as in the PyTorch DCGAN example.

For 64x64 images the layers are exactly those of the PyTorch tutorial (nz=100, ngf=ndf=64). Other
power-of-two resolutions (32, 128, ...) add or remove one stride-2 block per factor of two, keeping
a 4x4 base and channel widths ngf * 2**k.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from gankit.models.layers import norm_layer


def _num_blocks(resolution: int) -> int:
    n = int(math.log2(resolution)) - 2
    if resolution < 16 or 2 ** (n + 2) != resolution:
        raise ValueError(f"DCGAN needs a power-of-two resolution >= 16, got {resolution}")
    return n


class DCGANGenerator(nn.Module):
    """z (N, nz) -> transposed convs with BatchNorm + ReLU -> Tanh image (N, channels, R, R)."""

    def __init__(
        self, z_dim: int = 100, channels: int = 3, *, resolution: int = 64, ngf: int = 64, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        n = _num_blocks(resolution)
        width = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=False),
            norm_layer(norm, width),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                norm_layer(norm, width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.main(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Image -> strided convs with BatchNorm + LeakyReLU(0.2) -> one logit per image.

    ``norm`` is ``batch`` in the DCGAN paper; a WGAN-GP critic uses ``layer`` (or ``none``), since its
    gradient penalty is defined per sample and batch statistics would mix the samples.
    """

    def __init__(self, channels: int = 3, *, resolution: int = 64, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        n = _num_blocks(resolution)
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(n - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                norm_layer(norm, width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.main(x).flatten()
