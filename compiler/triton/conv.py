"""Convolutions as implicit GEMMs over channels-last activations, for what is
not a plain 1×1 GEMM:

- a k×k conv (any stride, padding, asymmetric 1×7 / 7×1): one K loop over
  ``kh·kw·Cin`` flattened, so the pipeline fills even when ``Cin`` is 3 (the
  stem) and each K tile carries useful channels; when ``Cin`` is a multiple of
  ``BLOCK_K`` each tile lies in one kernel tap and the tap is a scalar;
- a pool projection: a 1×1 conv whose operand is a k×k stride-1 max or
  average pool of the input, taken while loading (``POOL``); each tap's load
  hits the cache lines its neighbours brought in, and the pooled tensor is
  never written. At small M (batch 1 at 7×7) its K loop, PK² loads per tile,
  is the whole time: ``PARTIAL`` splits it (:mod:`.splitk`, as the 1×1 GEMM).

Row indices (batch, y, x) are computed once per tile, outside the K loop.
The epilogue is :func:`.epilogue.finish_tile`. :func:`conv_reference` is the
same computation in torch, for tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from .epilogue import Destinations, destinations, finish_tile, tile_of
from .launch import Config, Launch, in_order
from .operands import dot_precision, pad_columns
from .operands import pack_weight as pack_weight  # where callers found it before operands.py
from .splitk import check_workspace, k_per_split, reduce_launch, store_partial, workspace_floats

POOL_NONE, POOL_MAX, POOL_AVG, POOL_AVG_WITH_PAD = 0, 1, 2, 3


# One binary for every batch size and image size: M and the spatial sizes only bound masks.
@triton.jit(do_not_specialize=["M", "H", "W", "OH", "OW"])
def _conv_kernel(
    x, b, bias_ptr, floor_ptr, out_ptr, table_ptr, ws_ptr,
    M, N, C, H, W, OH, OW, sx_n, sx_h, sx_w, num_out, k_per_split,
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PH: tl.constexpr, PW: tl.constexpr, POOL: tl.constexpr, PK: tl.constexpr,
    C_TILED: tl.constexpr, ACT: tl.constexpr, PARTIAL: tl.constexpr, ALIGN: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    pid_m, pid_n = tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    first_col = pid_n * BLOCK_N
    cols = first_col + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    image = rows // (OH * OW)
    top = (rows // OW) % OH * SH - PH
    left = rows % OW * SW - PW
    row_base = image * sx_n + top * sx_h + left * sx_w
    ks = tl.arange(0, BLOCK_K)
    K = KH * KW * C
    # With PARTIAL, this program's K range (whole BLOCK_K tiles); else all of K, with bounds the
    # compiler knows (a runtime start costs the unsplit kernel registers: it spilled on sm_80).
    if PARTIAL:
        k_start = tl.program_id(1) * k_per_split
        k_stop = tl.minimum(K, k_start + k_per_split)
    else:
        k_start = 0
        k_stop = K

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(k_start, k_stop, BLOCK_K):
        if POOL != 0:
            c = k + ks
            a = _pooled_tile(x, image, top, left, c, row_ok, c < C, H, W, sx_n, sx_h, sx_w, POOL, PK, BLOCK_M, BLOCK_K)
        elif C_TILED:
            # The whole tile lies in one kernel tap.
            tap = k // C
            dy = tap // KW
            dx = tap % KW
            c = k - tap * C + ks
            ok = row_ok & (top + dy >= 0) & (top + dy < H) & (left + dx >= 0) & (left + dx < W)
            ptrs = x + (row_base + dy * sx_h + dx * sx_w)[:, None] + c[None, :]
            a = tl.load(ptrs, mask=ok[:, None], other=0.0)
        else:
            kk = k + ks
            tap = kk // C
            dy = tap // KW
            dx = tap % KW
            iy = top[:, None] + dy[None, :]
            ix = left[:, None] + dx[None, :]
            ok = row_ok[:, None] & (kk < K)[None, :] & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            offsets = row_base[:, None] + (dy * sx_h + dx * sx_w + kk - tap * C)[None, :]
            a = tl.load(x + offsets, mask=ok, other=0.0)
        kk = k + ks
        w = tl.load(b + kk[:, None] * N + cols[None, :], mask=(kk < K)[:, None] & (cols < N)[None, :], other=0.0)
        acc = tl.dot(a, w, acc, input_precision=PRECISION)

    if PARTIAL:
        store_partial(ws_ptr, acc, pid_m * BLOCK_M, first_col, M, N, BLOCK_M, BLOCK_N)  # the reduce kernel finishes
    else:
        finish_tile(
            acc, pid_m * BLOCK_M, first_col, M, N, bias_ptr, floor_ptr, bias_ptr, 0, 0.0,
            out_ptr, table_ptr, num_out, False, ACT, ALIGN, BLOCK_M, BLOCK_N,
        )  # fmt: skip


@triton.jit
def _pooled_tile(
    x, image, oy, ox, c, row_ok, c_ok, H, W, sx_n, sx_h, sx_w,
    POOL: tl.constexpr, PK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """The operand tile after a PK×PK stride-1 pool centred on each output pixel."""
    if POOL == 1:
        pooled = tl.full((BLOCK_M, BLOCK_K), float("-inf"), tl.float32)
    else:
        pooled = tl.zeros((BLOCK_M, BLOCK_K), tl.float32)
    count = tl.zeros((BLOCK_M,), tl.float32)
    centre = x + (image * sx_n + oy * sx_h + ox * sx_w)[:, None] + c[None, :]
    for dy in tl.static_range(PK):
        iy = oy + dy - PK // 2
        row_in = row_ok & (iy >= 0) & (iy < H)
        for dx in tl.static_range(PK):
            ix = ox + dx - PK // 2
            ok = row_in & (ix >= 0) & (ix < W)
            # A tap is the centre shifted by a scalar: no pointer tile of its own to keep.
            ptrs = centre + ((dy - PK // 2) * sx_h + (dx - PK // 2) * sx_w)
            mask = ok[:, None] & c_ok[None, :]
            if POOL == 1:
                pooled = tl.maximum(pooled, tl.load(ptrs, mask=mask, other=float("-inf")).to(tl.float32))
            else:
                pooled += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
                count += ok.to(tl.float32)
    if POOL == 2:
        pooled = pooled / tl.maximum(count, 1.0)[:, None]
    if POOL == 3:
        pooled = pooled / (PK * PK)
    pooled = tl.where(row_ok[:, None] & c_ok[None, :], pooled, 0.0)
    return pooled.to(x.dtype.element_ty)


def conv_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """What the k×k path computes, in torch (``weight`` is [Cout, Cin, kh, kw])."""
    return torch.maximum(F.conv2d(x, weight, bias, stride, padding), floor[:, None, None])


def pool_projection_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, floor: torch.Tensor, pool: tuple[int, int]
) -> torch.Tensor:
    """What the ``POOL`` path computes, in torch: the stride-1 pool, then the 1×1 conv."""
    kind, k = pool
    if kind == POOL_MAX:
        x = F.max_pool2d(x, k, 1, k // 2)
    else:
        x = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=kind == POOL_AVG_WITH_PAD)
    return conv_reference(x, weight, bias, floor)


# --- host side ------------------------------------------------------------------


def conv_launches(
    x: torch.Tensor,
    packed_weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    dest: Destinations,
    out_size: tuple[int, int],
    config: Config,
    kernel: tuple[int, int] = (1, 1),
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    pool: tuple[int, int] = (POOL_NONE, 1),
    act: int = 0,
    workspace: torch.Tensor | None = None,
) -> list[Launch]:
    """The launches of the conv of ``x`` (N, C, H, W, unit channel stride) whose output,
    ``out_size`` pixels high and wide, goes to ``dest``; ``packed_weight`` is
    [kh·kw·C, Cout] (:func:`pack_weight`); ``pool = (POOL_*, k)`` pools first (1×1 only);
    ``act`` the epilogue's activation after the floor (:data:`.epilogue.EPILOGUE_CODES`).
    With ``config.split_k > 1`` (the split-K candidates are the pool projection's),
    ``workspace`` holds at least ``split_k·M·Cout`` fp32 and a reduce launch follows,
    which runs the epilogue, activation included."""
    batch, channels, height, width = x.shape
    out_h, out_w = out_size
    m, n = batch * out_h * out_w, packed_weight.shape[1]
    if pool[0] != POOL_NONE and kernel != (1, 1):
        raise ValueError("a pool prologue goes with a 1×1 conv")
    check_workspace(workspace, m, n, config)
    splits = config.split_k
    tiles = triton.cdiv(m, config.block_m) * triton.cdiv(n, config.block_n)
    main = Launch(
        _conv_kernel,
        (tiles, splits),
        {
            "x": x, "b": packed_weight, "bias_ptr": bias, "floor_ptr": floor, **dest.args,
            "ws_ptr": workspace if workspace is not None else bias,
            "M": m, "N": n, "C": channels, "H": height, "W": width, "OH": out_h, "OW": out_w,
            "sx_n": x.stride(0), "sx_h": x.stride(2), "sx_w": x.stride(3),
            "k_per_split": k_per_split(kernel[0] * kernel[1] * channels, config),
            "KH": kernel[0], "KW": kernel[1], "SH": stride[0], "SW": stride[1], "PH": padding[0], "PW": padding[1],
            "POOL": pool[0], "PK": pool[1], "ACT": act, "PARTIAL": splits > 1,
            # (a pool projection never reads C_TILED: one binary whatever its channels)
            "C_TILED": pool[0] == POOL_NONE and channels % config.block_k == 0,
            "PRECISION": dot_precision(x.dtype), **config.meta,
        },  # fmt: skip
        config.options,
    )
    if splits == 1:
        return [main]
    # The conv's epilogue has no residual: the reduce kernel's residual arguments are never read.
    epilogue = {
        "bias_ptr": bias, "floor_ptr": floor, "res_ptr": bias, "s_res": 0, "res_scale": 0.0, "RESIDUAL": False, "ACT": act,
        **dest.args,
    }  # fmt: skip
    return [main, reduce_launch(workspace, epilogue, m, n, splits)]  # type: ignore[arg-type]


def prepare_conv(
    x: torch.Tensor,
    packed_weight: torch.Tensor,
    bias: torch.Tensor,
    floor: torch.Tensor,
    outs: Sequence[torch.Tensor],
    config: Config,
    kernel: tuple[int, int] = (1, 1),
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    pool: tuple[int, int] = (POOL_NONE, 1),
    act: int = 0,
) -> Callable[[], None]:
    """The conv of ``x`` storing its columns in order into ``outs``, prepared: the returned
    function launches it (for tests and benchmarks)."""
    if x.stride(1) != 1 and x.shape[1] > 1:
        x = x.contiguous(memory_format=torch.channels_last)
    n = packed_weight.shape[1]
    out_size = tuple(outs[0].shape[2:])
    floats = workspace_floats(x.shape[0] * out_size[0] * out_size[1], n, config)
    workspace = torch.empty(floats, dtype=torch.float32, device=x.device) if floats else None
    launches = conv_launches(
        x, packed_weight, pad_columns(bias, n), pad_columns(floor, n), destinations(outs), out_size,
        config, kernel, stride, padding, pool, act, workspace,
    )  # fmt: skip
    return in_order(launches)


def conv(*args: Any, **kwargs: Any) -> None:
    """Run :func:`prepare_conv`'s conv once."""
    prepare_conv(*args, **kwargs)()
