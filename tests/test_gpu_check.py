"""benchmarks/gpu_check.sh, dry-run on the CPU (issue 23): every stage runs with tiny sizes and writes
its figures, the CUDA-only parts say why they were skipped. A lent GPU then spends its minutes
measuring, not debugging a script that rotted since the last one."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

FAMILIES = ["gan", "cgan", "dcgan", "pix2pix", "colorize"]
HAVE_ORT = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))


@pytest.mark.slow  # 2.5-3.3 min on a busy 2-core machine: 15 training processes, 5 ONNX exports
def test_gpu_check_dry_run_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    cmd = ["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--steps", "2", "--quick", "--skip-install"]
    cmd += ["--out", str(out), "--work", str(tmp_path / "work")]  # synthetic data in tmp, nothing else read
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "GPU check:" in proc.stdout and "family" in proc.stdout  # the summary table

    report = json.loads(out.read_text())
    assert report["device"] and report["torch"]
    stages = report["stages"]
    assert list(stages) == ["device", *(f"train:{f}" for f in FAMILIES), "inference", "tests"]
    failed = {name: s.get("error") or s.get("skipped") for name, s in stages.items() if not s.get("ok")}
    assert not failed, failed

    rates = stages["device"]["matmul_tflops"]
    assert rates["fp32"] > 0 and rates["bf16"] > 0
    assert rates["tf32"] is None and "CUDA" in rates["tf32_skipped"]

    for family in FAMILIES:
        st = stages[f"train:{family}"]
        for arm in ("seed", "plain", "fast"):
            assert st["arms"][arm]["images_per_s"] > 0, (family, arm)
            assert st["arms"][arm]["peak_mb"] > 0, (family, arm)
        assert st["arms"]["plain"]["tflops"] > 0 and st["arms"]["fast"]["tflops"] > 0, family
        assert st["finite"]["ok"], (family, st["finite"])
        for arm in ("plain", "fast"):
            losses = st["arms"][arm]["losses"]
            assert set(losses) == {"d_loss", "g_loss"}, (family, arm)
            assert all(len(v) == 2 and all(math.isfinite(x) for x in v) for v in losses.values()), (family, arm)
        # on a CPU --fast changes nothing and says so: the two arms train the same model identically
        assert st["arms"]["fast"]["speed"]["warnings"], family
        assert st["agreement"]["ok"] and st["agreement"]["g_loss"]["first_rel_diff"] == 0, family

    for family in FAMILIES:
        engines = stages["inference"]["families"][family]["engines"]
        assert engines["torch"]["ran"] == "torch" and engines["torch"]["images_per_s"] > 0, family
        if HAVE_ORT:
            assert engines["onnxruntime"]["ran"] == "onnxruntime", (family, engines["onnxruntime"])
            assert engines["onnxruntime"]["images_per_s"] > 0 and engines["auto"]["ran"] == "onnxruntime", family
        else:
            assert "gankit[export]" in engines["onnxruntime"]["unavailable"], family

    tests = stages["tests"]["tests"]
    assert len(tests) == 3 and not stages["tests"]["failed"]  # fp16 x 2 losses, sync_bn
    for name, t in tests.items():
        assert t["outcome"] == "skipped" and "CUDA" in t["reason"], (name, t)
