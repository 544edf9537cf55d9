"""Loading a trained generator from a run folder or checkpoint: :func:`load_generator` -> :class:`LoadedGenerator`.

The one loader every tool uses (``sample``, ``translate``, ``colorize``, ``eval``, ``serve``, ``export``,
``report``): it rebuilds the network from the config inside the checkpoint, puts it in the mode its
snapshot samples in, and zeroes the U-Net taps that never saw real input. What runs it fast lives one
floor up (:mod:`gankit.engine`), what uses it further up (:mod:`gankit.sampling`, :mod:`gankit.translate`, ...).

Start-up is kept short (a 256 px pix2pix U-Net holds 54M weights, 217 MB): the network is built on
PyTorch's ``meta`` device, so no time goes into random initial values the snapshot overwrites, and the
snapshot's tensors are assigned into it rather than copied. The profile of an image-to-image generator
comes from a real forward pass at the training size (on meta it gives the same numbers, but PyTorch's
Python meta kernels, LeakyReLU's, import ``torch._dynamo`` on first use, which costs a fresh process
more, 1.1 s on the 2-core CPU, than the real pass it saves, 0.15-0.7 s). It depends on the architecture
only, so it is remembered in ``cache_dir()/profiles`` (``gankit cache``), one JSON file per
architecture, versions of gankit and PyTorch, and later loads read it (0.2 s saved per command for
the 256 px U-Net).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.config import SAMPLING_MODES, Config
from gankit.data.base import DataInfo
from gankit.families import Family, get_family
from gankit.inference import GeneratorProfile, profile_generator, zero_unused_taps
from gankit.locks import atomic_path
from gankit.paths import cache_dir, file_stat
from gankit.run import resolve_checkpoint
from gankit.training.checkpoint import CheckpointError, safe_load


@dataclass(frozen=True)
class SnapshotFile:
    """The checkpoint file a generator was loaded from, as it was when read, and how it was loaded.

    Two loads of one unchanged file with the same options give the same weights: the engine keys its
    cache on this instead of hashing 217 MB of weights again (:func:`gankit.engine.snapshot_key`).
    """

    path: str
    """The file's resolved path."""
    stat: tuple[int, ...]
    """(device, inode, size, mtime_ns, ctime_ns): a rewritten or replaced file differs in one of them."""
    zero_taps: bool
    """Whether the untrained taps were zeroed (:func:`load_generator`'s ``zero_taps``)."""


def _tensor_versions(G: nn.Module) -> tuple[tuple[str, int, int], ...]:
    """Each weight and buffer's name, address and in-place version counter: changes when a tensor is
    replaced or written in place (``load_state_dict``, ``copy_`` under ``no_grad``; not through ``.data``)."""
    return tuple((n, t.data_ptr(), t._version) for n, t in chain(G.named_parameters(), G.named_buffers()))


class LoadedGenerator(nn.Module):
    """A trained generator with what it was trained on: an ``nn.Module`` that runs ``G``.

    ``G(z)`` / ``G(z, labels)`` (noise models) or ``G(x)`` (image-to-image) call the network;
    ``eval()``, ``train()``, ``to()``, ``parameters()`` and ``state_dict()`` (keys ``G.*``) act on
    it. Besides the network (``.G``): ``cfg`` (the run's config), ``info`` (what it was trained on:
    channels, resolution, classes, dataset), ``family``, ``path`` (the checkpoint file) and, for
    image-to-image generators, ``profile`` (shapes and memory per pixel at the training size),
    ``sampling``: the mode the snapshot was written for (``train.sampling``: ``standing``, ``eval``
    or ``train``); :meth:`sampling_mode_on` puts the network back in it; and ``source``: the file as
    :func:`load_generator` read it (None when made otherwise), see :meth:`as_loaded`.

    Calling it (``loaded(z, labels)``, ``loaded(x)``) runs the network through ``engine`` when one is
    attached (:func:`gankit.engine.use_engine`: onnxruntime, or PyTorch's inference path), else
    through ``G`` itself; the tools call it this way, so the engine is chosen in one place.
    """

    def __init__(
        self,
        G: nn.Module,
        cfg: Config,
        info: DataInfo,
        family: Family,
        path: Path,
        profile: GeneratorProfile | None = None,
        sampling: str = "eval",
        source: SnapshotFile | None = None,
    ) -> None:
        super().__init__()
        self.G = G
        self.cfg, self.info, self.family, self.path, self.profile = cfg, info, family, Path(path), profile
        self.sampling, self.source = sampling, source
        self._versions = _tensor_versions(G) if source is not None else ()
        self.engine: Callable[..., Tensor] | None = None
        """What runs the network when this is called (see :mod:`gankit.engine`); None: ``G`` itself."""
        self.train(G.training)  # the wrapper reports (and keeps) the mode the network is in

    def sampling_mode_on(self) -> LoadedGenerator:
        """The network in the mode its snapshot samples in: train mode (batch statistics, dropout) for
        ``train``, else eval mode (for ``standing`` the recomputed statistics are in the buffers)."""
        return self.train(self.sampling == "train")

    def forward(self, *inputs: Tensor | None) -> Tensor:
        """The network's forward pass, through the attached engine: ``(z, labels)`` for noise models
        (``labels`` None when unconditional), ``(x,)`` for image-to-image."""
        return self.engine(*inputs) if self.engine is not None else self.G(*inputs)

    def as_loaded(self) -> SnapshotFile | None:
        """``source`` while the network still holds the weights read from it, else None.

        The weights count as changed once a tensor is replaced or written in place (moving the network
        to another device, ``load_state_dict``, ``copy_`` under ``no_grad``); writes through a tensor's
        ``.data`` escape PyTorch's version counter, and so this check.
        """
        return self.source if self.source is not None and _tensor_versions(self.G) == self._versions else None

    @property
    def num_classes(self) -> int:
        """Classes the generator is conditioned on (0 for unconditional models)."""
        return self.info.num_classes if self.family.conditional else 0

    def extra_repr(self) -> str:
        return f"family={self.family.name}, path={self.path}"


def load_generator(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    which: str | Path | None = None,
    prefer_best: bool = False,
    family: str | None = None,
    zero_taps: bool = True,
) -> LoadedGenerator:
    """Rebuild the generator stored in a run folder or checkpoint file (weights_only load).

    ``which`` picks the snapshot of a run folder (see :func:`resolve_checkpoint`; default
    ``last``). For image-to-image generators, the kernel taps that only ever saw zero padding at
    the training size (and so kept their untrained initial values) are set to zero: outputs at
    the training size are unchanged, and at other sizes those taps no longer add noise
    (:func:`gankit.inference.zero_unused_taps`); ``zero_taps=False`` keeps the weights as saved.

    The network comes in the mode its snapshot was written for (``"sampling"``, from the run's
    ``train.sampling``): eval mode for ``standing`` (the snapshot's BatchNorm buffers hold the
    standing statistics) and ``eval``, train mode for ``train``; snapshots without the field, and
    full training states, in eval mode.
    """
    ckpt_path = resolve_checkpoint(path, which, prefer_best=prefer_best)
    before = file_stat(ckpt_path)
    state = safe_load(ckpt_path, mmap=True)  # what the engine does not use is never read
    after = file_stat(ckpt_path)
    try:
        cfg = Config.from_dict(state["config"], source=str(ckpt_path))
        info = DataInfo.from_dict(state["info"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{ckpt_path}: unreadable config inside the checkpoint ({e})") from None
    fam = get_family(cfg.family)
    if family is not None and fam.name != family and not (family in ("pix2pix", "colorize") and fam.kind == "paired"):
        raise CheckpointError(f"{ckpt_path}: a '{fam.name}' checkpoint, but this command needs '{family}'")
    weights = state["ema"] if isinstance(state.get("ema"), dict) else state["G"]
    G = _rebuild(fam, cfg, info, weights, ckpt_path)
    G.to(device).eval()
    profile = None
    if fam.kind == "paired":
        profile = _profile(G, cfg, info)
        if zero_taps:
            zero_unused_taps(G, profile)
    # a full training state ("ema" holds weights, not a flag) has the running statistics: eval
    snapshot = not isinstance(state.get("ema"), dict)
    mode = str(state.get("sampling", "eval")) if snapshot else "eval"
    if mode not in SAMPLING_MODES:
        raise CheckpointError(f"{ckpt_path}: unknown sampling mode '{mode}' (expected {', '.join(SAMPLING_MODES)})")
    # what was read is the file stat'ed only if nothing replaced or rewrote it meanwhile
    unchanged = before is not None and before == after
    source = SnapshotFile(str(ckpt_path.resolve()), before, zero_taps) if unchanged else None
    loaded = LoadedGenerator(G, cfg, info, fam, ckpt_path, profile, sampling=mode, source=source)
    return loaded.sampling_mode_on()


PROFILES = "profiles"
"""The cache folder's name under :func:`gankit.paths.cache_dir` (and its kind in ``gankit cache``)."""


def _profile(G: nn.Module, cfg: Config, info: DataInfo) -> GeneratorProfile:
    """:func:`profile_generator` of ``G`` at the training size, remembered per architecture (see the
    module docstring). An unreadable memo is profiled over; one that cannot be written is left."""
    import gankit

    of = {
        "gankit": gankit.__version__,
        "torch": torch.__version__,
        "family": cfg.family,
        "model": cfg.to_dict()["model"],
        "info": [info.resolution, info.in_channels, info.channels, info.space],
    }
    text = json.dumps(of, sort_keys=True, default=str)
    memo = cache_dir() / PROFILES / f"{cfg.family}-{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    try:
        kept = json.loads(memo.read_text())
        if kept.get("of") == json.loads(text):
            return GeneratorProfile.from_dict(kept["profile"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # none yet, or torn: profiled below
        pass
    profile = profile_generator(G, (info.resolution, info.resolution), info.in_channels)
    try:
        with atomic_path(memo) as tmp:
            tmp.write_text(json.dumps({"of": of, "profile": profile.to_dict()}, default=str) + "\n")
    except OSError:  # a read-only cache: profiled each time
        pass
    return profile


def _rebuild(fam: Family, cfg: Config, info: DataInfo, weights: dict[str, Tensor], ckpt_path: Path) -> nn.Module:
    """The generator holding ``weights`` (on the CPU); a CheckpointError when the weights do not fit.

    Built on the meta device (no memory, no initialisation), then the weights are assigned into it:
    cast to the dtypes the network declares and made contiguous, as ``load_state_dict`` would copy
    them. A builder that cannot build on meta (it computes with a tensor), or a network that keeps a
    tensor outside its state dict (still on meta after the assignment), is built the ordinary way.
    """
    try:
        with torch.device("meta"):
            G, _ = fam.build(cfg, info, init=False)
    except (RuntimeError, NotImplementedError):  # e.g. .item() of a meta tensor
        G = None
    if G is not None:
        declared = G.state_dict()
        weights = {
            k: v.to(declared[k].dtype).contiguous() if k in declared and isinstance(v, Tensor) else v
            for k, v in weights.items()
        }
        _load_weights(G, weights, fam, ckpt_path, assign=True)
        if not _meta_tensors(G):
            return G
    G, _ = fam.build(cfg, info, init=False)
    _load_weights(G, weights, fam, ckpt_path, assign=False)
    return G


def _load_weights(G: nn.Module, weights: dict[str, Tensor], fam: Family, ckpt_path: Path, *, assign: bool) -> None:
    """``G.load_state_dict(weights)``, its error as a one-line CheckpointError."""
    try:
        G.load_state_dict(weights, assign=assign)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{ckpt_path}: weights do not fit the '{fam.name}' generator ({first})") from None


def _meta_tensors(G: nn.Module) -> list[str]:
    """Names of the tensors of ``G`` (weights, buffers, other tensor attributes) on the meta device."""
    return [
        f"{prefix}.{name}" if prefix else name
        for prefix, m in G.named_modules()
        for name, t in chain(m._parameters.items(), m._buffers.items(), vars(m).items())
        if isinstance(t, Tensor) and t.is_meta
    ]
