"""Every registered family builds from a DataInfo; the seed architectures have their exact layers."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from gankit.config import PRESETS, make_config
from gankit.data.base import DataInfo
from gankit.families import FAMILIES, get_family, list_families
from gankit.models.layers import INIT_SCHEMES, init_weights

# What each family is trained on; a new family must be added here (the test fails with a KeyError).
FAMILY_INFO = {
    "gan": DataInfo(channels=1, resolution=28, num_classes=10),
    "cgan": DataInfo(channels=1, resolution=28, num_classes=10),
    "dcgan": DataInfo(channels=3, resolution=32),
    "pix2pix": DataInfo(channels=3, resolution=64, in_channels=3),
    "colorize": DataInfo(channels=2, resolution=64, in_channels=1, space="lab"),
}

PRESET_INFO = {
    "gan": DataInfo(channels=1, resolution=28, num_classes=10),
    "cgan": DataInfo(channels=1, resolution=28, num_classes=10),
    "dcgan": DataInfo(channels=3, resolution=64),
    "dcgan128": DataInfo(channels=3, resolution=128),
    "dcgan256": DataInfo(channels=3, resolution=256),
    "dcgan-fmnist": DataInfo(channels=1, resolution=64, num_classes=10),
    "dcgan-fmnist32": DataInfo(channels=1, resolution=32, num_classes=10),
    "pix2pix": DataInfo(channels=3, resolution=256, in_channels=3),
    "colorize": DataInfo(channels=2, resolution=256, in_channels=1, space="lab"),
}

SMALL = {"model.ngf": 8, "model.ndf": 8, "model.g_hidden": [32, 32], "model.d_hidden": [32, 32], "model.z_dim": 16}


def _run_pair(family_name: str, cfg, info: DataInfo, n: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Build G and D, run G on a batch and D on G's output; return (G out, D out, G input)."""
    fam = get_family(family_name)
    G, D = fam.build(cfg, info)
    torch.manual_seed(0)
    if fam.kind == "noise":
        labels = torch.arange(n) % info.num_classes if family_name == "cgan" else None
        x_in = torch.randn(n, cfg.model.z_dim)
        out = G(x_in, labels)
        logits = D(out, labels)
    else:
        x_in = torch.rand(n, info.in_channels, info.resolution, info.resolution) * 2 - 1
        out = G(x_in)
        logits = D(torch.cat([x_in, out], dim=1))
    return out, logits, x_in


def _expected_logits_shape(kind: str, resolution: int, n: int, n_layers: int = 3) -> tuple[int, ...]:
    if kind == "noise":
        return (n,)
    side = resolution // 2**n_layers - 2
    return (n, 1, side, side)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_builds_and_runs(name: str) -> None:
    info = FAMILY_INFO[name]
    cfg = make_config(name, overrides=SMALL)
    out, logits, _ = _run_pair(name, cfg, info, n=3)
    assert out.shape == (3, info.channels, info.resolution, info.resolution)
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert out.std() > 0  # not a constant image
    assert logits.shape == _expected_logits_shape(FAMILIES[name].kind, info.resolution, 3)
    assert torch.isfinite(logits).all()
    # no Sigmoid at the end of any discriminator: losses work on logits
    G, D = get_family(name).build(cfg, info)
    assert not any(isinstance(m, nn.Sigmoid) for m in D.modules())


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_builds_at_its_resolution(preset: str) -> None:
    info = PRESET_INFO[preset]
    cfg = make_config(preset, overrides={"model.ngf": 8, "model.ndf": 8})
    assert not cfg.data.resolution or cfg.data.resolution == info.resolution
    out, logits, _ = _run_pair(cfg.family, cfg, info, n=2)
    assert out.shape == (2, info.channels, info.resolution, info.resolution)
    assert out.abs().max() <= 1.0
    assert logits.shape == _expected_logits_shape(FAMILIES[cfg.family].kind, info.resolution, 2)


def test_registry() -> None:
    assert list_families() == list(FAMILIES)
    assert {"gan", "cgan", "dcgan", "pix2pix", "colorize"} <= set(FAMILIES)
    assert {f.kind for f in FAMILIES.values()} == {"noise", "paired"}
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        get_family("nope")


def test_cgan_needs_labels() -> None:
    with pytest.raises(ValueError, match="labelled data"):
        get_family("cgan").build(make_config("cgan"), DataInfo(channels=1, resolution=28))
    G, D = get_family("cgan").build(make_config("cgan", overrides=SMALL), FAMILY_INFO["cgan"])
    with pytest.raises(ValueError, match="pass labels"):
        G(torch.randn(2, 16))
    with pytest.raises(ValueError, match="pass labels"):
        D(torch.randn(2, 1, 28, 28))


def test_cgan_output_depends_on_label() -> None:
    G, _ = get_family("cgan").build(make_config("cgan", overrides=SMALL), FAMILY_INFO["cgan"])
    z = torch.randn(1, 16).expand(2, -1)
    out = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])


# ---------------------------------------------------------------------------- exact seed layers


def _linears(m: nn.Module) -> list[tuple[int, int]]:
    return [(l.in_features, l.out_features) for l in m.modules() if isinstance(l, nn.Linear)]


def _layers(seq: nn.Sequential) -> list[tuple]:
    """Every layer of ``seq`` as a comparable tuple: kind and sizes / slope / probability."""
    out: list[tuple] = []
    for m in seq:
        if type(m) is nn.Linear:
            out.append(("linear", m.in_features, m.out_features, m.bias is not None))
        elif type(m) is nn.LeakyReLU:
            out.append(("leaky", m.negative_slope))
        elif type(m) is nn.ReLU:
            out.append(("relu",))
        elif type(m) is nn.Dropout:
            out.append(("dropout", m.p))
        elif type(m) is nn.Tanh:
            out.append(("tanh",))
        else:
            out.append(("other", type(m).__name__))
    return out


def _lin(i: int, o: int) -> tuple:
    return ("linear", i, o, True)


def test_gan_seed_layers() -> None:
    """The notes' GAN: G 64-256-256-784 ReLU, Tanh; D 784-256-256-1 LeakyReLU(0.2), one logit."""
    G, D = get_family("gan").build(make_config("gan"), FAMILY_INFO["gan"])
    relu, leaky = ("relu",), ("leaky", 0.2)
    assert _layers(G.net) == [_lin(64, 256), relu, _lin(256, 256), relu, _lin(256, 784), ("tanh",)]
    assert _layers(D.net) == [_lin(784, 256), leaky, _lin(256, 256), leaky, _lin(256, 1)]
    assert list(G.children()) == [G.net] and list(D.children()) == [D.net]  # no embedding, nothing else
    assert G(torch.randn(5, 64)).shape == (5, 1, 28, 28)
    assert D(torch.randn(5, 1, 28, 28)).shape == (5,)  # one logit per image, no Sigmoid


def test_cgan_seed_layers() -> None:
    """The notes' cGAN: labels embedded 10x10 and concatenated to z=100 (G) and to the flat image (D);
    G 110-256-512-1024-784 with LeakyReLU(0.2), Tanh; D 794-1024-512-256-1 with LeakyReLU(0.2) and
    dropout 0.3 after every hidden layer, one logit."""
    G, D = get_family("cgan").build(make_config("cgan"), FAMILY_INFO["cgan"])
    leaky, drop = ("leaky", 0.2), ("dropout", 0.3)
    assert G.embed.weight.shape == (10, 10) and D.embed.weight.shape == (10, 10)
    assert _layers(G.net) == [
        *(_lin(110, 256), leaky),
        *(_lin(256, 512), leaky),
        *(_lin(512, 1024), leaky),
        _lin(1024, 784),
        ("tanh",),
    ]
    assert _layers(D.net) == [
        *(_lin(794, 1024), leaky, drop),
        *(_lin(1024, 512), leaky, drop),
        *(_lin(512, 256), leaky, drop),
        _lin(256, 1),
    ]
    assert list(G.children()) == [G.embed, G.net] and list(D.children()) == [D.embed, D.net]
    labels = torch.arange(4) % 10
    assert G(torch.randn(4, 100), labels).shape == (4, 1, 28, 28)
    assert D(torch.randn(4, 1, 28, 28), labels).shape == (4,)


def test_mlp_generator_activation_is_checked() -> None:
    from gankit.models.mlp import MLPGenerator

    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        MLPGenerator(8, (1, 4, 4), hidden=[8], act="gelu")


def _convs(m: nn.Module, kind: type) -> list[nn.Module]:
    return [c for c in m.modules() if type(c) is kind]


def test_dcgan_64_matches_the_pytorch_example() -> None:
    cfg = make_config("dcgan")
    assert (cfg.model.ngf, cfg.model.ndf, cfg.model.z_dim) == (64, 64, 100)
    G, D = get_family("dcgan").build(cfg, PRESET_INFO["dcgan"])
    g_convs = _convs(G, nn.ConvTranspose2d)
    widths = [(c.in_channels, c.out_channels) for c in g_convs]
    assert widths == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    assert [c.stride for c in g_convs] == [(1, 1)] + [(2, 2)] * 4
    assert [c.padding for c in g_convs] == [(0, 0)] + [(1, 1)] * 4
    assert all(c.kernel_size == (4, 4) and c.bias is None for c in g_convs)
    assert [b.num_features for b in _convs(G, nn.BatchNorm2d)] == [512, 256, 128, 64]
    assert isinstance(G.main[-1], nn.Tanh)
    d_convs = _convs(D, nn.Conv2d)
    assert [(c.in_channels, c.out_channels) for c in d_convs] == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert [c.stride for c in d_convs] == [(2, 2)] * 4 + [(1, 1)]
    assert all(c.kernel_size == (4, 4) and c.bias is None for c in d_convs)
    assert [b.num_features for b in _convs(D, nn.BatchNorm2d)] == [128, 256, 512]  # none after the first conv
    assert all(m.negative_slope == 0.2 for m in D.modules() if isinstance(m, nn.LeakyReLU))
    # parameter counts printed by the PyTorch DCGAN tutorial's models
    assert sum(p.numel() for p in G.parameters()) == 3_576_704
    assert sum(p.numel() for p in D.parameters()) == 2_765_568
    out = G(torch.randn(2, 100))
    assert out.shape == (2, 3, 64, 64)
    assert D(out).shape == (2,)


def test_dcgan_32_variant() -> None:
    cfg = make_config("dcgan-fmnist32")
    G, D = get_family("dcgan").build(cfg, PRESET_INFO["dcgan-fmnist32"])
    assert [(c.in_channels, c.out_channels) for c in _convs(G, nn.ConvTranspose2d)] == [
        (100, 256),
        (256, 128),
        (128, 64),
        (64, 1),
    ]
    assert [(c.in_channels, c.out_channels) for c in _convs(D, nn.Conv2d)] == [(1, 64), (64, 128), (128, 256), (256, 1)]
    out = G(torch.randn(3, 100))
    assert out.shape == (3, 1, 32, 32)
    assert D(out).shape == (3,)


@pytest.mark.parametrize("resolution", [8, 48, 100])
def test_dcgan_refuses_odd_resolutions(resolution: int) -> None:
    cfg = make_config("dcgan", overrides={"model.ngf": 8, "model.ndf": 8})
    with pytest.raises(ValueError, match="power of two"):
        get_family("dcgan").build(cfg, DataInfo(channels=3, resolution=resolution))


# ------------------------------------------------------------------------------------ init


def test_normal_init_statistics() -> None:
    torch.manual_seed(0)
    G, D = get_family("dcgan").build(make_config("dcgan"), PRESET_INFO["dcgan"])
    for model in (G, D):
        for c in [*_convs(model, nn.Conv2d), *_convs(model, nn.ConvTranspose2d)]:
            w = c.weight.detach()
            if w.numel() < 1000:  # the 512x1 last D conv still has 8192 weights; all are large
                continue
            assert abs(w.std().item() - 0.02) < 0.02 * 0.1, c
            assert abs(w.mean().item()) < 0.002, c
    gammas = torch.cat([m.weight.detach() for m in [*G.modules(), *D.modules()] if isinstance(m, nn.BatchNorm2d)])
    betas = torch.cat([m.bias.detach() for m in [*G.modules(), *D.modules()] if isinstance(m, nn.BatchNorm2d)])
    assert gammas.numel() == (512 + 256 + 128 + 64) + (128 + 256 + 512)
    assert abs(gammas.mean().item() - 1.0) < 0.002
    assert abs(gammas.std().item() - 0.02) < 0.003
    assert torch.equal(betas, torch.zeros_like(betas))


def test_normal_init_of_mlp_biases_and_weights() -> None:  # the MLP presets may pick another scheme
    torch.manual_seed(0)
    cfg = make_config("gan", overrides={"model.init": "normal"})
    G, D = get_family("gan").build(cfg, FAMILY_INFO["gan"])
    for lin in [m for m in [*G.modules(), *D.modules()] if isinstance(m, nn.Linear)]:
        if lin.weight.numel() >= 10_000:
            assert abs(lin.weight.std().item() - 0.02) < 0.002
        assert torch.equal(lin.bias, torch.zeros_like(lin.bias))


def _first_weights(scheme: str) -> torch.Tensor:
    cfg = make_config("dcgan", overrides={"model.ngf": 16, "model.ndf": 16, "model.init": scheme})
    torch.manual_seed(0)
    G, _ = get_family("dcgan").build(cfg, DataInfo(channels=3, resolution=32))
    return G.main[0].weight.detach().clone()


def test_each_init_scheme_runs_and_differs() -> None:
    weights = {s: _first_weights(s) for s in INIT_SCHEMES}
    for a, b in itertools.combinations(INIT_SCHEMES, 2):
        assert not torch.allclose(weights[a], weights[b]), (a, b)
    for w in weights.values():
        assert torch.isfinite(w).all() and w.std() > 0


def test_default_init_keeps_pytorch_init() -> None:
    cfg = make_config("dcgan", overrides={"model.ngf": 16, "model.ndf": 16})
    torch.manual_seed(0)
    G, _ = get_family("dcgan").build(cfg, DataInfo(channels=3, resolution=32), init=False)
    assert torch.equal(G.main[0].weight, _first_weights("default"))


def test_kaiming_and_xavier_scales() -> None:
    lin = nn.Linear(400, 300)
    init_weights(lin, "kaiming")
    expected = (2 / (1 + 0.2**2)) ** 0.5 / 400**0.5
    assert abs(lin.weight.std().item() - expected) < 0.05 * expected
    init_weights(lin, "xavier", gain=0.5)
    expected = 0.5 * (2 / (400 + 300)) ** 0.5
    assert abs(lin.weight.std().item() - expected) < 0.05 * expected
    init_weights(lin, "orthogonal", gain=1.0)
    w = lin.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(300), atol=1e-4)


def test_unknown_init_scheme() -> None:
    with pytest.raises(ValueError, match="unknown init 'uniform'"):
        init_weights(nn.Linear(2, 2), "uniform")
