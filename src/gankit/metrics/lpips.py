"""LPIPS perceptual distance (Zhang, Isola, Efros, Shechtman & Wang, "The Unreasonable Effectiveness of
Deep Features as a Perceptual Metric", CVPR 2018).

The network is torchmetrics' copy of the reference implementation, whose learned linear layers
(``lpips_models/<net>.pth``) ship inside torchmetrics. The ImageNet backbone (torchvision AlexNet by
default) is *not* fetched: it is built empty and filled from the file torchvision would have
downloaded into the torch hub cache. When that file is absent :class:`MissingWeightsError` says
which file to put where; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gankit.metrics.errors import MissingWeightsError
from gankit.metrics.features import hub_checkpoints_dir

BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
"""torchvision's ImageNet weight files of each LPIPS backbone (from ``download.pytorch.org/models/``)."""


def backbone_weights_path(net: str = "alex") -> Path:
    """The local backbone weights of ``net``, or :class:`MissingWeightsError` (no download)."""
    if net not in BACKBONE_FILES:
        raise ValueError(f"unknown LPIPS backbone '{net}'; known: {', '.join(BACKBONE_FILES)}")
    path = hub_checkpoints_dir() / BACKBONE_FILES[net]
    if not path.is_file():
        url = f"https://download.pytorch.org/models/{BACKBONE_FILES[net]}"
        raise MissingWeightsError(
            f"LPIPS backbone weights not found: {BACKBONE_FILES[net]} (gankit never downloads them)\n"
            f"  put it in:   {path.parent}/  (the torch hub cache; see TORCH_HOME)\n"
            f"  get it from: {url}",
            fix=f"download {url} into {path.parent}/",
        )
    return path


def _strip_slice(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[2:] if parts[0] == "slices" else parts[1:])


class LPIPS:
    """``lpips(a, b) -> (N,)`` distances between RGB (or grayscale) images in [-1, 1]; lower is closer."""

    def __init__(self, net: str = "alex", *, device: str | torch.device = "cpu") -> None:
        from torchmetrics.functional.image.lpips import _LPIPS

        path = backbone_weights_path(net)
        # pnet_rand=True builds the backbone without weights (torchvision would download them);
        # pretrained=True still loads the linear layers bundled with torchmetrics.
        self.net = _LPIPS(pretrained=True, net=net, pnet_rand=True)  # type: ignore[arg-type]
        tv_state = torch.load(path, map_location="cpu", weights_only=True)
        # the backbone's slices keep torchvision's layer indices: slice1.0.weight <- features.0.weight
        # (squeezenet: slices.1.3.squeeze.weight <- features.3.squeeze.weight)
        own = self.net.net.state_dict()
        self.net.net.load_state_dict({k: tv_state["features." + _strip_slice(k)] for k in own})
        self.net.to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = (x.to(self.device).float() for x in (a, b))
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return self.net(a, b).flatten().cpu()
