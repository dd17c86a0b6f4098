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
