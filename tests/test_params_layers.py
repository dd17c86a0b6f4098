"""`incdsl params --layers`: the input column of a layer with several inputs shows every one of them."""

from __future__ import annotations

import re

import pytest

from incdsl import load, loads
from incdsl.params_table import render_layers_markdown

EQUAL_CONCAT = """\
network equal
input 3x8x8
conv 3x3 4
concat:
  conv 1x1 4
  conv 3x3 4
global_avgpool
linear 2
"""


@pytest.mark.parametrize("net", ["equal", "googlenet", "inception_v4", "inception_resnet_v2"])
def test_every_input_of_a_concat_or_an_add_is_shown(net):
    network = loads(EQUAL_CONCAT) if net == "equal" else load(net)
    cells = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[2]
        for line in render_layers_markdown(network).splitlines()
        if line.startswith("| ") and " | " in line
    }
    several = [n for n in network.nodes if len(n.inputs) > 1]
    assert several
    for node in several:
        text = cells[node.name]
        shapes = [network.node(i).shape for i in node.inputs]
        if node.op == "concat":
            c, h, w = node.shape
            found = re.fullmatch(rf"{h}×{w}×\(([0-9+]+)\)", text)
            assert found, (node.name, text)
            assert [int(x) for x in found.group(1).split("+")] == [s[0] for s in shapes]
            assert sum(s[0] for s in shapes) == c
        else:
            assert text.split(" + ") == ["×".join(map(str, (s[1], s[2], s[0]))) for s in shapes], (node.name, text)
