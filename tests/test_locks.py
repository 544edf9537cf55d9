"""gankit.locks: atomic writes that two writers of one file (processes or threads) cannot tear."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from gankit.locks import atomic_save


def test_two_threads_saving_one_file_both_finish_and_leave_one_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both threads are held after writing their temporary file and before renaming it: with one
    temporary name per process, the second thread truncated the first one's file and its rename failed."""
    real_fsync = os.fsync
    both_written = threading.Barrier(2, timeout=10)

    def fsync_when_both_wrote(fd: int) -> None:
        both_written.wait()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_when_both_wrote)
    path = tmp_path / "run" / "stats.pt"
    errors: list[BaseException] = []

    def save(k: int) -> None:
        try:
            atomic_save({"k": k, "x": torch.full((1000,), float(k))}, path)
        except BaseException as e:  # noqa: BLE001 -- reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=save, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    saved = torch.load(path, weights_only=True)
    assert saved["k"] in (1, 2) and torch.equal(saved["x"], torch.full((1000,), float(saved["k"])))
    assert sorted(p.name for p in path.parent.iterdir()) == ["stats.pt"]  # no temporary file left behind
