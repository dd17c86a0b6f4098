"""Every kind of value a Table-1 row (or an argument table's entry) can hold shows in every format
of `incdsl params` as the spec wrote it: a size as `3x3`, never a repr of the syntax tree."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

# A row per kind of cell: a size, a strided size, a number, an expression, a fraction, a flag, a
# quoted name; the call of `q` passes an argument table's entry (no sizes there), shown too.
SPEC = """\
network cells
input 3x16x16

table widths  c   act     name  r
  small       16  linear  "y2"  0.25

block b(k, c, act, name, r):
  concat:
    conv k c act
    conv 1x1 c as "name"

block p(win, c):
  maxpool win same -> conv 1x1 c

block q(c, act, name, r):
  conv 1x1 c act as "name" -> dropout r

b  "kernel"  "width"  "act"  "name"  "ratio"
  1a    3x3      2*4   relu   "x1"   0.5
  1b    1x5       16   linear "x2"   1.5
p  "pool"  "proj"
  2a  3x3/1  8
q(widths.small)
global_avgpool
linear 10
"""

#: The cells of each row as the spec wrote them (an expression as its value).
WRITTEN = {
    "b (1a)": {"kernel": "3x3", "width": 8, "act": "relu", "name": "x1", "ratio": 0.5},
    "b (1b)": {"kernel": "1x5", "width": 16, "act": "linear", "name": "x2", "ratio": 1.5},
    "p (2a)": {"pool": "3x3/1", "proj": 8},
}


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "cells.inc"
    path.write_text(SPEC, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
@pytest.mark.parametrize("expand", [[], ["--expand"]])
def test_every_cell_shows_as_the_spec_wrote_it(cli, spec, fmt, expand):
    code, out, err = cli("params", spec, "--format", fmt, *expand)
    assert (code, err) == (0, ""), err
    assert "span" not in out and "Span(" not in out and "kind=" not in out and str(Path(spec).parent) not in out
    if fmt == "json":
        rows = {row["type"]: row["columns"] for row in json.loads(out)["rows"]}
        for label, cells in WRITTEN.items():
            assert rows[label] == cells
        assert rows["q"] == {"c": 16, "act": "linear", "name": "y2", "r": 0.25}
        return
    if fmt == "csv":
        rows = {row["type"]: row for row in csv.DictReader(io.StringIO(out))}
        for label, cells in WRITTEN.items():
            assert {k: rows[label][k] for k in cells} == {k: str(v) for k, v in cells.items()}
        return
    for label, cells in WRITTEN.items():
        line = next(line for line in out.splitlines() if line.strip(" |").startswith(label))
        shown = [str(v) for v in cells.values()]
        words = line.replace("|", " ").split()
        assert all(text in words for text in shown), (line, shown)
