"""Fréchet distance between Gaussians fitted to two sets of features.

FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017) is ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` in Inception-v3
pool3 space; the same formula is used in any feature space (``fid_clf`` uses gankit's classifier).

``Tr((S1 S2)^{1/2})`` is computed as the sum of the square roots of the eigenvalues of the
symmetric PSD matrix ``S1^{1/2} S2 S1^{1/2}`` (same spectrum as ``S1 S2``), with ``eigh`` in
float64: no complex arithmetic, no iterative ``sqrtm`` that can return NaN on singular covariances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


def _sqrt_psd(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2, s1, s2 = (t.to(torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    r1 = _sqrt_psd(s1)
    inner = r1 @ s2 @ r1
    tr_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean)


@dataclass
class FeatureStats:
    """Mean and covariance (float64) of ``n`` feature vectors."""

    mean: Tensor
    cov: Tensor
    n: int

    @classmethod
    def from_features(cls, features: Tensor) -> FeatureStats:
        x = features.to(torch.float64)
        if x.dim() != 2 or len(x) < 2:
            raise ValueError(f"need at least 2 feature vectors (N, D), got {tuple(x.shape)}")
        mean = x.mean(0)
        xc = x - mean
        return cls(mean, xc.T @ xc / (len(x) - 1), len(x))

    def save(self, path: str | Path) -> None:
        from gankit.locks import atomic_save

        atomic_save({"mean": self.mean, "cov": self.cov, "n": self.n}, path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["mean"], d["cov"], int(d["n"]))

    def fid(self, other: FeatureStats) -> float:
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)


def fid_from_features(a: Tensor, b: Tensor) -> float:
    """FID between two sets of features (N, D) and (M, D)."""
    return FeatureStats.from_features(a).fid(FeatureStats.from_features(b))
