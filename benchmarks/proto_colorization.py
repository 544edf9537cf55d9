"""Prototype (not in gankit's src): colorization data with the Lab conversion done once, at load.

Random crops and flips move pixels but never change them, and sRGB -> Lab is a per-pixel map, so
converting every photo once and cropping/flipping the converted values gives exactly the batches
that converting each cropped batch gives. On CUDA the per-batch conversion is nearly free; on a
CPU it is the larger part of the data path. The cache holds model-scaled (L/50 - 1, ab/110) in
float16: 6 bytes a pixel instead of the uint8 RGB cache's 3; the rounding is reported in ``info``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import common


class LabCacheDataset:
    """Wraps a built ``ColorizationDataset``; same ``batch()`` contract and the same random draws."""

    def __init__(self, ds: Any, *, dtype: torch.dtype = torch.float16, chunk: int = 32) -> None:
        from gankit.color import rgb_to_model

        self.info, self.resolution, self.flip = ds.info, ds.resolution, ds.flip
        parts, worst = [], 0.0
        for start in range(0, len(ds.images), chunk):
            L, ab = rgb_to_model(ds.images[start : start + chunk].float().div_(255.0))
            full = torch.cat([L, ab], 1)
            parts.append(full.to(dtype))
            worst = max(worst, float((parts[-1].float() - full).abs().max()))
        self.lab = torch.cat(parts)
        self.max_rounding = worst  # in model units; x50 for L*, x110 for a*b*
        self._n = len(ds)

    def __len__(self) -> int:
        return self._n

    def batch(self, index: Tensor, *, device: torch.device,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        from gankit.data.paired import crop_flip

        x = self.lab.index_select(0, index)
        size = self.resolution
        if generator is not None and x.shape[-1] == size and x.shape[-2] == size:
            # draws as crop_flip makes them (offsets are all 0 here), then flip only the chosen images
            n = len(x)
            torch.randint(0, 1, (n,), generator=generator)
            torch.randint(0, 1, (n,), generator=generator)
            if self.flip:
                mirror = torch.rand(n, generator=generator) < 0.5
                if bool(mirror.any()):
                    x[mirror] = x[mirror].flip(-1)
        else:
            x = crop_flip(x, size, generator, flip=self.flip)
        x = x.to(device, non_blocking=True).float()
        return {"input": x[:, :1], "target": x[:, 1:]}


@common.prototype("lab_cache")
def _lab_cache(tr: Any) -> None:
    tr.data = LabCacheDataset(tr.data)
