"""Kernel Inception Distance (Binkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018).

KID is the unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial
kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets of both sets (as in the paper's
code and torch-fidelity: 100 subsets of 1000); the spread over subsets is reported as its std.
Unlike FID it has an unbiased estimator, so two samples of the same distribution give ~0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def polynomial_kernel(x: Tensor, y: Tensor, *, degree: int = 3, coef: float = 1.0) -> Tensor:
    """``(x y^T / d + coef)^degree`` for x (N, d) and y (M, d)."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d) with the cubic polynomial kernel."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples on each side")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    # the diagonal k(x_i, x_i) is left out of the within-set means: that is what makes it unbiased
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


def kid(
    real: Tensor, fake: Tensor, *, subset_size: int = 1000, n_subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``n_subsets`` random subsets drawn from each set.

    ``subset_size`` is capped at the size of the smaller set. Seeded, so repeated calls agree.
    """
    x, y = real.to(torch.float64), fake.to(torch.float64)
    size = min(subset_size, len(x), len(y))
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor(
        [
            mmd2_unbiased(x[torch.randperm(len(x), generator=g)[:size]], y[torch.randperm(len(y), generator=g)[:size]])
            for _ in range(n_subsets)
        ],
        dtype=torch.float64,
    )
    return float(values.mean()), float(values.std()) if n_subsets > 1 else 0.0
