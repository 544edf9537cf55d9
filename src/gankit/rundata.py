"""What a run recorded about its data, and where those data are on this machine now.

A run folder says what it trained on twice: the config asks for data (``data.name``, ``data.path``)
and the run record (``run.json``'s ``dataset`` entry, also each checkpoint's ``DataInfo``) says what
was actually read (``source``) and what the user named when that differs (``given``: the CMP folder
a facades set was built from into the cache). The report, ``gankit eval`` and ``gankit serve`` read
both through :func:`run_data`, and find the data again with :meth:`RunData.local_config`, which never
downloads or builds anything. No torch import: the CLI may use it before loading a model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gankit.config import DataConfig
from gankit.formatting import data_source
from gankit.paths import cache_dir

if TYPE_CHECKING:
    from gankit.data.base import DataInfo


@dataclass(frozen=True)
class RunData:
    """The data of one run: what its config asked for and what its record says was read."""

    name: str
    """The kind of data actually loaded (``DataInfo.dataset``), else the config's ``data.name``."""
    source: str
    """Where they were read: an absolute folder, or e.g. "torchvision download into ..."; "" if unknown."""
    given: str
    """What ``data.path`` named when it is not ``source`` (a CMP folder built into the cache), else ""."""
    config: DataConfig
    """The run's ``data`` section."""

    def describe(self) -> str:
        """``fashion-mnist (/data/fmnist)`` or ``facades (/data/CMP_base (data in ~/.cache/gankit/facades))``."""
        where = data_source(self.source, self.given)
        return f"{self.name} ({where})" if where else self.name

    @property
    def local_source(self) -> str:
        """``source`` when it is a folder on this machine, else ""."""
        return self.source if self.source and Path(self.source).is_dir() else ""

    def local_config(self) -> tuple[DataConfig | None, str]:
        """The run's data config pointing at data present on this machine, or ``(None, why not)``.

        In order: the folder the data were built into from ``data.path`` (``given``: nothing is
        rebuilt); ``data.path`` itself (an error when it is gone, as the config names it); the
        recorded ``source``; for facades, ``$GANKIT_DATA/facades`` then the cache, where training
        looks. Nothing is downloaded.
        """
        data = self.config
        if self.given and self.local_source:
            return dataclasses.replace(data, path=self.source), ""
        if data.path:
            if not Path(data.path).expanduser().exists():
                return None, f"the val data are not at {data.path} (data.path in config.yaml)"
            return data, ""
        if self.local_source:
            return dataclasses.replace(data, path=self.source), ""
        if data.name == "facades":
            env = os.environ.get("GANKIT_DATA")
            for c in [*([Path(env).expanduser() / "facades"] if env else []), cache_dir() / "facades"]:
                if c.is_dir():
                    return dataclasses.replace(data, path=str(c)), ""
            return None, "the facades data set is not on this machine (it would have to be downloaded)"
        return None, f"the run's config has no data.path for dataset '{data.name}'"


def run_data(record: Mapping[str, Any], config: DataConfig | None = None, info: DataInfo | None = None) -> RunData:
    """The :class:`RunData` of a run from its record (``run.json`` as a dict; ``{}`` when missing or
    damaged), its config's ``data`` section (None: the record alone), and its checkpoint's ``info``
    for what the record lacks."""
    entry = record.get("dataset") if isinstance(record, Mapping) else None
    entry = entry if isinstance(entry, Mapping) else {}
    fallback = {"name": info.dataset, "source": info.source, "given": info.given} if info is not None else {}

    def read(key: str) -> str:
        value = entry.get(key)
        return value if isinstance(value, str) and value else fallback.get(key, "")

    name = read("name") or (config.name if config is not None else "")
    return RunData(name, read("source"), read("given"), config if config is not None else DataConfig(name=name))
