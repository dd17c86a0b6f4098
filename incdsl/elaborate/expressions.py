"""Expressions and arguments: values of the terms of an item, and a block call's arguments bound to its parameters.

Everything here is a pure function of the syntax tree, the block arguments in
force (``env``) and the argument tables declared so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ast, limits
from ..errors import Span, SpecError, did_you_mean
from ..layers import Symbol

#: Block arguments in force: parameter name → value.
Env = Mapping[str, Any]
#: A value with where it was written.
Located = tuple[Any, Span]


@dataclass(frozen=True)
class ArgTable:
    """``table NAME col...`` and its rows: named argument sets (entries) for a block."""

    name: str
    columns: tuple[str, ...]
    #: entry label → column → value
    entries: Mapping[str, Mapping[str, Any]]
    span: Span


@dataclass(frozen=True)
class ArgSet:
    """The value of ``table.entry``: an argument table's entry, spread into keyword arguments."""

    values: Mapping[str, Any]


def evaluate(expr: ast.Expr | ast.Dims, env: Env, arg_tables: Mapping[str, ArgTable]) -> Any:
    """The value of an expression: a number, a string, a block argument, a :class:`Symbol`
    (a bare word that is not an argument) or an :class:`ArgSet`.

    >>> from incdsl.syntax import parse
    >>> item = parse("conv 1x1 2*n+1\\n").stmts[0].links[0]
    >>> evaluate(item.terms[1].value, {"n": 16}, {})
    33
    """
    if isinstance(expr, (ast.Num, ast.Str)):
        return expr.value
    if isinstance(expr, ast.Dims):
        return expr
    if isinstance(expr, ast.Sym):
        return env[expr.name] if expr.name in env else Symbol(expr.name)
    if isinstance(expr, ast.Neg):
        value = evaluate(expr.operand, env, arg_tables)
        _number(value, expr.operand.span)
        return -value
    if isinstance(expr, ast.TableRef):
        return ArgSet(_entry(expr, arg_tables))
    assert isinstance(expr, ast.BinOp)
    left, right = evaluate(expr.left, env, arg_tables), evaluate(expr.right, env, arg_tables)
    _number(left, expr.left.span)
    _number(right, expr.right.span)
    value = left + right if expr.op == "+" else left - right if expr.op == "-" else left * right
    return _bounded(value, expr.span)


def _bounded(value: int | float, span: Span) -> int | float:
    """A computed value, if within :data:`~incdsl.limits.MAX_NUMBER`: checked at each step, so
    a value squared through a chain of calls stops at the first step past the limit."""
    if not abs(value) <= limits.MAX_NUMBER:  # also false for nan
        raise SpecError(
            f"this expression's value is over the limit of {limits.MAX_NUMBER:,}",
            span,
            hint="no layer needs numbers this large; is a parameter multiplied by itself in a chain of calls?",
        )
    return value


def _entry(ref: ast.TableRef, arg_tables: Mapping[str, ArgTable]) -> Mapping[str, Any]:
    table = arg_tables.get(ref.table)
    if table is None:
        raise SpecError(f"unknown table `{ref.table}`", ref.span, hint=did_you_mean(ref.table, arg_tables))
    if ref.entry not in table.entries:
        raise SpecError(
            f"table `{ref.table}` has no row `{ref.entry}`",
            ref.span,
            hint=did_you_mean(ref.entry, table.entries) or f"rows: {', '.join(table.entries)}",
        )
    return table.entries[ref.entry]


def _number(value: Any, span: Span) -> None:
    if isinstance(value, Symbol):
        raise SpecError(f"`{value}` is not a parameter of this block, so it has no value here", span)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SpecError(f"arithmetic needs numbers; got `{value.text if isinstance(value, ast.Dims) else value}`", span)


def without(item: ast.Item, kinds: tuple[type, ...]) -> ast.Item:
    """``item`` without its terms of the given kinds."""
    return item.model_copy(update={"terms": tuple(t for t in item.terms if not isinstance(t, kinds))})


@dataclass(frozen=True)
class Terms:
    """An item's terms by role: flags (bare words), ``key=value`` options and positional values."""

    words: list[tuple[Symbol, Span]]
    keyed: list[tuple[str, Any, Span]]
    positional: list[Located]


def split_terms(terms: Sequence[ast.Term], env: Env, arg_tables: Mapping[str, ArgTable]) -> Terms:
    """Evaluate an item's terms and sort them by role (renames and annotations are left out)."""
    out = Terms([], [], [])
    for term in terms:
        if isinstance(term, ast.Option):
            out.keyed.append((term.key, evaluate(term.value, env, arg_tables), term.span))
        elif isinstance(term, ast.Dims):
            out.positional.append((term, term.span))
        elif isinstance(term, ast.Strided):
            out.positional.append((strided_window(term, env), term.span))
        elif isinstance(term, ast.Positional):
            value = evaluate(term.value, env, arg_tables)
            if isinstance(value, Symbol):
                out.words.append((value, term.span))
            else:
                out.positional.append((value, term.span))
    return out


def strided_window(term: ast.Strided, env: Env) -> ast.Dims:
    """``3x3/s``, ``k/2`` or ``k/s`` with the block's arguments filled in: a window with its stride.

    >>> from incdsl.syntax import parse
    >>> item = parse("conv 3x3/s 8\\n").stmts[0].links[0]
    >>> strided_window(item.terms[0], {"s": 2}).text
    '3x3/2'
    """
    size = term.size if isinstance(term.size, ast.Dims) else env.get(term.size.name, Symbol(term.size.name))
    if not isinstance(size, ast.Dims) or size.stride is not None:
        shown = size.text if isinstance(size, ast.Dims) else size
        raise SpecError(
            f"`{shown}` before `/` is not a window size",
            term.size.span,
            hint="the size is written like 3x3, or is a block parameter given one (`k` with `k=3x3`)",
        )
    stride = term.stride.value if isinstance(term.stride, ast.Num) else env.get(term.stride.name, Symbol(term.stride.name))
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise SpecError(
            f"the stride after `/` must be a whole number of at least 1; got `{stride}`",
            term.stride.span,
            hint="write e.g. `3x3/2`, or pass a number to the block parameter",
        )
    text = f"{'x'.join(map(str, size.sizes))}/{stride}"
    return ast.Dims.model_construct(span=term.span, sizes=size.sizes, stride=stride, text=text)


def call_arguments(
    item: ast.Item, env: Env, arg_tables: Mapping[str, ArgTable]
) -> tuple[list[Located], dict[str, Located]]:
    """The positional and keyword arguments of ``block(...)``; an argument table's entry spreads into keywords."""
    values: list[Located] = []
    keywords: dict[str, Located] = {}
    for arg in item.args or ():
        value = evaluate(arg.value, env, arg_tables)
        if isinstance(value, ArgSet):
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


def bind(
    block: ast.BlockDef,
    values: Sequence[Located],
    keywords: Mapping[str, Located],
    call: Span,
    arg_tables: Mapping[str, ArgTable],
) -> dict[str, Any]:
    """A block's parameters bound to a call's arguments, defaults filling the rest.

    >>> from incdsl.syntax import parse
    >>> block = parse("block b(n, m=2):\\n  conv 1x1 n\\n").stmts[0]
    >>> bind(block, [(8, None)], {}, None, {})
    {'n': 8, 'm': 2}
    """
    params = [p.name for p in block.params]
    signature = f"{block.name}({', '.join(params)})"
    if len(values) > len(params):
        raise SpecError(
            f"block `{block.name}` takes {len(params)} values; {len(values)} given",
            values[len(params)][1],
            hint=f"the block is `{signature}`",
        )
    bound: dict[str, Any] = {param.name: value for param, (value, _span) in zip(block.params, values, strict=False)}
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
        if param.name in bound:
            continue
        if param.default is None:
            missing = [p.name for p in block.params if p.name not in bound and p.default is None]
            raise SpecError(
                f"block `{block.name}` is missing argument `{missing[0]}`"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                call,
                hint=f"the block is `{signature}`; {len(values)} value(s) given",
            )
        bound[param.name] = evaluate(param.default, {}, arg_tables)
    return bound
