"""gankit: train, evaluate and run the classic GANs from one CLI and Python API.

Python use mirrors the CLI::

    from gankit import make_config, train, load_generator, sample
    cfg = make_config("gan", overrides={"train.epochs": 5})
    result = train(cfg, "runs/gan-demo")
    images = sample(load_generator("runs/gan-demo"), 16)
"""

from gankit.config import Config, make_config
from gankit.families import get_family, list_families
from gankit.sampling import load_generator, sample
from gankit.training.loop import Trainer, train

__version__ = "0.1.0"
__all__ = ["Config", "Trainer", "get_family", "list_families", "load_generator", "make_config", "sample", "train"]
