"""Syntax tree → graph IR: blocks instantiated, tables expanded, names given.

The one entry point is :func:`elaborate`. It resolves includes through a
callback (so this module does no I/O of its own), expands block calls, table
rows and repetitions, applies the network's defaults, and names every layer.

Naming rules (they decide whether a reference ``state_dict`` loads):

* an explicit ``as name`` puts the layer in the nearest *named* scope (the
  network, a block instance, an aux head, a ``seq NAME:`` or a named repeat);
* otherwise a layer in a named scope is called after its type and a running
  count (``conv1``, ``maxpool2``), and one in an *indexed* scope (a ``seq``,
  a multi-layer branch) after its position (``0``, ``1``, ...);
* the branches of a ``concat`` are ``branch1``, ``branch2``, ... (``base=0``
  counts from 0); a one-layer branch is that layer, a longer one is an indexed
  scope; ``concat`` and ``residual`` add no scope of their own.
"""

from __future__ import annotations

import keyword
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import ast, ir, limits
from .errors import Span, SpecError, closest, did_you_mean
from .layers import (
    CONTAINER_FLAGS,
    CONTAINER_OPTIONS,
    LAYER_TYPES,
    Setting,
    Symbol,
    apply_settings,
    as_float,
    as_int,
    build_attrs,
    fill_positional,
)

#: Statements that only make sense at the top level of a network spec.
TOP_LEVEL = ("network", "input", "defaults", "include", "aux", "table")
CONTAINERS = ("concat", "seq", "residual")
KEYWORDS = (*TOP_LEVEL, *CONTAINERS, "block")

#: Attributes of torch.nn.Module that a layer name must not shadow
#: (tests/test_names.py keeps this list equal to the public names of ``dir(torch.nn.Module())``).
RESERVED_NAMES = frozenset(
    ["T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad"]
)

IncludeResolver = Callable[[str, Span], ast.SpecFile]


def elaborate(spec: ast.SpecFile, resolve_include: IncludeResolver, input_shape: ir.Shape | None = None) -> ir.Network:
    """Build the graph IR (without shapes) from a parsed spec.

    ``resolve_include(path, span)`` returns the parsed file an ``include``
    statement names, or raises :class:`SpecError`.
    """
    return _Elaborator(resolve_include).run(spec, input_shape)


def parse_input_shape(dims: ast.Dims | None, text: str, span: Span) -> ir.Shape:
    """``3x224x224`` → (3, 224, 224), with a clear error for anything else."""
    ok = dims is not None and len(dims.sizes) == 3 and dims.stride is None and min(dims.sizes) >= 1
    if not ok:
        raise SpecError(
            f"malformed input `{text}`: expected channels×height×width",
            span,
            hint="write e.g. `input 3x224x224` (three positive sizes joined by `x`)",
        )
    assert dims is not None
    c, h, w = dims.sizes
    if c > limits.MAX_CHANNELS or max(h, w) > limits.MAX_SPATIAL:
        raise SpecError(
            f"input `{text}` is too large: at most {limits.MAX_CHANNELS:,} channels and "
            f"{limits.MAX_SPATIAL:,} pixels a side",
            span,
        )
    return (c, h, w)


def check_identifier(name: str, span: Span, what: str = "layer name") -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise SpecError(
            f"{what} `{name}` is not a valid Python identifier",
            span,
            hint="module names become Python attributes: use letters, digits and `_`, not starting "
            "with a digit or `_`, and not a Python keyword",
        )
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{what} `{name}` would shadow the torch.nn.Module attribute of that name",
            span,
            hint=f"choose another name, e.g. `{name}_`" if not name.endswith("_") else "choose another name",
        )


# --- scopes and names ----------------------------------------------------------


@dataclass
class _Scope:
    path: str
    indexed: bool = False
    #: Where explicit names go when this scope is an automatic one.
    home: _Scope | None = None
    counters: dict[str, int] = field(default_factory=dict)
    next_index: int = 0

    def full(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    @property
    def named(self) -> _Scope:
        return self.home.named if self.home else self

    def count(self, base: str) -> int:
        self.counters[base] = self.counters.get(base, 0) + 1
        return self.counters[base]


@dataclass
class _Block:
    definition: ast.BlockDef
    source: str


@dataclass
class _ParamTable:
    """``table NAME col...`` with rows: named argument sets for a block."""

    name: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, Any]]
    span: Span


def _rename_of(terms: Sequence[ast.Term]) -> ast.Rename | None:
    renames = [t for t in terms if isinstance(t, ast.Rename)]
    if len(renames) > 1:
        raise SpecError("a layer can have only one `as` name", renames[1].span)
    return renames[0] if renames else None


def _without(item: ast.Item, kinds: tuple[type, ...]) -> ast.Item:
    return item.model_copy(update={"terms": tuple(t for t in item.terms if not isinstance(t, kinds))})


class _Elaborator:
    def __init__(self, resolve_include: IncludeResolver) -> None:
        self.resolve_include = resolve_include
        self.blocks: dict[str, _Block] = {}
        self.param_tables: dict[str, _ParamTable] = {}
        self.defaults: dict[str, tuple[ast.Term, ...]] = {}
        self.nodes: list[ir.Node] = []
        self.names: dict[str, Span] = {}
        self.outputs: dict[str, str] = {}
        self.row_labels: dict[str, str] = {}
        self.rows: list[ir.Row] = []
        self.tables: list[ir.TableHeader] = []
        self.last_header: dict[str, tuple[int, str]] = {}
        self._paper_columns: dict[str, list[str]] = {}
        self.call_stack: list[str] = []
        self.row: int | None = None
        self.repeat_index: int | None = None
        self.origin: Span | None = None

    # --- top level ---------------------------------------------------------

    def run(self, spec: ast.SpecFile, input_override: ir.Shape | None) -> ir.Network:
        name: str | None = None
        input_shape: ir.Shape | None = None
        main: list[ast.Stmt] = []
        aux: list[ast.Stmt] = []
        if not spec.stmts:
            raise SpecError(
                "this spec is empty",
                Span(spec.path, 1, 1),
                hint="a spec needs at least `input CxHxW` and one layer, e.g. `input 3x32x32` then `conv 3x3 16`",
            )
        self._collect(spec, [spec.path])
        for stmt in spec.stmts:
            if isinstance(stmt, ast.BlockDef):
                continue
            head = stmt.links[0]
            if isinstance(head, ast.Item) and head.head in TOP_LEVEL:
                if head.head == "network":
                    name = self._network_name(head)
                elif head.head == "input":
                    input_shape = self._input(head)
                elif head.head == "aux":
                    aux.append(stmt)
                continue
            main.append(stmt)
        if not main:
            raise SpecError(
                "this spec defines no layers",
                Span(spec.path, 1, 1),
                hint="a block library is meant to be included from a network spec (`include \"file.inc\"`)",
            )
        if input_shape is None and input_override is None:
            raise SpecError(
                "this spec has no `input` statement", Span(spec.path, 1, 1), hint="add e.g. `input 3x224x224`"
            )
        shape = input_override or input_shape
        assert shape is not None
        self.nodes.append(ir.Node(name="input", attrs=ir.InputAttrs(), span=Span(spec.path, 1, 1)))
        self.names["input"] = Span(spec.path, 1, 1)
        root = _Scope("")
        x = "input"
        for stmt in main:
            x = self._top_stmt(stmt, x, root)
        output = x
        heads = [self._aux(stmt, root) for stmt in aux]
        network_name = name or _name_from_path(spec.path)
        return ir.Network(
            name=network_name,
            input_shape=shape,
            nodes=tuple(self.nodes),
            output=output,
            aux=tuple(heads),
            rows=tuple(self.rows),
            tables=tuple(self.tables),
        )

    def _collect(self, spec: ast.SpecFile, chain: list[str]) -> None:
        """Register blocks, parameter tables and defaults; follow includes."""
        is_root = len(chain) == 1
        for stmt in spec.stmts:
            if isinstance(stmt, ast.BlockDef):
                self._define_block(stmt, spec.path)
                continue
            head = stmt.links[0]
            if not isinstance(head, ast.Item):
                if not is_root:
                    raise SpecError("an included file may only define blocks and tables", stmt.links[0].span)
                continue
            if head.head == "include":
                self._include(head, chain)
            elif head.head == "table":
                self._define_table(stmt, head)
            elif head.head == "defaults" and is_root:
                self._define_defaults(stmt, head)
            elif not is_root:
                raise SpecError(
                    f"an included file may only define blocks and tables; `{head.head}` belongs in the network spec",
                    head.head_span,
                )

    def _include(self, item: ast.Item, chain: list[str]) -> None:
        strings = [t.value.value for t in item.terms if isinstance(t, ast.Positional) and isinstance(t.value, ast.Str)]
        if len(strings) != 1 or len(item.terms) != 1 or item.args is not None:
            raise SpecError("`include` takes one quoted path", item.span, hint='write e.g. `include "blocks/v4.inc"`')
        if len(chain) > limits.MAX_INCLUDE_DEPTH:
            raise SpecError(f"includes are nested more than {limits.MAX_INCLUDE_DEPTH} deep", item.span)
        included = self.resolve_include(strings[0], item.span)
        if included.path in chain:
            loop = [*chain[chain.index(included.path):], included.path]
            base = os.path.dirname(loop[0])
            cycle = " → ".join(os.path.relpath(p, base) if base else p for p in loop)
            raise SpecError(f"include cycle: {cycle}", item.span, hint="remove one of these includes")
        self._collect(included, [*chain, included.path])

    def _define_block(self, block: ast.BlockDef, source: str) -> None:
        if block.name in self.blocks:
            first = self.blocks[block.name].definition.name_span
            raise SpecError(f"block `{block.name}` is defined twice", block.name_span, hint=f"first defined at {first}")
        if block.name in LAYER_TYPES or block.name in KEYWORDS:
            raise SpecError(f"`{block.name}` is a built-in word and cannot name a block", block.name_span)
        check_identifier(block.name, block.name_span, "block name")
        seen: set[str] = set()
        for param in block.params:
            if param.name in seen:
                raise SpecError(f"parameter `{param.name}` appears twice", param.span)
            seen.add(param.name)
        self.blocks[block.name] = _Block(block, source)

    def _define_table(self, stmt: ast.Stmt, head: ast.Item) -> None:
        names = [t.value.name for t in head.terms if isinstance(t, ast.Positional) and isinstance(t.value, ast.Sym)]
        if stmt.rows is None or len(names) != len(head.terms) or len(names) < 2:
            raise SpecError(
                "a parameter table is `table NAME col1 col2 ...` followed by indented rows",
                head.span,
                hint="e.g. `table reduction_a k l m n` then rows like `  inception_v4 192 224 256 384`",
            )
        name, *columns = names
        if name in self.param_tables:
            raise SpecError(f"table `{name}` is defined twice", head.span)
        rows: dict[str, dict[str, Any]] = {}
        for row in stmt.rows:
            values = [self._eval(t.value, {}) for t in row.terms if isinstance(t, ast.Positional)]
            if len(values) != len(columns) or len(values) != len(row.terms):
                raise SpecError(
                    f"row `{row.label}` of table `{name}` has {len(row.terms)} values; the table has "
                    f"{len(columns)} columns ({', '.join(columns)})",
                    row.span,
                )
            rows[row.label] = dict(zip(columns, values, strict=True))
        self.param_tables[name] = _ParamTable(name, tuple(columns), rows, head.span)

    def _define_defaults(self, stmt: ast.Stmt, head: ast.Item) -> None:
        if stmt.body is None:
            raise SpecError("`defaults` needs `:` and indented lines like `conv bn eps=0.001`", head.span)
        for line in stmt.body:
            if isinstance(line, ast.BlockDef) or len(line.links) != 1 or not isinstance(line.links[0], ast.Item):
                raise SpecError("each line under `defaults:` is a layer type and its settings", line.span)
            item = line.links[0]
            op = item.head
            flags, options = self._vocabulary(op, item)
            words, keyed, positional = self._split_terms(item.terms, {})
            if positional or any(isinstance(t, (ast.Rename, ast.Annotation, ast.Dims)) for t in item.terms):
                raise SpecError(f"defaults set flags and options only; `{op}` here cannot take values", item.span)
            apply_settings(op, flags, options, words, keyed, {})
            self.defaults[op] = self.defaults.get(op, ()) + item.terms

    def _vocabulary(self, op: str, item: ast.Item) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
        if op in LAYER_TYPES:
            return LAYER_TYPES[op].flags, LAYER_TYPES[op].options
        if op in CONTAINER_OPTIONS:
            return CONTAINER_FLAGS[op], CONTAINER_OPTIONS[op]
        raise SpecError(
            f"unknown layer type `{op}`",
            item.head_span,
            hint=did_you_mean(op, [*LAYER_TYPES, *CONTAINER_OPTIONS]),
        )

    def _network_name(self, item: ast.Item) -> str:
        names = [t.value.name for t in item.terms if isinstance(t, ast.Positional) and isinstance(t.value, ast.Sym)]
        if len(names) != 1 or len(item.terms) != 1:
            raise SpecError("`network` takes one name", item.span, hint="e.g. `network googlenet`")
        check_identifier(names[0], item.terms[0].span, "network name")
        return names[0]

    def _input(self, item: ast.Item) -> ir.Shape:
        dims = item.terms[0] if len(item.terms) == 1 and isinstance(item.terms[0], ast.Dims) else None
        text = " ".join(_term_text(t) for t in item.terms) or "(nothing)"
        return parse_input_shape(dims, text, item.span)

    def _new_row(self, kind: str, span: Span, **fields: Any) -> int:
        self.rows.append(ir.Row(index=len(self.rows), kind=kind, span=span, **fields))
        return len(self.rows) - 1

    def _top_stmt(self, stmt: ast.Stmt, x: str, root: _Scope) -> str:
        first = stmt.links[0]
        if stmt.rows is not None and len(stmt.links) == 1 and isinstance(first, ast.Item):
            return self._table(stmt, first, x, root, top=True)
        stmt, paper = self._take_paper(stmt)
        first = stmt.links[0]
        if len(stmt.links) == 1 and isinstance(first, ast.Item) and first.head == "seq" and stmt.body:
            scope = self._seq_scope(first, root, None)
            for inner in stmt.body:
                x = self._top_stmt(self._statement(inner), x, scope)
            return x
        kind = "layer"
        call: ast.Item | None = None
        count = 1
        if len(stmt.links) == 1 and isinstance(first, ast.Repeat):
            kind, call, count = "repeat", first.item, first.count
        elif len(stmt.links) == 1 and first.head in self.blocks:
            kind, call = "block", first
        table, values = self._columns_of_call(call) if call else (None, ())
        self.row = self._new_row(
            kind,
            stmt.links[0].span,
            block=call.head if call else None,
            count=count,
            paper=paper,
            table=table,
            values=values,
        )
        self.origin = stmt.links[0].span
        out = self._stmt(stmt, x, root, {})
        self.row = self.origin = None
        return out

    def _columns_of_call(self, call: ast.Item) -> tuple[int | None, tuple[Any, ...]]:
        """A call given a parameter table's row (``reduction_a(reduction_a_filters.inception_v4)``)
        shows that table's columns in the params table, as a Table-1 row shows its header's."""
        refs = [arg.value for arg in call.args or () if isinstance(arg.value, ast.TableRef)]
        table = self.param_tables.get(refs[0].table) if len(refs) == 1 else None
        if table is None or refs[0].row not in table.rows:
            return None, ()  # nothing to show, or an error the call itself reports
        header = ir.TableHeader(block=call.head, columns=table.columns)
        if header not in self.tables:
            self.tables.append(header)
        return self.tables.index(header), tuple(table.rows[refs[0].row].values())

    def _statement(self, stmt: ast.Statement) -> ast.Stmt:
        if isinstance(stmt, ast.BlockDef):
            raise SpecError("blocks are defined at the top level of a file", stmt.span)
        return stmt

    def _take_paper(self, stmt: ast.Stmt) -> tuple[ast.Stmt, ir.PaperFigures | None]:
        """Pull ``@paper(...)`` off a top-level line."""
        paper = None
        links = []
        for link in stmt.links:
            item = link.item if isinstance(link, ast.Repeat) else link
            for term in item.terms:
                if isinstance(term, ast.Annotation):
                    paper = self._paper(term, {})
            stripped = _without(item, (ast.Annotation,))
            links.append(link.model_copy(update={"item": stripped}) if isinstance(link, ast.Repeat) else stripped)
        return stmt.model_copy(update={"links": tuple(links)}), paper

    def _paper(self, term: ast.Annotation | None, given: dict[str, ast.Expr]) -> ir.PaperFigures:
        """``@paper(params=2.7K, ops=34M, note="...")`` (and a table's paper columns) → figures."""
        exprs = dict(given)
        if term is not None:
            if term.name != "paper":
                raise SpecError(f"unknown annotation `@{term.name}`", term.span, hint=did_you_mean(term.name, ["paper"]))
            for arg in term.args:
                if arg.name is None:
                    raise SpecError("`@paper` takes named figures: params=, ops=, note=", arg.span)
                if arg.name not in ("params", "ops", "note"):
                    raise SpecError(
                        f"unknown figure `{arg.name}` in @paper",
                        arg.span,
                        hint=did_you_mean(arg.name, ["params", "ops", "note"]) or "use params=, ops=, note=",
                    )
                exprs[arg.name] = arg.value
        figures: dict[str, Any] = {}
        for key, expr in exprs.items():
            if key == "note":
                if not isinstance(expr, ast.Str):
                    raise SpecError('a paper note is a quoted string: note="..."', expr.span)
                figures["note"] = expr.value
            else:
                if not isinstance(expr, ast.Num) or expr.value <= 0:
                    raise SpecError(f"the paper's {key} is a positive number such as 159K or 1.5G", expr.span)
                figures[key] = ir.PaperFigure(value=float(expr.value), text=expr.text)
        return ir.PaperFigures(**figures)

    # --- statements --------------------------------------------------------

    def _sequence(self, stmts: Sequence[ast.Statement], x: str, scope: _Scope, env: dict[str, Any]) -> str:
        for stmt in stmts:
            x = self._stmt(self._statement(stmt), x, scope, env)
        return x

    def _stmt(self, stmt: ast.Stmt, x: str, scope: _Scope, env: dict[str, Any], forced: str | None = None) -> str:
        if stmt.rows is not None:
            first = stmt.links[0]
            if len(stmt.links) != 1 or not isinstance(first, ast.Item):
                raise SpecError("unexpected indentation", stmt.rows[0].span, hint="only a table header is followed by rows")
            return self._table(stmt, first, x, scope, top=False, env=env)
        last = len(stmt.links) - 1
        for i, link in enumerate(stmt.links):
            body = stmt.body if i == last else None
            x = self._link(link, x, scope, env, body, forced if last == 0 else None)
        return x

    def _link(
        self,
        link: ast.Link,
        x: str,
        scope: _Scope,
        env: dict[str, Any],
        body: tuple[ast.Statement, ...] | None,
        forced: str | None,
    ) -> str:
        if isinstance(link, ast.Repeat):
            return self._repeat(link, x, scope, env, body, forced)
        head = link.head
        if head not in CONTAINERS and head not in self.blocks and head not in LAYER_TYPES:
            self._unknown(link)
        if head in CONTAINERS:
            if body is None:
                raise SpecError(
                    f"`{head}` needs `:` and an indented body",
                    link.span,
                    hint="e.g. `concat:` followed by one indented line per branch",
                )
            if head == "concat":
                return self._concat(link, body, x, scope, env, forced)
            if head == "residual":
                return self._residual(link, body, x, scope, env, forced)
            return self._sequence(body, x, self._seq_scope(link, scope, forced, env), env)
        if body is not None:
            raise SpecError(
                f"`{head}` does not take an indented body",
                link.span,
                hint="only `concat:`, `seq:`, `residual:`, `block ...:`, `defaults:` and `aux ...:` end with `:`",
            )
        if head in self.blocks:
            return self._call(link, x, scope, env, forced)
        return self._layer(link, x, scope, env, forced)

    def _unknown(self, link: ast.Item) -> None:
        head = link.head
        if head in TOP_LEVEL:
            raise SpecError(f"`{head}` may only appear at the top level of a network spec", link.head_span)
        if link.args is not None:
            raise SpecError(
                f"unknown block `{head}`",
                link.head_span,
                hint=did_you_mean(head, self.blocks) or "define it with `block NAME(params):` or include a file that does",
            )
        raise SpecError(
            f"unknown layer type `{head}`",
            link.head_span,
            hint=did_you_mean(head, [*LAYER_TYPES, *self.blocks, *KEYWORDS])
            or f"layer types are {', '.join(LAYER_TYPES)}",
        )

    def _seq_scope(self, item: ast.Item, scope: _Scope, forced: str | None, env: dict[str, Any] | None = None) -> _Scope:
        rename = _rename_of(item.terms)
        words = [t for t in item.terms if not isinstance(t, ast.Rename)]
        if words or item.args is not None:
            if len(words) == 1 and isinstance(words[0], ast.Positional) and isinstance(words[0].value, ast.Sym):
                rename = ast.Rename(span=words[0].span, name=words[0].value.name, quoted=False)
            else:
                raise SpecError("`seq` takes only a name: `seq NAME:`", item.span)
        name = self._alloc(scope, "seq", rename, forced, item.span)
        return _Scope(name, indexed=True, home=None if rename else scope.named)

    def _alloc(self, scope: _Scope, base: str, rename: ast.Rename | None, forced: str | None, span: Span) -> str:
        if rename is not None:
            if rename.quoted:
                raise SpecError("a layer name is written without quotes: `as name`", rename.span)
            check_identifier(rename.name, rename.span)
            if scope.indexed:
                scope.next_index += 1
            name = scope.named.full(rename.name)
            span = rename.span
        elif forced is not None:
            name = scope.full(forced)
        elif scope.indexed:
            name = scope.full(str(scope.next_index))
            scope.next_index += 1
        else:
            n = scope.count(base)
            name = scope.full(f"{base}_{n}" if base[-1].isdigit() else f"{base}{n}")
        self._register(name, span)
        return name

    def _register(self, name: str, span: Span) -> None:
        if name in self.names:
            raise SpecError(
                f"duplicate layer name `{name}`", span, hint=f"`{name}` is already used at {self.names[name]}"
            )
        self.names[name] = span

    def _node(self, name: str, attrs: Any, inputs: tuple[str, ...], span: Span) -> str:
        if len(self.nodes) >= limits.MAX_NODES:
            raise SpecError(
                f"the network has more than {limits.MAX_NODES:,} layers", span, hint="check the repeat counts"
            )
        self.nodes.append(
            ir.Node(
                name=name,
                attrs=attrs,
                inputs=inputs,
                span=span,
                origin=self.origin,
                row=self.row,
                repeat_index=self.repeat_index,
            )
        )
        self.outputs.setdefault(name, name)
        return name

    def _synthetic(self, scope: _Scope, op: str) -> str:
        """A name for a node without a module; `:` keeps it apart from module names."""
        name = f"{scope.path}:{op}"
        n = 1
        while name in self.names:
            n += 1
            name = f"{scope.path}:{op}{n}"
        self.names[name] = Span("", 0, 0)
        return name

    # --- layers ------------------------------------------------------------

    def _split_terms(
        self, terms: Sequence[ast.Term], env: dict[str, Any]
    ) -> tuple[list[tuple[Symbol, Span]], list[tuple[str, Any, Span]], list[tuple[Any, Span]]]:
        words: list[tuple[Symbol, Span]] = []
        keyed: list[tuple[str, Any, Span]] = []
        positional: list[tuple[Any, Span]] = []
        for term in terms:
            if isinstance(term, ast.Option):
                value = term.value
                keyed.append((term.key, self._eval(value, env), term.span))
            elif isinstance(term, ast.Dims):
                positional.append((term, term.span))
            elif isinstance(term, ast.Positional):
                value = self._eval(term.value, env)
                if isinstance(value, Symbol):
                    words.append((value, term.span))
                else:
                    positional.append((value, term.span))
        return words, keyed, positional

    def _layer(self, item: ast.Item, x: str, scope: _Scope, env: dict[str, Any], forced: str | None) -> str:
        op = item.head
        layer = LAYER_TYPES[op]
        if item.args is not None:
            raise SpecError(f"`{op}` is a layer: write its values after it, e.g. `{layer.example}`", item.span)
        for term in item.terms:
            if isinstance(term, ast.Annotation):
                raise SpecError("annotations such as `@paper` belong at the end of a top-level line", term.span)
        words, keyed, positional = self._split_terms(item.terms, env)
        settings: dict[str, Setting] = {}
        d_words, d_keyed, _ = self._split_terms(self.defaults.get(op, ()), {})
        apply_settings(op, layer.flags, layer.options, d_words, d_keyed, settings)
        apply_settings(op, layer.flags, layer.options, words, keyed, settings, parameters=list(env))
        settings.update(fill_positional(layer, positional, item.span))
        attrs = build_attrs(op, settings)
        name = self._alloc(scope, op, _rename_of(item.terms), forced, item.span)
        return self._node(name, attrs, (x,), item.span)

    def _container_settings(self, item: ast.Item, env: dict[str, Any]) -> dict[str, Setting]:
        op = item.head
        settings: dict[str, Setting] = {}
        for terms, e in ((self.defaults.get(op, ()), {}), (item.terms, env)):
            words, keyed, positional = self._split_terms([t for t in terms if not isinstance(t, ast.Rename)], e)
            if positional:
                raise SpecError(f"`{op}` takes no values, only options", positional[0][1])
            apply_settings(op, CONTAINER_FLAGS[op], CONTAINER_OPTIONS[op], words, keyed, settings, list(e))
        return settings

    def _own_scope(self, item: ast.Item, scope: _Scope, forced: str | None) -> _Scope:
        """A concat or residual adds no scope, except where it must have a name of its own."""
        rename = _rename_of(item.terms)
        if rename is None and forced is None and not scope.indexed:
            return scope
        name = self._alloc(scope, item.head, rename, forced, item.span)
        return _Scope(name, home=None if rename else scope.named)

    def _concat(
        self,
        item: ast.Item,
        body: tuple[ast.Statement, ...],
        x: str,
        scope: _Scope,
        env: dict[str, Any],
        forced: str | None,
    ) -> str:
        settings = self._container_settings(item, env)
        base = settings["base"].value if "base" in settings else 1
        inner = self._own_scope(item, scope, forced)
        outs: list[str] = []
        labels: list[str] = []
        for k, branch in enumerate(body):
            label = f"branch{base + k}"
            outs.append(self._branch(self._statement(branch), x, inner, env, label))
            labels.append(label)
        if len(outs) < 2:
            raise SpecError("a concat needs at least two branches, one per indented line", item.span)
        attrs = ir.ConcatAttrs(branches=tuple(labels))
        return self._node(self._synthetic(inner, "concat"), attrs, tuple(outs), item.span)

    def _branch(self, stmt: ast.Stmt, x: str, scope: _Scope, env: dict[str, Any], label: str) -> str:
        links = stmt.links
        if len(links) == 1:
            return self._stmt(stmt, x, scope, env, forced=label)
        all_named = stmt.body is None and all(
            isinstance(link, ast.Item) and _rename_of(link.terms) for link in links
        )
        if all_named:
            return self._stmt(stmt, x, scope, env)
        name = self._alloc(scope, "branch", None, label, stmt.span)
        return self._stmt(stmt, x, _Scope(name, indexed=True, home=scope.named), env)

    def _residual(
        self,
        item: ast.Item,
        body: tuple[ast.Statement, ...],
        x: str,
        scope: _Scope,
        env: dict[str, Any],
        forced: str | None,
    ) -> str:
        settings = self._container_settings(item, env)
        scale = settings["scale"].value if "scale" in settings else 1.0
        act = settings["act"].value if "act" in settings else "relu"
        inner = self._own_scope(item, scope, forced)
        out = self._sequence(body, x, inner, env)
        attrs = ir.AddAttrs(scale=scale, act=act)
        return self._node(self._synthetic(inner, "add"), attrs, (x, out), item.span)

    def _repeat(
        self,
        link: ast.Repeat,
        x: str,
        scope: _Scope,
        env: dict[str, Any],
        body: tuple[ast.Statement, ...] | None,
        forced: str | None,
    ) -> str:
        if not 1 <= link.count <= limits.MAX_REPEAT:
            raise SpecError(
                f"a repeat count must be between 1 and {limits.MAX_REPEAT}; got {link.count}", link.count_span
            )
        rename = _rename_of(link.item.terms)
        item = _without(link.item, (ast.Rename,))
        group = scope
        if rename is not None or (forced is not None and link.count > 1):
            name = self._alloc(scope, "repeat", rename, forced, link.span)
            group, forced = _Scope(name, indexed=True, home=None if rename else scope.named), None
        outer_index = self.repeat_index
        for c in range(link.count):
            if outer_index is None:
                self.repeat_index = c
            x = self._link(item, x, group, env, body, forced)
        self.repeat_index = outer_index
        return x

    # --- blocks and tables -------------------------------------------------

    def _call(
        self,
        item: ast.Item,
        x: str,
        scope: _Scope,
        env: dict[str, Any],
        forced: str | None,
        values: list[tuple[Any, Span]] | None = None,
        keywords: dict[str, tuple[Any, Span]] | None = None,
        rename: ast.Rename | None = None,
    ) -> str:
        block = self.blocks[item.head].definition
        if values is None:
            values, keywords = self._call_args(item, env)
            extra = [t for t in item.terms if not isinstance(t, ast.Rename)]
            if extra:
                raise SpecError(
                    f"block `{block.name}` takes its arguments in parentheses",
                    extra[0].span,
                    hint=f"write `{block.name}({', '.join(p.name for p in block.params)})`",
                )
            rename = _rename_of(item.terms)
        bound = self._bind(block, values, keywords or {}, item)
        if len(self.call_stack) >= limits.MAX_CALL_DEPTH:
            raise SpecError(f"blocks call blocks more than {limits.MAX_CALL_DEPTH} deep", item.span)
        if block.name in self.call_stack:
            cycle = " → ".join([*self.call_stack[self.call_stack.index(block.name):], block.name])
            raise SpecError(f"block `{block.name}` calls itself: {cycle}", item.span, hint="blocks cannot be recursive")
        name = self._alloc(scope, block.name, rename, forced, item.span)
        self.call_stack.append(block.name)
        out = self._sequence(block.body, x, _Scope(name), bound)
        self.call_stack.pop()
        self.outputs[name] = out
        return out

    def _call_args(
        self, item: ast.Item, env: dict[str, Any]
    ) -> tuple[list[tuple[Any, Span]], dict[str, tuple[Any, Span]]]:
        values: list[tuple[Any, Span]] = []
        keywords: dict[str, tuple[Any, Span]] = {}
        for arg in item.args or ():
            value = self._eval(arg.value, env)
            if isinstance(value, _TableRow):
                for key, v in value.values.items():
                    keywords[key] = (v, arg.span)
            elif arg.name is None:
                if keywords:
                    raise SpecError("a positional argument cannot follow named ones", arg.span)
                values.append((value, arg.span))
            else:
                if arg.name in keywords:
                    raise SpecError(f"argument `{arg.name}` is given twice", arg.span)
                keywords[arg.name] = (value, arg.span)
        return values, keywords

    def _bind(
        self,
        block: ast.BlockDef,
        values: list[tuple[Any, Span]],
        keywords: dict[str, tuple[Any, Span]],
        call: ast.Item | ast.Row,
    ) -> dict[str, Any]:
        params = [p.name for p in block.params]
        signature = f"{block.name}({', '.join(params)})"
        if len(values) > len(params):
            raise SpecError(
                f"block `{block.name}` takes {len(params)} values; {len(values)} given",
                values[len(params)][1],
                hint=f"the block is `{signature}`",
            )
        bound: dict[str, Any] = {}
        for param, (value, _span) in zip(block.params, values, strict=False):
            bound[param.name] = value
        for key, (value, span) in keywords.items():
            if key not in params:
                raise SpecError(
                    f"block `{block.name}` has no parameter `{key}`",
                    span,
                    hint=did_you_mean(key, params) or f"the block is `{signature}`",
                )
            if key in bound:
                raise SpecError(f"parameter `{key}` is given twice", span)
            bound[key] = value
        for param in block.params:
            if param.name not in bound:
                if param.default is None:
                    missing = [p.name for p in block.params if p.name not in bound and p.default is None]
                    raise SpecError(
                        f"block `{block.name}` is missing argument `{missing[0]}`"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                        call.span,
                        hint=f"the block is `{signature}`; {len(values)} value(s) given",
                    )
                bound[param.name] = self._eval(param.default, {})
        return bound

    def _table(
        self,
        stmt: ast.Stmt,
        header: ast.Item,
        x: str,
        scope: _Scope,
        top: bool,
        env: dict[str, Any] | None = None,
    ) -> str:
        block_name = header.head
        assert stmt.rows is not None
        if block_name not in self.blocks:
            if block_name in LAYER_TYPES or block_name in KEYWORDS:
                raise SpecError(
                    "unexpected indentation",
                    stmt.rows[0].span,
                    hint=f"`{block_name} ...` is not a table header; indented lines follow only a `:` or a header",
                )
            raise SpecError(
                f"unknown block `{block_name}`",
                header.head_span,
                hint=did_you_mean(block_name, self.blocks) or "a table header starts with the name of a block",
            )
        block = self.blocks[block_name].definition
        table_index, pattern, n_paper, paper_names = self._header(header, block)
        columns = self.tables[table_index].columns
        for row in stmt.rows:
            terms = [t for t in row.terms if isinstance(t, ast.Positional)]
            n_cols = len(columns) + n_paper
            if len(terms) != n_cols:
                paper_part = f" and {n_paper} paper figure(s)" if n_paper else ""
                raise SpecError(
                    f"row `{row.label}` has {len(terms)} values; the header names {len(columns)} columns{paper_part}",
                    row.span,
                    hint=f"columns: {', '.join(columns)}" + (f", then {', '.join(paper_names)}" if n_paper else ""),
                )
            values = [(self._eval(t.value, env or {}), t.span) for t in terms[: len(columns)]]
            paper_exprs = {k: t.value for k, t in zip(paper_names, terms[len(columns):], strict=True)}
            paper = None
            annotations = [t for t in row.terms if isinstance(t, ast.Annotation)]
            if paper_exprs or annotations:
                paper = self._paper(annotations[0] if annotations else None, paper_exprs)
            rename = _rename_of(row.terms)
            if rename is None:
                module = pattern.format(block=block_name, row=row.label)
                check_identifier(module, row.label_span, "module name")
                rename = ast.Rename(span=row.label_span, name=module, quoted=False)
            if top:
                self.row = self._new_row(
                    "block",
                    row.span,
                    label=row.label,
                    block=block_name,
                    table=table_index,
                    values=tuple(v for v, _ in values),
                    paper=paper,
                )
                self.origin = row.span
            call = ast.Item(span=row.span, head=block_name, head_span=row.label_span, args=None, terms=())
            x = self._call(call, x, scope, env or {}, None, values, {}, rename)
            self.row_labels[row.label] = scope.named.full(rename.name)
            if top:
                self.row = self.origin = None
        return x

    def _header(self, header: ast.Item, block: ast.BlockDef) -> tuple[int, str, int, list[str]]:
        labels: list[str] = []
        pattern = "{block}_{row}"
        paper_names: list[str] = []
        for term in header.terms:
            if isinstance(term, ast.Positional) and isinstance(term.value, ast.Str):
                labels.append(term.value.value)
            elif isinstance(term, ast.Positional) and isinstance(term.value, ast.Sym):
                labels.append(term.value.name)
            elif isinstance(term, ast.Rename) and term.quoted:
                if "{row}" not in term.name:
                    raise SpecError('a table\'s name pattern must contain `{row}`, e.g. `as "inception{row}"`', term.span)
                pattern = term.name
            elif isinstance(term, ast.Annotation) and term.name == "paper":
                for arg in term.args:
                    if not (arg.name is None and isinstance(arg.value, ast.Sym) and arg.value.name in ("params", "ops")):
                        raise SpecError("a header's `@paper(...)` lists the paper's columns: params, ops", arg.span)
                    paper_names.append(arg.value.name)
            else:
                raise SpecError(
                    "a table header is a block name followed by column labels",
                    term.span,
                    hint='labels are quoted ("#3x3 reduce") or plain names; `as "pattern{row}"` names the modules',
                )
        previous = self.last_header.get(block.name)
        if not labels:
            if previous is None:
                raise SpecError(
                    f"the table of `{block.name}` has no column labels",
                    header.span,
                    hint='quote labels that start with `#` ("#1x1"): a bare `#` starts a comment',
                )
            index, prev_pattern, prev_paper = previous[0], previous[1], self._paper_columns.get(block.name, [])
            if pattern == "{block}_{row}":
                pattern = prev_pattern
            return index, pattern, len(paper_names or prev_paper), paper_names or prev_paper
        required = [p.name for p in block.params if p.default is None]
        if len(labels) > len(block.params) or len(labels) < len(required):
            raise SpecError(
                f"the header names {len(labels)} columns; block `{block.name}` takes "
                f"{len(block.params)} parameters ({', '.join(p.name for p in block.params)})",
                header.span,
                hint="the columns map to the block's parameters in order",
            )
        self.tables.append(ir.TableHeader(block=block.name, columns=tuple(labels)))
        index = len(self.tables) - 1
        self.last_header[block.name] = (index, pattern)
        self._paper_columns[block.name] = paper_names
        return index, pattern, len(paper_names), paper_names

    # --- aux heads -----------------------------------------------------------

    def _aux(self, stmt: ast.Stmt, root: _Scope) -> ir.AuxHead:
        item = stmt.links[0]
        assert isinstance(item, ast.Item)
        usage = "write `aux [NAME] after MODULE weight=W:` and the head's layers"
        if stmt.body is None or len(stmt.links) != 1:
            raise SpecError("an aux head needs `:` and its layers", item.span, hint=usage)
        words = [t for t in item.terms if isinstance(t, ast.Positional) and isinstance(t.value, (ast.Sym, ast.Str))]
        # A module path with dots (`repeat.2`) is quoted: `aux after "repeat.2" weight=0.3:`.
        names = [t.value.name if isinstance(t.value, ast.Sym) else t.value.value for t in words]  # type: ignore[union-attr]
        weight = [t for t in item.terms if isinstance(t, ast.Option) and t.key == "weight"]
        others = [t for t in item.terms if t not in words and t not in weight]
        if others or "after" not in names or len(names) - names.index("after") != 2 or names.index("after") > 1:
            raise SpecError("malformed aux head", item.span, hint=usage)
        if not weight:
            raise SpecError("an aux head needs its loss weight", item.span, hint="add e.g. `weight=0.3`")
        loss_weight = as_float(self._eval(weight[0].value, {}), "weight", weight[0].span)
        target_term = words[names.index("after") + 1]
        target = names[names.index("after") + 1]
        module = target if target in self.outputs else self.row_labels.get(target, "")
        tensor = self.outputs.get(module)
        if tensor is None:
            candidates = [n for n in self.outputs if ":" not in n]
            best = closest(target, [*candidates, *self.row_labels])
            shown = f'"{best}"' if best and "." in best else best
            raise SpecError(
                f"aux head is attached after `{target}`, which is not a layer or module of this network",
                target_term.span,
                hint=f"did you mean `{shown}`?" if best else "name a module, e.g. `inception_4a`",
            )
        rename = ast.Rename(span=words[0].span, name=names[0], quoted=False) if names[0] != "after" else None
        name = self._alloc(root, "aux", rename, None, item.span)
        row = self._new_row("aux", item.span, label=name)
        self.row, self.origin = row, item.span
        out = self._sequence(stmt.body, tensor, _Scope(name), {})
        self.row = self.origin = None
        return ir.AuxHead(name=name, after=module, input=tensor, weight=loss_weight, output=out, row=row)

    # --- expressions ---------------------------------------------------------

    def _eval(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        if isinstance(expr, ast.Num):
            return expr.value
        if isinstance(expr, ast.Str):
            return expr.value
        if isinstance(expr, ast.Sym):
            return env[expr.name] if expr.name in env else Symbol(expr.name)
        if isinstance(expr, ast.Neg):
            value = self._eval(expr.operand, env)
            _number(value, expr.operand.span)
            return -value
        if isinstance(expr, ast.TableRef):
            table = self.param_tables.get(expr.table)
            if table is None:
                raise SpecError(
                    f"unknown table `{expr.table}`", expr.span, hint=did_you_mean(expr.table, self.param_tables)
                )
            if expr.row not in table.rows:
                raise SpecError(
                    f"table `{expr.table}` has no row `{expr.row}`",
                    expr.span,
                    hint=did_you_mean(expr.row, table.rows) or f"rows: {', '.join(table.rows)}",
                )
            return _TableRow(table.rows[expr.row])
        assert isinstance(expr, ast.BinOp)
        left, right = self._eval(expr.left, env), self._eval(expr.right, env)
        _number(left, expr.left.span)
        _number(right, expr.right.span)
        if expr.op == "+":
            return left + right
        if expr.op == "-":
            return left - right
        return left * right


@dataclass(frozen=True)
class _TableRow:
    values: dict[str, Any]


def _number(value: Any, span: Span) -> None:
    if isinstance(value, Symbol):
        raise SpecError(f"`{value}` is not a parameter of this block, so it has no value here", span)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SpecError(f"arithmetic needs numbers; got `{value}`", span)


def _term_text(term: ast.Term) -> str:
    if isinstance(term, ast.Dims):
        return term.text
    if isinstance(term, ast.Positional):
        value = term.value
        if isinstance(value, ast.Num):
            return value.text
        if isinstance(value, ast.Sym):
            return value.name
        if isinstance(value, ast.Str):
            return f'"{value.value}"'
    return "…"


def _name_from_path(path: str) -> str:
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in stem) or "network"
    return name if name[0].isalpha() else f"net_{name}"


__all__ = ["elaborate", "parse_input_shape", "check_identifier", "as_int"]
