"""Specs are shared, so a spec is untrusted input: `include` reads only where it may, every read
is bounded, and nothing is unpickled from a place others can write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from incdsl import SpecError, load, loads
from incdsl import limits as limit_values

ROOT = Path(__file__).resolve().parent.parent
HEAD = "network t\ninput 3x8x8\n"
SECRET = "secret-first-line: do not show me\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A spec folder with a library below it, and a secret file beside (outside) the folder."""
    (tmp_path / "outside.inc").write_text(SECRET, encoding="utf-8")
    spec = tmp_path / "project"
    (spec / "lib").mkdir(parents=True)
    (spec / "lib" / "blocks.inc").write_text("block b():\n  conv 1x1 4\n", encoding="utf-8")
    (spec / "lib" / "up.inc").write_text('include "../shared.inc"\n', encoding="utf-8")
    (spec / "shared.inc").write_text("block s():\n  conv 1x1 2\n", encoding="utf-8")
    return spec


def include(spec_dir: Path, target: str, **options) -> SpecError:
    path = spec_dir / "net.inc"
    path.write_text(HEAD + f'include "{target}"\nconv 1x1 4\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load(path, **options)
    return info.value


@pytest.mark.parametrize("target", ["../outside.inc", "{tmp}/outside.inc", "lib/../../outside.inc", "/etc/passwd",
                                    "../../../../../../proc/self/environ"])
def test_include_outside_the_spec_folder_is_refused_unread(tree, target):
    err = include(tree, target.format(tmp=tree.parent))
    assert err.message.endswith("it is outside the folders this spec may read")
    assert (err.line, err.column) == (3, 1)
    assert SECRET.strip() not in err.render() and "root:" not in err.render()


def test_a_link_out_of_the_folder_is_refused(tree):
    (tree / "lib" / "link.inc").symlink_to(tree.parent / "outside.inc")
    assert include(tree, "lib/link.inc").message.endswith("outside the folders this spec may read")


def test_includes_inside_the_tree_the_library_and_named_folders_work(tree, tmp_path):
    path = tree / "net.inc"
    path.write_text(HEAD + 'include "lib/blocks.inc"\ninclude "lib/up.inc"\ninclude "blocks/inception_v4.inc"\n'
                    "b()\ns()\n", encoding="utf-8")
    assert {"b1.conv1", "s1.conv1"} <= {n.name for n in load(path).nodes}
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "more.inc").write_text("block m():\n  conv 1x1 3\n", encoding="utf-8")
    path.write_text(HEAD + 'include "more.inc"\nm()\n', encoding="utf-8")
    assert "cannot include \"more.inc\": no such file" in include(tree, "more.inc").message
    path.write_text(HEAD + 'include "more.inc"\nm()\n', encoding="utf-8")
    assert "m1.conv1" in load(path, include_path=[extra])


def test_include_path_on_the_command_line(tree, tmp_path, cli):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "more.inc").write_text("block m():\n  conv 1x1 3\n", encoding="utf-8")
    (tree / "net.inc").write_text(HEAD + 'include "more.inc"\nm()\n', encoding="utf-8")
    assert cli("check", str(tree / "net.inc"))[0] == 1
    code, out, _ = cli("check", str(tree / "net.inc"), "--include-path", str(extra))
    assert code == 0 and "t: ok" in out


def test_a_string_spec_includes_from_the_working_directory(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert "b1.conv1" in loads(HEAD + 'include "lib/blocks.inc"\nb()\n')
    with pytest.raises(SpecError, match="outside the folders"):
        loads(HEAD + 'include "../outside.inc"\nconv 1x1 4\n')


# --- reads are bounded ------------------------------------------------------------------------


def test_a_device_that_never_ends_is_refused_after_a_bounded_read():
    """`incdsl check /dev/zero` read until memory ran out."""
    # the command runs with 1 GB of address space: an unbounded read would end in a MemoryError
    probe = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from incdsl.cli import run; print(run(['check', '/dev/zero']))"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "1", done.stderr
    assert "/dev/zero is larger than 524,288 bytes" in done.stderr and time.perf_counter() - start < 30


def test_fmt_reads_bounded_too(cli):
    code, _, err = cli("fmt", "--check", "/dev/zero")
    assert code == 1 and "is larger than" in err


def test_a_large_file_is_refused_at_its_size(tmp_path):
    big = tmp_path / "big.inc"
    big.write_bytes(b"#" * (limit_values.MAX_FILE_READ + 10))
    with pytest.raises(SpecError, match="is larger than 524,288 bytes"):
        load(big)


def test_includes_are_bounded_in_number_and_in_size(tmp_path):
    for i in range(limit_values.MAX_INCLUDED_FILES + 2):
        (tmp_path / f"f{i}.inc").write_text(f"block b{i}():\n  conv 1x1 4\n", encoding="utf-8")
    lines = "".join(f'include "f{i}.inc"\n' for i in range(limit_values.MAX_INCLUDED_FILES + 2))
    (tmp_path / "net.inc").write_text(HEAD + lines + "b0()\n", encoding="utf-8")
    with pytest.raises(SpecError, match=f"includes more than {limit_values.MAX_INCLUDED_FILES} files"):
        load(tmp_path / "net.inc")
    chunk = "# " + "x" * (limit_values.MAX_FILE_CHARS - 100) + "\n"
    for i in range(5):
        (tmp_path / f"big{i}.inc").write_text(chunk, encoding="utf-8")
    lines = "".join(f'include "big{i}.inc"\n' for i in range(5))
    (tmp_path / "net.inc").write_text(HEAD + lines + "conv 1x1 4\n", encoding="utf-8")
    with pytest.raises(SpecError, match="come to more than 524,288 characters"):
        load(tmp_path / "net.inc")


# --- nothing is unpickled from a shared place --------------------------------------------------


def test_the_parser_is_built_without_lark_s_pickle_cache(monkeypatch):
    """Lark's cache=True unpickled `$TMPDIR/.lark_cache_*.tmp`: a file planted there ran code. The
    parser comes from the tables shipped in the package, or from the grammar: no pickle either way."""
    import pickle

    import lark

    from incdsl import syntax

    unpickled: list[object] = []
    seen: list[object] = []
    real = lark.Lark.__init__

    def spy(self, grammar, **options):
        seen.append(options.get("cache"))
        real(self, grammar, **options)

    monkeypatch.setattr(pickle, "load", lambda *a, **k: unpickled.append(a))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: unpickled.append(a))
    monkeypatch.setattr(lark.Lark, "__init__", spy)
    syntax._parser.cache_clear()
    try:
        shipped = syntax._parser()
    finally:
        syntax._parser.cache_clear()
    built = syntax._build_parser(syntax._grammar())
    assert seen == [None] and unpickled == []
    assert shipped.parse("conv 3x3 8\n") == built.parse("conv 3x3 8\n")


def test_check_reads_and_writes_nothing_in_the_temporary_folder(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "incdsl.cli", "check", "googlenet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a" * 300 + ".inc", "blocks/" + "9" * 4000 + ".inc"])
def test_an_include_the_system_cannot_look_up_is_a_spec_error(name):
    """A name over the file system's limit made `Path.is_file` raise OSError (ENAMETOOLONG); a
    fuzz mutant reached it by making a digit of `blocks/inception_v4.inc` a huge number."""
    with pytest.raises(SpecError) as info:
        loads(f'network t\ninput 3x8x8\ninclude "{name}"\nconv 1x1 4\n')
    assert info.value.message.startswith('cannot include "') and info.value.line == 3


# --- kernels only from where the user put them ----------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``incdsl compile --target sm_90 --batches 1`` of the smallest network, its GEMMs only (three
    binaries, two of them distinct), cross-compiled here."""
    out = tmp_path_factory.mktemp("target") / "out"
    (out / "kernels" / "AAAA").mkdir(parents=True)  # an earlier build's, which must not mix in
    (out / "kernels" / "AAAA" / "_gemm_kernel.cubin").write_bytes(b"stale")
    (out / "mini_googlenet.py").symlink_to(out.parent / "planted.py")  # a link the module replaces
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(out.parent / "cache")
    done = subprocess.run(
        [sys.executable, "-m", "incdsl.cli", "compile", "examples/mini_googlenet", "--backend", "triton",
         "--kernels", "fused_1x1", "--target", "sm_90", "--batches", "1", "-o", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (out / "kernels" / "AAAA").exists() and not (out / "mini_googlenet.py").is_symlink()
    assert sorted(p.name for p in out.parent.iterdir()) == ["cache", "out"]
    return out


def _module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"built_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _OnAGpu:
    """What the module asks of an input before it serves its kernels: is it on a GPU."""

    is_cuda = True


def _swap_a_binary(k: Path, record: dict) -> None:
    """The case planted on an H200: another kernel's cubin under this kernel's key."""
    cubins = {name: next((k / name).glob("*.cubin")) for name in record["kernels"]}
    here, there = next((a, b) for a in cubins for b in cubins if cubins[a].read_bytes() != cubins[b].read_bytes())
    cubins[here].write_bytes(cubins[there].read_bytes())


def _link_file(k: Path, record: dict) -> None:
    name, files = next(iter(record["kernels"].items()))
    cubin = next(f for f in files if f.endswith(".cubin"))
    copy = k.parent / "elsewhere.cubin"
    copy.write_bytes((k / name / cubin).read_bytes())  # the same bytes: the link alone is refused
    (k / name / cubin).unlink()
    (k / name / cubin).symlink_to(copy)


def _link_folder(k: Path, record: dict) -> None:
    name = next(iter(record["kernels"]))
    (k / name).rename(k.parent / "elsewhere")
    (k / name).symlink_to(k.parent / "elsewhere")


def _link_kernels(k: Path, record: dict) -> None:
    k.rename(k.parent / "elsewhere")
    k.symlink_to(k.parent / "elsewhere")


def _chmod(mode: int, which: str):
    def tamper(k: Path, record: dict) -> None:
        name, files = next(iter(record["kernels"].items()))
        path = {"kernels": k, "folder": k / name, "file": k / name / next(iter(files))}[which]
        path.chmod(path.stat().st_mode | mode)

    return tamper


def _owner(k: Path, record: dict) -> None:
    name = next(iter(record["kernels"]))
    os.chown(k / name, 4242, -1)


TAMPERED = {
    "another kernel's binary": (_swap_a_binary, "sha256 differs"),
    "a file missing": (lambda k, r: next(next(iter(k.glob("[A-Z]*"))).iterdir()).unlink(), "cannot open"),
    "an extra file": (lambda k, r: (next(iter(k.glob("[A-Z]*"))) / "extra.cubin").write_bytes(b"x"), "not built with"),
    "an extra folder": (lambda k, r: (k / "AAAA").mkdir(), "not built with"),
    "a linked file": (_link_file, "symbolic link"),
    "a linked kernel folder": (_link_folder, "symbolic link"),
    "a linked kernels folder": (_link_kernels, "symbolic link"),
    "a group-writable kernels folder": (_chmod(0o020, "kernels"), "can be written by another user"),
    "a group-writable kernel folder": (_chmod(0o020, "folder"), "can be written by another user"),
    "an other-writable file": (_chmod(0o002, "file"), "can be written by another user"),
    "another user's folder": (_owner, "can be written by another user"),
}


@pytest.mark.parametrize("entry", ["module", "install"])
@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_kernel_folder_is_refused_and_nothing_is_installed(built, tmp_path, case, entry, monkeypatch):
    from incdsl.compiler.triton.precompiled import UntrustedKernels, install

    tamper, reason = TAMPERED[case]
    if case == "another user's folder" and os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    out = tmp_path / "out"
    shutil.copytree(built, out, symlinks=True)
    module = _module(out / "mini_googlenet.py")
    tamper(out / "kernels", module.KERNELS)
    cache = tmp_path / "triton-cache"
    monkeypatch.setenv("TRITON_CACHE_DIR", str(cache))
    with pytest.raises(UntrustedKernels, match=reason):
        if entry == "module":
            model = module.MiniGooglenetTriton()
            with model._serving_carried(_OnAGpu()):
                pass
        else:
            install(out / "kernels", cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_module_serves_its_checked_kernels_from_a_private_folder_it_removes(built, tmp_path, monkeypatch):
    from triton import knobs

    module = _module(built / "mini_googlenet.py")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton-cache"))
    model = module.MiniGooglenetTriton()
    with model._serving_carried(_OnAGpu()) as served:
        assert served == len(module.KERNELS["kernels"])
        name = next(iter(module.KERNELS["kernels"]))
        manager = knobs.cache.manager_class(name)
        private = Path(manager.cache_dir)
        assert private.parent.stat().st_mode & 0o777 == 0o700 and tmp_path not in private.parents
        group = manager.get_group(next(f for f in module.KERNELS["kernels"][name] if f.endswith(".json")))
        assert {Path(p).parent for p in group.values()} == {private}
        assert Path(knobs.cache.manager_class("OTHERKEY").cache_dir) == tmp_path / "triton-cache" / "OTHERKEY"
    assert not private.exists() and knobs.cache.manager_class is None
    assert not (tmp_path / "triton-cache" / name).exists()


def test_a_module_compiled_without_target_never_looks_for_kernels(built, tmp_path, cli, monkeypatch):
    from incdsl.compiler.triton import precompiled

    out = tmp_path / "plain"
    shutil.copytree(built / "kernels", out / "kernels")  # planted beside it
    assert cli("compile", "examples/mini_googlenet", "--backend", "triton", "-o", str(out / "net.py"))[0] == 0
    source = (out / "net.py").read_text()
    assert "kernels'" not in source and "KERNELS" not in source and "pathlib" not in source
    monkeypatch.setattr(precompiled, "read_kernels", lambda *a: pytest.fail("a kernel folder was read"))
    model = _module(out / "net.py").MiniGooglenetTriton()
    with model._serving_carried(_OnAGpu()) as served:
        assert served is None


GOOD = "A" * 52
MANIFESTS = {
    "no folder": (None, "cannot open"),
    "no manifest": ({}, "cannot open"),
    "not JSON": (b"{kernels", "is not valid JSON"),
    "a list": ([GOOD], "is not a JSON object"),
    "the old list of folders": ({"kernels": [GOOD]}, "is not a mapping"),
    "a NUL in a folder name": ({"kernels": {"AB\x00C": {"k.cubin": "0" * 64}}}, "is not a kernel folder name"),
    "a path for a folder name": ({"kernels": {"../AB": {"k.cubin": "0" * 64}}}, "is not a kernel folder name"),
    "a NUL in a file name": ({"kernels": {GOOD: {"k\x00.cubin": "0" * 64}}}, "is not a kernel binary"),
    "a folder name that is a file": ({"kernels": {GOOD: {"k.cubin": "0" * 64}}}, "is not a folder"),
    "no hash": ({"kernels": {GOOD: {"k.cubin": None}}}, "not 64 hex digits"),
}


@pytest.mark.parametrize("case", MANIFESTS)
def test_the_install_tool_refuses_a_bad_manifest_with_a_message(tmp_path, case, capsys, monkeypatch):
    from incdsl.compiler.triton.precompiled import main

    manifest, reason = MANIFESTS[case]
    folder = tmp_path / "kernels"
    if manifest is not None:
        folder.mkdir()
        (folder / GOOD).write_bytes(b"not a folder")
        if manifest != {}:
            data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            (folder / "manifest.json").write_bytes(data)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as info:
        main([str(folder)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and reason in err and "nothing was installed" in err, err
    assert "Traceback" not in err and not (tmp_path / "cache").exists()


def test_the_install_tool_installs_a_checked_folder(built, tmp_path, capsys, monkeypatch):
    from incdsl.compiler.triton.precompiled import main

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    assert main([str(built / "kernels")]) == 0
    assert capsys.readouterr().out.startswith("installed 3 of 3 kernels into")
    assert {p.name for p in (tmp_path / "cache").iterdir()} == set(json.loads((built / "kernels" / "manifest.json").read_text())["kernels"])


def test_a_module_copied_without_its_kernels_compiles_them_with_a_warning(built, tmp_path):
    shutil.copy(built / "mini_googlenet.py", tmp_path)
    model = _module(tmp_path / "mini_googlenet.py").MiniGooglenetTriton()
    missing = pytest.warns(UserWarning, match="kernels is missing: the kernels are compiled here")
    with missing, model._serving_carried(_OnAGpu()) as served:
        assert served == 0
