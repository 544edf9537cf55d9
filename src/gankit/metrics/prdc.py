"""Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila, NeurIPS 2019), plus
density and coverage (Naeem, Oh, Uh, Choi & Yoo, "Reliable Fidelity and Diversity Metrics for
Generative Models", ICML 2020), which reuse the same k-NN balls.

Each set's manifold is the union of balls around its points, a ball's radius being the distance to
the point's k-th nearest neighbour within its own set. Precision is the fraction of generated
points inside the real manifold (fidelity); recall the fraction of real points inside the generated
manifold (diversity). Distances are computed in row blocks, so 10k x 10k sets fit in little memory.
"""

from __future__ import annotations

import torch
from torch import Tensor


def knn_radii(x: Tensor, k: int = 3, *, batch_size: int = 1024) -> Tensor:
    """Distance from every row of ``x`` to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"need more than k={k} points, got {len(x)}")
    out = []
    for s in range(0, len(x), batch_size):
        d = torch.cdist(x[s : s + batch_size], x)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the point itself
    return torch.cat(out)


def _inside_counts(points: Tensor, centers: Tensor, radii: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """For each point, how many balls (centers, radii) contain it; for each ball, whether any point is in it."""
    counts = torch.zeros(len(points), dtype=torch.long)
    covered = torch.zeros(len(centers), dtype=torch.bool)
    for s in range(0, len(points), batch_size):
        inside = torch.cdist(points[s : s + batch_size], centers) <= radii.unsqueeze(0)
        counts[s : s + batch_size] = inside.sum(1)
        covered |= inside.any(0)
    return counts, covered


def precision_recall(real: Tensor, fake: Tensor, *, k: int = 3, batch_size: int = 1024) -> dict[str, float]:
    """``precision``, ``recall``, ``density`` and ``coverage`` of ``fake`` against ``real`` features."""
    real, fake = real.to(torch.float64), fake.to(torch.float64)
    real_r, fake_r = knn_radii(real, k, batch_size=batch_size), knn_radii(fake, k, batch_size=batch_size)
    fake_in_real, real_covered = _inside_counts(fake, real, real_r, batch_size)
    real_in_fake, _ = _inside_counts(real, fake, fake_r, batch_size)
    return {
        "precision": float((fake_in_real > 0).double().mean()),
        "recall": float((real_in_fake > 0).double().mean()),
        "density": float(fake_in_real.double().sum() / (k * len(fake))),
        "coverage": float(real_covered.double().mean()),
    }
