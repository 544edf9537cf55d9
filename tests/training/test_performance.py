"""Speed options: what they resolve to per device, that they keep results, and the allocator switch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gankit.config import ConfigError, TrainConfig
from gankit.training import performance
from gankit.training.loop import Trainer

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _plan(device: torch.device, convolutional: bool = True, **train: object) -> performance.SpeedPlan:
    return performance.plan(dataclasses.replace(TrainConfig(), **train), device, convolutional=convolutional)


def test_fast_on_cpu_adds_nothing_and_says_so_once() -> None:
    """Measured on CPU, compile and channels_last brought nothing (README "Speed"): --fast says so."""
    p = _plan(CPU, fast=True)
    assert (p.channels_last, p.compile, p.amp, p.tf32) == (False, False, "none", False)
    assert p.warnings == (performance.FAST_ON_CPU,)
    assert "changes nothing on CPU" in p.warnings[0] and "train.compile=true" in p.warnings[0]
    # the explicit options still apply on a CPU, and say nothing
    p = _plan(CPU, fast=True, compile=True, channels_last=True)
    assert (p.channels_last, p.compile) == (True, True)


def test_fast_on_cpu_cli_run_does_not_compile_nor_print_cuda_probe(tmp_path: Path, tiny_idx: Path) -> None:
    """A short ``gankit train --fast`` on CPU: one line about --fast, no compiling, no CUDA-toolkit noise."""
    from conftest import GANKIT, subprocess_env

    cmd = [*GANKIT, "train", "gan", "--data", str(tiny_idx), "--out", str(tmp_path / "run"), "--max-steps", "2"]
    cmd += ["--batch-size", "10", "--device", "cpu", "--fast", "--no-progress"]
    env = subprocess_env(tmp_path, tmp_path / "mpl")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor")  # a compile leaves its kernels here
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (res.stdout + res.stderr).count("changes nothing on CPU") == 1
    assert "CUDA runtime" not in res.stderr and "CUDA_HOME" not in res.stderr, res.stderr[-2000:]
    assert not [p for p in (tmp_path / "inductor").rglob("*") if p.is_file()]  # nothing compiled


def test_compile_silences_only_the_cuda_probe_line() -> None:
    """torch.compile on a GPU-less machine with a CUDA toolkit folder logs "No CUDA runtime is found"
    (torch.utils.cpp_extension, imported by Inductor); a compiling plan drops that line, nothing else."""
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("torch.utils.cpp_extension")
    logger.addHandler(handler)
    try:
        performance.apply(_plan(CPU, compile=True, keep_memory=False))
        logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert seen == ["something else"]


def test_fast_on_cuda_adds_bf16_and_tf32_unless_amp_is_chosen() -> None:
    p = _plan(CUDA, fast=True)
    assert (p.channels_last, p.compile, p.amp, p.tf32, p.keep_memory) == (True, True, "bf16", True, False)
    assert _plan(CUDA, fast=True, amp="fp16").amp == "fp16"


def test_channels_last_only_for_convolutional_models() -> None:
    assert not _plan(CPU, convolutional=False, fast=True).channels_last
    assert not _plan(CPU, convolutional=False, channels_last=True).channels_last
    assert _plan(CPU, channels_last=True).channels_last


def test_plain_plan_changes_nothing() -> None:
    p = _plan(CPU, keep_memory=False)
    assert (p.channels_last, p.compile, p.amp, p.tf32, p.keep_memory, p.warnings) == (
        False,
        False,
        "none",
        False,
        False,
        (),
    )


def test_fp16_needs_cuda() -> None:
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        _plan(CPU, amp="fp16")


def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: False)
    (warning,) = _plan(CPU, amp="bf16").warnings
    assert "slower" in warning and "train.amp=none" in warning
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: True)
    assert _plan(CPU, amp="bf16").warnings == ()


def test_trainer_logs_the_bf16_warning(tmp_path: Path, tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: False)
    lines: list[str] = []
    Trainer(tiny_cfg("gan", tmp_path, **{"train.amp": "bf16"}), tmp_path / "run", log=lines.append)
    assert any(line.startswith("warning: train.amp=bf16") for line in lines)


# The allocator switch is process-wide, so it is measured in fresh interpreters: "steps" that each
# allocate and free 1-32 MiB tensors, as a training step does with its activations.
_FAULTS = """
import json, resource, sys
import torch
from gankit.training import performance
took = performance.keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    xs = [torch.ones(n, 1 << 18) for n in (1, 2, 4, 8, 16, 32)]
    del xs
for _ in range(6):  # warm-up: the heap settles
    step()
before = faults()
for _ in range(6):
    step()
print(json.dumps({"took": took, "faults": faults() - before}))
"""


@pytest.mark.skipif(not performance._is_glibc(), reason="glibc's mallopt only")
def test_keep_freed_memory_removes_page_faults_on_reuse() -> None:
    def run(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    default, kept = run("default"), run("keep")
    assert kept["took"] is True
    block_pages = (32 << 20) // 4096
    assert default["faults"] >= 6 * block_pages // 2  # glibc maps the 32 MiB block afresh every step
    assert kept["faults"] < block_pages // 10  # now every step reuses the same memory


def _losses(cfg, tmp_path: Path, name: str) -> list[dict[str, float]]:
    tr = Trainer(cfg, tmp_path / name, log=lambda m: None)
    tr.fit()
    rows = [json.loads(line) for line in (tmp_path / name / "stats.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith(("d_", "g_"))} for r in rows]


def test_fast_path_gives_the_losses_of_the_plain_path(tmp_path: Path, tiny_cfg) -> None:
    """channels_last + torch.compile (what train.fast adds on a GPU; asked for explicitly here, since
    train.fast adds nothing on CPU) reorder float sums, nothing else: over four DCGAN steps (D and G
    updates, BatchNorm) every logged loss agrees with the plain run to 1e-4 (measured: 2.4e-7)."""
    common = {"train.batch_size": 10, "train.max_steps": 4, "train.log_every": 1, "train.n_samples": 4}
    plain = _losses(tiny_cfg("dcgan", tmp_path, **common), tmp_path, "plain")
    fast_options = {"train.compile": True, "train.channels_last": True}
    fast = _losses(tiny_cfg("dcgan", tmp_path, **common, **fast_options), tmp_path, "fast")
    assert len(plain) == len(fast) == 4
    for a, b in zip(plain, fast, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], abs=1e-4, rel=1e-4), k
