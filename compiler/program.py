"""The eval program of a passed network: the nodes its logits depend on, in
execution order, and where each value is read for the last time. Pure IR
logic, shared by the inference backends and the compile report (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from incdsl import ir


class _Reads(Protocol):
    inputs: tuple[str, ...]


def eval_program(passed: ir.Network) -> list[ir.Node]:
    """The nodes the outputs (the logits, or the features asked for) depend on, in execution
    order (aux heads and a trailing softmax left out)."""
    outputs = passed.outputs()
    needed = set(outputs).union(*(passed.ancestors(o) for o in outputs))
    return [n for n in passed.nodes if n.name in needed]


def kernel_conv(node: ir.Node, convs: bool) -> bool:
    """Whether the Triton k×k conv kernel computes ``node`` (``convs``: that kernel is on). Its
    implicit GEMM reads every input channel for every output, so grouped and depthwise convs
    stay with torch (cuDNN)."""
    return convs and isinstance(node.attrs, ir.ConvAttrs) and node.attrs.groups == 1


def last_uses(steps: Sequence[_Reads]) -> dict[str, int]:
    """Where each value is read for the last time (so a runner can free it)."""
    last: dict[str, int] = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            last[name] = i
    return last
