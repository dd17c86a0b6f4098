"""Tables as GoogLeNet's Table 1 prints them, and the paper's own figures.

A *table* in a spec is a header naming a block and its columns, with indented
*rows*: each row is a label and the block's arguments, and instantiates the
block once as module ``{block}_{row}`` (or after the header's ``as "pattern{row}"``).
The header may end with ``@paper(params, ops)``: each row then also carries the
figures the paper prints for it, which the params table sets beside ours.

:class:`Headers` remembers the headers read so far (the params table's column
sets, and the last header of each block, which a later table may reuse).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import ast, ir
from ..errors import Span, SpecError, did_you_mean
from ..operations import LAYER_TYPES
from .expressions import ArgTable, Env, Located, evaluate, without
from .names import CONTAINERS, KEYWORDS, LAYER_FIELD, check_module_name, flat_instance_name, rename_of

DEFAULT_PATTERN = "{block}_{row}"


@dataclass(frozen=True)
class Header:
    """What a header says: its column set (an index into :attr:`Headers.all`), the name
    pattern of its modules and the paper figures its rows end with."""

    index: int
    columns: tuple[str, ...]
    pattern: str
    paper: tuple[str, ...]


@dataclass(frozen=True)
class RowCall:
    """One row of a table, ready to instantiate its block."""

    row: ast.Row
    values: list[Located]
    paper: ir.PaperFigures | None
    #: The module's name: the row's own ``as name``, or the header's pattern filled in.
    rename: ast.Rename


@dataclass
class Headers:
    """Column sets for the params table, and each block's last header."""

    all: list[ir.TableHeader] = field(default_factory=list)
    _last: dict[str, Header] = field(default_factory=dict)

    def read(self, header: ast.Item, block: ast.BlockDef) -> Header:
        """The header of a table of ``block``; one without labels repeats the block's previous header."""
        labels, pattern, paper = _header_terms(header)
        previous = self._last.get(block.name)
        if not labels:
            if previous is None:
                raise SpecError(
                    f"the table of `{block.name}` has no column labels",
                    header.span,
                    hint='quote labels that start with `#` ("#1x1"): a bare `#` starts a comment',
                )
            return Header(
                previous.index,
                previous.columns,
                previous.pattern if pattern in (None, DEFAULT_PATTERN) else pattern,
                paper or previous.paper,
            )
        required = [p.name for p in block.params if p.default is None]
        if len(labels) > len(block.params) or len(labels) < len(required):
            raise SpecError(
                f"the header names {len(labels)} columns; block `{block.name}` takes "
                f"{len(block.params)} parameters ({', '.join(p.name for p in block.params)})",
                header.span,
                hint="the columns map to the block's parameters in order",
            )
        self.all.append(ir.TableHeader(block=block.name, columns=labels))
        read = Header(len(self.all) - 1, labels, pattern or DEFAULT_PATTERN, paper)
        self._last[block.name] = read
        return read

    def for_call(self, call: ast.Item, arg_tables: Mapping[str, ArgTable]) -> tuple[int | None, tuple[Any, ...]]:
        """A call given an argument table's entry (``reduction_a(reduction_a_filters.inception_v4)``)
        shows that table's columns in the params table, as a table row shows its header's."""
        refs = [arg.value for arg in call.args or () if isinstance(arg.value, ast.TableRef)]
        table = arg_tables.get(refs[0].table) if len(refs) == 1 else None
        if table is None or refs[0].entry not in table.entries:
            return None, ()  # nothing to show, or an error the call itself reports
        header = ir.TableHeader(block=call.head, columns=table.columns)
        if header not in self.all:
            self.all.append(header)
        return self.all.index(header), tuple(table.entries[refs[0].entry].values())


#: ``{row}``, ``{block}`` and ``{layer}`` in a name pattern; nothing else between braces is a field.
_FIELD = re.compile(r"\{([^{}]*)\}")
PATTERN_FIELDS = ("row", "block", "layer")


def check_pattern(pattern: str, span: Span) -> None:
    """A table's name pattern holds ``{row}``, maybe ``{block}`` and ``{layer}`` (each instance's
    modules named flat, beside it), and no other braces.

    >>> check_pattern("inception{row}", None)
    >>> check_pattern("m{row}{0}", Span("t.inc", 1, 1))
    Traceback (most recent call last):
    incdsl.errors.SpecError: t.inc:1:1: error: `{0}` in a name pattern: the fields are {row}, {block} and {layer}
    hint: e.g. `as "inception{row}"` names the modules inception3a, inception3b, ...
    """
    hint = 'e.g. `as "inception{row}"` names the modules inception3a, inception3b, ...'
    for name in _FIELD.findall(pattern):
        if name not in PATTERN_FIELDS:
            raise SpecError(f"`{{{name}}}` in a name pattern: the fields are {{row}}, {{block}} and {{layer}}", span, hint=hint)
    if "{" in _FIELD.sub("", pattern) or "}" in _FIELD.sub("", pattern):
        raise SpecError("a name pattern has a brace that opens or closes no field", span, hint=hint)
    if "{row}" not in pattern:
        raise SpecError("a table's name pattern must contain `{row}`", span, hint=hint)
    if pattern.count(LAYER_FIELD) > 1:
        raise SpecError("a name pattern holds `{layer}` once", span, hint=_FLAT_HINT)


_FLAT_HINT = (
    'a block instance named `as "inception_3a_{layer}"` names its modules inception_3a_1x1, '
    "inception_3a_3x3, … beside it, with no module of its own"
)


def written_rename(terms: Sequence[ast.Term], env: Env, flat: bool = False) -> ast.Rename | None:
    """An item's (or a row's) ``as`` name, which is taken as written: refused where it reads as
    something filled in — a ``{field}`` outside a table header's pattern (but ``{layer}`` in a block
    instance's name, when ``flat``), or a bare name that is a parameter of the block it is in
    (``as name`` names the layer `name`, not the argument).

    >>> from incdsl.syntax import parse
    >>> terms = parse('conv 1x1 4 as "1x1"\\n').stmts[0].links[0].terms
    >>> written_rename(terms, {"n": 4}).name
    '1x1'
    """
    rename = rename_of(terms)
    if rename is None:
        return None
    if flat and LAYER_FIELD in rename.name:
        _check_flat(rename)
        return rename
    if LAYER_FIELD in rename.name:
        raise SpecError(
            f"`{rename.name}`: `{{layer}}` names the modules of a block instance, and this is not one",
            rename.span,
            hint=_FLAT_HINT,
        )
    if "{" in rename.name or "}" in rename.name:
        raise SpecError(
            f"`{rename.name}`: fields such as {{row}} are filled in only in a table header's name pattern",
            rename.span,
            hint="a layer's `as` name is taken as written; inside a block, write the name alone (`as \"1x1\"`): "
            "the block instance's name sets the copies apart (`Mixed_5b.1x1`)",
        )
    if not rename.quoted and rename.name in env:
        raise SpecError(
            f"`{rename.name}` is a parameter of this block, and `as` takes a name as written, not a parameter's value",
            rename.span,
            hint=f'to call the layer `{rename.name}` itself, quote it: `as "{rename.name}"`; otherwise choose another name',
        )
    return rename


def _check_flat(rename: ast.Rename) -> None:
    """A flat name pattern: ``{layer}`` once, no other field, and a name of its own beside it."""
    rest = rename.name.replace(LAYER_FIELD, "", 1)
    if "{" in rest or "}" in rest:
        raise SpecError(f"`{rename.name}`: a block instance's name holds only the field `{{layer}}`, once",
                        rename.span, hint=_FLAT_HINT)
    if not flat_instance_name(rename.name):
        raise SpecError(f"`{rename.name}` gives the instance no name of its own", rename.span, hint=_FLAT_HINT)


def fill_pattern(pattern: str, block: str, row: str) -> str:
    """A module's name from a checked pattern: each field replaced, nothing else read (``{layer}``
    stays, for the instance's modules).

    >>> fill_pattern("{block}_{row}", "inception", "3a")
    'inception_3a'
    """
    values = {"row": row, "block": block, "layer": LAYER_FIELD}
    return _FIELD.sub(lambda field: values[field.group(1)], pattern)


def _header_terms(header: ast.Item) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """A header's column labels, its name pattern (None if it gives none) and its paper columns."""
    labels: list[str] = []
    pattern = None
    paper: list[str] = []
    for term in header.terms:
        if isinstance(term, ast.Positional) and isinstance(term.value, ast.Str):
            labels.append(term.value.value)
        elif isinstance(term, ast.Positional) and isinstance(term.value, ast.Sym):
            labels.append(term.value.name)
        elif isinstance(term, ast.Rename) and term.quoted:
            check_pattern(term.name, term.span)
            pattern = term.name
        elif isinstance(term, ast.Annotation) and term.name == "paper":
            for arg in term.args:
                if not (arg.name is None and isinstance(arg.value, ast.Sym) and arg.value.name in ("params", "ops")):
                    raise SpecError("a header's `@paper(...)` lists the paper's columns: params, ops", arg.span)
                paper.append(arg.value.name)
        else:
            raise SpecError(
                "a table header is a block name followed by column labels",
                term.span,
                hint='labels are quoted ("#3x3 reduce") or plain names; `as "pattern{row}"` names the modules',
            )
    return tuple(labels), pattern, tuple(paper)


def table_block(stmt: ast.Stmt, header: ast.Item, blocks: Mapping[str, ast.BlockDef]) -> ast.BlockDef:
    """The block a table's header names."""
    name = header.head
    if name in blocks:
        return blocks[name]
    assert stmt.rows is not None
    if name in CONTAINERS:
        end = Span(header.span.file, header.span.end_line, header.span.end_column, header.span.end_line, header.span.end_column + 1)
        raise SpecError(
            f"`{name}` needs `:` at the end of its line",
            end,
            hint=f"write `{name}:` (its settings before the `:`), then its indented lines",
        )
    if name in LAYER_TYPES or name in KEYWORDS:
        raise SpecError(
            "unexpected indentation",
            stmt.rows[0].span,
            hint=f"`{name} ...` is not a table header; indented lines follow only a `:` or a header",
        )
    raise SpecError(
        f"unknown block `{name}`",
        header.head_span,
        hint=did_you_mean(name, blocks) or "a table header starts with the name of a block",
    )


def row_calls(
    stmt: ast.Stmt, block: ast.BlockDef, header: Header, env: Env, arg_tables: Mapping[str, ArgTable]
) -> Iterator[RowCall]:
    """The table's rows one by one (each checked when it is reached, so errors come in the file's order)."""
    assert stmt.rows is not None
    columns = header.columns
    n_paper = len(header.paper)
    for row in stmt.rows:
        terms = [t for t in row.terms if isinstance(t, (ast.Positional, ast.Dims))]
        if len(terms) != len(columns) + n_paper:
            paper_part = f" and {n_paper} paper figure(s)" if n_paper else ""
            raise SpecError(
                f"row `{row.label}` has {len(terms)} values; the header names {len(columns)} columns{paper_part}",
                row.span,
                hint=f"columns: {', '.join(columns)}" + (f", then {', '.join(header.paper)}" if n_paper else ""),
            )
        values = [(evaluate(_value(t), env, arg_tables), t.span) for t in terms[: len(columns)]]
        paper_exprs = {k: _value(t) for k, t in zip(header.paper, terms[len(columns):], strict=True)}
        annotations = [t for t in row.terms if isinstance(t, ast.Annotation)]
        paper = None
        if paper_exprs or annotations:
            paper = paper_figures(annotations[0] if annotations else None, paper_exprs)
        rename = written_rename(row.terms, env, flat=True)
        if rename is None:
            module = fill_pattern(header.pattern, block.name, row.label)
            check_module_name(flat_instance_name(module), row.label_span, "module name")
            rename = ast.Rename.model_construct(span=row.label_span, name=module, quoted=False)
        yield RowCall(row, values, paper, rename)


def _value(term: ast.Positional | ast.Dims) -> ast.Expr | ast.Dims:
    return term if isinstance(term, ast.Dims) else term.value


def paper_figures(term: ast.Annotation | None, given: Mapping[str, ast.Expr]) -> ir.PaperFigures:
    """``@paper(params=2.7K, ops=34M, note="...")`` (and a table's paper columns) → figures.

    >>> from incdsl.syntax import parse
    >>> item = parse("conv 7x7/2 64 @paper(params=2.7K)\\n").stmts[0].links[0]
    >>> paper_figures(item.terms[-1], {}).params.text
    '2.7K'
    """
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


def take_paper(stmt: ast.Stmt) -> tuple[ast.Stmt, ir.PaperFigures | None]:
    """A top-level line without its ``@paper(...)``, and the figures it gave."""
    paper = None
    links = []
    for link in stmt.links:
        item = link.item if isinstance(link, ast.Repeat) else link
        for term in item.terms:
            if isinstance(term, ast.Annotation):
                paper = paper_figures(term, {})
        stripped = without(item, (ast.Annotation,))
        links.append(link.model_copy(update={"item": stripped}) if isinstance(link, ast.Repeat) else stripped)
    return stmt.model_copy(update={"links": tuple(links)}), paper
