"""gankit.rundata: one reading of what a run recorded about its data, shared by report, eval and serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from gankit.config import DataConfig
from gankit.data.base import DataInfo
from gankit.rundata import run_data


def test_the_record_comes_first_then_the_checkpoint_then_the_config(tmp_path: Path) -> None:
    info = DataInfo(channels=3, resolution=32, dataset="aligned", source=str(tmp_path / "ckpt"))
    record = {"dataset": {"name": "facades", "source": str(tmp_path / "built"), "given": str(tmp_path / "CMP")}}
    data = run_data(record, DataConfig(name="facades", path=str(tmp_path / "CMP")), info)
    assert (data.name, data.source, data.given) == ("facades", str(tmp_path / "built"), str(tmp_path / "CMP"))
    assert data.describe() == f"facades ({tmp_path / 'CMP'} (data in {tmp_path / 'built'}))"
    # a damaged or missing record: the checkpoint's DataInfo, then the config's name
    assert run_data({"dataset": []}, DataConfig(name="mnist"), info).source == str(tmp_path / "ckpt")
    assert run_data([], DataConfig(name="mnist")).describe() == "mnist"  # type: ignore[arg-type]


def test_local_config_finds_the_data_without_building_or_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, pairs = tmp_path / "built", tmp_path / "pairs"
    built.mkdir()
    pairs.mkdir()
    # a facades set built from a CMP folder that is gone since: the built pairs, not "not at data.path"
    cmp = DataConfig(name="facades", path=str(tmp_path / "CMP"))
    record = {"dataset": {"name": "facades", "source": str(built), "given": str(tmp_path / "CMP")}}
    cfg, why = run_data(record, cmp).local_config()
    assert cfg is not None and cfg.path == str(built) and not why
    # data read where given: data.path decides, and a moved folder is named
    aligned = DataConfig(name="aligned", path=str(tmp_path / "gone"))
    cfg, why = run_data({"dataset": {"source": str(pairs)}}, aligned).local_config()
    assert cfg is None and why == f"the val data are not at {tmp_path / 'gone'} (data.path in config.yaml)"
    # facades found by search: $GANKIT_DATA, then the cache of $XDG_CACHE_HOME (never ~/.cache when it is set)
    monkeypatch.delenv("GANKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg, why = run_data({}, DataConfig(name="facades")).local_config()
    assert cfg is None and "not on this machine" in why
    (tmp_path / "xdg" / "gankit" / "facades").mkdir(parents=True)
    cfg, _ = run_data({}, DataConfig(name="facades")).local_config()
    assert cfg is not None and cfg.path == str(tmp_path / "xdg" / "gankit" / "facades")
