"""The test session never touches the user's data, caches or ONNX exports (tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_env() -> dict[str, str | None]:
    """What a module-scoped fixture (set up before each test's own isolation) sees."""
    return {k: os.environ.get(k) for k in ("GANKIT_DATA", "XDG_CACHE_HOME", "GANKIT_ENGINE")}


def test_module_fixtures_are_sealed_off_too(
    module_env: dict[str, str | None], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = Path(tmp_path_factory.getbasetemp())
    for key in ("GANKIT_DATA", "XDG_CACHE_HOME"):
        assert module_env[key] is not None and Path(module_env[key]).is_relative_to(base), key
    assert module_env["GANKIT_ENGINE"] == "torch"


def test_each_test_gets_its_own_folders(tmp_path: Path) -> None:
    assert Path(os.environ["XDG_CACHE_HOME"]) == tmp_path / "xdg_cache"
    assert Path(os.environ["GANKIT_DATA"]) == tmp_path / "gankit_data_env"
