"""incdsl.elaborate.expressions: values of terms, and arguments bound to a block's parameters."""

from __future__ import annotations

import pytest

from incdsl import SpecError, ast
from incdsl.elaborate.expressions import ArgSet, ArgTable, bind, call_arguments, evaluate, split_terms
from incdsl.errors import Span
from incdsl.layers import Symbol
from incdsl.syntax import parse

AT = Span("t.inc", 1, 1)
SIZES = {"sizes": ArgTable("sizes", ("a", "b"), {"small": {"a": 1, "b": 2}}, AT)}


def item(text: str) -> ast.Item:
    return parse(text + "\n").stmts[0].links[0]


def value(text: str, env=None):
    return evaluate(item(f"conv 1x1 {text}").terms[1].value, env or {}, SIZES)


def test_arithmetic_over_block_arguments():
    assert value("2*n+1", {"n": 16}) == 33
    assert value("-n", {"n": 4}) == -4
    assert value("0.5*n", {"n": 4}) == 2.0


def test_a_bare_word_that_is_no_argument_is_a_symbol():
    assert value("linear") == Symbol("linear")
    with pytest.raises(SpecError, match="`k` is not a parameter of this block"):
        value("k+1")


def test_an_argument_table_entry_is_an_argument_set():
    assert value("sizes.small") == ArgSet({"a": 1, "b": 2})
    with pytest.raises(SpecError, match="table `sizes` has no row `big`"):
        value("sizes.big")


def test_terms_sorted_by_role():
    terms = split_terms(item("conv 3x3/2 n V eps=0.1 as c").terms, {"n": 8}, {})
    assert [w for w, _ in terms.words] == ["V"]
    assert [(k, v) for k, v, _ in terms.keyed] == [("eps", 0.1)]
    assert [getattr(v, "text", v) for v, _ in terms.positional] == ["3x3/2", 8]


def test_call_arguments_spread_an_entry_into_keywords():
    values, keywords = call_arguments(item("b(7, sizes.small)"), {}, SIZES)
    assert [v for v, _ in values] == [7]
    assert {k: v for k, (v, _) in keywords.items()} == {"a": 1, "b": 2}
    with pytest.raises(SpecError, match="a positional argument cannot follow named ones"):
        call_arguments(item("b(a=1, 2)"), {}, SIZES)


BLOCK = parse("block b(n, m, k=3):\n  conv 1x1 n\n").stmts[0]


def test_binding_fills_defaults_and_names_what_is_wrong():
    assert bind(BLOCK, [(1, AT)], {"m": (2, AT)}, AT, {}) == {"n": 1, "m": 2, "k": 3}
    with pytest.raises(SpecError, match="block `b` is missing argument `m`"):
        bind(BLOCK, [(1, AT)], {}, AT, {})
    with pytest.raises(SpecError, match="block `b` takes 3 values; 4 given"):
        bind(BLOCK, [(1, AT)] * 4, {}, AT, {})
    with pytest.raises(SpecError, match="has no parameter `q`") as err:
        bind(BLOCK, [], {"q": (1, AT)}, AT, {})
    assert err.value.hint == "the block is `b(n, m, k)`"
    with pytest.raises(SpecError, match="parameter `n` is given twice"):
        bind(BLOCK, [(1, AT)], {"n": (1, AT)}, AT, {})
