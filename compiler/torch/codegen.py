"""IR → readable Python source defining the network as ``nn.Module`` classes: a class per
block definition with its ``forward`` (as timm writes a class per paper block), and the
network's class that builds the modules and wires the blocks.

The source needs only torch: the runtime helpers are copied in. It is built
from the same :func:`~incdsl.compiler.torch.lower.plan` as the in-memory
module, and every name in it comes from validated spec identifiers, node
names or numbers; module names that are not identifiers (``"1x1"``) appear
only as string literals written with ``repr``; no spec text is pasted in.
"""

from __future__ import annotations

import ast as pyast
import builtins
import inspect
import keyword
import re
import unicodedata
from collections.abc import Callable

from incdsl import __version__, ir

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
    network_class,
    plan,
)

__all__ = ["class_name", "generate"]

#: Containers that reach a child by name with ``[...]``.
_INDEXABLE = ("Group", "Chain")


def _module_expr(spec: ModuleSpec) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
    if spec.cls == "Chain":
        children = ", ".join(f"{name!r}: {_module_expr(child)}" for name, child in spec.children)
        return f"Chain({{{children}}}{', ' + args if args else ''})"
    return f"{spec.cls}({args})"


def _identifier(name: str) -> bool:
    """Whether ``self.name`` in source is the attribute ``name``: Python folds identifiers to NFKC
    (``self.ｃonv1`` is ``self.conv1``), so a name that is not in that form is spelled as a string."""
    return name.isidentifier() and not keyword.iskeyword(name) and unicodedata.normalize("NFKC", name) == name


def _access(path: str, containers: dict[str, str], base: str = "") -> str:
    """``inception_3a.branch2.1`` → ``self.inception_3a.branch2[1]`` (paths relative to ``base``)."""
    out = "self"
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

    def __init__(self, source: str, taken: frozenset[str]) -> None:
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


def _statement(step: Step, names: _Names, containers: dict[str, str], scope: str = "") -> str:
    """``value = expr`` for one step; module paths are relative to the class, values named
    relative to its ``scope``."""
    args = [names[i] for i in step.inputs]
    if step.kind == "cat":
        expr = f"torch.cat([{', '.join(args)}], 1)"
    elif step.kind == "add":
        expr = f"residual({args[0]}, {args[1]}, scale={step.scale!r}, relu={step.relu})"
    else:
        expr = f"torch.flatten({args[0]}, 1)" if step.flatten else args[0]
        for module in step.modules:
            expr = f"{_access(module, containers)}({expr})"
        if step.relu:
            expr = f"F.relu({expr})"
    hint = step.modules[0] if step.kind == "call" else _relative(step.name, scope).replace(":", "_")
    return f"{names.give(step.name, hint)} = {expr}"


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


def _container_expr(path: str, cls: str, p: Plan) -> str:
    if cls == "Chain":
        options = chain_options(p.units[path])
        return f"Chain({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    return f"{cls}()"


def _init_lines(p: Plan) -> list[str]:
    lines = []
    pending = dict(p.containers)
    for path, spec in p.modules.items():
        for scope in [s for s in pending if path.startswith(s + ".")]:
            lines.append(_attach(scope, _container_expr(scope, pending.pop(scope), p), p.containers))
        lines.append(_attach(path, _module_expr(spec), p.containers))
    return lines


def _attach(path: str, expr: str, containers: dict[str, str]) -> str:
    parent, _, leaf = path.rpartition(".")
    owner = _access(parent, containers)
    if _identifier(leaf):
        return f"{owner}.{leaf} = {expr}"
    return f"{owner}.add_module({leaf!r}, {expr})"


def _block_class(cls: str, unit: Unit, p: Plan, instances: list[str], taken: frozenset[str]) -> list[str]:
    names = _Names(unit.input, taken)
    containers = {_relative(k, unit.path): v for k, v in p.containers.items() if k.startswith(unit.path + ".")}
    containers[""] = cls
    body = [f"        {_statement(s, names, containers, unit.path)}" for s in unit.steps]
    shown = ", ".join(instances[:6]) + (", …" if len(instances) > 6 else "")
    return [
        "",
        "",
        f"class {cls}(nn.Module):",
        f'    """Block `{p.block_classes[cls]}` ({shown}); the network gives each instance its layers."""',
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        *body,
        f"        return {names[unit.output]}",
    ]


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
        f"Input {c}x{h}x{w}. Eval mode returns {returns}"
        + ("; training mode returns TrainOutput(logits, aux) with the aux heads' loss weights." if p.aux else "."),
        "Regenerate with `incdsl compile SPEC -o FILE.py` rather than editing by hand.",
        '"""',
        "",
        imports,
        "",
        "",
        helpers,
    ]
    for block_cls in p.block_classes:
        instances = [path for path, u in p.units.items() if u.cls == block_cls]
        out += _block_class(block_cls, p.units[instances[0]], p, instances, taken)
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
        *[f"        {line}" for line in _init_lines(p)],
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

