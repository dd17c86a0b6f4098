"""The fused 1×1 group as one GEMM: ``[N·H·W, Cin] × [Cin, ΣCout]`` over
channels-last activations, rows being pixels, so no index arithmetic per row.

- ``TMA``: on sm_90 the operand tiles come through tensor descriptors (the
  copy engine, zero-filled past the edges); elsewhere through masked loads.
- ``PARTIAL``: split-K for small M (batch 1 at 7×7 or 8×8 makes a handful of
  tiles for 132 SMs), as :mod:`.splitk` describes.
- the epilogue (:mod:`.epilogue`): bias, the Inception-ResNet residual add,
  the activation floor, each member's columns stored to its own destination.

:func:`gemm_reference` is the same computation in torch, for tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from .epilogue import Destinations, destinations, finish_tile, pixel_rows, tile_of
from .launch import Config, Launch, in_order
from .operands import dot_precision, pad_columns
from .operands import precision_of as precision_of  # where callers found it before operands.py
from .splitk import check_workspace, k_per_split, reduce_launch, store_partial, workspace_floats


@triton.jit(do_not_specialize=["M"])  # one binary for every batch size
def _gemm_kernel(
    a, b, bias_ptr, floor_ptr, res_ptr, out_ptr, table_ptr, ws_ptr,
    M, N, K, s_a, s_res, res_scale, num_out, k_per_split,
    TMA: tl.constexpr, RESIDUAL: tl.constexpr, ACT: tl.constexpr, PARTIAL: tl.constexpr, ALIGN: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    pid_m, pid_n = tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    first_row = pid_m * BLOCK_M
    first_col = pid_n * BLOCK_N
    k_start = tl.program_id(1) * k_per_split
    k_stop = tl.minimum(K, k_start + k_per_split)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if TMA:
        for k in range(k_start, k_stop, BLOCK_K):
            acc = tl.dot(a.load([first_row, k]), b.load([k, first_col]), acc, input_precision=PRECISION)
    else:
        # Scalar 64-bit bases, 32-bit offsets within the tiles.
        r = tl.arange(0, BLOCK_M)
        c = tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        row_ok = first_row + r < M
        col_ok = first_col + c < N
        a_tile = a + first_row.to(tl.int64) * s_a + (r[:, None] * s_a + ks[None, :])
        b_tile = b + first_col + (ks[:, None] * N + c[None, :])
        for k in range(k_start, k_stop, BLOCK_K):
            k_ok = k + ks < k_stop
            tile_a = tl.load(a_tile + k, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            tile_b = tl.load(b_tile + k * N, mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            acc = tl.dot(tile_a, tile_b, acc, input_precision=PRECISION)

    if PARTIAL:
        store_partial(ws_ptr, acc, first_row, first_col, M, N, BLOCK_M, BLOCK_N)  # the reduce kernel finishes
    else:
        finish_tile(
            acc, first_row, first_col, M, N, bias_ptr, floor_ptr, res_ptr, s_res, res_scale,
            out_ptr, table_ptr, num_out, RESIDUAL, ACT, ALIGN, BLOCK_M, BLOCK_N,
        )  # fmt: skip


def gemm_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    widths: Sequence[int],
    residual: tuple[torch.Tensor, float] | None = None,
    pool: tuple[str, int, bool] | None = None,
) -> list[torch.Tensor]:
    """What the backend's 1×1 kernels compute, in torch: ``weight`` is [Cout, Cin, 1, 1];
    ``pool = (op, k, count_include_pad)`` pools first (a pool projection)."""
    if pool is not None:
        op, k, with_pad = pool
        if op == "maxpool":
            x = F.max_pool2d(x, k, 1, k // 2)
        else:
            x = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=with_pad)
    y = F.conv2d(x, weight, bias)
    if residual is not None:
        y = residual[0] + residual[1] * y
    y = torch.maximum(y, floor[:, None, None])
    return list(torch.split(y, list(widths), dim=1))


# --- host side ------------------------------------------------------------------


def _descriptor(t: torch.Tensor, block: tuple[int, int]) -> Any:
    from triton.tools.tensor_descriptor import TensorDescriptor

    return TensorDescriptor(t, list(t.shape), list(t.stride()), list(block))


def tma_applies(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the copy engine can load both operands: 16-byte aligned bases and row strides."""
    return all(t.data_ptr() % 16 == 0 and (t.stride(0) * t.element_size()) % 16 == 0 for t in (a, b))


def gemm_launches(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    dest: Destinations,
    config: Config,
    *,
    residual: tuple[torch.Tensor, float] | None = None,
    tma: bool = False,
    workspace: torch.Tensor | None = None,
    act: int = 0,
) -> list[Launch]:
    """The launches of ``a [M, K] × b [K, N]`` (``a`` with unit column stride, ``b`` contiguous)
    into ``dest``; ``bias`` and ``floor`` fp32 [N]; ``residual = (shortcut [M, N], scale)``;
    ``act`` the epilogue's activation after the floor (:data:`.epilogue.EPILOGUE_CODES`).
    With ``config.split_k > 1``, ``workspace`` holds at least ``split_k·M·N`` fp32."""
    (m, k), n = a.shape, b.shape[1]
    if residual is not None:
        shortcut, scale = residual
    else:
        shortcut, scale = bias, 0.0  # never read
    splits = config.split_k
    check_workspace(workspace, m, n, config)
    operands = (
        {"a": _descriptor(a, (config.block_m, config.block_k)), "b": _descriptor(b, (config.block_k, config.block_n))}
        if tma
        else {"a": a, "b": b}
    )
    epilogue = {
        "bias_ptr": bias, "floor_ptr": floor, "res_ptr": shortcut,
        "s_res": shortcut.stride(0) if residual is not None else 0, "res_scale": float(scale),
        "RESIDUAL": residual is not None, "ACT": act, **dest.args,
    }  # fmt: skip
    tiles = triton.cdiv(m, config.block_m) * triton.cdiv(n, config.block_n)
    main = Launch(
        _gemm_kernel,
        (tiles, splits),
        {
            **operands, **epilogue, "ws_ptr": workspace if workspace is not None else bias,
            "M": m, "N": n, "K": k, "s_a": a.stride(0), "k_per_split": k_per_split(k, config),
            "TMA": tma, "PARTIAL": splits > 1, "PRECISION": dot_precision(a.dtype), **config.meta,
        },  # fmt: skip
        config.options,
    )
    return [main] if splits == 1 else [main, reduce_launch(workspace, epilogue, m, n, splits)]  # type: ignore[arg-type]


def prepare_gemm(
    x: torch.Tensor,
    packed_weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    outs: Sequence[torch.Tensor],
    config: Config,
    residual: tuple[torch.Tensor, float] | None = None,
    tma: bool = False,
    act: int = 0,
) -> Callable[[], None]:
    """The 1×1 GEMM of ``x`` (N, C, H, W, channels-last) storing its columns in order into
    ``outs``, prepared: the returned function launches it (for tests and benchmarks; a
    launch plan builds its launches the same way)."""
    a = pixel_rows(x)
    m, n = a.shape[0], packed_weight.shape[1]
    if residual is not None:
        residual = (pixel_rows(residual[0]), residual[1])
    floats = workspace_floats(m, n, config)
    workspace = torch.empty(floats, dtype=torch.float32, device=x.device) if floats else None
    launches = gemm_launches(
        a, packed_weight, pad_columns(bias, n), pad_columns(floor, n), destinations(outs), config,
        residual=residual, tma=tma and tma_applies(a, packed_weight), workspace=workspace, act=act,
    )  # fmt: skip
    return in_order(launches)


def gemm(*args: Any, **kwargs: Any) -> None:
    """Run :func:`prepare_gemm`'s GEMM once."""
    prepare_gemm(*args, **kwargs)()
