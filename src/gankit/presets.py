"""Named presets: every family has one of its own name holding the paper's settings.

A preset is a plain dictionary of dotted config keys (``"train.epochs": 20``) plus ``"family"``,
applied on top of :class:`gankit.config.Config`'s defaults by :func:`gankit.config.make_config`
(then ``--config FILE`` and ``--set key=value``). ``gankit train PRESET`` and ``gankit list`` read
:data:`PRESETS`; a new family adds its preset with :func:`register_preset` (see :mod:`gankit.families`).
No torch import, so the CLI can list and check presets before loading a model stack.
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
        "train.batch_size": 100,
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
        "train.batch_size": 100,
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


def register_preset(name: str, family: str, values: dict[str, Any]) -> None:
    """Add the preset ``name`` of ``family`` with ``values`` (dotted config keys, as ``--set`` takes them).

    The values are checked at once, as :func:`gankit.config.make_config` will apply them: an unknown
    key or a wrong type is a :class:`~gankit.config.ConfigError` here rather than at the first
    ``gankit train``. A name already taken, or a family not registered, is a ValueError.
    """
    from gankit.config import ConfigError, make_config
    from gankit.families import get_family

    if name in PRESETS:
        raise ValueError(f"preset '{name}' registered twice")
    get_family(family)  # a ValueError naming the registered families
    PRESETS[name] = {"family": family, **values}
    try:
        make_config(name)
    except ConfigError:
        del PRESETS[name]
        raise


def list_presets(family: str | None = None) -> list[str]:
    """The presets' names (of ``family`` only, when given), in registration order."""
    return [name for name, p in PRESETS.items() if family is None or p["family"] == family]
