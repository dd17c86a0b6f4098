"""IR invariants, checked between passes in the tests (``run_passes(..., verify=True)``).

A pass that breaks one is a bug in incdsl, not a mistake in a spec, so the
error is an ``AssertionError`` that names the pass and the node.
"""

from __future__ import annotations

import networkx as nx

from incdsl import ir


def verify(net: ir.Network, after: str = "elaboration") -> None:
    """Raise ``AssertionError`` unless ``net`` is well formed (see the checks below)."""

    def check(ok: bool, node: ir.Node | None, what: str) -> None:
        if not ok:
            where = f" at `{node.name}`" if node is not None else ""
            raise AssertionError(f"IR invariant broken after {after}{where}: {what}")

    check(nx.is_directed_acyclic_graph(net.graph), None, "the graph has a cycle")
    check(net.output in net, None, f"the output `{net.output}` is not a node")
    for node in net.nodes:
        check(node.shape is not None, node, "no inferred shape")
        for src in node.inputs:
            check(src in net, node, f"reads `{src}`, which is not a node")
        check(set(node.inputs) == set(net.graph.predecessors(node.name)), node, "inputs and graph edges disagree")
        inputs = [net.node(src).shape for src in node.inputs]
        a = node.attrs
        if isinstance(a, ir.SliceAttrs):
            check(0 <= a.start < a.stop <= inputs[0][0], node, f"slice [{a.start}:{a.stop}) outside {inputs[0][0]} channels")
            check(node.shape == (a.stop - a.start, *inputs[0][1:]), node, "slice shape")
        if isinstance(a, ir.ConvAttrs):
            groups, cout = a.groups, a.out_channels
            check(groups is not None and cout == node.shape[0], node, "groups or width left unresolved by shape inference")
            check(not inputs[0][0] % groups and not cout % groups, node, f"{groups} groups do not divide {inputs[0][0]} → {cout}")  # type: ignore[operator]
            check(a.folded_bn is None or (a.folded_bn_eps is not None and a.bn_eps is None), node, "a folded bn layer without its eps")
            check(a.folded_bn not in net, node, f"the bn `{a.folded_bn}` is folded in and still a node")
        if isinstance(a, ir.Conv1x1GroupAttrs):
            check(all(m.conv.groups == 1 for m in a.members), node, "a grouped conv in a 1×1 group")
            check(node.shape == (a.out_channels, *inputs[0][1:]), node, "group shape is not ΣCout × H × W of its input")
            if a.residual is None:
                slices = [net.node(c) for c in net.consumers(node.name)]
                check(all(s.op == "slice" for s in slices), node, "a group is read only through slices")
            else:
                check(len(a.members) == 1 and a.members[0].conv.act is None, node, "a residual group is one linear conv")
                check(inputs[1] == node.shape, node, "the shortcut's shape is not the output's")
        if isinstance(a, ir.TokenMixerAttrs):
            gc = a.members[0].conv.out_channels
            kernels = [m.conv.kernel for m in a.members]
            check(kernels == [(a.square, a.square), (1, a.band), (a.band, 1)], node, f"mixer kernels {kernels}")
            check(all(m.conv.groups == gc == m.conv.out_channels and m.conv.act is None and m.conv.stride == (1, 1)
                      and m.conv.bn_eps is None for m in a.members), node, "a mixer conv is not linear, depthwise and unstrided")  # fmt: skip
            check(node.shape == inputs[0] and inputs[0][0] > 3 * gc, node, "a mixer's shape is not its input's")
        if isinstance(a, ir.ConcatAttrs):
            check(node.shape[0] == sum(s[0] for s in inputs), node, "concat width is not the sum of its inputs'")
            check(all(s[1:] == node.shape[1:] for s in inputs), node, "concat inputs differ in size")
        if node.storage is not None:
            concat, offset = node.storage
            check(concat in net and net.node(concat).op == "concat", node, f"stored in `{concat}`, not a concat")
            parent = net.node(concat)
            offsets = [0]
            for src in parent.inputs:
                offsets.append(offsets[-1] + net.node(src).shape[0])
            placed = [off for src, off in zip(parent.inputs, offsets, strict=False) if src == node.name]
            check(placed == [offset], node, f"stored at channel {offset} of `{concat}`, which reads it at {placed}")
