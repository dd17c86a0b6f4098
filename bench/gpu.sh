#!/usr/bin/env bash
# On a lent GPU machine: the Triton tests for real (not interpreted), then the
# benchmark. Arguments go to bench/bench.py, e.g. --nets googlenet.
#
# That machine runs its own image's python3 (3.12) with torch, triton,
# torchvision, timm, networkx, rich, pytest and hypothesis, but not lark or
# pydantic: their wheels travel in .whl/ (`bash bench/fetch_wheels.sh` here, then
# carry .whl). This script installs them and the package into $GPU_SH_SITE
# (/tmp/site), puts that first on PYTHONPATH, and runs every Python with
# PYTHONSAFEPATH=1: `python3 -m pytest` and `python3 -c` would otherwise put the
# working directory first on sys.path, where the checkout's incdsl/ (which lacks
# incdsl.compiler, incdsl.grammars and incdsl.specs: pyproject.toml maps them from
# compiler/, grammars/ and specs/) hides the installed package. Note that it also
# keeps bench/ off sys.path for `python3 bench/bench.py`.
#
# GPU_SH_DRY_RUN=1 stops right before the first CUDA call, after installing,
# importing every incdsl module and collecting the tests; `make gpu-sim` runs it
# so on a machine without a GPU, in a venv like that image (bench/gpu_sim.sh).
#
# Exit status: 2 if the wheels are missing or the installed package is not what
# gets imported, 3 if there is no CUDA device, else that of the failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

SITE=${GPU_SH_SITE:-/tmp/site}
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
TESTS=(tests/test_triton.py tests/test_passes.py)

say() { echo "gpu.sh: $*"; }
die() {
    code=$1
    shift
    echo "gpu.sh: error: $*" >&2
    exit "$code"
}

# 1. The carried wheels: each one in bench/gpu-wheels.txt at its version, and no
# package twice (pip refuses to install two versions of one package).
shopt -s nullglob
missing=()
while IFS='=' read -r name _ version; do
    norm=${name,,}
    norm=${norm//[-.]/_}
    found=(.whl/"$norm-$version"-*.whl)
    ((${#found[@]})) || missing+=("$name==$version")
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' bench/gpu-wheels.txt)
if ((${#missing[@]})); then
    die 2 "missing wheels in .whl/: ${missing[*]}." \
        "Run \`bash bench/fetch_wheels.sh\` where pip reaches the registry, and carry .whl."
fi
wheels=(.whl/*.whl)
twice=$(printf '%s\n' "${wheels[@]#.whl/}" | cut -d- -f1 | tr '[:upper:].' '[:lower:]_' | sort | uniq -d)
[[ -z $twice ]] || die 2 "more than one version in .whl/ of: $twice"

# 2. Install them and the package, then import from there and nowhere else.
say "installing ${#wheels[@]} wheels and incdsl into $SITE"
python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
    --no-build-isolation --upgrade --target "$SITE" "${wheels[@]}" .
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"

python3 - "$SITE" <<'EOF' || die 2 "the installed package is not what gets imported (see above)"
import importlib, importlib.metadata as md, os, pkgutil, platform, sys
site = os.path.realpath(sys.argv[1])
import incdsl
modules = ["incdsl"] + [m.name for m in pkgutil.walk_packages(incdsl.__path__, "incdsl.")]
for name in modules:
    module = importlib.import_module(name)
    if not os.path.realpath(module.__file__).startswith(site + os.sep):
        sys.exit(f"{name} comes from {module.__file__}, not from {site}")
for name in ("pydantic", "lark", "typing_extensions"):
    if not os.path.realpath(importlib.import_module(name).__file__).startswith(site + os.sep):
        sys.exit(f"{name} comes from {sys.modules[name].__file__}, not from {site}")
versions = ", ".join(f"{d} {md.version(d)}" for d in (
    "torch", "triton", "torchvision", "timm", "pydantic", "lark", "typing_extensions"))
print(f"gpu.sh: imported {len(modules)} incdsl modules from {site}; Python {platform.python_version()}, {versions}")
EOF

if [[ ${GPU_SH_DRY_RUN:-0} == 1 ]]; then
    collected=$(python3 -m pytest -q -p no:cacheprovider --collect-only "${TESTS[@]}" 2>&1) ||
        die 1 "pytest could not collect ${TESTS[*]}:"$'\n'"$collected"
    say "collected: $(tail -n 1 <<<"$collected")"
    python3 bench/bench.py --help >/dev/null
    say "dry run: installed, imported, collected; stopping before the first CUDA call"
    exit 0
fi

# 3. The GPU: the first CUDA call.
python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    die 3 "no CUDA device: torch.cuda.is_available() is False (GPU_SH_DRY_RUN=1 stops before this)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider "${TESTS[@]}"
python3 bench/bench.py --device cuda --out-dir "${OUT:-bench/results}" "$@"
