"""`incdsl fmt`: the same network after formatting, idempotent, comments kept, tables aligned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import without_spans

from incdsl import bundled_specs
from incdsl.fmt import format_spec, significant_tokens
from incdsl.syntax import parse

DOC = Path(__file__).resolve().parent.parent / "docs" / "LANGUAGE.md"
DOC_EXAMPLES = re.findall(r"```inc\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _comments(text: str) -> list[str]:
    return [c.strip() for c in re.findall(r"#[^\n]*", re.sub(r'"[^"\n]*"', "", text))]


SPECS = Path(__file__).resolve().parent.parent / "specs"
LIBRARIES = sorted((SPECS / "blocks").glob("*.inc"))
CORPUS = [(str(path), path.read_text(encoding="utf-8")) for path in bundled_specs().values()]
CORPUS += [(f"LANGUAGE.md[{i}]", text) for i, text in enumerate(DOC_EXAMPLES)]


@pytest.mark.parametrize(("file", "text"), CORPUS, ids=[f for f, _ in CORPUS])
def test_formatting_keeps_the_network_and_the_comments(file, text, same_network):
    formatted = format_spec(text, file)
    assert significant_tokens(formatted) == significant_tokens(text)
    assert same_network(text, formatted, file)
    assert format_spec(formatted, file) == formatted
    assert _comments(formatted) == _comments(text)


@pytest.mark.parametrize("path", [*bundled_specs().values(), *LIBRARIES], ids=lambda p: p.name)
def test_bundled_specs_and_block_libraries_are_formatted(path, cli):
    code, _, err = cli("fmt", "--check", str(path))
    assert code == 0, err


@pytest.mark.parametrize("path", LIBRARIES, ids=lambda p: p.name)
def test_formatting_a_block_library_keeps_its_syntax_tree(path):
    text = path.read_text(encoding="utf-8")
    formatted = format_spec(text, str(path))
    assert format_spec(formatted, str(path)) == formatted
    assert _comments(formatted) == _comments(text)
    assert _tree(formatted) == _tree(text)


def _tree(text: str):
    return without_spans(parse(text).model_dump(mode="json")["stmts"])


@pytest.mark.parametrize("number", ["1e-5", "1E-3", "2.5e+1", ".5e-2", "1.e-3"])
def test_numbers_keep_their_spelling(number, same_network):
    """A float with an exponent is one token of the grammar; fmt once split `1e-5` into `1e - 5`."""
    text = f"network t\ninput 3x8x8\nconv 3x3 4 bn eps={number}\n"
    formatted = format_spec(text)
    assert formatted.splitlines()[-1] == f"conv 3x3 4 bn eps={number}"
    assert same_network(text, formatted, "t.inc")


def test_parameter_tables_align_under_their_columns():
    text = "table filters k l\n  v4 192 224\n  resnet_v1 96 8\n"
    assert format_spec(text) == "table filters    k    l\n  v4           192  224\n  resnet_v1     96    8\n"


def test_messy_spec_is_normalised(same_network):
    messy = (
        "network   t # name\n"
        "input 3x32x32\n"
        "block  b( c ,d = 2 ):\n"
        "      conv 1x1 c*d   ->conv 3x3/2 c  V   # tail\n"
        "b (4)\n"
        "b\t(c=8,d=1)   as   second\n"
        "conv 1x1 4->\n"
        "        conv 1x1 -2+6\n"
    )
    assert format_spec(messy) == (
        "network t  # name\n"
        "input 3x32x32\n"
        "block b(c, d=2):\n"
        "  conv 1x1 c * d -> conv 3x3/2 c V  # tail\n"
        "b(4)\n"
        "b(c=8, d=1) as second\n"
        "conv 1x1 4 ->\n"
        "    conv 1x1 -2 + 6\n"
    )
    assert same_network(messy, format_spec(messy), "t.inc")


def test_table_rows_align_into_columns():
    text = (
        "network t\ninput 8x8x8\nblock b(x, y):\n  conv 1x1 x -> conv 1x1 y\n"
        'b "#x" "a long label"\n 1 4 16\n 22 128 8\n'
    )
    assert format_spec(text).splitlines()[-3:] == [
        'b     "#x"  "a long label"',
        "  1      4              16",
        "  22   128               8",
    ]


def test_fmt_check_and_rewrite(tmp_path: Path, cli):
    spec = tmp_path / "s.inc"
    spec.write_text("network s\ninput 3x8x8\nconv   3x3 4\n", encoding="utf-8")
    assert cli("fmt", "--check", str(spec))[0] == 1
    code, out, err = cli("fmt", str(spec))
    assert code == 0 and out == "" and f"reformatted {spec}" in err
    assert spec.read_text() == "network s\ninput 3x8x8\nconv 3x3 4\n"
    assert cli("fmt", "--check", str(spec))[0] == 0


def test_fmt_refuses_what_does_not_parse(tmp_path: Path, cli):
    spec = tmp_path / "bad.inc"
    spec.write_text("network s\ninput 3x8x8\nconv 3x3 4 )\n", encoding="utf-8")
    code, _, err = cli("fmt", str(spec))
    assert code == 1 and ":3:12: error:" in err
    assert spec.read_text() == "network s\ninput 3x8x8\nconv 3x3 4 )\n"
