"""IR → ``nn.Module``: each layer becomes a module at its spec name; a small
interpreter runs the graph.

:func:`plan` is shared with the code generator: for every node it says which
module to build (class and keyword arguments) and how the node is computed
(:class:`Step`), so the in-memory module and the generated source cannot
drift apart in what they build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from incdsl import ir

from ..program import last_uses
from . import runtime


@dataclass(frozen=True)
class ModuleSpec:
    """A module to build: ``cls(**kwargs)``; ``cls`` names a class in torch.nn or the runtime."""

    cls: str
    kwargs: dict[str, Any]
    children: tuple[tuple[str, ModuleSpec], ...] = ()


@dataclass(frozen=True)
class Step:
    """How one node is computed from its inputs.

    kind: ``call`` (the node's module), ``linear`` (flatten, then the module),
    ``cat`` (channel concat), ``add`` (residual unit); ``relu`` applies a ReLU
    after the module.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    module: str | None = None
    relu: bool = False
    scale: float = 1.0


@dataclass(frozen=True)
class Plan:
    modules: dict[str, ModuleSpec]
    steps: list[Step]
    aux_steps: list[Step]
    logits: str
    aux: list[tuple[str, str, float]] = field(default_factory=list)


def _pair(p: ir.Pair) -> tuple[int, int]:
    return (int(p[0]), int(p[1]))


def module_spec(node: ir.Node, in_shape: ir.Shape) -> ModuleSpec:
    a = node.attrs
    if isinstance(a, ir.ConvAttrs):
        conv = ModuleSpec(
            "nn.Conv2d",
            {
                "in_channels": in_shape[0],
                "out_channels": a.out_channels,
                "kernel_size": _pair(a.kernel),
                "stride": _pair(a.stride),
                "padding": _pair(a.padding),
                "bias": a.bias,
            },
        )
        if a.bn_eps is None:
            return conv
        bn = ModuleSpec("nn.BatchNorm2d", {"num_features": a.out_channels, "eps": a.bn_eps})
        return ModuleSpec("ConvBN", {}, (("conv", conv), ("bn", bn)))
    if isinstance(a, ir.PoolAttrs):
        kwargs: dict[str, Any] = {
            "kernel_size": _pair(a.kernel),
            "stride": _pair(a.stride),
            "padding": _pair(a.padding),
            "ceil_mode": a.ceil,
        }
        if a.op == "avgpool":
            kwargs["count_include_pad"] = a.count_include_pad
            return ModuleSpec("nn.AvgPool2d", kwargs)
        return ModuleSpec("nn.MaxPool2d", kwargs)
    if isinstance(a, ir.AdaptiveAvgPoolAttrs):
        return ModuleSpec("nn.AdaptiveAvgPool2d", {"output_size": _pair(a.size)})
    if isinstance(a, ir.LRNAttrs):
        return ModuleSpec("nn.LocalResponseNorm", {"size": a.size, "alpha": a.alpha, "beta": a.beta, "k": a.k})
    if isinstance(a, ir.DropoutAttrs):
        return ModuleSpec("nn.Dropout", {"p": a.p})
    if isinstance(a, ir.LinearAttrs):
        c, h, w = in_shape
        return ModuleSpec("nn.Linear", {"in_features": c * h * w, "out_features": a.out_features, "bias": a.bias})
    if isinstance(a, ir.FlattenAttrs):
        return ModuleSpec("nn.Flatten", {})
    if isinstance(a, ir.ReLUAttrs):
        return ModuleSpec("nn.ReLU", {})
    if isinstance(a, ir.SoftmaxAttrs):
        return ModuleSpec("nn.Softmax", {"dim": 1})
    raise AssertionError(f"no module for {node.op}")


def _step(node: ir.Node) -> Step:
    a = node.attrs
    if isinstance(a, ir.ConcatAttrs):
        return Step(node.name, "cat", node.inputs)
    if isinstance(a, ir.AddAttrs):
        return Step(node.name, "add", node.inputs, relu=a.act == "relu", scale=a.scale)
    relu = getattr(a, "act", None) == "relu"
    kind = "linear" if isinstance(a, ir.LinearAttrs) else "call"
    return Step(node.name, kind, node.inputs, module=node.name, relu=relu)


def plan(net: ir.Network) -> Plan:
    """What to build and how to run it, for the torch backend and its code generator."""
    modules: dict[str, ModuleSpec] = {}
    steps: list[Step] = []
    aux_steps: list[Step] = []
    for node in net.nodes:
        if node.op == "input":
            continue
        if node.has_module:
            in_shape = net.node(node.inputs[0]).shape
            assert in_shape is not None, "plan() needs a shape-checked network"
            modules[node.name] = module_spec(node, in_shape)
        (aux_steps if net.in_aux(node) else steps).append(_step(node))
    logits = net.logits
    # A trailing softmax only names the loss: the module returns logits.
    steps = [s for s in steps if s.name != net.output or s.name == logits]
    heads = [(h.name, net.aux_logits(h), h.weight) for h in net.aux]
    skip = {h.output for h in net.aux} - {aux for _, aux, _ in heads}
    aux_steps = [s for s in aux_steps if s.name not in skip]
    return Plan(modules, steps, aux_steps, logits, heads)


_CLASSES: dict[str, type[nn.Module]] = {
    "nn.Conv2d": nn.Conv2d,
    "nn.BatchNorm2d": nn.BatchNorm2d,
    "nn.MaxPool2d": nn.MaxPool2d,
    "nn.AvgPool2d": nn.AvgPool2d,
    "nn.AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
    "nn.LocalResponseNorm": nn.LocalResponseNorm,
    "nn.Dropout": nn.Dropout,
    "nn.Linear": nn.Linear,
    "nn.Flatten": nn.Flatten,
    "nn.ReLU": nn.ReLU,
    "nn.Softmax": nn.Softmax,
    "ConvBN": runtime.ConvBN,
}


def build(spec: ModuleSpec) -> nn.Module:
    if spec.children:
        return _CLASSES[spec.cls](*(build(child) for _, child in spec.children))
    return _CLASSES[spec.cls](**spec.kwargs)


def attach(root: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at dotted ``path`` under ``root``, creating groups on the way."""
    *parents, leaf = path.split(".")
    here = root
    for part in parents:
        if part not in here._modules:
            here.add_module(part, runtime.Group())
        here = here._modules[part]  # type: ignore[assignment]
    here.add_module(leaf, module)


class IncNetwork(nn.Module):
    """A network compiled by incdsl's torch backend.

    Eval mode returns the logits. Training mode, when the spec has auxiliary
    heads, returns a :class:`~incdsl.compiler.torch.runtime.TrainOutput`
    (``out.logits``, ``out.aux``, ``out.loss(criterion, target)``).
    """

    def __init__(self, net: ir.Network) -> None:
        super().__init__()
        self._network_name = net.name
        self._input_shape = net.input_shape
        p = plan(net)
        for path, spec in p.modules.items():
            attach(self, path, build(spec))
        self._steps = p.steps
        self._aux_steps = p.aux_steps
        self._logits = p.logits
        self._aux = p.aux
        self._last_use = last_uses(p.steps)

    def extra_repr(self) -> str:
        c, h, w = self._input_shape
        return f"network={self._network_name!r}, input={c}x{h}x{w}"

    def _run(self, steps: list[Step], env: dict[str, torch.Tensor], last_use: dict[str, int] | None) -> None:
        for i, step in enumerate(steps):
            xs = [env[name] for name in step.inputs]
            if step.kind == "cat":
                y = torch.cat(xs, 1)
            elif step.kind == "add":
                y = runtime.residual(xs[0], xs[1], step.scale, step.relu)
            else:
                module = self.get_submodule(step.module)  # type: ignore[arg-type]
                x = torch.flatten(xs[0], 1) if step.kind == "linear" else xs[0]
                y = module(x)
                if step.relu:
                    y = F.relu_(y)  # the output of a conv, BN, linear or add: fresh, and not saved for backward
            env[step.name] = y
            if last_use is not None:
                for name in step.inputs:
                    if last_use.get(name) == i:
                        del env[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor | runtime.TrainOutput:
        env: dict[str, torch.Tensor] = {"input": x}
        with_aux = self.training and bool(self._aux)
        self._run(self._steps, env, None if with_aux else self._last_use)
        logits = env[self._logits]
        if not with_aux:
            return logits
        self._run(self._aux_steps, env, None)
        heads = tuple(runtime.AuxOutput(name, env[out], weight) for name, out, weight in self._aux)
        return runtime.TrainOutput(logits, heads)


def lower(net: ir.Network) -> IncNetwork:
    """The torch module for a shape-checked network."""
    return IncNetwork(net)
