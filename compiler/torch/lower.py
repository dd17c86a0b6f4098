"""IR → ``nn.Module``: each layer becomes a module at its spec name, each block instance a
module of its block's class whose ``forward`` the network calls.

:func:`plan` is shared with the code generator: it says which modules to build
(:class:`ModuleSpec`), which scopes are containers and of what class, and how
each module with a ``forward`` of its own computes its value (:class:`Unit`,
a list of :class:`Step`), so the in-memory module and the generated source
cannot drift apart in what they build or run.

A scope of the spec (a block instance, a ``seq``, a repeat, a multi-layer
branch, an aux head) is a *unit* — a module its parent calls — when it reads
one value and only its output is read from outside (no aux head, feature or
logits inside it): a block instance becomes an instance of its block's class
(one class per block definition, ``InceptionA``), another scope a
:class:`~.runtime.Chain` when its layers run one after another. Any other scope
is a :class:`~.runtime.Group`, a container whose layers its parent runs.
"""

from __future__ import annotations

import ast as pyast
import inspect
import keyword
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from incdsl import ir, operations
from incdsl.activations import Activation
from incdsl.operations import operation

from ..program import last_uses, layer_modules
from . import runtime


@dataclass(frozen=True)
class ModuleSpec:
    """A module to build: ``cls(**kwargs)``, or ``cls(children, **kwargs)`` for a layer whose
    parts are its children; ``cls`` names a class in torch.nn or the runtime."""

    cls: str
    kwargs: dict[str, Any]
    children: tuple[tuple[str, ModuleSpec], ...] = ()


@dataclass(frozen=True)
class Step:
    """How one value is computed, inside the unit that runs it.

    kind: ``call`` (``modules`` one after another: a layer's parts, or a unit),
    ``cat`` (channel concat), ``add`` (residual unit, its branch through ``drop_path``
    in training), ``slice`` (``channels`` of the input: a part of a split), ``scale``
    (layer scale: the input times the parameter at ``modules[0]``). ``flatten`` flattens the
    input first (a linear layer); ``act`` applies an activation after the modules (an add's:
    after the sum).
    Module paths are relative to the unit.
    """

    name: str
    kind: Literal["call", "cat", "add", "slice", "scale"]
    inputs: tuple[str, ...]
    modules: tuple[str, ...] = ()
    flatten: bool = False
    act: Activation | None = None
    scale: float = 1.0
    drop_path: float = 0.0
    channels: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Unit:
    """A module with a ``forward`` of its own: its path, its class, the value it reads and the
    one it gives, and its steps (a block's class; a Chain's steps are its children in order)."""

    path: str
    cls: str
    input: str
    output: str
    steps: tuple[Step, ...]
    block: str | None = None


@dataclass(frozen=True)
class Plan:
    #: Layer modules by path, in execution order.
    modules: dict[str, ModuleSpec]
    #: Scope containers by path → class name (``Group``, ``Chain`` or a block's class), parents first.
    containers: dict[str, str]
    #: The containers that have a forward of their own.
    units: dict[str, Unit]
    steps: list[Step]
    aux_steps: list[Step]
    logits: str
    #: The network's class name (in generated source).
    network_class: str
    aux: list[tuple[str, str, float]] = field(default_factory=list)
    #: ``features=``: (name asked for, value), in order; empty for a network that returns its logits.
    features: list[tuple[str, str]] = field(default_factory=list)
    #: Block class name → the block definition it was made for.
    block_classes: dict[str, str] = field(default_factory=dict)


def bound_names(source: str) -> frozenset[str]:
    """The names the top level of a Python module binds: its imports, classes, functions and
    assignments.

    >>> sorted(bound_names("import torch.nn as nn\\nfrom typing import Any\\nX = 1\\nclass A: pass\\n"))
    ['A', 'Any', 'X', 'nn']
    """
    names: set[str] = set()
    for node in pyast.parse(source).body:
        if isinstance(node, (pyast.Import, pyast.ImportFrom)):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        elif isinstance(node, (pyast.ClassDef, pyast.FunctionDef, pyast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (pyast.Assign, pyast.AnnAssign, pyast.AugAssign)):
            targets = node.targets if isinstance(node, pyast.Assign) else [node.target]
            names.update(n.id for t in targets for n in pyast.walk(t) if isinstance(n, pyast.Name))
    return frozenset(names)


#: The names the runtime binds at its top level. A generated file copies the runtime in, so
#: these are its helpers' names: computed from the runtime's source, never listed by hand, so
#: that no class made from a spec's names can take one (a network called ``group`` is
#: ``GroupNet``, not a second ``Group``).
RUNTIME_NAMES = bound_names(inspect.getsource(runtime))


def class_name(name: str) -> str:
    """``inception_v4`` → ``InceptionV4``: an ASCII identifier that starts with a letter.

    >>> class_name("inception_v4"), class_name("3x3"), class_name("a²b")
    ('InceptionV4', 'Net3x3', 'Ab')
    """
    parts = ["".join(c for c in part if c.isascii() and c.isalnum()) for part in name.split("_")]
    out = "".join(part[:1].upper() + part[1:] for part in parts)
    return out if out[:1].isalpha() and not keyword.iskeyword(out) else f"Net{out}"


def network_class(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """The class name of a network called ``name``, clear of the runtime's and ``reserved``'s."""
    cls = class_name(name)
    while cls in RUNTIME_NAMES or cls in reserved:
        cls += "Net"
    return cls


# --- layer modules ---------------------------------------------------------------------


def module_spec(node: ir.Node, in_shape: ir.Shape, flat_input: bool = False) -> ModuleSpec:
    """The module of a layer without parts (for a conv or linear: its main part), as its entry in
    the table of operations says."""
    torch_module = operation(node.op).torch
    assert torch_module is not None, f"no module for {node.op}"
    made = torch_module(node.attrs, in_shape, flat_input)
    return ModuleSpec(made.cls, made.kwargs)


def _part_specs(node: ir.Node, net: ir.Network) -> dict[str, ModuleSpec]:
    """Each part of a layer (by role) as a module."""
    in_shape = net.node(node.inputs[0]).shape
    assert in_shape is not None and node.shape is not None, "plan() needs a shape-checked network"
    main = module_spec(node, in_shape, net.is_flat(node.inputs[0]))
    specs = {"main": main}
    bn_eps = getattr(node.attrs, "bn_eps", None)
    if bn_eps is not None:
        cls = "nn.BatchNorm1d" if operation(node.op).rank == "flat" else "nn.BatchNorm2d"
        specs["bn"] = ModuleSpec(cls, {"num_features": node.shape[0], "eps": bn_eps})
    act = getattr(node.attrs, "act", None)
    if act is not None:
        specs["act"] = activation_module(act)
    return specs


def activation_module(act: Activation) -> ModuleSpec:
    """An activation as a module: ``nn.ReLU()``, ``nn.GELU(approximate="tanh")``."""
    made = operations.activation_module(act)
    return ModuleSpec(made.cls, made.kwargs)


def activate(act: Activation | None, y: torch.Tensor) -> torch.Tensor:
    """``y`` through the activation ``act`` (a function, not in place); None: ``y``."""
    return y if act is None else runtime.ACTIVATIONS[act](y)


def run_layer(owner: nn.Module, modules: tuple[str, ...], flatten: bool, act: Activation | None,
              x: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Run a layer: ``x`` (flattened first with ``flatten``) through the submodules of ``owner`` at
    ``modules`` in order, then the activation ``act`` — the one generic step of every backend,
    for each operation it does not specialise. A path may name a parameter (a layer scale's):
    ``x`` is scaled by it."""
    y = torch.flatten(x, 1) if flatten else x
    for path in modules:
        parent, _, leaf = path.rpartition(".")
        target = getattr(owner.get_submodule(parent) if parent else owner, leaf)
        y = runtime.layer_scale(y, target) if isinstance(target, nn.Parameter) else target(y)
    return activate(act, y)  # not in place: a hook on the module keeps the value it saw


def _layer(node: ir.Node, net: ir.Network, modules: dict[str, ModuleSpec]) -> Step:
    """A layer's modules (into ``modules``) and its step."""
    specs = _part_specs(node, net)
    paths = ir.part_paths(node)
    called, flatten, act = layer_modules(node)
    if ir.wrapped(node):
        children = tuple((paths[role].rpartition(".")[2], specs[role]) for role in paths)
        kwargs: dict[str, Any] = {}
        if flatten:
            kwargs["flatten"] = (children[0][0],)
        inner_act = getattr(node.attrs, "act", None)
        if inner_act is not None and "act" not in paths:
            kwargs[inner_act.value] = (children[-1][0],)
        modules[node.name] = ModuleSpec("Chain", kwargs, children)
    else:
        for role, path in paths.items():
            modules[path] = specs[role]
    return Step(node.name, "call", node.inputs, called, flatten, act)


def _step(node: ir.Node, net: ir.Network, modules: dict[str, ModuleSpec]) -> Step:
    a = node.attrs
    if isinstance(a, ir.ConcatAttrs):
        return Step(node.name, "cat", node.inputs)
    if isinstance(a, ir.AddAttrs):
        return Step(node.name, "add", node.inputs, act=a.act, scale=a.scale, drop_path=a.drop_path)
    if isinstance(a, ir.SliceAttrs):
        return Step(node.name, "slice", node.inputs, channels=(a.start, a.stop))
    step = _layer(node, net, modules)
    # a layer whose "module" is a parameter of its block (a layer scale's): generated code multiplies by it
    # (a layer with `parts=` keeps its modules under the parts' names, not its own)
    spec = modules.get(node.name)
    return replace(step, kind="scale") if spec is not None and spec.cls == "Parameter" else step


# --- scopes ------------------------------------------------------------------------------


def _is_region(net: ir.Network, scope: ir.Scope, members: list[ir.Node], observed: set[str]) -> bool:
    """Whether the scope reads only its input and only its output is read from outside."""
    inside = {n.name for n in members}
    if scope.output not in inside:
        return False
    if any(src not in inside and src != scope.input for n in members for src in n.inputs):
        return False
    if (observed & inside) - {scope.output}:
        return False
    return not any(r not in inside for n in members if n.name != scope.output for r in net.consumers(n.name))


def _relative(path: str, unit: str) -> str:
    return path[len(unit) + 1 :] if unit else path


def _is_chain(unit_path: str, steps: list[Step]) -> bool:
    """Whether steps call direct children one after another, each reading the previous value."""
    children: list[str] = []
    for i, step in enumerate(steps):
        if step.kind != "call" or (i > 0 and step.inputs != (steps[i - 1].name,)):
            return False
        children += [_relative(m, unit_path) for m in step.modules]
    return all("." not in c for c in children) and len(set(children)) == len(children)


class _Planner:
    """Scopes into units, containers and steps (see the module's docstring)."""

    def __init__(self, net: ir.Network, network_cls: str, reserved: frozenset[str]) -> None:
        self.net = net
        #: Class names a block's class may not take: the runtime's names, the network's class and ``reserved``.
        self.taken = RUNTIME_NAMES | reserved | {network_cls}
        self.modules: dict[str, ModuleSpec] = {}
        self.containers: dict[str, str] = {}
        self.units: dict[str, Unit] = {}
        self.block_classes: dict[str, str] = {}
        self._class_of: dict[tuple[str, tuple[Any, ...]], str] = {}
        self.observed = {
            *net.outputs(),
            net.logits,
            *(h.input for h in net.aux),
            *(net.aux_logits(h) for h in net.aux),
        }
        self.scope_names = {s.name for s in net.scopes}
        self._parent = {s.name: self._innermost(s.name.rpartition(".")[0]) for s in net.scopes}
        self._home: dict[str, str] = {}
        #: module path → the layer it belongs to (its parts' paths too)
        self.owner: dict[str, str] = {}

    def _innermost(self, path: str) -> str:
        """The innermost scope that is ``path`` or holds it ("" for the network)."""
        while path and path not in self.scope_names:
            path = path.rpartition(".")[0]
        return path

    def scope_of_node(self, node: ir.Node) -> str:
        """The innermost scope a node belongs to ("" for the network)."""
        if node.name not in self._home:
            self._home[node.name] = self._innermost(ir.scope_of(node.name))
        return self._home[node.name]

    def steps(self, path: str, nodes: list[ir.Node]) -> list[Step]:
        """The steps that run ``nodes`` (those of scope ``path``, in execution order) from its
        parent's view; the scopes inside it become units or containers on the way. Each step
        runs where its value comes in the execution order."""
        by_child: dict[str | None, list[ir.Node]] = {}
        for node in nodes:
            by_child.setdefault(self._direct_child(path, node), []).append(node)
        made: dict[str, Step] = {}
        for child, members in by_child.items():
            inner = [self._layer_or_op(n) for n in members] if child is None else self._scope(child, members)
            made.update((s.name, s) for s in inner)
        return [made[n.name] for n in nodes if n.name in made]

    def _layer_or_op(self, node: ir.Node) -> Step:
        step = _step(node, self.net, self.modules)
        if step.kind in ("call", "scale"):
            self.owner.update(dict.fromkeys([node.name, *ir.part_paths(node).values()], node.name))
        return step

    def _direct_child(self, path: str, node: ir.Node) -> str | None:
        inner = self.scope_of_node(node)
        if inner == path:
            return None
        while self._parent[inner] != path:
            inner = self._parent[inner]
        return inner

    def _scope(self, name: str, nodes: list[ir.Node]) -> list[Step]:
        scope = self.net.scope(name)
        assert scope is not None
        inner = self.steps(name, nodes)
        if any(p.startswith(name + ".") for p in self.modules):
            self.containers[name] = "Group"
        region = _is_region(self.net, scope, nodes, self.observed)
        if region and (scope.block is not None or _is_chain(name, inner)):
            relative = tuple(
                replace(s, modules=tuple(_relative(m, name) for m in s.modules)) for s in inner
            )
            cls = self._block_class(scope.block, name, relative) if scope.block else "Chain"
            if name in self.containers:
                self.containers[name] = cls
            self.units[name] = Unit(name, cls, scope.input, scope.output, relative, scope.block)
            return [Step(scope.output, "call", (scope.input,), (name,))]
        return inner

    def _block_class(self, block: str, path: str, steps: tuple[Step, ...]) -> str:
        """One class per block definition; instances whose steps differ (a different shape of
        block, from arguments that change its structure) get a numbered class of their own."""
        inside = path + "."
        built = (
            tuple((_relative(m, path), _structure(spec)) for m, spec in self.modules.items() if m.startswith(inside)),
            tuple((_relative(c, path), cls) for c, cls in self.containers.items() if c.startswith(inside)),
        )
        key = (block, _shape_of(path, steps), built)
        if key not in self._class_of:
            base = class_name(block)
            while base in self.taken:
                base += "Block"
            cls, n = base, 1
            while cls in self.block_classes or cls in self.taken:
                n += 1
                cls = f"{base}_{n}"
            self._class_of[key] = cls
            self.block_classes[cls] = block
        return self._class_of[key]


def _shape_of(path: str, steps: tuple[Step, ...]) -> tuple[Any, ...]:
    """Steps with value names relative to the unit: equal for instances that run alike. A residual's
    scale, activation and drop-path rate and a split's channels are left out: the block's class takes
    them as arguments."""

    def rel(name: str) -> str:
        return name[len(path) :] if name.startswith((path + ".", path + ":")) else "<input>"

    return tuple(
        (rel(s.name), s.kind, tuple(map(rel, s.inputs)), s.modules, s.flatten, s.act if s.kind != "add" else None)
        for s in steps
    )


def _structure(spec: ModuleSpec) -> tuple[Any, ...]:
    """What a module spec builds, its settings' values left out: equal for the same layer in two
    instances of a block however wide each is."""
    return (spec.cls, tuple(spec.kwargs), tuple((name, _structure(child)) for name, child in spec.children))


def plan(net: ir.Network, network_cls: str | None = None, reserved: frozenset[str] = frozenset()) -> Plan:
    """What to build and how to run it, for the torch backend and its code generator; the
    block classes' names are clear of the runtime's, ``network_cls`` and ``reserved``."""
    network_cls = network_cls or network_class(net.name, reserved)
    planner = _Planner(net, network_cls, reserved)
    main = [n for n in net.main_nodes() if n.op != "input"]
    steps = planner.steps("", main)
    aux_nodes = [n for n in net.nodes if net.in_aux(n)]
    aux_steps = planner.steps("", aux_nodes)
    logits = net.logits
    heads = [(h.name, net.aux_logits(h), h.weight) for h in net.aux]
    # A trailing softmax only names the loss: the module returns logits, and builds no softmax it never calls.
    unused = ({net.output} - {logits}) | ({h.output for h in net.aux} - {aux for _, aux, _ in heads})
    steps = [s for s in steps if s.name not in unused]
    aux_steps = [s for s in aux_steps if s.name not in unused]
    planner.modules = {path: spec for path, spec in planner.modules.items() if planner.owner[path] not in unused}
    held = {c for c in planner.containers if any(path.startswith(c + ".") for path in planner.modules)}
    features = [(f.name, f.node) for f in net.features]
    if features:
        needed = {f for _, f in features}.union(*(net.ancestors(f) for _, f in features))
        steps = [s for s in steps if s.name in needed]
        aux_steps, heads = [], []
    containers = {path: planner.containers[path] for path in sorted(held, key=lambda p: p.count("."))}
    order = {n.name: i for i, n in enumerate(net.nodes)}
    modules = dict(sorted(planner.modules.items(), key=lambda item: order[planner.owner[item[0]]]))
    return Plan(
        modules, containers, planner.units, steps, aux_steps, logits, network_cls, heads, features, planner.block_classes
    )


# --- building ---------------------------------------------------------------------------------

def module_class(cls: str) -> type[nn.Module]:
    """The class a :class:`ModuleSpec` names: ``nn.Conv2d`` in ``torch.nn``, another in the runtime."""
    found = getattr(nn, cls[3:], None) if cls.startswith("nn.") else getattr(runtime, cls, None)
    assert isinstance(found, type) and issubclass(found, nn.Module), f"no module class {cls}"
    return found


def build(spec: ModuleSpec) -> nn.Module | nn.Parameter:
    if spec.cls == "Parameter":
        return nn.Parameter(torch.full((spec.kwargs["channels"],), float(spec.kwargs["init"])))
    if spec.cls == "Chain":
        return runtime.Chain({name: build(child) for name, child in spec.children}, **spec.kwargs)
    return module_class(spec.cls)(**spec.kwargs)


def run_steps(owner: nn.Module, steps: Iterable[Step], env: dict[str, torch.Tensor], last_use: dict[str, int] | None) -> None:
    """Run ``steps`` with the submodules of ``owner``; values go into ``env`` (freed after their last use)."""
    for i, step in enumerate(steps):
        xs = [env[name] for name in step.inputs]
        if step.kind == "cat":
            y = torch.cat(xs, 1)
        elif step.kind == "add":
            y = runtime.residual(xs[0], xs[1], step.scale, step.act is not None, step.drop_path, owner.training)
        elif step.kind == "slice":
            y = xs[0][:, step.channels[0] : step.channels[1]]
        else:
            y = run_layer(owner, step.modules, step.flatten, step.act, xs[0])
        env[step.name] = y
        if last_use is not None:
            for name in step.inputs:
                if last_use.get(name) == i:
                    del env[name]


class BlockModule(nn.Module):
    """An instance of a spec's block: the base of each block's class (``InceptionA``), made by
    :func:`lower`; ``forward`` runs the instance's steps on its input."""

    def __init__(self, unit: Unit) -> None:
        super().__init__()
        self._unit_steps = unit.steps
        self._unit_io = (unit.input, unit.output)
        self._unit_last_use = last_uses(unit.steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source, output = self._unit_io
        env = {source: x}
        run_steps(self, self._unit_steps, env, self._unit_last_use)
        return env[output]


def block_classes(p: Plan) -> dict[str, type[BlockModule]]:
    """A class for each block definition (named as in generated source), made for this network."""
    return {
        cls: type(cls, (BlockModule,), {"__doc__": f"Block `{block}` of the spec.", "__module__": __name__})
        for cls, block in p.block_classes.items()
    }


def attach(root: nn.Module, path: str, module: nn.Module | nn.Parameter) -> None:
    """Put ``module`` (or a parameter: a layer scale) at dotted ``path`` under ``root`` (whose parents exist)."""
    parent, _, leaf = path.rpartition(".")
    owner = root.get_submodule(parent) if parent else root
    if isinstance(module, nn.Parameter):
        owner.register_parameter(leaf, module)
    else:
        owner.add_module(leaf, module)


def _container(cls: str, unit: Unit | None, classes: dict[str, type[BlockModule]]) -> nn.Module:
    if cls == "Group":
        return runtime.Group()
    assert unit is not None
    if cls == "Chain":
        return runtime.Chain(**chain_options(unit))
    return classes[cls](unit)


def chain_options(unit: Unit) -> dict[str, tuple[str, ...]]:
    """A chain unit's ``flatten=`` and its activations (``relu=``, ``gelu=``): the children that
    flatten first, those each activation follows."""
    options = {
        **{act.value: tuple(s.modules[-1] for s in unit.steps if s.act is act) for act in Activation},
        "flatten": tuple(s.modules[0] for s in unit.steps if s.flatten),
    }
    return {k: v for k, v in options.items() if v}


class IncNetwork(nn.Module):
    """A network compiled by incdsl's torch backend.

    Eval mode returns the logits (or, compiled with ``features=``, a dict of the
    named values). Training mode, when the spec has auxiliary heads, returns a
    :class:`~incdsl.compiler.torch.runtime.TrainOutput` (``out.logits``,
    ``out.aux``, ``out.loss(criterion, target)``).
    """

    def __init__(self, net: ir.Network) -> None:
        super().__init__()
        self._network_name = net.name
        self._input_shape = net.input_shape
        p = plan(net)
        classes = block_classes(p)
        pending = dict(p.containers)
        for path, spec in p.modules.items():
            # containers go in just before their first layer, so each parent holds its children in execution order
            for scope in [s for s in pending if path.startswith(s + ".")]:
                attach(self, scope, _container(pending.pop(scope), p.units.get(scope), classes))
            attach(self, path, build(spec))
        for scope, cls in pending.items():
            attach(self, scope, _container(cls, p.units.get(scope), classes))
        self._steps = p.steps
        self._aux_steps = p.aux_steps
        self._logits = p.logits
        self._aux = p.aux
        self._features = p.features
        kept = {node for _, node in p.features}
        self._last_use = {k: i for k, i in last_uses(p.steps).items() if k not in kept}

    def extra_repr(self) -> str:
        c, h, w = self._input_shape
        return f"network={self._network_name!r}, input={c}x{h}x{w}"

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor] | runtime.TrainOutput:
        env: dict[str, torch.Tensor] = {"input": x}
        with_aux = self.training and bool(self._aux) and not self._features
        run_steps(self, self._steps, env, None if with_aux else self._last_use)
        if self._features:
            return {name: env[node] for name, node in self._features}
        logits = env[self._logits]
        if not with_aux:
            return logits
        run_steps(self, self._aux_steps, env, None)
        heads = tuple(runtime.AuxOutput(name, env[out], weight) for name, out, weight in self._aux)
        return runtime.TrainOutput(logits, heads)


def lower(net: ir.Network) -> IncNetwork:
    """The torch module for a shape-checked network, of a class named as in generated source
    (``Googlenet`` for ``network googlenet``)."""
    name = network_class(net.name)
    cls = type(name, (IncNetwork,), {"__doc__": IncNetwork.__doc__, "__module__": __name__, "__qualname__": name})
    return cls(net)
