"""Shape inference and validation: IR without shapes → IR with (C, H, W) on every node.

Output sizes follow PyTorch's rules exactly (including its ``ceil_mode`` rule
that a last window starting in the padding is dropped), since the torch
backend must produce the shapes the IR promises.
"""

from __future__ import annotations

from . import ir, limits
from .cost import node_cost
from .errors import SpecError

#: Ops that read maps (N, C, H, W) and cannot take feature vectors (N, C).
SPATIAL_OPS = frozenset({"conv", "maxpool", "avgpool", "adaptive_avgpool", "lrn"})


def infer_shapes(net: ir.Network) -> ir.Network:
    """Every node's output shape, or a :class:`SpecError` at the layer that cannot work."""
    shapes: dict[str, ir.Shape] = {}
    flat: dict[str, bool] = {}
    nodes: list[ir.Node] = []
    params = 0
    for node in net.nodes:
        inputs = [shapes[i] for i in node.inputs]
        flat[node.name] = _rank(node, [flat[i] for i in node.inputs])
        if isinstance(node.attrs, ir.ConvAttrs):
            node = node.model_copy(update={"attrs": _conv_groups(node, node.attrs, inputs[0][0])})
        shape = _infer(node, inputs, net)
        _check_size(node, shape, "output")
        shaped = node.model_copy(update={"shape": shape})
        params += node_cost(shaped, inputs).params
        if params > limits.MAX_PARAMS:
            raise SpecError(
                f"the network passes {limits.MAX_PARAMS:,} parameters at `{node.name}`",
                node.span,
                hint="the largest Inception network has 56M; is a layer far wider than meant?",
            )
        shapes[node.name] = shaped.shape  # type: ignore[assignment]
        nodes.append(shaped)
    return net.with_nodes(nodes)


def _rank(node: ir.Node, inputs: list[bool]) -> bool:
    """Whether a node's value is feature vectors (N, C) at run time — after ``linear`` or
    ``flatten`` — rather than maps; a spatial layer on vectors, or a concat or add of one
    with the other (which PyTorch would broadcast into a wrong shape), is an error here."""
    if node.op in ir.FLAT_OPS:
        return True
    if not inputs:
        return False
    if node.op in SPATIAL_OPS and inputs[0]:
        raise SpecError(
            f"{node.op}{_where(node)} reads the output of a `linear` or `flatten`, which is a vector of "
            "features per image, not a map with a height and width",
            node.span,
            hint=_with_origin("spatial layers (conv, pooling, lrn) go before the `linear` layers", node),
        )
    if len(set(inputs)) > 1:
        what = "concat" if node.op == "concat" else "residual add"
        raise SpecError(
            f"{what}{_where(node)} joins feature vectors (after a `linear` or `flatten`) with maps",
            node.span,
            hint=_with_origin("both sides must be maps, or both vectors: add `flatten` (or `global_avgpool`) on the map side", node),
        )
    return inputs[0]


def _conv_groups(node: ir.Node, a: ir.ConvAttrs, cin: int) -> ir.ConvAttrs:
    """A conv's groups and width made whole numbers (a depthwise conv's are its input's
    channels), checked to divide the input's and the output's channels as PyTorch requires."""
    groups = cin if a.groups is None else a.groups
    cout = cin if a.out_channels is None else a.out_channels
    if cin % groups or cout % groups:
        what = f"dwconv `{node.name}`" if a.groups is None else f"conv `{node.name}` with groups={groups}"
        raise SpecError(
            f"{what} reads {cin} channels and writes {cout}: "
            f"{groups} groups must divide both, and {_not_divided(groups, cin, cout)}",
            node.span,
            hint=_with_origin(
                "a depthwise conv's width is a multiple of its input's channels"
                if a.groups is None
                else "each group reads in/groups channels and writes out/groups: pick groups that divide both",
                node,
            ),
        )
    return a.model_copy(update={"groups": groups, "out_channels": cout})


def _not_divided(groups: int, cin: int, cout: int) -> str:
    bad = [f"{n} ({what})" for n, what in ((cin, "in"), (cout, "out")) if n % groups]
    return f"{' and '.join(bad)} {'is not a multiple' if len(bad) == 1 else 'are not multiples'} of {groups}"


def _check_size(node: ir.Node, shape: ir.Shape, what: str) -> None:
    """A value (or a padded input) within the limits on its height, width, channels and elements."""
    c, h, w = shape
    if max(h, w) <= limits.MAX_SPATIAL and c * h * w <= limits.MAX_ELEMENTS:
        return
    raise SpecError(
        f"{node.op}{_where(node)}: its {what} would be {c:,}×{h:,}×{w:,} (C×H×W) per image, over the limits of "
        f"{limits.MAX_SPATIAL:,} a side and {limits.MAX_ELEMENTS:,} elements",
        node.span,
        hint=_with_origin("is a padding, stride or input size far larger than meant?", node),
    )


def _where(node: ir.Node) -> str:
    scope = ir.scope_of(node.name)
    return f" in `{scope}`" if scope else ""


def _with_origin(hint: str, node: ir.Node) -> str:
    """``hint``, and where the node's block was instantiated when that is another line."""
    origin, span = node.origin, node.span
    if origin is not None and span is not None and (origin.file, origin.line) != (span.file, span.line):
        return f"{hint}; instantiated at {origin}"
    return hint


def _hw(shape: ir.Shape) -> str:
    return f"{shape[1]}x{shape[2]}"


def _window_out(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int | None:
    """PyTorch's output size (``pooling_output_shape``); None when it would be empty."""
    out = (size + 2 * pad - kernel + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out if out >= 1 else None


def _windowed(node: ir.Node, shape: ir.Shape, kernel: ir.Pair, stride: ir.Pair, pad: ir.Pair, ceil: bool) -> ir.Pair:
    _check_size(node, (shape[0], shape[1] + 2 * pad[0], shape[2] + 2 * pad[1]), "padded input")
    out_h = _window_out(shape[1], kernel[0], stride[0], pad[0], ceil)
    out_w = _window_out(shape[2], kernel[1], stride[1], pad[1], ceil)
    if out_h is None or out_w is None:
        padding = f" with padding {pad[0]}x{pad[1]}" if any(pad) else " (no padding)"
        hint = "each stride or valid layer before it shrinks the map: check the input size (`input`, --input)"
        if node.op == "avgpool":
            hint += ", or use `global_avgpool` to pool whatever is left"
        raise SpecError(
            f"{node.op} {kernel[0]}x{kernel[1]}/{stride[0]} on a {_hw(shape)} input{_where(node)}: "
            f"the window is larger than its input{padding}, so the output would be empty",
            node.span,
            hint=_with_origin(hint, node),
        )
    return out_h, out_w


def _infer(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    a = node.attrs
    if isinstance(a, ir.InputAttrs):
        return net.input_shape
    x = inputs[0] if inputs else None
    if isinstance(a, ir.ConvAttrs):
        assert x is not None
        h, w = _windowed(node, x, a.kernel, a.stride, a.padding, ceil=False)
        return (a.out_channels, h, w)
    if isinstance(a, ir.PoolAttrs):
        assert x is not None
        h, w = _windowed(node, x, a.kernel, a.stride, a.padding, ceil=a.ceil)
        return (x[0], h, w)
    if isinstance(a, ir.AdaptiveAvgPoolAttrs):
        assert x is not None
        return (x[0], *a.size)
    if isinstance(a, ir.LinearAttrs):
        return (a.out_features, 1, 1)
    if isinstance(a, ir.FlattenAttrs):
        assert x is not None
        return (x[0] * x[1] * x[2], 1, 1)
    if isinstance(a, ir.ConcatAttrs):
        return _concat(node, a, inputs)
    if isinstance(a, ir.AddAttrs):
        return _add(node, inputs, net)
    assert x is not None
    return x


def _concat(node: ir.Node, a: ir.ConcatAttrs, inputs: list[ir.Shape]) -> ir.Shape:
    first = inputs[0]
    for label, shape in zip(a.branches[1:], inputs[1:], strict=True):
        if shape[1:] != first[1:]:
            raise SpecError(
                f"concat{_where(node)}: {a.branches[0]} is {first[1]}×{first[2]} but {label} is "
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
            f"residual add{_where(node)}: the shortcut has {fmt(shortcut)} {what} but the residual branch "
            f"ends with {fmt(branch)} (`{last.name}`, line {last.span.line if last.span else '?'})",
            last.span,
            hint=_with_origin(hint, last),
        )
    return shortcut
