"""The Triton kernel of the backend: a convolution as an implicit GEMM over
NHWC activations, with the Inception-specific parts in its prologue and
epilogue.

One kernel covers the three cases the backend uses:

- a fused group of 1×1 convs: ``[N·H·W, Cin] × [Cin, ΣCout]``, each column
  range stored straight to its own destination (a channel slice of the
  module's concat output, or a scratch tensor for a 3×3/5×5 reduction);
- the pool-proj branch: the same GEMM with a k×k stride-1 max or average pool
  taken on the fly while loading the operand (``POOL``);
- an Inception-ResNet filter expansion: the 1×1 GEMM with the residual add in
  its epilogue (``RESIDUAL``);
- any k×k conv (stride, padding, asymmetric kernels), the operand gathered
  per kernel tap (an implicit GEMM with ``K = kh·kw·Cin``).

The epilogue adds the bias, then with ``RESIDUAL`` computes ``r + scale·y``
from the shortcut ``r``, then applies ``max(y, floor)`` per column (floor 0 is
ReLU, −∞ is linear), all in fp32, and casts to the destination's dtype.
Destinations are channels-last tensors or channel slices of them: rows are
pixels, with a row stride. :func:`conv_nhwc` is the host wrapper and
:func:`conv_nhwc_reference` the same computation in torch, for tests.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

POOL_NONE, POOL_MAX, POOL_AVG, POOL_AVG_WITH_PAD = 0, 1, 2, 3
MAX_OUTPUTS = 4


def _configs() -> list[triton.Config]:
    if os.environ.get("TRITON_INTERPRET") == "1":
        # The interpreter runs each program in numpy: few, large tiles; nothing to tune.
        return [triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8})]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8}, num_stages=s, num_warps=w)
        for bm, bn, bk, s, w in [
            (128, 128, 64, 3, 8),
            (128, 64, 64, 4, 4),
            (64, 128, 64, 4, 4),
            (64, 64, 64, 4, 4),
            (128, 128, 32, 4, 8),
            (64, 64, 32, 5, 2),
            (32, 64, 64, 4, 4),
            (128, 256, 64, 3, 8),
            (256, 128, 64, 3, 8),
        ]
    ]


@triton.autotune(configs=_configs(), key=["M", "N", "C", "KH", "KW", "POOL", "NUM_OUT", "RESIDUAL"])
@triton.jit
def _conv_nhwc_kernel(
    x_ptr, w_ptr, b_ptr, floor_ptr, res_ptr,
    y0_ptr, y1_ptr, y2_ptr, y3_ptr,
    M, N, C, H, W, OH, OW,
    sx_n, sx_h, sx_w,
    sy0, sy1, sy2, sy3,
    end0, end1, end2,
    s_res, res_scale,
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr,
    POOL: tl.constexpr, PK: tl.constexpr,
    NUM_OUT: tl.constexpr, RESIDUAL: tl.constexpr, IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    # Grouped tile order: GROUP_M row tiles share each column tile's weights in L2.
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    n = rows // (OH * OW)
    oh = (rows // OW) % OH
    ow = rows % OW
    ks = tl.arange(0, BLOCK_K)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            ih = oh * SH - PH + kh
            iw = ow * SW - PW + kw
            for c0 in range(0, C, BLOCK_K):
                c = c0 + ks
                c_ok = c < C
                if POOL == 0:
                    ok = row_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                    a_ptrs = x_ptr + (n * sx_n + ih * sx_h + iw * sx_w)[:, None] + c[None, :]
                    a = tl.load(a_ptrs, mask=ok[:, None] & c_ok[None, :], other=0.0)
                else:
                    a = _pooled_operand(
                        x_ptr, n, ih, iw, c, row_ok, c_ok, H, W, sx_n, sx_h, sx_w, POOL, PK, BLOCK_M, BLOCK_K
                    )
                w_ptrs = w_ptr + ((kh * KW + kw) * C + c)[:, None] * N + cols[None, :]
                w = tl.load(w_ptrs, mask=c_ok[:, None] & col_ok[None, :], other=0.0)
                if IEEE:  # noqa: SIM108 - a constexpr branch, kept as a statement for Triton
                    acc = tl.dot(a, w, acc, input_precision="ieee")
                else:
                    acc = tl.dot(a, w, acc)

    bias = tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    floor = tl.load(floor_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    y = acc + bias[None, :]
    if RESIDUAL:
        r_ptrs = res_ptr + (rows * s_res)[:, None] + cols[None, :]
        shortcut = tl.load(r_ptrs, mask=row_ok[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
        y = shortcut + res_scale * y
    y = tl.maximum(y, floor[None, :])
    # Each column range goes to its own destination, at its own row stride.
    _store_range(y0_ptr, y, rows, cols, row_ok, sy0, 0, end0)
    if NUM_OUT > 1:
        _store_range(y1_ptr, y, rows, cols, row_ok, sy1, end0, end1)
    if NUM_OUT > 2:
        _store_range(y2_ptr, y, rows, cols, row_ok, sy2, end1, end2)
    if NUM_OUT > 3:
        _store_range(y3_ptr, y, rows, cols, row_ok, sy3, end2, N)


@triton.jit
def _pooled_operand(
    x_ptr, n, oh, ow, c, row_ok, c_ok, H, W, sx_n, sx_h, sx_w,
    POOL: tl.constexpr, PK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """The operand tile after a PK×PK stride-1 pool centred on each output pixel."""
    if POOL == 1:
        best = tl.full((BLOCK_M, BLOCK_K), float("-inf"), tl.float32)
    else:
        best = tl.zeros((BLOCK_M, BLOCK_K), tl.float32)
    count = tl.zeros((BLOCK_M,), tl.float32)
    for dh in tl.static_range(PK):
        for dw in tl.static_range(PK):
            ih = oh + dh - PK // 2
            iw = ow + dw - PK // 2
            ok = row_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            ptrs = x_ptr + (n * sx_n + ih * sx_h + iw * sx_w)[:, None] + c[None, :]
            mask = ok[:, None] & c_ok[None, :]
            if POOL == 1:
                v = tl.load(ptrs, mask=mask, other=float("-inf")).to(tl.float32)
                best = tl.maximum(best, v)
            else:
                best += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
                count += ok.to(tl.float32)
    if POOL == 2:
        best = best / tl.maximum(count, 1.0)[:, None]
    if POOL == 3:
        best = best / (PK * PK)
    best = tl.where(row_ok[:, None] & c_ok[None, :], best, 0.0)
    return best.to(x_ptr.dtype.element_ty)


@triton.jit
def _store_range(y_ptr, y, rows, cols, row_ok, row_stride, start, stop):
    in_range = (cols >= start) & (cols < stop)
    ptrs = y_ptr + (rows * row_stride)[:, None] + (cols - start)[None, :]
    tl.store(ptrs, y.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & in_range[None, :])


def pixel_row_stride(t: torch.Tensor) -> int | None:
    """The row stride when ``t`` (N, C, H, W) is a channels-last matrix of pixels
    with unit channel stride (a channels-last tensor or a channel slice of one); else None."""
    n, _, h, w = t.shape
    s_n, s_c, s_h, s_w = t.stride()
    if s_c != 1 and t.shape[1] > 1:
        return None
    if (h > 1 and s_h != w * s_w) or (n > 1 and s_n != h * w * s_w):
        return None
    return s_w


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[Cout, Cin, kh, kw]`` → the kernel's ``[kh·kw·Cin, Cout]`` (rows tap-major)."""
    cout, cin, kh, kw = weight.shape
    return weight.permute(2, 3, 1, 0).reshape(kh * kw * cin, cout).contiguous()


def conv_nhwc(
    x: torch.Tensor,
    packed_weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    outs: Sequence[torch.Tensor],
    kernel: tuple[int, int] = (1, 1),
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    pool: tuple[int, int] = (POOL_NONE, 1),
    residual: tuple[torch.Tensor, float] | None = None,
) -> None:
    """Run the conv of ``x`` (N, C, H, W, channel stride 1) and store the output
    columns, in order, into ``outs`` (each N, Ci, OH, OW, with ΣCi = Cout).

    ``packed_weight`` comes from :func:`pack_weight`; ``floor`` is the per-column
    activation floor; ``pool = (POOL_*, k)`` pools the operand first (1×1 only);
    ``residual = (shortcut, scale)`` makes the output ``shortcut + scale · conv``
    before the floor (one output). More than four outputs take more than one launch.
    """
    if len(outs) > MAX_OUTPUTS:
        assert residual is None, "a residual conv has one output"
        widths = [o.shape[1] for o in outs[:MAX_OUTPUTS]]
        split = sum(widths)
        conv_nhwc(x, packed_weight[:, :split], bias[:split], floor[:split], outs[:MAX_OUTPUTS], kernel, stride, padding, pool)
        conv_nhwc(x, packed_weight[:, split:], bias[split:], floor[split:], outs[MAX_OUTPUTS:], kernel, stride, padding, pool)
        return
    if packed_weight.stride(1) != 1 or packed_weight.stride(0) != packed_weight.shape[1]:
        packed_weight = packed_weight.contiguous()
    if x.stride(1) != 1 and x.shape[1] > 1:
        x = x.contiguous(memory_format=torch.channels_last)
    batch, channels, height, width = x.shape
    out_h, out_w = outs[0].shape[2:]
    n_cols = packed_weight.shape[1]
    strides = [pixel_row_stride(o) for o in outs]
    assert None not in strides, "destinations must be channels-last (or channel slices of channels-last tensors)"
    ends = list(itertools.accumulate(o.shape[1] for o in outs))
    assert ends[-1] == n_cols, f"outputs hold {ends[-1]} channels, the weights make {n_cols}"
    ptrs = list(outs) + [outs[0]] * (MAX_OUTPUTS - len(outs))
    strides = strides + [0] * (MAX_OUTPUTS - len(outs))
    ends = (ends + [n_cols] * MAX_OUTPUTS)[:3]
    m = batch * out_h * out_w
    shortcut, scale = residual if residual is not None else (outs[0], 0.0)  # unread without RESIDUAL
    s_res = pixel_row_stride(shortcut)
    if residual is not None and (s_res is None or shortcut.stride(1) != 1):
        shortcut = shortcut.contiguous(memory_format=torch.channels_last)
        s_res = pixel_row_stride(shortcut)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n_cols, meta["BLOCK_N"]),)

    _conv_nhwc_kernel[grid](
        x, packed_weight, bias, floor, shortcut, *ptrs,
        m, n_cols, channels, height, width, out_h, out_w,
        x.stride(0), x.stride(2), x.stride(3),
        *strides, *ends, s_res, float(scale),
        KH=kernel[0], KW=kernel[1], SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1],
        POOL=pool[0], PK=pool[1], NUM_OUT=len(outs), RESIDUAL=residual is not None,
        IEEE=x.dtype == torch.float32,
    )  # fmt: skip


def conv_nhwc_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    widths: Sequence[int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    pool: tuple[int, int] = (POOL_NONE, 1),
    residual: tuple[torch.Tensor, float] | None = None,
) -> list[torch.Tensor]:
    """What :func:`conv_nhwc` computes, in torch (``weight`` unpacked, [Cout, Cin, kh, kw])."""
    kind, k = pool
    if kind == POOL_MAX:
        x = F.max_pool2d(x, k, 1, k // 2)
    elif kind in (POOL_AVG, POOL_AVG_WITH_PAD):
        x = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=kind == POOL_AVG_WITH_PAD)
    y = F.conv2d(x, weight, bias, stride, padding)
    if residual is not None:
        y = residual[0] + residual[1] * y
    y = torch.maximum(y, floor[:, None, None])
    return list(torch.split(y, list(widths), dim=1))
