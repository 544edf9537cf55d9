"""Evaluating trained generators: metrics from the :mod:`gankit.metrics` registry, appended to ``RUN/eval.jsonl``.

Noise-to-image models are compared with a real split in feature spaces (FID, KID, precision/recall
in Inception-v3 space when its weights are on the machine, and in the space of gankit's own domain
classifier: shipped in the package for MNIST and Fashion-MNIST, trained with ``gankit train
classifier`` for other labelled data); class-conditional ones also by the classifier's accuracy on
their samples. When not one metric can be computed, :func:`evaluate` raises
:class:`NoMetricsComputed` with the commands that fix it, and appends nothing. Image-to-image
models are scored on their paired split (L1, PSNR, SSIM, LPIPS, colourfulness for colorization).
:func:`real_vs_real` gives the floor of the feature metrics: the train split scored against the
test split. Reference features are cached per dataset, split
and feature extractor in ``$XDG_CACHE_HOME/gankit/stats``; everything is seeded, so evaluating the
same checkpoint twice gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gankit.config import DataConfig
from gankit.data import build_dataset
from gankit.data.base import TrainSet
from gankit.devices import resolve_device
from gankit.metrics import METRICS, MetricUnavailable, eval_metric_keys, get_metric, metric_of
from gankit.metrics.classifier import ClassifierChoice, locate_classifier, user_classifier_paths
from gankit.metrics.features import ClassifierFeatures, FeatureExtractor, InceptionFeatures
from gankit.paths import cache_dir
from gankit.run import RunFolder
from gankit.rundata import run_data
from gankit.sampling import LoadedGenerator, choose_labels, load_generator
from gankit.training.checkpoint import safe_load
from gankit.visualize import lab_to_display, to_display

Log = Callable[[str], None]

FEATURE_SPACES = ("inception", "classifier", "classifier_conv")

SHOWN_NOTICES: set[str] = set()
"""Long skip notices (the Inception weights one) already printed in this process: later evaluations
(``--eval-every``) give only their first line, so a command prints each notice once."""


class NoMetricsComputed(MetricUnavailable, ValueError):
    """Not one of the asked metrics could be computed; the message lists why and the commands that fix it.

    Also a ValueError, so callers that treat bad input alike (the CLI, ``train.eval_every``) catch it.
    """


def stats_dir() -> Path:
    """Cache of reference features: ``$XDG_CACHE_HOME/gankit/stats``."""
    return cache_dir() / "stats"


def default_metrics(kind: str, *, space: str = "rgb", conditional: bool = False, classifier: bool = False) -> list[str]:
    """The metrics :func:`evaluate` computes when none are named (``classifier``: the data has class labels)."""
    if kind == "paired":
        # fid, kid, pr: outputs vs targets of the split, in Inception space (how published pix2pix FIDs are computed)
        return ["l1", "psnr", "ssim", "lpips"] + (["colorfulness"] if space == "lab" else []) + ["fid", "kid", "pr"]
    names = ["fid", "kid", "pr"]
    if classifier:
        names += ["fid_clf", "kid_clf", "pr_clf"] + (["cls_acc"] if conditional else [])
    return names


class Evaluation:
    """The shared, cached inputs of one evaluation's metrics (the :class:`~gankit.metrics.EvalContext`).

    The reference side is ``split`` of ``data_cfg``; the other side is ``loaded`` (a generator) or,
    for :func:`real_vs_real`, another split (``other_split``) of the same data.
    """

    def __init__(
        self,
        data_cfg: DataConfig,
        *,
        split: str,
        n: int,
        seed: int,
        batch_size: int,
        device: torch.device,
        classifier: Path | None,
        loaded: LoadedGenerator | None = None,
        other_split: str | None = None,
        paired_groups: set[str] | None = None,
        dataset: str | None = None,
        log: Log = print,
    ) -> None:
        self.data_cfg = dataclasses.replace(data_cfg, max_images=0)  # references use the whole split
        self.split, self.n, self.seed, self.batch_size, self.device = split, n, seed, batch_size, device
        self.classifier, self.loaded, self.other_split, self.log = classifier, loaded, other_split, log
        self.paired_groups = paired_groups or set()
        self.dataset = dataset or data_cfg.name
        """The dataset actually loaded (``DataInfo.dataset``; the config's name for older runs)."""
        self.counts: dict[str, int] = {}
        """Images actually used: ``reference`` (the split), ``generated`` or ``other`` (real_vs_real), ``pairs``."""
        self._data: dict[str, TrainSet] = {}
        self._extractors: dict[str, FeatureExtractor | MetricUnavailable] = {}
        self._features: dict[str, tuple[Tensor, Tensor]] = {}
        self._paired: dict[str, dict[str, float] | MetricUnavailable] | None = None

    # ------------------------------------------------------------------ feature spaces
    def extractor(self, space: str) -> FeatureExtractor:
        if space not in self._extractors:
            try:
                if space == "inception":
                    self._extractors[space] = InceptionFeatures(device=self.device, batch_size=min(self.batch_size, 64))
                elif space in ("classifier", "classifier_conv"):
                    self._extractors[space] = self._classifier_features("embed" if space == "classifier" else "conv")
                else:
                    raise ValueError(f"unknown feature space '{space}'")
            except MetricUnavailable as e:  # remembered, so fid, kid and pr fail with the same message
                self._extractors[space] = e
        ext = self._extractors[space]
        if isinstance(ext, MetricUnavailable):
            raise ext
        return ext

    def _classifier_features(self, layer: str) -> ClassifierFeatures:
        if self.classifier is None:
            paths = user_classifier_paths(self.dataset, self.data_cfg.path)
            raise MetricUnavailable(
                f"no domain classifier for '{self.dataset}' (none is shipped for it; looked at "
                f"{', '.join(str(p) for p in paths)})",
                fix=f"gankit train classifier --data {self.data_cfg.path or self.data_cfg.name} --out {paths[-1]}",
            )
        ext = ClassifierFeatures(self.classifier, layer=layer, device=self.device, batch_size=self.batch_size)
        if layer == "embed" and ext.model.dataset != self.dataset:
            self.log(
                f"warning: classifier {self.classifier} was trained on '{ext.model.dataset}', not '{self.dataset}'"
            )
        return ext

    def features(self, space: str) -> tuple[Tensor, Tensor]:
        if space not in self._features:
            ext = self.extractor(space)
            real = self.dataset_features(self.split, ext)
            if self.other_split is not None:
                fake = self.dataset_features(self.other_split, ext)
            elif self.loaded is not None and self.loaded.family.kind == "paired":
                fake = self._output_features(ext)
            else:
                fake = torch.cat([ext(images) for images, _ in self.generated()])
            self._features[space] = (real, fake)
        return self._features[space]

    def data(self, split: str) -> TrainSet:
        """``split`` of the data, built once per evaluation (a DataError names what is missing)."""
        if split not in self._data:
            self._data[split] = build_dataset(self.data_cfg, split, log=self.log)
        return self._data[split]

    def dataset_features(self, split: str, ext: FeatureExtractor) -> Tensor:
        """Features of (a seeded subset of ``n``) images of ``split``, cached on disk.

        A damaged cache file (truncated, garbage, wrong shape) is recomputed with a warning naming
        it; the new file is written to a temporary name and renamed, so two processes computing
        the same statistics never leave a torn file.
        """
        data = self.data(split)
        index = self._subset(split)
        self.counts["other" if split == self.other_split and split != self.split else "reference"] = len(index)
        cfg = dataclasses.asdict(self.data_cfg)
        key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
        subset = f"-s{self.seed}" if len(index) < len(data) else ""
        path = stats_dir() / f"{self.data_cfg.name}-{split}-{key}-{ext.name}-n{len(index)}{subset}.pt"
        if path.is_file():
            cached = _read_stats(path, len(index), ext.dim)
            if isinstance(cached, Tensor):
                return cached
            self.log(f"warning: {path}: damaged reference statistics ({cached}); recomputing them")
        self.log(f"computing {ext.name} features of {len(index)} {self.data_cfg.name} {split} images -> {path}")
        feats = []
        for s in range(0, len(index), self.batch_size):
            batch = data.batch(index[s : s + self.batch_size], device=self.device, generator=None)
            feats.append(ext(batch["image"] if "image" in batch else _as_rgb(data, batch["input"], batch["target"])))
        out = torch.cat(feats)
        from gankit.locks import atomic_save

        atomic_save({"features": out, "data": cfg, "split": split, "extractor": ext.name}, path)
        return out

    def _subset(self, split: str) -> Tensor:
        """The images of ``split`` that feature metrics use: all, or a seeded sorted subset of ``n``."""
        size = len(self.data(split))
        if size <= self.n:
            return torch.arange(size)
        return torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))[: self.n].sort().values

    @torch.no_grad()
    def _output_features(self, ext: FeatureExtractor) -> Tensor:
        """Features of an image-to-image model's outputs for the inputs whose targets are the reference."""
        loaded, data = self._need_generator("paired"), self.data(self.split)
        index = self._subset(self.split)
        self.counts["generated"] = len(index)
        feats = []
        for s in range(0, len(index), self.batch_size):
            batch = data.batch(index[s : s + self.batch_size], device=self.device, generator=None)
            feats.append(ext(_as_rgb(data, batch["input"], loaded(batch["input"]).float())))
        return torch.cat(feats)

    # ------------------------------------------------------------------ generated images
    @torch.no_grad()
    def generated(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        """``n`` samples in batches with their labels (balanced over classes); same noise as ``gankit sample``."""
        loaded = self._need_generator("noise")
        self.counts["generated"] = self.n
        g = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.n, loaded.cfg.model.z_dim, generator=g)
        labels = choose_labels(self.n, loaded.info.num_classes, balanced=True)
        for s in range(0, self.n, self.batch_size):
            lb = labels[s : s + self.batch_size].to(self.device) if labels is not None else None
            yield loaded(z[s : s + self.batch_size].to(self.device), lb).float(), lb

    def _need_generator(self, kind: str) -> LoadedGenerator:
        if self.loaded is None or self.loaded.family.kind != kind:
            raise MetricUnavailable(f"needs a {kind} generator")
        return self.loaded

    @torch.no_grad()
    def class_accuracy(self) -> dict[str, float]:
        loaded = self._need_generator("noise")
        k = loaded.info.num_classes
        if not k or not loaded.family.conditional:
            raise MetricUnavailable("cls_acc is for class-conditional generators (cgan)")
        model = self.extractor("classifier").model  # type: ignore[attr-defined]
        if model.num_classes != k:
            raise MetricUnavailable(f"the classifier has {model.num_classes} classes, the generator {k}")
        correct, count = torch.zeros(k), torch.zeros(k)
        for images, labels in self.generated():
            assert labels is not None
            hit = (model(model.prepare(images)).argmax(1) == labels).float().cpu()
            correct.index_add_(0, labels.cpu(), hit)
            count.index_add_(0, labels.cpu(), torch.ones_like(hit))
        per_class = correct / count.clamp_min(1)
        return {"cls_acc": float(per_class.mean()), **{f"cls_acc_{i}": float(a) for i, a in enumerate(per_class)}}

    # ------------------------------------------------------------------ image-to-image
    def paired(self, group: str) -> dict[str, float]:
        if self._paired is None:
            self._paired = self._paired_pass()
        result = self._paired.get(group)
        if result is None:
            raise MetricUnavailable(f"paired group '{group}' was not computed")
        if isinstance(result, MetricUnavailable):
            raise result
        return result

    @torch.no_grad()
    def _paired_pass(self) -> dict[str, dict[str, float] | MetricUnavailable]:
        """One pass of the model over (the first ``n`` pairs of) the split, feeding every paired metric."""
        from gankit.metrics.colorfulness import colorfulness
        from gankit.metrics.lpips import LPIPS
        from gankit.metrics.paired import PairedMetrics

        loaded = self._need_generator("paired")
        data = self.data(self.split)
        space = loaded.info.space
        pixels = PairedMetrics(space=space)
        out: dict[str, dict[str, float] | MetricUnavailable] = {}
        lpips: LPIPS | None = None
        if "lpips" in self.paired_groups:
            try:
                lpips = LPIPS(device=self.device)
            except MetricUnavailable as e:
                out["lpips"] = e
        sums = {"lpips": 0.0, "colorfulness": 0.0, "colorfulness_real": 0.0}
        total = min(self.n, len(data))
        self.counts["pairs"] = total
        for s in range(0, total, self.batch_size):
            b = data.batch(torch.arange(s, min(s + self.batch_size, total)), device=self.device, generator=None)
            pred = loaded(b["input"]).float()
            pixels.update(b["input"], pred, b["target"])
            if space == "lab":
                rgb, rgb_true = lab_to_display(b["input"], pred), lab_to_display(b["input"], b["target"])
            else:
                rgb, rgb_true = to_display(pred), to_display(b["target"])
            if lpips is not None:
                sums["lpips"] += float(lpips(rgb * 2 - 1, rgb_true * 2 - 1).sum())
            sums["colorfulness"] += float(colorfulness(rgb).sum())
            sums["colorfulness_real"] += float(colorfulness(rgb_true).sum())
        out["pixels"] = pixels.compute()
        if lpips is not None:
            out["lpips"] = {"lpips": sums["lpips"] / max(1, total)}
        out["colorfulness"] = {k: sums[k] / max(1, total) for k in ("colorfulness", "colorfulness_real")}
        return out

    # ------------------------------------------------------------------ running
    def run(self, names: list[str]) -> dict[str, float]:
        """Compute ``names`` in order; a metric that cannot run here is logged and skipped.

        Raises :class:`NoMetricsComputed` (listing the reasons and the fixes) when none could run.
        """
        results: dict[str, float] = {}
        reasons: dict[str, list[str]] = {}  # message -> the metrics it stopped
        fixes: list[str] = []
        if any(get_metric(name).needs in FEATURE_SPACES for name in names):
            # the data first: when they are missing, that error comes before any notice about weights
            self.data(self.split)
            if self.other_split is not None:
                self.data(self.other_split)
        for name in names:
            try:
                results.update(get_metric(name).compute(self))
            except MetricUnavailable as e:
                msg = str(e)
                if msg in reasons:
                    self.log(f"{name}: skipped (same reason as {reasons[msg][0]})")
                elif "\n" in msg and msg in SHOWN_NOTICES:
                    self.log(f"{name}: skipped: {msg.splitlines()[0]} (details printed above)")
                else:
                    self.log(f"{name}: skipped: {msg}")
                    SHOWN_NOTICES.add(msg)
                reasons.setdefault(msg, []).append(name)
                if e.fix and e.fix not in fixes:
                    fixes.append(e.fix)
        if not results:
            lines = [f"{', '.join(ms)}: {msg.splitlines()[0]}" for msg, ms in reasons.items()]
            lines += [f"fix: {f}" for f in fixes]
            raise NoMetricsComputed("no metric could be computed\n  " + "\n  ".join(lines))
        return results

    def header(self) -> str:
        """What was compared, with the numbers of images actually used (not the requested ``n``)."""
        c = self.counts
        if "pairs" in c:
            return f"{self.split} split, {c['pairs']} pairs"
        if "other" in c:
            return f"{c['other']} {self.other_split} vs {c.get('reference', 0)} {self.split} images"
        ref = f", {c['reference']} reference {self.split} images" if "reference" in c else ""
        return f"{self.split} split: {c.get('generated', 0)} generated{ref}"


def _as_rgb(data: TrainSet, inputs: Tensor, outputs: Tensor) -> Tensor:
    """An image-to-image pair's output (or target) as the RGB image it shows, in [-1, 1]."""
    rgb = lab_to_display(inputs, outputs) if data.info.space == "lab" else to_display(outputs)
    return rgb * 2 - 1


def _check_names(names: list[str], kind: str) -> None:
    for name in names:
        if get_metric(name).kind not in (kind, "any"):
            raise ValueError(
                f"metric '{name}' is for {get_metric(name).kind} models, not {kind} ones; "
                f"choose from {', '.join(m for m in METRICS if METRICS[m].kind in (kind, 'any'))}"
            )


def run_dataset(loaded: LoadedGenerator) -> str:
    """The dataset a run actually trained on: ``DataInfo.dataset``, or the config's name for older runs."""
    return getattr(loaded.info, "dataset", "") or loaded.cfg.data.name


def _choose_classifier(
    dataset: str, data_cfg: DataConfig, classifier: str | Path | None, log: Log
) -> ClassifierChoice | None:
    choice = locate_classifier(dataset, classifier, data_path=data_cfg.path)
    if choice is not None:
        log(f"classifier: {choice.describe()}")
    return choice


def format_results(results: dict[str, float], clf: ClassifierChoice | None) -> str:
    """``fid_clf 16.2, kid_clf 0.012, ... [classifier fashion-mnist.pt: shipped, test accuracy 0.9139]``:
    the numbers, and beside the classifier's, which classifier computed them."""
    text = ", ".join(f"{k} {v:.4g}" for k, v in results.items())
    if clf is not None and any(get_metric(m).uses_classifier for m in _metrics_of(results)):
        text += f" [classifier {clf.tag()}]"
    return text


def _metrics_of(results: dict[str, float]) -> set[str]:
    return {m.name for m in map(metric_of, results) if m is not None}


def classifier_columns(clf: ClassifierChoice | None) -> dict[str, object]:
    """The ``eval.jsonl`` columns that say which classifier computed the ``*_clf`` and ``cls_acc`` numbers."""
    if clf is None:
        return {}
    return {
        "classifier": str(clf.path),
        "classifier_source": clf.source,
        "classifier_sha256": clf.sha256[:16],
        **({"classifier_accuracy": round(clf.accuracy, 6)} if clf.accuracy is not None else {}),
    }


def evaluate(
    run_or_ckpt: str | Path,
    *,
    metrics: list[str] | None = None,
    n: int = 10000,
    split: str | None = None,
    classifier: str | Path | None = None,
    checkpoint: str | Path = "last",
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 256,
    engine: str | None = None,
    log: Log = print,
) -> dict[str, float]:
    """Score a run folder or generator checkpoint; append a row to ``RUN/eval.jsonl`` and return the numbers.

    ``checkpoint`` picks the snapshot of a run folder: ``last`` (default, ``G_last.pt``), ``best``
    (``G_best.pt``, image-to-image runs; an error where there is none) or a checkpoint path
    (:func:`~gankit.sampling.resolve_checkpoint`). ``split`` defaults to ``test`` for
    noise models (IDX test set; folder data has no splits and is compared with itself) and ``val``
    for image-to-image ones. ``n`` is the number of samples (and at most that many reference
    images); the log line and the row give the numbers actually used (``n``, ``n_ref``).
    ``classifier`` (a path, ``shipped`` or ``user``) defaults to the shipped classifier of the run's
    dataset unless a user-trained one was installed, and to the user-trained one where none is
    shipped (:func:`~gankit.metrics.classifier.locate_classifier`); its identity and accuracy go
    beside the numbers in the log line and the row. ``engine`` runs the generator (``auto``, ``torch``
    or ``onnxruntime``: :mod:`gankit.engine`; None: ``$GANKIT_ENGINE``, else ``auto``). Raises
    :class:`NoMetricsComputed` (and appends nothing) when not one metric can be computed.
    """
    from gankit.engine import engine_name, use_engine

    start = time.monotonic()
    engine_name(engine)  # a typo is refused before the model loads
    dev = resolve_device(device)
    loaded = load_generator(run_or_ckpt, device=dev, which=checkpoint)
    use_engine(loaded, engine, log=log)
    kind = loaded.family.kind
    split = split or ("test" if kind == "noise" else "val")
    dataset = run_dataset(loaded)
    labelled = loaded.info.num_classes >= 2
    clf = _choose_classifier(dataset, loaded.cfg.data, classifier, log) if kind == "noise" and labelled else None
    if metrics is None:
        metrics = default_metrics(
            kind, space=loaded.info.space, conditional=loaded.family.conditional, classifier=labelled
        )
    _check_names(metrics, kind)
    ev = Evaluation(
        loaded.cfg.data,
        split=split,
        n=n,
        seed=seed,
        batch_size=batch_size,
        device=dev,
        classifier=clf.path if clf else None,
        loaded=loaded,
        paired_groups={get_metric(m).needs for m in metrics},
        dataset=dataset,
        log=log,
    )
    try:
        results = ev.run(metrics)
    except NoMetricsComputed as e:
        raise NoMetricsComputed(f"{loaded.path}: {e}") from None
    log(f"{loaded.path} ({ev.header()}): " + format_results(results, clf))
    run = RunFolder.containing(run_or_ckpt) or RunFolder.containing(loaded.path)
    if run is not None:
        step = safe_load(loaded.path).get("step", -1)
        c = ev.counts
        run.eval_log.append(
            {
                "step": step,
                "time": round(time.time(), 3),
                "checkpoint": loaded.path.name,
                "split": split,
                "n": c.get("pairs", c.get("generated", 0)),
                **({"n_ref": c["reference"]} if "reference" in c else {}),
                "seed": seed,
                **classifier_columns(clf),
                **results,
                "seconds": round(time.monotonic() - start, 2),
            }
        )
    return results


def recorded_data(name: str, where: Path = Path(".")) -> tuple[str, Path] | None:
    """``(folder, run.json)`` of the newest run in ``where/runs/*/`` or ``where/*/`` that trained on the
    dataset ``name`` from a folder that still exists (``run.json``'s ``dataset.source``), else None."""
    found: list[tuple[float, str, Path]] = []
    for run in RunFolder.recorded_under(where):
        recorded = run_data(run.read_record())  # empty when the record cannot be read; other folders may have one
        if recorded.name == name and recorded.local_source:
            found.append((run.record.stat().st_mtime, recorded.local_source, run.record))
    if not found:
        return None
    _, source, record = max(found)
    return source, record


def real_data_config(real: str, data: str | None = None, *, log: Log = print) -> DataConfig:
    """The data of ``gankit eval --real DATASET|FOLDER [--data FOLDER]``, found as ``gankit train`` finds it.

    A dataset name is looked for where training looks (``--data``, ``$GANKIT_DATA``, the cache,
    system folders); for MNIST and Fashion-MNIST found in none of them, in the folder a run in
    ``./runs/`` (or ``./*/``) recorded in its ``run.json`` (after ``gankit train ... --data FOLDER``),
    which the log names. A folder is read like ``train --data``.
    """
    from gankit.data import DATASETS, infer_dataset_name
    from gankit.data.errors import DataError
    from gankit.data.mnist import locate

    if data is not None:
        return DataConfig(name=real, path=data)
    if real not in DATASETS:
        try:
            name, path = infer_dataset_name(real, "fashion-mnist")
        except DataError as e:
            raise DataError(str(e).replace(f"--data {real}", f"--real {real}", 1)) from None
        return DataConfig(name=name, path=path)
    if real in ("fashion-mnist", "mnist") and locate(real) is None:
        hit = recorded_data(real)
        if hit is not None:
            log(f"data: {real} from {hit[0]} (recorded in {hit[1]})")
            return DataConfig(name=real, path=hit[0])
    return DataConfig(name=real)


def real_vs_real(
    data_cfg: DataConfig,
    metrics: list[str] | None = None,
    *,
    n: int = 10000,
    classifier: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 256,
    train_split: str = "train",
    test_split: str = "test",
    log: Log = print,
) -> dict[str, float]:
    """The floor of the feature metrics: ``n`` images of the train split scored against the test split."""
    clf = _choose_classifier(data_cfg.name, data_cfg, classifier, log)
    if metrics is None:
        metrics = default_metrics("noise", classifier=True)
    metrics = [m for m in metrics if m != "cls_acc"]
    _check_names(metrics, "noise")
    ev = Evaluation(
        data_cfg,
        split=test_split,
        n=n,
        seed=seed,
        batch_size=batch_size,
        device=resolve_device(device),
        classifier=clf.path if clf else None,
        other_split=train_split,
        log=log,
    )
    results = ev.run(metrics)
    log(f"{data_cfg.name} ({ev.header()}): " + format_results(results, clf))
    return results


@dataclass
class PairScores:
    """Every pair of an image-to-image split scored with a generator by L1 (the report's best and worst examples)."""

    loaded: LoadedGenerator
    data: TrainSet
    l1: Tensor
    """Per pair: mean absolute error in the model's [-1, 1] range, as the training loop's validation computes it."""

    @property
    def names(self) -> list[str]:
        """The pairs' names (file stems), else their indices."""
        return list(getattr(self.data, "names", [])) or [str(i) for i in range(len(self.l1))]

    def ranked(self, k: int) -> tuple[list[int], list[int]]:
        """The ``k`` best pairs (lowest L1 first) and the ``k`` worst (highest first); with fewer than
        ``2k`` pairs the worst list repeats none of the best."""
        order = self.l1.argsort(stable=True).tolist()
        best = order[: min(k, len(order))]
        return best, [i for i in reversed(order) if i not in best][:k]

    @torch.no_grad()
    def translate(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(input, output, target) of the pairs ``indices``, as float tensors on the CPU."""
        dev = next(self.loaded.G.parameters()).device
        b = self.data.batch(torch.tensor(indices), device=dev, generator=None)
        out = self.loaded(b["input"]).float()
        return b["input"].float().cpu(), out.cpu(), b["target"].float().cpu()


@torch.no_grad()
def score_pairs(
    run: str | Path,
    data_cfg: DataConfig,
    *,
    split: str = "val",
    device: str = "auto",
    batch_size: int = 16,
    log: Log = print,
) -> PairScores:
    """Score every pair of ``split`` with the run's generator (``G_last.pt``, as ``gankit eval``) by L1.

    ``data_cfg`` says where the data are (:meth:`gankit.rundata.RunData.local_config`). Raises
    :class:`MetricUnavailable` saying why when there is no generator, the data cannot be loaded or
    the split is empty.
    """
    from gankit.data.errors import DataError
    from gankit.training.checkpoint import CheckpointError

    try:
        loaded = load_generator(run, device=resolve_device(device))
    except CheckpointError as e:
        raise MetricUnavailable(f"no generator to score with ({e})") from None
    try:
        data = build_dataset(data_cfg, split, log=lambda msg: None)
    except (DataError, OSError) as e:
        raise MetricUnavailable(f"the {split} data could not be loaded ({str(e).splitlines()[0]})") from None
    if len(data) == 0:
        raise MetricUnavailable(f"the {split} split is empty")
    dev = next(loaded.G.parameters()).device
    log(f"scoring {len(data)} {split} images with {loaded.path.name} by L1")
    l1s = []
    for start in range(0, len(data), batch_size):
        b = data.batch(torch.arange(start, min(start + batch_size, len(data))), device=dev, generator=None)
        out = loaded(b["input"]).float()
        l1s.append((out - b["target"].float()).abs().flatten(1).mean(1).cpu())
    return PairScores(loaded, data, torch.cat(l1s))


def plot_metrics(run_dir: str | Path) -> Path | None:
    """Plot every metric of ``RUN/eval.jsonl`` against the training step into ``RUN/metrics.png``.

    Each panel says which way is better; evaluations with different classifiers or ``n`` are
    separate, labelled series (:func:`gankit.metrics.plotting.draw_panel`). None when there is nothing to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gankit.metrics.plotting import draw_panel, panel_title

    run = RunFolder(run_dir)
    rows = run.read_evals()
    keys = eval_metric_keys(rows)
    if not keys:
        return None
    cols = min(3, len(keys))
    fig, axes = plt.subplots(
        math.ceil(len(keys) / cols), cols, figsize=(4.3 * cols, 3.3 * math.ceil(len(keys) / cols)), squeeze=False
    )
    for ax, key in zip(axes.flat, keys, strict=False):
        draw_panel(ax, rows, [key])
        ax.set_title(panel_title(key), fontsize=9.5)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    out = run.metrics_plot
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _read_stats(path: Path, rows: int, dim: int) -> Tensor | str:
    """The cached features of ``path``, or why they cannot be used (unreadable, wrong shape)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, a half-written file of an older gankit
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
    feats = saved.get("features") if isinstance(saved, dict) else None
    if not isinstance(feats, Tensor) or tuple(feats.shape) != (rows, dim):
        shape = tuple(feats.shape) if isinstance(feats, Tensor) else None
        return f"expected features of shape {(rows, dim)}, found {shape}"
    return feats
