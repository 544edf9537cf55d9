"""MLP GAN (Goodfellow et al. 2014) on Fashion-MNIST: the seed training step vs gankit's ``gan`` preset.

Baseline = the course notes' GAN as written: G = z(64) -> 256 -> 256 -> 784 (ReLU, Tanh),
D = 784 -> 256 -> 256 -> 1 (LeakyReLU 0.2) with a final Sigmoid and ``nn.BCELoss``; both optimizers
``Adam(lr=0.0002)``, i.e. torch's default betas (0.9, 0.999) (gankit's ``gan`` preset uses (0.5, 0.999),
which does not change the cost of a step); one D step on real + detached fakes, then one G step on the
same fakes; batches from ``torchvision.datasets.FashionMNIST`` (PIL image per item, ``ToTensor`` +
``Normalize((0.5,), (0.5,))``) through ``DataLoader(batch_size=100, shuffle=True)`` (``num_workers=0``).
Not timed: the notes' logging and sample saving. "seed in-memory" is the same step fed from a
pre-normalized tensor: the pure-compute ceiling.

    python benchmarks/bench_gan.py [--num-workers 0,2] [--options all] [--synthetic]
"""

from __future__ import annotations

import torch
from torch import nn

import seed_data

Z_DIM, HIDDEN, SIDE = 64, 256, 28


class SeedGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(Z_DIM, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, SIDE * SIDE),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class SeedDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(SIDE * SIDE, HIDDEN),
            nn.LeakyReLU(0.2),
            nn.Linear(HIDDEN, HIDDEN),
            nn.LeakyReLU(0.2),
            nn.Linear(HIDDEN, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def seed_step(device: torch.device):
    G, D = SeedGenerator().to(device), SeedDiscriminator().to(device)
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0002)  # the notes: default betas (0.9, 0.999)
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0002)
    bce = nn.BCELoss()

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, _ = batch
        n = images.shape[0]
        real = images.view(n, -1).to(device)
        ones, zeros = torch.ones(n, 1, device=device), torch.zeros(n, 1, device=device)
        fake = G(torch.randn(n, Z_DIM, device=device))
        opt_D.zero_grad()
        d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        d_loss.backward()
        opt_D.step()
        opt_G.zero_grad()
        g_loss = bce(D(fake), ones)
        g_loss.backward()
        opt_G.step()

    return step


if __name__ == "__main__":
    seed_data.mnist_main(__doc__, "gan", "MLP GAN", seed_step, steps=60)
