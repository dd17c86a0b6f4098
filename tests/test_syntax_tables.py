"""The parser's tables ship with the package (incdsl/parser_tables.py), so that no process builds
the LALR tables (about 25 ms of every `incdsl check`) and none reads Lark's pickle cache. They must
be made from the grammar as it is, by the Lark the dev install pins, and parse as the grammar does."""

from __future__ import annotations

from pathlib import Path

import lark
import pytest

from incdsl import parser_tables, syntax

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "incdsl" / "parser_tables.py"


def test_the_tables_are_made_from_this_grammar_by_this_lark(request):
    if request.config.getoption("--update-golden"):
        MODULE.write_text(syntax.parser_tables_source(), encoding="utf-8")
        pytest.skip("rewrote incdsl/parser_tables.py")
    made_for = (parser_tables.GRAMMAR_SHA256, parser_tables.LARK_VERSION)
    assert made_for == (syntax._digest(syntax._grammar()), lark.__version__), (
        "incdsl/parser_tables.py is stale: run `make golden` after changing the grammar or Lark's version"
    )


def test_the_shipped_parser_is_the_grammars():
    """Every bundled spec parses to the same tree, and a broken one fails at the same token with
    the same expectations, through the shipped tables and through a parser built from the grammar."""
    shipped, built = syntax._parser(), syntax._build_parser(syntax._grammar())
    assert shipped is not built and shipped.parser.parser.parser.parse_table is not None
    specs = sorted((ROOT / "specs").rglob("*.inc"))
    assert len(specs) >= 8
    for path in specs:
        text = path.read_text(encoding="utf-8")
        assert shipped.parse(text) == built.parse(text), path
        for mistake in ("conv 3x3 ) 8", "conv 1x1 8 -> -> relu", "maxpool 3x3 x = = 1", "block b(:"):
            with pytest.raises(lark.exceptions.UnexpectedInput) as a:
                shipped.parse(f"{text}\n{mistake}\n")
            with pytest.raises(lark.exceptions.UnexpectedInput) as b:
                built.parse(f"{text}\n{mistake}\n")
            assert (type(a.value), a.value.line, a.value.column, getattr(a.value, "expected", None)) == (
                type(b.value), b.value.line, b.value.column, getattr(b.value, "expected", None)
            ), (path, mistake)
