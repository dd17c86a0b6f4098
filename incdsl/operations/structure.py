"""The operations that are no layer: the network's ``input``, the ``concat`` and residual
``add`` that elaboration makes of compound statements, and what the fusion passes make
(``conv1x1_group``, read through ``slice`` s, and ``token_mixer``; a ``split:``'s parts are
slices too). None has a module of its own."""

from __future__ import annotations

from .. import ir
from ..errors import SpecError
from .base import Operation, act_note, where, with_origin


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
    if shortcut == branch:
        return shortcut
    last = net.node(node.inputs[1])
    what = "channels" if shortcut[1:] == branch[1:] else "C×H×W"
    fmt = (lambda s: str(s[0])) if what == "channels" else (lambda s: "×".join(map(str, s)))
    # an identity shortcut is the input the branch reads; a projection's output feeds no branch layer
    projection = node.inputs[0] not in net.ancestors(node.inputs[1])
    if projection:
        skip = net.node(node.inputs[0])
        side = f"the shortcut ends with {fmt(shortcut)} {what} (`{skip.name}`, line {_line(skip)})"
        hint = (
            f"the projection shortcut must give what the branch gives, {_chw(branch)}: "
            f"its 1×1 conv's width and stride make it"
        )
    else:
        side = f"the shortcut has {fmt(shortcut)} {what}"
        hint = _identity_hint(shortcut, branch)
    raise SpecError(
        f"residual add{where(node)}: {side} but the residual branch ends with {fmt(branch)} (`{last.name}`, line {_line(last)})",
        last.span,
        hint=with_origin(hint, last),
    )


def _line(node: ir.Node) -> str:
    return str(node.span.line) if node.span else "?"


def _chw(shape: ir.Shape) -> str:
    return f"{shape[0]} channels at {shape[1]}×{shape[2]}"


def _identity_hint(shortcut: ir.Shape, branch: ir.Shape) -> str:
    """What to change when the input itself is added: the branch's last layer restores the input's
    channels (Inception-ResNet's 1×1 filter expansion), or, when the branch changes the width on
    purpose or the size by a stride (Xception's entry flow), the input takes a projection."""
    c, h, w = branch
    if shortcut[1:] == branch[1:]:
        return (
            f"the branch's last layer gives {c} channels, the input has {shortcut[0]}: end the branch with the input's "
            f"{shortcut[0]} (Inception-ResNet's linear 1×1 filter expansion), or project the input to {c} with a first "
            f"line `shortcut: conv 1x1 {c} linear bn` in the residual's body"
        )
    stride = max(1, round(shortcut[1] / h)) if h else 1
    window = f"1x1/{stride}" if stride > 1 else "1x1"
    return (
        f"the branch changes the size from {shortcut[1]}×{shortcut[2]} to {h}×{w} (a stride or valid padding), so the input "
        f"cannot be added as it is: project it with a first line `shortcut: conv {window} {c} linear bn` in the residual's "
        "body (Xception's and ResNet's projection shortcut)"
    )


def _slice(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    """A part of a split (or of a fused group): the parts' widths must add up to the input's
    channels, checked at the first part, whose node carries the ``split:`` line."""
    a: ir.SliceAttrs = node.attrs  # type: ignore[assignment]
    c, h, w = inputs[0]
    if a.of is not None and a.start == 0 and a.of != c:
        raise SpecError(
            f"split{where(node)}: its parts take {a.of} channels in all, but its input has {c}",
            node.span,
            hint=with_origin(f"the widths after `take` must add up to the input's {c} channels", node),
        )
    return (a.stop - a.start, h, w)


INPUT = Operation("input", ir.InputAttrs, infer=lambda node, inputs, net: net.input_shape, rank="map")
CONCAT = Operation("concat", ir.ConcatAttrs, infer=_concat, label=lambda a: "concat", fill="#d9ead3")
ADD = Operation(
    "add",
    ir.AddAttrs,
    infer=_add,
    label=lambda a: "residual add",
    describe=lambda a: "add" if a.scale == 1 else f"add (×{a.scale:g})",
    fill="#d9ead3",
    notes=lambda a: (*act_note(a.act), *((f"drop path {a.drop_path:.3g}",) if a.drop_path else ())),
)
CONV1X1_GROUP = Operation("conv1x1_group", ir.Conv1x1GroupAttrs, rank="map")
TOKEN_MIXER = Operation("token_mixer", ir.TokenMixerAttrs, rank="map")
SLICE = Operation(
    "slice", ir.SliceAttrs, infer=_slice, label=lambda a: "split part", describe=lambda a: f"take {a.stop - a.start}"
)
