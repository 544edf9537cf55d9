"""Loading trained generators and sampling from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.config import Config
from gankit.data.base import DataInfo
from gankit.families import Family, get_family
from gankit.training.checkpoint import CheckpointError, safe_load


@dataclass
class LoadedGenerator:
    G: nn.Module
    cfg: Config
    info: DataInfo
    family: Family
    path: Path

    @property
    def num_classes(self) -> int:
        """Classes the generator is conditioned on (0 for unconditional models)."""
        return self.info.num_classes if self.family.conditional else 0


def resolve_checkpoint(path: str | Path, *, prefer_best: bool = False) -> Path:
    """A run folder -> its generator snapshot (``G_best.pt`` if asked and present, else ``G_last.pt``)."""
    p = Path(path)
    if p.is_dir():
        ckpt = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        names = (["G_best.pt"] if prefer_best else []) + ["G_last.pt", "last.pt"]
        for name in names:
            if (ckpt / name).is_file():
                return ckpt / name
        raise CheckpointError(f"{p}: no generator checkpoint found (looked for {', '.join(names)} in {ckpt})")
    if not p.exists():
        raise CheckpointError(f"{p}: no such run folder or checkpoint file")
    return p


def load_generator(
    path: str | Path, *, device: str | torch.device = "cpu", prefer_best: bool = False, family: str | None = None
) -> LoadedGenerator:
    """Rebuild the generator stored in a run folder or checkpoint file (weights_only load)."""
    ckpt_path = resolve_checkpoint(path, prefer_best=prefer_best)
    state = safe_load(ckpt_path)
    try:
        cfg = Config.from_dict(state["config"], source=str(ckpt_path))
        info = DataInfo(**state["info"])
    except (TypeError, ValueError, KeyError) as e:
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
    return LoadedGenerator(G, cfg, info, fam, ckpt_path)


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
