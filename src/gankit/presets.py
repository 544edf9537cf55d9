"""Named presets: every family has one of its own name holding the paper's settings.

A preset is a plain dictionary of dotted config keys (``"train.epochs": 20``) plus ``"family"``,
applied on top of :class:`gankit.config.Config`'s defaults by :func:`gankit.config.make_config`
(then ``--config FILE`` and ``--set key=value``). ``gankit train PRESET`` and ``gankit list`` read
:data:`PRESETS`; a new family adds its preset with :func:`gankit.families.register_preset`, which
checks it. This module imports nothing (config reads it; it reads no config), and no torch.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "gan": {
        "family": "gan",
        "data.name": "fashion-mnist",
        "model.z_dim": 64,
        "model.g_hidden": [256, 256],
        "model.d_hidden": [256, 256],
        "model.init": "default",
        # The notes' networks with a faster recipe: 5 epochs reach what the notes' rate (2e-4, batch 100)
        # reaches in 50, and the EMA of G (half-life 10k images, ramped up) helps at 5 and 50 epochs
        # (README's preset table, BENCHMARKS.md "MLP recipes at 50 epochs").
        "optim.lr_g": 1e-3,
        "optim.lr_d": 1e-3,
        "train.batch_size": 50,
        "train.ema_halflife_kimg": 10.0,
        "train.epochs": 20,
    },
    "cgan": {
        "family": "cgan",
        "data.name": "fashion-mnist",
        "model.z_dim": 100,
        "model.embed_dim": 10,
        "model.g_hidden": [256, 512, 1024],
        "model.d_hidden": [1024, 512, 256],
        "model.d_dropout": 0.3,
        "model.init": "default",
        # as gan's: the notes' networks, a faster recipe (fid_clf halved at 5 epochs) and the EMA of G
        "optim.lr_g": 5e-4,
        "optim.lr_d": 5e-4,
        "train.batch_size": 50,
        "train.ema_halflife_kimg": 10.0,
        "train.epochs": 30,
        "train.n_samples": 100,
    },
    "dcgan": {
        "family": "dcgan",
        "data.name": "celeba",
        "data.resolution": 64,
        "data.channels": 3,
        "model.z_dim": 100,
        "train.batch_size": 128,
        "train.epochs": 5,
        "train.channels_last": True,  # 1.05-1.2x on CPU (BENCHMARKS.md)
    },
    # Larger DCGANs: one stride-2 block more per doubling, widths capped at ngf*8 / ndf*8
    # (gankit.models.dcgan); the paper's recipe otherwise. Aligned CelebA is 178 px on its short side,
    # so at 256 its faces are upsampled: pass --data with larger images for detail at that size.
    "dcgan128": {
        "family": "dcgan",
        "data.name": "celeba",
        "data.resolution": 128,
        "data.channels": 3,
        "model.z_dim": 100,
        "train.batch_size": 128,
        "train.epochs": 5,
        "train.channels_last": True,
    },
    "dcgan256": {
        "family": "dcgan",
        "data.name": "celeba",
        "data.resolution": 256,
        "data.channels": 3,
        "model.z_dim": 100,
        "train.batch_size": 128,
        "train.epochs": 5,
        "train.channels_last": True,
    },
    "dcgan-fmnist": {
        "family": "dcgan",
        "data.name": "fashion-mnist",
        "data.resolution": 64,
        "data.channels": 1,
        "model.z_dim": 100,
        "train.batch_size": 128,
        "train.epochs": 5,
        "train.channels_last": True,  # 1.05-1.2x on CPU (BENCHMARKS.md)
    },
    "dcgan-fmnist32": {
        "family": "dcgan",
        "data.name": "fashion-mnist",
        "data.resolution": 32,
        "data.channels": 1,
        "model.z_dim": 100,
        "train.batch_size": 128,
        "train.epochs": 10,
        "train.channels_last": True,  # 1.05-1.2x on CPU (BENCHMARKS.md)
    },
    "pix2pix": {
        "family": "pix2pix",
        "data.name": "facades",
        "data.resolution": 256,
        "data.load_size": 286,
        "data.direction": "AtoB",
        "model.g_dropout": 0.5,
        "loss.gan": "vanilla",
        "loss.d_scale": 0.5,
        "loss.l1_weight": 100.0,
        "train.batch_size": 1,
        "train.epochs": 100,
        "optim.decay_epochs": 100,
        "train.n_samples": 8,
    },
    "colorize": {
        "family": "colorize",
        "data.name": "colorization",
        "data.resolution": 256,
        "data.load_size": 256,
        "model.g_dropout": 0.5,
        "loss.gan": "vanilla",
        "loss.d_scale": 0.5,
        "loss.l1_weight": 100.0,
        "train.batch_size": 16,
        "train.epochs": 20,
        "train.n_samples": 8,
    },
}
