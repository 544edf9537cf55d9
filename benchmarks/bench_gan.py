"""MLP GAN (Goodfellow et al. 2014) on Fashion-MNIST: the seed training step vs gankit's ``gan`` preset.

Baseline, as the seed has it: G = z(64) -> 256 -> 256 -> 784 (ReLU, Tanh), D = 784 -> 256 -> 256 -> 1
(LeakyReLU 0.2) with a final Sigmoid and ``nn.BCELoss``; Adam(2e-4, (0.5, 0.999)); one D step on
real + detached fakes, then one G step on the same fakes; batches from a per-sample
``FashionMNIST``-style Dataset (PIL image + ToTensor + Normalize) through a ``DataLoader``.
"seed in-memory" is the same step fed from a pre-normalized tensor: the pure-compute ceiling.

    python benchmarks/bench_gan.py [--num-workers 0,2] [--options all] [--synthetic]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader

import common
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
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
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


class InMemoryLoader:
    """Shuffled batches sliced from one pre-normalized tensor (no per-sample work)."""

    def __init__(self, ds: seed_data.SeedMNIST, batch_size: int) -> None:
        self.images = ds.images.float().div(127.5).sub(1.0).unsqueeze(1)
        self.labels = ds.labels
        self.batch_size = batch_size

    def __iter__(self):
        perm = torch.randperm(len(self.images))
        for i in range(0, len(perm) - self.batch_size + 1, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.images[idx], self.labels[idx]


def build(name: str, args: argparse.Namespace) -> common.Runner:
    root = seed_data.fashion_mnist_root(args.data_root, args.synthetic)
    if name.startswith("gankit"):
        return common.gankit_runner("gan", name, args, {"data.path": str(root)})
    device = torch.device(args.device)
    ds = seed_data.SeedMNIST(root, seed_data.mnist_transform())
    if name == "seed in-memory":
        loader = InMemoryLoader(ds, args.batch_size)
    else:
        workers = int(name.split("nw=")[1])
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers, drop_last=True)
    return common.BaselineRunner(loader, seed_step(device), args.batch_size)


def main() -> None:
    p = common.base_parser(
        __doc__.splitlines()[0],
        batch_size=100,
        num_workers="0",
        rounds=5,
        steps=60,
        warmup=10,
        options="default,compile",
    )
    args = p.parse_args()
    names = common.contestant_names(args, compute_baseline=True)
    results = common.run_contestants(build, names, args)
    data = "synthetic" if args.synthetic else "fashion-mnist"
    common.report(f"gan (MLP GAN, {data}, batch {args.batch_size}, {args.device})", results, args)


if __name__ == "__main__":
    main()
