#!/usr/bin/env bash
# Download into .whl/ the wheels that a lent GPU machine lacks, as pinned in
# bench/gpu-wheels.txt, for that machine's CPython 3.12 on x86-64 Linux. Run it
# here, where pip reaches the package registry: the GPU machine reaches nothing.
# Other versions of the same packages are removed from .whl/ (two versions of one
# package stop the install there); other wheels in .whl/ are left alone.
# .whl/ is ignored by git (.gitignore) and travels with a device call as `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
list=bench/gpu-wheels.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp" -r "$list"
mkdir -p .whl
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | while IFS='=' read -r name _ version; do
    norm=${name,,}
    norm=${norm//[-.]/_}
    for old in .whl/"$norm"-*.whl; do
        if [[ -e $old && $old != .whl/"$norm-$version"-* ]]; then rm -v "$old"; fi
    done
    mv "$tmp/$norm-$version"-*.whl .whl/
done
ls -1 .whl
