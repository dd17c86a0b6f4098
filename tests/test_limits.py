"""Absurd specs are clear errors, quickly: never a hang, a recursion error or a huge allocation."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

from incdsl import SpecError, limits, load, loads

HEAD = "network t\ninput 3x32x32\n"


def fails_fast(text: str, message: str) -> SpecError:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        loads(text)
    assert message in info.value.message
    assert time.perf_counter() - start < 5, "a limit should trip long before this"
    return info.value


def test_a_billion_channels_is_a_spec_error_not_an_allocation():
    err = fails_fast(HEAD + "conv 3x3 1000000000\n", "channel count 1,000,000,000 is over the limit of 65,536")
    assert err.line == 3


def test_too_many_parameters():
    fails_fast("network t\ninput 65536x8x8\nconv 7x7 65536\n", "passes 1,000,000,000 parameters at `conv1`")


def test_input_too_large():
    fails_fast("network t\ninput 3x100000x100000\nconv 3x3 4\n", "is too large")


def test_repeat_count():
    fails_fast(HEAD + f"{limits.MAX_REPEAT + 1} x conv 1x1 4\n", "a repeat count must be between 1 and 1000")


def test_total_layer_count():
    body = "\n".join("  conv 1x1 4" for _ in range(100))
    fails_fast(HEAD + f"block b():\n{body}\n1000 x b()\n", f"more than {limits.MAX_NODES:,} layers")


def test_nesting_depth():
    lines = [HEAD.rstrip("\n")]
    for depth in range(limits.MAX_INDENT_DEPTH + 2):
        lines.append("  " * depth + "seq:")
    lines.append("  " * (limits.MAX_INDENT_DEPTH + 2) + "conv 1x1 4")
    fails_fast("\n".join(lines) + "\n", "nested more than 32 levels deep")


def test_block_call_depth():
    blocks = "".join(f"block b{i}():\n  b{i + 1}()\n" for i in range(40)) + "block b40():\n  conv 1x1 4\n"
    fails_fast(HEAD + blocks + "b0()\n", "blocks call blocks more than 32 deep")


def test_include_depth(tmp_path: Path):
    for i in range(limits.MAX_INCLUDE_DEPTH + 3):
        (tmp_path / f"l{i}.inc").write_text(f'include "l{i + 1}.inc"\n', encoding="utf-8")
    (tmp_path / f"l{limits.MAX_INCLUDE_DEPTH + 3}.inc").write_text("block b():\n  conv 1x1 4\n")
    (tmp_path / "net.inc").write_text(HEAD + 'include "l0.inc"\nb()\n', encoding="utf-8")
    with pytest.raises(SpecError, match="includes are nested more than 16 deep"):
        load(tmp_path / "net.inc")


def test_an_absurdly_long_expression():
    fails_fast(HEAD + "conv 1x1 " + " + ".join(["1"] * 2000) + "\n", "nests too deeply")


def test_a_long_chain_is_fine_and_a_huge_file_is_an_error():
    start = time.perf_counter()
    net = loads(HEAD + " -> ".join(["conv 1x1 4"] * 1500) + "\n")
    assert len(net.nodes) == 1501 and time.perf_counter() - start < 5
    fails_fast(HEAD + " -> ".join(["conv 1x1 4"] * 14_000) + "\n", "specs are limited to 131,072")


@pytest.mark.parametrize("line", ["x", "relu", "conv 1x1 4", "relu -> relu -> relu", "conv 3x3/2 64 V as c  # a comment"])
def test_a_file_is_bounded_by_its_tokens_not_only_its_characters(line):
    """Parsing costs by the token: 65,500 lines of `x` (under the character limit) took 4.5 s of
    CPU to parse and fmt of them 32 s. A file of one line repeated to the token limit loads and
    formats in well under that (about 0.5 s and 1.6 s on a quiet machine; the bound leaves room for
    a loaded one: bench/fuzz.py holds the per-mutant limits); one token more is refused at that token."""
    from incdsl.fmt import format_spec
    from incdsl.syntax import tokens

    per_line = len(tokens(line + "\n"))
    room = (limits.MAX_FILE_TOKENS - len(tokens(HEAD))) // per_line
    at_limit = HEAD + (line + "\n") * room
    for work in (lambda: loads(at_limit), lambda: format_spec(at_limit)):
        start = time.process_time()
        try:
            work()
        except SpecError as err:
            assert "tokens" not in err.message
        assert time.process_time() - start < 8
    over = HEAD + (line + "\n") * (room + 1) + "conv 1x1 4\n" * 2
    err = fails_fast(over, f"this file has more than {limits.MAX_FILE_TOKENS:,} tokens")
    assert err.line == 3 + room


def test_file_size():
    fails_fast(HEAD + "# " + "x" * limits.MAX_FILE_CHARS + "\nconv 1x1 4\n", "specs are limited to")


# --- numbers: bounded where they are written, values where they are computed ---------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("conv 3x3 " + "9" * 5000, "`99999999999999999999…`"),  # Python cannot even print this integer
        ("conv 1x1 " + "9" * 3000 + "*" + "9" * 3000, "`99999999999999999999…`"),
        ("conv 3x3/9223372036854775808 4", "`3x3/9223372036854775808`"),
        ("conv 3x3 4 bn eps=1e999", "`1e999`"),  # inf
        ("lrn 5 alpha=1e999-1e999", "`1e999`"),  # nan
        ("conv 1x1 4 @paper(params=9999999999G)", "`9999999999G`"),
        (f"{10**13} x conv 1x1 4", f"`{10**13}`"),
    ],
)
def test_a_number_over_the_limit_is_refused_where_it_is_written(line, shown):
    err = fails_fast(HEAD + line + "\n", f"the number {shown} is too large")
    assert err.line == 3 and err.column == 1 + line.index(shown.strip("`").rstrip("…"))
    assert err.render().splitlines()[1].startswith(" 3 | ")  # the caret display works for it


def test_leading_zeros_do_not_make_a_number_large():
    assert loads(HEAD + "conv 1x1 000000000000000000004\n").node("conv1").shape == (4, 32, 32)


def test_a_value_squared_through_calls_stops_at_the_limit():
    """`s0(w): s1(w*w)` 31 deep once took 16 s and 1 GB before failing."""
    blocks = "".join(f"block s{i}(w):\n  s{i + 1}(w*w)\n" for i in range(31)) + "block s31(w):\n  conv 1x1 w\n"
    err = fails_fast(HEAD + blocks + "s0(2)\n", f"value is over the limit of {limits.MAX_NUMBER:,}")
    assert err.line == 4 + 2 * 5  # the body of s5, which computes 2**64


# --- sizes: strides, padding and every intermediate ---------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("conv 3x3 4 pad=1000000000", "pad 1,000,000,000 is over the limit of 16,384"),
        ("conv 3x3/100000 4", "stride 100,000 is over the limit of 16,384"),
        ("maxpool 3x3 stride=100000", "stride 100,000 is over the limit of 16,384"),
        ("conv 100000x1 4", "kernel size 100,000 is over the limit of 16,384"),
        ("conv 3x3 4 pad=9000", "padded input would be 3×18,032×18,032"),
        ("conv 3x3/0 4", "stride must be at least 1; got 0"),
    ],
)
def test_strides_and_paddings_are_bounded(line, message):
    fails_fast(HEAD + line + "\n", message)


def test_an_intermediate_over_the_element_limit_is_refused():
    """Each layer is within the channel and size limits, but one image's value would need 64 GB."""
    err = fails_fast("network t\ninput 3x8192x8192\nconv 3x3 256\n", "over the limits of 16,384 a side and")
    assert err.line == 3 and "256×8,192×8,192" in err.message


# --- work: no load is quadratic --------------------------------------------------------------


def test_many_residual_units_load_in_linear_time():
    """6,000 top-level `residual:` units took 7 s: naming each add searched for a free name."""

    def seconds(n: int) -> float:
        text = HEAD + "conv 1x1 4\n" + "residual:\n relu\n" * n
        times = []
        for _ in range(3):  # the fastest of three: at these sizes the machine's other work is noise
            gc.collect()  # and so is collecting what earlier tests left
            start = time.process_time()
            net = loads(text)
            times.append(time.process_time() - start)
        assert len(net.nodes) == 2 + 2 * n and net.nodes[-1].name == f":add{n}"
        return min(times)

    small, large = seconds(130), seconds(1040)  # 1,040 units are 7,280 tokens, under the file's limit
    assert large < 8 * small * 2, f"8x the units took {large / small:.1f}x as long"


def test_a_file_included_many_times_is_read_once(tmp_path: Path):
    """Each level includes the next twice: 2**16 reads if every include were read again."""
    for i in range(limits.MAX_INCLUDE_DEPTH - 1):
        (tmp_path / f"l{i}.inc").write_text(f'include "l{i + 1}.inc"\ninclude "l{i + 1}.inc"\n', encoding="utf-8")
    (tmp_path / f"l{limits.MAX_INCLUDE_DEPTH - 1}.inc").write_text("block b():\n  conv 1x1 4\n", encoding="utf-8")
    (tmp_path / "net.inc").write_text(HEAD + 'include "l0.inc"\nb()\n', encoding="utf-8")
    start = time.perf_counter()
    assert load(tmp_path / "net.inc").node("b1.conv1").shape == (4, 32, 32)
    assert time.perf_counter() - start < 2
