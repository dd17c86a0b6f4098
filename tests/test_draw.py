"""`incdsl draw`: DOT for the collapsed network, the layer view and one module; SVG/PNG through `dot`."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from incdsl import bundled_specs, load, loads
from incdsl.draw import modules, to_dot

HAS_DOT = shutil.which("dot") is not None
HAS_BINDING = importlib.util.find_spec("graphviz") is not None
needs_dot = pytest.mark.skipif(
    not (HAS_DOT and HAS_BINDING),
    reason="rendering needs Graphviz's `dot` (apt-get install graphviz) and the graphviz package (incdsl[draw])",
)

GOOGLENET_MODULES = [f"inception_{row}" for row in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]

REPEATED = """
network repeated
input 32x17x17
block unit(scale):
  residual scale=scale:
    concat:
      conv 1x1 8
      conv 1x1 8 -> conv 3x3 8
    conv 1x1 32 linear
conv 1x1 32
3 x unit(0.17) as repeat
global_avgpool -> linear 10
"""

_EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?$')
_NODE = re.compile(r'^\s*"([^"]+)" \[(.*)\]$')


def edges(source: str) -> dict[tuple[str, str], str]:
    """The edges of DOT source written by incdsl.draw, with their attribute text."""
    return {(m[1], m[2]): m[3] or "" for line in source.splitlines() if (m := _EDGE.match(line))}


def nodes(source: str) -> dict[str, str]:
    return {m[1]: m[2] for line in source.splitlines() if (m := _NODE.match(line)) and " -> " not in line}


def graph(source: str) -> nx.DiGraph:
    return nx.DiGraph(list(edges(source)))


def test_collapsed_googlenet_is_a_chain_of_modules_with_aux_heads_beside_it():
    source = to_dot(load("googlenet"))
    g, boxes = graph(source), nodes(source)
    spine = nx.shortest_path(g, "input", "output")
    assert [n for n in spine if n.startswith("inception_")] == GOOGLENET_MODULES
    assert not any(name.startswith("inception_3a.") for name in boxes), "modules are collapsed"
    assert "<b>inception (3a)</b>" in boxes["inception_3a"]
    assert 'label=" 28×28×192"' in edges(source)[("maxpool2", "inception_3a")]
    assert 'label=" 28×28×256"' in edges(source)[("inception_3a", "inception_3b")]
    for head, module in (("aux1", "inception_4a"), ("aux2", "inception_4d")):
        attrs = edges(source)[(module, f"{head}.avgpool1")]
        assert "dashed" in attrs and "14×14×" in attrs
        assert nx.has_path(g, f"{head}.avgpool1", f"{head}.softmax1")
        assert not nx.has_path(g, f"{head}.avgpool1", "output"), "an aux head is a side branch"
        assert f'subgraph "cluster_{head}"' in source


def test_layer_depth_frames_every_module_and_draws_every_layer():
    net = load("googlenet")
    source = to_dot(net, depth="layer")
    for module in GOOGLENET_MODULES:
        assert f'subgraph "cluster_{module}"' in source
    assert set(nodes(source)) == {n.name for n in net.nodes} | {"output"}
    concat_inputs = [tail for tail, head in edges(source) if head == "inception_4e:concat"]
    assert concat_inputs == list(net.node("inception_4e:concat").inputs)


def test_one_module_is_figure_2b():
    source = to_dot(load("googlenet"), module="3a")
    boxes, links = nodes(source), edges(source)
    labels = " ".join(boxes.values())
    for text in (
        "conv 1×1, 64",
        "conv 1×1, 96",
        "conv 3×3, 128",
        "conv 1×1, 16",
        "conv 5×5, 32",
        "maxpool 3×3/1 same",
        "conv 1×1, 32",
        "concat",
    ):
        assert text in labels
    assert "previous layer: maxpool2" in boxes["maxpool2"]
    assert "next: inception_3b" in boxes["inception_3b"]
    fan_in = {tail: attrs for (tail, head), attrs in links.items() if head == "inception_3a:concat"}
    assert [re.search(r'label=" ([^"]+)"', a)[1] for a in fan_in.values()] == [
        "28×28×64",
        "28×28×128",
        "28×28×32",
        "28×28×32",
    ]
    assert 'label=" 28×28×256"' in links[("inception_3a:concat", "inception_3b")]
    fan_out = [attrs for (tail, _), attrs in links.items() if tail == "maxpool2"]
    assert len(fan_out) == 4
    assert sum("28×28×192" in attrs for attrs in fan_out) == 1, "a value fanning out is labelled once"


def test_a_module_by_row_label_or_by_name_is_the_same_picture():
    net = load("googlenet")
    assert to_dot(net, module="4e") == to_dot(net, module="inception_4e")


def test_a_module_that_feeds_an_aux_head_shows_it_as_next():
    links = edges(to_dot(load("googlenet"), module="4a"))
    assert {head for tail, head in links if tail == "inception_4a:concat"} == {"inception_4b", "aux1"}


def test_repeated_blocks_collapse_to_one_box_and_each_copy_can_be_drawn():
    net = loads(REPEATED)
    assert [m.scope for m in modules(net)] == ["repeat.0", "repeat.1", "repeat.2"]
    collapsed = nodes(to_dot(net))
    assert "<b>3 × unit</b>" in collapsed["repeat"]
    copy = to_dot(net, module="repeat.1")
    assert "previous layer: repeat.0" in copy and "next: repeat.2" in copy
    assert "add (×0.17)" in copy


def test_draw_without_output_prints_dot_source(cli):
    code, out, err = cli("draw", "googlenet", "--module", "3a")
    assert code == 0 and err == ""
    assert out == to_dot(load("googlenet"), module="3a")


def test_dot_file_needs_nothing(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "graphviz", None)
    target = tmp_path / "pictures" / "googlenet.dot"
    code, out, err = cli("draw", "googlenet", "-o", str(target))
    assert code == 0 and out == ""
    assert f"wrote {target}" in err
    assert target.read_text(encoding="utf-8") == to_dot(load("googlenet"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--module", "3z"], "googlenet has no module `3z`; its modules: 3a, 3b, 4a, 4b, 4c, 4d, 4e, 5a, 5b"),
        (["-o", "googlenet.jpg"], "name it .svg, .png, .pdf or .dot"),
        (["--module", "3a", "--depth", "layer"], "--depth is for the whole network"),
    ],
)
def test_usage_errors(cli, argv: list[str], message: str):
    code, out, err = cli("draw", "googlenet", *argv)
    assert code == 2 and out == ""
    assert message in err


def test_missing_dot_says_how_to_install_it(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("graphviz", reason="the graphviz package (incdsl[draw]) is not installed")
    monkeypatch.setenv("PATH", str(tmp_path))
    target = tmp_path / "googlenet.svg"
    code, out, err = cli("draw", "googlenet", "-o", str(target))
    assert code == 3 and out == "" and not target.exists()
    assert "apt-get install graphviz" in err and "brew install graphviz" in err


def test_missing_binding_says_how_to_install_it(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    code, _, err = cli("draw", "googlenet", "-o", str(tmp_path / "googlenet.png"))
    assert code == 3
    assert "pip install 'incdsl[draw]'" in err


@needs_dot
def test_svg_parses_and_contains_every_module(cli, tmp_path: Path):
    target = tmp_path / "googlenet.svg"
    code, _, err = cli("draw", "googlenet", "-o", str(target))
    assert code == 0, err
    root = ET.parse(target).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = {g.findtext("svg:title", namespaces=ns) for g in root.iterfind(".//svg:g[@class='node']", ns)}
    assert set(GOOGLENET_MODULES) <= titles
    assert {"aux1.avgpool1", "aux2.softmax1", "conv1", "input", "output"} <= titles
    text = " ".join(t.text or "" for t in root.iterfind(".//svg:text", ns))
    assert "inception (5b)" in text and "7×7×1024" in text


@needs_dot
@pytest.mark.parametrize("argv", [["--module", "4a"], ["--depth", "layer"]])
def test_png_renders(cli, tmp_path: Path, argv: list[str]):
    target = tmp_path / "googlenet.png"
    code, _, err = cli("draw", "googlenet", *argv, "-o", str(target))
    assert code == 0, err
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("command", ["draw", "export"])
def test_help(cli, command: str):
    code, out, _ = cli(command, "--help")
    assert code == 0 and "usage: incdsl " + command in out and "bundled spec" in out
    code, out, _ = cli("--help")
    assert command in out


def _declared(source: str) -> list[str]:
    """Every box declared in DOT source, as many times as it is declared."""
    return [m[1] for line in source.splitlines() if (m := _NODE.match(line)) and " -> " not in line]


@pytest.mark.parametrize("spec", sorted(bundled_specs()))
def test_every_box_has_its_own_id_in_every_view(spec):
    """`draw inception_v4` gave the 4 Inception-A, 7 Inception-B and 3 Inception-C copies one id,
    `features`: two of the three boxes vanished and the third drew a cycle."""
    net = load(spec)
    views = [to_dot(net), to_dot(net, depth="layer")] + [to_dot(net, module=m.scope) for m in modules(net)[:3]]
    for source in views:
        declared = _declared(source)
        assert len(declared) == len(set(declared)), [d for d in declared if declared.count(d) > 1]
        assert {n for edge in edges(source) for n in edge} <= set(declared), "an edge to an undeclared box"
    collapsed = graph(views[0])
    assert nx.is_directed_acyclic_graph(collapsed)
    merged = {m.row for m in modules(net)}
    boxes = [b for b, attrs in nodes(views[0]).items() if "<b>" in attrs]
    assert len(boxes) == len(merged), "one box per module (all copies of a repeated block in one)"


def test_repeated_copies_each_keep_a_box_of_their_own_where_they_share_a_scope():
    net = load("inception_v4")
    boxes = {b: attrs for b, attrs in nodes(to_dot(net)).items() if "<b>" in attrs}
    assert "<b>4 × inception_a</b>" in boxes["features.6…features.9"]
    assert "<b>7 × inception_b</b>" in boxes["features.11…features.17"]
    path = nx.shortest_path(graph(to_dot(net)), "input", "output")
    assert path.index("features.6…features.9") < path.index("features.11…features.17") < path.index("features.19…features.21")


def test_a_layer_called_output_is_not_the_output():
    source = to_dot(loads("network t\ninput 3x8x8\nconv 3x3 4 as output\nconv 1x1 2\n"))
    assert ("output", "conv1") in edges(source) and ("conv1", "output#2") in edges(source)
