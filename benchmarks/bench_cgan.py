"""Conditional MLP GAN (Mirza & Osindero 2014) on Fashion-MNIST: the seed step vs gankit's ``cgan`` preset.

Baseline = the course notes' cGAN as written: a label embedding (10 -> 10) concatenated to z (100) in G
(110 -> 256 -> 512 -> 1024 -> 784, LeakyReLU 0.2, Tanh) and to the flattened image in D
(794 -> 1024 -> 512 -> 256 -> 1, LeakyReLU 0.2 + Dropout 0.3), with a final Sigmoid and ``nn.BCELoss``;
both optimizers ``Adam(lr=0.0002)``, i.e. torch's default betas (0.9, 0.999) (gankit's ``cgan`` preset
uses (0.5, 0.999), which does not change the cost of a step); fakes get uniformly random labels;
batches from ``torchvision.datasets.FashionMNIST`` (PIL image per item, ``ToTensor`` +
``Normalize((0.5,), (0.5,))``) through ``DataLoader(batch_size=100, shuffle=True)`` (``num_workers=0``).
Not timed: the notes' logging and sample saving. "seed in-memory" is the same step fed from a
pre-normalized tensor: the pure-compute ceiling.

    python benchmarks/bench_cgan.py [--num-workers 0,2] [--options all] [--synthetic]
"""

from __future__ import annotations

import torch
from torch import nn

import seed_data

Z_DIM, EMBED, CLASSES, PIXELS = 100, 10, 10, 28 * 28


def _block(fan_in: int, fan_out: int, act: nn.Module, dropout: float = 0.0) -> list[nn.Module]:
    return [nn.Linear(fan_in, fan_out), act, *([nn.Dropout(dropout)] if dropout else [])]


class SeedGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, EMBED)
        self.net = nn.Sequential(
            *_block(Z_DIM + EMBED, 256, nn.LeakyReLU(0.2)),
            *_block(256, 512, nn.LeakyReLU(0.2)),
            *_block(512, 1024, nn.LeakyReLU(0.2)),
            nn.Linear(1024, PIXELS),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], 1))


class SeedDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, EMBED)
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            *_block(PIXELS + EMBED, 1024, act, 0.3),
            *_block(1024, 512, act, 0.3),
            *_block(512, 256, act, 0.3),
            nn.Linear(256, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.embed(labels)], 1))


def seed_step(device: torch.device):
    G, D = SeedGenerator().to(device), SeedDiscriminator().to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0002)  # the notes: default betas (0.9, 0.999)
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0002)
    bce = nn.BCELoss()

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, labels = batch
        n = images.shape[0]
        real, labels = images.view(n, -1).to(device), labels.to(device)
        ones, zeros = torch.ones(n, 1, device=device), torch.zeros(n, 1, device=device)
        fake_labels = torch.randint(0, CLASSES, (n,), device=device)
        fake = G(torch.randn(n, Z_DIM, device=device), fake_labels)
        opt_D.zero_grad()
        d_loss = bce(D(real, labels), ones) + bce(D(fake.detach(), fake_labels), zeros)
        d_loss.backward()
        opt_D.step()
        opt_G.zero_grad()
        g_loss = bce(D(fake, fake_labels), ones)
        g_loss.backward()
        opt_G.step()

    return step


if __name__ == "__main__":
    seed_data.mnist_main(__doc__, "cgan", "conditional MLP GAN", seed_step, steps=40)
