#!/usr/bin/env bash
# On a lent GPU machine: the Triton tests for real (not interpreted), then the
# benchmark. That machine has torch, triton, torchvision, timm, networkx, rich
# and pytest but not lark or pydantic: carry their wheels in .whl/ (BENCHMARKS.md
# says how to fetch them). Arguments go to bench/bench.py, e.g. --nets googlenet.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation \
    --upgrade --target /tmp/site .whl/*.whl .
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider tests/test_triton.py tests/test_passes.py
python3 bench/bench.py --device cuda --out-dir "${OUT:-bench/results}" "$@"
