"""The statement walker: statements, chains, layers, containers, repeats and block calls → IR nodes.

Each step reads the value flowing in (``x``, a node name) and a :class:`Cursor`
that says where it is, and returns the node whose value flows on. The cursor is
a value: a step that goes into a block, a branch or a repeat passes a changed
copy down, so nothing has to be set and reset by hand. What the walk builds
(nodes, module outputs, params-table rows) goes into an :class:`Output`; the
names it gives come from a :class:`~.names.Names`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from .. import ast, ir, limits
from ..activations import Activation
from ..errors import Span, SpecError, SpecWarning, did_you_mean
from ..layers import (
    CONTAINER_FLAGS,
    CONTAINER_OPTIONS,
    Setting,
    Symbol,
    apply_settings,
    as_int,
    fill_positional,
)
from ..operations import LAYER_TYPES, build_attrs
from .declarations import Declarations
from .expressions import Env, Located, bind, call_arguments, split_terms, without
from .names import CONTAINERS, KEYWORDS, LAYER_FIELD, TOP_LEVEL, Names, Scope, flat_instance_name, rename_of
from .tables import Headers, row_calls, table_block, written_rename


@dataclass(frozen=True)
class Cursor:
    """Where the walk is: the scope names go into, the block arguments in force, and what
    every node made here records (its params-table row, the statement it was instantiated
    from, which copy of a repeat it is in)."""

    scope: Scope
    env: Env = field(default_factory=dict)
    #: The params-table row being built; None at the top level, before a statement starts one.
    row: int | None = None
    origin: Span | None = None
    repeat_index: int | None = None
    #: The name the next item takes when it has no ``as`` (a one-layer concat branch's label).
    label: str | None = None
    #: The blocks being expanded, outermost first (to refuse recursion).
    calls: tuple[str, ...] = ()
    #: The defaults in force: layer or container type → terms (the network's, or inside a block its own file's).
    defaults: Mapping[str, tuple[ast.Term, ...]] = field(default_factory=dict)

    def inside(self, scope: Scope) -> Cursor:
        """The cursor for the statements of a new scope."""
        return replace(self, scope=scope, label=None)


@dataclass
class Output:
    """What the walk has built so far."""

    nodes: list[ir.Node] = field(default_factory=list)
    #: module name → the node that holds its output (a block instance's last node).
    outputs: dict[str, str] = field(default_factory=dict)
    #: a table row's label (``3a``) → the module it instantiated.
    row_labels: dict[str, str] = field(default_factory=dict)
    rows: list[ir.Row] = field(default_factory=list)
    headers: Headers = field(default_factory=Headers)
    scopes: list[ir.Scope] = field(default_factory=list)
    #: ``linear`` convs whose batch norm comes from ``defaults:``, not from their own line
    #: (one that ends a residual branch is warned about: timm's has none there).
    default_bn_linear: set[str] = field(default_factory=set)
    #: Where a warning has been given (once for all the copies a repeat or a table makes).
    warned_at: set[Span] = field(default_factory=set)
    #: Residual adds whose drop-path rate follows ``drop_path_rate=``: (index in ``nodes``, rate, where).
    drop_path_rule: list[tuple[int, float, Span]] = field(default_factory=list)

    def add_scope(self, name: str, x: str, out: str, block: str | None = None) -> str:
        """Record the scope ``name`` (its layers made), which reads ``x`` and gives ``out``; returns ``out``."""
        self.scopes.append(ir.Scope(name=name, input=x, output=out, block=block))
        return out

    def add_node(self, name: str, attrs: Any, inputs: tuple[str, ...], span: Span, at: Cursor) -> str:
        """Append a node made at ``at``; returns its name."""
        if len(self.nodes) >= limits.MAX_NODES:
            raise SpecError(
                f"the network has more than {limits.MAX_NODES:,} layers", span, hint="check the repeat counts"
            )
        node = ir.Node(
            name=name,
            attrs=attrs,
            inputs=inputs,
            span=span,
            origin=at.origin,
            row=at.row,
            repeat_index=at.repeat_index,
        )
        self.nodes.append(node)
        self.outputs.setdefault(name, name)
        return name

    def new_row(self, kind: str, span: Span, **fields: Any) -> int:
        """Start a row of the params table; returns its index."""
        self.rows.append(ir.Row(index=len(self.rows), kind=kind, span=span, **fields))
        return len(self.rows) - 1


class Walker:
    """Turns statements into nodes, given the spec's declarations."""

    def __init__(self, decls: Declarations, names: Names, out: Output) -> None:
        self.decls = decls
        self.names = names
        self.out = out

    # --- statements --------------------------------------------------------

    def sequence(self, stmts: Sequence[ast.Statement], x: str, at: Cursor) -> str:
        """Statements one after the other, each reading the previous one's output."""
        at = replace(at, label=None)
        for stmt in stmts:
            x = self.statement(statement(stmt), x, at)
        return x

    def statement(self, stmt: ast.Stmt, x: str, at: Cursor) -> str:
        """One statement: a chain of links (the last may own an indented body), or a table."""
        if stmt.rows is not None:
            first = stmt.links[0]
            if len(stmt.links) != 1 or not isinstance(first, ast.Item):
                raise SpecError("unexpected indentation", stmt.rows[0].span, hint="only a table header is followed by rows")
            return self.table(stmt, first, x, at)
        last = len(stmt.links) - 1
        for i, link in enumerate(stmt.links):
            body = stmt.body if i == last else None
            x = self._link(link, x, at if last == 0 else replace(at, label=None), body)
        return x

    def table(self, stmt: ast.Stmt, header: ast.Item, x: str, at: Cursor) -> str:
        """A table: one block instance per row. At the top level each row is a row of the params table."""
        block = table_block(stmt, header, self.decls.blocks)
        read = self.out.headers.read(header, block)
        for call in row_calls(stmt, block, read, at.env, self.decls.arg_tables):
            here = replace(at, label=None)
            if at.row is None:
                row = self.out.new_row(
                    "block",
                    call.row.span,
                    label=call.row.label,
                    block=block.name,
                    table=read.index,
                    values=tuple(v for v, _ in call.values),
                    paper=call.paper,
                )
                here = replace(here, row=row, origin=call.row.span)
            x = self.instantiate(block, call.values, {}, call.row.span, call.rename, x, here)
            self.out.row_labels[call.row.label] = at.scope.named.full(flat_instance_name(call.rename.name))
        return x

    def _link(self, link: ast.Link, x: str, at: Cursor, body: tuple[ast.Statement, ...] | None) -> str:
        if isinstance(link, ast.Repeat):
            return self._repeat(link, x, at, body)
        _no_count_after(link, at.env)
        if link.head in at.env:
            link = self._typed_by_parameter(link, at)
        head = link.head
        if head not in CONTAINERS and head not in self.decls.blocks and head not in LAYER_TYPES and head != TAKE:
            self._unknown(link)
        if head in CONTAINERS:
            if body is None:
                raise SpecError(
                    f"`{head}` needs `:` and an indented body",
                    link.span,
                    hint="e.g. `concat:` followed by one indented line per branch",
                )
            if head == "concat":
                return self._concat(link, body, x, at)
            if head == "split":
                return self._split(link, body, x, at)
            if head == "residual":
                return self._residual(link, body, x, at)
            if head == "shortcut":
                raise SpecError(
                    "`shortcut:` belongs on the first line of a `residual:` body",
                    link.span,
                    hint="write `residual:`, then `shortcut: conv 1x1/2 N linear bn` (the projection), then the branch",
                )
            scope = self.seq_scope(link, at)
            return self.out.add_scope(scope.path, x, self.sequence(body, x, at.inside(scope)))
        if body is not None:
            raise SpecError(
                f"`{head}` does not take an indented body",
                link.span,
                hint="only `concat:`, `seq:`, `residual:`, `block ...:`, `defaults:` and `aux ...:` end with `:`",
            )
        if head in self.decls.blocks:
            return self.call(link, x, at)
        if head == TAKE:
            raise SpecError(
                f"`{TAKE}` starts a branch of a `split:`, and only there",
                link.head_span,
                hint="`split:` gives each indented line the next channels of its input: `take 16 -> dwconv 3x3`",
            )
        return self._layer(link, x, at)

    def _typed_by_parameter(self, link: ast.Item, at: Cursor) -> ast.Item:
        """``pool 3x3/1 -> ...`` where ``pool`` is a block parameter: the layer type (or block)
        its argument names (checked at the call, by :meth:`_check_type_arguments`)."""
        return link.model_copy(update={"head": str(at.env[link.head])})

    def _check_type_arguments(
        self, block: ast.BlockDef, bound: Mapping[str, Any], values: Sequence[Located], keywords: Mapping[str, Located]
    ) -> None:
        """A parameter that heads a line of ``block`` (``pool 3x3/1 same``) is given a layer type
        or a block; anything else is refused at the argument that gave it, with the closest word."""
        types = [*LAYER_TYPES, *self.decls.blocks]
        heads = _heads(block.body)
        for index, param in enumerate(block.params):
            value = bound[param.name]
            if param.name not in heads or (isinstance(value, Symbol) and value in types):
                continue
            if index < len(values):
                span = values[index][1]
            elif param.name in keywords:
                span = keywords[param.name][1]
            else:
                span = param.span
            shown = value.text if isinstance(value, ast.Dims) else value
            raise SpecError(
                f"`{shown}` is not a layer type or a block, and block `{block.name}` uses its parameter "
                f"`{param.name}` as one",
                span,
                hint=did_you_mean(str(shown), types) or f"layer types are {', '.join(LAYER_TYPES)}",
            )

    def _unknown(self, link: ast.Item) -> None:
        head = link.head
        if head in TOP_LEVEL:
            raise SpecError(f"`{head}` may only appear at the top level of a network spec", link.head_span)
        if head == "normalize":
            raise SpecError(
                "`normalize` is the input's: it goes indented under `input CxHxW:`",
                link.head_span,
                hint="write `input 3x224x224:` and under it `normalize mean M… std S…`, one value per channel",
            )
        if link.args is not None:
            raise SpecError(
                f"unknown block `{head}`",
                link.head_span,
                hint=did_you_mean(head, self.decls.blocks)
                or "define it with `block NAME(params):` or include a file that does",
            )
        raise SpecError(
            f"unknown layer type `{head}`",
            link.head_span,
            hint=did_you_mean(head, [*LAYER_TYPES, *self.decls.blocks, *KEYWORDS, TAKE])
            or f"layer types are {', '.join(LAYER_TYPES)}",
        )

    # --- layers ------------------------------------------------------------

    def _layer(self, item: ast.Item, x: str, at: Cursor) -> str:
        op = item.head
        layer = LAYER_TYPES[op]
        if item.args is not None:
            raise SpecError(f"`{op}` is a layer: write its values after it, e.g. `{layer.example}`", item.span)
        for term in item.terms:
            if isinstance(term, ast.Annotation):
                raise SpecError("annotations such as `@paper` belong at the end of a top-level line", term.span)
        terms = split_terms(item.terms, at.env, self.decls.arg_tables)
        defaults = split_terms(at.defaults.get(op, ()), {}, self.decls.arg_tables)
        settings: dict[str, Setting] = {}
        apply_settings(op, layer.flags, layer.options, defaults.words, defaults.keyed, settings)
        default_bn = settings.get("bn")
        apply_settings(op, layer.flags, layer.options, terms.words, terms.keyed, settings, parameters=list(at.env))
        settings.update(fill_positional(layer, terms.positional, item.span))
        attrs = build_attrs(op, settings)
        name = self.names.allocate(at.scope, op, written_rename(item.terms, at.env), at.label, item.span)
        self.out.add_node(name, attrs, (x,), item.span, at)
        if isinstance(attrs, ir.ConvAttrs) and attrs.act is None and attrs.bn_eps is not None and settings.get("bn") is default_bn:
            self.out.default_bn_linear.add(name)
        self._claim_parts(self.out.nodes[-1], settings.get("parts"), item.span)
        return name

    def _claim_parts(self, node: ir.Node, parts: Setting | None, span: Span) -> None:
        """A layer of several modules names each part: children of its module (``X.conv``,
        ``X.bn``) or siblings beside it (``X``, ``X_bn``), claimed as any module name is."""
        where = parts.span if parts is not None else span
        for role, path in ir.part_paths(node).items():
            if path != node.name:
                scope, _, leaf = path.rpartition(".")
                self.names.register(Scope(scope), leaf, where, f"the {role} part's name")

    # --- containers --------------------------------------------------------

    def seq_scope(self, item: ast.Item, at: Cursor) -> Scope:
        """The indexed scope of ``seq [NAME]:``."""
        rename = written_rename(item.terms, at.env)
        words = [t for t in item.terms if not isinstance(t, ast.Rename)]
        if words or item.args is not None:
            if len(words) == 1 and isinstance(words[0], ast.Positional) and isinstance(words[0].value, ast.Sym):
                word = ast.Rename.model_construct(span=words[0].span, name=words[0].value.name, quoted=False)
                rename = written_rename((word,), at.env)
            else:
                raise SpecError("`seq` takes only a name: `seq NAME:`", item.span)
        name = self.names.allocate(at.scope, "seq", rename, at.label, item.span)
        return Scope(name, indexed=True, home=None if rename else at.scope.named)

    def _container_settings(self, item: ast.Item, at: Cursor) -> dict[str, Setting]:
        op = item.head
        settings: dict[str, Setting] = {}
        for terms, e in ((at.defaults.get(op, ()), {}), (item.terms, at.env)):
            split = split_terms([t for t in terms if not isinstance(t, ast.Rename)], e, self.decls.arg_tables)
            if split.positional:
                raise SpecError(f"`{op}` takes no values, only options", split.positional[0][1])
            apply_settings(op, CONTAINER_FLAGS[op], CONTAINER_OPTIONS[op], split.words, split.keyed, settings, list(e))
        return settings

    def _own_scope(self, item: ast.Item, at: Cursor) -> Scope:
        """A concat or residual adds no scope, except where it must have a name of its own."""
        rename = written_rename(item.terms, at.env)
        if rename is None and at.label is None and not at.scope.indexed:
            return at.scope
        name = self.names.allocate(at.scope, item.head, rename, at.label, item.span)
        return Scope(name, home=None if rename else at.scope.named)

    def _concat(self, item: ast.Item, body: tuple[ast.Statement, ...], x: str, at: Cursor) -> str:
        return self._branches(item, [(statement(b), x) for b in body], x, at)

    def _split(self, item: ast.Item, body: tuple[ast.Statement, ...], x: str, at: Cursor) -> str:
        """``split:``: each indented line starts with ``take N`` and runs on the next N channels of
        the input (InceptionNeXt's token mixer); the lines' outputs are concatenated. A line
        that is only ``take N`` passes its channels through."""
        inner = self._own_scope(item, at)
        parts = [_take(statement(b), at.env, self.decls.arg_tables) for b in body]
        total = sum(width for width, _, _ in parts)
        start = 0
        branches: list[tuple[ast.Stmt, str]] = []
        for k, (width, rest, span) in enumerate(parts):
            # the first part's node carries the split's line: the sum is checked there, against the input
            where = item.span if k == 0 else span
            attrs = ir.SliceAttrs(start=start, stop=start + width, of=total)
            part = self.out.add_node(self.names.synthetic(inner, "take"), attrs, (x,), where, at)
            branches.append((rest, part))
            start += width
        return self._branches(item, branches, x, at, inner)

    def _branches(
        self, item: ast.Item, branches: list[tuple[ast.Stmt | None, str]], x: str, at: Cursor, inner: Scope | None = None
    ) -> str:
        """Concatenated branches, each running on its own input (the container's, or a part of it); a
        branch of None is its input itself."""
        settings = self._container_settings(item, at)
        base = settings["base"].value if "base" in settings else 1
        inner = inner or self._own_scope(item, at)
        inside = at.inside(inner)
        outs: list[str] = []
        x_in = x
        labels: list[str] = []
        for k, (branch, source) in enumerate(branches):
            label = f"branch{base + k}"
            if branch is None:
                outs.append(source)
                labels.append(label)
                continue
            if inner.full(label) in self.names and not _names_itself(branch):
                raise SpecError(
                    f"this {item.head}'s branch {k + 1} would be `{inner.full(label)}`, a name an earlier {item.head} here "
                    "already gave",
                    branch.span,
                    hint=f"branches are named branch1, branch2, … in the {item.head}'s scope: give the {item.head} one of "
                    f"its own (`{item.head} as mixed_2:`), or put it in a block",
                )
            outs.append(self._branch(branch, source, replace(inside, label=label)))
            labels.append(label)
        if len(outs) < 2:
            raise SpecError(f"a {item.head} needs at least two branches, one per indented line", item.span)
        attrs = ir.ConcatAttrs(branches=tuple(labels))
        out = self.out.add_node(self.names.synthetic(inner, "concat"), attrs, tuple(outs), item.span, at)
        return self.out.add_scope(inner.path, x_in, out) if inner is not at.scope else out

    def _branch(self, stmt: ast.Stmt, x: str, at: Cursor) -> str:
        """A concat branch, ``at.label`` its label: one layer is that layer; a longer chain is an
        indexed scope of that name, unless every layer in it is named."""
        links = stmt.links
        if len(links) == 1:
            return self.statement(stmt, x, at)
        if _names_itself(stmt):
            return self.statement(stmt, x, replace(at, label=None))
        name = self.names.allocate(at.scope, "branch", None, at.label, stmt.span)
        out = self.statement(stmt, x, at.inside(Scope(name, indexed=True, home=at.scope.named)))
        return self.out.add_scope(name, x, out)

    def _residual(self, item: ast.Item, body: tuple[ast.Statement, ...], x: str, at: Cursor) -> str:
        settings = self._container_settings(item, at)
        scale = settings["scale"].value if "scale" in settings else 1.0
        act = settings["act"].value if "act" in settings else Activation.RELU
        if act not in (None, Activation.RELU):
            raise SpecError(f"a residual add's activation is `relu` or `linear`; `{act}` after the add is not supported",
                            settings["act"].span, hint="put the activation on the branch's last layer instead")
        if "drop_path" in settings and "drop_path_rate" in settings:
            raise SpecError(
                "a residual add takes `drop_path=` (its own rate) or `drop_path_rate=` (the linear rule), not both",
                settings["drop_path"].span,
                hint="`drop_path_rate=R`: the first such add drops with rate 0, the last with R, linearly between (timm's rule)",
            )
        drop_path = settings["drop_path"].value if "drop_path" in settings else 0.0
        inner = self._own_scope(item, at)
        shortcut, body = self._shortcut(item, body, x, at.inside(inner))
        out = self.sequence(body, x, at.inside(inner))
        last = self.out.nodes[-1]  # the branch's last layer is the last node made
        if out in self.out.default_bn_linear and last.span not in self.out.warned_at:
            self.out.warned_at.add(last.span)
            _warn_default_bn(last)
        attrs = ir.AddAttrs(scale=scale, act=act, drop_path=drop_path)
        out = self.out.add_node(self.names.synthetic(inner, "add"), attrs, (shortcut, out), item.span, at)
        if "drop_path_rate" in settings:
            rule = settings["drop_path_rate"]
            self.out.drop_path_rule.append((len(self.out.nodes) - 1, rule.value, rule.span))
        return self.out.add_scope(inner.path, x, out) if inner is not at.scope else out

    def _shortcut(
        self, item: ast.Item, body: tuple[ast.Statement, ...], x: str, at: Cursor
    ) -> tuple[str, tuple[ast.Statement, ...]]:
        """A residual body's first line ``shortcut: …`` is the projection the input takes to the
        add (ResNet's and Xception's 1×1/2 conv and batch norm beside a strided branch); returns
        the shortcut's value (the input itself when there is none) and the branch's statements."""
        first = statement(body[0])
        head = first.links[0]
        if not (isinstance(head, ast.Item) and head.head == "shortcut" and first.body is not None):
            return x, body
        if len(first.links) > 1 or head.terms or head.args is not None:
            raise SpecError(
                "`shortcut` takes no settings or name: its layers go after the `:`",
                head.span,
                hint="e.g. `shortcut: conv 1x1/2 128 linear nobias as skip -> bn as skipbn`",
            )
        if len(body) == 1:
            raise SpecError(
                "this residual has a shortcut but no branch",
                item.span,
                hint="the lines after `shortcut:` are the residual branch, added to the shortcut's output",
            )
        return self.sequence(first.body, x, at), body[1:]

    def _repeat(self, link: ast.Repeat, x: str, at: Cursor, body: tuple[ast.Statement, ...] | None) -> str:
        if not 1 <= link.count <= limits.MAX_REPEAT:
            raise SpecError(
                f"a repeat count must be between 1 and {limits.MAX_REPEAT}; got {link.count}", link.count_span
            )
        rename = written_rename(link.item.terms, at.env)
        item = without(link.item, (ast.Rename,))
        group = at
        if rename is not None or (at.label is not None and link.count > 1):
            name = self.names.allocate(at.scope, "repeat", rename, at.label, link.span)
            group = at.inside(Scope(name, indexed=True, home=None if rename else at.scope.named))
        x_in = x
        for c in range(link.count):
            # in a repeat inside a repeat, the copies are numbered by the outer one
            copy = group if at.repeat_index is not None else replace(group, repeat_index=c)
            x = self._link(item, x, copy, body)
        return self.out.add_scope(group.scope.path, x_in, x) if group is not at else x

    # --- blocks ------------------------------------------------------------

    def call(self, item: ast.Item, x: str, at: Cursor) -> str:
        """``block(args) [as name]``."""
        block = self.decls.blocks[item.head]
        values, keywords = call_arguments(item, at.env, self.decls.arg_tables)
        extra = [t for t in item.terms if not isinstance(t, ast.Rename)]
        if extra:
            raise SpecError(
                f"block `{block.name}` takes its arguments in parentheses",
                extra[0].span,
                hint=f"write `{block.name}({', '.join(p.name for p in block.params)})`",
            )
        return self.instantiate(block, values, keywords, item.span, written_rename(item.terms, at.env, flat=True), x, at)

    def instantiate(
        self,
        block: ast.BlockDef,
        values: Sequence[Located],
        keywords: dict[str, Located],
        span: Span,
        rename: ast.Rename | None,
        x: str,
        at: Cursor,
    ) -> str:
        """One instance of ``block`` with these arguments, named ``rename`` or by the scope's rule; a
        ``rename`` with ``{layer}`` in it opens no module: the instance's modules are that pattern filled in."""
        bound = bind(block, values, keywords, span, self.decls.arg_tables)
        self._check_type_arguments(block, bound, values, keywords)
        if len(at.calls) >= limits.MAX_CALL_DEPTH:
            raise SpecError(f"blocks call blocks more than {limits.MAX_CALL_DEPTH} deep", span)
        if block.name in at.calls:
            cycle = " → ".join([*at.calls[at.calls.index(block.name):], block.name])
            raise SpecError(f"block `{block.name}` calls itself: {cycle}", span, hint="blocks cannot be recursive")
        flat = rename.name if rename is not None and LAYER_FIELD in rename.name else None
        if flat is not None:
            rename = rename.model_copy(update={"name": flat_instance_name(flat)})
        name = self.names.allocate(at.scope, block.name, rename, at.label, span)
        scope = Scope(name, flat=at.scope.named.full(flat) if flat is not None else None)
        inside = replace(
            at.inside(scope), env=bound, calls=(*at.calls, block.name), defaults=self.decls.defaults_for(block.name)
        )
        out = self.sequence(block.body, x, inside)
        self.out.outputs[name] = out
        return self.out.add_scope(name, x, out, block.name)


#: The word that starts each line of a ``split:``.
TAKE = "take"


def _take(branch: ast.Stmt, env: Env, arg_tables: Mapping[str, Any]) -> tuple[int, ast.Stmt | None, Span]:
    """A split's line: ``take N [-> chain]`` → (N, the rest of the line or None, where ``take N`` is)."""
    first = branch.links[0]
    if not isinstance(first, ast.Item) or first.head != TAKE or branch.rows is not None:
        raise SpecError(
            f"each line of a `split:` starts with `{TAKE} N`, the number of channels it runs on",
            first.span,
            hint=f"e.g. `{TAKE} 16 -> dwconv 3x3` (the next 16 channels), or `{TAKE} 16` alone to pass them through",
        )
    terms = split_terms(first.terms, env, arg_tables)
    extra = [span for _, span in terms.words] + [span for _, _, span in terms.keyed] + [span for _, span in terms.positional[1:]]
    if first.args is not None or extra or not terms.positional:
        raise SpecError(f"`{TAKE}` takes one value, a number of channels", extra[0] if extra else first.span,
                        hint=f"e.g. `{TAKE} c - 3*g`; a width may be an expression of the block's parameters")
    value, span = terms.positional[0]
    width = as_int(value, f"a split part's width (`{TAKE}`)", span, maximum=limits.MAX_CHANNELS)
    if len(branch.links) == 1:
        if branch.body is not None:
            raise SpecError(f"`{TAKE}` does not take an indented body", first.span, hint=f"`{TAKE} N -> concat:`")
        return width, None, first.span
    rest = branch.model_copy(update={"links": branch.links[1:]})
    return width, rest, first.span


def _names_itself(branch: ast.Stmt) -> bool:
    """Whether a concat branch is named by what is written in it, not by its label: one link with
    an ``as`` name (or ``seq NAME``), or a chain whose every layer is named."""
    links = branch.links
    if len(links) > 1:
        return branch.body is None and all(isinstance(link, ast.Item) and rename_of(link.terms) for link in links)
    item = links[0].item if isinstance(links[0], ast.Repeat) else links[0]
    return rename_of(item.terms) is not None or (item.head == "seq" and bool(item.terms))


def _heads(stmts: Sequence[ast.Statement]) -> set[str]:
    """The words that head the items of ``stmts``, at any depth (a block body's)."""
    found: set[str] = set()
    for stmt in stmts:
        if isinstance(stmt, ast.BlockDef):
            continue
        found.update((link.item if isinstance(link, ast.Repeat) else link).head for link in stmt.links)
        found |= _heads(stmt.body or ())
    return found


def _no_count_after(item: ast.Item, env: Env) -> None:
    """``block35(0.17) x 5``: a repeat's count written after what it repeats."""
    for word, count in pairwise(item.terms):
        if (
            isinstance(word, ast.Positional) and isinstance(word.value, ast.Sym) and word.value.name == "x"
            and "x" not in env
            and isinstance(count, ast.Positional) and isinstance(count.value, ast.Num) and isinstance(count.value.value, int)
        ):
            shown = f"{item.head}(…)" if item.args is not None else f"{item.head} …"
            raise SpecError(
                "a repeat's count goes before what it repeats",
                word.span,
                hint=f"write `{count.value.text} x {shown}`",
            )


def _warn_default_bn(conv: ir.Node) -> None:
    """A residual branch that ends in a ``linear`` conv given a batch norm by ``defaults: conv bn``:
    legal, but Inception-ResNet's expansion has a bias and no batch norm, and nothing on the line says bn."""
    attrs = conv.attrs
    assert isinstance(attrs, ir.ConvAttrs)
    more = 2 * attrs.out_channels - (0 if attrs.bias else attrs.out_channels)
    warnings.warn(
        SpecWarning(
            f"this `linear` conv ends a residual branch, and `defaults:` gives it a batch norm "
            f"({more:+,} params per instance against `linear nobn`)",
            conv.span,
            hint="Inception-ResNet's 1x1 expansion has a bias and no batch norm: write `linear nobn`; "
            "write `bn` on the line to keep the batch norm",
        ),
        stacklevel=2,
    )


def statement(stmt: ast.Statement) -> ast.Stmt:
    """``stmt``, which must not be a block definition (those live at the top level of a file)."""
    if isinstance(stmt, ast.BlockDef):
        raise SpecError("blocks are defined at the top level of a file", stmt.span)
    return stmt
