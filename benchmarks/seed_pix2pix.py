"""The pix2pix reference networks and training step (Isola et al. 2017), written out for the pix2pix
and colorization benchmarks after the authors' code, ``junyanz/pytorch-CycleGAN-and-pix2pix``, with
the defaults of ``--model pix2pix`` / ``--model colorization``:

* ``models/networks.py``: the recursive U-Net of skip blocks (``--netG unet_256``, ``--ngf 64``,
  dropout 0.5 in the 8*ngf middle levels since ``--no_dropout`` is off), the 70x70 PatchGAN
  (``--netD basic``, ``--ndf 64``), ``--norm batch``, ``init_weights`` 'normal' with gain 0.02,
  ``GANLoss`` 'vanilla' (``BCEWithLogitsLoss`` against a target map);
* ``models/pix2pix_model.py`` ``optimize_parameters``: forward G; D step on the detached fake pair and
  the real pair, loss 0.5 * (fake + real); D frozen (``set_requires_grad``); G step on GAN + 100 * L1
  (``--lambda_L1 100``, ``--pool_size 0``); ``Adam(lr=0.0002, betas=(0.5, 0.999))`` for both
  (``--lr``, ``--beta1`` of ``options/train_options.py``);
* ``data/__init__.py``: ``DataLoader(batch_size=1, shuffle=True, num_workers=4)`` (``--batch_size 1``,
  ``--serial_batches`` off, ``--num_threads 4``); the datasets are in :mod:`seed_data`.

Not timed: the per-epoch learning-rate update, logging, visdom/HTML output and checkpoints.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import common
import seed_data


class SkipBlock(nn.Module):
    """One U-Net level: down-conv, the inner levels, up-conv; the input is concatenated to the output
    except at the outermost level."""

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        in_ch: int | None = None,
        sub: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        in_ch = outer if in_ch is None else in_ch
        down = nn.Conv2d(in_ch, inner, 4, 2, 1, bias=False)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [
                nn.LeakyReLU(0.2, True),
                down,
                nn.ReLU(True),
                nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False),
                nn.BatchNorm2d(outer),
            ]
        else:
            layers = [
                nn.LeakyReLU(0.2, True),
                down,
                nn.BatchNorm2d(inner),
                sub,
                nn.ReLU(True),
                nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False),
                nn.BatchNorm2d(outer),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """``num_downs`` levels (8 for 256x256: down to 1x1), ngf=64, dropout in the 8*ngf middle levels."""

    def __init__(self, in_ch: int, out_ch: int, num_downs: int = 8, ngf: int = 64) -> None:
        super().__init__()
        block = SkipBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = SkipBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
        block = SkipBlock(ngf * 4, ngf * 8, sub=block)
        block = SkipBlock(ngf * 2, ngf * 4, sub=block)
        block = SkipBlock(ngf, ngf * 2, sub=block)
        self.model = SkipBlock(out_ch, ngf, in_ch=in_ch, sub=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: C64 (no norm) - C128 - C256 - C512 (stride 1) - 1-channel conv, LeakyReLU 0.2."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_normal(m: nn.Module, gain: float = 0.02) -> None:
    name = type(m).__name__
    if hasattr(m, "weight") and ("Conv" in name or "Linear" in name):
        nn.init.normal_(m.weight, 0.0, gain)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif "BatchNorm2d" in name:
        nn.init.normal_(m.weight, 1.0, gain)
        nn.init.zeros_(m.bias)


class GANLoss(nn.Module):
    """'vanilla' GAN loss: BCE with logits against a map of ones (real) or zeros (fake)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = (self.real_label if target_is_real else self.fake_label).expand_as(prediction)
        return self.loss(prediction, target)


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad = flag


def pix2pix_step(in_ch: int, out_ch: int, device: torch.device, *, resolution: int = 256):
    """The reference ``optimize_parameters``: forward G, D step (0.5 * (fake + real)), G step (GAN + 100 * L1)."""
    num_downs = resolution.bit_length() - 1
    G = UnetGenerator(in_ch, out_ch, num_downs).to(device)
    D = NLayerDiscriminator(in_ch + out_ch).to(device)
    G.apply(init_normal)
    D.apply(init_normal)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gan_loss, l1 = GANLoss().to(device), nn.L1Loss()

    def step(batch: dict[str, torch.Tensor]) -> None:
        real_a, real_b = batch["A"].to(device), batch["B"].to(device)
        fake_b = G(real_a)
        # D
        set_requires_grad(D, True)
        opt_D.zero_grad()
        pred_fake = D(torch.cat((real_a, fake_b), 1).detach())
        loss_d_fake = gan_loss(pred_fake, False)
        pred_real = D(torch.cat((real_a, real_b), 1))
        loss_d_real = gan_loss(pred_real, True)
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_d.backward()
        opt_D.step()
        # G
        set_requires_grad(D, False)
        opt_G.zero_grad()
        pred_fake = D(torch.cat((real_a, fake_b), 1))
        loss_g = gan_loss(pred_fake, True) + l1(fake_b, real_b) * 100.0
        loss_g.backward()
        opt_G.step()

    return step


# ---------------------------------------------------------------------------------------------
# Shared by bench_pix2pix and bench_colorize
# ---------------------------------------------------------------------------------------------


def baseline_runner(name: str, ds: Dataset, in_ch: int, out_ch: int, args: argparse.Namespace) -> common.Runner:
    """The reference step fed by ``ds`` through a DataLoader with the workers named in ``name``
    (``shuffle=not serial_batches``, no ``drop_last``, as the reference's ``CustomDatasetDataLoader``)."""
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=seed_data.workers_of(name))
    step = pix2pix_step(in_ch, out_ch, torch.device(args.device), resolution=args.resolution)
    return common.BaselineRunner(loader, step, args.batch_size, {"train_images": len(ds)})


def main(doc: str, build: Callable[[str, argparse.Namespace], common.Runner], title: str, data: str) -> None:
    """Command line, contestants and report of a U-Net benchmark (``title`` gets data, size, batch, device)."""
    p = common.base_parser(
        doc.splitlines()[0], batch_size=1, num_workers="4", rounds=3, steps=3, warmup=2, options="default,channels_last"
    )
    p.add_argument("--resolution", type=int, default=256, choices=[128, 256])
    args = p.parse_args()
    results = common.run_contestants(build, common.contestant_names(args), args)
    data = "synthetic" if args.synthetic else data
    common.report(
        f"{title} ({data} {args.resolution}x{args.resolution}, batch {args.batch_size}, {args.device})", results, args
    )
