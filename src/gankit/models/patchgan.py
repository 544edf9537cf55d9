"""PatchGAN discriminator of pix2pix.

Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial Networks",
CVPR 2017 (sections 3.2.2 and 6.1.2), following the authors' PyTorch reference ``NLayerDiscriminator``.

Instead of one real/fake score per image, the discriminator is a small fully convolutional net that
scores every N x N patch: its output is a map of logits, one per overlapping patch. With the default
``n_layers=3`` it is the paper's 70x70 PatchGAN, C64-C128-C256-C512 followed by a 1-channel conv,
and a 256x256 input yields a 30x30 map. The map is averaged by the loss, so the discriminator only
models high-frequency structure while the L1 term of pix2pix takes care of low frequencies.

The discriminator is conditional in pix2pix, but conditioning is the caller's job: it concatenates
the input and the (real or generated) output on the channel axis, so ``in_channels`` is e.g. 6 for
RGB->RGB facades or 3 (L + ab) for Lab colorization.
"""

from __future__ import annotations

from torch import Tensor, nn

from gankit.models.layers import norm_layer


def receptive_field(n_layers: int) -> int:
    """Side, in input pixels, of the patch that one output logit of :class:`PatchDiscriminator` sees.

    The net is ``n_layers`` 4x4 stride-2 convs and two 4x4 stride-1 convs. Walking back from one
    output pixel, a 4x4 stride-1 conv grows the field by 3 (1 -> 4 -> 7) and a 4x4 stride-2 conv
    maps r to 2r + 2, which gives ``9 * 2**n_layers - 2``: 16, 34, 70, 142, 286 for n_layers 1..5.
    ``n_layers=3`` is the paper's "70x70 PatchGAN".
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return 9 * 2**n_layers - 2


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN: (N, in_channels, H, W) -> patch logits (N, 1, H', W'), no sigmoid.

    For a side S, each of the ``n_layers`` stride-2 convs maps S to floor(S / 2) and each of the
    two stride-1 convs to S - 1, so S' = floor(S / 2**n_layers) - 2 (30 for 256 with n_layers=3).

    Args:
        in_channels: channels of the (condition, image) pair concatenated by the caller.
        ndf: width of the first layer; layer n has ``ndf * min(2**n, 8)`` channels.
        n_layers: number of stride-2 convs; sets the patch size (see :func:`receptive_field`).
        norm: ``batch``, ``instance``, ``layer`` or ``none``; never applied to the first layer. A
            critic trained with a gradient penalty needs a per-sample norm (not ``batch``).
    """

    def __init__(self, in_channels: int, *, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        self.receptive_field = receptive_field(n_layers)
        # BatchNorm's learned shift makes a conv bias redundant (same rule as the reference); so does
        # layer norm's per-channel shift.
        bias = norm not in ("batch", "layer")
        # The first layer has no norm, so it keeps its bias regardless (as in the reference).
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for n in range(1, n_layers + 1):
            # The last of these blocks keeps stride 1: it widens the field without shrinking the map.
            stride = 2 if n < n_layers else 1
            next_width = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(width, next_width, 4, stride, 1, bias=bias),
                norm_layer(norm, next_width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)
