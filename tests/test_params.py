"""The params table: GoogLeNet's Table 1 recomputed, with the paper's figures beside ours.

Reference totals come from ARCHITECTURES.md (the Caffe replica's prototxt,
parsed and counted) and are rederived here from the per-layer shapes of
Appendix A, so no expected number is typed from our own output.
"""

from __future__ import annotations

import json

import pytest

from incdsl import load
from incdsl.params_table import RENDERERS, params_table

# Caffe bvlc_googlenet, Appendix A of ARCHITECTURES.md: (cin, cout, k) per conv of an inception module.
TABLE1 = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
PAPER_OPS = {"conv2": 360e6, "3a": 128e6, "3b": 304e6, "4a": 73e6, "4b": 88e6, "4c": 100e6, "4d": 119e6,
             "4e": 170e6, "5b": 71e6}


def _module_params(cin, n1, r3, n3, r5, n5, pp):
    convs = [(cin, n1, 1), (cin, r3, 1), (r3, n3, 3), (cin, r5, 1), (r5, n5, 5), (cin, pp, 1)]
    return sum(ci * co * k * k + co for ci, co, k in convs)


@pytest.fixture(scope="module")
def table():
    return params_table(load("specs/googlenet.inc"))


def test_main_path_total_equals_the_caffe_replica(table):
    stem = (3 * 64 * 49 + 64) + (64 * 64 + 64) + (64 * 192 * 9 + 192)
    modules = sum(_module_params(*row) for row in TABLE1.values())
    classifier = 1024 * 1000 + 1000
    assert table.total.params == stem + modules + classifier == 6_998_552


def test_aux_heads_are_on_their_own_rows(table):
    def aux(cin):
        return (cin * 128 + 128) + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)

    assert [r.params for r in table.aux] == [aux(512), aux(528)] == [3_188_840, 3_190_888]
    assert table.total_with_aux.params == table.total.params + aux(512) + aux(528)
    assert all(r.type.startswith("aux classifier") for r in table.aux)


def test_totals_are_the_sums_of_the_rows(table):
    assert table.total.params == sum(r.params for r in table.rows)
    assert table.total.macs == sum(r.macs for r in table.rows)


def test_about_1_58_g_multiply_adds(table):
    assert 1.57e9 < table.total.macs < 1.59e9


def test_ops_agree_with_table_1_within_1_5_percent(table):
    rows = {r.type: r for r in table.rows}
    conv2 = [r for r in table.rows if r.type == "convolution" and r.depth == 2]
    assert len(conv2) == 1
    assert abs(conv2[0].macs / PAPER_OPS["conv2"] - 1) < 0.015
    for label, ops in PAPER_OPS.items():
        if label != "conv2":
            assert abs(rows[f"inception ({label})"].macs / ops - 1) < 0.015, label


def test_rows_where_the_paper_disagrees_with_itself_are_marked(table):
    notes = {r.type: " ".join(r.notes) for r in table.rows}
    conv1 = table.rows[0]
    assert conv1.patch == "7×7/2" and "ops: paper 34M" in " ".join(conv1.notes)
    assert "ops: paper 54M" in notes["inception (5a)"]
    for label in ("3a", "3b", "4a", "4b", "4e"):
        assert notes[f"inception ({label})"] == ""


def test_rows_follow_table_1(table):
    shapes = [(r.type, r.output) for r in table.rows]
    assert shapes[:5] == [
        ("convolution", (64, 112, 112)),
        ("max pool", (64, 56, 56)),
        ("convolution", (192, 56, 56)),
        ("max pool", (192, 28, 28)),
        ("inception (3a)", (256, 28, 28)),
    ]
    assert ("max pool", (832, 7, 7)) in shapes
    assert shapes[-4:] == [
        ("avg pool", (1024, 1, 1)),
        ("dropout (40%)", (1024, 1, 1)),
        ("linear", (1000, 1, 1)),
        ("softmax", (1000, 1, 1)),
    ]
    assert table.columns == ["#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj"]
    row_3a = next(r for r in table.rows if r.type == "inception (3a)")
    assert list(row_3a.values.values()) == list(TABLE1["3a"][1:])
    assert row_3a.depth == 2


def test_json_is_stable_and_complete(table):
    data = json.loads(RENDERERS["json"](table))
    assert data["schema"] == 1
    assert data["total"] == {"params": table.total.params, "macs": table.total.macs}
    assert data["rows"][4]["columns"]["#1x1"] == 64
    assert data["rows"][0]["paper"] == {"params": {"value": 2700.0, "text": "2.7K"},
                                        "ops": {"value": 34e6, "text": "34M"},
                                        "note": data["rows"][0]["paper"]["note"]}


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_googlenet_params_golden(fmt, golden, cli):
    code, out, err = cli("params", "specs/googlenet.inc", "--format", fmt)
    assert code == 0 and err == ""
    golden(f"params/googlenet.{ 'txt' if fmt == 'table' else fmt}", out)


# --- fitting the terminal, and what is counted ------------------------------------------------


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("spec", ["googlenet", "inception_v4", "inception_resnet_v2", "compat/fid_inception_v3"])
def test_the_table_fits_columns(cli, monkeypatch, spec, columns):
    """GoogLeNet's table was 192 columns wide (242 with its notes) whatever COLUMNS said."""
    monkeypatch.setenv("COLUMNS", str(columns))
    for argv in (["params", spec], ["params", spec, "--layers"], ["params", spec, "--expand"]):
        code, out, _ = cli(*argv)
        assert code == 0
        assert max(len(line) for line in out.splitlines()) <= columns, argv
    monkeypatch.delenv("COLUMNS")
    code, wide, _ = cli("params", spec)  # not a terminal, no COLUMNS: the whole table, one block
    assert sum(1 for line in wide.splitlines() if line.startswith("─")) == 1


def test_blocks_below_repeat_the_row_names_and_keep_every_figure(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _, narrow, _ = cli("params", "googlenet")
    monkeypatch.delenv("COLUMNS")
    _, wide, _ = cli("params", "googlenet")
    for figure in ("13,378,280", "1,444,080", "70.7M", "1072K", "[5]", "28×28×256", "7×7/2"):
        assert figure in narrow and figure in wide
    assert sum(1 for line in narrow.splitlines() if line.startswith("inception (3a)")) == 2


def test_empty_columns_are_left_out(cli):
    _, out, _ = cli("params", "examples/mini_googlenet")
    header = out.splitlines()[2]
    assert "paper" not in header and "notes" not in header  # the spec gives no paper figures
    table = params_table(load("examples/mini_googlenet"))
    assert not table.has_paper


def test_every_shape_header_says_its_order(cli):
    _, out, _ = cli("params", "googlenet")
    assert out.splitlines()[0] == "googlenet — input 3×224×224 (C×H×W)" and "output (H×W×C)" in out.splitlines()[2]
    _, out, _ = cli("check", "googlenet")
    assert "  input    3×224×224 (C×H×W)" in out.splitlines()


def test_csv_keeps_the_paper_figures_and_the_total_with_aux(table):
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(RENDERERS["csv"](table))))
    first = rows[0]
    assert (first["paper_params"], first["paper_ops"]) == ("2.7K", "34M") and first["notes"].startswith("ops: paper 34M")
    totals = {r["kind"]: r for r in rows if r["kind"].startswith("total")}
    assert int(totals["total"]["params"]) == table.total.params == 6_998_552
    assert int(totals["total_with_aux"]["params"]) == table.total_with_aux.params == 13_378_280


@pytest.mark.parametrize("spec", ["examples/mini_googlenet", "compat/torchvision_googlenet", "inception_v3"])
def test_the_footer_says_how_torchinfo_counts_and_it_does(spec):
    """MACs here + one per output element for each bias + two per channel for each batch norm =
    torchinfo's Mult-Adds; twice the outputs of each module with parameters = its forward/backward size."""
    torchinfo = pytest.importorskip("torchinfo")
    import incdsl
    from incdsl.cost import total
    from incdsl.params_table import COUNTING, LAYERS_FOOTER, layer_rows

    assert "torchinfo's Mult-Adds add one per output element for each bias and two per channel" in COUNTING
    net = load(spec)
    summary = torchinfo.summary(incdsl.compile(net).eval(), input_size=(1, *net.input_shape), verbose=0, depth=30)
    bias = bn = 0
    for node in net.main_nodes():
        a = node.attrs
        c, h, w = node.shape
        if node.op in ("conv", "linear"):
            bias += c * h * w if a.bias else 0
            bn += 2 * c if a.bn_eps is not None else 0
        if node.op == "bn" and a.affine:
            bn += 2 * c
    assert summary.total_mult_adds == total(net).macs + bias + bn
    assert "counts twice the output of each module with parameters" in LAYERS_FOOTER
    modules = [(r, 1 + (getattr(net.node(r.name).attrs, "bn_eps", None) is not None))
               for r in layer_rows(net) if r.params and not r.aux]
    assert summary.total_output_bytes == sum(2 * parts * r.activation_bytes for r, parts in modules)


def test_layer_rows_show_what_torch_computes():
    """Every layer's input and output shape and params, against hooks on the compiled module."""
    import torch

    import incdsl
    from incdsl.params_table import layer_rows

    net = load("googlenet")
    model = incdsl.compile(net).eval()
    seen: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for name, module in model.named_modules():
        if name in net and net.node(name).has_module:
            module.register_forward_hook(
                lambda m, args, out, name=name: seen.__setitem__(name, (tuple(args[0].shape[1:]), tuple(out.shape[1:])))
            )
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    rows = {r.name: r for r in layer_rows(net)}
    convs = [n for n in seen if net.node(n).op == "conv"]
    assert len(convs) == 57
    for name in convs:
        assert (rows[name].inputs[0], rows[name].output) == seen[name]
        assert rows[name].params == sum(p.numel() for p in model.get_submodule(name).parameters())
    assert rows["inception_3a:concat"].inputs[0] == (64, 28, 28) and len(rows["inception_3a:concat"].inputs) == 4
    assert sum(r.params for r in rows.values() if not r.aux) == 6_998_552
    assert rows["conv1"].activation_bytes == 64 * 112 * 112 * 4


def test_layers_in_every_format(cli):
    code, out, _ = cli("params", "googlenet", "--layers", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["layers"][0] == {
        "name": "conv1", "type": "convolution 7×7/2", "inputs": [[3, 224, 224]], "output": [64, 112, 112],
        "params": 9472, "macs": 118013952, "activation_bytes": 64 * 112 * 112 * 4, "aux": False,
    }
    assert data["activation_bytes"] == sum(layer["activation_bytes"] for layer in data["layers"] if not layer["aux"])
    code, out, _ = cli("params", "googlenet", "--layers", "--format", "csv")
    assert code == 0 and out.splitlines()[1] == "conv1,convolution 7×7/2,3x224x224,64,112,112,9472,118013952,3211264,0"
    code, out, _ = cli("params", "googlenet", "--layers", "--format", "markdown")
    assert code == 0 and "| conv1 | convolution 7×7/2 | 224×224×3 | 112×112×64 | 9,472 | 118.0M | 3.2MB |" in out


def test_the_docstring_examples_hold():
    import doctest

    from incdsl import params_table as module

    failed, attempted = doctest.testmod(module)
    assert failed == 0 and attempted > 0


# --- the network's own figures: `network NAME @paper(...)` -------------------------------------

_FIGURES = "network small  @paper(params={params}, ops={ops})\ninput 3x8x8\nconv 3x3 16 bn\nglobal_avgpool -> linear 10\n"
# conv 3·3·3·16 weights + 16 γ + 16 β, linear 16·10 + 10: every learnable scalar
_SMALL_PARAMS = 3 * 3 * 3 * 16 + 2 * 16 + 16 * 10 + 10
_SMALL_MACS = 3 * 3 * 3 * 16 * 8 * 8 + 16 * 10


def test_the_networks_figures_stand_beside_the_total_and_count_every_parameter():
    from incdsl import loads

    net = loads(_FIGURES.format(params=f"{_SMALL_PARAMS / 1000:.2f}K", ops=f"{_SMALL_MACS / 1000:.1f}K"))
    table = params_table(net)
    assert table.total.params == _SMALL_PARAMS and table.total.macs == _SMALL_MACS
    assert table.paper == net.paper and table.notes == []  # within the paper's rounding
    total = RENDERERS["table"](table).split("\n")
    line = next(row for row in total if row.startswith("total"))
    assert line.split()[-2:] == [net.paper.params.text, net.paper.ops.text]
    assert "the network's own figures, beside the total, count every parameter" in RENDERERS["table"](table)
    data = json.loads(RENDERERS["json"](table))
    assert data["total"]["paper"]["params"]["text"] == net.paper.params.text


def test_a_network_figure_off_by_more_than_the_tolerance_is_flagged_in_every_format():
    import csv
    import io

    from incdsl import loads

    params = round(_SMALL_PARAMS * 1.1)  # 10% more than the network has
    table = params_table(loads(_FIGURES.format(params=params, ops=f"{_SMALL_MACS / 1000:.1f}K")))
    assert table.notes == [f"params: paper {params}, here {_SMALL_PARAMS:,} (paper +{params / _SMALL_PARAMS - 1:.1%})"]
    text = RENDERERS["table"](table)
    assert "[1] total: params: paper" in text
    rows = {r["kind"]: r for r in csv.DictReader(io.StringIO(RENDERERS["csv"](table)))}
    assert rows["total"]["notes"] == table.notes[0] and rows["total_with_aux"]["notes"] == ""
    assert json.loads(RENDERERS["json"](table))["total"]["notes"] == table.notes


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("network small @paper(size=3M)", "unknown figure `size` in @paper"),
        ("network small @cite(params=3M)", "unknown annotation `@cite`"),
        ("network small @paper(params=0)", "the paper's params is a positive number"),
        ("network small big @paper(params=3M)", "`network` takes one name"),
    ],
)
def test_a_malformed_network_figure_is_a_spec_error(line, message):
    from incdsl import SpecError, loads

    with pytest.raises(SpecError) as caught:
        loads(f"{line}\ninput 3x8x8\nconv 3x3 4\n", file="n.inc")
    assert message in caught.value.message and caught.value.line == 1


def test_fmt_keeps_the_networks_figures():
    from incdsl import loads
    from incdsl.fmt import format_spec

    text = _FIGURES.format(params="0.63K", ops="28K").replace("network small  @paper", "network small @paper")
    once = format_spec(text)
    assert once.splitlines()[0] == "network small  @paper(params=0.63K, ops=28K)"
    assert format_spec(once) == once and loads(once).paper == loads(text).paper
