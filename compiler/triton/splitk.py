"""Split-K, shared by the 1×1 group GEMM (:mod:`.gemm`) and the pool projection
(:mod:`.conv`): when a GEMM's output tiles leave most SMs idle (batch 1 at 7×7
or 8×8 makes a handful), each of ``splits`` programs per tile sums one K range
(``program_id(1)``) and stores it to an fp32 workspace (:func:`store_partial`);
then :func:`_reduce_kernel` adds the ranges in a fixed order (deterministic)
and runs the epilogue, so the main kernel's own epilogue is skipped.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from .epilogue import finish_tile
from .launch import Config, Launch


@triton.jit
def store_partial(ws_ptr, acc, first_row, first_col, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's K range of the tile at (``first_row``, ``first_col``), summed, into the
    workspace's ``program_id(1)``-th ``[M, N]`` slab."""
    rows = (first_row + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = first_col + tl.arange(0, BLOCK_N)
    offsets = (tl.program_id(1) * M + rows)[:, None] * N + cols[None, :]
    tl.store(ws_ptr + offsets, acc, mask=(rows < M)[:, None] & (cols < N)[None, :])


@triton.jit(do_not_specialize=["M"])  # one binary for every batch size
def _reduce_kernel(
    ws_ptr, bias_ptr, floor_ptr, res_ptr, out_ptr, table_ptr,
    M, N, splits, s_res, res_scale, num_out,
    RESIDUAL: tl.constexpr, ACT: tl.constexpr, ALIGN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Sum the split-K partial tiles in order and run the epilogue."""
    first_row = tl.program_id(0) * BLOCK_M
    first_col = tl.program_id(1) * BLOCK_N
    rows = (first_row + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = first_col + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < N)[None, :]
    offsets = rows[:, None] * N + cols[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for s in range(splits):
        acc += tl.load(ws_ptr + s * M * N + offsets, mask=mask, other=0.0)
    finish_tile(
        acc, first_row, first_col, M, N, bias_ptr, floor_ptr, res_ptr, s_res, res_scale,
        out_ptr, table_ptr, num_out, RESIDUAL, ACT, ALIGN, BLOCK_M, BLOCK_N,
    )  # fmt: skip


#: The reduce kernel's tile: it is memory-bound and runs once per split group.
REDUCE_BLOCK = (64, 64)


def k_per_split(k: int, config: Config) -> int:
    """The K range of each split: whole ``BLOCK_K`` tiles, so only the last range has a ragged end."""
    return triton.cdiv(triton.cdiv(k, config.block_k), config.split_k) * config.block_k


def workspace_floats(m: int, n: int, config: Config) -> int:
    """The fp32 workspace ``config`` needs for an ``[m, n]`` output (0 without split-K)."""
    return config.split_k * m * n if config.split_k > 1 else 0


def check_workspace(workspace: torch.Tensor | None, m: int, n: int, config: Config) -> None:
    floats = workspace_floats(m, n, config)
    if floats and (workspace is None or workspace.numel() < floats):
        raise ValueError(f"split-K over {config.split_k} ranges needs a workspace of {config.split_k}·{m}·{n} floats")


def reduce_launch(workspace: torch.Tensor, epilogue: dict[str, Any], m: int, n: int, splits: int) -> Launch:
    """The launch that sums ``splits`` partial ``[m, n]`` slabs and runs the epilogue, whose
    arguments (``finish_tile``'s, by the kernels' names, ``ACT`` included: the activation runs
    here, not in the split main kernel) are ``epilogue``."""
    block_m, block_n = REDUCE_BLOCK
    return Launch(
        _reduce_kernel,
        (triton.cdiv(m, block_m), triton.cdiv(n, block_n)),
        {"ws_ptr": workspace, **epilogue, "M": m, "N": n, "splits": splits, "BLOCK_M": block_m, "BLOCK_N": block_n},
        {"num_warps": 4, "num_stages": 1},
    )
