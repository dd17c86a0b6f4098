"""Absurd specs are clear errors, quickly: never a hang, a recursion error or a huge allocation."""

from __future__ import annotations

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
    fails_fast(HEAD + f"block b():\n{body}\n1000 x b()\n", "more than 20,000 layers")


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
    fails_fast(HEAD + "conv 1x1 " + " + ".join(["1"] * 5000) + "\n", "nests too deeply")


def test_a_long_chain_is_fine_and_a_huge_file_is_an_error():
    start = time.perf_counter()
    net = loads(HEAD + " -> ".join(["conv 1x1 4"] * 2000) + "\n")
    assert len(net.nodes) == 2001 and time.perf_counter() - start < 5
    fails_fast(HEAD + " -> ".join(["conv 1x1 4"] * 10_000) + "\n", "specs are limited to 131,072")


def test_file_size():
    fails_fast(HEAD + "# " + "x" * limits.MAX_FILE_BYTES + "\nconv 1x1 4\n", "specs are limited to")
