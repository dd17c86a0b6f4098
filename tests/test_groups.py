"""Grouped (``conv … groups=N``) and depthwise (``dwconv``) convolutions: the syntax and its
errors, params and MACs against torch's own modules, timm's Xception parts as oracles, and
every backend path (fused eval, generated source, the Triton plan) against the plain module."""

from __future__ import annotations

import importlib

import pytest
import torch
from conftest import check_fused_and_generated, check_triton_forwards, randomise
from torch import nn

import incdsl
from incdsl.compiler.pipeline import TRITON_KERNELS, compile_report, inference_passes, run_passes
from incdsl.compiler.program import eval_program
from incdsl.compiler.triton.graph import kernel_calls
from incdsl.compiler.verify import verify
from incdsl.cost import node_costs
from incdsl.draw import describe
from incdsl.fmt import format_spec

timm = pytest.importorskip("timm")
xception = importlib.import_module("timm.models.xception")  # legacy_xception's module (the name is also a function)


def _net(body: str, input: str = "8x12x12") -> str:
    return f"network g\ninput {input}\n{body}\n"


# --- params and MACs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "cin", "cout", "groups", "kernel", "stride", "bias"),
    [
        ("conv 3x3 16 groups=4", 8, 16, 4, 3, 1, True),
        ("conv 3x3/2 24 groups=8 nobias", 8, 24, 8, 3, 2, False),
        ("conv 1x1 12 groups=2", 8, 12, 2, 1, 1, True),
        ("conv 5x5 8 groups=1", 8, 8, 1, 5, 1, True),
        ("dwconv 3x3", 8, 8, 8, 3, 1, True),
        ("dwconv 3x3 nobias", 8, 8, 8, 3, 1, False),
        ("dwconv 5x5/2 16", 8, 16, 8, 5, 2, True),
        ("dwconv 3x3 bn", 8, 8, 8, 3, 1, False),
    ],
)
def test_params_and_macs_of_grouped_convs_equal_torchs(line, cin, cout, groups, kernel, stride, bias):
    net = incdsl.loads(_net(line))
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)
    modules = [conv] + ([nn.BatchNorm2d(cout)] if " bn" in line else [])
    reference = nn.Sequential(*modules)
    out = reference(torch.zeros(1, cin, 12, 12))
    node = net.nodes[-1]
    assert node.attrs.groups == groups and node.attrs.out_channels == cout
    assert node.shape == tuple(out.shape[1:])
    cost = node_costs(net)[node.name]
    assert cost.params == sum(p.numel() for p in reference.parameters())
    assert cost.macs == cout * (cin // groups) * kernel * kernel * out.shape[2] * out.shape[3]
    assert sum(p.numel() for p in incdsl.compile(net).parameters()) == cost.params


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("conv 3x3 12 groups=3", ["`conv1`", "groups=3", "8 channels", "12", "8 (in)"]),
        ("conv 3x3 10 groups=4", ["`conv1`", "groups=4", "10 (out)"]),
        ("conv 3x3 9 groups=3", ["`conv1`", "8 (in) is not a multiple of 3"]),  # 9 is one: only 8 named
        ("conv 3x3 10 groups=3", ["8 (in) and 10 (out) are not multiples of 3"]),
        ("dwconv 3x3 12", ["dwconv `dwconv1`", "8 channels", "12 (out)"]),
    ],
)
def test_groups_that_do_not_divide_the_channels_are_refused_at_the_layer(line, words):
    with pytest.raises(incdsl.SpecError) as caught:
        incdsl.loads(_net(line), file="g.inc")
    text = str(caught.value)
    assert "g.inc:3:1" in text
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        ("maxpool 3x3 groups=2", "unknown option `groups=` for maxpool", "maxpool takes"),
        ("linear 10 groups=2", "unknown option `groups=` for linear", "linear takes"),
        ("conv 3x3 8 group=2", "unknown option `group=` for conv", "did you mean `groups`"),
        ("conv 3x3 8 groups=0", "groups must be at least 1", None),
        ("conv 3x3 8 groups=1.5", "groups must be a whole number", None),
        ("dwconv 3x3 8 groups=2", "unknown option `groups=` for dwconv", None),
        ("dwconv", "dwconv is missing its window", "dwconv 3x3"),
    ],
)
def test_misused_groups_say_what_is_wrong(line, message, hint):
    with pytest.raises(incdsl.SpecError) as caught:
        incdsl.loads(_net(line))
    assert message in caught.value.message
    if hint is not None:
        assert hint in (caught.value.hint or "")


# --- timm's Xception parts as oracles --------------------------------------------------------

_SEPARABLE = """network separable
input 16x10x10

# timm's SeparableConv2d (legacy_xception): a depthwise 3x3 (conv1) then a pointwise 1x1, no
# biases, no activation between; batch norm and ReLU after, as Xception's flows place them.
block separable(n):
  dwconv 3x3 linear nobias as conv1
  conv 1x1 n linear nobias as pointwise

separable(24) as sep
bn as bn
relu
"""

_MIDDLE_FLOW = """network middle
input 16x10x10

block separable(n):
  dwconv 3x3 linear nobias as conv1
  conv 1x1 n linear nobias as pointwise

# timm legacy_xception's middle-flow Block (Xception Fig. 5): (ReLU, separable conv, BN) three
# times, added to the block's input with no activation after.
block middle(n):
  residual linear:
    seq rep:
      relu
      separable(n)
      bn
      relu
      separable(n)
      bn
      relu
      separable(n)
      bn

middle(16) as block
"""


class _SeparableReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sep = xception.SeparableConv2d(16, 24, 3, padding=1)
        self.bn = nn.BatchNorm2d(24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.sep(x)))


class _BlockReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = xception.Block(16, 16, reps=3, strides=1, start_with_relu=True, grow_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


@pytest.mark.parametrize(("spec", "reference"), [(_SEPARABLE, _SeparableReference), (_MIDDLE_FLOW, _BlockReference)])
def test_timm_xception_parts_load_strictly_and_agree(spec, reference):
    ref = randomise(reference(), seed=1)
    ours = incdsl.compile(incdsl.loads(spec))
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 16, 10, 10)
    for mode in ("eval", "train"):
        getattr(ref, mode)()
        getattr(ours, mode)()
        with torch.no_grad():
            expected, got = ref(x.clone()), ours(x.clone())
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), mode
    # training updated both networks' batch-norm statistics alike
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), k


def test_legacy_xceptions_own_middle_flow_block_loads_strictly_and_agrees():
    # The network's own block4 (the first of its eight middle-flow blocks, 728 channels at 19×19).
    block = randomise(timm.create_model("legacy_xception", pretrained=False).block4, seed=3)
    spec = _MIDDLE_FLOW.replace("input 16x10x10", "input 728x19x19").replace("middle(16) as block", "middle(728) as block4")
    ours = incdsl.compile(incdsl.loads(spec))
    ours.load_state_dict({f"block4.{k}": v for k, v in block.state_dict().items()}, strict=True)
    x = torch.randn(1, 728, 19, 19)
    for mode in ("eval", "train"):
        with torch.no_grad():
            expected, got = getattr(block, mode)()(x.clone()), getattr(ours, mode)()(x)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5), mode


# --- backends --------------------------------------------------------------------------------

_GROUPED_SPECS = {
    "separable": _SEPARABLE,
    "middle_flow": _MIDDLE_FLOW,
    # grouped and depthwise convs with folded batch norm beside plain 1x1s reading one tensor
    "mixed": _net(
        "defaults:\n  conv bn\n  dwconv bn\n"
        "conv 3x3 16 groups=4\n"
        "concat:\n  conv 1x1 8\n  conv 1x1 8 groups=2\n  conv 1x1 8\n  dwconv 3x3 32\n"
        "dwconv 3x3/2 linear\n"
        "conv 1x1 8 groups=8 linear\n"
        "global_avgpool\nlinear 10",
    ),
}


def _reference(spec: str) -> tuple[incdsl.ir.Network, nn.Module]:
    net = incdsl.loads(spec)
    torch.manual_seed(0)
    return net, randomise(incdsl.compile(net), seed=2).eval()


@pytest.mark.parametrize("name", sorted(_GROUPED_SPECS))
def test_fused_eval_and_generated_source_equal_the_plain_module(name, tmp_path, cli):
    net, plain = _reference(_GROUPED_SPECS[name])
    check_fused_and_generated(_GROUPED_SPECS[name], net, plain, tmp_path, cli)


def test_no_pass_or_kernel_takes_a_grouped_conv():
    net = incdsl.loads(_GROUPED_SPECS["mixed"])
    assert run_passes(net, inference_passes("torch"), verify=True)  # the invariants, grouped convs' among them
    passed = run_passes(net, inference_passes("triton", TRITON_KERNELS), verify=True)
    grouped = {n.name for n in net.nodes if n.op == "conv" and n.attrs.groups != 1}
    assert len(grouped) == 5
    by_name = {n.name: n for n in passed.nodes}
    # each grouped conv is still a conv of its own: no 1×1 group took it, its BN folded
    for name in grouped:
        assert by_name[name].op == "conv" and by_name[name].attrs.folded_bn_eps is not None
        assert all(m.name != name for n in passed.nodes if n.op == "conv1x1_group" for m in n.attrs.members)
    # the two plain 1×1s still fuse
    assert any(n.op == "conv1x1_group" for n in passed.nodes)
    # the k×k kernel takes the plain convs only
    calls = kernel_calls(eval_program(passed), convs=True)
    assert calls and not grouped & set(calls)
    assert "3 conv 3x3 grouped, 2 conv 1x1 grouped" in compile_report(net, "triton", TRITON_KERNELS)


@pytest.mark.parametrize("groups", [None, 3])
def test_the_ir_invariants_catch_a_conv_with_groups_unresolved_or_not_dividing(groups):
    net = incdsl.loads(_net("conv 3x3 16 groups=4"))
    conv = net.nodes[-1]
    broken = net.with_nodes([*net.nodes[:-1], conv.model_copy(update={"attrs": conv.attrs.model_copy(update={"groups": groups})})])
    with pytest.raises(AssertionError, match="groups"):
        verify(broken)


def test_triton_backend_runs_grouped_convs_with_torch():
    net, plain = _reference(_GROUPED_SPECS["mixed"].replace("8x12x12", "8x6x6"))
    check_triton_forwards(net, plain)


# --- tools ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_GROUPED_SPECS))
def test_fmt_keeps_the_grouped_syntax(name):
    text = _GROUPED_SPECS[name]
    once = format_spec(text)
    assert format_spec(once) == once
    assert incdsl.loads(once) == incdsl.loads(text)


def test_params_table_names_the_groups(cli, tmp_path):
    path = tmp_path / "g.inc"
    path.write_text(_net("conv 3x3 16 groups=4\ndwconv 3x3"), encoding="utf-8")
    code, out, _ = cli("params", str(path))
    assert code == 0
    assert out.count("convolution, 4 groups") == 1 and out.count("convolution, 16 groups") == 1
    net = incdsl.load(path)
    assert [describe(n) for n in net.nodes[1:]] == ["conv 3×3 groups=4, 16", "conv 3×3 groups=16, 16"]
