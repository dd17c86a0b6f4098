"""`incdsl fmt`: one layout for every spec, with Table-1 rows aligned into columns.

The formatter changes whitespace only: indentation becomes two spaces a level,
tokens are separated as the language reads best (``conv 3x3/2 64 V``,
``block35(scale=0.17)``, ``a -> b``), continuation lines after a trailing
``->`` are indented four spaces, and each table's header and rows are aligned
into columns (labels left, values right). Comments and single blank lines
survive. The tokens are the parser's own (:func:`incdsl.syntax.tokens`), so a
token is never split or merged (``eps=1e-5`` stays one number), lines are the
parser's lines (only a line feed ends one) and indentation is measured as the
parser measures it; and the result is checked to read as the same tokens, the
same syntax tree and (for a network) the same network before it is returned, so
``fmt`` cannot change what a file means: where it would, it refuses.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lark import Token
from pydantic import BaseModel

from . import ast, limits
from .errors import Span, SpecError, SpecWarning
from .frontend import loads_parsed
from .syntax import LAYOUT_TOKENS, indent_width, parse, tokens

INDENT = "  "
CONTINUATION = "    "
_NO_SPACE_BEFORE = {")", ",", ":", "=", "(", ".", "/"}
_NO_SPACE_AFTER = {"(", "=", "@", ".", "/"}
_BINARY = {"+", "*", "-"}


def format_spec(text: str, file: str = "<string>", include_path: Sequence[str | os.PathLike[str]] = ()) -> str:
    """The formatted text of a spec; raises SpecError if it does not parse, or if the formatted
    text would not mean what ``text`` means (``include_path`` is for loading the two to compare).

    >>> format_spec("network t\\ninput 3x8x8\\nconv   3x3  4->conv 1x1 4\\n")
    'network t\\ninput 3x8x8\\nconv 3x3 4 -> conv 1x1 4\\n'
    """
    tree = parse(text, file)
    read = tokens(text)
    code = _code_tokens(read)
    formatted = _Formatter(text, code, _table_cells(tree, code)).run()
    if len(formatted) > limits.MAX_FILE_CHARS:  # its indentation and alignment made it longer
        raise SpecError(
            f"formatted, this file would be {len(formatted):,} characters long, over the limit of "
            f"{limits.MAX_FILE_CHARS:,} for a spec, so it is left as it is",
            Span(file, 1, 1),
            hint="split it with `include`",
            source=text,
        )
    difference = meaning_difference(text, formatted, file, include_path, read=(read, tree))
    if difference:
        raise SpecError(
            f"formatting would change what this file means ({difference}), so it is left as it is",
            Span(file, 1, 1),
            hint="this is a bug in incdsl fmt; please report it with the file",
            source=text,
        )
    return formatted


def meaning_difference(
    text: str,
    formatted: str,
    file: str = "<string>",
    include_path: Sequence[str | os.PathLike[str]] = (),
    *,
    read: tuple[list[Token], ast.SpecFile] | None = None,
) -> str | None:
    """What differs between what two spec texts mean, or None: their significant tokens, their
    syntax trees (positions aside), and — when ``text`` loads as a network — the networks
    they load to (the formatted text read as if it were the file itself, so includes resolve alike).
    ``read`` is ``text``'s tokens and tree where the caller has them (each reading costs as
    much as the rest of formatting)."""
    text_tokens, tree = read if read is not None else (tokens(text), parse(text, file))
    if significant_tokens(formatted) != _significant(text_tokens):
        return "its tokens differ"
    try:
        formatted_tree = parse(formatted, file)
    except SpecError:
        return "the formatted text does not parse"
    if _without_positions(formatted_tree) != _without_positions(tree):
        return "its syntax tree differs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)  # `check` shows them; formatting is not the place
        try:
            before = loads_parsed(text, tree, file=file, include_path=include_path)
        except SpecError:
            return None  # a block library, or a spec with a mistake its check will report: its tree is what it means
        try:
            after = loads_parsed(formatted, formatted_tree, file=file, include_path=include_path)
        except SpecError:
            return "the formatted text does not load"
    if _without_positions(after.to_json()) != _without_positions(before.to_json()):
        return "it loads to a different network"
    return None


def _without_positions(value: Any) -> Any:
    """A syntax tree's or network's dump without where things were written."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude={"source"} if isinstance(value, ast.SpecFile) else None)
    if isinstance(value, dict):
        return {k: _without_positions(v) for k, v in value.items() if not k.endswith("span") and k != "origin"}
    if isinstance(value, list):
        return [_without_positions(v) for v in value]
    return value


def significant_tokens(text: str) -> list[tuple[str, str]]:
    """What a spec says, layout aside: each token's type and text, with line ends and
    comments left out (indentation kept as its tokens, which carry structure)."""
    return _significant(tokens(text))


def _significant(read: list[Token]) -> list[tuple[str, str]]:
    return [(t.type, "" if t.type in LAYOUT_TOKENS else "->" if t.type == "ARROW" else str(t)) for t in read if t.type != "_NL"]


# --- tokens and spacing ------------------------------------------------------------


def _code_tokens(read: list[Token]) -> dict[int, list[Token]]:
    """The parser's tokens by the line they start on, line ends and indentation left out."""
    found: dict[int, list[Token]] = defaultdict(list)
    for token in read:
        if token.type not in LAYOUT_TOKENS:
            found[token.line].append(token)
    return found


def _spelling(token: Token) -> str:
    # `->` at the end of a line also holds the line break and comments after it
    return "->" if token.type == "ARROW" else str(token)


def _line(raw: str, code: list[Token]) -> tuple[list[str], str | None]:
    """A line's tokens as written, and its trailing comment."""
    if not code:
        return [], None
    last = code[-1]
    rest = raw[last.column - 1 + len(_spelling(last)) :].strip(" \t")
    return [_spelling(t) for t in code], rest or None


def _is_value(token: str) -> bool:
    return token[0].isalnum() or token[0] in "_\"" or token == ")"


def join_tokens(tokens: list[str]) -> str:
    """Tokens joined with the spacing the language reads best with."""
    out = ""
    prev: str | None = None
    for i, tok in enumerate(tokens):
        if prev is None:
            out = tok
        elif _attached(prev, tok):
            out += tok
        elif tok == "@":
            out += "  " + tok
        elif prev in _BINARY and _unary(tokens, i - 1):
            out += tok
        else:
            out += " " + tok
        prev = tok
    return out


def _attached(prev: str, tok: str) -> bool:
    """No space between these two: a call's `(`, `a.b`, `key=value`, `(x, y)`."""
    call = tok == "(" and _is_value(prev) and not prev.startswith('"')
    return call or tok in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER


def _unary(tokens: list[str], i: int) -> bool:
    """Whether tokens[i] (a + - *) is a unary minus, by what comes before it."""
    if tokens[i] != "-":
        return False
    before = tokens[i - 1] if i > 0 else None
    if before is None or before in {"(", ",", "=", "->", "+", "-", "*", "@"}:
        return True
    return "x" in before and before[0].isdigit()  # after a size like 3x3 a new value starts


# --- tables ------------------------------------------------------------------------


def _cells_of(terms: tuple[ast.Term, ...], code: dict[int, list[Token]]) -> list[str]:
    return [join_tokens(_tokens_in(code, t.span)) for t in terms]


def _tokens_in(code: dict[int, list[Token]], span) -> list[str]:
    end = span.end_column if span.end_line == span.line else None
    return [_spelling(t) for t in code[span.line] if t.column >= span.column and (end is None or t.column < end)]


@dataclass(frozen=True)
class _TableCells:
    block: str
    header: list[str]
    rows: dict[int, list[str]]


def _table_cells(tree: ast.SpecFile, code: dict[int, list[Token]]) -> dict[int, _TableCells]:
    """Cells of every table, by the line number of its header."""
    found: dict[int, _TableCells] = {}

    def visit(stmts: tuple[ast.Statement, ...]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Stmt) and stmt.rows is not None and isinstance(stmt.links[0], ast.Item):
                head = stmt.links[0]
                header = [head.head, *_cells_of(head.terms, code)]
                if head.head == "table" and len(header) > 1:  # `table NAME col...`: the name is no column
                    header[:2] = [f"table {header[1]}"]
                rows = {r.span.line: [r.label, *_cells_of(r.terms, code)] for r in stmt.rows}
                found[head.span.line] = _TableCells(header[0], header, rows)
            if stmt.body:
                visit(stmt.body)

    visit(tree.stmts)
    return found


def _trailing(cell: str) -> bool:
    """Annotations and name patterns that follow a header's columns."""
    return cell.startswith(("@", "as "))


def _widths(tables: list[_TableCells]) -> list[int]:
    """Column widths shared by all the tables of one block, so they line up alike."""
    lines = [c for t in tables for c in (t.header, *t.rows.values())]
    widths = [0] * max(len(line) for line in lines)
    for t in tables:
        widths[0] = max(widths[0], len(t.header[0]), *(len(INDENT) + len(r[0]) for r in t.rows.values()))
    for line in lines:
        for i, cell in enumerate(line[1:], 1):
            if not _trailing(cell):
                widths[i] = max(widths[i], len(cell))
    return widths


def _align(cells: _TableCells, widths: list[int], indent: str) -> dict[int, str]:
    """Aligned text of a table's rows (by line) and its header (key 0)."""

    def render(line: list[str], first: str) -> str:
        parts = [first.ljust(widths[0])]
        parts += [cell if _trailing(cell) else cell.rjust(widths[i]) for i, cell in enumerate(line[1:], 1)]
        return (indent + "  ".join(parts)).rstrip()

    out = {0: render(cells.header, cells.header[0])}
    for number, row in cells.rows.items():
        out[number] = render(row, INDENT + row[0])
    return out


# --- lines ---------------------------------------------------------------------------


class _Formatter:
    def __init__(self, text: str, code: dict[int, list[Token]], tables: dict[int, _TableCells]) -> None:
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self.code = code
        self.tables = tables
        self.out: list[str] = []
        self.widths = [0]
        self.table_lines: dict[int, str] = {}

    def _level(self, width: int) -> int:
        if width > self.widths[-1]:
            self.widths.append(width)
        while width < self.widths[-1]:
            self.widths.pop()
        return len(self.widths) - 1

    def _next_code_widths(self) -> list[int | None]:
        """For each line number, the indentation of the first code line after it (None: none),
        found in one pass from the end: a comment's level depends on it, and a search from each
        comment made a file of comments quadratic (63,785 lines of `#` took minutes)."""
        widths: list[int | None] = [None] * (len(self.lines) + 1)
        for number in range(len(self.lines), 0, -1):
            line = self.lines[number - 1]
            stripped = line.strip(" \t")
            code = bool(stripped) and not stripped.startswith("#")
            widths[number - 1] = indent_width(line) if code else widths[number]
        return widths

    def run(self) -> str:
        continuing = False
        paren_depth = 0
        blank = False
        next_code_width = self._next_code_widths()
        for number, raw in enumerate(self.lines, 1):
            stripped = raw.strip(" \t")
            if not stripped:
                blank = bool(self.out)
                continue
            if blank:
                self.out.append("")
                blank = False
            width = indent_width(raw)
            if stripped.startswith("#"):
                next_width = next_code_width[number]
                level = self._comment_level(width, next_width, continuing or paren_depth > 0)
                self.out.append(INDENT * level + (CONTINUATION if continuing else "") + stripped)
                continue
            tokens, comment = _line(raw, self.code.get(number, []))
            if continuing or paren_depth > 0:
                line = INDENT * (len(self.widths) - 1) + CONTINUATION + join_tokens(tokens)
            else:
                level = self._level(width)
                if number in self.table_lines:
                    line = self.table_lines[number]
                elif number in self.tables:
                    line = self._table(number, level)
                else:
                    line = INDENT * level + join_tokens(tokens)
            self.out.append(line + (f"  {comment}" if comment else ""))
            paren_depth += tokens.count("(") - tokens.count(")")
            continuing = bool(tokens) and tokens[-1] == "->"
        return "\n".join(self.out) + "\n"

    def _table(self, number: int, level: int) -> str:
        """The aligned header line; the aligned rows are kept for their own lines."""
        table = self.tables[number]
        group = [t for t in self.tables.values() if t.block == table.block]
        aligned = _align(table, _widths(group), INDENT * level)
        header = aligned.pop(0)
        self.table_lines.update(aligned)
        return header

    def _comment_level(self, width: int, next_width: int | None, continuing: bool) -> int:
        current = len(self.widths) - 1
        if continuing:
            return current
        if next_width is not None and width <= next_width:
            levels = [w for w in self.widths if w <= next_width]
            return max(len(levels) - 1 + (1 if next_width > self.widths[-1] else 0), 0)
        return current
