"""What every kernel of the backend does with its fp32 accumulator tile: add
the bias, then (Inception-ResNet) ``shortcut + scale·y``, then the per-column
activation floor ``max(y, floor)`` (0 is ReLU, −∞ is linear), then the activation
no floor applies (``ACT``, :data:`EPILOGUE_CODES`: GELU), cast to the destinations'
dtype, and store each column range to its own destination.

Destinations are described by a small int64 table, one row per destination:
``(offset, row_stride, start, stop)``: columns ``[start, stop)`` of the GEMM
go to ``out_ptr + offset + row·row_stride + (col − start)``. A destination is
a channels-last tensor or a channel slice of one (a branch's place in its
concat buffer), so rows are pixels. Offsets are counted in elements from one
base tensor, which lets a single launch write any number of destinations and
lets a launch plan place all of them in one arena.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from incdsl import activations
from incdsl.activations import Activation

#: Columns of a destination table row.
TABLE_WIDTH = 4

#: The epilogue's ``ACT`` for each activation that no floor applies: the Triton side of
#: :mod:`incdsl.activations` (0: the floor is all).
EPILOGUE_CODES: dict[Activation, int] = {Activation.GELU: 1, Activation.GELU_TANH: 2}


def epilogue_code(acts: Sequence[Activation | None]) -> int | None:
    """The ``ACT`` that, after each column's floor, applies ``acts`` (one a GEMM member, in
    order); None when no epilogue does (mixed, or an activation without epilogue code).

    >>> epilogue_code([Activation.RELU, None]), epilogue_code([Activation.GELU] * 2)
    (0, 1)
    """
    if all(activations.floor(a) is not None for a in acts):
        return 0
    kinds = set(acts)
    only = kinds.pop() if len(kinds) == 1 else None
    return EPILOGUE_CODES.get(only) if only is not None else None


@triton.jit
def _activate(y, ACT: tl.constexpr):
    """``ACT`` 1: exact GELU, ``y·Φ(y)`` through erf; 2: its tanh form."""
    if ACT == 1:
        y = 0.5 * y * (1.0 + tl.math.erf(y * 0.7071067811865476))
    elif ACT == 2:
        # tanh(z) = 2·sigmoid(2z) − 1, so 0.5·(1 + tanh(z)) = sigmoid(2z)
        y = y * tl.sigmoid(1.5957691216057308 * (y + 0.044715 * y * y * y))
    return y


@triton.jit
def finish_tile(
    acc, first_row, first_col, M, N,
    bias_ptr, floor_ptr, res_ptr, s_res, res_scale,
    out_ptr, table_ptr, num_out,
    RESIDUAL: tl.constexpr, ACT: tl.constexpr, ALIGN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Bias, residual, floor, activation and the stores of the ``[BLOCK_M, BLOCK_N]`` tile at
    (``first_row``, ``first_col``). ``ALIGN`` is how many elements every table entry
    is known to be a multiple of (a power of two up to 16 bytes' worth): with ``stop``
    among them, the column mask is constant over ALIGN columns and each thread stores
    ALIGN elements at once (``STG.E.128`` at 16 bytes). Each pointer is a scalar
    base (64-bit) plus 32-bit offsets within the tile, to keep registers for the tile."""
    r = tl.arange(0, BLOCK_M)
    c = tl.arange(0, BLOCK_N)
    cols = first_col + c
    row_ok = first_row + r < M
    col_ok = cols < N
    row0 = first_row.to(tl.int64)
    y = acc + tl.load(bias_ptr + cols, mask=col_ok, other=0.0)[None, :]
    if RESIDUAL:
        shortcut = tl.load(
            res_ptr + row0 * s_res + cols[None, :] + r[:, None] * s_res, mask=row_ok[:, None] & col_ok[None, :], other=0.0
        )
        y = shortcut.to(tl.float32) + res_scale * y
    y = tl.maximum(y, tl.load(floor_ptr + cols, mask=col_ok, other=0.0)[None, :])
    if ACT != 0:
        y = _activate(y, ACT)
    y = y.to(out_ptr.dtype.element_ty)
    for i in range(num_out):
        start = tl.load(table_ptr + i * 4 + 2)
        stop = tl.load(table_ptr + i * 4 + 3)
        # Only the destinations whose columns this tile holds are stored.
        if (start < first_col + BLOCK_N) & (stop > first_col):
            offset = tl.load(table_ptr + i * 4)
            stride = tl.load(table_ptr + i * 4 + 1)
            if ALIGN > 1:  # every entry is a multiple of ALIGN: the mask is constant over vectors
                offset = tl.multiple_of(offset, ALIGN)
                stride = tl.multiple_of(stride, ALIGN)
                start = tl.multiple_of(start, ALIGN)
                stop = tl.multiple_of(stop, ALIGN)
            base = out_ptr + offset + row0 * stride + (first_col - start)
            in_range = (cols >= start) & (cols < stop)
            tl.store(base + (r[:, None] * stride.to(tl.int32) + c[None, :]), y, mask=row_ok[:, None] & in_range[None, :])


@triton.jit
def tile_of(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Program ``pid``'s (row tile, column tile), in grouped order: ``GROUP_M`` row
    tiles in turn share each column tile's weights while they sit in L2."""
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows
    return pid_m, pid_n


# --- host side ------------------------------------------------------------------


@dataclass(frozen=True)
class Destinations:
    """Where a launch's columns go: ``base`` is the kernel's ``out_ptr``, ``table`` its
    destination table (on the device), ``align`` the ``ALIGN`` constexpr."""

    base: torch.Tensor
    table: torch.Tensor
    count: int
    align: int

    @property
    def args(self) -> dict[str, Any]:
        return {"out_ptr": self.base, "table_ptr": self.table, "num_out": self.count, "ALIGN": self.align}


def pixel_row_stride(t: torch.Tensor) -> int | None:
    """The row stride when ``t`` (N, C, H, W) is a matrix of pixels with unit channel
    stride (a channels-last tensor or a channel slice of one); else None."""
    n, c, h, w = t.shape
    s_n, s_c, s_h, s_w = t.stride()
    if s_c != 1 and c > 1:
        return None
    if (h > 1 and s_h != w * s_w) or (n > 1 and s_n != h * w * s_w):
        return None
    return s_w if w > 1 or h > 1 or n > 1 else max(c, 1)


def pixel_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` (N, C, H, W, channels-last or a channel slice of one) as the matrix
    ``[N·H·W, C]`` of its pixels, without a copy."""
    stride = pixel_row_stride(t)
    if stride is None:
        raise ValueError("expected a channels-last tensor or a channel slice of one")
    n, c, h, w = t.shape
    return t.as_strided((n * h * w, c), (stride, 1))


def destinations(outs: Sequence[torch.Tensor]) -> Destinations:
    """The table for ``outs``, each (N, Ci, H, W) channels-last or a channel slice of one,
    receiving consecutive column ranges of the GEMM in order."""
    base = outs[0]
    itemsize = base.element_size()
    rows, start = [], 0
    for out in outs:
        if out.dtype != base.dtype:
            raise ValueError("all destinations of one launch must have one dtype")
        stride = pixel_row_stride(out)
        if stride is None:
            raise ValueError("destinations must be channels-last tensors or channel slices of them")
        offset_bytes = out.data_ptr() - base.data_ptr()
        rows.append((offset_bytes // itemsize, stride, start, start + out.shape[1]))
        start += out.shape[1]
    table = torch.tensor(rows, dtype=torch.int64).to(base.device)
    return Destinations(base, table, len(rows), store_align(base, rows))


def store_align(base: torch.Tensor, rows: Sequence[tuple[int, ...]]) -> int:
    """The ``ALIGN`` of a table: the largest power of two, up to 16 bytes' worth of elements,
    that divides every entry (offsets, strides, starts and stops alike); 1 unless ``base``
    is 16-byte aligned, since Triton knows a pointer's alignment only from that."""
    align = 16 // base.element_size()
    if base.data_ptr() % 16:
        return 1
    while align > 1 and any(v % align for row in rows for v in row):
        align //= 2
    return align
