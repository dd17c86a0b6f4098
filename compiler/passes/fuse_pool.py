"""Fuse a stride-1, size-keeping pool into the 1×1 conv that is its only
reader: the GoogLeNet/Inception "pool proj" branch becomes one GEMM whose
operand load takes the 3×3 max (or average) on the fly, so the pooled tensor
is never written. Run it before :func:`~.fuse_1x1.fuse_parallel_1x1`.
"""

from __future__ import annotations

from incdsl import ir

from .fuse_1x1 import fusable_1x1, observed, replace_with_groups


def fuse_pool_into_1x1(net: ir.Network) -> ir.Network:
    """``pool kxk/1 same → conv 1x1`` → one ``conv1x1_group`` with ``pool`` set."""
    kept = observed(net)
    pools: dict[str, ir.Node] = {}
    for node in net.nodes:
        readers = net.consumers(node.name)
        if node.name in kept or len(readers) != 1 or not _size_keeping_pool(net, node):
            continue
        reader = net.node(readers[0])
        if fusable_1x1(reader):
            pools[reader.name] = node
    groups = [[net.node(conv)] for conv in pools]
    return replace_with_groups(net, groups, suffix="pool_conv1x1", pools=pools)


def _size_keeping_pool(net: ir.Network, node: ir.Node) -> bool:
    a = node.attrs
    if not isinstance(a, ir.PoolAttrs) or a.stride != (1, 1) or a.kernel[0] != a.kernel[1] or a.kernel[0] % 2 != 1:
        return False
    return a.padding == (a.kernel[0] // 2,) * 2 and node.shape == net.node(node.inputs[0]).shape
