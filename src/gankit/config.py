"""Typed run configuration, presets and overrides.

A run is described by one :class:`Config` (a tree of dataclasses). Named presets are plain
override dictionaries applied on top of the defaults; ``--config FILE`` and ``--set key=value``
are applied after the preset. The resolved config is written to the run folder and stored in
every checkpoint, so sampling and resuming rebuild exactly the same models.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gankit.locks import atomic_path
from gankit.presets import PRESETS

STORAGES = ("auto", "memory", "mmap", "stream")
"""The values of ``data.storage`` (:mod:`gankit.data.storage`); here, not there, so that validation needs no torch."""

SAMPLING_MODES = ("eval", "train", "standing")
"""The values of ``train.sampling``: how a BatchNorm generator normalizes when it samples
(:mod:`gankit.models.batchnorm`); here, not there, so that validation needs no torch."""


AUGMENT_MODES = ("none", "diffaug", "ada")
"""The values of ``train.augment`` before an optional ``:POLICY`` (:mod:`gankit.augment`)."""

AUGMENT_POLICIES = ("color", "translation", "cutout")
SMOOTHABLE_LOSSES = ("vanilla", "lsgan")
"""The loss.gan values with a target for reals, which loss.label_smoothing lowers (gankit.losses)."""
"""DiffAugment's transforms, in the order they are applied; here, not in :mod:`gankit.augment`, so that
validation needs no torch."""


class ConfigError(ValueError):
    """A config file, preset or ``--set`` override is invalid (unknown key, wrong type, bad value)."""


ARCHITECTURE_KEYS = ("data.resolution", "data.channels", "data.direction")
"""Keys besides ``model.*`` that change the networks' shapes: a run cannot be resumed with them changed."""
_NOT_ARCHITECTURE = ("model.init", "model.init_gain")


@dataclass
class DataConfig:
    """Where the training images come from and how they are shaped."""

    name: str = "fashion-mnist"
    """Dataset kind: fashion-mnist, mnist, folder, celeba, aligned, pair-folders, facades, colorization."""
    path: str | None = None
    """File-system location; ``None`` searches the standard places (see ``gankit list``)."""
    resolution: int = 0
    """Side of the square training images; 0 keeps the dataset's native size."""
    channels: int = 0
    """1 (grayscale) or 3 (RGB); 0 keeps the dataset's own."""
    direction: str = "AtoB"
    """Paired data only: AtoB translates the left/first image into the right/second one."""
    load_size: int = 286
    """Paired data only: images are resized to this, then randomly cropped to ``resolution``."""
    flip: bool = True
    """Random horizontal flips (paired data and colorization)."""
    max_images: int = 0
    """Use at most this many training images (0 = all): a fixed, seeded subset, the same in every run and
    for every dataset kind (:func:`gankit.data.splits.seeded_subset`), recorded in run.json."""
    storage: str = "auto"
    """Where decoded images live: memory (each process's RAM), mmap (a cache file on disk shared by
    all processes), stream (decoded per batch by worker processes) or auto (by size; see
    :mod:`gankit.data.storage`). Batches are the same with every choice."""
    workers: int = 0
    """data.storage=stream: decoding worker processes per training process (0: up to 4)."""


@dataclass
class ModelConfig:
    """Architecture options. Fields that a family does not use are ignored by it."""

    z_dim: int = 64
    g_hidden: list[int] = field(default_factory=lambda: [256, 256])
    d_hidden: list[int] = field(default_factory=lambda: [256, 256])
    ngf: int = 64
    ndf: int = 64
    embed_dim: int = 10
    """cGAN: size of the label embedding concatenated to z and to the image."""
    g_dropout: float = 0.0
    g_dropout_blocks: str = "paper"
    """U-Net only: which decoder blocks get ``g_dropout``: paper (the three nearest the bottleneck, the
    paper's table) or reference (the 8*ngf blocks after the innermost, as the authors' code)."""
    d_dropout: float = 0.0
    norm: str = "batch"
    """batch, instance or none (DCGAN / U-Net / PatchGAN)."""
    d_norm: str = "auto"
    """Discriminator normalization (DCGAN / PatchGAN): auto, batch, instance, layer or none. auto is
    ``norm``, except that with a gradient penalty (loss.gan=wgan-gp) batch norm becomes layer norm, which
    keeps the penalty per-sample (Gulrajani et al. 2017); the log says when that happens."""
    n_layers: int = 3
    """PatchGAN depth; 3 gives the 70x70 receptive field."""
    init: str = "normal"
    """normal (N(0, gain) as in the papers), xavier, kaiming, orthogonal or default (PyTorch's)."""
    init_gain: float = 0.02
    d_spectral_norm: bool = False
    """Spectral normalization (Miyato et al. 2018) of every conv/linear weight of the discriminator, any
    family; its normalization layers stay. Changes D's checkpoint keys, so it cannot change on --resume."""


@dataclass
class LossConfig:
    gan: str = "vanilla"
    """Adversarial loss on logits: vanilla (non-saturating), lsgan, hinge or wgan-gp."""
    gp_weight: float = 10.0
    """Gradient-penalty weight (wgan-gp only)."""
    n_critic: int = 1
    """Discriminator steps per generator step."""
    d_scale: float = 1.0
    """Factor on the discriminator loss (pix2pix halves it)."""
    l1_weight: float = 100.0
    """Image-to-image only: weight of the L1 reconstruction term."""
    label_smoothing: float = 0.0
    """One-sided label smoothing (Salimans et al. 2016): D's target for reals is 1 - this (e.g. 0.1 -> 0.9),
    fakes keep 0; 0 = off. loss.gan vanilla or lsgan only."""
    r1_gamma: float = 0.0
    """R1 gradient penalty on real images (Mescheder et al. 2018), ``r1_gamma / 2 * E[||grad D(real)||^2]``
    with D under the real samples' condition (cGAN label, image-to-image input); 0 = off. Any loss.gan."""
    r1_every: int = 16
    """Lazy R1 as in StyleGAN2: the penalty is applied on every this-many-th discriminator step (from the
    first), scaled by it, so its expected strength is unchanged; 1 = every step."""


@dataclass
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_epochs: int = 0
    """After ``train.epochs`` at constant rate, decay both rates linearly to 0 over this many more epochs."""


@dataclass
class TrainConfig:
    epochs: int = 20
    max_steps: int = 0
    """Stop after this many discriminator steps in total (0 = run all epochs)."""
    max_minutes: float = 0.0
    """Stop (with samples, validation and a checkpoint) after this much training wall time (0 = no limit)."""
    batch_size: int = 100
    seed: int = 0
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    amp: str = "none"
    """Mixed precision: none, bf16 or fp16 (fp16 uses a gradient scaler; CUDA only)."""
    ema_decay: float = 0.0
    """Exponential moving average (EMA) of the generator weights with this constant decay per generator step
    (0 = off, e.g. 0.999); grids, validation and snapshots (so sample, eval, ...) use the average. Exclusive
    with ema_halflife_kimg, which sets the decay by images seen instead."""
    ema_halflife_kimg: float = 0.0
    """EMA of the generator weights with a half-life of this many thousand training images (StyleGAN2-ADA's
    ema_kimg, e.g. 10; 0 = off): a generator step has decay ``0.5 ** (b / (1000 * ema_halflife_kimg))``, b
    being the images D saw since the previous generator step. Exclusive with ema_decay."""
    ema_rampup: float = 0.05
    """With ema_halflife_kimg: the half-life is at most this times the images seen so far, so that early on,
    while G changes fast, the average follows it (StyleGAN2-ADA's ramp-up; 0 = none). ema_decay ignores it."""
    pretrain_epochs: int = 0
    """Image-to-image only: epochs of L1-only generator training before the adversarial phase."""
    log_every: int = 10
    """Steps between rows of stats.jsonl (losses are averaged over the interval)."""
    checkpoint_minutes: float = 10.0
    """Also write the full training state this often within an epoch (0 = only at epoch ends)."""
    eval_every: int = 0
    """Run ``gankit eval`` on the latest snapshot every this many epochs (0 = never); see eval.jsonl."""
    eval_metrics: list[str] = field(default_factory=list)
    """Metrics for eval_every (empty = the family's defaults)."""
    eval_n: int = 5000
    """Samples per periodic evaluation."""
    n_samples: int = 64
    """Images in the fixed-noise (or fixed validation) grid written after every epoch."""
    channels_last: bool = False
    """Convolutional models and batches in NHWC memory layout (often faster for convs, CPU and GPU)."""
    compile: bool = False
    """Run the training steps through torch.compile (slow first steps, faster after)."""
    fast: bool = False
    """One switch for GPU speed: channels_last + torch.compile, and on CUDA bf16 autocast and TF32. On a CPU it
    changes nothing (measured no faster there) and the log says so; train.compile/channels_last still apply."""
    keep_memory: bool = False
    """CPU on Linux: keep memory freed between steps in the process instead of returning it to the OS
    (no page faults on reuse; 1.1-1.3x on pix2pix). It changes glibc's allocator for the whole process,
    which then holds its peak memory until it exits, so it is opt-in for Python callers; the ``gankit``
    command turns it on (``--set train.keep_memory=false`` turns it off)."""
    sampling: str = "standing"
    """How a generator with BatchNorm (dcgan, pix2pix, colorize) samples, in the epoch grids, validation and
    every snapshot (``G_last.pt``, ...) and so in sample, translate, colorize, eval, serve and export:
    ``standing`` (statistics recomputed over a few batches of G's own inputs, written into the snapshot's
    BatchNorm buffers; the default, measured best), ``eval`` (the running statistics, as the course notes) or
    ``train`` (batch statistics and dropout, as the pix2pix paper's test script; ONNX export refuses it).
    Generators without BatchNorm (gan, cgan) sample the same whatever it says."""
    keep_snapshots: int = 5
    """Keep at most this many per-epoch generator snapshots (``G_epochNNNN.pt``), the newest; 0 keeps none.
    ``G_last.pt``, ``G_best.pt`` and the full state are always kept."""
    keep_prev_state: bool = True
    """Keep the previous full training state as ``checkpoints/last.prev.pt`` beside ``last.pt``, the fallback
    should ``last.pt`` be damaged. false keeps ``last.pt`` only (one full state less on disk: 654 MiB for
    pix2pix; smoke tests)."""
    dist_timeout_minutes: float = 60.0
    """Multi-process runs: how long the other processes wait for rank 0's end-of-epoch work (samples,
    validation, ``eval_every`` evaluation) before giving up."""
    on_nonfinite: str = "stop"
    """A NaN/inf loss: stop (keeping the last good checkpoint) or skip (drop the step, halve the learning rates)."""
    sync_bn: bool = False
    """Multi-process runs: synchronize BatchNorm statistics across processes (SyncBatchNorm)."""
    progress: bool = True
    """Show a progress bar when stderr is a terminal (the per-epoch log line is always printed)."""
    augment: str = "none"
    """Differentiable augmentation of D's inputs, real and fake alike (:mod:`gankit.augment`), for small
    data: none, diffaug (DiffAugment with every transform: color, translation, cutout), diffaug:POLICY
    (a comma list of them, e.g. ``diffaug:translation,cutout``) or ada (each transform applied with a
    probability p that adapts to D's overfitting; ``ada:POLICY`` picks the transforms)."""
    ada_target: float = 0.6
    """train.augment=ada: p rises while the mean sign of D's outputs on reals (Karras et al. 2020's r_t,
    in [-1, 1]) is above this, and falls below it; 0.6: D calls 80% of the reals real."""
    ada_kimg: float = 100.0
    """train.augment=ada: how fast p moves: by at most 1 per this many thousand images. The paper's 500
    suits its runs of millions of images; gankit's runs are often 100x shorter."""
    tensorboard: bool = False
    """Also write losses, learning rates, speed, validation/eval metrics, sample grids and hyperparameters
    to ``RUN/tb/`` for TensorBoard (``pip install 'gankit[tensorboard]'``)."""


@dataclass
class Config:
    family: str = "gan"
    preset: str = "gan"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> Config:
        cfg = cls()
        apply_overrides(cfg, _flatten(d), source=source)
        return cfg

    def save(self, path: str | Path) -> None:
        """Write the config as YAML to ``path``, whole or not at all (a temporary file, then renamed)."""
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """The config a run folder's ``config.yaml`` (written by :meth:`save`) holds.

        A file that cannot be read or parsed, or that lacks a section (cut short), is a one-line
        :class:`ConfigError` naming it: never a YAML traceback, never defaults standing in for the
        missing part.
        """
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            reason = _yaml_problem(e)
        else:
            if not isinstance(data, dict):
                reason = f"it holds {type(data).__name__ if data is not None else 'nothing'}, not config sections"
            elif missing := [f.name for f in dataclasses.fields(cls) if f.name not in data]:
                reason = f"no {', '.join(missing)} section: cut short"
            else:
                try:
                    return cls.from_dict(data, source=str(p))
                except (TypeError, AttributeError) as e:
                    reason = str(e).splitlines()[0]
        raise ConfigError(f"{p} is damaged ({reason}); restore it from a backup copy of the run")


def _yaml_problem(e: Exception) -> str:
    """One line for why a YAML file could not be read: the parser's problem and its line, not its drawing."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        return f"{e.problem}" + (f" at line {mark.line + 1}" if mark is not None else "")
    if isinstance(e, UnicodeDecodeError):
        return f"not text: byte {e.start} is not UTF-8"
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted where that is lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                pass
        raise ConfigError(f"{source}: '{key}' must be {tp}, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_coerce(v, item_tp, key, source) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{source}: '{key}' must be {getattr(tp, '__name__', tp)}, got {value!r}")


def config_keys(cfg: Config | None = None) -> list[str]:
    """Every settable dotted key (``train.batch_size``, ...)."""
    return list(_flatten((cfg or Config()).to_dict()))


def _did_you_mean(key: str) -> str:
    keys = config_keys()
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not close:  # 'optim.lr' -> 'optim.lr_g': a prefix of a real key
        close = [k for k in keys if k.startswith(key) and "." in key][:1]
    if not close:  # 'lr_g' -> 'optim.lr_g': the section left out
        close = [k for k in keys if k.split(".")[-1] == key.split(".")[-1]][:1]
    return f"; did you mean '{close[0]}'?" if close else " (see config.yaml in a run folder for all keys)"


def apply_overrides(cfg: Config, overrides: dict[str, Any], *, source: str = "--set") -> Config:
    """Set dotted keys (``train.batch_size``) on ``cfg`` in place, type-checked."""
    for key, value in overrides.items():
        obj: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
                raise ConfigError(f"{source}: unknown config section '{part}' in '{key}'{_did_you_mean(key)}")
            obj = getattr(obj, part)
        name = parts[-1]
        if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
            raise ConfigError(f"{source}: unknown config key '{key}'{_did_you_mean(key)}")
        hints = typing.get_type_hints(type(obj))
        if dataclasses.is_dataclass(hints[name]):
            raise ConfigError(f"{source}: '{key}' is a section; set its fields, e.g. '{key}.<field>=...'")
        setattr(obj, name, _coerce(value, hints[name], key, source))
    return cfg


def parse_set_args(items: list[str]) -> dict[str, Any]:
    """Turn ``["train.lr_g=1e-4", "model.g_hidden=[128,128]"]`` into a dict; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: cannot parse value '{raw}': {e}") from None
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a flat dict of dotted keys."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{p}: cannot parse config: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping of sections, got {type(data).__name__}")
    return _flatten(data)


def diff_configs(old: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for every key that differs."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [(k, a.get(k), b.get(k)) for k in b if a.get(k) != b.get(k)]


def describe_changes(changes: list[tuple[str, Any, Any]]) -> list[str]:
    """Lines for a resumed run's changed keys; a changed architecture key is a :class:`ConfigError`."""
    for key, old, new in changes:
        if (key.startswith("model.") and key not in _NOT_ARCHITECTURE) or key in ARCHITECTURE_KEYS:
            raise ConfigError(
                f"--resume: '{key}' changes the networks ({old!r} -> {new!r}); the saved weights cannot be "
                f"loaded into them. Start a new run (another --out) to train with {key}={new!r}"
            )
    return [f"{key} changed: {old!r} -> {new!r}" for key, old, new in changes]


def make_config(
    preset: str,
    *,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build the config of a run: defaults, then the preset, then a config file, then overrides."""
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, list(PRESETS), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(PRESETS)}"
        raise ConfigError(f"unknown preset or family '{preset}'; {hint}")
    cfg = Config(preset=preset)
    values = dict(PRESETS[preset])
    cfg.family = values.pop("family")
    apply_overrides(cfg, values, source=f"preset {preset}")
    if config_file is not None:
        file_values = load_config_file(config_file)
        file_values.pop("preset", None)
        if "family" in file_values and file_values.pop("family") != cfg.family:
            raise ConfigError(f"{config_file}: family does not match preset '{preset}' ({cfg.family})")
        apply_overrides(cfg, file_values, source=str(config_file))
    if overrides:
        apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def parse_augment(value: str) -> tuple[str, tuple[str, ...]]:
    """``train.augment`` as (mode, transforms): ``"none"`` -> ``("none", ())``, ``"diffaug"`` ->
    ``("diffaug", AUGMENT_POLICIES)``, ``"diffaug:cutout,translation"`` -> ``("diffaug", ("translation",
    "cutout"))`` (in :data:`AUGMENT_POLICIES` order), ``"ada"`` like ``"diffaug"``. A bad word is a
    one-line :class:`ConfigError` naming it."""
    mode, colon, policy = value.partition(":")
    if mode not in AUGMENT_MODES or (mode == "none" and colon):
        close = difflib.get_close_matches(mode, AUGMENT_MODES, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close and close[0] != mode else ""
        raise ConfigError(
            f"train.augment={value!r}: use none, diffaug, diffaug:POLICY or ada (POLICY: a comma list of "
            f"{', '.join(AUGMENT_POLICIES)}){hint}"
        )
    if mode == "none":
        return mode, ()
    if not colon:
        return mode, AUGMENT_POLICIES
    words = [w.strip() for w in policy.split(",")]
    for word in words:
        if word not in AUGMENT_POLICIES:
            close = difflib.get_close_matches(word, AUGMENT_POLICIES, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"the policies are {', '.join(AUGMENT_POLICIES)}"
            what = f"unknown {mode} policy {word!r}" if word else f"an empty name in the {mode} policy"
            raise ConfigError(f"train.augment={value!r}: {what}; {hint}")
    return mode, tuple(p for p in AUGMENT_POLICIES if p in words)


def validate(cfg: Config) -> None:
    """Value checks that types alone do not catch."""
    augment, _ = parse_augment(cfg.train.augment)
    checks = [
        (cfg.train.batch_size > 0, "train.batch_size must be > 0"),
        (cfg.train.epochs >= 0, "train.epochs must be >= 0"),
        (cfg.train.max_steps >= 0, "train.max_steps must be >= 0"),
        (cfg.train.max_minutes >= 0, "train.max_minutes must be >= 0"),
        (cfg.loss.n_critic >= 1, "loss.n_critic must be >= 1"),
        (cfg.loss.r1_gamma >= 0, f"loss.r1_gamma must be >= 0 (0 = off), not {cfg.loss.r1_gamma}"),
        (cfg.loss.r1_every >= 1, f"loss.r1_every must be >= 1 (1 = R1 on every step), not {cfg.loss.r1_every}"),
        (cfg.train.amp in ("none", "bf16", "fp16"), "train.amp must be none, bf16 or fp16"),
        (cfg.train.on_nonfinite in ("stop", "skip"), "train.on_nonfinite must be stop or skip"),
        (cfg.model.norm in ("batch", "instance", "none"), "model.norm must be batch, instance or none"),
        (cfg.model.g_dropout_blocks in ("paper", "reference"), "model.g_dropout_blocks must be paper or reference"),
        (
            cfg.model.d_norm in ("auto", "batch", "instance", "layer", "none"),
            "model.d_norm must be auto, batch, instance, layer or none",
        ),
        (cfg.data.direction in ("AtoB", "BtoA"), "data.direction must be AtoB or BtoA"),
        (cfg.data.channels in (0, 1, 3), "data.channels must be 0, 1 or 3"),
        (
            cfg.data.storage in STORAGES,
            f"data.storage must be {', '.join(STORAGES[:-1])} or {STORAGES[-1]}, not {cfg.data.storage!r}",
        ),
        (cfg.data.workers >= 0, "data.workers must be >= 0"),
        (0.0 <= cfg.train.ema_decay < 1.0, "train.ema_decay must be in [0, 1)"),
        (
            cfg.train.ema_halflife_kimg >= 0,
            f"train.ema_halflife_kimg must be >= 0 (0 = off), not {cfg.train.ema_halflife_kimg}",
        ),
        (cfg.train.ema_rampup >= 0, f"train.ema_rampup must be >= 0 (0 = no ramp-up), not {cfg.train.ema_rampup}"),
        (
            cfg.train.ema_decay == 0 or cfg.train.ema_halflife_kimg == 0,
            f"train.ema_decay={cfg.train.ema_decay:g} and train.ema_halflife_kimg={cfg.train.ema_halflife_kimg:g} "
            "both set the generator EMA; set one of them to 0",
        ),
        (
            0 <= cfg.loss.label_smoothing < 0.5,
            f"loss.label_smoothing must be in [0, 0.5) (0 = off), not {cfg.loss.label_smoothing}",
        ),
        (
            cfg.loss.label_smoothing == 0 or cfg.loss.gan in SMOOTHABLE_LOSSES,
            f"loss.label_smoothing lowers the target for reals, which loss.gan={cfg.loss.gan} does not have; "
            f"use loss.gan {' or '.join(SMOOTHABLE_LOSSES)}, or loss.label_smoothing=0",
        ),
        (cfg.train.keep_snapshots >= 0, "train.keep_snapshots must be >= 0"),
        (
            cfg.train.sampling in SAMPLING_MODES,
            f"train.sampling must be {', '.join(SAMPLING_MODES[:-1])} or {SAMPLING_MODES[-1]}, "
            f"not {cfg.train.sampling!r}",
        ),
        (cfg.train.dist_timeout_minutes > 0, "train.dist_timeout_minutes must be > 0"),
        (0 < cfg.train.ada_target < 1, f"train.ada_target must be in (0, 1), not {cfg.train.ada_target}"),
        (cfg.train.ada_kimg > 0, f"train.ada_kimg must be > 0, not {cfg.train.ada_kimg}"),
        (
            augment != "ada" or cfg.loss.gan != "wgan-gp",
            "train.augment=ada adapts to the sign of D's output on reals, which a wgan-gp critic does not "
            "have; use train.augment=diffaug, or loss.gan vanilla, lsgan or hinge",
        ),
        (
            re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.train.device) is not None,
            f"--device {cfg.train.device}: not a device gankit can use; use auto, cpu, cuda or cuda:N"
            + (
                " (gankit runs on NVIDIA GPUs through CUDA; Apple/Intel GPUs are not supported)"
                if cfg.train.device.split(":")[0] in ("mps", "xpu", "gpu", "npu", "hip")
                else ""
            ),
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
