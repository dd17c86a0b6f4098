"""Networks as pictures: Graphviz DOT source, and its rendering to SVG, PNG or PDF.

Three views, all drawn top to bottom with each edge labelled by the output
shape of its source (H×W×C, as the params table prints it):

* ``depth="module"``: the whole network, each module (a block instance, or all
  copies of a repeated block) collapsed to one box, the auxiliary heads as side
  branches in dashed frames — the paper's Figure 3 with the modules folded;
* ``depth="layer"``: the whole network layer by layer, each module a frame;
* ``module="3a"``: one module layer by layer — its input, its branches with
  kernel sizes and channel counts, the concat — like the paper's Figure 2(b).

Building DOT source needs nothing beyond incdsl; :func:`render` needs the
``graphviz`` Python package and Graphviz's ``dot`` program.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import ir
from .cost import Cost, node_costs
from .operations import operation
from .params_table import format_shape, format_si

DEPTHS = ("module", "layer")
#: Formats ``dot`` renders; ``dot`` itself means the DOT source.
RENDERED = ("svg", "png", "pdf")

INSTALL_DOT = (
    "Graphviz's `dot` program is not installed: install it with `apt-get install graphviz` (Debian, Ubuntu), "
    "`brew install graphviz` (macOS) or `conda install graphviz`; writing `-o FILE.dot` needs nothing"
)
INSTALL_BINDING = (
    "rendering needs the graphviz Python package: pip install 'incdsl[draw]' "
    "(writing `-o FILE.dot` needs nothing)"
)

_MODULE_FILL = "#b6d7a8"
_MAIN_WEIGHT = 10


class DrawUnavailable(RuntimeError):
    """A picture cannot be rendered here; the message says what to install."""


class UnknownModule(LookupError):
    """``--module`` names no module of the network; the message lists those it has."""


@dataclass(frozen=True)
class Module:
    """One instance of a block on the main path (one copy, for a repeated block)."""

    scope: str
    title: str
    label: str | None
    row: int
    nodes: tuple[ir.Node, ...]


# --- what to draw ------------------------------------------------------------


def modules(net: ir.Network) -> list[Module]:
    """The block instances of the main path, in order.

    >>> from incdsl import load
    >>> [m.scope for m in modules(load("googlenet"))][:3]
    ['inception_3a', 'inception_3b', 'inception_4a']
    """
    groups: dict[tuple[int, int | None], list[ir.Node]] = {}
    for node in net.main_nodes():
        if node.row is not None and net.rows[node.row].kind in ("block", "repeat"):
            groups.setdefault((node.row, node.repeat_index), []).append(node)
    found = []
    for (row_index, copy), nodes in groups.items():
        row = net.rows[row_index]
        scope = ir.common_scope(n.name for n in nodes) or f"{row.block}[{copy}]"
        title = f"{row.block} ({row.label})" if row.label else f"{row.block} ({scope})"
        found.append(Module(scope, title, row.label, row_index, tuple(nodes)))
    return found


def find_module(net: ir.Network, key: str) -> Module:
    """The module a table row label (``3a``) or a module name (``inception_3a``) selects."""
    found = modules(net)
    for module in found:
        if key in (module.scope, module.label):
            return module
    names = ", ".join(m.label or m.scope for m in found) or "none"
    raise UnknownModule(f"{net.name} has no module `{key}`; its modules: {names}")


# --- DOT ---------------------------------------------------------------------


class _Html(str):
    """A Graphviz HTML-like label, written between ``<`` and ``>`` instead of quotes."""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value(value: object) -> str:
    if isinstance(value, _Html):
        return f"<{value}>"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _attrs(attrs: dict[str, object]) -> str:
    shown = " ".join(f"{k}={_value(v)}" for k, v in attrs.items() if v is not None)
    return f" [{shown}]" if shown else ""


#: What a box stands for: ``("layer", node name)``, ``("module", scope, index)`` or ``("io", text)``;
#: the second element is the id it would like.
Key = tuple[str, ...]


class _Dot:
    """DOT statements; every box is named by a :data:`Key` and gets an id no other box has."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.indent = 1
        self._ids: dict[Key, str] = {}
        self._taken: set[str] = set()

    def id(self, key: Key) -> str:
        """The box's DOT id: the name it stands for, or that name numbered when another box has it
        (a repeated block's copies, a layer called ``output``) — two boxes never share one."""
        if key not in self._ids:
            base = key[1] or key[0]
            name, n = base, 1
            while name in self._taken:
                n += 1
                name = f"{base}#{n}"
            self._taken.add(name)
            self._ids[key] = name
        return self._ids[key]

    def add(self, statement: str) -> None:
        self.lines.append("  " * self.indent + statement)

    def node(self, key: Key, **attrs: object) -> None:
        self.add(f"{_value(self.id(key))}{_attrs(attrs)}")

    def edge(self, tail: Key, head: Key, **attrs: object) -> None:
        self.add(f"{_value(self.id(tail))} -> {_value(self.id(head))}{_attrs(attrs)}")

    @contextmanager
    def cluster(self, name: str, **attrs: object) -> Iterator[None]:
        self.add(f"subgraph {_value('cluster_' + name)} {{")
        self.indent += 1
        for key, value in attrs.items():
            self.add(f"{key}={_value(value)}")
        yield
        self.indent -= 1
        self.add("}")

    def source(self, title: str) -> str:
        header = [
            "digraph incdsl {",
            "  graph [rankdir=TB fontname=Helvetica fontsize=14 labelloc=t nodesep=0.3 ranksep=0.25 "
            f"label={_value(_Html(f'<b>{_escape(title)}</b>'))}]",
            '  node [shape=box style="rounded,filled" fontname=Helvetica fontsize=11 '
            'margin="0.14,0.04" height=0.3 color="#666666"]',
            '  edge [fontname=Helvetica fontsize=9 fontcolor="#555555" color="#444444" arrowsize=0.6]',
        ]
        return "\n".join([*header, *self.lines, "}"]) + "\n"


def _two_lines(first: str, second: str, bold: bool = False) -> _Html:
    head = f"<b>{_escape(first)}</b>" if bold else _escape(first)
    if not second:
        return _Html(head)
    return _Html(f'{head}<br/><font point-size="9" color="#555555">{_escape(second)}</font>')


def describe(node: ir.Node) -> str:
    """A layer as a figure labels it, in the spec's own words.

    >>> from incdsl import load
    >>> describe(load("googlenet").node("inception_3a.branch2.1"))
    'conv 3×3, 128'
    """
    return operation(node.op).picture_label(node.attrs)


def _layer(dot: _Dot, node: ir.Node, local: str | None = None, **attrs: object) -> None:
    name = local if local is not None else node.name
    notes = operation(node.op).notes(node.attrs)
    second = " · ".join([name, *notes]) if name and ":" not in name else " · ".join(notes)
    dot.node(
        ("layer", node.name), label=_two_lines(describe(node), second), fillcolor=operation(node.op).fill, **attrs
    )


class _Drawing:
    """DOT under construction for one network.

    ``owner`` maps a node to the box that stands for it (its module, when
    modules are collapsed). An edge carries the shape of what flows along it;
    where one value fans out to several consumers, only the first edge says it.
    """

    def __init__(self, net: ir.Network, owner: dict[str, Key] | None = None) -> None:
        self.net = net
        self.dot = _Dot()
        self.owner = owner or {}
        self.labelled: set[str] = set()
        self.drawn: set[tuple[Key, Key]] = set()

    def box(self, name: str) -> Key:
        return self.owner.get(name, ("layer", name))

    def io(self, key: Key, text: str) -> None:
        self.dot.node(key, label=text, shape="plaintext", style="", fontcolor="#333333")

    def edge(self, source: str, head: Key, *, aux: bool = False) -> None:
        """An edge from the box of ``source`` to ``head``, labelled with ``source``'s shape."""
        tail = self.box(source)
        if tail == head or (tail, head) in self.drawn:
            return
        self.drawn.add((tail, head))
        shape = self.net.node(source).shape
        label = f" {format_shape(shape)}" if shape and (aux or source not in self.labelled) else None
        self.labelled.add(source)
        if aux:
            self.dot.edge(tail, head, label=label, color="#888888", style="dashed")
        else:
            self.dot.edge(tail, head, label=label, weight=_MAIN_WEIGHT)

    def first_rank(self, nodes: Iterable[ir.Node]) -> None:
        """Put the first layer of every branch of a module side by side, as Figure 2(b) does."""
        inside = {n.name for n in nodes}
        heads = [n.name for n in nodes if n.inputs and not inside.intersection(n.inputs)]
        if len(heads) > 1:
            self.dot.add("{rank=same; " + " ".join(_value(self.dot.id(("layer", h))) for h in heads) + "}")

    def aux_heads(self) -> None:
        """Each auxiliary head as a dashed frame beside the main path."""
        for head in self.net.aux:
            nodes = self.net.aux_nodes(head)
            frame = {
                "label": f"{head.name} · loss weight {head.weight:g}",
                "style": "dashed,rounded",
                "color": "#888888",
                "fontsize": 11,
            }
            with self.dot.cluster(head.name, **frame):
                for node in nodes:
                    _layer(self.dot, node, node.name.removeprefix(f"{head.name}."))
            for node in nodes:
                for src in node.inputs:
                    self.edge(src, ("layer", node.name), aux=True)


def _whole(net: ir.Network, depth: str) -> _Dot:
    found = _merge_repeats(modules(net)) if depth == "module" else modules(net)
    keys = {id(m): ("module", m.scope, str(i)) for i, m in enumerate(found)}
    owner = {n.name: keys[id(m)] for m in found for n in m.nodes}
    drawing = _Drawing(net, {**(owner if depth == "module" else {}), "input": ("io", "input")})
    dot = drawing.dot
    dot.add("ordering=out")
    drawing.io(("io", "input"), "input")
    costs = node_costs(net)
    for node in net.main_nodes():
        if node.op != "input" and node.name not in owner:
            _layer(dot, node, group="main")
    for module in found:
        if depth == "module":
            cost = sum((costs[n.name] for n in module.nodes), Cost())
            dot.node(
                keys[id(module)],
                label=_module_label(module, cost),
                fillcolor=_MODULE_FILL,
                penwidth=1.4,
                group="main",
            )
            continue
        with dot.cluster(dot.id(keys[id(module)]), label=module.title, style="rounded", color="#6aa84f", fontsize=11):
            for node in module.nodes:
                _layer(dot, node, node.name.removeprefix(module.scope + "."))
            drawing.first_rank(module.nodes)
    for node in net.main_nodes():
        for src in node.inputs:
            drawing.edge(src, drawing.box(node.name))
    drawing.io(("io", "output"), "output")
    drawing.edge(net.output, ("io", "output"))
    drawing.aux_heads()
    return dot


def _merge_repeats(found: list[Module]) -> list[Module]:
    """All copies of a repeated block as one module (the paper's "4 × Inception-A")."""
    by_row: dict[int, list[Module]] = {}
    for module in found:
        by_row.setdefault(module.row, []).append(module)
    merged = []
    for copies in by_row.values():
        if len(copies) == 1:
            merged.append(copies[0])
            continue
        nodes = tuple(n for m in copies for n in m.nodes)
        block = copies[0].title.partition(" (")[0]
        # the copies' own scope when they have one to themselves (`repeat`), else their range
        scope = ir.common_scope(n.name for n in nodes)
        if not scope or any(not n.name.startswith(scope + ".") for n in nodes) or scope in _scopes_of_others(found, copies):
            scope = f"{copies[0].scope}…{copies[-1].scope}"
        merged.append(Module(scope, f"{len(copies)} × {block}", None, copies[0].row, nodes))
    return merged


def _scopes_of_others(found: list[Module], copies: list[Module]) -> set[str]:
    """The scopes of the modules that are not among ``copies``, and every scope above them."""
    out: set[str] = set()
    for module in found:
        if module not in copies:
            parts = module.scope.split(".")
            out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def _module_label(module: Module, cost: Cost) -> _Html:
    detail = f"{format_si(cost.params)} params · {format_si(cost.macs)} MACs"
    if module.scope not in module.title:
        detail = f"{module.scope} · {detail}"
    return _two_lines(module.title, detail, bold=True)


def _one_module(net: ir.Network, module: Module) -> _Dot:
    """The module's layers, what feeds it ("previous layer") and what reads it ("next")."""
    others = [m for m in modules(net) if m.scope != module.scope]
    outside: dict[str, Key] = {n.name: ("io", m.scope) for m in others for n in m.nodes}
    outside.update((n.name, ("io", head.name)) for head in net.aux for n in net.aux_nodes(head))
    inside = {n.name for n in module.nodes}
    for node in net.nodes:  # any other layer it touches is a plain box outside the module
        if node.name not in inside and node.name not in outside:
            outside[node.name] = ("io", node.name)
    drawing = _Drawing(net, outside)
    dot = drawing.dot
    dot.add("ordering=out")
    for node in module.nodes:
        _layer(dot, node, node.name.removeprefix(module.scope + "."))
    drawing.first_rank(module.nodes)
    shown: set[Key] = set()
    for node in module.nodes:
        for src in node.inputs:
            if src not in inside and drawing.box(src) not in shown:
                shown.add(drawing.box(src))
                drawing.io(drawing.box(src), f"previous layer: {drawing.box(src)[1]}")
            drawing.edge(src, ("layer", node.name))
    for node in module.nodes:
        for consumer in net.consumers(node.name):
            if consumer not in inside:
                box = drawing.box(consumer)
                if box not in shown:
                    shown.add(box)
                    drawing.io(box, f"next: {box[1]}")
                drawing.edge(node.name, box)
    return dot


def to_dot(net: ir.Network, depth: str = "module", module: str | None = None) -> str:
    """DOT source for the whole network (collapsed or layer by layer) or for one module.

    >>> from incdsl import load
    >>> source = to_dot(load("googlenet"), module="3a")
    >>> "conv 5×5, 32" in source and source.startswith("digraph")
    True
    """
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, not {depth!r}")
    if module is not None:
        chosen = find_module(net, module)
        return _one_module(net, chosen).source(f"{net.name} · {chosen.title}")
    c, h, w = net.input_shape
    return _whole(net, depth).source(f"{net.name} · input {c}×{h}×{w}")


def render(source: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot`` on DOT source; ``fmt`` is one of :data:`RENDERED`.

    Raises :class:`DrawUnavailable` when the binding or the program is missing.
    """
    if fmt not in RENDERED:
        raise ValueError(f"format must be one of {', '.join(RENDERED)}, not {fmt!r}")
    try:
        import graphviz
    except ImportError:
        raise DrawUnavailable(INSTALL_BINDING) from None
    try:
        return graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DrawUnavailable(INSTALL_DOT) from None
