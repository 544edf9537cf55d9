"""What ``--data`` names: a registered dataset kind, or a folder whose kind is read from its content.

Never a file, and never data found elsewhere in its place: either the kind, or a one-line error.
Reads the registry (:mod:`gankit.data.registry`) only; imports no torch until a folder is looked at.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from gankit.data.errors import DataError
from gankit.data.registry import DATASETS, DatasetEntry, detect_dataset, get_dataset


def _is_idx_file(path: Path) -> bool:
    name = path.name.lower()
    return "idx" in name and "ubyte" in name


def file_not_folder(p: Path, default: str) -> str:
    """Why a file cannot be the data of a preset whose dataset is ``default``, and what to pass.

    The parent folder is suggested only for IDX files: an image's folder may be a photo folder, the
    home folder or /tmp, which training would search recursively."""
    from gankit.data.images import IMAGE_EXTENSIONS

    if _is_idx_file(p):
        return f"is an IDX file, not a folder; pass the folder that holds it: --data {p.parent}"
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        return "is a file, not a folder; pass the folder of the data set"
    paired = default in DATASETS and DATASETS[default].kind == "paired"
    use = "colorize" if default == "colorization" else "translate" if paired else ""
    run = f"; to {use} this one image with a trained run: gankit {use} RUN {p}" if use else ""
    return f"is one image, not a folder of training images; pass a folder that holds only training images{run}"


def paired_layout(p: Path, default: str) -> str:
    """aligned, pair-folders or facades for a folder given to a paired preset."""
    from gankit.data.facades import facades_layout, is_cmp_base
    from gankit.data.paired import pair_dirs

    split_root = next((p / s for s in ("train", "val", "test") if (p / s).is_dir()), p)
    layout = "pair-folders" if pair_dirs(split_root) is not None else "aligned" if split_root != p else ""
    if default != "facades":
        return layout or default
    if not layout or is_cmp_base(p):
        return "facades"  # find_facades builds from CMP, descends into facades/, or explains
    # Facades only when the manifest or the colours say so: another data set keeps the direction asked for.
    return "facades" if facades_layout(p).certain else layout


def _fits(found: DatasetEntry, want: DatasetEntry, data: str) -> str:
    """``found.name`` when a folder recognized as ``found`` can feed a preset whose dataset is ``want``."""
    if found.kind != want.kind:
        if found.accepts == "idx":
            raise DataError(f"--data {data} holds IDX files ({found.name}), not images for an image-to-image preset")
        raise DataError(
            f"--data {data} holds {found.name} data, for {found.kind} families; this preset trains a "
            f"{want.kind} family on {want.name} data"
        )
    if found.accepts == "idx" and want.accepts == "images":
        raise DataError(
            f"--data {data} holds IDX files ({found.name}: 1-channel 28x28), but this preset trains on colour "
            f"image folders; for DCGAN on them use: gankit train dcgan-fmnist --data {data}"
        )
    return found.name


def infer_dataset_name(data: str, default: str) -> tuple[str, str | None]:
    """Interpret ``--data`` for a preset whose dataset is ``default``: ``(data.name, data.path)``.

    A dataset name is taken as it is. A folder's kind is read from its content: a registered kind
    that recognizes it (IDX files are mnist, fashion-mnist or idx by
    :func:`gankit.data.mnist.identify_idx`, whatever the preset's default); for a paired preset, the
    layout (aligned A|B files, a/ + b/ folders per split or once, facades); otherwise an image
    folder. Raises :class:`DataError` (one line) for a path that does not exist, a file, and a
    folder of a kind the preset cannot train on (IDX files for a preset of colour images).
    """
    if data in DATASETS:
        return data, None
    p = Path(data).expanduser()
    if not p.exists():
        close = difflib.get_close_matches(data, DATASETS, n=1, cutoff=0.75)
        hint = f"; did you mean the dataset '{close[0]}'?" if close else f" (datasets: {', '.join(DATASETS)})"
        raise DataError(f"--data {data}: no such file or folder, nor a dataset name{hint}")
    if p.is_file():
        raise DataError(f"--data {data} " + file_not_folder(p, default))
    want = get_dataset(default)
    found = detect_dataset(p)
    if found is not None:
        return _fits(found, want, data), data
    if want.accepts == "pairs":
        return paired_layout(p, default), data
    if want.kind == "paired":  # colour photos (colorization)
        return default, data
    return "folder", data
