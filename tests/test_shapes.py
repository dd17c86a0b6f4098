"""Shape inference, checked against what PyTorch actually computes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import incdsl
from incdsl import SpecError, load, loads


def test_googlenet_follows_the_caffe_sizes():
    net = load("specs/googlenet.inc")
    pools = [n.shape for n in net.nodes if n.op == "maxpool" and "." not in n.name]
    assert [s[1] for s in pools] == [56, 28, 14, 7]
    assert net.node("conv1").shape == (64, 112, 112)
    assert net.node("inception_4e:concat").shape == (832, 14, 14)
    assert net.node(net.aux[0].input).shape == (512, 14, 14)
    assert net.node("aux1.avgpool1").shape == (512, 4, 4)


def test_floor_pooling_would_give_the_smaller_sizes():
    net = loads("network t\ninput 64x112x112\nmaxpool 3x3/2\nmaxpool 3x3/2\nmaxpool 3x3/2\nmaxpool 3x3/2\n")
    assert [n.shape[1] for n in net.nodes if n.op == "maxpool"] == [55, 27, 13, 6]


def test_asymmetric_kernels_pad_per_axis():
    net = loads("network t\ninput 8x17x17\nconv 1x7 16\nconv 7x1 16\nconv 1x3/2 4 V\n")
    convs = [n for n in net.nodes if n.op == "conv"]
    assert [c.attrs.padding for c in convs] == [(0, 3), (3, 0), (0, 0)]
    assert [c.shape for c in convs] == [(16, 17, 17), (16, 17, 17), (4, 9, 8)]


def test_linear_flattens_and_global_pool_reduces():
    net = loads("network t\ninput 3x9x9\nconv 3x3/3 4 V\nlinear 10\n")
    assert net.node("linear1").shape == (10, 1, 1)
    net = loads("network t\ninput 3x9x9\nglobal_avgpool\nflatten\n")
    assert net.node("flatten1").shape == (3, 1, 1)


def test_same_padding_needs_an_odd_kernel():
    with pytest.raises(SpecError, match="`same` padding needs an odd kernel"):
        loads("network t\ninput 3x8x8\nconv 2x2 4\n")


# --- differential: random layer stacks, inferred shapes vs torch's ----------------


_conv = st.tuples(
    st.just("conv"),
    st.sampled_from(["1x1", "3x3", "5x5", "1x3", "3x1", "1x7", "7x1", "2x2", "4x4"]),
    st.integers(1, 3),
    st.sampled_from(["same", "V", "pad=1"]),
)
_pool = st.tuples(
    st.sampled_from(["maxpool", "avgpool"]),
    st.sampled_from(["2x2", "3x3", "5x5"]),
    st.integers(1, 3),
    st.sampled_from(["V ceil", "V floor", "same", "same ceil", "pad=1 ceil"]),
)


def _line(layer: tuple[str, str, int, str]) -> str:
    op, kernel, stride, mode = layer
    channels = " 4" if op == "conv" else ""
    return f"{op} {kernel}/{stride}{channels} {mode}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(5, 40), layers=st.lists(st.one_of(_conv, _pool), min_size=1, max_size=5))
def test_inferred_shapes_equal_torch_shapes(size, layers):
    text = f"network t\ninput 3x{size}x{size + 3}\n" + "\n".join(_line(layer) for layer in layers) + "\n"
    try:
        net = loads(text)
    except SpecError:
        # Whatever we reject, torch must reject too (or the layer is ill-defined, e.g. `same` on an even kernel).
        with pytest.raises((RuntimeError, ValueError, SpecError)):
            _torch_equivalent(layers, size)
        return
    model = incdsl.compile(net).eval()
    seen: dict[str, tuple[int, ...]] = {}
    for node in net.nodes:
        if node.has_module:
            module = model.get_submodule(node.name)
            module.register_forward_hook(lambda m, i, o, name=node.name: seen.__setitem__(name, tuple(o.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size + 3))
    for node in net.nodes:
        if node.has_module:
            assert seen[node.name] == node.shape, (text, node.name)


def _torch_equivalent(layers: list[tuple[str, str, int, str]], size: int) -> None:
    """The same stack written directly in torch (to see that it fails where we refuse)."""
    x = torch.zeros(1, 3, size, size + 3)
    for op, kernel, stride, mode in layers:
        kh, kw = (int(k) for k in kernel.split("x"))
        if "same" in mode and (kh % 2 == 0 or kw % 2 == 0):
            raise SpecError("same with an even kernel is ill-defined")
        pad = (kh // 2, kw // 2) if "same" in mode else (1, 1) if "pad=1" in mode else (0, 0)
        ceil = "ceil" in mode
        if op == "conv":
            x = torch.nn.functional.conv2d(x, torch.zeros(4, x.shape[1], kh, kw), stride=stride, padding=pad)
        elif op == "maxpool":
            x = torch.nn.functional.max_pool2d(x, (kh, kw), stride, pad, ceil_mode=ceil)
        else:
            x = torch.nn.functional.avg_pool2d(x, (kh, kw), stride, pad, ceil_mode=ceil)
        if min(x.shape[2:]) < 1:
            raise RuntimeError("empty output")
