"""Every example spec in docs/LANGUAGE.md loads and compiles, so the reference stays true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import incdsl

DOC = Path(__file__).resolve().parent.parent / "docs" / "LANGUAGE.md"
EXAMPLES = re.findall(r"```inc\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_reference_has_examples():
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize("text", EXAMPLES, ids=[re.search(r"network (\w+)", t).group(1) for t in EXAMPLES])
def test_example_loads_and_runs(text):
    net = incdsl.loads(text, file="LANGUAGE.md")
    model = incdsl.compile(net).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *net.input_shape))
    assert tuple(out.shape[1:]) == net.node(net.logits).shape[: out.dim() - 1]
