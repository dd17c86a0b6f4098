"""incdsl.elaborate.declarations: blocks, argument tables and defaults, and includes, before any layer."""

from __future__ import annotations

import pytest

from incdsl import SpecError
from incdsl.elaborate.declarations import collect
from incdsl.syntax import parse


def decls(text: str, files: dict[str, str] | None = None):
    files = files or {}

    def resolve(path, span):
        if path not in files:
            raise SpecError(f"no {path}", span)
        return parse(files[path], path)

    return collect(parse(text, "main.inc"), resolve)


def test_blocks_argument_tables_and_defaults_are_collected():
    found = decls(
        "block b(n, m=2):\n  conv 1x1 n\n"
        "table sizes a b\n  small 1 2\n  wide 3 4\n"
        "defaults:\n  conv bn eps=0.001\n  conv linear\n"
    )
    assert list(found.blocks) == ["b"]
    assert found.arg_tables["sizes"].columns == ("a", "b")
    assert {k: dict(v) for k, v in found.arg_tables["sizes"].entries.items()} == {
        "small": {"a": 1, "b": 2}, "wide": {"a": 3, "b": 4},
    }
    assert [type(t).__name__ for t in found.defaults["conv"]] == ["Positional", "Option", "Positional"]


def test_includes_bring_blocks_and_tables_but_not_defaults():
    found = decls('include "lib.inc"\n', {"lib.inc": "block b():\n  conv 1x1 4\ntable t x y\n  r 1 2\n"})
    assert list(found.blocks) == ["b"] and list(found.arg_tables) == ["t"]


def test_an_included_network_gives_its_blocks_with_its_own_defaults():
    network = "network lib\ninput 3x8x8\ndefaults:\n  conv bn eps=0.001\nblock b():\n  conv 1x1 4\nb()\nconv 1x1 8\n"
    found = decls('include "lib.inc"\ndefaults:\n  conv relu\n', {"lib.inc": network})
    assert list(found.blocks) == ["b"]
    assert [type(t).__name__ for t in found.defaults["conv"]] == ["Positional"]
    inside = found.defaults_for("b")["conv"]
    assert [getattr(t, "key", None) or t.value.name for t in inside] == ["bn", "eps"]


def test_a_library_takes_the_defaults_of_the_file_that_includes_it():
    """A library included by an included network file works as in that file loaded alone; one
    included by the root takes the root's, including a `defaults:` line after the include."""
    mid = 'network mid\ninclude "lib.inc"\ndefaults:\n  conv bn\nblock m():\n  conv 1x1 4\n'
    files = {"mid.inc": mid, "lib.inc": "block b():\n  conv 1x1 4\n", "top.inc": "block t():\n  conv 1x1 4\n"}
    found = decls('include "mid.inc"\ninclude "top.inc"\ndefaults:\n  conv linear\n', files)
    words = {b: [t.value.name for t in found.defaults_for(b).get("conv", ())] for b in ("b", "m", "t")}
    assert words == {"b": ["bn"], "m": ["bn"], "t": ["linear"]}


@pytest.mark.parametrize(("files", "message"), [
    ({"lib.inc": 'include "main.inc"\n'}, "include cycle: main.inc → lib.inc → main.inc"),
])
def test_what_an_included_file_may_not_do(files, message):
    files = {**files, "main.inc": 'include "lib.inc"\n'}
    with pytest.raises(SpecError, match=message):
        decls('include "lib.inc"\n', files)


@pytest.mark.parametrize(("text", "message"), [
    ("block b():\n  conv 1x1 4\nblock b():\n  conv 1x1 4\n", "block `b` is defined twice"),
    ("block conv():\n  conv 1x1 4\n", "`conv` is a built-in word"),
    ("block b(n, n):\n  conv 1x1 n\n", "parameter `n` appears twice"),
    ("table t a b\n  r 1\n", "row `r` of table `t` has 1 values; the table has 2 columns"),
    ("defaults:\n  conv 3x3\n", "defaults set flags and options only"),
    ("defaults:\n  convv bn\n", "unknown layer type `convv`"),
    ('include "a" "b"\n', "`include` takes one quoted path"),
])
def test_declaration_mistakes(text, message):
    with pytest.raises(SpecError, match=message):
        decls(text)
