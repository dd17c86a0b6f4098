"""Fold batch norm into the conv before it, for inference.

In eval mode ``bn(conv(x))`` is ``conv'(x)`` with ``W' = W·s`` and
``b' = β + (b − μ)·s`` where ``s = γ / √(σ² + ε)``. The pass marks the conv
(``folded_bn_eps``); the backend computes ``W'`` and ``b'`` from the reference
module's parameters (:func:`incdsl.compiler.torch.weights.member_weights`), so
a model keeps training with its batch norm and loads reference weights as is.

Two batch norms fold: a conv's own (``conv … bn``) and a ``bn`` layer of its own
that reads a linear conv no other layer reads (Xception's ``pointwise → bn``):
that node goes, the conv records where its module is (``folded_bn``) and every
reader of the norm reads the conv.
"""

from __future__ import annotations

from incdsl import ir


def fold_batch_norm(net: ir.Network) -> ir.Network:
    """Every conv with a batch norm, its own or a ``bn`` layer right after it that only it
    feeds → a conv with the batch norm folded in."""
    nodes = {n.name: _fold(n) for n in net.nodes}
    renamed: dict[str, str] = {}
    for node in net.nodes:
        conv = _folds_into(net, node)
        if conv is not None:
            a = nodes[conv.name].attrs
            assert isinstance(node.attrs, ir.BatchNormAttrs)
            nodes[conv.name] = conv.model_copy(
                update={"attrs": a.model_copy(update={"folded_bn_eps": node.attrs.eps, "folded_bn": node.name})}
            )
            del nodes[node.name]
            renamed[node.name] = conv.name
    if not renamed:
        return net.with_nodes(list(nodes.values()))
    return _rename_values(net.with_nodes(list(nodes.values())), renamed)


def _fold(node: ir.Node) -> ir.Node:
    a = node.attrs
    if not isinstance(a, ir.ConvAttrs) or a.bn_eps is None:
        return node
    return node.model_copy(update={"attrs": a.model_copy(update={"bn_eps": None, "folded_bn_eps": a.bn_eps})})


def _folds_into(net: ir.Network, node: ir.Node) -> ir.Node | None:
    """The conv a standalone ``bn`` node folds into: a linear conv with no batch norm of its own
    whose output only this norm reads (nothing else may see the value before the norm)."""
    if not isinstance(node.attrs, ir.BatchNormAttrs):
        return None
    conv = net.node(node.inputs[0])
    a = conv.attrs
    if not isinstance(a, ir.ConvAttrs) or a.act is not None or a.bn_eps is not None:
        return None
    observed = {net.output, *(h.input for h in net.aux), *(f.node for f in net.features)}
    if net.consumers(conv.name) != [node.name] or conv.name in observed:
        return None
    return conv


def _rename_values(net: ir.Network, renamed: dict[str, str]) -> ir.Network:
    """``net`` with every read of a value in ``renamed`` reading its new name instead."""

    def new(name: str) -> str:
        return renamed.get(name, name)

    return net.model_copy(
        update={
            "nodes": tuple(n.model_copy(update={"inputs": tuple(map(new, n.inputs))}) for n in net.nodes),
            "output": new(net.output),
            "aux": tuple(h.model_copy(update={"input": new(h.input), "output": new(h.output)}) for h in net.aux),
            "features": tuple(f.model_copy(update={"node": new(f.node)}) for f in net.features),
            "scopes": tuple(s.model_copy(update={"input": new(s.input), "output": new(s.output)}) for s in net.scopes),
        }
    )
