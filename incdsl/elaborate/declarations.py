"""Declarations: what a spec and the files it includes define before any layer is built —
blocks, argument tables and the network's defaults.

:func:`collect` walks the spec and its includes once; the walker then only
reads the :class:`Declarations` it returns. An included file gives its blocks
and argument tables; when it is a network spec itself (it has a ``network``, ``input``
or ``defaults:`` line), its layers, input and aux heads are left out, and its blocks
take its ``defaults:`` alone: a block means what its own file says, whoever includes
it. A block library (none of those lines) is written for its includer, and its
blocks take the defaults of the file that includes it. A file included twice (two
files including one library) is read once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import ast, limits
from ..errors import Span, SpecError, did_you_mean
from ..layers import CONTAINER_FLAGS, CONTAINER_OPTIONS, apply_settings
from ..operations import LAYER_TYPES
from .expressions import ArgTable, evaluate, split_terms
from .names import KEYWORDS, check_identifier

#: The lines that make a file a network spec, whose blocks mean what the file says on its own.
_STANDALONE = ("network", "input", "defaults")

#: ``resolve_include(path, span)``: the parsed file an ``include`` names, or a SpecError.
IncludeResolver = Callable[[str, Span], ast.SpecFile]


@dataclass(frozen=True)
class Declarations:
    """Blocks, argument tables and defaults, by name."""

    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    arg_tables: dict[str, ArgTable] = field(default_factory=dict)
    #: layer or container type → the terms of its ``defaults:`` lines, in order.
    defaults: dict[str, tuple[ast.Term, ...]] = field(default_factory=dict)
    #: block → the defaults it is elaborated under: those of the network spec that defines it
    #: (or, for a library's block, that includes the library).
    block_defaults: dict[str, dict[str, tuple[ast.Term, ...]]] = field(default_factory=dict)
    #: The files collected so far: a file included a second time (from anywhere) adds nothing.
    files: set[str] = field(default_factory=set)

    def defaults_for(self, block: str) -> dict[str, tuple[ast.Term, ...]]:
        """The defaults in force inside ``block``."""
        return self.block_defaults[block]


def collect(spec: ast.SpecFile, resolve_include: IncludeResolver) -> Declarations:
    """The declarations of ``spec`` and of the files it includes (defaults only from ``spec`` itself).

    >>> from incdsl.syntax import parse
    >>> spec = parse("block b(n):\\n  conv 1x1 n\\ndefaults:\\n  conv bn\\n")
    >>> decls = collect(spec, resolve_include=None)
    >>> list(decls.blocks), [t.value.name for t in decls.defaults["conv"]]
    (['b'], ['bn'])
    """
    found = Declarations()
    found.files.add(spec.path)
    _collect(spec, [spec.path], resolve_include, found, found.defaults)
    return found


def _collect(
    spec: ast.SpecFile,
    chain: list[str],
    resolve_include: IncludeResolver,
    found: Declarations,
    defaults: dict[str, tuple[ast.Term, ...]],
) -> None:
    """Collect ``spec``'s declarations; ``defaults`` is the dict its blocks take their defaults
    from, filled by its own ``defaults:`` lines as they are read (shared with the libraries it
    includes, so a line after the ``include`` counts too)."""
    for stmt in spec.stmts:
        if isinstance(stmt, ast.BlockDef):
            _define_block(found.blocks, stmt)
            found.block_defaults[stmt.name] = defaults
            continue
        head = stmt.links[0]
        if not isinstance(head, ast.Item):
            continue
        if head.head == "include":
            included = _include(head, chain, resolve_include)
            if included.path not in found.files:  # each file once, however many include it
                found.files.add(included.path)
                own = {} if is_network_spec(included) else defaults
                _collect(included, [*chain, included.path], resolve_include, found, own)
        elif head.head == "table":
            _define_arg_table(found.arg_tables, stmt, head)
        elif head.head == "defaults":
            _define_defaults(defaults, stmt, head, found.arg_tables)


def is_network_spec(spec: ast.SpecFile) -> bool:
    """Whether ``spec`` says what its blocks mean on its own: it has a ``network``, ``input`` or
    ``defaults:`` line. A file with none of them is a block library, written for its includer."""
    return any(
        isinstance(stmt, ast.Stmt) and isinstance(stmt.links[0], ast.Item) and stmt.links[0].head in _STANDALONE
        for stmt in spec.stmts
    )



def _include(item: ast.Item, chain: list[str], resolve_include: IncludeResolver) -> ast.SpecFile:
    strings = [t.value.value for t in item.terms if isinstance(t, ast.Positional) and isinstance(t.value, ast.Str)]
    if len(strings) != 1 or len(item.terms) != 1 or item.args is not None:
        raise SpecError("`include` takes one quoted path", item.span, hint='write e.g. `include "blocks/v4.inc"`')
    if len(chain) > limits.MAX_INCLUDE_DEPTH:
        raise SpecError(f"includes are nested more than {limits.MAX_INCLUDE_DEPTH} deep", item.span)
    included = resolve_include(strings[0], item.span)
    if included.path in chain:
        loop = [*chain[chain.index(included.path):], included.path]
        base = os.path.dirname(loop[0])
        cycle = " → ".join(os.path.relpath(p, base) if base else p for p in loop)
        raise SpecError(f"include cycle: {cycle}", item.span, hint="remove one of these includes")
    return included


def _define_block(blocks: dict[str, ast.BlockDef], block: ast.BlockDef) -> None:
    if block.name in blocks:
        first = blocks[block.name].name_span
        raise SpecError(f"block `{block.name}` is defined twice", block.name_span, hint=f"first defined at {first}")
    if block.name in LAYER_TYPES or block.name in KEYWORDS:
        raise SpecError(f"`{block.name}` is a built-in word and cannot name a block", block.name_span)
    check_identifier(block.name, block.name_span, "block name")
    seen: set[str] = set()
    for param in block.params:
        if param.name in seen:
            raise SpecError(f"parameter `{param.name}` appears twice", param.span)
        seen.add(param.name)
    blocks[block.name] = block


def _define_arg_table(arg_tables: dict[str, ArgTable], stmt: ast.Stmt, head: ast.Item) -> None:
    names = [t.value.name for t in head.terms if isinstance(t, ast.Positional) and isinstance(t.value, ast.Sym)]
    if stmt.rows is None or len(names) != len(head.terms) or len(names) < 2:
        raise SpecError(
            "an argument table is `table NAME col1 col2 ...` followed by indented rows",
            head.span,
            hint="e.g. `table reduction_a k l m n` then rows like `  inception_v4 192 224 256 384`",
        )
    name, *columns = names
    if name in arg_tables:
        raise SpecError(f"table `{name}` is defined twice", head.span)
    entries: dict[str, dict[str, Any]] = {}
    for row in stmt.rows:
        values = [evaluate(t.value, {}, arg_tables) for t in row.terms if isinstance(t, ast.Positional)]
        if len(values) != len(columns) or len(values) != len(row.terms):
            raise SpecError(
                f"row `{row.label}` of table `{name}` has {len(row.terms)} values; the table has "
                f"{len(columns)} columns ({', '.join(columns)})",
                row.span,
            )
        entries[row.label] = dict(zip(columns, values, strict=True))
    arg_tables[name] = ArgTable(name, tuple(columns), entries, head.span)


def _define_defaults(
    defaults: dict[str, tuple[ast.Term, ...]], stmt: ast.Stmt, head: ast.Item, arg_tables: Mapping[str, ArgTable]
) -> None:
    if stmt.body is None:
        raise SpecError("`defaults` needs `:` and indented lines like `conv bn eps=0.001`", head.span)
    for line in stmt.body:
        if isinstance(line, ast.BlockDef) or len(line.links) != 1 or not isinstance(line.links[0], ast.Item):
            raise SpecError("each line under `defaults:` is a layer type and its settings", line.span)
        item = line.links[0]
        op = item.head
        flags, options = _vocabulary(op, item)
        terms = split_terms(item.terms, {}, arg_tables)
        if terms.positional or any(isinstance(t, (ast.Rename, ast.Annotation, ast.Dims)) for t in item.terms):
            raise SpecError(f"defaults set flags and options only; `{op}` here cannot take values", item.span)
        apply_settings(op, flags, options, terms.words, terms.keyed, {})
        defaults[op] = defaults.get(op, ()) + item.terms


def _vocabulary(op: str, item: ast.Item) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
    if op in LAYER_TYPES:
        return LAYER_TYPES[op].flags, LAYER_TYPES[op].options
    if op in CONTAINER_OPTIONS:
        return CONTAINER_FLAGS[op], CONTAINER_OPTIONS[op]
    raise SpecError(
        f"unknown layer type `{op}`",
        item.head_span,
        hint=did_you_mean(op, [*LAYER_TYPES, *CONTAINER_OPTIONS]),
    )
