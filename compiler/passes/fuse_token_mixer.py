"""Fuse InceptionNeXt's token mixer into one node: a ``split:`` of ``x`` into an identity part
and three equal parts, a square, a 1×band and a band×1 depthwise conv over those, and the
concat of the four, in that order, become a ``token_mixer`` node under the concat's name — one
kernel that reads ``x`` once and writes the concatenated output once (timm runs a split, three
convs and a cat). Runs after batch norm folding (a mixer conv with a live BN is left alone).
"""

from __future__ import annotations

from incdsl import ir

from .fuse_1x1 import observed


def _mixer(first: ir.Node, net: ir.Network, kept: set[str]) -> tuple[ir.Node, set[str]] | None:
    """The ``token_mixer`` node whose split starts at ``first`` (a split's first part) and the
    nodes it replaces besides the concat, or None
    where the split is anything else: other widths or kernels, a stride, an activation, a batch
    norm left unfolded, a value read from outside, or an output placed inside another concat."""
    a = first.attrs
    if not isinstance(a, ir.SliceAttrs) or a.of is None or a.start != 0:
        return None
    x = first.inputs[0]
    parts = sorted((p for p in map(net.node, net.consumers(x)) if p.op == "slice" and p.attrs.of == a.of),  # type: ignore[union-attr]
                   key=lambda p: p.attrs.start)  # type: ignore[union-attr]  # fmt: skip
    if len(parts) != 4 or [p.attrs.start for p in parts] != [0, *(p.attrs.stop for p in parts[:3])]:  # type: ignore[union-attr]
        return None
    gc = parts[1].attrs.stop - parts[1].attrs.start  # type: ignore[union-attr]
    if gc < 1 or any(p.attrs.stop - p.attrs.start != gc for p in parts[1:]):  # type: ignore[union-attr]
        return None
    readers = [net.consumers(p.name) for p in parts]
    if any(len(r) != 1 for r in readers):
        return None
    convs = [net.node(r[0]) for r in readers[1:]]
    concat = net.node(readers[0][0])
    if concat.op != "concat" or concat.storage is not None or concat.inputs != (parts[0].name, *(c.name for c in convs)):
        return None
    for conv in convs:
        c = conv.attrs
        if not (isinstance(c, ir.ConvAttrs) and c.groups == gc == c.out_channels and c.stride == (1, 1)
                and c.act is None and c.bn_eps is None and c.padding == (c.kernel[0] // 2, c.kernel[1] // 2)
                and net.consumers(conv.name) == [concat.name]):
            return None  # fmt: skip
    square, band = convs[0].attrs.kernel[0], convs[1].attrs.kernel[1]  # type: ignore[union-attr]
    if [c.attrs.kernel for c in convs] != [(square, square), (1, band), (band, 1)] or square % 2 == 0 or band % 2 == 0:  # type: ignore[union-attr]
        return None
    inside = {p.name for p in parts} | {c.name for c in convs}
    if kept & inside:
        return None
    members = tuple(ir.FusedMember(name=c.name, conv=c.attrs) for c in convs)  # type: ignore[arg-type]
    attrs = ir.TokenMixerAttrs(members=members, square=square, band=band)  # type: ignore[arg-type]
    return concat.model_copy(update={"attrs": attrs, "inputs": (x,)}), inside


def fuse_token_mixers(net: ir.Network) -> ir.Network:
    """Each token mixer → one ``token_mixer`` node (its parts and convs dropped)."""
    kept = observed(net)
    mixers: dict[str, ir.Node] = {}
    fused: set[str] = set()
    for node in net.nodes:
        found = _mixer(node, net, kept)
        if found is not None:
            mixers[found[0].name] = found[0]
            fused |= found[1]
    if not mixers:
        return net
    return net.with_nodes([mixers.get(n.name, n) for n in net.nodes if n.name not in fused])
