"""incdsl.elaborate.walker: statements over an immutable cursor, checked node by node."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from incdsl import SpecError
from incdsl.elaborate.declarations import collect
from incdsl.elaborate.names import Names, Scope
from incdsl.elaborate.walker import Cursor, Output, Walker
from incdsl.syntax import parse


def walk(text: str, at: Cursor | None = None) -> tuple[str, Output]:
    """Declarations from all of ``text``; its last statement walked from ``input``."""
    spec = parse(text, "t.inc")
    walker = Walker(collect(spec, None), Names(), Output())
    out = walker.statement(spec.stmts[-1], "input", at or Cursor(Scope("")))
    return out, walker.out


def edges(out: Output) -> list[tuple[str, tuple[str, ...]]]:
    return [(n.name, n.inputs) for n in out.nodes]


def test_a_cursor_is_replaced_not_changed():
    at = Cursor(Scope(""))
    with pytest.raises(FrozenInstanceError):
        at.row = 3  # type: ignore[misc]
    inside = at.inside(Scope("m"))
    assert (at.scope.path, inside.scope.path, inside.label) == ("", "m", None)


def test_a_chain_reads_the_previous_link():
    last, out = walk("conv 3x3 8 -> maxpool 3x3/2 -> conv 1x1 4 as head\n")
    assert last == "head"
    assert edges(out) == [("conv1", ("input",)), ("maxpool1", ("conv1",)), ("head", ("maxpool1",))]


def test_concat_branches_and_a_residual_add():
    last, out = walk("residual scale=0.5:\n  concat:\n    conv 1x1 2\n    conv 1x1 2 -> conv 3x3 2\n  conv 1x1 8\n")
    assert last == ":add"
    assert edges(out) == [
        ("branch1", ("input",)),
        ("branch2.0", ("input",)),
        ("branch2.1", ("branch2.0",)),
        (":concat", ("branch1", "branch2.1")),
        ("conv1", (":concat",)),
        (":add", ("input", "conv1")),
    ]


def test_nodes_record_the_cursor_they_were_made_at():
    text = "block b(n):\n  conv 1x1 n\n2 x b(4)\n"
    _, out = walk(text, Cursor(Scope(""), row=7))
    assert [(n.name, n.row, n.repeat_index) for n in out.nodes] == [("b1.conv1", 7, 0), ("b2.conv1", 7, 1)]
    assert out.outputs["b1"] == "b1.conv1"


def test_block_arguments_are_in_force_only_inside_the_block():
    _, out = walk("block b(n):\n  conv 1x1 n\nb(6) as x\n")
    assert out.nodes[0].attrs.out_channels == 6
    with pytest.raises(SpecError, match="`n` is not a parameter"):
        walk("block b(n):\n  conv 1x1 n\nconv 1x1 n+1\n")


def test_recursion_is_refused_with_the_call_chain():
    with pytest.raises(SpecError, match="block `a` calls itself: a → b → a"):
        walk("block a():\n  b()\nblock b():\n  a()\na()\n")


def test_a_table_below_the_top_level_adds_no_rows():
    text = "block m(c):\n  conv 1x1 c\nblock outer():\n  m width\n    r1 4\n    r2 8\nouter()\n"
    _, out = walk(text, Cursor(Scope(""), row=0))
    assert [n.name for n in out.nodes] == ["outer1.m_r1.conv1", "outer1.m_r2.conv1"]
    assert out.rows == [] and out.row_labels == {"r1": "outer1.m_r1", "r2": "outer1.m_r2"}
