"""Loading trained generators and sampling from them."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.config import Config
from gankit.data.base import DataInfo
from gankit.families import Family, get_family
from gankit.inference import GeneratorProfile, profile_generator, zero_unused_taps
from gankit.run import CHECKPOINT_CHOICES, DEFAULT_CHECKPOINT, resolve_checkpoint  # noqa: F401 (re-exported)
from gankit.training.checkpoint import CheckpointError, safe_load


class LoadedGenerator(nn.Module):
    """A trained generator with what it was trained on: an ``nn.Module`` that runs ``G``.

    ``G(z)`` / ``G(z, labels)`` (noise models) or ``G(x)`` (image-to-image) call the network;
    ``eval()``, ``train()``, ``to()``, ``parameters()`` and ``state_dict()`` (keys ``G.*``) act on
    it. Besides the network (``.G``): ``cfg`` (the run's config), ``info`` (what it was trained on:
    channels, resolution, classes, dataset), ``family``, ``path`` (the checkpoint file) and, for
    image-to-image generators, ``profile`` (shapes and memory per pixel at the training size).
    """

    def __init__(
        self,
        G: nn.Module,
        cfg: Config,
        info: DataInfo,
        family: Family,
        path: Path,
        profile: GeneratorProfile | None = None,
    ) -> None:
        super().__init__()
        self.G = G
        self.cfg, self.info, self.family, self.path, self.profile = cfg, info, family, Path(path), profile
        self.train(G.training)  # the wrapper reports (and keeps) the mode the network is in

    def forward(self, *inputs: Tensor | None) -> Tensor:
        """The network's forward pass: ``G(z, labels)`` for noise models, ``G(x)`` for image-to-image."""
        return self.G(*inputs)

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
    return LoadedGenerator(G, cfg, info, fam, ckpt_path, profile)


def choose_labels(
    n: int,
    num_classes: int,
    *,
    label: int | None = None,
    balanced: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor | None:
    """Class labels for ``n`` samples: one fixed class, balanced (0,1,...,K-1,0,...) or random."""
    if not num_classes:
        if label is not None:
            raise ValueError("this generator is not class-conditional; drop --label")
        return None
    if label is not None:
        if not 0 <= label < num_classes:
            raise ValueError(f"--label {label} out of range: the model has classes 0..{num_classes - 1}")
        return torch.full((n,), label, dtype=torch.long)
    if balanced:
        return torch.arange(n) % num_classes
    return torch.randint(0, num_classes, (n,), generator=generator)


def balanced_note(n: int, num_classes: int) -> str:
    """What ``--labels balanced`` gives when ``n`` is not a multiple of the classes ("" when it is):
    :func:`choose_labels` cycles 0..K-1, so the first ``n % K`` classes get one image more."""
    if not num_classes or n % num_classes == 0:
        return ""
    per, extra = divmod(n, num_classes)

    def classes(a: int, b: int) -> str:
        return f"class {a} gets" if a == b else f"classes {a}-{b} get"

    fix = f"--n {(per + 1) * num_classes}" + (f" or --n {per * num_classes}" if per else "")
    return (
        f"--labels balanced: {n} images over {num_classes} classes: {classes(0, extra - 1)} {per + 1}, "
        f"{classes(extra, num_classes - 1)} {per} ({fix} gives the same number of each)"
    )


@torch.no_grad()
def sample(
    loaded: LoadedGenerator, n: int, *, labels: Tensor | None = None, seed: int = 0, batch_size: int = 256
) -> Tensor:
    """``n`` images in [-1, 1] from a noise-to-image generator (CPU tensor)."""
    if loaded.family.kind != "noise":
        raise ValueError(f"'{loaded.family.name}' is an image-to-image model: use translate/colorize")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, loaded.cfg.model.z_dim, generator=g)
    device = next(loaded.G.parameters()).device
    out = []
    for s in range(0, n, batch_size):
        zb = z[s : s + batch_size].to(device)
        lb = labels[s : s + batch_size].to(device) if labels is not None else None
        out.append(loaded.G(zb, lb).float().cpu())
    return torch.cat(out)
