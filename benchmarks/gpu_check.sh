#!/usr/bin/env bash
# The GPU check (issue 23): one command that installs what is missing, makes synthetic data, and writes
# every figure of a lent GPU to one JSON file (default gpu_check.json). See benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh [--out gpu_check.json] [--steps 30] [--budget 420]
#   bash benchmarks/gpu_check.sh --device cpu --steps 2 --quick --skip-install   # dry run on a CPU
#
# PYTHON picks the interpreter (default: the Makefile's .venv if there is one, else python3).
# gankit itself runs from this checkout's src/ (PYTHONPATH), installed or not.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi

install=1
for arg in "$@"; do
  [ "$arg" = "--skip-install" ] && install=0
done

if [ "$install" = 1 ]; then
  # torch first and pinned (as the Makefile does), so pip does not pick another build
  if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
    "$PY" -m pip install --quiet torch==2.14.1 torchvision==0.29.1 \
      || echo "warning: could not install torch; the stages will say what is missing" >&2
  fi
  # gankit's dependencies, the export extra (onnxruntime engine), scikit-image (the colorize
  # baseline's Lab conversion) and pytest (the CUDA tests); pip only runs when one is missing
  if ! "$PY" -c "import numpy, PIL, yaml, tqdm, matplotlib, torchmetrics, onnx, onnxscript, onnxruntime, skimage, pytest" 2>/dev/null; then
    "$PY" -m pip install --quiet -e '.[export]' pytest scikit-image \
      || echo "warning: pip install failed; the stages will say what is missing" >&2
  fi
fi

export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py "$@"
