"""DCGAN (Radford et al. 2016), 64x64: the PyTorch-examples training step vs gankit's ``dcgan`` presets.

Baseline = ``pytorch/examples`` ``dcgan/main.py`` as published, with its defaults (``--batchSize 64``,
``--workers 2``, ``--imageSize 64``, ``--nz 100``, ``--ngf 64``, ``--ndf 64``, ``--lr 0.0002``,
``--beta1 0.5``): transposed-conv G with BatchNorm + ReLU and Tanh, strided-conv D with BatchNorm +
LeakyReLU(0.2) and a final Sigmoid, ``nn.BCELoss``, ``weights_init`` (conv N(0, 0.02), BatchNorm scale
N(1, 0.02), bias 0), ``Adam(lr, betas=(beta1, 0.999))`` for both; D backpropagates the real and the
fake half separately, then G steps on the same fakes (D's weight gradients included, as there); the
``.item()`` statistics of every iteration are kept, its printing and image saving are not timed.
Data: ``--data celeba`` = the example's ``--dataset folder`` path, ``torchvision.datasets.ImageFolder``
with ``Resize(64)``, ``CenterCrop(64)``, ``ToTensor``, ``Normalize`` (the 32 celeba-tiny files repeated
to 2048), ``DataLoader(shuffle=True, num_workers=2)``; ``--data fmnist`` = its ``--dataset mnist``
branch (``Resize(64)``, ``ToTensor``, ``Normalize((0.5,), (0.5,))``) over torchvision's ``FashionMNIST``,
against the preset ``dcgan-fmnist``.

    python benchmarks/bench_dcgan.py [--data celeba|fmnist] [--options all] [--synthetic]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader

import common
import seed_data

NZ, NGF, NDF = 100, 64, 64


class SeedGenerator(nn.Module):
    def __init__(self, nc: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = [NZ, NGF * 8, NGF * 4, NGF * 2, NGF]
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(NGF, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class SeedDiscriminator(nn.Module):
    def __init__(self, nc: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for cin in (NDF, NDF * 2, NDF * 4):
            layers += [
                nn.Conv2d(cin, cin * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(cin * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


def init_dcgan(m: nn.Module) -> None:
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def seed_step(device: torch.device, nc: int):
    G, D = SeedGenerator(nc).to(device), SeedDiscriminator(nc).to(device)
    G.apply(init_dcgan)
    D.apply(init_dcgan)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()

    def step(batch: tuple[torch.Tensor, object]) -> None:
        real = batch[0].to(device)
        n = real.shape[0]
        D.zero_grad()
        label = torch.full((n,), 1.0, device=device)
        output = D(real)
        err_real = bce(output, label)
        err_real.backward()
        output.mean().item()  # D_x
        fake = G(torch.randn(n, NZ, 1, 1, device=device))
        label.fill_(0.0)
        output = D(fake.detach())
        err_fake = bce(output, label)
        err_fake.backward()
        output.mean().item()  # D_G_z1
        (err_real + err_fake).item()  # errD, printed there every iteration
        opt_D.step()
        G.zero_grad()
        label.fill_(1.0)
        output = D(fake)
        err_g = bce(output, label)
        err_g.backward()
        output.mean().item()  # D_G_z2
        opt_G.step()
        err_g.item()

    return step


def build(name: str, args: argparse.Namespace) -> common.Runner:
    common.use_bench_cache()
    if args.data == "celeba":
        root, preset, nc = seed_data.celeba_folder(args.data_root, args.synthetic), "dcgan", 3
    else:
        root, preset, nc = seed_data.fashion_mnist_root(args.data_root, args.synthetic), "dcgan-fmnist", 1
    if name.startswith("gankit"):
        return common.gankit_runner(preset, name, args, {"data.path": str(root)})
    ds = (
        seed_data.dcgan_image_folder(root, 64)
        if args.data == "celeba"
        else seed_data.fashion_mnist(root, seed_data.mnist_transform(64))
    )
    workers = int(name.split("nw=")[1])
    # as the example (no drop_last): 2048 images are 32 full batches of 64 anyway
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers)
    return common.BaselineRunner(loader, seed_step(torch.device(args.device), nc), args.batch_size)


def main() -> None:
    p = common.base_parser(
        __doc__.splitlines()[0],
        batch_size=64,
        num_workers="2",
        rounds=3,
        steps=4,
        warmup=2,
        options="default,channels_last",
    )
    p.add_argument(
        "--data",
        choices=["celeba", "fmnist"],
        default="celeba",
        help="celeba: 64x64 RGB from JPEGs (preset dcgan); fmnist: 28 -> 64 grayscale (dcgan-fmnist)",
    )
    args = p.parse_args()
    results = common.run_contestants(build, common.contestant_names(args), args)
    data = ("synthetic " if args.synthetic else "") + ("celeba-tiny x64" if args.data == "celeba" else "fashion-mnist")
    common.report(f"dcgan (64x64, {data}, batch {args.batch_size}, {args.device})", results, args)


if __name__ == "__main__":
    main()
