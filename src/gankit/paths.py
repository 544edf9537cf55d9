"""Where gankit keeps things on disk: one rule for every cache and built data set.

- ``cache_dir()``: ``$XDG_CACHE_HOME/gankit`` (``~/.cache/gankit`` when unset). Decoded-data caches
  (``storage/``), reference statistics (``stats/``), ONNX exports of the onnxruntime engine
  (``onnx/``), user classifiers (``classifiers/``) and, unless
  ``$GANKIT_DATA`` is set, downloaded and built data sets live here.
- ``data_root()``: ``$GANKIT_DATA`` if set, else ``cache_dir()``: where data sets are downloaded or built
  (``fashion-mnist/``, ``facades/``) and looked for.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gankit``, else ``~/.cache/gankit``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "gankit"


def data_root() -> Path:
    """``$GANKIT_DATA`` if set, else :func:`cache_dir`: where built or downloaded data sets are kept."""
    env = os.environ.get("GANKIT_DATA")
    return Path(env).expanduser() if env else cache_dir()


def file_stat(path: Path) -> tuple[int, ...] | None:
    """What identifies the contents of ``path`` without reading it: (device, inode, size, mtime_ns,
    ctime_ns), of which a rewritten or replaced file changes one; None if it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
