"""gankit: train, evaluate and run the classic GANs from one CLI and Python API.

Python use mirrors the CLI::

    from gankit import make_config, train, load_generator, sample
    cfg = make_config("gan", overrides={"train.epochs": 5})
    result = train(cfg, "runs/gan-demo")
    images = sample(load_generator("runs/gan-demo"), 16)
"""

from typing import Any

__version__ = "0.2.0"

# Lazy attributes: `import gankit` (and so `gankit list`) stays fast; torch loads on first use.
_EXPORTS = {
    "Config": "gankit.config",
    "make_config": "gankit.config",
    "get_family": "gankit.families",
    "list_families": "gankit.families",
    "register_family": "gankit.families",
    "register_preset": "gankit.families",
    "load_generator": "gankit.loading",
    "sample": "gankit.sampling",
    "sample_to_folder": "gankit.sampling",
    "translate_files": "gankit.translate",
    "colorize_files": "gankit.translate",
    "Trainer": "gankit.training.loop",
    "train": "gankit.launch",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
