"""Kernels compiled ahead of time, carried to the GPU they were compiled for.

Triton keeps each compiled kernel in its cache as a folder named after the
kernel's cache key (the hash of its source, specialisation, options, target,
Triton version and ptxas), holding the binary, its metadata and a group file
that lists them by path. :func:`export` copies the binaries and metadata of
compiled kernels into a folder that travels, with a manifest naming each file
and its sha256 (``incdsl compile --target sm_90 -o DIR`` writes ``DIR/kernels``;
the GPU benchmark's ``.gpu-kernels``).

A binary runs on the GPU as it is, so a kernel folder is trusted exactly as
far as it is checked. :func:`read_kernels` is the one reader, and it reads only
a folder and files that no one but this user (or root) can write, follows no
symbolic link (every step is opened relative to the folder above it, with
``O_NOFOLLOW``), refuses a file or folder the expected list does not name, and
keeps a file only when its sha256 is the expected one — the bytes it hashed are
the bytes that are used, so nothing can be swapped in between.

A module compiled with ``--target`` embeds the names and hashes of the kernels it
was built with (never the manifest's: a planted folder brings its own). While it
builds a launch plan, :func:`serving` writes the checked bytes into a fresh
private folder (``mkdtemp``: mode 0700) and has Triton's compiler look up those
kernels' keys there, and only there; every other key goes to the user's cache as
usual. The folder is removed when the plan is built, since Triton then holds the
loaded kernels in memory. Nothing is installed into the user's Triton cache: a
module's kernels cannot outlive it, be served to another module, or be exported
again by the user's next ``--target`` build. Loading the cubins directly would
bypass Triton's launcher and key checks and re-implement them; a private folder
per plan build keeps Triton's own lookup and the smallest trust surface.

:func:`install` (``python -m incdsl.compiler.triton.precompiled DIR``) is the
explicit, persistent path for a folder the user names (the GPU benchmark's
carried kernels): the same checks against DIR's manifest, then a copy into
Triton's cache.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .owner import trusted

#: What a kernel needs at run time: the binary and its metadata (not the IR stages).
_KEPT = (".cubin", ".json")
MANIFEST = "manifest.json"
#: A kernel folder is Triton's base32 cache key; a file, the kernel's name and a kept suffix.
_FOLDER = re.compile(r"[A-Z2-7]{1,128}")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,150}\.(?:cubin|json)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Larger than any kernel binary or manifest by far; a read stops there.
_MAX_BYTES = 64 << 20

#: folder → file → sha256: the kernels a module was built with, or a manifest lists.
Hashes = Mapping[str, Mapping[str, str]]


class UntrustedKernels(RuntimeError):
    """A kernel folder that is not exactly what was built, or that another user could have changed."""


def _cache_dir() -> Path:
    from triton import knobs

    return Path(knobs.cache.dir)


def _private_mode(path: Path, mode: int) -> None:
    """Clear group and other write on ``path`` (a umask of 002 would leave them on, and the
    GPU side then refuses the folder)."""
    os.chmod(path, mode & ~(stat.S_IWGRP | stat.S_IWOTH))


def export(kernels: Iterable[tuple[str, dict[str, str]]], dest: Path, about: dict[str, Any]) -> int:
    """Copy each compiled kernel, given as ``(hash, metadata_group)`` (a ``CompiledKernel``'s
    attributes of those names), binary and metadata, into ``dest/<key>/``; write a manifest
    (``about``, the Triton version, each folder's files and their sha256). Nothing is writable
    by group or others. Returns how many kernels."""
    import triton
    from triton.runtime.cache import _base32

    dest.mkdir(parents=True, exist_ok=True)
    _private_mode(dest, 0o755)
    hashes: dict[str, dict[str, str]] = {}
    for digest, files in kernels:
        name = _base32(digest)
        if name in hashes:
            continue
        folder = dest / name
        folder.mkdir(exist_ok=True)
        _private_mode(folder, 0o755)
        hashes[name] = {}
        for key, path in files.items():
            if key.endswith(_KEPT) and not key.startswith("__grp__"):
                data = Path(path).read_bytes()
                (folder / key).write_bytes(data)
                _private_mode(folder / key, 0o644)
                hashes[name][key] = hashlib.sha256(data).hexdigest()
    manifest = {**about, "triton": triton.__version__, "kernels": {k: hashes[k] for k in sorted(hashes)}}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _private_mode(dest / MANIFEST, 0o644)
    return len(hashes)


# --- reading, checked ------------------------------------------------------------------------


def _open(name: str | Path, where: str, folder: bool, dir_fd: int | None = None) -> int:
    """Open ``name`` (relative to ``dir_fd``) without following a link, check it is a folder
    or a regular file as asked and that only its owner (this user or root) can write it."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if folder else os.O_NONBLOCK)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == errno.ELOOP or (folder and err.errno == errno.ENOTDIR and os.path.islink(where)):
            raise UntrustedKernels(f"{where} is a symbolic link") from None
        if err.errno == errno.ENOTDIR:
            raise UntrustedKernels(f"{where} is not a folder") from None
        raise UntrustedKernels(f"cannot open {where}: {err.strerror}") from None
    info = os.fstat(fd)
    kind_ok = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)
    if not kind_ok:
        os.close(fd)
        raise UntrustedKernels(f"{where} is not {'a folder' if folder else 'a regular file'}")
    if not trusted(info):
        os.close(fd)
        raise UntrustedKernels(
            f"{where} can be written by another user (owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}): "
            "kernels are read only from what no one but you or root can write"
        )
    return fd


def _read(name: str, where: str, dir_fd: int) -> bytes:
    fd = _open(name, where, folder=False, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        data = f.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise UntrustedKernels(f"{where} is larger than {_MAX_BYTES:,} bytes")
    return data


def check_hashes(hashes: object, where: str) -> Hashes:
    """``hashes`` if it is a mapping of kernel folder names to file names to sha256 digests,
    each name of the form Triton writes (no separator, no NUL, no dot file)."""
    if not isinstance(hashes, dict):
        raise UntrustedKernels(f"{where}: 'kernels' is not a mapping of folders to files and their sha256")
    for name, files in hashes.items():
        if not isinstance(name, str) or not _FOLDER.fullmatch(name):
            raise UntrustedKernels(f"{where}: {name!r} is not a kernel folder name (Triton's base32 cache key)")
        if not isinstance(files, dict) or not files:
            raise UntrustedKernels(f"{where}: kernel {name} lists no files and their sha256")
        for file, digest in files.items():
            if not isinstance(file, str) or not _FILE.fullmatch(file):
                raise UntrustedKernels(f"{where}: {file!r} in {name} is not a kernel binary or metadata file name")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise UntrustedKernels(f"{where}: the sha256 of {name}/{file} is not 64 hex digits")
    return hashes


def read_kernels(folder: Path, hashes: Hashes) -> dict[str, dict[str, bytes]]:
    """Every file ``hashes`` names, read from ``folder`` and checked (see the module's
    docstring); :class:`UntrustedKernels` for anything else, before anything is used."""
    check_hashes(hashes, str(folder))
    top = _open(folder, str(folder), folder=True)
    try:
        extra = sorted(set(os.listdir(top)) - set(hashes) - {MANIFEST})
        if extra:
            raise UntrustedKernels(f"{folder} holds {', '.join(map(repr, extra[:3]))}, which it was not built with")
        read: dict[str, dict[str, bytes]] = {}
        for name, files in hashes.items():
            sub = _open(name, f"{folder}/{name}", folder=True, dir_fd=top)
            try:
                extra = sorted(set(os.listdir(sub)) - set(files))
                if extra:
                    raise UntrustedKernels(f"{folder}/{name} holds {', '.join(map(repr, extra[:3]))}, which it was not built with")
                read[name] = {}
                for file, digest in files.items():
                    data = _read(file, f"{folder}/{name}/{file}", sub)
                    if hashlib.sha256(data).hexdigest() != digest:
                        raise UntrustedKernels(f"{folder}/{name}/{file} is not the file it was built with (sha256 differs)")
                    read[name][file] = data
            finally:
                os.close(sub)
        return read
    finally:
        os.close(top)


def read_manifest(folder: Path) -> dict[str, Any]:
    """``folder``'s manifest, read with the same checks, its kernel list checked."""
    top = _open(folder, str(folder), folder=True)
    try:
        text = _read(MANIFEST, str(folder / MANIFEST), top)
    finally:
        os.close(top)
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise UntrustedKernels(f"{folder / MANIFEST} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict):
        raise UntrustedKernels(f"{folder / MANIFEST} is not a JSON object")
    check_hashes(manifest.get("kernels"), str(folder / MANIFEST))
    return manifest


def _write_cache_entry(cache: Path, name: str, files: Mapping[str, bytes], at: Path) -> Path:
    """``files`` as Triton's cache entry ``name`` in a staging folder under ``cache``, with group
    files that point at ``at`` (where the entry will be). Returns the staging folder."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache))
    for file, data in files.items():
        (staging / file).write_bytes(data)
    children = {file: str(at / file) for file in files}
    for metadata in (f for f in files if f.endswith(".json")):
        (staging / f"__grp__{metadata}").write_text(json.dumps({"child_paths": children}), encoding="utf-8")
    return staging


# --- serving a module's kernels while it compiles --------------------------------------------


@contextlib.contextmanager
def serving(folder: Path, built: Mapping[str, Any]) -> Iterator[int]:
    """Within this block Triton's compiler finds the kernels of ``built`` (a module's record:
    ``triton``, ``target``, ``kernels``) read and checked from ``folder``, from a private
    folder that is removed at the end; yields how many. Kernels of another Triton version are
    checked but not served: their keys could never match. Without the folder (a module copied
    alone) nothing is served, with a warning: the kernels compile as in any module."""
    import triton
    from triton import knobs
    from triton.runtime.cache import FileCacheManager

    if not os.path.lexists(folder):  # the module was copied without them: nothing to trust or use
        warnings.warn(f"{folder} is missing: the kernels are compiled here", stacklevel=3)
        yield 0
        return
    kernels = read_kernels(folder, built["kernels"])
    if built.get("triton") != triton.__version__:
        yield 0
        return
    with tempfile.TemporaryDirectory(prefix="incdsl-kernels-") as private:
        root = Path(private)
        for name, files in kernels.items():
            _write_cache_entry(root, name, files, root / name).rename(root / name)
        base = knobs.cache.manager_class or FileCacheManager

        class Served(FileCacheManager):
            """Triton's file cache manager over one entry of the private folder."""

            def __init__(self, key: str) -> None:  # the base's attributes, for another folder
                self.key = key
                self.cache_dir = str(root / key)
                self.lock_path = str(root / key / "lock")

        def manager(key: str, override: bool = False, dump: bool = False) -> Any:
            if key in kernels and not (override or dump):
                return Served(key)
            return base(key, override=override, dump=dump)

        before = knobs.cache.__dict__.get("manager_class", manager)  # a value set in Python, if any
        knobs.cache.manager_class = manager  # type: ignore[assignment]
        try:
            yield len(kernels)
        finally:
            if before is manager:
                del knobs.cache.manager_class  # back to TRITON_CACHE_MANAGER or the default
            else:
                knobs.cache.manager_class = before


# --- installing into Triton's cache (explicit, persistent) -----------------------------------


def install(source: Path, cache: Path | None = None) -> int:
    """Put the kernels exported to ``source`` into Triton's cache (``cache``, default this
    user's), checked against ``source``'s manifest (see :func:`read_kernels`), skipping those
    already there. Kernels built by another Triton version are checked and left out: their
    keys could never match. Returns how many were installed; :class:`UntrustedKernels` before anything
    is installed if a check fails."""
    import triton

    manifest = read_manifest(source)
    kernels = read_kernels(source, manifest["kernels"])
    if manifest.get("triton") != triton.__version__:
        return 0
    cache = cache or _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    installed = 0
    for name, files in kernels.items():
        target = cache / name
        if target.exists():
            continue
        staging = _write_cache_entry(cache, name, files, target)
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
    try:
        manifest = read_manifest(args.folder)
        installed = install(args.folder)
    except UntrustedKernels as err:
        parser.exit(2, f"{parser.prog}: error: {err}; nothing was installed\n")
    except OSError as err:  # the cache cannot be written
        parser.exit(2, f"{parser.prog}: error: cannot install into {_cache_dir()}: {err.strerror or err}\n")
    print(f"installed {installed} of {len(manifest['kernels'])} kernels into {_cache_dir()}"
          f" (built with Triton {manifest.get('triton')}, for {manifest.get('target')})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
