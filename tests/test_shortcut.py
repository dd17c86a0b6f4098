"""Projection shortcuts (``shortcut:`` first in a ``residual:`` body), the residual mismatch's
causes, and batch norm layers of their own folded into the conv before them: timm's Xception
modules as oracles, and every backend path (fused eval, generated source, the Triton plan)
against the plain module."""

from __future__ import annotations

import importlib

import pytest
import torch
from conftest import check_fused_and_generated, check_triton_forwards, randomise
from torch import nn

import incdsl
from incdsl import ir
from incdsl.compiler.pipeline import TRITON_KERNELS, compile_report, inference_passes, run_passes
from incdsl.cost import node_costs
from incdsl.draw import to_dot
from incdsl.fmt import format_spec

timm = pytest.importorskip("timm")
xception = importlib.import_module("timm.models.xception")  # legacy_xception's module (the name is also a function)

_BLOCKS = """
block separable(n):
  dwconv 3x3 linear nobias as conv1
  conv 1x1 n linear nobias as pointwise

# timm's Block(cin, out, reps=2, strides=2, grow_first=False): ReLU, separable, BN twice, the
# width changing at the second, a 3x3/2 max pool; the input projected by a 1x1/2 conv and BN.
block strided(mid, out):
  residual linear:
    shortcut: conv 1x1/2 out linear nobias as skip -> bn as skipbn
    seq rep:
      relu
      separable(mid)
      bn
      relu
      separable(out)
      bn
      maxpool 3x3/2 pad=1
"""


def _spec(cin: int, mid: int, out: int, size: int = 10) -> str:
    return f"network down\ninput {cin}x{size}x{size}\n{_BLOCKS}\nstrided({mid}, {out}) as block\n"


class _Reference(nn.Module):
    def __init__(self, cin: int, out: int, grow_first: bool) -> None:
        super().__init__()
        self.block = xception.Block(cin, out, reps=2, strides=2, start_with_relu=True, grow_first=grow_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


# (cin, mid, out, grow_first): the entry flow's block2 in small, and the exit flow's block12
_CASES = [(8, 16, 16, True), (12, 12, 20, False)]


@pytest.mark.parametrize(("cin", "mid", "out", "grow_first"), _CASES)
def test_timms_strided_block_loads_strictly_and_agrees(cin, mid, out, grow_first):
    ref = randomise(_Reference(cin, out, grow_first), seed=1)
    net = incdsl.loads(_spec(cin, mid, out))
    ours = incdsl.compile(net)
    assert list(ours.state_dict()) == list(ref.state_dict())  # skip, skipbn, then rep, as timm registers them
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert sum(c.params for c in node_costs(net).values()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, cin, 10, 10)
    for mode in ("eval", "train"):
        getattr(ref, mode)()
        getattr(ours, mode)()
        with torch.no_grad():
            expected, got = ref(x.clone()), ours(x.clone())
        assert got.shape == expected.shape == (2, out, 5, 5)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), mode
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), k


def test_the_shortcut_feeds_the_add_and_the_branch_reads_the_input():
    net = incdsl.loads(_spec(8, 16, 16))
    add = net.node("block:add")
    assert add.inputs == ("block.skipbn", "block.rep.6")
    assert net.node("block.skip").inputs == ("input",)
    assert net.node("block.rep.0").inputs == ("input",)
    assert net.node("block.skip").attrs.stride == (2, 2)


# --- the syntax and its errors -----------------------------------------------------------

_HEAD = "network r\ninput 8x12x12\n"


@pytest.mark.parametrize(
    ("body", "message", "hint"),
    [
        # a shortcut anywhere but first in a residual body
        ("shortcut: conv 1x1 8\n", "`shortcut:` belongs on the first line of a `residual:` body", "residual:"),
        ("residual:\n  conv 3x3 8 linear\n  shortcut: conv 1x1 8\n", "`shortcut:` belongs on the first line", None),
        ("concat:\n  shortcut: conv 1x1 8\n  conv 1x1 8\n", "`shortcut:` belongs on the first line", None),
        ("residual:\n  shortcut as s: conv 1x1 8 linear\n  conv 3x3 8 linear\n", "`shortcut` takes no settings or name", "skipbn"),
        ("residual:\n  shortcut: conv 1x1 8 linear\n", "this residual has a shortcut but no branch", "added to the shortcut"),
        ("residual:\n  shortcut\n  conv 3x3 8 linear\n", "`shortcut` needs `:` and an indented body", None),
    ],
)
def test_misplaced_or_malformed_shortcuts_say_where_it_goes(body, message, hint):
    with pytest.raises(incdsl.SpecError) as caught:
        incdsl.loads(_HEAD + body, file="r.inc")
    assert message in caught.value.message
    assert caught.value.line >= 3
    if hint is not None:
        assert hint in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("body", "message", "hint"),
    [
        # the branch halves the size: the input needs a projection of stride 2 (Xception's entry flow)
        (
            "residual linear:\n  relu\n  conv 3x3 16 linear\n  maxpool 3x3/2 pad=1\n",
            "the shortcut has 8×12×12 C×H×W but the residual branch ends with 16×6×6 (`maxpool1`, line 6)",
            ["changes the size from 12×12 to 6×6", "`shortcut: conv 1x1/2 16 linear bn`"],
        ),
        # the branch widens: restore the width (Inception-ResNet) or project the input
        (
            "residual:\n  conv 3x3 16 linear\n",
            "the shortcut has 8 channels but the residual branch ends with 16 (`conv1`, line 4)",
            ["end the branch with the input's 8", "filter expansion", "`shortcut: conv 1x1 16 linear bn`"],
        ),
        # a projection that does not give what the branch gives: named, with its line
        (
            "residual linear:\n  shortcut: conv 1x1 16 linear bn\n  relu\n  conv 3x3/2 16 linear\n",
            "the shortcut ends with 16×12×12 C×H×W (`conv1`, line 4) but the residual branch ends with 16×6×6 (`conv2`, line 6)",
            ["the projection shortcut must give what the branch gives, 16 channels at 6×6"],
        ),
    ],
)
def test_a_residual_mismatch_names_its_real_cause(body, message, hint):
    with pytest.raises(incdsl.SpecError) as caught:
        incdsl.loads(_HEAD + body, file="r.inc")
    assert caught.value.message == f"residual add: {message}"
    for words in hint:
        assert words in caught.value.hint
    assert "1×1 filter expansion" not in caught.value.hint or "shortcut:" in caught.value.hint


# --- backends ----------------------------------------------------------------------------


def _reference(spec: str) -> tuple[ir.Network, nn.Module]:
    net = incdsl.loads(spec)
    torch.manual_seed(0)
    return net, randomise(incdsl.compile(net), seed=2).eval()


def test_fused_eval_and_generated_source_equal_the_plain_module(tmp_path, cli):
    spec = _spec(8, 16, 24)
    net, plain = _reference(spec)
    check_fused_and_generated(spec, net, plain, tmp_path, cli)
    # every batch norm folded, the shortcut's into its 1×1/2 conv
    passed = run_passes(net, inference_passes("torch"), verify=True)
    assert not [n for n in passed.nodes if n.op == "bn"]
    skip = passed.node("block.skip").attrs
    assert (skip.folded_bn, skip.folded_bn_eps) == ("block.skipbn", 1e-5)
    assert passed.node("block:add").inputs == ("block.skip", "block.rep.6")


def test_triton_backend_runs_the_projection_shortcut():
    net, plain = _reference(_spec(8, 8, 16, size=6))
    report = compile_report(net, "triton", TRITON_KERNELS)
    # skipbn and the branch's two batch norms fold; the 1×1/2 projection and the pointwise convs
    # run in the k×k conv kernel, the depthwise convs in torch
    assert "fold_batch_norm         3 conv+BN pairs folded" in report
    assert "Triton launches per forward: 3 (3 conv)" in report
    check_triton_forwards(net, plain)


# --- tools -------------------------------------------------------------------------------


def test_fmt_keeps_the_shortcut():
    text = _spec(8, 16, 16).replace(
        "    shortcut: conv 1x1/2 out linear nobias as skip -> bn as skipbn\n",
        "    shortcut:\n      conv 1x1/2 out linear nobias as skip\n      bn as skipbn\n",
    )
    for source in (_spec(8, 16, 16), text):
        once = format_spec(source)
        assert format_spec(once) == once
        assert incdsl.loads(once) == incdsl.loads(source)
    # the shortcut written over two lines is the same network (spans aside)
    def graph(net: ir.Network) -> list[tuple]:
        return [(n.name, n.attrs, n.inputs, n.shape) for n in net.nodes]

    assert graph(incdsl.loads(text)) == graph(incdsl.loads(_spec(8, 16, 16)))


def test_params_table_and_picture_show_the_shortcut(cli, tmp_path):
    path = tmp_path / "down.inc"
    path.write_text(_spec(8, 16, 16), encoding="utf-8")
    net = incdsl.load(path)
    code, out, _ = cli("params", str(path), "--layers")
    assert code == 0
    assert "block.skip" in out and "block.skipbn" in out
    dot = to_dot(net, module="block")
    assert '"block.skipbn" -> "block:add"' in dot and '"block.rep.6" -> "block:add"' in dot
