"""Fold batch norm into the conv before it, for inference.

In eval mode ``bn(conv(x))`` is ``conv'(x)`` with ``W' = W·s`` and
``b' = β + (b − μ)·s`` where ``s = γ / √(σ² + ε)``. The pass marks the conv
(``folded_bn_eps``); the backend computes ``W'`` and ``b'`` from the reference
module's parameters (:func:`incdsl.compiler.torch.weights.member_weights`), so
a model keeps training with its batch norm and loads reference weights as is.
"""

from __future__ import annotations

from incdsl import ir


def fold_batch_norm(net: ir.Network) -> ir.Network:
    """Every conv with a batch norm → a conv with the batch norm folded in."""
    return net.with_nodes([_fold(node) for node in net.nodes])


def _fold(node: ir.Node) -> ir.Node:
    a = node.attrs
    if not isinstance(a, ir.ConvAttrs) or a.bn_eps is None:
        return node
    return node.model_copy(update={"attrs": a.model_copy(update={"bn_eps": None, "folded_bn_eps": a.bn_eps})})
