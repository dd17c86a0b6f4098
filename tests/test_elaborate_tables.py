"""incdsl.elaborate.tables: Table-1 headers and rows, and the paper's figures."""

from __future__ import annotations

import pytest

from incdsl import SpecError, ast
from incdsl.elaborate.tables import Headers, paper_figures, row_calls, take_paper
from incdsl.syntax import parse

BLOCK = parse("block inception(a, b, c=1):\n  conv 1x1 a\n").stmts[0]


def table(text: str) -> ast.Stmt:
    return parse(text).stmts[0]


def test_a_header_maps_its_labels_to_the_block_and_names_the_modules():
    headers = Headers()
    stmt = table('inception "#1x1" "#3x3" @paper(params)\n  3a 64 96 2.7K\n  3b 128 128 5K as custom\n')
    header = headers.read(stmt.links[0], BLOCK)
    assert (header.index, header.columns, header.pattern, header.paper) == (0, ("#1x1", "#3x3"), "{block}_{row}", ("params",))
    calls = list(row_calls(stmt, BLOCK, header, {}, {}))
    assert [c.rename.name for c in calls] == ["inception_3a", "custom"]
    assert [[v for v, _ in c.values] for c in calls] == [[64, 96], [128, 128]]
    assert calls[0].paper is not None and calls[0].paper.params.text == "2.7K"


def test_a_later_header_without_labels_repeats_the_last_one():
    headers = Headers()
    first = headers.read(table('inception "x" "y" as "m{row}"\n  1 1 2\n').links[0], BLOCK)
    again = headers.read(table("inception\n  2 3 4\n").links[0], BLOCK)
    assert (again.index, again.columns, again.pattern) == (first.index, first.columns, "m{row}")
    assert len(headers.all) == 1


def test_header_mistakes():
    with pytest.raises(SpecError, match="the table of `inception` has no column labels"):
        Headers().read(table("inception\n  3a 1 2\n").links[0], BLOCK)
    with pytest.raises(SpecError, match="the header names 4 columns; block `inception` takes 3"):
        Headers().read(table("inception a b c d\n  3a 1 2 3 4\n").links[0], BLOCK)
    with pytest.raises(SpecError, match="must contain `{row}`"):
        Headers().read(table('inception a b as "x"\n  3a 1 2\n').links[0], BLOCK)


def test_a_row_with_the_wrong_number_of_values_is_found_when_reached():
    stmt = table("inception a b\n  3a 1 2\n  3b 1\n")
    header = Headers().read(stmt.links[0], BLOCK)
    calls = row_calls(stmt, BLOCK, header, {}, {})
    assert next(calls).row.label == "3a"
    with pytest.raises(SpecError, match="row `3b` has 1 values; the header names 2 columns"):
        next(calls)


def test_paper_figures_from_an_annotation():
    stmt, paper = take_paper(parse('conv 7x7/2 64 @paper(params=2.7K, ops=34M, note="x")\n').stmts[0])
    assert paper is not None and (paper.params.value, paper.ops.text, paper.note) == (2700.0, "34M", "x")
    assert not any(isinstance(t, ast.Annotation) for t in stmt.links[0].terms)
    with pytest.raises(SpecError, match="unknown figure `parms`"):
        paper_figures(parse("conv 1x1 1 @paper(parms=1K)\n").stmts[0].links[0].terms[-1], {})
