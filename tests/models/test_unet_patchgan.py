"""pix2pix networks: U-Net generator and PatchGAN discriminator (Isola et al., CVPR 2017)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.models.patchgan import PatchDiscriminator, receptive_field
from gankit.models.unet import UNetGenerator


def _stride2_convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]


def _dropout_blocks(g: UNetGenerator) -> list[int]:
    return [i for i, block in enumerate(g.ups) if any(isinstance(m, nn.Dropout) for m in block.modules())]


# ----------------------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize("resolution, depth", [(256, 8), (128, 7)])
def test_unet_output_shape_and_depth(resolution: int, depth: int) -> None:
    torch.manual_seed(0)
    g = UNetGenerator(3, 2, resolution=resolution, ngf=8)
    assert g.multiple == 2**depth == resolution
    assert len(_stride2_convs(g)) == depth
    y = g(torch.randn(2, 3, resolution, resolution))
    assert y.shape == (2, 2, resolution, resolution)
    assert y.abs().max() <= 1.0  # Tanh output


def test_unet_runs_on_non_square_multiples() -> None:
    g = UNetGenerator(1, 2, resolution=256, ngf=8).eval()
    assert g(torch.randn(1, 1, 256, 512)).shape == (1, 2, 256, 512)
    with pytest.raises(ValueError, match="multiple of 256"):
        g(torch.randn(1, 1, 256, 300))


@pytest.mark.parametrize(
    "resolution, widths",
    [
        (256, [64, 128, 256, 512, 512, 512, 512, 512]),
        (128, [64, 128, 256, 512, 512, 512, 512]),
    ],
)
def test_unet_encoder_channel_schedule(resolution: int, widths: list[int]) -> None:
    g = UNetGenerator(3, 3, resolution=resolution, ngf=64)
    encoder_convs = [m for m in g.downs.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in encoder_convs] == widths
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in encoder_convs)
    # No norm on the first and the innermost (1x1) encoder layer; norm everywhere in between.
    has_norm = [any(isinstance(m, nn.BatchNorm2d) for m in block.modules()) for block in g.downs]
    assert has_norm == [False] + [True] * (len(widths) - 2) + [False]
    # The decoder mirrors the encoder back to ngf before the output layer.
    decoder = [m for m in g.ups.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in decoder] == widths[-2::-1] + [3]


def test_unet_256_parameter_count_matches_reference() -> None:
    # The reference pix2pix code reports "Total number of parameters : 54.414 M" for unet_256.
    g = UNetGenerator(3, 3, resolution=256, ngf=64, norm="batch")
    assert sum(p.numel() for p in g.parameters()) == 54_413_955


@pytest.mark.parametrize("norm, conv_bias", [("batch", False), ("instance", True), ("none", True)])
def test_unet_conv_bias_only_without_batchnorm(norm: str, conv_bias: bool) -> None:
    g = UNetGenerator(3, 3, resolution=32, ngf=8, norm=norm)
    inner = [m for m in g.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)][:-1]
    assert all((m.bias is not None) == conv_bias for m in inner)
    assert g.ups[-1][1].bias is not None  # the output conv always has one


@pytest.mark.parametrize("resolution", [256, 128, 32])
def test_unet_dropout_in_three_innermost_decoder_blocks(resolution: int) -> None:
    g = UNetGenerator(3, 3, resolution=resolution, ngf=4, dropout=0.5)
    assert _dropout_blocks(g) == [0, 1, 2]  # ups[0] is the innermost block
    assert all(m.p == 0.5 for m in g.modules() if isinstance(m, nn.Dropout))
    assert _dropout_blocks(UNetGenerator(3, 3, resolution=resolution, ngf=4, dropout=0.0)) == []


@pytest.mark.parametrize(
    "resolution, blocks", [(512, [1, 2, 3, 4]), (256, [1, 2, 3]), (128, [1, 2]), (64, [1]), (32, [])]
)
def test_unet_reference_dropout_follows_the_authors_unet(resolution: int, blocks: list[int]) -> None:
    """The authors' UnetGenerator adds num_downs - 5 dropout blocks of 8*ngf channels around an
    innermost block without dropout; the weights are the same as with the paper's placement."""
    g = UNetGenerator(3, 3, resolution=resolution, ngf=4, dropout=0.5, dropout_blocks="reference")
    assert _dropout_blocks(g) == blocks
    paper = UNetGenerator(3, 3, resolution=resolution, ngf=4, dropout=0.5)
    assert {k: v.shape for k, v in g.state_dict().items()} == {k: v.shape for k, v in paper.state_dict().items()}
    with pytest.raises(ValueError, match="dropout_blocks"):
        UNetGenerator(3, 3, resolution=resolution, ngf=4, dropout_blocks="outer")


def test_unet_dropout_is_active_only_in_train_mode() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    # Instance norm so that train vs eval differs only through dropout.
    g = UNetGenerator(3, 3, resolution=64, ngf=8, norm="instance", dropout=0.5)
    g.eval()
    assert torch.equal(g(x), g(x))
    g.train()
    assert not torch.allclose(g(x), g(x))
    # Control: without dropout, train mode is deterministic too.
    g0 = UNetGenerator(3, 3, resolution=64, ngf=8, norm="instance", dropout=0.0).train()
    assert torch.equal(g0(x), g0(x))


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_unet_batch_size_one_training_step(norm: str) -> None:
    # At the training resolution the bottleneck is 1x1; with batch 1 a norm there would fail.
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, resolution=256, ngf=8, norm=norm).train()
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in g.parameters()]
    x, target = torch.randn(1, 3, 256, 256), torch.rand(1, 3, 256, 256) * 2 - 1
    loss = (g(x) - target).abs().mean()
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, g.parameters()))


@pytest.mark.parametrize("resolution", [0, 16, 100, 48, 300])
def test_unet_rejects_bad_resolution(resolution: int) -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        UNetGenerator(3, 3, resolution=resolution)


# -------------------------------------------------------------------------------------- PatchGAN


def test_patchgan_70x70_gives_30x30_logits_for_256() -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(6)  # real default architecture: ndf=64, n_layers=3, batch norm
    widths = [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)]
    strides = [m.stride[0] for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]
    assert strides == [2, 2, 2, 1, 1]
    assert isinstance(d.main[-1], nn.Conv2d)  # logits, no sigmoid
    y = d(torch.randn(2, 6, 256, 256))
    assert y.shape == (2, 1, 30, 30)
    assert (y < 0).any() and (y > 0).any()


def test_receptive_field_values() -> None:
    assert receptive_field(3) == 70
    assert [receptive_field(n) for n in (1, 2, 4, 5)] == [16, 34, 142, 286]
    assert PatchDiscriminator(3, ndf=8).receptive_field == 70
    with pytest.raises(ValueError):
        receptive_field(0)


def _gradient_support(d: nn.Module, size: int, i: int, j: int) -> tuple[int, int]:
    """Rows and columns of the input that output pixel (i, j) depends on."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    d(x)[0, 0, i, j].backward()
    nonzero = x.grad.abs().sum(dim=(0, 1)) > 0
    rows = nonzero.any(dim=1).nonzero().flatten()
    cols = nonzero.any(dim=0).nonzero().flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_receptive_field_matches_gradient_support(n_layers: int) -> None:
    torch.manual_seed(0)
    d = PatchDiscriminator(3, ndf=8, n_layers=n_layers, norm="none").eval()
    size = 256
    side = size // 2**n_layers - 2
    rf = receptive_field(n_layers)
    # A central output pixel sees a full patch, unclipped by the image border.
    assert _gradient_support(d, size, side // 2, side // 2) == (rf, rf)
    # A corner pixel's patch is partly zero padding, so it sees fewer real pixels, never more.
    h, w = _gradient_support(d, size, 0, side - 1)
    assert h < rf and w < rf


@pytest.mark.parametrize("n_layers, side", [(1, 126), (2, 62), (3, 30), (4, 14), (5, 6)])
def test_patchgan_map_size_depends_on_n_layers(n_layers: int, side: int) -> None:
    d = PatchDiscriminator(4, ndf=4, n_layers=n_layers)
    assert len(_stride2_convs(d)) == n_layers
    assert d(torch.randn(2, 4, 256, 256)).shape == (2, 1, side, side)


def test_patchgan_batch_size_one_and_non_square() -> None:
    d = PatchDiscriminator(3, ndf=8, norm="batch").train()
    y = d(torch.randn(1, 3, 128, 256))
    assert y.shape == (1, 1, 14, 30)
    y.mean().backward()
    assert all(p.grad is not None for p in d.parameters())


def test_patchgan_layer_norm_scores_samples_independently() -> None:
    """norm=layer (for WGAN-GP critics): GroupNorm with one group per normalized block, no redundant
    conv bias, and a sample's logits do not depend on the rest of the batch (unlike batch norm)."""
    torch.manual_seed(0)
    d = PatchDiscriminator(6, ndf=8, n_layers=2, norm="layer")
    norms = [m for m in d.modules() if isinstance(m, nn.GroupNorm)]
    assert [(m.num_groups, m.num_channels) for m in norms] == [(1, 16), (1, 32)]
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.bias is not None for c in convs] == [True, False, False, True]
    x = torch.randn(3, 6, 32, 32)
    assert torch.allclose(d(x)[:1], d(x[:1]), atol=1e-6)
    bn = PatchDiscriminator(6, ndf=8, n_layers=2, norm="batch")
    assert not torch.allclose(bn(x)[:1], bn(x[:2])[:1], atol=1e-4)  # the control: batch norm mixes samples
