"""The Triton backend's traceable eval forward: the fused torch path's step
program (:class:`~..program.EvalStep`, run by :class:`~..torch.fused.InferenceEval`)
with each operation whose form is ``"kernel"`` (:mod:`.choice`) replaced by
its ``incdsl::`` operator (:mod:`.ops`). ``torch.compile`` traces it as one
graph and ``torch.export`` exports it; eagerly it runs op by op.

:func:`kernel_calls` turns the passed IR into plain values once (like the step
program itself), so tracing reads no IR objects; :func:`run_kernel` is one
step through its operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from incdsl import ir

from ..program import EvalStep, kernel_conv
from . import ops
from .plan import Weights, pool_code


@dataclass(frozen=True)
class KernelCall:
    """What an operation's operator needs beyond its inputs and weights: its real output
    columns, and a pool projection's ``(POOL_*, k)`` or a k×k conv's kernel size."""

    cout: int
    pool: tuple[int, int] | None = None
    kernel: tuple[int, int] | None = None
    #: a token mixer's square and band kernel sizes
    mixer: tuple[int, int] | None = None


def kernel_calls(nodes: list[ir.Node], convs: bool) -> dict[str, KernelCall]:
    """The operations of the passed IR that have an ``incdsl::`` operator: every 1×1 group
    (fused, pool projection, residual expansion) and token mixer, and with ``convs`` every k×k conv."""
    calls = {}
    for node in nodes:
        a = node.attrs
        cout = node.shape[0]  # type: ignore[index]
        if isinstance(a, ir.TokenMixerAttrs):
            calls[node.name] = KernelCall(cout, mixer=(a.square, a.band))
        elif isinstance(a, ir.Conv1x1GroupAttrs):
            calls[node.name] = KernelCall(cout, pool=pool_code(a.pool) if a.pool is not None else None)
        elif kernel_conv(node, convs):
            calls[node.name] = KernelCall(cout, kernel=a.kernel)
    return calls


def run_kernel(call: KernelCall, step: EvalStep, xs: list[torch.Tensor], w: Weights) -> torch.Tensor:
    """``step`` (a group, a conv or a token mixer, whose inputs are ``xs``) through its ``incdsl::`` operator."""
    if call.mixer is not None:
        return ops.INCEPTION_DW(xs[0], w.weight, w.bias, *call.mixer)
    if call.kernel is not None:
        return ops.CONV(xs[0], w.weight, w.bias, w.floor, list(call.kernel), list(step.stride), list(step.padding), call.cout, w.act)
    if call.pool is not None:
        return ops.POOL_1X1(xs[0], w.weight, w.bias, w.floor, call.pool[0], call.pool[1], call.cout, w.act)
    if step.residual:
        return ops.RESIDUAL_1X1(xs[0], xs[1], w.weight, w.bias, w.floor, step.scale, call.cout, w.act)
    return ops.GROUP_1X1(xs[0], w.weight, w.bias, w.floor, call.cout, w.act)
