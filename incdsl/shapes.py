"""Shape inference and validation: IR without shapes → IR with (C, H, W) on every node.

Output sizes follow PyTorch's rules exactly (including its ``ceil_mode`` rule
that a last window starting in the padding is dropped), since the torch
backend must produce the shapes the IR promises. Each op's own rule is its
entry's ``infer`` in the table of operations; this stage runs them in order and
checks what holds for every op (ranks, sizes, the network's params).
"""

from __future__ import annotations

from . import ir, limits
from .cost import node_cost
from .errors import SpecError
from .operations import operation
from .operations.base import check_size, where, with_origin


def infer_shapes(net: ir.Network) -> ir.Network:
    """Every node's output shape, or a :class:`SpecError` at the layer that cannot work."""
    shapes: dict[str, ir.Shape] = {}
    flat: dict[str, bool] = {}
    nodes: list[ir.Node] = []
    params = 0
    for node in net.nodes:
        inputs = [shapes[i] for i in node.inputs]
        flat[node.name] = _rank(node, [flat[i] for i in node.inputs])
        entry = operation(node.op)
        if entry.settle is not None:
            node = node.model_copy(update={"attrs": entry.settle(node, inputs[0])})
        shape = entry.infer(node, inputs, net)
        check_size(node, shape, "output")
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
    entry = operation(node.op)
    if entry.rank == "flat":
        return True
    if not inputs:
        return False
    if entry.spatial and inputs[0]:
        raise SpecError(
            f"{node.op}{where(node)} reads the output of a `linear` or `flatten`, which is a vector of "
            "features per image, not a map with a height and width",
            node.span,
            hint=with_origin("spatial layers (conv, pooling, lrn) go before the `linear` layers", node),
        )
    if len(set(inputs)) > 1:
        what = "concat" if node.op == "concat" else "residual add"
        raise SpecError(
            f"{what}{where(node)} joins feature vectors (after a `linear` or `flatten`) with maps",
            node.span,
            hint=with_origin("both sides must be maps, or both vectors: add `flatten` (or `global_avgpool`) on the map side", node),
        )
    return inputs[0]
