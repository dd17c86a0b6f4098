"""The operations that are no layer: the network's ``input``, the ``concat`` and residual
``add`` that elaboration makes of compound statements, and what the fusion passes make
(``conv1x1_group``, read through ``slice`` s). None has a module of its own."""

from __future__ import annotations

from .. import ir
from ..errors import SpecError
from .base import Operation, where, with_origin


def _concat(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    a: ir.ConcatAttrs = node.attrs  # type: ignore[assignment]
    first = inputs[0]
    for label, shape in zip(a.branches[1:], inputs[1:], strict=True):
        if shape[1:] != first[1:]:
            raise SpecError(
                f"concat{where(node)}: {a.branches[0]} is {first[1]}×{first[2]} but {label} is "
                f"{shape[1]}×{shape[2]}; the branches must agree in height and width",
                node.span,
                hint="a valid-padded or strided layer in one branch only? (`same` keeps the size at stride 1)",
            )
    return (sum(s[0] for s in inputs), first[1], first[2])


def _add(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    shortcut, branch = inputs
    if shortcut != branch:
        last = net.node(node.inputs[1])
        what = "channels" if shortcut[1:] == branch[1:] else "C×H×W"
        fmt = (lambda s: str(s[0])) if what == "channels" else (lambda s: "×".join(map(str, s)))
        hint = f"the last layer of a residual branch (the 1×1 filter expansion) must restore the input's {shortcut[0]} channels"
        raise SpecError(
            f"residual add{where(node)}: the shortcut has {fmt(shortcut)} {what} but the residual branch "
            f"ends with {fmt(branch)} (`{last.name}`, line {last.span.line if last.span else '?'})",
            last.span,
            hint=with_origin(hint, last),
        )
    return shortcut


INPUT = Operation("input", ir.InputAttrs, infer=lambda node, inputs, net: net.input_shape, rank="map")
CONCAT = Operation("concat", ir.ConcatAttrs, infer=_concat, label=lambda a: "concat", fill="#d9ead3")
ADD = Operation(
    "add",
    ir.AddAttrs,
    infer=_add,
    label=lambda a: "residual add",
    describe=lambda a: "add" if a.scale == 1 else f"add (×{a.scale:g})",
    fill="#d9ead3",
)
CONV1X1_GROUP = Operation("conv1x1_group", ir.Conv1x1GroupAttrs, rank="map")
SLICE = Operation("slice", ir.SliceAttrs)
