"""gankit's own domain classifier: a small CNN whose penultimate layer is a feature space for metrics.

Inception-v3 (Szegedy et al. 2016) features, the usual space for FID/KID/precision-recall, come from
ImageNet photos and say little about 28x28 grayscale clothes; metrics of small-image GANs are
therefore also reported in the space of a classifier trained on the dataset itself, as
Heusel et al. (2017) and many MNIST GAN papers do (and class-conditional GANs are scored by its
accuracy on samples drawn for each label). The network is a VGG-like stack of conv-BN-ReLU blocks
(Simonyan & Zisserman 2015) with a 128-d embedding in front of a linear head.

Classifiers for MNIST and Fashion-MNIST ship in ``gankit/metrics/weights/`` (0.4 MB each), trained
by ``gankit train classifier`` with seed 0 on CPU; ``manifest.json`` records their sha256 (checked
on every load), the command, the data's sha256, the test accuracy and the date, so ``*_clf``
numbers work offline at once and are comparable between users. :func:`locate_classifier` takes
an explicit file; else, for those two datasets, the shipped one unless a user-trained one in
``$GANKIT_DATA/classifiers/`` or the cache was installed (``gankit train classifier --install``),
so a quick throwaway classifier never silently changes later numbers; for other labelled data the
user-trained one, the only kind there is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import DataConfig
from gankit.data import EpochSampler, build_dataset
from gankit.data.base import DataInfo, TrainSet, adapt_images
from gankit.locks import atomic_save
from gankit.training.checkpoint import CheckpointError

EMBED_DIM = 128


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


class SmallClassifier(nn.Module):
    """Three conv blocks (16, 32, 64 channels, each halving the side), a 128-d embedding, a linear head.

    Works for any square side >= 8 and 1 or 3 channels; inputs are in [-1, 1] at ``resolution``.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, resolution: int = 28) -> None:
        super().__init__()
        self.channels, self.num_classes, self.resolution = channels, num_classes, resolution
        self.dataset = ""
        """Name of the dataset it was trained on (set by :func:`load_classifier`)."""
        self.test_accuracy: float | None = None
        """Its test (or val) accuracy as recorded at training (set by :func:`load_classifier`)."""
        self.body = nn.Sequential(_block(channels, 16), _block(16, 32), _block(32, 64), nn.AdaptiveAvgPool2d(3))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(64 * 9, EMBED_DIM), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(EMBED_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The 128-d penultimate activations (input of the linear head)."""
        return self.embed(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    def prepare(self, images: Tensor) -> Tensor:
        """Bring [-1, 1] images of any size and 1 or 3 channels to this network's input shape."""
        return adapt_images(images.float(), self.channels, self.resolution)


def _eval_split(cfg: DataConfig, log: Callable[[str], None]) -> TrainSet:
    # IDX data has train/test; folder data has train/val. All of it, whatever max_images says.
    split = "test" if cfg.name in ("fashion-mnist", "mnist") else "val"
    return build_dataset(dataclasses.replace(cfg, max_images=0), split, log=log)


@torch.no_grad()
def accuracy(
    model: SmallClassifier, data: TrainSet, *, device: str | torch.device = "cpu", batch_size: int = 500
) -> float:
    """Top-1 accuracy of ``model`` on every labelled item of ``data``."""
    model.eval()
    correct = 0
    for s in range(0, len(data), batch_size):
        b = data.batch(torch.arange(s, min(s + batch_size, len(data))), device=torch.device(device))
        correct += int((model(model.prepare(b["image"])).argmax(1) == b["label"]).sum())
    return correct / max(1, len(data))


def train_classifier(
    data_cfg: DataConfig,
    out: str | Path,
    *,
    epochs: int = 5,
    max_steps: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    install: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train :class:`SmallClassifier` on the train split of ``data_cfg``; save it to ``out``.

    Adam with a cosine-decayed rate, no augmentation, ``epochs`` epochs or ``max_steps`` steps
    (whichever ends first; 0 = no step limit). An existing ``out`` is an error unless
    ``overwrite``, so neither the shipped weights nor a cached classifier are replaced by accident.
    ``install`` marks it as the default for its dataset even where one is shipped
    (:func:`locate_classifier`; only where gankit eval looks: :func:`user_classifier_paths`).
    Returns the test (or val) accuracy, the training time, the steps and the checkpoint path.

    This is a loop of its own, not :mod:`gankit.training.loop`: a few epochs of one supervised
    cross-entropy step need none of the GAN loop's machinery (two networks and optimizers, an
    objective, EMA, AMP, DDP, resumable state, snapshots, sample grids, run folders), and a metric
    must not depend on the loop whose output it judges.
    """
    from gankit.devices import resolve_device

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass another --out or --overwrite to replace it")
    torch.manual_seed(seed)
    dev = resolve_device(device)
    data = build_dataset(data_cfg, "train", log=log)
    info = data.info
    dataset = getattr(info, "dataset", "") or data_cfg.name  # what was actually loaded (older DataInfo: the name)
    if info.num_classes < 2:
        raise ValueError(f"dataset '{dataset}' has no class labels; the classifier needs them")
    # channels_last makes the CPU convolutions ~1.5x faster
    model = SmallClassifier(info.channels, info.num_classes, info.resolution).to(dev, memory_format=torch.channels_last)
    sampler = EpochSampler(len(data), min(batch_size, len(data)), seed)
    total = max(1, epochs * sampler.steps_per_epoch)
    total = min(total, max_steps) if max_steps else total
    start = time.monotonic()
    _fit(model, data, sampler, total, lr=lr, device=dev, log=log)
    seconds = time.monotonic() - start
    test_acc = accuracy(model, _eval_split(data_cfg, log), device=dev)
    log(f"classifier test accuracy {test_acc:.4f} after {seconds:.0f} s of training")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"dataset": dataset, "config": dataclasses.asdict(data_cfg), "test_accuracy": test_acc, "steps": total}
    record |= {"batch_size": sampler.batch_size, "seed": seed, "installed": install}
    atomic_save(_checkpoint(model, info, record), out)
    return {"test_accuracy": test_acc, "seconds": seconds, "steps": total, "path": str(out), "dataset": dataset}


def _fit(
    model: SmallClassifier,
    data: TrainSet,
    sampler: EpochSampler,
    total: int,
    *,
    lr: float,
    device: torch.device,
    log: Callable[[str], None],
) -> None:
    """``total`` cross-entropy steps of Adam with a cosine-decayed rate; logs the mean loss once per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    start = time.monotonic()
    model.train()
    loss_sum, loss_n = torch.zeros((), device=device), 0
    for step in range(total):
        b = data.batch(sampler.indices(step), device=device)
        loss = F.cross_entropy(model(b["image"].contiguous(memory_format=torch.channels_last)), b["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach()  # summed on the device: one sync per logged line, not per step
        loss_n += 1
        if (step + 1) % sampler.steps_per_epoch == 0 or step + 1 == total:
            log(
                f"classifier step {step + 1}/{total} ({(step + 1) / sampler.steps_per_epoch:.2f} epochs): "
                f"loss {loss_sum.item() / loss_n:.4f} ({time.monotonic() - start:.0f} s)"
            )
            loss_sum.zero_()
            loss_n = 0


def _checkpoint(model: SmallClassifier, info: DataInfo, record: dict[str, Any]) -> dict[str, Any]:
    """The classifier file's contents: weights, the shape facts :func:`load_classifier` rebuilds it from, ``record``."""
    return {
        "kind": "classifier",
        "model": {k: v.contiguous() for k, v in model.state_dict().items()},
        "num_classes": info.num_classes,
        "channels": info.channels,
        "resolution": info.resolution,
        "class_names": list(info.class_names),
        **record,
    }


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> SmallClassifier:
    """Rebuild a classifier saved by :func:`train_classifier` (weights_only load), in eval mode.

    A file of the shipped set (``gankit/metrics/weights/``) is checked against its manifest sha256 first.
    """
    path = Path(path)
    if path.is_file() and path.resolve().parent == WEIGHTS_DIR.resolve():
        verify_shipped(path)
    state = classifier_record(path)
    model = SmallClassifier(state["channels"], state["num_classes"], state["resolution"])
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    model.dataset = str(state.get("dataset") or state["config"].get("name", ""))
    acc = state.get("test_accuracy")
    model.test_accuracy = float(acc) if isinstance(acc, int | float) else None
    return model.to(device).eval()


# ----------------------------------------------------------------------------- finding one

WEIGHTS_DIR = Path(__file__).parent / "weights"
"""The classifiers shipped inside the package, with ``manifest.json`` (sha256, command, accuracy, date)."""

NAMED_DATASETS = ("fashion-mnist", "mnist")
"""Datasets whose identity does not depend on a path; any other dataset's classifier is keyed by its path."""


def shipped_manifest() -> dict[str, dict[str, Any]]:
    """``{dataset: {"file", "sha256", "command", "test_accuracy", "date", ...}}`` of the shipped classifiers."""
    path = WEIGHTS_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_shipped(path: Path) -> None:
    """Raise a one-line :class:`CheckpointError` when a shipped file does not match its manifest sha256."""
    entry = next((e for e in shipped_manifest().values() if e["file"] == path.name), None)
    if entry is None:
        raise CheckpointError(f"{path}: not listed in {WEIGHTS_DIR / 'manifest.json'}; reinstall gankit")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}... does not match the manifest ({entry['sha256'][:12]}...); "
            f"the file is damaged or was replaced: reinstall gankit"
        )


def shipped_classifier(dataset: str) -> Path | None:
    """The verified shipped classifier of ``dataset`` (fashion-mnist, mnist), or None when none is shipped."""
    entry = shipped_manifest().get(dataset)
    if entry is None:
        return None
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{path}: the shipped {dataset} classifier is missing; reinstall gankit")
    verify_shipped(path)
    return path


def classifier_key(dataset: str, data_path: str | Path | None = None) -> str:
    """File stem of a user-trained classifier: the dataset name, plus a hash of the data path for
    generic datasets (``idx``, ``folder``, ...), whose name alone says nothing about the images."""
    if dataset in NAMED_DATASETS or not data_path:
        return dataset
    return f"{dataset}-{hashlib.sha256(str(Path(data_path).resolve()).encode()).hexdigest()[:8]}"


def default_classifier_path(dataset: str, data_path: str | Path | None = None) -> Path:
    """Where ``gankit train classifier`` writes by default: ``$XDG_CACHE_HOME/gankit/classifiers/<key>.pt``."""
    from gankit.paths import cache_dir

    return cache_dir() / "classifiers" / f"{classifier_key(dataset, data_path)}.pt"


def user_classifier_paths(dataset: str, data_path: str | Path | None = None) -> list[Path]:
    """Where user-trained classifiers are looked for: ``$GANKIT_DATA/classifiers/``, then the cache."""
    name = f"{classifier_key(dataset, data_path)}.pt"
    env = os.environ.get("GANKIT_DATA")
    return ([Path(env) / "classifiers" / name] if env else []) + [default_classifier_path(dataset, data_path)]


USER_SOURCES = ("installed", "user-trained")


@dataclasses.dataclass(frozen=True)
class ClassifierChoice:
    """A classifier file, where it came from and what it is.

    ``source``: ``given`` (``--classifier PATH``), ``installed`` (a user-trained one made the default
    with ``gankit train classifier --install``), ``user-trained`` (used because nothing is shipped for
    the dataset, or asked for with ``--classifier user``) or ``shipped``.
    """

    path: Path
    source: str
    dataset: str = ""
    accuracy: float | None = None
    """Its test (or val) accuracy as recorded when it was trained."""
    sha256: str = ""
    ignored: tuple[Path, ...] = ()
    """User-trained classifiers found but not used (the shipped one wins unless they are installed)."""

    @property
    def accuracy_text(self) -> str:
        return f"test accuracy {self.accuracy:.4f}" if self.accuracy is not None else "test accuracy unknown"

    def tag(self) -> str:
        """Short identity for result lines: ``fashion-mnist.pt: shipped, test accuracy 0.9139``."""
        return f"{self.path.name}: {self.source}, {self.accuracy_text}"

    def describe(self) -> str:
        """One line for the log, e.g. ``the shipped classifier .../fashion-mnist.pt (sha256 verified, ...)``."""
        if self.source == "shipped":
            line = f"the shipped classifier {self.path} (sha256 verified, {self.accuracy_text})"
        elif self.source == "installed":
            line = f"the installed user-trained classifier {self.path} ({self.accuracy_text}; replaces the shipped one)"
        elif self.source == "user-trained":
            line = f"the user-trained classifier {self.path} ({self.accuracy_text})"
        else:
            line = f"the classifier {self.path} ({self.accuracy_text})"
        for p in self.ignored:
            line += f"; not used: the user-trained {p} (pass --classifier user to use it)"
        return line


class ClassifierFileError(CheckpointError, ValueError):
    """A classifier file cannot be used; one line naming the file and the fix.

    Also a ValueError, so a periodic evaluation during training logs it and training goes on.
    """


def classifier_record(path: str | Path) -> dict[str, Any]:
    """The saved dict of a classifier file (weights_only load); :class:`ClassifierFileError` naming
    the file and the fix when it is missing, truncated, or not a gankit classifier."""
    path = Path(path)
    fix = f"delete it (rm {path}) and make a new one with: gankit train classifier --data DATA"
    if not path.is_file():
        raise ClassifierFileError(f"{path}: no such classifier file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, garbage: torch's own message (about weights_only, zip records) misleads here
        raise ClassifierFileError(
            f"{path}: damaged classifier file (truncated, or not a PyTorch checkpoint); {fix}"
        ) from None
    if not isinstance(state, dict) or state.get("kind") != "classifier" or "model" not in state:
        raise ClassifierFileError(f"{path}: not a gankit classifier checkpoint; {fix}")
    return state


def _choice(path: Path, source: str, ignored: tuple[Path, ...] = ()) -> ClassifierChoice:
    state = classifier_record(path)
    acc = state.get("test_accuracy")
    dataset = str(state.get("dataset") or state.get("config", {}).get("name", ""))
    return ClassifierChoice(
        path, source, dataset, float(acc) if isinstance(acc, int | float) else None, _sha256(path), ignored
    )


def locate_classifier(
    dataset: str, path: str | Path | None = None, *, data_path: str | Path | None = None
) -> ClassifierChoice | None:
    """The classifier for ``dataset``; None when there is none.

    ``path``: a file (it must exist), or ``shipped`` / ``user`` to ask for the shipped or the
    user-trained one (:func:`user_classifier_paths`). Without it: for a dataset with a shipped
    classifier (fashion-mnist, mnist) the shipped one, unless a user-trained one was installed
    (``gankit train classifier --install``), so a quick throwaway classifier never changes later
    numbers; for any other dataset the user-trained one, the only kind there is.
    """
    user_paths = user_classifier_paths(dataset, data_path)
    found = [p for p in user_paths if p.is_file()]
    if path is not None and str(path) in ("shipped", "user"):
        if str(path) == "shipped":
            shipped = shipped_classifier(dataset)
            if shipped is None:
                known = ", ".join(shipped_manifest()) or "none"
                raise ClassifierFileError(f"--classifier shipped: none is shipped for '{dataset}' (shipped: {known})")
            return _choice(shipped, "shipped")
        if not found:
            raise ClassifierFileError(
                f"--classifier user: no user-trained classifier for '{dataset}' (looked at "
                f"{', '.join(str(p) for p in user_paths)}); make one: gankit train classifier --data "
                f"{data_path or dataset}"
            )
        return _choice(found[0], "user-trained")
    if path is not None:
        if not Path(path).is_file():
            raise ClassifierFileError(f"--classifier {path}: no such file (or: shipped, user)")
        return _choice(Path(path), "given")
    shipped = shipped_classifier(dataset)
    if shipped is None:
        return _choice(found[0], "user-trained") if found else None
    installed = next((p for p in found if classifier_record(p).get("installed")), None)
    if installed is not None:
        return _choice(installed, "installed")
    return _choice(shipped, "shipped", tuple(found))


def find_classifier(
    dataset: str, path: str | Path | None = None, *, data_path: str | Path | None = None
) -> Path | None:
    """The path of :func:`locate_classifier`'s choice (None when there is none)."""
    choice = locate_classifier(dataset, path, data_path=data_path)
    return choice.path if choice else None
