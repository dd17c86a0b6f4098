"""The language features the Inception family needs, each on a small spec.

Names are checked as well as shapes: they decide whether a reference
state_dict loads (see the naming rules in incdsl/elaborate/names.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from incdsl import SpecError, ir, load, loads

HEAD = "network t\ninput 8x9x9\n"


def names(net: ir.Network) -> list[str]:
    return [n.name for n in net.nodes]


def conv(net: ir.Network, name: str) -> ir.ConvAttrs:
    attrs = net.node(name).attrs
    assert isinstance(attrs, ir.ConvAttrs)
    return attrs


def test_asymmetric_kernels_pad_each_axis_for_same():
    net = loads(HEAD + "conv 1x7 4 as a\nconv 7x1 4 as b\nconv 1x3/1 4 as c\nconv 3x1 4 V as d\n")
    assert (conv(net, "a").kernel, conv(net, "a").padding) == ((1, 7), (0, 3))
    assert (conv(net, "b").kernel, conv(net, "b").padding) == ((7, 1), (3, 0))
    assert conv(net, "c").padding == (0, 1)
    assert net.node("c").shape == (4, 9, 9)
    assert net.node("d").shape == (4, 7, 9)


def test_nested_concat_splits_a_branch_again():
    text = HEAD + (
        "block c():\n"
        "  concat base=0:\n"
        "    conv 1x1 4\n"
        "    conv 1x1 3 as b1_0 -> concat:\n"
        "      conv 1x3 2 as b1_1a\n"
        "      conv 3x1 5 as b1_1b\n"
        "    conv 1x1 3 -> conv 3x3 6 -> concat:\n"
        "      conv 1x3 2\n"
        "      conv 3x1 2\n"
        "c() as m\n"
    )
    net = loads(text)
    assert net.node(net.output).shape == (4 + 7 + 4, 9, 9)
    # explicit names go to the block; unnamed layers of a split branch are indexed
    assert names(net) == [
        "input",
        "m.branch0",
        "m.b1_0", "m.b1_1a", "m.b1_1b", "m.branch1.1:concat",
        "m.branch2.0", "m.branch2.1", "m.branch2.2.branch1", "m.branch2.2.branch2", "m.branch2.2:concat",
        "m:concat",
    ]
    inner = net.node("m.b1_1a").inputs
    assert inner == ("m.b1_0",)


def test_concat_base_zero_numbers_branches_from_zero():
    net = loads(HEAD + "defaults:\n  concat base=0\nconcat:\n  conv 1x1 2\n  maxpool 3x3/1 same\n")
    assert names(net) == ["input", "branch0", "branch1", ":concat"]
    assert loads(HEAD + "concat base=0:\n  conv 1x1 2\n  conv 1x1 2\n").node("branch0")


def test_concat_base_must_not_be_negative():
    with pytest.raises(SpecError, match="base must be at least 0; got -1"):
        loads(HEAD + "concat base=-1:\n  conv 1x1 2\n  conv 1x1 2\n")


RES = (
    "block res(out, scale, act=relu):\n"
    "  residual scale=scale act=act:\n"
    "    concat base=0:\n"
    "      conv 1x1 4\n"
    "      conv 1x1 4 -> conv 1x7 4\n"
    "    conv 1x1 out linear nobn as conv2d\n"
)


def test_residual_block_scale_and_activation_are_block_parameters():
    net = loads(HEAD + RES + "res(8, 0.17) as a\nres(8, scale=1.0, act=none) as b\n")
    add_a, add_b = net.node("a:add").attrs, net.node("b:add").attrs
    assert isinstance(add_a, ir.AddAttrs) and isinstance(add_b, ir.AddAttrs)
    assert (add_a.scale, add_a.act) == (0.17, "relu")
    assert (add_b.scale, add_b.act) == (1.0, None)
    assert net.node("a:add").inputs == ("input", "a.conv2d")
    expansion = conv(net, "a.conv2d")
    assert (expansion.act, expansion.bias, expansion.bn_eps) == (None, True, None)


def test_residual_width_mismatch_points_at_the_expansion_and_the_call():
    err = pytest.raises(SpecError, loads, HEAD + RES + "res(6, 0.1) as a\n", file="t.inc").value
    assert err.message == (
        "residual add in `a`: the shortcut has 8 channels but the residual branch ends with 6 (`a.conv2d`, line 8)"
    )
    assert err.line == 8
    assert err.hint is not None and err.hint.endswith("instantiated at t.inc:9:1")


def res_names(scope: str) -> list[str]:
    """The nodes of one instance of RES."""
    return [f"{scope}.branch0", f"{scope}.branch1.0", f"{scope}.branch1.1", f"{scope}:concat", f"{scope}.conv2d", f"{scope}:add"]


def test_repeat_names_its_copies():
    net = loads(HEAD + RES + "3 x res(8, 0.1) as repeat\n2 x res(8, 0.2)\nres(8, 0.3)\n")
    # without `as`, copies are named by the scope's rule, counting on across statements
    scopes = ["repeat.0", "repeat.1", "repeat.2", "res1", "res2", "res3"]
    assert names(net) == ["input", *(name for scope in scopes for name in res_names(scope))]
    assert [net.node(f"repeat.{i}.conv2d").repeat_index for i in range(3)] == [0, 1, 2]


def test_repeat_inside_a_seq_takes_consecutive_indices():
    net = loads(HEAD + RES + "seq features:\n  conv 3x3 8\n  2 x res(8, 0.1)\n  res(8, 0.1)\nconv 1x1 2 as head\n")
    copies = [name for scope in ("features.1", "features.2", "features.3") for name in res_names(scope)]
    assert names(net) == ["input", "features.0", *copies, "head"]


TABLE = (
    "block red(k, l, m, n):\n"
    "  concat base=0:\n"
    "    conv 3x3/2 n V\n"
    "    conv 1x1 k -> conv 3x3 l -> conv 3x3/2 m V\n"
    "    maxpool 3x3/2\n"
    "table red_filters  k  l  m  n\n"
    "  small            2  3  4  5\n"
    "  wide             6  7  8  9\n"
)


def test_parameter_table_row_spreads_into_a_blocks_arguments():
    net = loads(HEAD + TABLE + "red(red_filters.wide) as r\n")
    assert [conv(net, n).out_channels for n in ("r.branch0", "r.branch1.0", "r.branch1.1", "r.branch1.2")] == [9, 6, 7, 8]
    assert net.node(net.output).shape == (8 + 9 + 8, 4, 4)


def test_parameter_table_row_that_does_not_exist():
    err = pytest.raises(SpecError, loads, HEAD + TABLE + "red(red_filters.big)\n").value
    assert err.message == "table `red_filters` has no row `big`"
    assert err.hint == "rows: small, wide"


def test_parameter_table_columns_show_in_the_params_table():
    from incdsl.params_table import params_table

    net = loads(HEAD + TABLE + "red(red_filters.small)\n2 x red(red_filters.wide)\n", input="8x32x32")
    table = params_table(net)
    assert table.columns == ["k", "l", "m", "n"]
    assert [r.values for r in table.rows] == [{"k": 2, "l": 3, "m": 4, "n": 5}, {"k": 6, "l": 7, "m": 8, "n": 9}]


@pytest.mark.parametrize(("flag", "expected"), [("", True), (" count_include_pad=true", True), (" count_include_pad=false", False)])
def test_average_pooling_with_and_without_counting_the_padding(flag, expected):
    net = loads(HEAD + f"avgpool 3x3/1 same{flag} as p\n")
    attrs = net.node("p").attrs
    assert isinstance(attrs, ir.PoolAttrs)
    assert (attrs.padding, attrs.count_include_pad) == ((1, 1), expected)


def test_include_resolves_next_to_the_file_then_among_the_bundled_specs(tmp_path: Path):
    (tmp_path / "mine.inc").write_text("block mine():\n  conv 1x1 8\n", encoding="utf-8")
    spec = tmp_path / "net.inc"
    spec.write_text(
        'network t\ninput 3x299x299\ninclude "mine.inc"\ninclude "blocks/inception_v4.inc"\n'
        "defaults:\n  conv bn eps=0.001\nmine()\nconv 3x3/2 64 V\nmixed_3a()\n",
        encoding="utf-8",
    )
    net = load(spec)
    assert net.node(net.output).shape == (160, 74, 74)
    assert conv(net, "mixed_3a1.conv").bn_eps == 0.001


def test_a_network_file_is_included_for_its_blocks(tmp_path: Path):
    """Its layers, input and aux heads stay out; its blocks keep its defaults (bn eps=0.001 here)."""
    lib = "network lib\ninput 3x99x99\ndefaults:\n  conv bn eps=0.001\nblock b():\n  conv 1x1 8\nconv 1x1 8\nb()\n"
    (tmp_path / "lib.inc").write_text(lib, encoding="utf-8")
    spec = tmp_path / "net.inc"
    spec.write_text(HEAD + 'include "lib.inc"\nconv 1x1 4\nb()\n', encoding="utf-8")
    net = load(spec)
    assert [n.name for n in net.nodes] == ["input", "conv1", "b1.conv1"]
    assert net.node("conv1").attrs.bn_eps is None and net.node("b1.conv1").attrs.bn_eps == 0.001
    assert net.input_shape == (8, 9, 9)


@pytest.mark.parametrize(
    "defaults",
    ["avgpool count_include_pad=false", 'conv parts="X_conv X_bn"', "conv relu bias eps=0.1", "concat base=0",
     "maxpool ceil", "avgpool ceil"],
)
def test_an_includers_defaults_do_not_reach_an_included_networks_blocks(defaults):
    """The main path of inception_v3.inc written in another file that includes it under hostile
    defaults: every layer of every block instance (Mixed_*) is the one loading the file gives."""
    from incdsl.frontend import bundled_specs

    text = bundled_specs()["inception_v3"].read_text(encoding="utf-8")
    main_path = text[text.index("\nconv 3x3/2 32 V as Conv2d_1a_3x3") :]
    host = f'network host\ninput 3x299x299\ninclude "inception_v3.inc"\ndefaults:\n  {defaults}\n{main_path}'

    def blocks(net: ir.Network) -> dict[str, tuple]:
        return {n.name: (n.attrs, ir.part_paths(n)) for n in net.nodes if n.name.startswith("Mixed_")}

    theirs = blocks(load("inception_v3"))
    assert len(theirs) > 100
    assert blocks(loads(host, file="host.inc")) == theirs


def test_repeat_row_shows_a_per_copy_figure_only_when_the_copies_agree():
    from incdsl.params_table import params_table, render_text

    text = HEAD + "block b():\n  conv 1x1 4\n2 x b\n2 x b\n"
    first, second = params_table(loads(text)).rows
    assert [c.params for c in first.copies] == [36, 20]  # 8 then 4 input channels
    assert first.per_copy is None
    assert second.per_copy is not None and second.per_copy.params == 20
    table = render_text(params_table(loads(text)))
    assert table.count("each)") == 1 and "40 (20 each)" in table


# --- extends: a network with its own name and input -----------------------------------------


def test_a_variant_is_its_base_with_its_own_name_and_input(tmp_path: Path):
    base = "network base\ninput 3x16x16\ndefaults:\n  conv bn\nblock b():\n  conv 1x1 4 as c\nconv 3x3 8\nb() as m\n"
    base += "aux after m weight=0.3:\n  global_avgpool -> linear 2\nglobal_avgpool -> linear 2\n"
    (tmp_path / "base.inc").write_text(base)
    variant = tmp_path / "variant.inc"
    variant.write_text('network variant\nextends "base.inc"\ninput 3x16x16:\n  normalize mean 0 0 0 std 1 1 1\n')
    got, want = load(variant), load(tmp_path / "base.inc")
    assert got.name == "variant"
    assert [n.name for n in got.nodes] == ["input", "normalize1", *(n.name for n in want.nodes[1:])]
    assert [(n.attrs, n.shape) for n in got.nodes[2:]] == [(n.attrs, n.shape) for n in want.nodes[1:]]
    assert [h.name for h in got.aux] == ["aux1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('extends "base.inc"\nconv 1x1 4\n', "a spec that `extends` another gives only its `network` name and its `input`"),
        ('extends "base.inc"\nextends "base.inc"\n', "a second `extends` line"),
        ("extends base\n", "`extends` takes one quoted file name"),
        ('extends "variant.inc"\n', "`extends` names a spec that extends another"),
    ],
)
def test_what_a_variant_cannot_say(tmp_path: Path, text, message):
    (tmp_path / "base.inc").write_text("input 3x8x8\nconv 1x1 4\n")
    (tmp_path / "variant.inc").write_text('extends "base.inc"\n')
    (tmp_path / "t.inc").write_text(text)
    with pytest.raises(SpecError) as info:
        load(tmp_path / "t.inc")
    assert info.value.message == message
