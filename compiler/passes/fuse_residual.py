"""Fuse the Inception-ResNet residual add into the linear 1×1 "filter expansion"
conv before it: ``act(x + s · conv1x1(body))`` becomes one GEMM whose epilogue
reads the shortcut ``x``, scales, adds and activates, so the expansion's output
is never written on its own.
"""

from __future__ import annotations

from incdsl import ir

from .fuse_1x1 import fusable_1x1, observed


def fuse_residual_into_1x1(net: ir.Network) -> ir.Network:
    """Each residual add whose branch is a linear 1×1 conv read by nothing else →
    a ``conv1x1_group`` with ``residual`` set, under the add's name."""
    kept = observed(net)
    groups: dict[str, ir.Node] = {}
    for node in net.nodes:
        if not isinstance(node.attrs, ir.AddAttrs):
            continue
        shortcut, branch = node.inputs
        conv = net.node(branch)
        if (
            not fusable_1x1(conv)
            or conv.attrs.act is not None  # type: ignore[union-attr]
            or net.consumers(branch) != [node.name]
            or branch in kept
            or shortcut == branch
        ):
            continue
        attrs = ir.Conv1x1GroupAttrs(
            members=(ir.FusedMember(name=conv.name, conv=conv.attrs),),  # type: ignore[arg-type]
            residual=node.attrs,
        )
        groups[node.name] = node.model_copy(update={"attrs": attrs, "inputs": (conv.inputs[0], shortcut)})
    fused_convs = {g.attrs.members[0].name for g in groups.values()}  # type: ignore[union-attr]
    return net.with_nodes([groups.get(n.name, n) for n in net.nodes if n.name not in fused_convs])
