"""The files the CLI reads and writes: every command that writes an output refuses, before any work,
one it must not write; every command that reads a spec refuses, as a usage error, a name that names none."""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

NAME_MAX = os.pathconf("/", "PC_NAME_MAX")

#: Every command that writes an output file: the arguments before the output's name.
WRITERS = {
    "compile": ["compile", "net.inc", "-o"],
    "draw": ["draw", "net.inc", "-o"],
    "export": ["export", "net.inc", "--onnx"],
}

#: Every command that reads a spec, as the arguments around its name.
READERS = {
    "check": ["check"],
    "params": ["params"],
    "ir": ["ir"],
    "fmt": ["fmt"],
    "compile": ["compile"],
    "draw": ["draw"],
    "export": ["export", "--onnx", "out.onnx"],
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with a spec ``net.inc`` that includes ``lib.inc``, which gives no layer."""
    (tmp_path / "lib.inc").write_text("defaults:\n  conv bn\n", encoding="utf-8")
    (tmp_path / "net.inc").write_text('network n\ninput 3x8x8\ninclude "lib.inc"\nconv 3x3 4\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _dangling(folder: Path) -> str:
    (folder / "out").symlink_to(folder / "elsewhere" / "made")
    return "out"


def _loop(folder: Path) -> str:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return "a"


def _under_dangling(folder: Path) -> str:
    (folder / "sub").symlink_to(folder / "elsewhere")
    return "sub/out"


def _folder(folder: Path) -> str:
    (folder / "out").mkdir()
    return "out"


def _link_to_spec(folder: Path) -> str:
    (folder / "out").symlink_to(folder / "net.inc")
    return "out"


#: Outputs no command may write, each made in the working folder: (name, message).
REFUSED: dict[str, tuple[Callable[[Path], str], str]] = {
    "empty": (lambda _: "", "needs a file name"),
    "dangling symlink": (_dangling, "out is a symbolic link that leads to no file"),
    "symlink loop": (_loop, "a is a symbolic link that leads to no file (Too many levels of symbolic links)"),
    "under a dangling symlink": (_under_dangling, "cannot write sub/out: sub is not a folder nor a link to one"),
    "folder": (_folder, "out is a folder"),
    "the spec": (lambda _: "net.inc", "net.inc is a file this command reads"),
    "a link to the spec": (_link_to_spec, "out is a file this command reads"),
    "an included file that gives no layer": (lambda _: "lib.inc", "lib.inc is a file this command reads"),
    "a name over NAME_MAX": (lambda _: "o" * (NAME_MAX + 1), "File name too long"),
    "a new folder's name over NAME_MAX": (
        lambda _: f"new/{'o' * (NAME_MAX + 1)}",
        f"a name in it is longer than the file system allows ({NAME_MAX} bytes)",
    ),
    "a path over PATH_MAX": (lambda _: "/".join(["o" * 200] * 25), "File name too long"),
}


@pytest.mark.parametrize("command", WRITERS)
@pytest.mark.parametrize("case", REFUSED)
def test_an_output_no_command_may_write_is_a_usage_error_before_any_work(cli, folder, command, case):
    make, message = REFUSED[case]
    target = make(folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    code, out, err = cli(*WRITERS[command], target)
    assert (code, out) == (2, ""), err
    assert err.startswith(f"incdsl {command}: error: ") and message in err, err
    assert "Traceback" not in err and "progress" not in err and len(err) < 300
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing created (a symbolic link's target least of all)
    assert not (folder / "elsewhere").exists()


#: Spec names that name no spec: (name, message).
NO_SPEC: dict[str, tuple[Callable[[Path], str], str]] = {
    "empty": (lambda _: "", "the spec's name is empty"),
    "a folder": (lambda folder: str(folder), "is a folder, not a spec file"),
    "a name over NAME_MAX": (lambda _: "s" * (NAME_MAX + 1) + ".inc", "File name too long"),
    "a path over PATH_MAX": (lambda _: "/".join(["s" * 200] * 25), "File name too long"),
}


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("case", NO_SPEC)
def test_a_spec_name_that_names_no_spec_is_a_usage_error(cli, folder, command, case):
    make, message = NO_SPEC[case]
    code, out, err = cli(*READERS[command][:1], make(folder), *READERS[command][1:])
    assert (code, out) == (2, ""), err
    assert err.startswith(f"incdsl {command}: error: ") and message in err, err
    assert len(err) < 300  # a long name is echoed cut short


def test_an_output_through_a_link_to_a_file_is_written(cli, folder):
    """A symbolic link to an existing file is written through, as a shell's `>` does."""
    (folder / "real.py").write_text("old\n", encoding="utf-8")
    (folder / "out.py").symlink_to(folder / "real.py")
    code, _, err = cli("compile", "net.inc", "-o", "out.py")
    assert code == 0, err
    assert (folder / "real.py").read_text(encoding="utf-8").startswith('"""n: generated by incdsl')


@pytest.mark.parametrize("command", WRITERS)
def test_a_file_a_spec_on_standard_input_includes_is_not_written(cli, folder, monkeypatch, command):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((folder / "net.inc").read_bytes())))
    argv = [("-" if a == "net.inc" else a) for a in WRITERS[command]]
    code, out, err = cli(*argv, "lib.inc")
    assert (code, out) == (2, "") and "lib.inc is a file this command reads" in err
    assert (folder / "lib.inc").read_text(encoding="utf-8") == "defaults:\n  conv bn\n"


#: Where each writing command does its work, to be replaced by work that plants a link meanwhile.
WORK = {
    "compile": ("incdsl.compiler.pipeline", "generate_source", lambda *_, **__: "source\n"),
    "draw": ("incdsl.draw", "to_dot", lambda *_, **__: "digraph {}\n"),
    "export": ("incdsl.compiler.torch.export", "to_onnx", None),
}


@pytest.mark.parametrize("command", WRITERS)
def test_an_output_is_checked_again_just_before_it_is_written(cli, folder, monkeypatch, command):
    """A dangling link planted at the output while the work runs is refused, not followed."""
    module, name, result = WORK[command]
    if result is None:
        pytest.importorskip("onnxscript")
        from incdsl.compiler.torch.export import Exported

        result = lambda *_, **__: Exported(b"onnx", 20, ("batch", 3, 8, 8), ("batch", 4))  # noqa: E731

    def work(*args, **kwargs):
        (folder / "out.dot").symlink_to(folder / "planted")
        return result(*args, **kwargs)

    monkeypatch.setattr(importlib.import_module(module), name, work)
    code, out, err = cli(*WRITERS[command], "out.dot")
    assert (code, out) == (2, "") and "out.dot is a symbolic link that leads to no file" in err, err
    assert not (folder / "planted").exists()
