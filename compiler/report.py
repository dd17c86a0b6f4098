"""The compile report: what the inference passes did to a network and what
each backend runs, read off the passed IR (``incdsl compile --backend triton``).
"""

from __future__ import annotations

from collections import Counter

from incdsl import ir

from .program import eval_program, kernel_conv


def _place(node: ir.Node) -> str:
    if node.storage is None:
        return "scratch"
    concat, offset = node.storage
    assert node.shape is not None
    return f"{concat}[{offset}:{offset + node.shape[0]}]"


def _gemm(net: ir.Network, group: ir.Node) -> str:
    assert group.shape is not None
    _, h, w = group.shape
    cin = net.node(group.inputs[0]).shape[0]  # type: ignore[index]
    return f"[N·{h}·{w}, {cin}] × [{cin}, {group.shape[0]}]"


def _fused_line(net: ir.Network, g: ir.Node) -> str:
    a = g.attrs
    assert isinstance(a, ir.Conv1x1GroupAttrs)
    routes = ", ".join(f"{m.name} {m.conv.out_channels} → {_place(net.node(m.name))}" for m in a.members)
    return f"{g.name}  {_gemm(net, g)}  {routes}"


def _pooled_line(net: ir.Network, g: ir.Node) -> str:
    a = g.attrs
    assert isinstance(a, ir.Conv1x1GroupAttrs) and a.pool is not None
    member = a.members[0].name
    return f"{member}  {a.pool.op} {a.pool.kernel[0]}x{a.pool.kernel[1]} → {_gemm(net, g)} → {_place(net.node(member))}"


def _residual_line(net: ir.Network, g: ir.Node) -> str:
    a = g.attrs
    assert isinstance(a, ir.Conv1x1GroupAttrs) and a.residual is not None
    act = a.residual.act or ""
    return f"{g.name}  {act}({g.inputs[1]} + {a.residual.scale:g} · {_gemm(net, g)} {a.members[0].name})"


def compile_report(net: ir.Network, passed: ir.Network, backend: str, kernels: tuple[str, ...] = ()) -> str:
    """A few screens of text: passes, fusion groups with their GEMM shapes and
    destinations, and what runs as Triton kernels and what stays in torch."""
    program = eval_program(passed)
    groups = [n for n in program if isinstance(n.attrs, ir.Conv1x1GroupAttrs)]
    residual = [g for g in groups if g.attrs.residual is not None]  # type: ignore[union-attr]
    pooled = [g for g in groups if g.attrs.pool is not None]  # type: ignore[union-attr]
    fused = [g for g in groups if g not in residual and g not in pooled]
    # a conv's own batch norm, and a `bn` layer folded into the conv before it (gone from the passed network)
    folded = sum(1 for n in net.nodes if isinstance(n.attrs, ir.ConvAttrs) and n.attrs.bn_eps is not None)
    folded += sum(1 for n in net.nodes if n.op == "bn" and n.name not in passed)
    concats = [n for n in program if n.op == "concat"]
    inputs = sum(len(c.inputs) for c in concats)
    in_place = sum(1 for n in passed.nodes if n.storage is not None)
    c, h, w = net.input_shape
    lines = [
        f"{net.name} → {backend} backend, input N×{c}×{h}×{w}, eval mode"
        + (f"; kernels: {', '.join(kernels)}" if kernels else ""),
        "passes:",
        f"  fold_batch_norm         {folded} conv+BN pairs folded",
    ]
    mixers = sum(1 for n in program if isinstance(n.attrs, ir.TokenMixerAttrs))
    if mixers:
        lines.append(f"  fuse_token_mixers       {mixers} token mixers (split, 3 depthwise convs, concat)")
    if backend == "triton":
        lines.append(f"  fuse_pool_into_1x1      {len(pooled)} pool projections")
        lines.append(f"  fuse_residual_into_1x1  {len(residual)} residual adds")
    members = sum(len(g.attrs.members) for g in fused)  # type: ignore[union-attr]
    lines.append(f"  fuse_parallel_1x1       {len(fused)} groups of {members} convs")
    if backend == "triton":
        lines.append(f"  plan_concat_buffers     {in_place} of {inputs} concat inputs written in place")
    sections = [
        ("fused 1×1 groups, one GEMM each ([N·H·W, Cin] × [Cin, ΣCout]):", fused, _fused_line),
        ("pool projections, the pool taken while loading the GEMM operand:", pooled, _pooled_line),
        ("residual filter expansions, the scaled add (and ReLU) in the GEMM's epilogue:", residual, _residual_line),
    ]
    for title, members, describe in sections:
        if members:
            lines.append(title)
            lines.extend(f"  {describe(passed, g)}" for g in members)
    lines.extend(_launches(program, backend, kernels))
    return "\n".join(lines) + "\n"


def _launches(program: list[ir.Node], backend: str, kernels: tuple[str, ...]) -> list[str]:
    triton_ops: Counter[str] = Counter()
    torch_ops: Counter[str] = Counter()
    for node in program:
        a = node.attrs
        if isinstance(a, ir.TokenMixerAttrs):
            triton_ops["token mixer"] += 1
        elif isinstance(a, ir.Conv1x1GroupAttrs) and backend == "triton":
            kind = "pool conv1x1" if a.pool else "residual conv1x1" if a.residual else "fused conv1x1 group"
            triton_ops[kind] += 1
        elif backend == "triton" and kernel_conv(node, "conv" in kernels):
            triton_ops["conv"] += 1
        elif isinstance(a, ir.ConvAttrs):
            torch_ops[f"conv {a.kernel[0]}x{a.kernel[1]}{' grouped' if a.groups != 1 else ''}"] += 1
        elif isinstance(a, ir.Conv1x1GroupAttrs):
            torch_ops["conv 1x1 (fused group)"] += 1
        elif node.op not in ("input", "slice", "concat", "flatten", "dropout"):
            torch_ops[node.op] += 1
    lines = []
    if triton_ops:
        lines.append(
            f"Triton launches per forward: {sum(triton_ops.values())} ("
            + ", ".join(f"{n} {op}" for op, n in triton_ops.most_common())
            + ")"
        )
    lines.append(
        f"torch ops per forward: {sum(torch_ops.values())} ("
        + ", ".join(f"{n} {op}" for op, n in torch_ops.most_common())
        + ")"
    )
    return lines
