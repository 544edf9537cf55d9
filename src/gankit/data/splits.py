"""Where validation data comes from when a paired dataset has no ``val`` part.

pix2pix and colorization validate on held-out pairs at every epoch end (val L1 / PSNR, and the
``G_best`` snapshot). Many datasets bring no validation split: the pix2pix facades release as laid
out in the course notes (``train/a``, ``train/b``, ``test/a``, ``test/b``), a bare ``a/`` + ``b/``
pair folder, a folder of a few colour photos. gankit then applies one rule, everywhere:

1. a ``val/`` split folder, if the dataset has one, is the validation set;
2. otherwise every 10th item of the training items, by sorted file name (items 9, 19, 29, ...), is
   held out for validation and left out of training: deterministic, evenly spread (sorted names
   often follow time or place, so "the last 10%" would not be), independent of the seed;
3. with fewer than 10 training items nothing can be held out: validation runs on the training
   items themselves (unaugmented), and its numbers then measure fit, not generalization.

A ``test/`` split is never used for validation, so it stays an untouched test set. Whichever
applies is said once in the log and recorded in :attr:`gankit.data.base.DataInfo.val_source`.

``data.max_images=N`` trains on a subset of the training items chosen the same way for every dataset
kind (:func:`seeded_subset`): N items drawn with the fixed seed :data:`SUBSET_SEED`, kept in their
sorted order. Not the first N files, whose names often follow class, time or place; and not the
training seed, so runs with different ``train.seed`` see the same images. It is recorded in
:attr:`gankit.data.base.DataInfo.subset` (and so in ``run.json``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "HOLDOUT_FRACTION",
    "SUBSET_SEED",
    "VAL_SPLIT",
    "Holdout",
    "describe",
    "describe_subset",
    "holdout",
    "is_held_out",
    "seeded_subset",
]

HOLDOUT_FRACTION = Fraction(1, 10)
"""The part of the training items held out when a dataset has no ``val/`` split."""

VAL_SPLIT = "val/ split"
"""``DataInfo.val_source`` when the dataset brings its own validation folder."""


def is_held_out(i: int, fraction: Fraction = HOLDOUT_FRACTION) -> bool:
    """Whether item ``i`` (in sorted order) is held out for validation.

    Item i is held out when the running count floor(k * fraction) steps up at k = i + 1: evenly
    spread, and for 1/10 exactly every 10th item (i % 10 == 9). Integer maths, no float drift.
    """
    num, den = fraction.numerator, fraction.denominator
    return (i + 1) * num // den > i * num // den


@dataclass(frozen=True)
class Holdout:
    """Which of ``n`` sorted items train and which validate, and how to say so."""

    train: list[int]
    val: list[int]
    source: str
    """For :attr:`DataInfo.val_source`, e.g. "held out every 10th image of train (40 of 400, ...)"."""

    @property
    def on_train(self) -> bool:
        """True when there were too few items to hold any out (validation uses the training items)."""
        return self.train == self.val


def holdout(n: int, fraction: Fraction | float = HOLDOUT_FRACTION, *, what: str = "images") -> Holdout:
    """Split ``n`` sorted items by the rule of this module (steps 2 and 3)."""
    frac = Fraction(fraction).limit_denominator(1000)
    if not 0 < frac < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {float(frac)}")
    val = [i for i in range(n) if is_held_out(i, frac)]
    if not val:
        everything = list(range(n))
        need = -(-frac.denominator // frac.numerator)
        return Holdout(everything, everything, f"train (too few {what} to hold out: {n} < {need})")
    train = [i for i in range(n) if not is_held_out(i, frac)]
    part = f"every {frac.denominator}th" if frac.numerator == 1 else f"{float(frac):.0%}"
    return Holdout(train, val, f"held out {part} {what[:-1]} of train ({len(val)} of {n}, deterministic by name)")


def describe(source: str, where: str) -> str:
    """The one log line saying where validation comes from, when it is not a ``val/`` split."""
    line = f"{where}: no val/ split; validation data: {source}"
    if source.startswith("train (too few"):
        line += "; val metrics then measure fit, not generalization"
    return line


SUBSET_SEED = 0
"""The seed of the ``data.max_images`` subset: fixed, so a subset of N is the same in every run."""


def seeded_subset(n_total: int, n: int, seed: int = SUBSET_SEED) -> list[int]:
    """The sorted indices of ``n`` of ``n_total`` items, drawn with ``seed`` (all of them when ``n`` is
    0 or at least ``n_total``).

    Python's :class:`random.Random` with an integer seed is stable across platforms and versions, and
    independent of torch, so the same call picks the same items on every machine.
    """
    if n <= 0 or n >= n_total:
        return list(range(n_total))
    return sorted(random.Random(seed).sample(range(n_total), n))


def describe_subset(n_total: int, n: int, seed: int = SUBSET_SEED) -> str:
    """For :attr:`DataInfo.subset`: "1,000 of 60,000, seeded (seed 0)", or "" when nothing is left out."""
    if n <= 0 or n >= n_total:
        return ""
    return f"{n:,} of {n_total:,}, seeded (seed {seed})"
