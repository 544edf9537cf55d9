"""Loading a trained generator from a run folder or checkpoint: :func:`load_generator` -> :class:`LoadedGenerator`.

The one loader every tool uses (``sample``, ``translate``, ``colorize``, ``eval``, ``serve``, ``export``,
``report``): it rebuilds the network from the config inside the checkpoint, puts it in the mode its
snapshot samples in, and zeroes the U-Net taps that never saw real input. What runs it fast lives one
floor up (:mod:`gankit.engine`), what uses it further up (:mod:`gankit.sampling`, :mod:`gankit.translate`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.config import SAMPLING_MODES, Config
from gankit.data.base import DataInfo
from gankit.families import Family, get_family
from gankit.inference import GeneratorProfile, profile_generator, zero_unused_taps
from gankit.run import resolve_checkpoint
from gankit.training.checkpoint import CheckpointError, safe_load


class LoadedGenerator(nn.Module):
    """A trained generator with what it was trained on: an ``nn.Module`` that runs ``G``.

    ``G(z)`` / ``G(z, labels)`` (noise models) or ``G(x)`` (image-to-image) call the network;
    ``eval()``, ``train()``, ``to()``, ``parameters()`` and ``state_dict()`` (keys ``G.*``) act on
    it. Besides the network (``.G``): ``cfg`` (the run's config), ``info`` (what it was trained on:
    channels, resolution, classes, dataset), ``family``, ``path`` (the checkpoint file) and, for
    image-to-image generators, ``profile`` (shapes and memory per pixel at the training size), and
    ``sampling``: the mode the snapshot was written for (``train.sampling``: ``standing``, ``eval``
    or ``train``); :meth:`sampling_mode_on` puts the network back in it.

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
    ) -> None:
        super().__init__()
        self.G = G
        self.cfg, self.info, self.family, self.path, self.profile = cfg, info, family, Path(path), profile
        self.sampling = sampling
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
    state = safe_load(ckpt_path)
    try:
        cfg = Config.from_dict(state["config"], source=str(ckpt_path))
        info = DataInfo.from_dict(state["info"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{ckpt_path}: unreadable config inside the checkpoint ({e})") from None
    fam = get_family(cfg.family)
    if family is not None and fam.name != family and not (family in ("pix2pix", "colorize") and fam.kind == "paired"):
        raise CheckpointError(f"{ckpt_path}: a '{fam.name}' checkpoint, but this command needs '{family}'")
    G, _ = fam.build(cfg, info, init=False)
    weights = state["ema"] if isinstance(state.get("ema"), dict) else state["G"]
    try:
        G.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{ckpt_path}: weights do not fit the '{fam.name}' generator ({first})") from None
    G.to(device).eval()
    profile = None
    if fam.kind == "paired":
        profile = profile_generator(G, (info.resolution, info.resolution), info.in_channels)
        if zero_taps:
            zero_unused_taps(G, profile)
    # a full training state ("ema" holds weights, not a flag) has the running statistics: eval
    snapshot = not isinstance(state.get("ema"), dict)
    mode = str(state.get("sampling", "eval")) if snapshot else "eval"
    if mode not in SAMPLING_MODES:
        raise CheckpointError(f"{ckpt_path}: unknown sampling mode '{mode}' (expected {', '.join(SAMPLING_MODES)})")
    return LoadedGenerator(G, cfg, info, fam, ckpt_path, profile, sampling=mode).sampling_mode_on()
