"""incdsl's Triton kernels as PyTorch operators, so that ``torch.compile`` and
``torch.export`` see them as single calls in one graph:

- ``incdsl::group_1x1``: a fused group of parallel 1×1 convs (one GEMM);
- ``incdsl::residual_1x1``: the Inception-ResNet filter expansion with its
  residual add ``floor(shortcut + scale·y)``;
- ``incdsl::pool_1x1``: a pool projection (the stride-1 pool taken while loading);
- ``incdsl::conv``: a k×k conv as an implicit GEMM.

Each takes ordinary tensors and returns a new channels-last one holding every
column of the kernel (a group's members side by side): the graph slices it per
member and concatenates as torch would. That keeps the operators functional,
which is what Inductor can fuse around (the slices and ``cat`` after them, the
bias and ReLU of the torch-form convs beside them, pools without indices). An
operator that wrote into a slice of its consumer's concat buffer
(``mutates_args``) would be functionalised back into a copy of that slice, so
the launch plan's "store into the concat's place" trick buys nothing inside a
compiled graph.

Weights come as the launch plan holds them (:func:`.conv.pack_weight`,
:func:`.conv.pad_columns`); ``cout`` is the number of real columns. Each
operator has a fake implementation (shapes and dtypes only), used when tracing.

On a GPU they are :func:`torch.library.triton_op` s whose launches go through
:func:`torch.library.wrap_triton`: Inductor traces into them and schedules the
kernels itself (and a CUDA graph replays them with the rest). In Triton's
interpreter (``TRITON_INTERPRET=1``) a kernel is no JIT function that torch can
trace into (``wrap_triton`` hands it back unwrapped), so there the same bodies
are registered as opaque :func:`torch.library.custom_op` s: graphs hold the same
``incdsl::`` calls and run the kernels in the interpreter. Operand tiles load
through plain masked loads here, not TMA (the launch plan's TMA path is not
traced yet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import torch

from . import token_mixer
from .conv import conv_launches
from .epilogue import TABLE_WIDTH, Destinations, pixel_row_stride, pixel_rows
from .gemm import gemm_launches, precision_of
from .launch import Config, Launch, interpreted
from .splitk import workspace_floats
from .tuning import Shape, runtime_chooser


def _out(x: torch.Tensor, cout: int, height: int, width: int) -> torch.Tensor:
    return torch.empty((x.shape[0], cout, height, width), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` as the kernels read it: pixels as rows with unit channel stride. A channel slice of a
    channels-last tensor (a group member's output, a concat's part) already is: no copy."""
    return t if pixel_row_stride(t) is not None else t.contiguous(memory_format=torch.channels_last)


def _destination(out: torch.Tensor) -> Destinations:
    """``out`` (fresh, channels-last) as the one destination of every column: offset 0, row
    stride ``cout``, columns ``[0, cout)``. Vector stores when ``cout`` fills 16-byte rows
    (the base's own alignment is Triton's specialisation, as for any pointer)."""
    cout = out.shape[1]
    # Built by ops, not torch.tensor(list): AOT tracing (on a GPU) refuses a tensor made from
    # Python data inside the operator's body.
    table = torch.zeros((1, TABLE_WIDTH), dtype=torch.int64, device=out.device)
    table[:, 1::2] = cout  # (offset 0, row stride cout, start 0, stop cout)
    vector = 16 // out.element_size()
    return Destinations(out, table, 1, vector if cout % vector == 0 else 1)


@cache
def _chooser(device: torch.device) -> Any:
    """The launch plan's config choice (tuned configs from the cache, else the defaults)."""
    return runtime_chooser(device)


def _workspace(m: int, n: int, config: Config, x: torch.Tensor) -> torch.Tensor | None:
    """A split-K config's fp32 workspace for an ``[m, n]`` output (None without split-K)."""
    floats = workspace_floats(m, n, config)
    return torch.empty(floats, dtype=torch.float32, device=x.device) if floats else None


def _run(shape: Shape, device: torch.device, make: Callable[[Config], list[Launch]]) -> None:
    from torch.library import wrap_triton

    for launch in _chooser(device)(shape, make):
        wrap_triton(launch.kernel)[launch.grid](**launch.args, **launch.options)


def _gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, floor: torch.Tensor, cout: int,
          residual: tuple[torch.Tensor, float] | None, act: int) -> torch.Tensor:  # fmt: skip
    x = _channels_last(x)
    batch, _, height, width = x.shape
    out = _out(x, cout, height, width)
    a = pixel_rows(x)
    (m, k), n = a.shape, weight.shape[1]
    rows = None if residual is None else (pixel_rows(_channels_last(residual[0])), residual[1])
    dest = _destination(out)

    def make(config: Config) -> list[Launch]:
        return gemm_launches(a, weight, bias, floor, dest, config, residual=rows, workspace=_workspace(m, n, config, x), act=act)

    _run(Shape("gemm", m, n, k, 1, precision_of(x.dtype)), x.device, make)
    return out


def group_1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, floor: torch.Tensor, cout: int,
              act: int) -> torch.Tensor:  # fmt: skip
    """``act(max(conv1x1(x) + bias, floor))`` for a fused group: ``[N, cout, H, W]`` channels-last."""
    return _gemm(x, weight, bias, floor, cout, None, act)


def residual_1x1(
    x: torch.Tensor, shortcut: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, floor: torch.Tensor,
    scale: float, cout: int, act: int,
) -> torch.Tensor:  # fmt: skip
    """``act(max(shortcut + scale·(conv1x1(x) + bias), floor))``: an Inception-ResNet expansion."""
    return _gemm(x, weight, bias, floor, cout, (shortcut, scale), act)


def pool_1x1(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, floor: torch.Tensor, pool: int, pool_kernel: int,
    cout: int, act: int,
) -> torch.Tensor:  # fmt: skip
    """A pool projection: the ``pool_kernel``² stride-1 pool (``POOL_*`` of :mod:`.conv`), then the 1×1 conv."""
    x = _channels_last(x)
    batch, channels, height, width = x.shape
    out = _out(x, cout, height, width)
    dest = _destination(out)
    m, n = batch * height * width, weight.shape[1]
    shape = Shape("pool", m, n, channels, pool_kernel**2, precision_of(x.dtype))
    _run(shape, x.device, lambda config: conv_launches(
        x, weight, bias, floor, dest, (height, width), config, pool=(pool, pool_kernel),
        workspace=_workspace(m, n, config, x), act=act,
    ))  # fmt: skip
    return out


def conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, floor: torch.Tensor, kernel: list[int],
    stride: list[int], padding: list[int], cout: int, act: int,
) -> torch.Tensor:  # fmt: skip
    """A k×k conv, ``act(max(conv(x) + bias, floor))``; ``weight`` packed ``[kh·kw·Cin, Cout']``."""
    x = _channels_last(x)
    batch, channels, height, width = x.shape
    out_h, out_w = _conv_size((height, width), kernel, stride, padding)
    out = _out(x, cout, out_h, out_w)
    dest = _destination(out)
    kh, kw = kernel
    shape = Shape("conv", batch * out_h * out_w, weight.shape[1], weight.shape[0], kh * kw, precision_of(x.dtype))
    _run(shape, x.device, lambda config: conv_launches(
        x, weight, bias, floor, dest, (out_h, out_w), config, (kh, kw), tuple(stride), tuple(padding), act=act
    ))  # fmt: skip
    return out


def _conv_size(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]) -> tuple[int, int]:
    return tuple((s + 2 * p - k) // st + 1 for s, k, st, p in zip(size, kernel, stride, padding, strict=True))  # type: ignore[return-value]


# --- fake implementations: shapes and dtypes only ------------------------------------


def _group_fake(x, weight, bias, floor, cout, act):  # noqa: ANN001, ANN202
    return _out(x, cout, x.shape[2], x.shape[3])


def _residual_fake(x, shortcut, weight, bias, floor, scale, cout, act):  # noqa: ANN001, ANN202
    return _out(x, cout, x.shape[2], x.shape[3])


def _pool_fake(x, weight, bias, floor, pool, pool_kernel, cout, act):  # noqa: ANN001, ANN202
    return _out(x, cout, x.shape[2], x.shape[3])


def _conv_fake(x, weight, bias, floor, kernel, stride, padding, cout, act):  # noqa: ANN001, ANN202
    return _out(x, cout, *_conv_size(x.shape[2:], kernel, stride, padding))


def _register(name: str, body: Callable[..., torch.Tensor], fake: Callable[..., torch.Tensor]) -> Any:
    """``incdsl::name``: a ``triton_op`` on a GPU, an opaque ``custom_op`` in the interpreter (see
    the module's docstring); either way with ``fake`` as its fake implementation."""
    from torch.library import custom_op, triton_op

    define = custom_op if interpreted() else triton_op
    op = define(f"incdsl::{name}", body, mutates_args=())
    op.register_fake(fake)
    return op


GROUP_1X1 = _register("group_1x1", group_1x1, _group_fake)
RESIDUAL_1X1 = _register("residual_1x1", residual_1x1, _residual_fake)
POOL_1X1 = _register("pool_1x1", pool_1x1, _pool_fake)
CONV = _register("conv", conv, _conv_fake)
INCEPTION_DW = _register("inception_dw", token_mixer.inception_dw, token_mixer.inception_dw_fake)
