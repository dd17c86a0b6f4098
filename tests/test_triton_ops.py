"""incdsl's kernels as ``incdsl::`` operators: each against torch, and its fake
implementation against the real one.

Without a GPU the kernels run in Triton's interpreter (conftest), so shapes are small.
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from incdsl.compiler.triton import ops
from incdsl.compiler.triton.conv import (
    POOL_AVG,
    POOL_MAX,
    conv_reference,
    pack_weight,
    pad_columns,
    pool_projection_reference,
)
from incdsl.compiler.triton.gemm import gemm_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# --- the operators -------------------------------------------------------------------


def _operands(cin: int, cout: int, kernel: tuple[int, int] = (1, 1), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, cin, 5, 6, generator=g).to(DEVICE).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, *kernel, generator=g).to(DEVICE)
    bias = torch.randn(cout, generator=g).to(DEVICE)
    floor = torch.where(torch.arange(cout, device=DEVICE) < cout // 3, 0.0, float("-inf"))  # ReLU on some columns
    packed = pack_weight(weight)
    n = packed.shape[1]
    return x, weight, bias, floor, (packed, pad_columns(bias, n), pad_columns(floor, n))


def _group(cin: int, cout: int):
    x, w, b, f, packed = _operands(cin, cout)
    return (x, *packed, cout), torch.cat(gemm_reference(x, w, b, f, [cout]), 1), ops.GROUP_1X1


def _residual(cin: int, cout: int):
    x, w, b, f, packed = _operands(cin, cout)
    shortcut = torch.randn(2, cout, 5, 6, device=DEVICE)  # contiguous, not channels-last: the op converts it
    expected = torch.cat(gemm_reference(x, w, b, f, [cout], residual=(shortcut, 0.17)), 1)
    return (x, shortcut, *packed, 0.17, cout), expected, ops.RESIDUAL_1X1


def _pool(kind: int):
    def case(cin: int, cout: int):
        x, w, b, f, packed = _operands(cin, cout)
        return (x, *packed, kind, 3, cout), pool_projection_reference(x, w, b, f, (kind, 3)), ops.POOL_1X1

    return case


def _conv(cin: int, cout: int):
    x, w, b, f, packed = _operands(cin, cout, (3, 3))
    expected = conv_reference(x, w, b, f, (2, 2), (1, 1))
    return (x, *packed, [3, 3], [2, 2], [1, 1], cout), expected, ops.CONV


OPERATORS = {"group": _group, "residual": _residual, "maxpool": _pool(POOL_MAX), "avgpool": _pool(POOL_AVG), "conv": _conv}


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("cout", [20, 24])  # 24 fills 16-byte rows (vector stores); 20 does not
def test_each_operator_computes_what_torch_does(name, cout):
    args, expected, op = OPERATORS[name](24, cout)
    out = op(*args)
    assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert (out - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", OPERATORS)
def test_each_fake_implementation_gives_the_real_shape_stride_and_dtype(name):
    args, _, op = OPERATORS[name](24, 20)
    real = op(*args)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = op(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args))
    assert (fake.shape, fake.stride(), fake.dtype, fake.device) == (real.shape, real.stride(), real.dtype, real.device)
