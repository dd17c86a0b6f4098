"""Every mistake in a spec is a SpecError with file:line:column, a caret and a hint."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import incdsl
from incdsl import SpecError, load, loads
from incdsl.errors import SpecWarning
from incdsl.params_table import params_table

HEAD = "network t\ninput 3x32x32\n"

INCEPTION = """
block inception(n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_proj):
  concat:
    conv 1x1 n1x1
    conv 1x1 n3x3red -> conv 3x3 n3x3
    conv 1x1 n5x5red -> conv 5x5 n5x5
    maxpool 3x3/1 same -> conv 1x1 pool_proj
"""


def error(text: str, file: str = "t.inc") -> SpecError:
    with pytest.raises(SpecError) as info:
        loads(text, file=file)
    return info.value


def where(err: SpecError) -> tuple[int | None, int | None]:
    return err.line, err.column


def test_unknown_layer_type_suggests_the_closest():
    err = error(HEAD + "convv 3x3 16\n")
    assert err.message == "unknown layer type `convv`"
    assert where(err) == (3, 1)
    assert err.hint == "did you mean `conv`?"
    assert err.file == "t.inc"


@pytest.mark.parametrize(
    ("line", "typo", "keyword"),
    [
        ("netwrok t", "netwrok", "network"),
        ("blok inception(a):\n  conv 1x1 a", "blok", "block"),
        ("concatt:\n  conv 1x1 4\n  conv 1x1 4", "concatt", "concat"),
        ("defualts:\n  conv bn", "defualts", "defaults"),
    ],
)
def test_keyword_typo_suggests_the_keyword(line, typo, keyword):
    err = error(HEAD + line + "\n")
    assert typo in err.render() or err.line == 3
    assert err.hint == f"did you mean `{keyword}`?"


def test_option_typo_suggests_flag_or_parameter():
    err = error(HEAD + "conv 3x3 16 lienar\n")
    assert err.message == "unknown option `lienar` for conv"
    assert err.hint == "did you mean `linear`?"
    assert where(err) == (3, 13)
    err = error(HEAD + "block b(width):\n  conv 1x1 widht\nb(4)\n")
    assert err.hint == "did you mean `width`?"


def test_wrong_number_of_values_in_a_table_row():
    text = HEAD + INCEPTION + 'inception "#1x1" "#3x3 reduce" "#3x3" "#5x5 reduce" "#5x5" "pool proj"\n'
    text += "  3a 64 96 128 16 32 32\n  3b 128 128 192 32 96\n"
    err = error(text)
    assert err.message == "row `3b` has 5 values; the header names 6 columns"
    assert err.line == 12
    assert "#1x1, #3x3 reduce" in (err.hint or "")


def test_table_header_whose_labels_were_eaten_by_a_comment():
    text = HEAD + INCEPTION + "inception #1x1 #3x3red #3x3 #5x5red #5x5 pool_proj\n  3a 64 96 128 16 32 32\n"
    err = error(text)
    assert "no column labels" in err.message
    assert "quote labels that start with `#`" in (err.hint or "")


def test_unknown_block_name():
    err = error(HEAD + INCEPTION + "inceptoin(64, 96, 128, 16, 32, 32)\n")
    assert err.message == "unknown block `inceptoin`"
    assert err.hint == "did you mean `inception`?"
    assert where(err) == (10, 1)


def test_missing_block_argument():
    err = error(HEAD + INCEPTION + "inception(64, 96, 128, 16, 32)\n")
    assert err.message == "block `inception` is missing argument `pool_proj`"
    assert "inception(n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_proj)" in (err.hint or "")


def test_unknown_keyword_argument():
    err = error(HEAD + INCEPTION + "inception(64, 96, 128, 16, 32, pool_prj=4)\n")
    assert err.message == "block `inception` has no parameter `pool_prj`"
    assert err.hint == "did you mean `pool_proj`?"


def test_duplicate_layer_name():
    err = error(HEAD + "conv 3x3 16 as stem\nconv 3x3 16 as stem\n")
    assert err.message == "duplicate layer name `stem`"
    assert where(err) == (4, 13)
    assert "t.inc:3:13" in (err.hint or "")


@pytest.mark.parametrize(("value", "message"), [("0", "at least 1; got 0"), ("-16", "at least 1; got -16")])
def test_zero_or_negative_channel_count(value, message):
    err = error(HEAD + f"conv 3x3 {value}\n")
    assert err.message == f"channel count must be {message}"
    assert where(err) == (3, 10)


def test_kernel_larger_than_its_input():
    err = error("network t\ninput 8x4x4\navgpool 7x7\n")
    assert err.message.startswith("avgpool 7x7/1 on a 4x4 input: the window is larger than its input")
    assert where(err) == (3, 1)
    assert "global_avgpool" in (err.hint or "")


def test_concat_with_mismatched_spatial_sizes_names_both_branches():
    text = HEAD + "block b():\n  concat:\n    conv 1x1 4\n    conv 3x3 4 V\nb() as m\n"
    err = error(text)
    assert err.message.startswith("concat in `m`: branch1 is 32×32 but branch2 is 30×30")
    assert err.line == 4


def test_stride_and_valid_padding_shrinking_to_nothing():
    err = error("network t\ninput 3x5x5\nconv 3x3/2 8 V\nconv 3x3/2 8 V\n")
    assert err.message.startswith("conv 3x3/2 on a 2x2 input: the window is larger than its input (no padding)")
    assert err.line == 4


def test_include_of_a_missing_file(tmp_path: Path):
    spec = tmp_path / "net.inc"
    spec.write_text(HEAD + 'include "blocks/nope.inc"\nconv 3x3 4\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load(spec)
    assert info.value.message == 'cannot include "blocks/nope.inc": no such file'
    assert info.value.line == 3


def test_include_cycle(tmp_path: Path):
    (tmp_path / "a.inc").write_text('include "b.inc"\nblock a():\n  conv 1x1 4\n', encoding="utf-8")
    (tmp_path / "b.inc").write_text('include "a.inc"\n', encoding="utf-8")
    spec = tmp_path / "net.inc"
    spec.write_text(HEAD + 'include "a.inc"\na()\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load(spec)
    err = info.value
    assert err.message.startswith("include cycle: ")
    assert err.message.endswith("a.inc → b.inc → a.inc")
    assert err.file is not None and err.file.endswith("b.inc")
    assert err.line == 1


def test_recursion_between_blocks():
    text = HEAD + "block a():\n  b()\nblock b():\n  conv 1x1 4 -> a()\na()\n"
    err = error(text)
    assert err.message == "block `a` calls itself: a → b → a"
    assert where(err) == (6, 17)


@pytest.mark.parametrize("shape", ["3x224", "224", "3x224x224x2", "0x32x32", "3x224x224/2"])
def test_malformed_input(shape):
    err = error(f"network t\ninput {shape}\nconv 3x3 4\n")
    assert err.message == f"malformed input `{shape}`: expected channels×height×width"
    assert err.line == 2
    assert "input 3x224x224" in (err.hint or "")


def test_file_that_is_not_utf8(tmp_path: Path):
    spec = tmp_path / "latin1.inc"
    spec.write_bytes(HEAD.encode() + "# caf\xe9\nconv 3x3 4\n".encode("latin-1"))
    with pytest.raises(SpecError) as info:
        load(spec)
    assert info.value.message == "this file is not valid UTF-8 (byte 0xe9)"
    assert where(info.value) == (3, 6)
    # the line is shown, the bad byte as the replacement character, under the caret
    assert info.value.render().splitlines()[1:3] == [" 3 | # caf\ufffd", "   |      ^"]


def test_a_column_after_multibyte_characters_counts_characters(tmp_path: Path):
    spec = tmp_path / "mixed.inc"
    spec.write_bytes(HEAD.encode() + "# 합성곱 \xff\nconv 3x3 4\n".encode().replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(SpecError) as info:
        load(spec)
    assert where(info.value) == (3, 7)


# --- what the parser reads is what every other reader sees ---------------------------------


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r", "\x1b", "\x00", "\u202e"])
def test_characters_other_programs_read_differently_are_refused(char):
    """`# note\u2028conv 3x3 64` was a comment to the parser and two lines to `fmt`, which made the
    second a real layer; the character is refused wherever it is, at its place."""
    err = error(HEAD + f"conv 3x3 4  # note{char}conv 3x3 64\n")
    assert err.message.startswith(f"this file contains U+{ord(char):04X} (")
    assert where(err) == (3, 19)
    excerpt = err.render().splitlines()[1]
    assert excerpt == " 3 | conv 3x3 4  # note\ufffdconv 3x3 64"  # shown, never sent to the terminal as it is


def test_crlf_line_ends_are_fine():
    assert loads(HEAD.replace("\n", "\r\n") + "conv 3x3 4\r\n").node("conv1").shape == (4, 32, 32)


def test_a_tab_among_spaces_is_named():
    err = error(HEAD + "block b():\n  conv 1x1 4\n\tconv 1x1 4\nb()\n")
    assert err.message == "this line is indented with tabs, but line 4 with spaces"
    assert where(err) == (5, 1) and "here with spaces" in (err.hint or "")
    err = error(HEAD + "block b():\n \tconv 1x1 4\nb()\n")
    assert err.message == "this line is indented with both tabs and spaces"


def test_tabs_alone_indent_fine():
    assert loads(HEAD + "block b():\n\tconv 1x1 4\n\tconcat:\n\t\tconv 1x1 2\n\t\tconv 1x1 2\nb()\n").node("b1:concat")


def test_a_percentage_says_how_to_write_a_fraction():
    err = error(HEAD + "dropout 40%\n")
    assert err.message == "`%` is not part of the language" and where(err) == (3, 11)
    assert err.hint == "write a fraction as a decimal: a 40% dropout is `dropout 0.4`"


# --- values that would fail (or mislead) at run time ---------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("conv 3x3 4 bn eps=0", "eps must be greater than 0; got 0"),
        ("conv 3x3 4 bn eps=-0.001", "eps must be greater than 0; got -0.001"),
        ("bn eps=0", "eps must be greater than 0; got 0"),
        ("lrn 5 alpha=-1", "alpha must be at least 0; got -1"),
        ("lrn 5 k=0", "k must be greater than 0; got 0"),
        ("global_avgpool -> linear 10 bn eps=0", "eps must be greater than 0"),
        ("global_avgpool -> linear 10 -> l2norm eps=-1", "eps must be greater than 0"),
    ],
)
def test_settings_that_would_divide_by_zero(line, message):
    assert message in error(HEAD + line + "\n").message


def test_a_negative_aux_weight():
    err = error(HEAD + "conv 3x3 4 as stem\nglobal_avgpool -> linear 2\naux after stem weight=-0.3:\n  linear 2\n")
    assert err.message == "weight must be at least 0; got -0.3"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{row}{", "a name pattern has a brace that opens or closes no field"),
        ("{row}}", "a name pattern has a brace that opens or closes no field"),
        ("{row}{0}", "`{0}` in a name pattern: the fields are {row}, {block} and {layer}"),
        ("{row}_{layer}_{layer}", "a name pattern holds `{layer}` once"),
        ("{row}{foo}", "`{foo}` in a name pattern"),
        ("{row}{row:>400000000}", "`{row:>400000000}` in a name pattern"),  # once a 1.6 GB string
        ("{row}{block.__class__.__mro__}", "`{block.__class__.__mro__}` in a name pattern"),  # once Python internals
        ("m{block}", "a table's name pattern must contain `{row}`"),
    ],
)
def test_a_name_pattern_holds_only_its_fields(pattern, message):
    err = error(HEAD + f'block b(n):\n  conv 1x1 n\nb "n" as "{pattern}"\n  r 4\n')
    assert err.message.startswith(message) and where(err) == (5, 7)


def test_a_name_pattern_fills_row_and_block():
    net = loads(HEAD + 'block b(n):\n  conv 1x1 n\nb "n" as "{block}X{row}"\n  r 4\n')
    assert "bXr.conv1" in net


@pytest.mark.parametrize(
    "line",
    [
        "linear 10 -> conv 1x1 4",
        "linear 10 -> maxpool 2x2/2",
        "flatten -> avgpool 1x1",
        "linear 10 -> lrn 5",
        "linear 10 -> bn -> global_avgpool",
        "linear 10 -> relu -> dropout 0.5 -> adaptive_avgpool 1",
    ],
)
def test_spatial_layers_after_linear(line):
    """These passed `check` and crashed in forward: a linear layer's output is (N, F)."""
    err = error(HEAD + line + "\n")
    assert "reads the output of a `linear` or `flatten`" in err.message and err.line == 3


def test_a_residual_around_linear_is_refused_not_broadcast():
    """On a 1×1 input this passed `check` and added (N, 8, 1, 1) to (N, 8): a (N, 8, N, 8) sum
    that mixed the batch's samples, with no error anywhere."""
    err = error("network t\ninput 8x1x1\nresidual:\n  linear 8\n")
    assert err.message == "residual add joins feature vectors (after a `linear` or `flatten`) with maps"
    assert where(err) == (3, 1)


def test_a_concat_of_vectors_and_maps_is_refused_and_of_vectors_alone_is_fine():
    err = error("network t\ninput 8x1x1\nconcat:\n  linear 4\n  conv 1x1 4\n")
    assert err.message.startswith("concat joins feature vectors")
    net = loads("network t\ninput 8x4x4\nconcat:\n  linear 4\n  flatten\nbn -> linear 2\n")
    assert net.node(":concat").shape == (4 + 8 * 4 * 4, 1, 1) and net.is_flat("bn1")
    assert incdsl.compile(net).eval()(torch.randn(2, 8, 4, 4)).shape == (2, 2)


def test_empty_file(tmp_path: Path):
    spec = tmp_path / "empty.inc"
    spec.write_bytes(b"")
    with pytest.raises(SpecError) as info:
        load(spec)
    assert info.value.message == "this spec is empty"
    assert where(info.value) == (1, 1)


def test_comments_only_is_empty_too():
    assert error("# 빈 파일\n# nothing here\n").message == "this spec is empty"


def test_comments_in_any_language_are_fine():
    net = loads("# 구글넷의 첫 층\nnetwork t  # 네트워크\ninput 3x32x32\nconv 3x3 16  # 합성곱 — ça marche\n")
    assert net.node(net.output).shape == (16, 32, 32)


@pytest.mark.parametrize(
    ("line", "name", "reason"),
    [
        ("conv 3x3 4 as forward", "forward", "shadow the torch.nn.Module attribute"),
        ("conv 3x3 4 as _private", "_private", "starts with `_`"),
        ('conv 3x3 4 as "a.b"', "a.b", "cannot name a module"),
    ],
)
def test_names_that_cannot_be_python_attributes(line, name, reason):
    err = error(HEAD + line + "\n")
    assert err.message.startswith(f"layer name `{name}`")
    assert reason in err.message
    assert where(err) == (3, 12)


def test_table_row_label_may_name_a_module_alone():
    text = HEAD + "block b(c):\n  conv 1x1 c\n" + 'b "c" as "{row}"\n  3a 4\n  _x 4\n'
    err = error(text)
    assert err.message == "module name `_x` starts with `_`"
    assert where(err) == (7, 3)
    assert [s.name for s in loads(text.rsplit("  _x", 1)[0]).scopes] == ["3a"]


def test_residual_channel_mismatch_names_both_counts_and_the_expansion_conv():
    text = "network t\ninput 8x8x8\nresidual scale=0.1:\n  conv 1x1 4\n  conv 1x1 6 linear\n"
    err = error(text)
    assert "the shortcut has 8 channels but the residual branch ends with 6" in err.message
    assert err.line == 5


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (HEAD + "conv 3x3 16 $\n", "unexpected character `$`", 3),
        (HEAD + "conv 3x3 16\n    conv 3x3 16\n", "unexpected indentation", 4),
        (HEAD + "concat:\n    conv 1x1 4\n  conv 1x1 4\n", "this line's indentation (column 3) matches no enclosing block", 5),
        (HEAD + 'include "x.inc\n', "this string is not closed on its line", 3),
        (HEAD + "block b(a:\n  conv 1x1 a\n", "unexpected `:`", 3),
        (HEAD + "concat:\n", "the file ended in the middle of a statement", 3),
        (HEAD + "concat:\n  conv 1x1 4\n  b(1,\n", "the file ended in the middle of a statement", 5),
        (HEAD + "".join("  " * i + "seq:\n" for i in range(40)), "blocks are nested more than 32 levels deep", 36),
    ],
)
def test_syntax_errors(text, message, line):
    err = error(text)
    assert err.message == message
    assert err.line == line


def test_rendered_error_shows_the_line_and_a_caret():
    err = error(HEAD + "conv 3x3 16\nconvv 3x3 16\n")
    assert err.render() == (
        "t.inc:4:1: error: unknown layer type `convv`\n"
        " 4 | convv 3x3 16\n"
        "   | ^^^^^\n"
        "hint: did you mean `conv`?"
    )


def test_cli_reports_a_spec_error_on_stderr_with_status_1(tmp_path: Path, cli):
    spec = tmp_path / "bad.inc"
    spec.write_text(HEAD + "conv 3x3 0\n", encoding="utf-8")
    code, out, err = cli("check", str(spec))
    assert code == 1
    assert out == ""
    assert err.startswith(f"{spec}:3:10: error: channel count must be at least 1; got 0\n")
    assert " 3 | conv 3x3 0\n" in err
    assert "Traceback" not in err


def test_cli_usage_error_is_status_2(cli):
    code, out, err = cli("params", "googlenet", "--format", "xml")
    assert code == 2
    assert "invalid choice" in err


def test_colour_only_when_asked():
    err = error(HEAD + "convv 3x3 16\n")
    assert "\033[" not in err.render()
    coloured = err.render(color=True)
    assert "\033[1;31merror:\033[0m" in coloured
    assert "\033[" not in coloured.replace("\033[1;31m", "").replace("\033[0m", "").replace("\033[1m", "").replace(
        "\033[31m", "").replace("\033[1;36m", "")


def test_no_color_is_respected(monkeypatch):
    from incdsl.cli import use_color

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Terminal())


def test_aux_head_after_a_module_inside_a_repeat():
    text = HEAD + "3 x conv 1x1 4 as repeat\naux after repeat weight=0.3:\n  global_avgpool -> linear 2\n"
    err = error(text)
    assert err.message == "aux head is attached after `repeat`, which is not a layer or module of this network"
    assert err.hint is not None and '"repeat.' in err.hint
    net = loads(text.replace("after repeat", 'after "repeat.1"'))
    assert net.aux[0].after == "repeat.1"


@pytest.mark.parametrize(
    ("text", "at", "message"),
    [
        # an indented body under `network NAME:` was dropped, and the spec "defined no layers"
        ("network t:\n  input 3x32x32\n  conv 3x3 8\n", (2, 3), "`network` has no indented body"),
        ("network t\ninput 3x32x32:\n  conv 3x3 8\n", (3, 3), "under `input …:` go only `normalize` lines, not `conv`"),
        # what followed `network` or `input` on its line was dropped
        (HEAD.replace("input 3x32x32", "input 3x32x32 -> conv 3x3 8"), (2, 18), "`input` stands alone on its line"),
        ("network t -> conv 3x3 8\ninput 3x32x32\nconv 3x3 8\n", (1, 14), "`network` stands alone on its line"),
        # a second name or input silently replaced the first
        (HEAD + "network u\nconv 3x3 8\n", (3, 1), "a second `network` line (the first is on line 1)"),
        (HEAD + "input 3x64x64\nconv 3x3 8\n", (3, 1), "a second `input` line (the first is on line 2)"),
    ],
)
def test_network_and_input_lines_lose_nothing(text, at, message):
    err = error(text)
    assert (err.message, where(err)) == (message, at)
    assert err.hint


def test_an_unexpected_token_is_named_once_and_without_an_article():
    err = error(HEAD + "concat:\n  conv 3x3 8 (\nconv 1x1 4\n")
    assert (err.message, where(err)) == ("unexpected `(`", (4, 14))
    err = error(HEAD + "block b(w) foo:\n  conv 1x1 w\n")
    assert (err.message, where(err)) == ("unexpected name `foo`", (3, 12))


@pytest.mark.parametrize("word", incdsl.syntax.BUILTIN_WORDS)
def test_a_built_in_word_with_arguments_in_parentheses_is_refused_at_the_parenthesis(word):
    """`residual(scale=0.5):` and its like would lose what is in the parentheses: every layer type,
    container and top-level word is refused at the `(`, with the spelling that works."""
    line = f"{word}(scale=0.5, act=linear) as r"
    err = error(HEAD + line + ":\n  conv 1x1 3\n  conv 1x1 3\n")
    assert where(err) == (3, len(word) + 1)
    assert "takes nothing in parentheses" in err.message
    assert err.hint.startswith(f"write `{word} scale=0.5 act=linear as r")


@pytest.mark.parametrize("word", ["concat", "residual"])
def test_a_container_given_a_value_in_parentheses_is_shown_its_settings_by_name(word):
    err = error(HEAD + f"2 x {word}(0.3):\n  conv 1x1 3\n  conv 1x1 3\n")
    assert where(err) == (3, len(word) + 5)
    options = " ".join(f"{key}=…" for key in incdsl.layers.CONTAINER_OPTIONS[word])
    assert err.hint.endswith(f"`{word} {options}:`")


# Every place an `as` name is written inside a block: a layer, a concat, a residual, `seq NAME`,
# a repeat, a block call and a table row. `@` marks where the name goes.
_NAMED_INSIDE_A_BLOCK = {
    "layer": "  conv 1x1 4 as @\n",
    "concat": "  concat as @:\n    conv 1x1 4\n    conv 1x1 4\n",
    "residual": "  residual as @:\n    conv 1x1 3\n",
    "seq": "  concat:\n    seq as @:\n      conv 1x1 4\n    conv 1x1 4\n",
    "repeat": "  2 x conv 1x1 3 as @\n",
    "block call": "  inner(4) as @\n",
    "table row": "  inner  n\n    r1 4 as @\n",
}


@pytest.mark.parametrize("place", list(_NAMED_INSIDE_A_BLOCK))
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ('"{row}_1x1"', "fields such as {row} are filled in only in a table header's name pattern"),
        ('"{block}_1x1"', "fields such as {row} are filled in only in a table header's name pattern"),
        ("name", "`name` is a parameter of this block, and `as` takes a name as written"),
    ],
)
def test_an_as_name_inside_a_block_is_taken_as_written_or_refused(place, name, message):
    """`as "{row}_1x1"` made a module literally named `{row}_1x1`, and `as name` with a parameter
    `name` one named `name`: both are refused where they are written; `as "name"` is the word itself."""
    body = _NAMED_INSIDE_A_BLOCK[place]
    text = HEAD + "block inner(n):\n  conv 1x1 n\n" + "block b(name=1):\n" + body + "b()\n"
    err = error(text.replace("@", name, 1))
    assert message in err.message
    assert where(err) == (6 + body.split("@")[0].count("\n"), len(body.split("@")[0].rsplit("\n", 1)[-1]) - 2)
    quoted = loads(text.replace("@", '"name"', 1), file="t.inc")
    assert any(s.name.startswith("b1.name") for s in quoted.scopes) or any(n.name.startswith("b1.name") for n in quoted.nodes)


@pytest.mark.parametrize(
    ("expansion", "warned"),
    [("linear", True), ("linear bn", False), ("linear nobn", False), ("relu", False)],
)
def test_a_default_batch_norm_on_a_residuals_linear_expansion_is_warned_about_once(expansion, warned):
    """`defaults: conv bn` gives the linear 1x1 expansion a batch norm (+C params against timm's
    Block35, which has a bias there); said once for all the copies of a repeat, at the conv."""
    text = HEAD + f"defaults:\n  conv bn\nconv 1x1 8\n3 x residual scale=0.17:\n  conv 1x1 4 -> conv 1x1 8 {expansion}\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpecWarning)
        net = loads(text, file="t.inc")
    found = [w.message for w in caught if isinstance(w.message, SpecWarning)]
    assert len(found) == warned
    if warned:
        assert (found[0].line, found[0].column) == (7, 17)
        bn, nobn = (loads(text.replace(expansion, f"linear {w}"), file="t.inc") for w in ("bn", "nobn"))
        extra = (params_table(bn).total.params - params_table(nobn).total.params) // 3  # three copies
        assert f"({extra:+,} params per instance against `linear nobn`)" in found[0].message
        assert net.node("conv3").attrs.bn_eps is not None


_BLOCK35 = "block block35(scale=0.1):\n  residual scale=scale:\n    conv 1x1 3 linear nobn\n"
_TWO = "\n  conv 1x1 4\n  conv 1x1 4\n"


@pytest.mark.parametrize(
    ("text", "at", "message", "hint"),
    [
        # a repeat's count written after the call, or after a layer
        (_BLOCK35 + "block35(0.17) x 5\n", (6, 15), "a repeat's count goes before what it repeats", "`5 x block35(…)`"),
        ("conv 3x3 3 x 2\n", (3, 12), "a repeat's count goes before what it repeats", "`2 x conv …`"),
        # a missing colon is reported at the end of its own line, not at the next one
        ("concat" + _TWO, (3, 7), "`concat` needs `:` at the end of its line", "write `concat:`"),
        ("residual scale=0.2\n  conv 1x1 3\n", (3, 19), "`residual` needs `:` at the end of its line", "write `residual:`"),
        # a line between two open levels is offered both, the deeper first
        ("block b():\n  concat:\n    conv 1x1 4\n   conv 1x1 4\nb()\n", (6, 4), "matches no enclosing block",
         "indent it to column 5 to go on with the block above, or to column 3 to end that block"),
        # two concats in one scope: the second is told how to get a scope of its own
        ("concat:" + _TWO + "concat:" + _TWO, (7, 3), "this concat's branch 1 would be `branch1`", "`concat as mixed_2:`"),
        # a name that is not an identifier, unquoted after `as`
        ("conv 1x1 4 as 1x1\n", (3, 15), "`1x1` after `as` is not a plain name", 'quoted: `as "1x1"`'),
        ("conv 1x1 4 as 3x3_reduce\n", (3, 15), "`3x3_reduce` after `as` is not a plain name", '`as "3x3_reduce"`'),
        ("concat as 5b:" + _TWO, (3, 11), "`5b` after `as` is not a plain name", '`as "5b"`'),
        # a layer-type argument with a typo: at the call (or the default, or the row), with the closest word
        ("block b(pool):\n  pool 3x3/1 same\nb(maxpoll)\n", (5, 3), "`maxpoll` is not a layer type or a block",
         "did you mean `maxpool`?"),
        ("block b(k=3, pool=avgpol):\n  pool 3x3/1 same\nb()\n", (3, 14), "`avgpol` is not a layer type or a block",
         "did you mean `avgpool`?"),
        ("block b(pool):\n  concat:\n    conv 1x1 4\n    pool 3x3/1 same\nb  p\n  r1 maxpool\n  r2 maxpul\n", (9, 6),
         "block `b` uses its parameter `pool` as one", "did you mean `maxpool`?"),
        # a dotted module path after `after`, unquoted
        ("3 x conv 3x3 3 as rep\naux after rep.1 weight=0.3:\n  linear 4\n", (4, 11),
         "the module path `rep.1` has dots", 'write `after "rep.1"`'),
        ("concat as m:\n  conv 1x1 4\n  conv 1x1 4 -> conv 1x1 4\naux a after m.branch2.1 weight=0.3:\n  linear 4\n",
         (6, 13), "the module path `m.branch2.1` has dots", 'write `after "m.branch2.1"`'),
        # a table row's label after `after`, unquoted: it starts with a digit (and has no dots)
        ("conv 3x3 4\naux after 3a weight=0.3:\n  linear 4\n", (4, 11),
         "the module path `3a` starts with a digit", 'write `after "3a"`'),
    ],
)
def test_messages_point_where_the_mistake_is_and_say_how_to_mend_it(text, at, message, hint):
    err = error(HEAD + text)
    assert where(err) == at
    assert message in err.message
    assert hint in err.hint


@pytest.mark.parametrize(
    "text",
    [
        "concat:" + _TWO + "concat:\n  conv 1x1 4 as a\n  conv 1x1 4 as b0 -> conv 1x1 4 as b\n",  # names itself
        "concat:" + _TWO + "concat as m:" + _TWO,
        'concat as m:\n  conv 1x1 4\n  conv 1x1 4 -> conv 1x1 4\naux a after "m.branch2.1" weight=0.3:\n  linear 4\n',
        "block b(x):\n  conv 1x1 x\nb(4)\n",  # a parameter named x before a number is not a count
    ],
)
def test_what_those_checks_leave_alone(text):
    loads(HEAD + text, file="t.inc")


def test_cli_shows_the_default_batch_norm_warning_on_stderr_and_succeeds(tmp_path: Path, cli):
    spec = tmp_path / "res.inc"
    spec.write_text(HEAD + "defaults:\n  conv bn\nconv 1x1 8\nresidual:\n  conv 1x1 8 linear\n", encoding="utf-8")
    code, out, err = cli("check", str(spec))
    assert code == 0 and "warning" not in out
    assert err.startswith(f"{spec}:7:3: warning: this `linear` conv ends a residual branch, and `defaults:` gives it a batch norm")
    assert "write `linear nobn`" in err
