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


def test_a_file_that_formatting_would_push_over_the_size_limit_is_kept(tmp_path: Path, cli):
    """Tab indentation becomes two spaces a level: 40,000 tab-indented comment lines (120,054
    characters) would format to 160,056, over the 131,072 a spec may have. The fuzzer's 20 refused
    mutants were such files, told "this is a bug in incdsl fmt"; the message now says what it is."""
    text = "network t\ninput 3x8x8\nconcat:\n\tconv 1x1 4\n" + "\t#\n" * 40_000 + "\tconv 1x1 4\n"
    spec = tmp_path / "long.inc"
    spec.write_text(text, encoding="utf-8")
    code, _, err = cli("fmt", str(spec))
    grown = len(text) + 40_000 + 2  # each tab-indented line gains a character
    assert code == 1 and f"formatted, this file would be {grown:,} characters long, over the limit of 131,072" in err
    assert "split it with `include`" in err and "bug" not in err
    assert spec.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r"])
def test_a_line_break_only_other_programs_see_is_refused_and_the_file_kept(char, tmp_path: Path, cli):
    """`# note\\u2028conv 3x3 64` was one comment to the parser and two lines to fmt, which wrote
    the second as a real layer (params 314 → 6,498)."""
    spec = tmp_path / "s.inc"
    original = f"network s\ninput 3x8x8\nconv 3x3 4  # note{char}conv 3x3 64\n".encode()
    spec.write_bytes(original)
    code, out, err = cli("fmt", str(spec))
    assert code == 1 and out == ""
    assert f":3:19: error: this file contains U+{ord(char):04X}" in err
    assert spec.read_bytes() == original


def test_tabs_are_measured_as_the_parser_measures_them(same_network):
    """A tab was 8 columns to the parser and 1 to fmt: a file indented with tabs came out with
    its levels changed. A file indents with one of the two; fmt reads either."""
    text = "network t\ninput 3x8x8\nblock b():\n\tconcat:\n\t\tconv 1x1 2\n\t\tconv 1x1 2 -> conv 3x3 2\n\tconv 1x1 4\nb()\n"
    formatted = format_spec(text)
    assert formatted.splitlines()[3:7] == ["  concat:", "    conv 1x1 2", "    conv 1x1 2 -> conv 3x3 2", "  conv 1x1 4"]
    assert same_network(text, formatted, "t.inc")


def test_crlf_files_come_out_with_line_feeds(same_network):
    text = "network t\r\ninput 3x8x8\r\nconv   3x3 4  # c\r\n"
    assert format_spec(text) == "network t\ninput 3x8x8\nconv 3x3 4  # c\n"


def test_fmt_refuses_text_that_would_mean_something_else(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch):
    """Whatever goes wrong in the formatter, the check after it keeps the file: here a formatter
    that drops the last layer (same tokens but one) and one that moves a line out of its block."""
    from incdsl import fmt

    spec = tmp_path / "s.inc"
    original = "network s\ninput 3x8x8\nblock b():\n  conv 1x1 4\n  conv 1x1 4\nb()\nconv 3x3 4\n"
    spec.write_text(original, encoding="utf-8")
    broken = [
        lambda self: "".join(line + "\n" for line in self.lines[:-2]),
        lambda self: original.replace("  conv 1x1 4\nb()", "b()\nconv 1x1 4"),
    ]
    for run in broken:
        monkeypatch.setattr(fmt._Formatter, "run", run)
        code, _, err = cli("fmt", str(spec))
        assert code == 1 and f"{spec}:1:1: error: formatting would change what this file means (its tokens differ)" in err
        assert spec.read_text(encoding="utf-8") == original
    code, _, err = cli("fmt", "--check", str(spec))
    assert code == 1 and "would change what this file means" in err


def test_meaning_difference_reads_tokens_then_trees_then_networks(tmp_path: Path):
    from incdsl.fmt import meaning_difference

    (tmp_path / "lib.inc").write_text("block b():\n  conv 1x1 4\n", encoding="utf-8")
    text = 'network s\ninput 3x8x8\ninclude "lib.inc"\nb()\n'
    file = str(tmp_path / "s.inc")
    assert meaning_difference(text, text.replace("b()", "b( )  # same"), file) is None
    assert meaning_difference(text, text.replace("b()", "b()\nconv 1x1 2"), file) == "its tokens differ"
    library = "block b():\n  conv 1x1 4\n"  # loads as no network: its tree is what it means
    assert meaning_difference(library, library.replace("  ", "    "), file) is None


def test_fmt_of_a_file_that_is_not_utf8_names_that_file(tmp_path: Path, cli):
    """`fmt bad.inc` failed with UnboundLocalError; `fmt good.inc bad.inc` showed good.inc's line."""
    good, bad = tmp_path / "good.inc", tmp_path / "bad.inc"
    good.write_text("network g\ninput 3x8x8\nconv 3x3 4  # the good line\n", encoding="utf-8")
    bad.write_bytes(b"network b\ninput 3x8x8\n# caf\xe9\nconv 3x3 4\n")
    code, _, err = cli("fmt", str(good), str(bad))
    assert code == 1
    assert err.splitlines()[:3] == [f"{bad}:3:6: error: this file is not valid UTF-8 (byte 0xe9)", " 3 | # caf\ufffd", "   |      ^"]


def test_a_file_of_comments_formats_in_linear_time():
    """Each comment's level looked for the next code line from that comment on: 63,785 lines of
    `#` (a fuzz mutant) took minutes. Twice the comments should take about twice as long."""
    import time

    def seconds(n: int) -> float:
        text = "network t\ninput 3x8x8\nblock b():\n  conv 1x1 4\n" + "  #\n" * n + "b()\n"
        start = time.process_time()
        assert format_spec(text).count("#") == n
        return time.process_time() - start

    small, large = seconds(2000), seconds(16000)
    assert large < 8 * small * 2, f"8x the comments took {large / small:.1f}x as long"
