"""Metrics as a package: a registry of named metrics, one small file for each computation.

``METRICS[name].compute(ctx)`` returns a dict of numbers (a metric may give several, e.g. ``pr``
gives precision, recall, density and coverage). The :class:`EvalContext` (implemented by
:class:`gankit.evaluate.Evaluation`) computes and caches what metrics share: reference and generated
features per feature space, one pass of an image-to-image model over its split. A metric that
cannot run here raises :class:`MetricUnavailable` (e.g. :class:`MissingWeightsError`) and is skipped.

=============  ======  =====================================================================
name           kind    what
=============  ======  =====================================================================
fid            any     Fréchet Inception Distance (Heusel et al. 2017), Inception-v3 pool3
kid            any     Kernel Inception Distance (Binkowski et al. 2018), mean and std
pr             any     precision/recall (Kynkäänniemi et al. 2019) + density/coverage (Naeem et al. 2020)
                       (image-to-image models: their outputs against the targets of the same split)
fid_clf ...    noise   the same three in the space of gankit's domain classifier (fid_clf, kid_clf:
                       its 128-d embedding; pr_clf: its L2-normalized 576-d conv features, see
                       :class:`~gankit.metrics.features.ClassifierFeatures`)
cls_acc        noise   class-conditional models: classifier accuracy on samples of each label
l1             paired  mean absolute error in the model's [-1, 1] range
psnr, ssim     paired  on RGB in [0, 1] (SSIM: Wang et al. 2004)
lpips          paired  perceptual distance (Zhang et al. 2018), AlexNet backbone
colorfulness   paired  Hasler & Süsstrunk (2003), of the outputs and of the ground truth
=============  ======  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from gankit.metrics.errors import MetricUnavailable, MissingWeightsError
from gankit.metrics.fid import fid_from_features
from gankit.metrics.kid import kid
from gankit.metrics.prdc import precision_recall


class EvalContext(Protocol):
    """What a metric may ask of an evaluation."""

    seed: int

    def features(self, space: str) -> tuple[Tensor, Tensor]:
        """(reference, generated) features in ``inception``, ``classifier`` or ``classifier_conv`` space."""
        ...

    def class_accuracy(self) -> dict[str, float]:
        """``cls_acc`` and ``cls_acc_<k>`` of the classifier on samples generated for each label ``k``."""
        ...

    def paired(self, group: str) -> dict[str, float]:
        """Results of the one pass over the paired split: group ``pixels``, ``lpips`` or ``colorfulness``."""
        ...


MetricFn = Callable[[EvalContext], dict[str, float]]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    """noise (generators from noise), paired (image-to-image models) or any (both)."""
    needs: str
    """What it is computed from: a feature space (inception, classifier), labels, or a paired group."""
    description: str
    compute: MetricFn
    lower_is_better: bool | None = None
    """The direction of every number it gives; None: neither (see :attr:`better`)."""
    outputs: tuple[str, ...] = ()
    """The result keys it gives (``KEY``, and ``KEY_std``/``KEY_<class>`` beside them); default: its name."""
    better_text: str = ""
    """What "better" means when it is neither lower nor higher (e.g. colorfulness)."""

    @property
    def keys(self) -> tuple[str, ...]:
        return self.outputs or (self.name,)

    @property
    def better(self) -> str:
        """``lower is better``, ``higher is better`` or :attr:`better_text`."""
        if self.lower_is_better is None:
            return self.better_text or "no better direction known"
        return "lower is better" if self.lower_is_better else "higher is better"

    @property
    def uses_classifier(self) -> bool:
        """Its numbers depend on which domain classifier computed them."""
        return self.needs in ("classifier", "classifier_conv", "labels")


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    kind: str,
    needs: str,
    description: str,
    lower_is_better: bool | None,
    outputs: tuple[str, ...] = (),
    better_text: str = "",
) -> Callable[[MetricFn], MetricFn]:
    """Add a metric to :data:`METRICS`; ``lower_is_better`` is its direction (None: neither)."""

    def wrap(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric '{name}' registered twice")
        METRICS[name] = Metric(name, kind, needs, description, fn, lower_is_better, outputs, better_text)
        return fn

    return wrap


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(METRICS)}") from None


def list_metrics(kind: str | None = None) -> list[str]:
    return [m.name for m in METRICS.values() if kind is None or m.kind in (kind, "any")]


def metric_of(key: str) -> Metric | None:
    """The metric that gives the result key ``key`` (``fid_clf``, ``kid_std``, ``cls_acc_3``, ``val_l1``, ...).

    The ``val_`` (``metrics.jsonl``) and ``eval_`` (TensorBoard) prefixes are ignored; a key
    ``OUT_suffix`` belongs to the metric giving ``OUT`` unless another gives it exactly.
    """
    key = key.removeprefix("val_").removeprefix("eval_")
    exact = next((m for m in METRICS.values() if key in m.keys), None)
    if exact is not None:
        return exact
    # the longest output that prefixes the key: kid_clf_std is kid_clf's, not kid's
    best: tuple[int, Metric | None] = (0, None)
    for m in METRICS.values():
        for out in m.keys:
            if key.startswith(out + "_") and len(out) > best[0]:
                best = (len(out), m)
    return best[1]


def better(key: str) -> str:
    """Which way the result ``key`` improves, from its metric's record: "lower is better", "higher is
    better", or what else is known ("no better direction known" for keys of no registered metric)."""
    m = metric_of(key)
    if m is not None and key.removeprefix("val_").removeprefix("eval_").endswith("_real"):
        # a reference, not a score
        return f"the real images' value: {m.name} is better the closer it gets to {key}"
    return m.better if m is not None else "no better direction known"


EVAL_META_COLUMNS = frozenset(
    {"step", "time", "split", "n", "n_ref", "seed", "seconds", "checkpoint", "classifier", "classifier_accuracy"}
    | {"classifier_source", "classifier_sha256"}
)
"""Columns of ``eval.jsonl`` that describe an evaluation rather than score it."""


def eval_metric_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The metric columns of ``eval.jsonl`` rows to plot (no std columns, no per-class accuracies), in order."""
    return list(
        dict.fromkeys(
            k
            for r in rows
            for k, v in r.items()
            if k not in EVAL_META_COLUMNS
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and not k.endswith("_std")
            and not (k.startswith("cls_acc_") and k[8:].isdigit())
        )
    )


def _register_feature_metrics(
    space: str, suffix: str, where: str, *, pr_space: str = "", pr_where: str = "", kind: str = "noise"
) -> None:
    pr_space, pr_where = pr_space or space, pr_where or where

    @register_metric(
        f"fid{suffix}", kind=kind, needs=space, description=f"Fréchet distance in {where}", lower_is_better=True
    )
    def _fid(ctx: EvalContext) -> dict[str, float]:
        return {f"fid{suffix}": fid_from_features(*ctx.features(space))}

    @register_metric(
        f"kid{suffix}",
        kind=kind,
        needs=space,
        description=f"KID (cubic-kernel MMD^2) in {where}",
        lower_is_better=True,
    )
    def _kid(ctx: EvalContext) -> dict[str, float]:
        real, fake = ctx.features(space)
        mean, std = kid(real, fake, seed=ctx.seed)
        return {f"kid{suffix}": mean, f"kid{suffix}_std": std}

    @register_metric(
        f"pr{suffix}",
        kind=kind,
        needs=pr_space,
        description=f"precision, recall (k=3), density, coverage in {pr_where}",
        lower_is_better=False,
        outputs=tuple(f"{k}{suffix}" for k in ("precision", "recall", "density", "coverage")),
    )
    def _pr(ctx: EvalContext) -> dict[str, float]:
        return {f"{k}{suffix}": v for k, v in precision_recall(*ctx.features(pr_space)).items()}


_register_feature_metrics("inception", "", "Inception-v3 pool3 space", kind="any")
# precision/recall do not use the embedding: it collapses any input into a class cluster (noise got precision ~1)
_register_feature_metrics(
    "classifier",
    "_clf",
    "the domain classifier's 128-d embedding",
    pr_space="classifier_conv",
    pr_where="the domain classifier's L2-normalized conv features",
)


@register_metric(
    "cls_acc",
    kind="noise",
    needs="labels",
    description="classifier accuracy on samples generated for each label (cgan), per class and mean",
    lower_is_better=False,
)
def _cls_acc(ctx: EvalContext) -> dict[str, float]:
    return ctx.class_accuracy()


def _paired_metric(
    name: str, group: str, description: str, lower_is_better: bool | None, *, better_text: str = ""
) -> None:
    outputs = (name, f"{name}_real") if name == "colorfulness" else ()
    register_metric(
        name,
        kind="paired",
        needs=group,
        description=description,
        lower_is_better=lower_is_better,
        outputs=outputs,
        better_text=better_text,
    )(lambda ctx: {k: v for k, v in ctx.paired(group).items() if k.startswith(name)})


_paired_metric("l1", "pixels", "mean absolute error in the model's [-1, 1] range", True)
_paired_metric("psnr", "pixels", "peak signal-to-noise ratio (dB) on RGB in [0, 1]", False)
_paired_metric("ssim", "pixels", "structural similarity (Wang et al. 2004) on RGB in [0, 1]", False)
_paired_metric("lpips", "lpips", "LPIPS distance (Zhang et al. 2018), AlexNet backbone", True)
_paired_metric(
    "colorfulness",
    "colorfulness",
    "Hasler & Süsstrunk colourfulness of outputs (colorfulness) and ground truth (colorfulness_real)",
    None,
    better_text="closer to the real photos' (colorfulness_real) is better",
)

__all__ = [
    "EVAL_META_COLUMNS",
    "METRICS",
    "EvalContext",
    "Metric",
    "MetricUnavailable",
    "MissingWeightsError",
    "better",
    "eval_metric_keys",
    "get_metric",
    "list_metrics",
    "metric_of",
    "register_metric",
]
