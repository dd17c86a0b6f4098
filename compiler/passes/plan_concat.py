"""Plan concat buffers: each concat's output is allocated once and each input
that can is computed straight into its channel slice, so no concat copies.

The pass sets ``Node.storage = (concat, offset)``; a backend writes there
directly where its kernel can take a destination (the Triton kernels take a
row stride), and otherwise copies into the slice. An input that is the graph's
input, or that already lives in another concat, or that appears twice in one,
keeps its own storage and the concat copies it.
"""

from __future__ import annotations

from incdsl import ir


def plan_concat_buffers(net: ir.Network) -> ir.Network:
    """Give every concat input that can be placed its ``(concat, offset)`` storage."""
    storage: dict[str, tuple[str, int]] = {}
    for node in net.nodes:
        if node.op != "concat":
            continue
        offset = 0
        for src in node.inputs:
            source = net.node(src)
            if source.op != "input" and src not in storage and node.inputs.count(src) == 1:
                storage[src] = (node.name, offset)
            offset += source.shape[0]  # type: ignore[index]
    return net.with_nodes([n.model_copy(update={"storage": storage.get(n.name)}) for n in net.nodes])
