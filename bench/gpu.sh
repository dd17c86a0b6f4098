#!/usr/bin/env bash
# On a lent GPU machine, in two calls (see BENCHMARKS.md):
#
#   bash bench/gpu.sh first  [--budget S] [bench.py args...]
#       install, the device line, then bench.py --stage first: the decisive table
#       (GoogLeNet and Inception-v4, fp16, batches 1/32/256: eager, incdsl, torch.compile
#       reduce-overhead and default), then the groups table. S (default 420) is the
#       whole call's budget in seconds, install included; the call ends by S + 40.
#   bash bench/gpu.sh second [--budget S] [--pytest-budget P] [--resume FILE] [bench.py args...]
#       install, the real-GPU tests (tests/test_triton.py, test_passes.py,
#       test_properties.py; stopped after P seconds, default 240; 0 skips them), then bench.py --stage
#       second with what is left of S (default 420): what FILE (the first call's JSON,
#       copied into the checkout) skipped, then the slow baselines.
#
# Everything it writes goes under $OUT (bench/results without it): bench-STAGE.json
# (rewritten after every row), bench-STAGE.log, and pytest.log in the second call.
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
# If the checkout holds .gpu-kernels/ (Triton kernels compiled ahead of time for
# the GPU by `make gpu-kernels`, carried), they are installed into TRITON_CACHE_DIR
# (/tmp/incdsl-triton-cache), so the GPU's minutes go to measuring, not compiling.
#
# GPU_SH_DRY_RUN=1 stops right before the first CUDA call, after installing,
# importing every incdsl module, collecting the tests and building every benchmark
# item of both stages on the meta device (bench.py --dry-run); `make gpu-sim` runs it
# so on a machine without a GPU, in a venv like that image (bench/gpu_sim.sh).
#
# Exit status: 2 if the wheels are missing, the arguments are wrong or the installed
# package is not what gets imported, 3 if there is no CUDA device, else that of the
# failing step (124: bench.py or the tests were stopped at their time limit; what
# they measured is in the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."

SITE=${GPU_SH_SITE:-/tmp/site}
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
TESTS=(tests/test_triton.py tests/test_passes.py tests/test_properties.py)

say() { echo "gpu.sh: $*"; }
die() {
    code=$1
    shift
    echo "gpu.sh: error: $*" >&2
    exit "$code"
}

# 0. The arguments: the stage, then gpu.sh's own options, the rest for bench.py.
stage=${1:-}
case $stage in
first | second) shift ;;
*) die 2 "usage: bash bench/gpu.sh first|second [--budget SECONDS] [--pytest-budget SECONDS] [bench.py args...]" ;;
esac
budget=420
pytest_budget=240
bench_args=()
while (($#)); do
    case $1 in
    --budget) budget=${2:?}; shift 2 ;;
    --pytest-budget) pytest_budget=${2:?}; shift 2 ;;
    *) bench_args+=("$1"); shift ;;
    esac
done

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

# 3. Caches: a writable Triton cache under /tmp holding the carried kernels (`make
# gpu-kernels`: one folder per target, each with a manifest), and the tuned configs.
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/incdsl-triton-cache}
mkdir -p "$TRITON_CACHE_DIR"
for manifest in .gpu-kernels/manifest.json .gpu-kernels/*/manifest.json; do
    [[ -f $manifest ]] || continue
    installed=$(python3 -m incdsl.compiler.triton.precompiled "$(dirname "$manifest")") ||
        die 2 "could not install the carried kernels of $(dirname "$manifest")"
    say "carried kernels: $installed"
done
export INCDSL_CACHE_DIR=${INCDSL_CACHE_DIR:-/tmp/incdsl-tuning}
mkdir -p "$INCDSL_CACHE_DIR" && chmod 700 "$INCDSL_CACHE_DIR"

if [[ ${GPU_SH_DRY_RUN:-0} == 1 ]]; then
    collected=$(python3 -m pytest -q -p no:cacheprovider --collect-only "${TESTS[@]}" 2>&1) ||
        die 1 "pytest could not collect ${TESTS[*]}:"$'\n'"$collected"
    say "collected: $(tail -n 1 <<<"$collected")"
    python3 bench/bench.py --device cuda --dry-run --stage all "${bench_args[@]}" | tail -n 1 | sed 's/^/gpu.sh: /'
    say "dry run: installed, imported, collected, built the benchmark; stopping before the first CUDA call"
    exit 0
fi

# 4. The GPU: the first CUDA call.
python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    die 3 "no CUDA device: torch.cuda.is_available() is False (GPU_SH_DRY_RUN=1 stops before this)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
out=${OUT:-bench/results}
mkdir -p "$out"
status=0
if [[ $stage == second ]] && ((pytest_budget > 0)); then
    say "tests on the GPU: ${TESTS[*]} (at most ${pytest_budget} s; log: $out/pytest.log)"
    timeout -k 10 "$pytest_budget" python3 -m pytest -q -p no:cacheprovider --durations=15 "${TESTS[@]}" \
        2>&1 | tee "$out/pytest.log" || status=$?
fi
left=$((budget - SECONDS))
say "bench.py --stage $stage with ${left} s left of ${budget} (log: $out/bench-$stage.log)"
bench_status=0
timeout -k 10 $((left + 30)) python3 bench/bench.py --device cuda --stage "$stage" --budget "$left" \
    --out "$out/bench-$stage.json" "${bench_args[@]}" 2>&1 | tee "$out/bench-$stage.log" || bench_status=$?
((status)) || status=$bench_status
say "done in ${SECONDS} s, exit $status"
exit "$status"
