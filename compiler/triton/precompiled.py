"""Kernels compiled ahead of time, carried to the GPU they were compiled for.

Triton keeps each compiled kernel in its cache as a folder named after the
kernel's cache key (the hash of its source, specialisation, options, target,
Triton version and ptxas), holding the binary, its metadata and a group file
that lists them by absolute path. :func:`export` copies the binaries and
metadata of compiled kernels into a folder that travels (``incdsl compile
--target sm_90 -o DIR``, the GPU benchmark's ``.gpu-kernels``);
:func:`install` puts them into this machine's Triton cache with group files
pointing at their new place. A launch on the GPU then finds its kernel there
under the same key, so it neither compiles nor tunes on first use.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: What a kernel needs at run time: the binary and its metadata (not the IR stages).
_KEPT = (".cubin", ".json")
MANIFEST = "manifest.json"


def _cache_dir() -> Path:
    from triton import knobs

    return Path(knobs.cache.dir)


def export(kernels: Iterable[tuple[str, dict[str, str]]], dest: Path, about: dict[str, Any]) -> int:
    """Copy each compiled kernel, given as ``(hash, metadata_group)`` (a ``CompiledKernel``'s
    attributes of those names), binary and metadata, into ``dest/<key>/``; write a manifest
    (``about`` plus the Triton version and the folders). Returns how many kernels."""
    import triton
    from triton.runtime.cache import _base32

    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for digest, files in kernels:
        name = _base32(digest)
        if name in names:
            continue
        names.append(name)
        folder = dest / name
        folder.mkdir(exist_ok=True)
        for key, path in files.items():
            if key.endswith(_KEPT) and not key.startswith("__grp__"):
                shutil.copyfile(path, folder / key)
    manifest = {**about, "triton": triton.__version__, "kernels": sorted(names)}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return len(names)


def install(source: Path, cache: Path | None = None) -> int:
    """Put the kernels exported to ``source`` into Triton's cache (``cache``, default this
    user's), skipping those already there. Kernels built by another Triton version are left
    out: their keys could never match. Returns how many were installed."""
    import triton

    manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("triton") != triton.__version__:
        return 0
    cache = cache or _cache_dir()
    installed = 0
    for name in manifest["kernels"]:
        if "/" in name or name.startswith("."):  # a manifest names folders, nothing else
            raise ValueError(f"bad kernel folder name in {source / MANIFEST}: {name!r}")
        target = cache / name
        if target.exists():
            continue
        staging = cache / f".{name}.{os.getpid()}.tmp"
        staging.mkdir(parents=True, exist_ok=True)
        files = [p for p in (source / name).iterdir() if p.name.endswith(_KEPT)]
        for path in files:
            shutil.copyfile(path, staging / path.name)
        children = {p.name: str(target / p.name) for p in files}
        for metadata in (p.name for p in files if p.name.endswith(".json")):
            group = {"child_paths": children}
            (staging / f"__grp__{metadata}").write_text(json.dumps(group), encoding="utf-8")
        try:
            staging.rename(target)  # atomic: another process sees all of it or none
            installed += 1
        except OSError:  # another process installed it first
            shutil.rmtree(staging, ignore_errors=True)
    return installed


def main(argv: list[str] | None = None) -> int:
    """``python -m incdsl.compiler.triton.precompiled DIR``: install DIR's kernels into Triton's cache."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m incdsl.compiler.triton.precompiled", description=main.__doc__)
    parser.add_argument("folder", type=Path, help="a folder with a manifest.json (incdsl compile --target, make gpu-kernels)")
    args = parser.parse_args(argv)
    manifest = json.loads((args.folder / MANIFEST).read_text(encoding="utf-8"))
    installed = install(args.folder)
    print(f"installed {installed} of {len(manifest['kernels'])} kernels into {_cache_dir()}"
          f" (built with Triton {manifest.get('triton')}, for {manifest.get('target')})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
