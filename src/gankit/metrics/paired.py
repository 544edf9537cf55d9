"""Pixel metrics for image-to-image models: L1 (in the model's [-1, 1] range), PSNR and SSIM
(Wang et al. 2004) on RGB images in [0, 1], via torchmetrics. Each image counts once; the reported
value is the mean over images.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gankit.visualize import lab_to_display, to_display


class PairedMetrics:
    """Accumulates per-image L1, PSNR and SSIM over batches."""

    def __init__(self, space: str = "rgb") -> None:
        self.space = space
        self.sums = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}
        self.n = 0

    @torch.no_grad()
    def update(self, inputs: Tensor, outputs: Tensor, targets: Tensor) -> None:
        l1 = (outputs.float() - targets.float()).abs().flatten(1).mean(1)
        if self.space == "lab":
            pred, true = lab_to_display(inputs, outputs), lab_to_display(inputs, targets)
        else:
            pred, true = to_display(outputs), to_display(targets)
        psnr = peak_signal_noise_ratio(pred, true, data_range=1.0, reduction="none", dim=(1, 2, 3))
        ssim = structural_similarity_index_measure(pred, true, data_range=1.0, reduction="none")
        self.sums["l1"] += float(l1.sum())
        self.sums["psnr"] += float(psnr.clamp(max=100.0).sum())
        self.sums["ssim"] += float(ssim.sum())
        self.n += len(l1)

    def compute(self) -> dict[str, float]:
        return {k: v / max(1, self.n) for k, v in self.sums.items()}
