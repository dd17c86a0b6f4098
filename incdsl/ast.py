"""The syntax tree of a spec file: what was written, where, nothing inferred.

Every node carries the :class:`~incdsl.errors.Span` it came from, so that any
later stage can point at the text when something is wrong. The tree is made
of frozen pydantic models and is therefore hashable-free but immutable and
JSON-dumpable (``SpecFile.model_dump_json()``) for debugging.

The parser (:mod:`incdsl.syntax`) is the one producer and builds every field
with its declared type, so it makes nodes with ``model_construct``: no
validator is built or run on the way from text to IR (``defer_build``), which
keeps `incdsl check` quick to start. Validation and dumping still work; their
schemas are built on first use.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .errors import Span


class Node(BaseModel):
    """Where a piece of syntax was written; every node of the tree is one."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    span: Span


# --- expressions ----------------------------------------------------------


class Num(Node):
    """A number as written: ``64``, ``0.001``, ``1e-3``, ``2.7K`` (``K``, ``M``, ``G``
    scale it). ``text`` keeps the spelling, whose last digit tells a paper figure's precision."""

    kind: Literal["num"] = "num"
    value: int | float
    text: str


class Str(Node):
    """A quoted string, without its quotes: a column label, a path, a note."""

    kind: Literal["str"] = "str"
    value: str


class Sym(Node):
    """A bare name: a block parameter, or a flag such as ``linear`` or ``V``; which of
    the two is decided where it is used, against the block's parameters."""

    kind: Literal["sym"] = "sym"
    name: str


class TableRef(Node):
    """``table.entry``: an entry (a row) of an argument table, used as a block's arguments
    (``reduction_a(reduction_a_filters.inception_v4)``)."""

    kind: Literal["table_ref"] = "table_ref"
    table: str
    entry: str


class BinOp(Node):
    """``left op right``, for arithmetic on block parameters (``2*n``, ``n + 32``);
    ``*`` binds tighter than ``+`` and ``-``."""

    kind: Literal["binop"] = "binop"
    op: Literal["+", "-", "*"]
    left: Expr
    right: Expr


class Neg(Node):
    """``-operand``."""

    kind: Literal["neg"] = "neg"
    operand: Expr


Expr = Num | Str | Sym | TableRef | BinOp | Neg


# --- the parts of an item ---------------------------------------------------


class Arg(Node):
    """An argument of a call or annotation: positional, or ``name=value``; a size such as
    ``3x3`` may be passed to a block too."""

    name: str | None
    value: Expr | Dims


class Dims(Node):
    """``3x3``, ``1x7``, ``3x3/2`` or ``3x224x224``."""

    kind: Literal["dims"] = "dims"
    sizes: tuple[int, ...]
    stride: int | None
    text: str


class Strided(Node):
    """A window with a parameter in it: ``3x3/s``, ``k/2`` or ``k/s`` (``size`` a size or a
    parameter's name, ``stride`` a number or a parameter's name)."""

    kind: Literal["strided"] = "strided"
    size: Dims | Sym
    stride: Num | Sym


class Positional(Node):
    """A value in its place among a layer's terms: ``64`` in ``conv 3x3 64``, or a flag
    such as ``V`` or ``linear`` (a bare name the elaborator resolves)."""

    kind: Literal["positional"] = "positional"
    value: Expr


class Option(Node):
    """``key=value``, as in ``eps=0.001``."""

    kind: Literal["option"] = "option"
    key: str
    value: Expr


class Rename(Node):
    """``as name`` (an explicit layer name) or ``as "pattern{row}"`` in a table header."""

    kind: Literal["rename"] = "rename"
    name: str
    quoted: bool


class Annotation(Node):
    """``@paper(params=2.7K, ops=34M)``."""

    kind: Literal["annotation"] = "annotation"
    name: str
    args: tuple[Arg, ...]


Term = Dims | Strided | Positional | Option | Rename | Annotation


# --- statements -------------------------------------------------------------


class Item(Node):
    """One link of a chain: ``conv 3x3/2 64 V as conv1`` or ``block35(scale=0.17)``."""

    kind: Literal["item"] = "item"
    head: str
    head_span: Span
    args: tuple[Arg, ...] | None
    terms: tuple[Term, ...]


class Repeat(Node):
    """``4 x inception_a``."""

    kind: Literal["repeat"] = "repeat"
    count: int
    count_span: Span
    item: Item


Link = Item | Repeat


class Row(Node):
    """A line indented under a table's header: a label (``3a``), then values,
    and optionally ``as name`` or ``@paper(...)``."""

    label: str
    label_span: Span
    terms: tuple[Term, ...]


class Stmt(Node):
    """A chain of links; a compound statement also owns the suite after its ``:``,
    and a table header owns the rows indented under it."""

    kind: Literal["stmt"] = "stmt"
    links: tuple[Link, ...]
    body: tuple[Statement, ...] | None = None
    rows: tuple[Row, ...] | None = None


class Param(Node):
    """A block parameter, with its default value if it has one."""

    name: str
    default: Expr | Dims | None


class BlockDef(Node):
    """``block name(params):`` and the statements of its body."""

    kind: Literal["block"] = "block"
    name: str
    name_span: Span
    params: tuple[Param, ...]
    body: tuple[Statement, ...]


Statement = Stmt | BlockDef


class SpecFile(BaseModel):
    """A parsed file: its path, its text (for error excerpts) and its top-level statements."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    path: str
    source: str
    stmts: tuple[Statement, ...]

