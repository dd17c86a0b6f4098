"""IR → readable Python source defining the network as ``nn.Module`` classes, as timm writes
one: a class per block definition whose ``__init__`` takes the block's widths
(``Inception(192, 64, 96, 128, 16, 32, 32)``) and builds its layers, a residual's
scale and activation as arguments kept on the instance, repeats as loops over an
``nn.Sequential``, and the network's class that builds the blocks and wires them.

The source needs only torch: the runtime helpers are copied in. It is built
from the same :func:`~incdsl.compiler.torch.lower.plan` as the in-memory
module, so the two build the same modules under the same names (the same
``state_dict``), and every name in it comes from validated spec identifiers,
node names or numbers; module names that are not identifiers (``"1x1"``)
appear only as string literals written with ``repr``; no spec text is pasted in.

A block's arguments are what differs between its instances: the IR keeps each
instance's layers, not the expressions of the spec, so a width that is the
same in every instance is written as a number, and a width that differs becomes
a parameter — named after the column of the table whose rows are the instances
(``n3x3_reduce`` for "#3x3 reduce"), else after the layer it sizes
(``branch2_0_out``). A layer's input width follows from the widths before it
(``in_channels``, a concat's sum); a residual's 1x1 expansion takes the width
of the unit's input.
"""

from __future__ import annotations

import ast as pyast
import builtins
import inspect
import keyword
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from incdsl import __version__, ir
from incdsl.activations import FORMS, Activation

from . import runtime
from .lower import (
    RUNTIME_NAMES,
    ModuleSpec,
    Plan,
    Step,
    Unit,
    bound_names,
    chain_options,
    class_name,
    module_class,
    network_class,
    plan,
)

__all__ = ["LINE", "class_name", "generate"]

#: Containers that reach a child by name with ``[...]``.
_INDEXABLE = ("Group", "Chain")
#: The longest line of generated torch source.
LINE = 120


# --- expressions that break over lines ---------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """``head item, item, … tail``: a call, a list or a dict; each item is ``(prefix, expression,
    suffix)`` (``'conv': `` before a dict's value, `` for _ in range(4)]`` after a repeat)."""

    head: str
    items: tuple[tuple[str, _Expr, str], ...]
    tail: str


_Expr = str | _Call


def _flat(e: _Expr) -> str:
    if isinstance(e, str):
        return e
    return e.head + ", ".join(p + _flat(x) + s for p, x, s in e.items) + e.tail


def _lines(e: _Expr, lead: str, indent: str, end: str = "") -> list[str]:
    """``lead + e + end`` on one line when it fits in :data:`LINE`, else its items on one line of
    their own, else one item a line."""
    flat = _flat(e)
    if isinstance(e, str) or not e.items or len(lead) + len(flat) + len(end) <= LINE:
        return [lead + flat + end]
    inner = indent + "    "
    items = inner + ", ".join(p + _flat(x) + s for p, x, s in e.items)
    if len(items) <= LINE:
        return [lead + e.head, items, indent + e.tail + end]
    out = [lead + e.head]
    for prefix, item, suffix in e.items:
        out += _lines(item, inner + prefix, inner, suffix + ",")
    return [*out, indent + e.tail + end]


def _norm(value: Any) -> Any:
    """A square pair as its one number (``(3, 3)`` → ``3``), which torch takes alike (sizes are
    ints; a tuple of floats, such as a normalisation's means, is one value per channel)."""
    if isinstance(value, tuple) and len(value) == 2 and all(type(v) is int and v == value[0] for v in value):
        return value[0]
    return value


def _signature(cls: str) -> inspect.Signature:
    return inspect.signature(module_class(cls))


def _loop(items: list[_Expr], blocks: list[bool]) -> tuple[tuple[str, _Expr, str], ...]:
    """Children of a sequence as items, a run of equal block instances as a loop
    (``*[Block35(320) for _ in range(10)]``)."""
    out: list[tuple[str, _Expr, str]] = []
    i = 0
    while i < len(items):
        n = 1
        while blocks[i] and i + n < len(items) and _flat(items[i + n]) == _flat(items[i]):
            n += 1
        out.append(("*[", items[i], f" for _ in range({n})]") if n > 1 else ("", items[i], ""))
        i += n
    return tuple(out)


def _indexed(names: list[str]) -> bool:
    return names == [str(i) for i in range(len(names))]


# --- names -------------------------------------------------------------------------------


def _identifier(name: str) -> bool:
    """Whether ``self.name`` in source is the attribute ``name``: Python folds identifiers to NFKC
    (``self.ｃonv1`` is ``self.conv1``), so a name that is not in that form is spelled as a string."""
    return name.isidentifier() and not keyword.iskeyword(name) and unicodedata.normalize("NFKC", name) == name


def _access(path: str, containers: dict[str, str], base: str = "", owner: str = "self") -> str:
    """``inception_3a.branch2.1`` → ``self.inception_3a.branch2[1]`` (paths relative to ``base``)."""
    out = owner
    here = base
    for part in path.split(".") if path else ():
        if _identifier(part):
            out += f".{part}"
        elif containers.get(here) in _INDEXABLE:
            out += f"[{part}]" if part.isdigit() else f"[{part!r}]"
        else:
            out = f"getattr({out}, {part!r})"
        here = f"{here}.{part}" if here else part
    return out


class _Names:
    """Variable names for values: the name made into an identifier, unique in one function and
    clear of every name the function could read — the file's own (``taken``) and Python's builtins."""

    def __init__(self, source: str, taken: frozenset[str] | set[str]) -> None:
        self.names: dict[str, str] = {source: "x"}
        self.used = {"x", "self", *taken, *dir(builtins)}

    def give(self, value: str, hint: str) -> str:
        base = re.sub(r"[^0-9a-zA-Z_]", "_", hint).strip("_") or "v"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = f"v_{base}"
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        self.names[value] = name
        return name

    def __getitem__(self, value: str) -> str:
        return self.names[value]


def _relative(name: str, base: str) -> str:
    if base and name.startswith((base + ".", base + ":")):
        return name[len(base) + 1 :]
    return name


def _join(base: str, rel: str) -> str:
    return f"{base}.{rel}" if base and rel else base or rel


# --- a block's arguments -------------------------------------------------------------------


@dataclass(frozen=True)
class _Signature:
    """A block class's ``__init__`` arguments and each instance's values: the positional ones
    (``in_channels`` first), then those with defaults (a residual's ``scale``, ``relu``)."""

    positional: tuple[tuple[str, dict[str, Any]], ...]
    keyword: tuple[tuple[str, Any, dict[str, Any]], ...]


class _Slots:
    """The source for a value of one place in a block, given its value in each instance: a number
    when the instances agree, else a parameter (one per distinct list of values)."""

    def __init__(self, names: _Names, columns: list[tuple[str, tuple[Any, ...]]] | None = None) -> None:
        self.names = names
        self.params: list[tuple[str, tuple[Any, ...]]] = []
        #: a table's columns (label, each instance's value): the block's own arguments, in order
        self.columns = columns or []
        self._unused = list(range(len(self.columns)))

    def expr(self, values: tuple[Any, ...], hint: str) -> str:
        if len({_norm(v) for v in values}) == 1:
            return repr(_norm(values[0]))
        # a table's column first (the first not yet used: two columns may hold equal values)
        for i in self._unused:
            label, known = self.columns[i]
            if known == values:
                self._unused.remove(i)
                name = self.names.give(f"column:{i}", _column_name(label))
                self.params.append((name, values))
                return name
        for name, known in self.params:
            if known == values:
                return name
        name = self.names.give(f"param:{hint}", hint)
        self.params.append((name, values))
        return name

    def ordered(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The parameters: a table's columns in the table's order, then the others."""
        column = {self.names.names.get(f"column:{i}"): i for i in range(len(self.columns))}
        return sorted(self.params, key=lambda item: column.get(item[0], len(self.columns)))


def _column_name(label: str) -> str:
    """A table's column label as a parameter name: ``"#3x3 reduce"`` → ``n3x3_reduce``."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", label).strip("_").lower() or "arg"
    return f"n{name}" if name[0].isdigit() else name


def _table_columns(net: ir.Network, units: list[Unit]) -> list[tuple[str, tuple[Any, ...]]]:
    """The columns of the table every instance is a row of (label, each instance's value), or none."""
    rows = [net.rows[r] if (r := net.node(u.output).row) is not None else None for u in units]
    if any(r is None or r.table is None or not r.values for r in rows):
        return []
    labels = net.tables[rows[0].table].columns  # type: ignore[union-attr, index]
    if any(len(r.values) != len(labels) for r in rows):  # type: ignore[union-attr]
        return []
    return [(label, tuple(r.values[i] for r in rows)) for i, label in enumerate(labels)]  # type: ignore[union-attr]


class _Channels:
    """The width of each value and module input inside a block as source (``in_channels``,
    ``branch1_out + 128``), walked through its steps as the shape pass walks them."""

    def __init__(self, builder: _Builder, overrides: dict[str, str]) -> None:
        self.b = builder
        self.overrides = overrides
        #: module path (relative) → the width of its input
        self.inputs: dict[str, str] = {}
        #: module path → the source of the width it gives, where it sets one
        self.outputs: dict[str, str] = {}
        #: residual branch's width-setting module → the shortcut's width
        self.tied: dict[str, str] = {}

    def walk(self, steps: tuple[Step, ...] | list[Step], base: str, source: str, width: str) -> str:
        env = {source: (width, None)}
        last = width
        for step in steps:
            ins = [env[i] for i in step.inputs]
            if step.kind == "cat":
                env[step.name] = (_sum([w for w, _ in ins]), None)
            elif step.kind == "add":
                (short, _), (branch, setter) = ins
                if branch != short and setter is not None:
                    self.tied[setter] = short
                env[step.name] = (short, None)
            elif step.kind == "slice":
                env[step.name] = (self.b.slot(_relative(step.name, base or self.b.bases[0]).replace(":", "_"), "width",
                                              self.b.across(step.name, lambda n: n.shape[0])), None)
            elif step.kind == "scale":
                self.inputs[_join(base, step.modules[0])] = ins[0][0]
                env[step.name] = ins[0]
            else:
                w, setter = ins[0]
                for m in step.modules:
                    w, setter = self._through(_join(base, m), w, setter)
                env[step.name] = (w, setter)
            last = env[step.name][0]
        return last

    def _through(self, rel: str, width: str, setter: str | None) -> tuple[str, str | None]:
        self.inputs[rel] = width
        spec = self.b.spec(rel)
        if spec is not None:
            for name, child in spec.children:
                width, setter = self._through_spec(f"{rel}.{name}", child, width, setter)
            return self._through_spec(rel, spec, width, setter) if not spec.children else (width, setter)
        unit = self.b.unit(rel)
        if unit.cls == "Chain":
            return self.walk(unit.steps, rel, unit.input, width), None
        out = self.b.slot(rel, "out", tuple(self.b.width(u.output) for u in self.b.units(rel)))
        return out, None

    def _through_spec(self, rel: str, spec: ModuleSpec, width: str, setter: str | None) -> tuple[str, str | None]:
        self.inputs[rel] = width
        for kwarg in ("out_channels", "out_features"):
            if kwarg in spec.kwargs:
                out = self.overrides.get(rel) or self.b.slot(rel, "out", self.b.values(rel, kwarg))
                self.outputs[rel] = out
                return out, rel
        return width, setter


def _sum(terms: list[str]) -> str:
    """``a + b + 96``: the numbers added up into one, after the names."""
    names = [t for t in terms if not t.lstrip("-").isdigit()]
    total = sum(int(t) for t in terms if t.lstrip("-").isdigit())
    return " + ".join([*names, str(total)] if total or not names else names)


class _Builder:
    """The ``__init__`` of the network or of a block class: the modules of one scope, built for
    each of its instances alike (``bases``: the network's "" or each block instance's path)."""

    def __init__(
        self, p: Plan, net: ir.Network, tree: dict[str, list[str]], signatures: dict[str, _Signature],
        bases: list[str], names: _Names, columns: list[tuple[str, tuple[Any, ...]]] | None = None,
    ) -> None:  # fmt: skip
        self.p, self.net, self.tree, self.signatures = p, net, tree, signatures
        self.bases = bases
        self.slots = _Slots(names, columns)
        self.channels = _Channels(self, {})

    # what each instance has at a relative path
    def spec(self, rel: str) -> ModuleSpec | None:
        return self.p.modules.get(_join(self.bases[0], rel))

    def unit(self, rel: str) -> Unit:
        return self.p.units[_join(self.bases[0], rel)]

    def units(self, rel: str) -> list[Unit]:
        return [self.p.units[_join(b, rel)] for b in self.bases]

    def across(self, name: str, value: Callable[[ir.Node], Any]) -> tuple[Any, ...]:
        """``value`` of the node called ``name`` in the first instance, and of its copy in each instance."""
        first = self.bases[0]
        suffix = name[len(first) :] if first else name
        return tuple(value(self.net.node(f"{b}{suffix}" if first else name)) for b in self.bases)

    def width(self, value: str) -> int:
        shape = self.net.node(value).shape
        assert shape is not None
        return shape[0]

    def values(self, rel: str, kwarg: str) -> tuple[Any, ...]:
        """The value of ``kwarg`` of the module (or a wrapped layer's part) at ``rel``, in each instance."""
        return tuple(self._spec_at(_join(b, rel)).kwargs[kwarg] for b in self.bases)

    def _spec_at(self, path: str) -> ModuleSpec:
        if path in self.p.modules:
            return self.p.modules[path]
        parent, _, name = path.rpartition(".")
        return dict(self.p.modules[parent].children)[name]

    def slot(self, rel: str, what: str, values: tuple[Any, ...]) -> str:
        return self.slots.expr(values, f"{rel}_{what}".replace(".", "_"))

    # the widths, then the source
    def run_widths(self, unit: Unit | None, width: str) -> None:
        """Walk the block's steps for the widths, tying each residual's expansion to its shortcut."""
        if unit is None:
            return
        trial = _Channels(self, {})
        slots = self.slots
        self.slots = _Slots(_Names("", set(slots.names.used)), slots.columns)
        trial.walk(unit.steps, "", unit.input, width)
        self.slots = slots
        self.channels = _Channels(self, trial.tied)
        self.channels.walk(unit.steps, "", unit.input, width)

    def statements(self, rel: str = "", owner: str = "self") -> list[str]:
        """``owner.child = …`` for each child of the scope at ``rel``; a Group's children after it."""
        out: list[str] = []
        for leaf in self._children(rel):
            crel = _join(rel, leaf)
            target, end = (f"{owner}.{leaf} = ", "") if _identifier(leaf) else (f"{owner}.add_module({leaf!r}, ", ")")
            path = _join(self.bases[0], crel)
            if self.p.containers.get(path) == "Group" and not _indexed(self._children(crel)):
                out.append(f"        {target}Group(){end}")
                out += self.statements(crel, f"{owner}.{leaf}" if _identifier(leaf) else f"getattr({owner}, {leaf!r})")
            else:
                out += _lines(self.expr(crel), "        " + target, "        ", end)
        return out

    def _children(self, rel: str) -> list[str]:
        return [c.rpartition(".")[2] for c in self.tree.get(_join(self.bases[0], rel), [])]

    def expr(self, rel: str) -> _Expr:
        path = _join(self.bases[0], rel)
        if path in self.p.modules:
            return self._module(rel, self.p.modules[path])
        cls = self.p.containers[path]
        if cls in self.p.block_classes:
            return self._block_call(rel, cls)
        children = self._children(rel)
        items = [self.expr(_join(rel, c)) for c in children]
        blocks = [self.p.containers.get(_join(path, c)) in self.p.block_classes for c in children]
        if cls == "Group":
            return _Call("nn.ModuleList([", _loop(items, blocks), "])")
        if cls == "Chain":
            options = chain_options(self.p.units[path])
            if not options and _indexed(children):
                return _Call("nn.Sequential(", _loop(items, blocks), ")")
            return self._chain(children, items, options)
        raise AssertionError(f"{path}: a container of class {cls}")

    def _chain(self, names: list[str], items: list[_Expr], options: dict[str, Any]) -> _Call:
        mapping = _Call("{", tuple((f"{n!r}: ", e, "") for n, e in zip(names, items, strict=True)), "}")
        return _Call("Chain(", (("", mapping, ""), *((f"{k}=", repr(v), "") for k, v in options.items())), ")")

    def _module(self, rel: str, spec: ModuleSpec) -> _Expr:
        if spec.cls == "Parameter":  # a layer scale: its block's own parameter
            init = self.slot(rel, "init", self.values(rel, "init"))
            return f"nn.Parameter(torch.full(({self.channels.inputs[rel]},), {init}))"
        if spec.cls == "Chain":
            names = [n for n, _ in spec.children]
            items = [self._layer(f"{rel}.{n}", child) for n, child in spec.children]
            return self._chain(names, items, spec.kwargs)
        return self._layer(rel, spec)

    def _layer(self, rel: str, spec: ModuleSpec) -> _Expr:
        """``nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)``: the arguments torch requires by
        position, the others by name where they are not torch's default."""
        sig = _signature(spec.cls).parameters
        items = []
        for kwarg in spec.kwargs:
            values = self.values(rel, kwarg)
            if kwarg in ("in_channels", "num_features") and rel in self.channels.inputs:
                source = self.channels.inputs[rel]
            elif kwarg in ("out_channels", "out_features") and rel in self.channels.outputs:
                source = self.channels.outputs[rel]
            elif all(_norm(v) == sig[kwarg].default for v in values):
                continue
            else:
                source = self.slot(rel, kwarg, values)
            positional = sig[kwarg].default is inspect.Parameter.empty
            items.append(("" if positional else f"{kwarg}=", source, ""))
        return _Call(f"{spec.cls}(", tuple(items), ")")

    def _block_call(self, rel: str, cls: str) -> _Call:
        """``Inception(192, 64, 96, 128, 16, 32, 32)``; an argument with a default only where it differs."""
        sig = self.signatures[cls]
        paths = [_join(b, rel) for b in self.bases]
        items = []
        for i, (name, values) in enumerate(sig.positional):
            if i == 0 and name == "in_channels" and rel in self.channels.inputs:
                items.append(("", self.channels.inputs[rel], ""))
            else:
                items.append(("", self.slot(rel, name, tuple(values[p] for p in paths)), ""))
        for name, default, values in sig.keyword:
            mine = tuple(values[p] for p in paths)
            if any(v != default for v in mine):
                items.append((f"{name}=", self.slot(rel, name, mine), ""))
        return _Call(f"{cls}(", tuple(items), ")")


def _tree(p: Plan) -> dict[str, list[str]]:
    """Each scope's children (layers and containers) in the order they are built: a container
    just before its first layer, so each holds its children in execution order."""
    children: dict[str, list[str]] = {}
    placed: set[str] = set()

    def place(path: str) -> None:
        if path in placed:
            return
        parent = path.rpartition(".")[0]
        if parent:
            assert parent in p.containers, f"{path}: its parent is not a container"
            place(parent)
        children.setdefault(parent, []).append(path)
        placed.add(path)

    for path in p.modules:
        place(path)
    return children


# --- forward -------------------------------------------------------------------------------


def _statement(
    step: Step, names: _Names, containers: dict[str, str], scope: str = "", residual: dict[str, str] | None = None,
    slices: dict[str, tuple[str, str]] | None = None,
) -> str:  # fmt: skip
    """``value = expr`` for one step; module paths are relative to the class, values named
    relative to its ``scope``; ``residual`` gives a residual's scale and activation as source,
    ``slices`` a split part's channels."""
    args = [names[i] for i in step.inputs]
    if step.kind == "cat":
        expr = f"torch.cat([{', '.join(args)}], 1)"
    elif step.kind == "add":
        how = residual.get(step.name) if residual else None
        drop = f", drop_path={step.drop_path!r}, training=self.training" if step.drop_path else ""
        expr = f"residual({args[0]}, {args[1]}, {how or f'scale={step.scale!r}, relu={step.act is not None}{drop}'})"
    elif step.kind == "slice":
        start, stop = (slices or {}).get(step.name, step.channels)
        expr = f"{args[0]}[:, {start}:{stop}]"
    elif step.kind == "scale":
        expr = f"layer_scale({args[0]}, {_access(step.modules[0], containers)})"
    else:
        expr = f"torch.flatten({args[0]}, 1)" if step.flatten else args[0]
        for module in step.modules:
            expr = f"{_access(module, containers)}({expr})"
        if step.act is not None:
            expr = _activation_call(step.act, expr)
    hint = step.modules[0] if step.kind == "call" else _relative(step.name, scope).replace(":", "_")
    return f"{names.give(step.name, hint)} = {expr}"


def _activation_call(act: Activation, expr: str) -> str:
    """``F.gelu(expr)``, ``F.gelu(expr, approximate='tanh')``: the activation as generated code calls it."""
    form = FORMS[act]
    return f"F.{form.function}({', '.join([expr, *(f'{k}={v!r}' for k, v in form.kwargs)])})"


def _runtime_source() -> tuple[str, str]:
    """The runtime's imports and the rest of it (its docstring left out), as it is written: the
    generated file binds exactly the names :data:`~.lower.RUNTIME_NAMES` lists."""
    source = inspect.getsource(runtime)
    tree = pyast.parse(source)
    imports = [n for n in tree.body if isinstance(n, (pyast.Import, pyast.ImportFrom))]
    body = [n for n in tree.body if not isinstance(n, (pyast.Import, pyast.ImportFrom, pyast.Expr))]

    lines = source.splitlines()
    import_lines = "\n".join(lines[imports[0].lineno - 1 : imports[-1].end_lineno])
    return import_lines, "\n\n\n".join(pyast.get_source_segment(source, node) or "" for node in body)


def _docstring(text: str, items: list[str], tail: str, indent: str = "    ") -> str:
    """``text (a, b, …)tail`` as a one-line docstring, with as many items as fit in :data:`LINE`."""
    shown = list(items)
    while True:
        listed = ", ".join(shown) + (", …" if len(shown) < len(items) else "")
        line = f'{indent}"""{text} ({listed}){tail}"""'
        if len(line) <= LINE or len(shown) <= 1:
            return line
        shown.pop()


def _block_class(
    cls: str, p: Plan, net: ir.Network, tree: dict[str, list[str]], signatures: dict[str, _Signature],
    taken: frozenset[str],
) -> list[str]:  # fmt: skip
    """The class of one block definition; its signature goes into ``signatures`` for its callers."""
    instances = [path for path, u in p.units.items() if u.cls == cls]
    unit = p.units[instances[0]]
    children = {c.rpartition(".")[2] for c in tree.get(unit.path, [])}
    params = _Names("", taken | children | set(dir(nn.Module)) | {"in_channels"})
    columns = _table_columns(net, [p.units[i] for i in instances])
    builder = _Builder(p, net, tree, signatures, instances, params, columns)
    builder.run_widths(unit, "in_channels")
    init = builder.statements()

    residual: dict[str, str] = {}
    keyword: list[tuple[str, Any, dict[str, Any]]] = []
    attributes: list[str] = []
    adds = [s for s in unit.steps if s.kind == "add"]
    for step in adds:
        index = unit.steps.index(step)
        steps = [p.units[i].steps[index] for i in instances]
        prefix = f"{_relative(step.name, unit.path).partition(':')[0]}_" if len(adds) > 1 else ""
        scale = params.give(f"scale:{step.name}", f"{prefix}scale")
        relu = params.give(f"relu:{step.name}", f"{prefix}relu")
        keyword += [
            (scale, steps[0].scale, {i: s.scale for i, s in zip(instances, steps, strict=True)}),
            (relu, steps[0].act is not None, {i: s.act is not None for i, s in zip(instances, steps, strict=True)}),
        ]
        attributes += [f"        self.{scale} = {scale}", f"        self.{relu} = {relu}"]
        residual[step.name] = f"self.{scale}, self.{relu}"
        if any(s.drop_path for s in steps):  # only then: a block without stochastic depth keeps its signature
            drop = params.give(f"drop_path:{step.name}", f"{prefix}drop_path")
            keyword.append((drop, 0.0, {i: s.drop_path for i, s in zip(instances, steps, strict=True)}))
            attributes.append(f"        self.{drop} = {drop}")
            residual[step.name] += f", self.{drop}, self.training"
    slices: dict[str, tuple[str, str]] = {}
    for step in (s for s in unit.steps if s.kind == "slice"):
        hint = _relative(step.name, unit.path).replace(":", "_").replace(".", "_")
        bounds = []
        for end, what in enumerate(("start", "stop")):
            source = builder.slot(hint, what, builder.across(step.name, lambda n, e=end: (n.attrs.start, n.attrs.stop)[e]))
            if not source.isdigit() and f"        self.{source} = {source}" not in attributes:
                attributes.append(f"        self.{source} = {source}")
            bounds.append(source if source.isdigit() else f"self.{source}")
        slices[step.name] = (bounds[0], bounds[1])

    widths = {i: builder.width(p.units[i].input) for i in instances}
    # a block that sizes nothing by its input (a split's parts are its own arguments) does not take it
    reads_input = any(re.search(r"\bin_channels\b", line) for line in init)
    positional = [("in_channels", widths)] * reads_input + [
        (name, dict(zip(instances, values, strict=True))) for name, values in builder.slots.ordered()
    ]
    signatures[cls] = _Signature(tuple(positional), tuple(keyword))
    args = ["self", *(f"{name}: {_annotation(next(iter(values.values())))}" for name, values in positional)]
    args += [f"{name}: {type(default).__name__} = {default!r}" for name, default, _ in keyword]

    names = _Names(unit.input, taken)
    containers = {_relative(k, unit.path): v for k, v in p.containers.items() if k.startswith(unit.path + ".")}
    containers[""] = cls
    body = [f"        {_statement(s, names, containers, unit.path, residual, slices)}" for s in unit.steps]
    signature = _Call("def __init__(", tuple(("", a, "") for a in args), ") -> None:")
    return [
        "",
        "",
        f"class {cls}(nn.Module):",
        _docstring(f"Block `{p.block_classes[cls]}` of the spec", instances, "."),
        "",
        *_lines(signature, "    ", "    "),
        "        super().__init__()",
        *attributes,
        *init,
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        *body,
        f"        return {names[unit.output]}",
    ]


def _annotation(value: Any) -> str:
    """``int``, or ``tuple[int, int]`` for a pair (a kernel size that differs between instances)."""
    if isinstance(value, tuple):
        return f"tuple[{', '.join(type(v).__name__ for v in value)}]"
    return type(value).__name__


def generate(net: ir.Network, footer: Callable[[str], str] | None = None) -> str:
    """The Python source of a module equivalent to ``lower(net)``; ``footer(cls)`` (the network's
    class name) is code to append, whose names the spec's names keep clear of, as of the runtime's."""
    cls, tail = _network_class(net.name, footer)
    reserved = bound_names(tail) if tail else frozenset()
    p = plan(net, cls, reserved)
    # every name bound at the top of the file: the runtime's, the footer's and the classes
    taken = RUNTIME_NAMES | reserved | {cls, *p.block_classes}
    imports, helpers = _runtime_source()
    c, h, w = net.input_shape
    returns = "a dict of the named features" if p.features else "the logits"
    out: list[str] = [
        f'"""{net.name}: generated by incdsl {__version__}.',
        "",
        f"Input {c}x{h}x{w}. Eval mode returns {returns}" + (";" if p.aux else "."),
        *(["training mode returns TrainOutput(logits, aux) with the aux heads' loss weights."] if p.aux else []),
        "Regenerate with `incdsl compile SPEC -o FILE.py` rather than editing by hand.",
        '"""',
        "",
        imports,
        "",
        "",
        helpers,
    ]
    tree = _tree(p)
    signatures: dict[str, _Signature] = {}
    for block_cls in p.block_classes:  # inner blocks' classes come first: their callers need their signatures
        out += _block_class(block_cls, p, net, tree, signatures, taken)
    builder = _Builder(p, net, tree, signatures, [""], _Names("", taken))
    builder.channels.inputs.update(_network_inputs(p, net))
    containers = {"": cls, **p.containers}
    names = _Names("input", taken)
    out += [
        "",
        "",
        f"class {cls}(nn.Module):",
        f'    """{net.name}, input {c}x{h}x{w}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *builder.statements(),
        "",
        "    def forward(self, x: torch.Tensor):",
        *[f"        {_statement(s, names, containers)}" for s in p.steps],
    ]
    if p.features:
        items = ", ".join(f"{name!r}: {names[node]}" for name, node in p.features)
        out.append(f"        return {{{items}}}")
    elif p.aux:
        out += [
            "        if not self.training:",
            f"            return {names[p.logits]}",
            *[f"        {_statement(s, names, containers)}" for s in p.aux_steps],
            "        return TrainOutput(",
            f"            {names[p.logits]},",
            "            (",
            *[f"                AuxOutput({name!r}, {names[logits]}, {weight!r})," for name, logits, weight in p.aux],
            "            ),",
            "        )",
        ]
    else:
        out.append(f"        return {names[p.logits]}")
    return "\n".join(out) + "\n" + tail


def _network_inputs(p: Plan, net: ir.Network) -> dict[str, str]:
    """The input width of each block instance the network builds: a number, as every width there is."""
    widths = {}
    for path, unit in p.units.items():
        if unit.block is None:
            continue
        shape = net.node(unit.input).shape
        assert shape is not None
        widths[path] = repr(shape[0])
    return widths


def _network_class(name: str, footer: Callable[[str], str] | None) -> tuple[str, str]:
    """The network's class name, clear of the runtime's names and of the footer's (which may
    name its own class after the network's: the Triton module's ``GooglenetTriton``), and the footer."""
    reserved: frozenset[str] = frozenset()
    while True:
        cls = network_class(name, reserved)
        tail = footer(cls) if footer else ""
        names = bound_names(tail) if tail else frozenset()
        if cls not in names:
            return cls, tail
        reserved |= {cls}
