"""Fuse parallel 1×1 convs: the 1×1 convs that read the same tensor become one
GEMM, ``[N·H·W, Cin] × [Cin, ΣCout]``.

The group node's output holds the members' outputs side by side, in spec
order; each former conv becomes a ``slice`` node with the conv's name, so its
consumers are unchanged. Convs with a batch norm still live (run
:func:`~.fold_bn.fold_batch_norm` first) and auxiliary heads' convs stay out.
"""

from __future__ import annotations

from collections import defaultdict

from incdsl import activations, ir


def fusable_1x1(node: ir.Node) -> bool:
    """A 1×1, stride-1, unpadded, ungrouped conv with no live batch norm (a grouped conv's
    weights are not a GEMM over all the input's channels, so it joins no group)."""
    a = node.attrs
    return (
        isinstance(a, ir.ConvAttrs)
        and a.kernel == (1, 1)
        and a.stride == (1, 1)
        and a.padding == (0, 0)
        and a.groups == 1
        and a.bn_eps is None
    )


def fuse_parallel_1x1(net: ir.Network) -> ir.Network:
    """Each set of ≥ 2 fusable 1×1 convs reading one tensor, whose activations one epilogue
    applies, → a ``conv1x1_group`` and slices."""
    readers: dict[tuple[str, bool, object], list[ir.Node]] = defaultdict(list)
    for node in net.nodes:
        if fusable_1x1(node):
            readers[(node.inputs[0], net.in_aux(node), epilogue_class(node.attrs.act))].append(node)  # type: ignore[union-attr]
    groups = [members for members in readers.values() if len(members) >= 2]
    return replace_with_groups(net, groups, suffix="conv1x1_group")


def epilogue_class(act: activations.Activation | None) -> object:
    """Members of one group share this: ReLU and linear columns mix (a per-column floor applies
    each), any other activation applies to the whole GEMM."""
    return "floor" if activations.floor(act) is not None else act


def observed(net: ir.Network) -> set[str]:
    """Values read from outside the graph (the output, the aux heads' inputs, the features asked
    for): a fusion keeps them."""
    return {net.output, *(h.input for h in net.aux), *(f.node for f in net.features)}


def replace_with_groups(
    net: ir.Network, groups: list[list[ir.Node]], suffix: str, pools: dict[str, ir.Node] | None = None
) -> ir.Network:
    """Replace each group of 1×1 convs with one group node plus a slice per member.

    ``pools`` maps a group's first member to the pool node folded into the
    group's operand load (that pool node is dropped; the group reads its input).
    """
    pools = pools or {}
    first = {members[0].name: members for members in groups}
    slices: dict[str, ir.Node] = {}
    taken = {n.name for n in net.nodes}
    dropped = {pool.name for pool in pools.values()}
    out: list[ir.Node] = []
    for node in net.nodes:
        if node.name in dropped:
            continue
        if node.name in first:
            members = first[node.name]
            pool = pools.get(node.name)
            group = _group_node(members, _unique(f"{ir.common_scope(m.name for m in members)}:{suffix}", taken), pool)
            out.append(group)
            start = 0
            for m in members:
                stop = start + m.attrs.out_channels  # type: ignore[union-attr]
                slices[m.name] = m.model_copy(
                    update={"attrs": ir.SliceAttrs(start=start, stop=stop), "inputs": (group.name,)}
                )
                start = stop
        out.append(slices.get(node.name, node))
    return net.with_nodes(out)


def _group_node(members: list[ir.Node], name: str, pool: ir.Node | None) -> ir.Node:
    attrs = ir.Conv1x1GroupAttrs(
        members=tuple(ir.FusedMember(name=m.name, conv=m.attrs) for m in members),  # type: ignore[arg-type]
        pool=pool.attrs if pool is not None else None,  # type: ignore[arg-type]
    )
    lead = members[0]
    source = pool if pool is not None else lead
    c_h_w = lead.shape
    assert c_h_w is not None, "fusion needs a shape-checked network"
    return lead.model_copy(
        update={
            "name": name,
            "attrs": attrs,
            "inputs": source.inputs,
            "shape": (attrs.out_channels, c_h_w[1], c_h_w[2]),
            "span": (pool or lead).span,
        }
    )


def _unique(name: str, taken: set[str]) -> str:
    name = name.lstrip(":") or name
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}{n}"
    taken.add(candidate)
    return candidate
