"""The eval program of a passed network, the one step list every inference backend runs:
the nodes its outputs depend on, in execution order, each as an :class:`EvalStep` of plain
values (slot numbers, strides, module paths; no IR objects, so ``torch.compile`` traces a
forward over them as one graph). The fused torch path computes each step with torch; the
Triton backend's traceable forward runs the same steps with incdsl's operators in place of
some; its launch plan builds its launches from them. Pure IR logic (no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from incdsl import ir
from incdsl.activations import Activation
from incdsl.operations import operation


class _Reads(Protocol):
    inputs: tuple[str, ...]


def eval_program(passed: ir.Network) -> list[ir.Node]:
    """The nodes the outputs (the logits, or the features asked for) depend on, in execution
    order (aux heads and a trailing softmax left out)."""
    outputs = passed.outputs()
    needed = set(outputs).union(*(passed.ancestors(o) for o in outputs))
    return [n for n in passed.nodes if n.name in needed]


def kernel_conv(node: ir.Node, convs: bool) -> bool:
    """Whether the Triton k×k conv kernel computes ``node`` (``convs``: that kernel is on). Its
    implicit GEMM reads every input channel for every output, so grouped and depthwise convs
    stay with torch (cuDNN)."""
    return convs and isinstance(node.attrs, ir.ConvAttrs) and node.attrs.groups == 1


def last_uses(steps: Sequence[_Reads]) -> dict[str, int]:
    """Where each value is read for the last time (so a runner can free it)."""
    last: dict[str, int] = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            last[name] = i
    return last


# --- where weights are -----------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """Where one conv's weights are: its conv module's path, its batch norm's (empty when there
    is none to fold) with that norm's ``eps``, and the activation of its output columns."""

    conv: str
    bn: str
    eps: float
    act: Activation | None


def _member(name: str, conv: ir.ConvAttrs, act: Activation | None) -> Member:
    # Where the parts are follows the spec's naming rule (`parts=`); a folded batch norm is still where the spec puts it.
    eps = conv.folded_bn_eps
    if conv.folded_bn is not None:  # a `bn` layer of its own, not a part of the conv
        return Member(ir.part_paths(ir.Node(name=name, attrs=conv))["main"], conv.folded_bn, eps or 0.0, act)
    bn_eps = conv.bn_eps if conv.bn_eps is not None else eps
    paths = ir.part_paths(ir.Node(name=name, attrs=conv.model_copy(update={"bn_eps": bn_eps})))
    return Member(paths["main"], paths["bn"] if eps is not None else "", eps or 0.0, act)


def members_of(node: ir.Node) -> tuple[Member, ...]:
    """The convs whose weights make a conv's, a fused group's (with a residual add, the add's
    activation applies to every column) or a token mixer's."""
    a = node.attrs
    if isinstance(a, ir.TokenMixerAttrs):
        return tuple(_member(m.name, m.conv, None) for m in a.members)
    if isinstance(a, ir.Conv1x1GroupAttrs):
        return tuple(_member(m.name, m.conv, a.residual.act if a.residual else m.conv.act) for m in a.members)
    assert isinstance(a, ir.ConvAttrs)
    return (_member(node.name, a, a.act),)


def layer_modules(node: ir.Node) -> tuple[tuple[str, ...], bool, Activation | None]:
    """How a layer runs: the module paths it calls in order, whether it flattens its input first,
    and the activation (a function, not a module) that follows them. A layer whose parts are
    children of its module is that one module."""
    paths = ir.part_paths(node)
    flatten = operation(node.op).flatten
    act = getattr(node.attrs, "act", None) if "act" not in paths else None
    if ir.wrapped(node):
        return (node.name,), flatten, None
    return tuple(paths.values()), flatten, act


# --- the steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalStep:
    """One value of the eval program in plain values: what ``kind`` of node computes it, from
    which slots (``inputs``) into which (``out``), the slots read for the last time here
    (``free``), and the node's settings."""

    kind: Literal["input", "conv", "group", "mixer", "slice", "concat", "add", "layer"]
    name: str  # the node's name, under which its weights are prepared
    inputs: tuple[int, ...]
    out: int
    free: tuple[int, ...] = ()
    #: conv: its kernel; mixer: its square and band kernels' sizes
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    #: conv, add and layer: the activation after it; group: its members' when they agree (with a
    #: residual: the add's), "mixed" when ReLU and linear members mix (per column: max(y, floor))
    act: Activation | Literal["mixed"] | None = None
    #: group: the pool applied to its operand first
    pool: ir.PoolAttrs | None = None
    #: add, and a group with a residual: act(inputs[1] + scale · y)
    scale: float = 1.0
    residual: bool = False
    start: int = 0
    stop: int = 0
    #: layer: the modules it runs, in order, with flatten before them
    modules: tuple[str, ...] = ()
    flatten: bool = False
    #: conv, group and mixer: where its (members') weights are
    members: tuple[Member, ...] = ()
    #: group: the values one kernel launch writes (its members', or with a residual its own)
    writes: tuple[str, ...] = ()


def _group_act(a: ir.Conv1x1GroupAttrs) -> Activation | Literal["mixed"] | None:
    """A group's activation: the residual add's, or its members' when they agree, else "mixed"
    (ReLU and linear: the fusion pass groups no others)."""
    if a.residual is not None:
        return a.residual.act
    acts = {m.conv.act for m in a.members}
    return "mixed" if len(acts) > 1 else acts.pop()


def _conv(node: ir.Node, a: ir.ConvAttrs, base: dict[str, Any]) -> EvalStep:
    return EvalStep("conv", kernel=a.kernel, stride=a.stride, padding=a.padding, groups=a.groups, act=a.act,
                    members=members_of(node), **base)  # fmt: skip


def _group(node: ir.Node, a: ir.Conv1x1GroupAttrs, base: dict[str, Any]) -> EvalStep:
    writes = (node.name,) if a.residual is not None else tuple(m.name for m in a.members)
    return EvalStep("group", act=_group_act(a), pool=a.pool, residual=a.residual is not None,
                    scale=a.residual.scale if a.residual else 1.0, members=members_of(node), writes=writes,
                    **base)  # fmt: skip


def _layer(node: ir.Node, a: Any, base: dict[str, Any]) -> EvalStep:
    modules, flatten, act = layer_modules(node)
    return EvalStep("layer", modules=modules, flatten=flatten, act=act, **base)


#: The operations with a step of their own, each as its step; every other runs as a layer (its
#: modules, in order, then its activation).
_STEPS: dict[str, Callable[[ir.Node, Any, dict[str, Any]], EvalStep]] = {
    "input": lambda node, a, base: EvalStep("input", **base),
    "conv": _conv,
    "conv1x1_group": _group,
    "token_mixer": lambda node, a, base: EvalStep("mixer", kernel=(a.square, a.band), members=members_of(node), **base),
    "slice": lambda node, a, base: EvalStep("slice", start=a.start, stop=a.stop, **base),
    "concat": lambda node, a, base: EvalStep("concat", **base),
    "add": lambda node, a, base: EvalStep("add", scale=a.scale, act=a.act, **base),
}


def compile_steps(program: list[ir.Node], outputs: Sequence[str]) -> list[EvalStep]:
    """The eval program as :class:`EvalStep` s: values in numbered slots (step ``i`` writes slot
    ``i``), each freed after its last read (the outputs are kept)."""
    slot = {node.name: i for i, node in enumerate(program)}
    last = last_uses(program)
    steps = []
    for i, node in enumerate(program):
        reads = tuple(slot[name] for name in node.inputs)
        free = tuple(sorted({slot[n] for n in node.inputs if last.get(n) == i and n not in outputs}))
        base: dict[str, Any] = {"name": node.name, "inputs": reads, "out": i, "free": free}
        steps.append(_STEPS.get(node.op, _layer)(node, node.attrs, base))
    return steps


# --- where values are ------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A value's shape per sample, and the concat it is computed into with its channel offset
    (the concat-buffer pass's ``storage``), for a backend that places values in memory."""

    shape: tuple[int, ...]
    storage: tuple[str, int] | None = None


def values_of(nodes: Iterable[ir.Node]) -> dict[str, Value]:
    """Every value of the passed network's ``nodes`` by name (a group's members included, read
    or not: its launch writes them all)."""
    return {n.name: Value(tuple(n.shape or ()), n.storage) for n in nodes}
