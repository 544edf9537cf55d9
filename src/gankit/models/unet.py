"""U-Net generator of pix2pix.

Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial Networks",
CVPR 2017 (appendix 6.1.1), following the authors' PyTorch reference ``UnetGenerator``.

For a 256x256 input the encoder is C64-C128-C256-C512-C512-C512-C512-C512 (4x4 convs, stride 2,
LeakyReLU 0.2) down to a 1x1 bottleneck, and the decoder mirrors it with ReLU + 4x4 transposed
convs, concatenating the encoder feature map of the same size before every decoder block except
the innermost one. Each resolution 2**k uses k downsamplings, so the bottleneck is always 1x1 at
the training resolution. The network is fully convolutional: any input whose height and width are
multiples of :attr:`UNetGenerator.multiple` works (see :mod:`gankit.inference` for other sizes).

Two details follow the reference code rather than the paper's table:

* the innermost encoder conv has no normalization: at the 1x1 bottleneck BatchNorm with batch
  size 1 has a single value per channel (it raises in train mode) and InstanceNorm is undefined;
* convs carry a bias only when the norm is not ``batch`` (the final output conv always has one),
  so the parameter count matches the reference (54.41 M for ``unet_256``, ngf=64, RGB->RGB).

Where the dropout sits is a choice (``dropout_blocks``): ``paper`` puts it in the three decoder
blocks closest to the bottleneck, as in the paper's CD512-CD1024-CD1024 decoder head; ``reference``
follows the authors' code, which has none in the innermost block and one in every other block
whose width is at the 8*ngf cap (three at 256x256, none at 32x32). Neither changes a shape or a
parameter, so a checkpoint loads under both; only training and train-mode sampling differ.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gankit.models.layers import norm_layer

NUM_DROPOUT_BLOCKS = 3
DROPOUT_BLOCKS = ("paper", "reference")


def num_downsamplings(resolution: int) -> int:
    """log2(resolution): the number of stride-2 convs that bring ``resolution`` down to 1x1."""
    n = int(math.log2(resolution)) if resolution > 0 else 0
    if resolution < 32 or 2**n != resolution:
        raise ValueError(f"U-Net needs a power-of-two resolution >= 32, got {resolution}")
    return n


class UNetGenerator(nn.Module):
    """pix2pix U-Net: image (N, in_channels, H, W) -> image (N, out_channels, H, W) in [-1, 1].

    Args:
        in_channels: channels of the conditioning image (3 for facades, 1 for the L of Lab).
        out_channels: channels produced (3 for RGB, 2 for the ab of Lab).
        resolution: training resolution; sets the depth to log2(resolution) downsamplings.
        ngf: width of the first encoder layer; deeper layers use multiples capped at 8 * ngf.
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout probability in the decoder blocks named by ``dropout_blocks``; 0 disables it.
        dropout_blocks: ``paper`` (the three decoder blocks nearest the bottleneck) or ``reference``
            (the 8*ngf decoder blocks after the innermost one, as ``junyanz/pytorch-CycleGAN-and-pix2pix``).

    ``self.multiple`` (= 2 ** depth) is the number that input height and width must divide by.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        resolution: int = 256,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        dropout_blocks: str = "paper",
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if dropout_blocks not in DROPOUT_BLOCKS:
            raise ValueError(f"dropout_blocks must be one of {', '.join(DROPOUT_BLOCKS)}, got {dropout_blocks!r}")
        depth = num_downsamplings(resolution)
        self.resolution = resolution
        self.num_downs = depth
        self.multiple = 2**depth
        # BatchNorm's learned shift makes a conv bias redundant; instance norm here is affine-free,
        # so with it (or with no norm) the convs need their own bias.
        bias = norm != "batch"
        widths = [ngf * min(2**i, 8) for i in range(depth)]

        downs: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=bias)]
        for i in range(1, depth):
            innermost = i == depth - 1
            downs.append(
                nn.Sequential(
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=bias),
                    nn.Identity() if innermost else norm_layer(norm, widths[i]),
                )
            )
        self.downs = nn.ModuleList(downs)

        # Built innermost first, i.e. in the order forward() runs them. ups[k] produces the feature
        # map of encoder level depth-2-k; only the innermost block sees no skip connection.
        ups: list[nn.Module] = []
        for level in range(depth - 1, 0, -1):
            in_width = widths[level] if level == depth - 1 else 2 * widths[level]
            if dropout_blocks == "paper":
                in_dropout_block = level >= depth - NUM_DROPOUT_BLOCKS
            else:  # the reference's 8*ngf blocks: output width at the cap, innermost excluded
                in_dropout_block = level < depth - 1 and widths[level - 1] == widths[-1] == 8 * ngf
            use_dropout = dropout > 0 and in_dropout_block
            ups.append(
                nn.Sequential(
                    nn.ReLU(),
                    nn.ConvTranspose2d(in_width, widths[level - 1], 4, 2, 1, bias=bias),
                    norm_layer(norm, widths[level - 1]),
                    nn.Dropout(dropout) if use_dropout else nn.Identity(),
                )
            )
        ups.append(
            nn.Sequential(
                nn.ReLU(),
                nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1),
                nn.Tanh(),
            )
        )
        self.ups = nn.ModuleList(ups)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"U-Net input size {h}x{w} is not a multiple of {self.multiple}; pad or resize it first "
                "(gankit.inference.run_any_size does this for any image size)"
            )
        skips: list[Tensor] = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        # The bottleneck output goes straight into the innermost up block; every later block gets
        # the previous block's output concatenated with the encoder map of the same size.
        x = self.ups[0](skips.pop())
        for up in self.ups[1:]:
            x = up(torch.cat([x, skips.pop()], dim=1))
        return x
