"""gankit's own domain classifier: a small CNN whose penultimate layer is a feature space for metrics.

Inception-v3 (Szegedy et al. 2016) features, the usual space for FID/KID/precision-recall, come from
ImageNet photos and say little about 28x28 grayscale clothes; metrics of small-image GANs are
therefore also reported in the space of a classifier trained on the dataset itself, as
Heusel et al. (2017) and many MNIST GAN papers do (and class-conditional GANs are scored by its
accuracy on samples drawn for each label). The network is a VGG-like stack of conv-BN-ReLU blocks
(Simonyan & Zisserman 2015) with a 128-d embedding in front of a linear head.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import DataConfig
from gankit.data import EpochSampler, build_dataset
from gankit.data.base import TrainSet, adapt_images
from gankit.training.checkpoint import CheckpointError, atomic_save

EMBED_DIM = 128


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


class SmallClassifier(nn.Module):
    """Three conv blocks (16, 32, 64 channels, each halving the side), a 128-d embedding, a linear head.

    Works for any square side >= 8 and 1 or 3 channels; inputs are in [-1, 1] at ``resolution``.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, resolution: int = 28) -> None:
        super().__init__()
        self.channels, self.num_classes, self.resolution = channels, num_classes, resolution
        self.dataset = ""
        """Name of the dataset it was trained on (set by :func:`load_classifier`)."""
        self.body = nn.Sequential(_block(channels, 16), _block(16, 32), _block(32, 64), nn.AdaptiveAvgPool2d(3))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(64 * 9, EMBED_DIM), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(EMBED_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The 128-d penultimate activations (input of the linear head)."""
        return self.embed(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    def prepare(self, images: Tensor) -> Tensor:
        """Bring [-1, 1] images of any size and 1 or 3 channels to this network's input shape."""
        return adapt_images(images.float(), self.channels, self.resolution)


def _eval_split(cfg: DataConfig, log: Callable[[str], None]) -> TrainSet:
    # IDX data has train/test; folder data has train/val. All of it, whatever max_images says.
    split = "test" if cfg.name in ("fashion-mnist", "mnist") else "val"
    return build_dataset(dataclasses.replace(cfg, max_images=0), split, log=log)


@torch.no_grad()
def accuracy(
    model: SmallClassifier, data: TrainSet, *, device: str | torch.device = "cpu", batch_size: int = 500
) -> float:
    """Top-1 accuracy of ``model`` on every labelled item of ``data``."""
    model.eval()
    correct = 0
    for s in range(0, len(data), batch_size):
        b = data.batch(torch.arange(s, min(s + batch_size, len(data))), device=torch.device(device))
        correct += int((model(model.prepare(b["image"])).argmax(1) == b["label"]).sum())
    return correct / max(1, len(data))


def train_classifier(
    data_cfg: DataConfig,
    out: str | Path,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train :class:`SmallClassifier` on the train split of ``data_cfg``; save it to ``out``.

    Adam with a cosine-decayed rate, no augmentation. Returns the test (or val) accuracy, the
    training time and the checkpoint path.
    """
    from gankit.training.loop import resolve_device

    torch.manual_seed(seed)
    dev = resolve_device(device)
    data = build_dataset(data_cfg, "train", log=log)
    info = data.info
    if info.num_classes < 2:
        raise ValueError(f"dataset '{data_cfg.name}' has no class labels; the classifier needs them")
    # channels_last makes the CPU convolutions ~1.5x faster
    model = SmallClassifier(info.channels, info.num_classes, info.resolution).to(dev, memory_format=torch.channels_last)
    sampler = EpochSampler(len(data), min(batch_size, len(data)), seed)
    total = max(1, epochs * sampler.steps_per_epoch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    start = time.monotonic()
    model.train()
    loss_sum = torch.zeros((), device=dev)
    for step in range(total):
        b = data.batch(sampler.indices(step), device=dev)
        loss = F.cross_entropy(model(b["image"].contiguous(memory_format=torch.channels_last)), b["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach()
        if (step + 1) % sampler.steps_per_epoch == 0:
            log(
                f"classifier epoch {(step + 1) // sampler.steps_per_epoch}/{epochs}: "
                f"loss {loss_sum.item() / sampler.steps_per_epoch:.4f} ({time.monotonic() - start:.0f} s)"
            )
            loss_sum.zero_()
    seconds = time.monotonic() - start
    test_acc = accuracy(model, _eval_split(data_cfg, log), device=dev)
    log(f"classifier test accuracy {test_acc:.4f} after {seconds:.0f} s of training")
    atomic_save(
        {
            "kind": "classifier",
            "config": dataclasses.asdict(data_cfg),
            "model": model.state_dict(),
            "num_classes": info.num_classes,
            "channels": info.channels,
            "resolution": info.resolution,
            "class_names": list(info.class_names),
            "test_accuracy": test_acc,
        },
        out,
    )
    return {"test_accuracy": test_acc, "seconds": seconds, "steps": total, "path": str(out)}


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> SmallClassifier:
    """Rebuild a classifier saved by :func:`train_classifier` (weights_only load), in eval mode."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # missing, truncated, not a checkpoint
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable classifier checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("kind") != "classifier":
        raise CheckpointError(f"{path}: not a gankit classifier checkpoint (train one with train_classifier)")
    model = SmallClassifier(state["channels"], state["num_classes"], state["resolution"])
    model.load_state_dict(state["model"])
    model.dataset = str(state["config"].get("name", ""))
    return model.to(device).eval()


def default_classifier_path(dataset: str) -> Path:
    """Where :func:`find_classifier` looks last: ``$XDG_CACHE_HOME/gankit/classifiers/<dataset>.pt``."""
    from gankit.data.mnist import cache_dir

    return cache_dir() / "classifiers" / f"{dataset}.pt"


def find_classifier(dataset: str, path: str | Path | None = None) -> Path | None:
    """``path`` if given (it must exist), else ``$GANKIT_DATA/classifiers/<dataset>.pt``, else the cache one."""
    if path is not None:
        if not Path(path).is_file():
            raise CheckpointError(f"{path}: classifier checkpoint not found")
        return Path(path)
    env = os.environ.get("GANKIT_DATA")
    candidates = ([Path(env) / "classifiers" / f"{dataset}.pt"] if env else []) + [default_classifier_path(dataset)]
    return next((p for p in candidates if p.is_file()), None)
