"""Sampling from trained noise-to-image generators (``gankit sample``: :func:`sample_to_folder`).

:func:`load_generator` and :class:`LoadedGenerator` live in :mod:`gankit.loading` and are importable
from here too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gankit.config import ConfigError
from gankit.formatting import Spelling, keyword
from gankit.loading import LoadedGenerator, load_generator  # noqa: F401 (re-exported)
from gankit.run import CHECKPOINT_CHOICES, DEFAULT_CHECKPOINT, resolve_checkpoint  # noqa: F401 (re-exported)
from gankit.training.checkpoint import CheckpointError


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
        out.append(loaded(zb, lb).float().cpu())
    return torch.cat(out)


def label_index(label: str | int, class_names: list[str], num_classes: int, spell: Spelling = keyword) -> int:
    """A class given as index or name (``7``, ``"7"`` or ``"Sneaker"``, case-insensitive) -> its index.

    Raises :class:`~gankit.config.ConfigError` naming the classes (and the closest name) otherwise.
    """
    text = str(label)
    if re.fullmatch(r"-?\d+", text):
        k = int(text)
        if not 0 <= k < num_classes:
            raise ConfigError(f"{spell('label', label)}: this model has classes 0-{num_classes - 1}")
        return k
    lowered = [c.lower() for c in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text, class_names, n=1, cutoff=0.5)
    names = ", ".join(f"{i}={c}" for i, c in enumerate(class_names)) or f"0-{num_classes - 1}"
    raise ConfigError(
        f"{spell('label', label)}: not a class of this model"
        + (f"; did you mean '{close[0]}'?" if close else "")
        + f" (classes: {names})"
    )


@dataclass(frozen=True)
class SampledFiles:
    """What :func:`sample_to_folder` wrote."""

    images: list[Path]
    """One PNG per image: ``00000.png``, ... (``00000_class7.png`` for class-conditional models)."""
    grid: Path | None
    """The grid of all images, when one was asked for."""
    note: str
    """Said before sampling (see :func:`balanced_note`), or ""."""


def sample_to_folder(
    source: str | Path | LoadedGenerator,
    n: int,
    out: str | Path,
    *,
    label: int | str | None = None,
    balanced: bool = False,
    seed: int = 0,
    grid: str | Path | None = None,
    overwrite: bool = False,
    device: str | torch.device = "auto",
    engine: str | None = None,
    log: Callable[[str], object] = print,
    spell: Spelling = keyword,
) -> SampledFiles:
    """``n`` images from a noise-to-image run, one PNG each in ``out`` (and a grid at ``grid``).

    Args:
        source: a run folder or checkpoint file (loaded on ``device``), or a loaded generator.
        label: class-conditional models: the class of every image, as index or name
            (:func:`label_index`); otherwise labels are ``balanced`` (0, 1, ..., K-1, 0, ...) or random.
        seed: the noise seed (and, + 1, the seed of random labels): same seed, same images.
        grid: also write all images as one grid image here (.png or .jpg), one column per class
            when ``balanced``.
        overwrite: replace existing images in ``out`` and an existing ``grid``; without it, nothing is
            written when one exists (:class:`~gankit.errors.OutputExists`).
        engine: what runs the generator: ``auto``, ``torch`` or ``onnxruntime`` (:mod:`gankit.engine`;
            None: ``$GANKIT_ENGINE``, else ``auto``); a loaded generator that has one keeps it.
        log: where the engine line and the note about uneven balanced classes go.
        spell: how messages name these settings (:class:`gankit.formatting.Spelling`).

    A second writer into ``out`` refuses while this one writes (:func:`gankit.locks.output_lock`).
    """
    from gankit.data.base import to_uint8
    from gankit.devices import resolve_device
    from gankit.engine import engine_name, use_engine
    from gankit.errors import OutputExists
    from gankit.locks import output_lock
    from gankit.visualize import save_png

    if n <= 0:
        raise ConfigError(f"{spell('n')} must be positive")
    engine_name(engine, spell)  # a typo is refused before the model loads
    if isinstance(source, LoadedGenerator):
        loaded, where = source, source.path
    else:
        loaded, where = load_generator(source, device=resolve_device(device)), Path(source)
    if loaded.family.kind == "paired":
        cmd = "translate" if loaded.family.name == "pix2pix" else "colorize"
        raise CheckpointError(f"{where}: a {loaded.family.name} run turns images into images; use gankit {cmd}")
    k = loaded.num_classes
    if label is not None and not k:
        raise ConfigError(f"{spell('label')}: {where} is not class-conditional (family {loaded.family.name})")
    index = label_index(label, loaded.info.class_names, k, spell) if label is not None else None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{spell('out', out)} is a file, not a folder")
    with output_lock(out, "gankit sample", option=spell("out")):  # a second writer into out refuses meanwhile
        labels = choose_labels(n, k, label=index, balanced=balanced, generator=torch.Generator().manual_seed(seed + 1))
        names = [f"{i:05d}" + (f"_class{int(labels[i])}" if labels is not None else "") + ".png" for i in range(n)]
        existing = [x for x in names if (out / x).exists()]
        if existing and not overwrite:
            raise OutputExists(
                f"{out / existing[0]} exists ({len(existing)} files would be replaced); pass {spell('overwrite', True)}"
            )
        grid = Path(grid) if grid is not None else None
        if grid is not None and grid.exists() and not overwrite:
            raise OutputExists(f"{spell('grid', grid)} exists; pass {spell('overwrite', True)} to replace it")
        note = balanced_note(n, k) if labels is not None and index is None and balanced else ""
        if note:
            log(note)
        if loaded.engine is None:
            use_engine(loaded, engine, log=log, spell=spell)
        images = sample(loaded, n, labels=labels, seed=seed)
        out.mkdir(parents=True, exist_ok=True)
        for x, img in zip(names, to_uint8(images)):
            save_png(img, out / x)
        if grid is not None:
            caption = f"{where.name} ({loaded.family.name})"
            _write_grid(loaded, images, grid, caption=caption, label=index, by_class=balanced, seed=seed)
    return SampledFiles([out / x for x in names], grid, note)


def _write_grid(
    loaded: LoadedGenerator, images: Tensor, grid: Path, *, caption: str, label: int | None, by_class: bool, seed: int
) -> None:
    """The grid of :func:`sample_to_folder`: captioned with the class and seed, one column per class when balanced."""
    from gankit.visualize import save_grid, to_display

    k = loaded.num_classes
    classes = loaded.info.class_names[:k] or [str(i) for i in range(k)]
    if label is not None:  # the class of every image, by name: "class 7 (Sneaker)"
        caption += f", class {label}" + (f" ({classes[label]})" if classes[label] != str(label) else "")
    columns = by_class and k
    save_grid(
        to_display(images),
        grid,
        nrow=k if columns else 8,
        caption=f"{caption}, seed {seed}",
        column_labels=classes if columns else None,
    )
