"""Everything gankit keeps on disk outside run folders: what ``gankit cache`` lists and clears.

The one rule of :mod:`gankit.paths`: caches live in ``cache_dir()`` (``$XDG_CACHE_HOME/gankit``, else
``~/.cache/gankit``); data sets are built or downloaded into ``data_root()`` (``$GANKIT_DATA`` if set,
else the same cache folder). Kinds, by the name ``gankit cache --clear`` takes:

- ``storage``: decoded-data caches (:mod:`gankit.data.storage`); the next run rebuilds what it needs.
- ``stats``: reference statistics of real data (:mod:`gankit.evaluate`); recomputed by the next eval.
- ``onnx``: ONNX exports of snapshots for the onnxruntime engine (:mod:`gankit.engine`); exported
  again when next needed.
- ``profiles``: shapes and memory per pixel of image-to-image generators (:mod:`gankit.loading`), one
  small file per architecture; profiled again when next loaded.
- ``classifiers``: classifiers trained with ``gankit train classifier`` (:mod:`gankit.metrics.classifier`).
- ``facades``: the facades pairs built from the CMP base set, or the downloaded release
  (:mod:`gankit.data.facades`), in the cache or in ``$GANKIT_DATA``.
- ``fashion-mnist``, ``mnist``, ``celeba``, ...: data sets in the cache folder (downloaded there).

In ``$GANKIT_DATA`` only what gankit itself built or downloaded is listed and removable: data you
placed there yourself are never removed. Without a name, ``--clear`` removes the kinds the next run
rebuilds by itself (``storage``, ``stats``, ``onnx``, ``profiles``); everything else is removed only when named.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gankit.paths import cache_dir, data_root

TITLES = {
    "storage": "decoded-data caches",
    "stats": "reference statistics (gankit eval)",
    "onnx": "ONNX exports the onnxruntime engine runs (--engine)",
    "profiles": "profiles of image-to-image generators (memory estimates)",
    "classifiers": "classifiers you trained (gankit train classifier)",
    "facades": "facades pairs",
}
"""The kinds gankit knows by folder name in the cache, with what ``gankit cache`` calls them."""
REBUILT = ("storage", "stats", "onnx", "profiles")
"""Kinds the next run rebuilds without network or work of yours: what a bare ``--clear`` removes."""
OLD_STORAGE = "folders"
"""gankit <= 0.2 kept one .pt file per image folder here; listed and cleared with ``storage``."""


@dataclass
class Kept:
    """One kind of thing gankit keeps on disk, in one folder."""

    kind: str
    """The name ``gankit cache --clear`` takes (a subfolder of the cache, or a data set)."""
    path: Path
    bytes: int = 0
    files: int = 0
    note: str = ""
    """Where it came from, e.g. "built from /data/cmp-facades-base" or "downloaded from URL"."""
    paths: list[Path] = field(default_factory=list)
    """Everything :func:`clear_kind` removes for this kind (``path``, plus an old-format folder)."""

    @property
    def title(self) -> str:
        """What the listing calls it."""
        return TITLES.get(self.kind, "data set" if self.kind != "other" else "other")


def folder_size(path: Path) -> tuple[int, int]:
    """``(bytes, files)`` below ``path`` (links are counted, not followed); ``(0, 0)`` if it is missing."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size, 1
    total = files = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            else:
                try:
                    total += e.stat(follow_symlinks=False).st_size
                    files += 1
                except OSError:
                    pass
    return total, files


def _facades_origin(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    from gankit.data.facades import facades_origin  # imports the image stack; only when there is a folder

    return facades_origin(folder)


def list_kept() -> list[Kept]:
    """Every kind gankit keeps: the known kinds of the cache folder (present or not), then anything
    else in it, then what gankit built or downloaded into ``$GANKIT_DATA``."""
    root = cache_dir()
    out: list[Kept] = []
    for kind in TITLES:
        k = Kept(kind, root / kind, paths=[root / kind])
        if kind == "storage":
            k.paths.append(root / OLD_STORAGE)
        if kind == "facades" and (origin := _facades_origin(k.path)):
            k.note = origin
        out.append(k)
    known = {*TITLES, OLD_STORAGE}
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name in known or entry.name.startswith("."):
            continue
        kind = entry.name if entry.is_dir() else "other"
        out.append(Kept(kind, entry, paths=[entry]))
    data = data_root()
    if data.resolve() != root.resolve():  # $GANKIT_DATA: only gankit's own builds and downloads
        facades = data / "facades"
        if origin := _facades_origin(facades):
            out.append(Kept("facades", facades, note=origin, paths=[facades]))
    for k in out:
        for p in k.paths:
            b, n = folder_size(p)
            k.bytes, k.files = k.bytes + b, k.files + n
    # an empty known kind is listed (it says where that kind would go) unless another place has it
    return [k for k in out if k.files or sum(j.kind == k.kind for j in out) == 1]


def clear_kind(kind: str) -> tuple[int, list[Path], list[str]]:
    """Remove everything of ``kind``: ``(bytes freed, folders removed, busy)``.

    Storage caches are removed one by one under their locks (:func:`gankit.data.storage.clear_caches`);
    ``busy`` names those another process is building, which are left alone.
    """
    if kind == "storage":
        from gankit.data.storage import clear_caches

        gone, held = clear_caches()
        return sum(e.bytes for e in gone), [e.path for e in gone], [e.path.name for e in held]
    freed, removed = 0, []
    for k in list_kept():
        if k.kind != kind:
            continue
        for p in k.paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
            else:
                continue
            removed.append(p)
        freed += k.bytes
    return freed, removed, []
