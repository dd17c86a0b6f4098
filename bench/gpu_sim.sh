#!/usr/bin/env bash
# `make gpu-sim`: run bench/gpu.sh as a lent GPU machine would, on this machine
# without a GPU, and check that it gets as far as its first CUDA call.
#
# The stand-in for that machine (in $GPU_SIM_DIR, by default ~/.cache/incdsl-gpu-sim,
# outside the repository; made again whenever missing or when its requirements
# change):
#   venv/   Python 3.12 with bench/gpu-sim-requirements.txt (torch 2.11.0 and the
#           rest of that image's packages, not lark or pydantic): a few GB to download
#   tree/   a fresh copy of what a device call sends: the tracked files and the
#           untracked ones git does not ignore, plus .whl/ (bench/fetch_wheels.sh
#           runs first if a wheel is missing) and .gpu-kernels/ if there is one
#   site/   gpu.sh's install folder (its /tmp/site there), emptied for each run
#   *.log   each run's whole output
# `gpu.sh first` runs there twice, with a bare environment (env -i), the venv's python3
# first on PATH, no GPU visible and pip's configuration files off:
#   1. GPU_SH_DRY_RUN=1: passes if it exits 0 with its line "gpu.sh: dry run: ...",
#      i.e. installed the wheels and the package, imported every incdsl module from
#      the install folder, collected the tests and built every item of both benchmark
#      stages on the meta device (bench.py --dry-run: models, incdsl plans, the
#      groups' Triton launches, torch.compile objects);
#   2. as on the machine: passes if it stops at the CUDA check, exit 3 with
#      "gpu.sh: error: no CUDA device", every step before it done.
set -euo pipefail
cd "$(dirname "$0")/.."

sim=${GPU_SIM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/incdsl-gpu-sim}
req=bench/gpu-sim-requirements.txt
venv=$sim/venv

say() { echo "gpu-sim: $*"; }
fail() {
    echo "gpu-sim: FAIL: $*" >&2
    exit 1
}

# The machine's Python is 3.12 (3.12.3).
python312() {
    local candidate
    for candidate in "${GPU_SIM_PYTHON:-}" python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
        if [[ -n $candidate ]] && command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    fail "no Python 3.12 found: set GPU_SIM_PYTHON to one"
}

# 1. The venv, made again from scratch when absent or out of date.
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ $(cat "$venv/.complete" 2>/dev/null) != "$want" ]]; then
    py=$(python312)
    say "making $venv with $py from $req (downloads torch: a few GB)"
    rm -rf "$venv"
    mkdir -p "$sim"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --progress-bar off --disable-pip-version-check -r "$req"
    echo "$want" >"$venv/.complete"
fi
"$venv/bin/python" -I - <<'EOF' || fail "$venv does not look like the GPU machine's image"
import importlib.util, sys
present = [m for m in ("lark", "pydantic", "pydantic_core", "incdsl") if importlib.util.find_spec(m)]
sys.exit(f"it has {', '.join(present)}, which the image lacks" if present else 0)
EOF

# 2. The wheels that travel.
while IFS='=' read -r name _ version; do
    norm=${name,,}
    norm=${norm//[-.]/_}
    if ! compgen -G ".whl/$norm-$version-*.whl" >/dev/null; then
        say "fetching the wheels (.whl/ lacks $name $version)"
        bash bench/fetch_wheels.sh
        break
    fi
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' bench/gpu-wheels.txt)

# 3. What a device call sends.
rm -rf "$sim/tree"
mkdir -p "$sim/tree"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$sim/tree"
cp -r .whl "$sim/tree/.whl"
if [[ -d .gpu-kernels ]]; then cp -r .gpu-kernels "$sim/tree/.gpu-kernels"; fi # carried too, when made

# 4. gpu.sh, twice.
run() { # LOG [VAR=VALUE...]: gpu.sh in the tree with a bare environment; prints its exit status
    local log=$1
    shift
    rm -rf "$sim/site" "$sim/out"
    mkdir -p "$sim/out"
    set +e
    (cd "$sim/tree" && env -i PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" HOME="$HOME" LANG=C.UTF-8 \
        PIP_CONFIG_FILE=/dev/null CUDA_VISIBLE_DEVICES= OUT="$sim/out" GPU_SH_SITE="$sim/site" "$@" \
        bash bench/gpu.sh first) >"$sim/$log" 2>&1
    echo $?
    set -e
}

say "gpu.sh with GPU_SH_DRY_RUN=1 (log: $sim/dry-run.log)"
rc=$(run dry-run.log GPU_SH_DRY_RUN=1)
sed 's/^/    /' "$sim/dry-run.log"
[[ $rc == 0 ]] || fail "the dry run exited $rc"
grep -q '^gpu.sh: dry run: installed, imported, collected' "$sim/dry-run.log" ||
    fail "the dry run did not print its closing line"

say "gpu.sh as on the GPU machine (log: $sim/gpu.log)"
rc=$(run gpu.log)
sed 's/^/    /' "$sim/gpu.log"
[[ $rc == 3 ]] || fail "gpu.sh exited $rc, not 3 (no CUDA device)"
grep -q '^gpu.sh: error: no CUDA device' "$sim/gpu.log" || fail "gpu.sh did not stop at its CUDA check"

say "PASS: installed, imported and collected in a stand-in for the GPU machine's image; stopped at the first CUDA call"
