"""The bundled specs against figures from outside this project.

Totals, MACs and output sizes below come from the reference models, the
papers or ../shared/reference/ARCHITECTURES.md (section given beside each),
never from our own output. The params tables are golden files
(tests/golden/params/; `make golden` rewrites them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import incdsl
from incdsl import ir
from incdsl.frontend import bundled_specs_dir
from incdsl.params_table import params_table

FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: spec → (params without aux heads, with them or None, where the figure comes from)
KNOWN_PARAMS: dict[str, tuple[int, int | None, str]] = {
    "googlenet": (6_998_552, 13_378_280, "Caffe bvlc_googlenet prototxt, §1.2"),
    "compat/torchvision_googlenet": (6_624_904, 13_004_888, "torchvision googlenet, measured, §1.3"),
    "compat/torchvision_googlenet_pretrained": (6_624_904, 13_004_888, "torchvision googlenet(transform_input=True), measured, §1.3"),
    "inception_v3": (23_834_568, 27_161_264, "torchvision inception_v3, measured = weights meta, §2"),
    "compat/torchvision_inception_v3_pretrained": (23_834_568, 27_161_264, "torchvision inception_v3(transform_input=True), §2"),
    "inception_v4": (42_679_816, None, "timm inception_v4, measured, §3.2"),
    "inception_resnet_v2": (55_843_464, None, "timm inception_resnet_v2, measured, §4.2"),
    "inception_resnet_v1": (22_756_328, None, "paper-literal IR-v1 with FC 1000, derived, §4.3"),
    "paper/inception_resnet_v2": (32_433_928, None, "paper structure, widths 384/1152/2144, derived, §4.3"),
    "xception": (22_855_952, None, "timm legacy_xception, measured = the paper's Table 3"),
    # torchvision's 23,834,568 with 8 more classes of 2048 weights and a bias (pytorch-fid's 1008)
    "compat/fid_inception_v3": (23_834_568 + 8 * 2049, None, "pytorch-fid fid_inception_v3, derived; tests/test_fid.py counts it"),
    "inception_next_tiny": (28_055_680, None, "timm inception_next_tiny, measured"),
    "inception_next_small": (49_374_016, None, "timm inception_next_small, measured"),
    "inception_next_base": (86_672_136, None, "timm inception_next_base, measured"),
}

#: spec → conv + linear multiply-adds at the spec's input (299×299; InceptionNeXt's 224×224), in G,
#: to the digits the source gives
KNOWN_GMACS: dict[str, float] = {
    "inception_v3": 5.713,  # torchvision weights meta `_ops`, §2
    "inception_v4": 12.254,  # FlopCounterMode / 2 on timm's model, §3.2
    "inception_resnet_v2": 13.156,  # FlopCounterMode / 2 on timm's model, §4.2
    "xception": 8.357,  # FlopCounterMode / 2 on timm's legacy_xception
    # FlopCounterMode / 2 on timm's models (the paper rounds them to 4.2, 8.4 and 14.9 G)
    "inception_next_tiny": 4.189,
    "inception_next_small": 8.356,
    "inception_next_base": 14.841,
}


@pytest.mark.parametrize("name", KNOWN_PARAMS)
def test_params_total_equals_the_known_figure(name):
    params, with_aux, _source = KNOWN_PARAMS[name]
    table = params_table(incdsl.load(name))
    assert table.total.params == params
    if with_aux is not None:
        assert table.total_with_aux.params == with_aux


@pytest.mark.parametrize("name", KNOWN_GMACS)
def test_macs_equal_the_known_figure(name):
    table = params_table(incdsl.load(name))
    assert round(table.total.macs / 1e9, 3) == KNOWN_GMACS[name]


def _outputs(net: ir.Network) -> list[tuple[str, tuple[int, int, int]]]:
    """(row type, output C×H×W) for each row of the main path, from the shape-checked IR."""
    return [(row.type, row.output) for row in params_table(net).rows]


FIG3_STEM = [(32, 149, 149), (32, 147, 147), (64, 147, 147), (160, 73, 73), (192, 71, 71), (384, 35, 35)]


def test_inception_v4_sizes_are_those_of_figs_3_and_9():
    got = _outputs(incdsl.load("inception_v4"))
    fig9 = [(384, 35, 35), (1024, 17, 17), (1024, 17, 17), (1536, 8, 8), (1536, 8, 8), (1536, 1, 1), (1536, 1, 1), (1000, 1, 1)]
    assert [shape for _, shape in got] == FIG3_STEM + fig9
    assert [t for t, _ in got][6:11] == ["4 × inception_a", "reduction_a", "7 × inception_b", "reduction_b", "3 × inception_c"]


def test_xception_sizes_are_those_of_fig_5():
    got = _outputs(incdsl.load("xception"))
    types = [t for t, _ in got]
    entry_out = got[types.index("strided (3)")][1]
    middle = [shape for t, shape in got if t.startswith("middle")]
    # Fig. 5: the entry flow ends in 19x19x728 maps, the middle flow keeps them eight times, the
    # exit flow ends in 2048-dimensional vectors
    assert entry_out == (728, 19, 19)
    assert middle == [(728, 19, 19)] * 8
    assert got[types.index("global avg pool")][1] == (2048, 1, 1)
    assert got[-1][1] == (1000, 1, 1)


def test_inception_resnet_v1_sizes_are_those_of_figs_14_and_15():
    got = _outputs(incdsl.load("inception_resnet_v1"))
    fig14 = [(32, 149, 149), (32, 147, 147), (64, 147, 147), (64, 73, 73), (80, 73, 73), (192, 71, 71), (256, 35, 35)]
    fig15 = [(256, 35, 35), (896, 17, 17), (896, 17, 17), (1792, 8, 8), (1792, 8, 8), (1792, 1, 1), (1792, 1, 1), (1000, 1, 1)]
    assert [shape for _, shape in got] == fig14 + fig15


def test_paper_inception_resnet_v2_sizes_follow_table_1_and_fig_18():
    got = _outputs(incdsl.load("paper/inception_resnet_v2"))
    # Reduction-A with Table 1's n = m = 384 on 384 channels: 1152; Reduction-B (Fig. 18) adds 384 + 288 + 320
    widths = [(384, 35, 35), (1152, 17, 17), (1152, 17, 17), (2144, 8, 8), (2144, 8, 8)]
    assert [shape for _, shape in got][: len(FIG3_STEM) + len(widths)] == FIG3_STEM + widths


def test_the_paper_literal_inception_resnet_v2_is_rejected_at_the_first_ir_b(cli):
    fixture = FIXTURES / "inception_resnet_v2_paper_literal.inc"
    code, out, err = cli("check", str(fixture))
    assert (code, out) == (1, "")
    library = bundled_specs_dir() / "blocks" / "inception_resnet_v2.inc"
    lines = library.read_text(encoding="utf-8").splitlines()
    block_b = lines.index("block inception_resnet_b(out, scale=0.10, act=relu):")
    expansion = next(i for i in range(block_b, len(lines)) if "linear" in lines[i]) + 1
    call = fixture.read_text(encoding="utf-8").splitlines().index("10 x inception_resnet_b(1154)") + 1
    where, message = err.splitlines()[0].split(": error: ")
    assert where.endswith(f"blocks/inception_resnet_v2.inc:{expansion}:5")
    assert message == (
        "residual add in `inception_resnet_b1`: the shortcut has 1152 channels but the residual "
        f"branch ends with 1154 (`inception_resnet_b1.conv2d`, line {expansion})"
    )
    hint = err.rstrip().splitlines()[-1]
    assert hint.startswith("hint: ") and "instantiated at " in hint
    assert hint.endswith(f"{fixture.name}:{call}:1")


@pytest.mark.parametrize("name", sorted(incdsl.bundled_specs()))
def test_params_table_golden(name, cli, golden):
    code, out, err = cli("params", name)
    assert (code, err) == (0, "")
    golden(f"params/{name}.txt", out)


def test_params_table_expanded_golden(cli, golden):
    code, out, _ = cli("params", "inception_v4", "--expand")
    assert code == 0
    golden("params/inception_v4.expand.txt", out)
