"""Building blocks shared by every model family: normalization factory and weight initialization."""

from __future__ import annotations

import torch
from torch import nn

INIT_SCHEMES = ("normal", "xavier", "kaiming", "orthogonal", "default")


NORMS = ("batch", "instance", "layer", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """A 2-D normalization layer by name: ``batch``, ``instance`` (affine-free, as in pix2pix),
    ``layer`` or ``none``.

    ``layer`` is the layer normalization of WGAN-GP's critics (Gulrajani et al. 2017, section 4 and
    their ``tflib.ops.layernorm``): each sample is normalized over all of (C, H, W), with a learned
    per-channel scale and shift, which is exactly ``GroupNorm`` with one group. Unlike batch norm it
    keeps samples independent, which a per-sample gradient penalty needs.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}' (expected {', '.join(NORMS)})")


@torch.no_grad()
def init_weights(module: nn.Module, scheme: str = "normal", gain: float = 0.02) -> None:
    """Initialize conv/linear weights in place.

    ``normal`` is the DCGAN/pix2pix recipe: weights ~ N(0, gain), biases 0, and the scale
    (gamma) of BatchNorm ~ N(1, gain) with beta 0. ``xavier``/``orthogonal`` use ``gain`` as their
    gain, ``kaiming`` uses fan-in with a LeakyReLU(0.2) slope, ``default`` keeps PyTorch's init.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init '{scheme}' (expected one of {', '.join(INIT_SCHEMES)})")
    if scheme == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            elif scheme == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) of every conv/linear weight in ``module``, in place.

    Each weight becomes a parametrization (``torch.nn.utils.parametrizations.spectral_norm``, one power
    iteration per training forward), so the state dict holds ``parametrizations.weight.original`` and
    the power-iteration vectors instead of ``weight``. Normalization layers are left as they are.
    Call it after :func:`init_weights`: the initialized weight becomes the parametrization's original.
    """
    from torch.nn.utils.parametrizations import spectral_norm

    layers = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
    for m in layers:
        # ConvTranspose2d keeps its output channels in dim 1 (what spectral_norm's default dim expects)
        spectral_norm(m)
    return module
