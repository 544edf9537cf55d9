"""Fully connected generator and discriminator (Goodfellow et al. 2014; Mirza & Osindero 2014).

With ``num_classes > 0`` both networks are class-conditional in the cGAN way: a learned label
embedding is concatenated to the noise vector in G and to the flattened image in D.

The course notes' generators differ in their hidden activation: the plain GAN uses ReLU
(64-256-256-784), the cGAN LeakyReLU(0.2) (110-256-512-1024-784); both end in Tanh. The
discriminators use LeakyReLU(0.2) throughout.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS = ("relu", "leaky_relu")


def _activation(name: str) -> nn.Module:
    """A hidden-layer activation by name; ``leaky_relu`` has the slope 0.2 of the GAN literature."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation '{name}' (expected {' or '.join(ACTIVATIONS)})")


def _mlp(sizes: list[int], act: nn.Module, dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), act]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class MLPGenerator(nn.Module):
    """z (+ label embedding) -> hidden layers with ``act`` (ReLU or LeakyReLU 0.2) -> Tanh image of ``image_shape``."""

    def __init__(
        self,
        z_dim: int,
        image_shape: tuple[int, int, int],
        *,
        hidden: list[int],
        num_classes: int = 0,
        embed_dim: int = 10,
        dropout: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.z_dim, self.image_shape, self.num_classes = z_dim, tuple(image_shape), num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = z_dim + (embed_dim if num_classes else 0)
        self.net = nn.Sequential(
            *_mlp([in_dim, *hidden], _activation(act), dropout),
            nn.Linear(hidden[-1] if hidden else in_dim, math.prod(image_shape)),
            nn.Tanh(),
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z).view(-1, *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Flattened image (+ label embedding) -> hidden LeakyReLU(0.2) layers -> one logit."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        hidden: list[int],
        num_classes: int = 0,
        embed_dim: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = math.prod(image_shape) + (embed_dim if num_classes else 0)
        self.net = nn.Sequential(
            *_mlp([in_dim, *hidden], nn.LeakyReLU(0.2), dropout),
            nn.Linear(hidden[-1] if hidden else in_dim, 1),
        )

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        x = x.flatten(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            x = torch.cat([x, self.embed(labels)], dim=1)
        return self.net(x).squeeze(1)
