"""Spec text → syntax tree (:mod:`incdsl.ast`), with Lark's LALR parser.

Bad bytes, bad indentation and bad syntax all become :class:`SpecError`
with a position and a hint; Lark's own exceptions never escape.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from functools import cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.indenter import DedentError, Indenter

from . import ast, limits
from .elaborate.names import CONTAINERS, TOP_LEVEL
from .errors import Span, SpecError, did_you_mean, source_line
from .layers import CONTAINER_OPTIONS
from .operations import LAYER_TYPES

KEYWORDS = ("block", "as", "x")

#: The language's own words at the head of an item: layer types, containers and top-level
#: statements. Only a block call takes arguments in parentheses; one of these given some is
#: refused where they start, so that nothing written is dropped.
BUILTIN_WORDS = (*LAYER_TYPES, *CONTAINERS, *TOP_LEVEL)
#: The built-in words whose statement ends in `:` and an indented body.
_WITH_BODY = (*CONTAINERS, "aux", "defaults")

# What a user should read instead of Lark's terminal names.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "SI_NUMBER": "a number",
    "DIMS": "a size such as 3x3",
    "STRING": 'a quoted string',
    "ROW_LABEL": "a row label",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the indented block",
    "ARROW": "`->`",
    "LPAR": "`(`",
    "SLASH": "`/`",
    "RPAR": "`)`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "TIMES": "`x`",
    "BLOCK": "`block`",
    "AS": "`as`",
    "AT": "`@`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "DOT": "`.`",
    "$END": "the end of the file",
}


#: Characters a spec may not contain: control characters other than tab and line feed
#: (and carriage return before a line feed), Unicode line and paragraph separators, and
#: the invisible bidirectional controls that make text read differently from how it
#: parses. Other tools treat several of them as line breaks (Python's ``str.splitlines``
#: does), so a file holding one would mean one thing to the parser and another to an
#: editor, ``fmt`` or an error message; refusing them keeps one meaning.
_REFUSED = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]|\r(?!\n)")

#: Tokens that are numbers, and their digits' runs (a size like 3x3/2 has three).
_NUMBER_TOKENS = frozenset({"INT", "FLOAT", "SI_NUMBER", "DIMS"})
_DIGIT_RUN = re.compile(r"[0-9]+")
_SI_SCALE = {"K": 1e3, "M": 1e6, "G": 1e9}


def indent_width(line: str) -> int:
    """The width of a line's indentation as the parser measures it (a tab is 8 columns;
    a file indents with one of the two, so the levels are the same whichever it is)."""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return indent.count(" ") + indent.count("\t") * _SpecIndenter.tab_len


def check_text(text: str, file: str) -> None:
    """Refuse text with a character of :data:`_REFUSED`, or over the size limit."""
    if len(text) > limits.MAX_FILE_CHARS:
        raise SpecError(
            f"this file is {len(text):,} characters long; specs are limited to {limits.MAX_FILE_CHARS:,}",
            Span(file, 1, 1),
            hint="split it with `include`",
        )
    found = _REFUSED.search(text)
    if found is None:
        return
    char = found.group()
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    name = unicodedata.name(char, "a control character")
    breaks = "a line break to some programs, not to incdsl" if char in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else "invisible"
    raise SpecError(
        f"this file contains U+{ord(char):04X} ({name}), {breaks}",
        Span(file, line, column, line, column + 1),
        hint="spec files are plain text: lines end with a line feed (or CR LF), and spaces or tabs "
        "separate words; delete the character (an editor's \"show invisibles\" finds it)",
    )


class _SpecIndenter(Indenter):
    """Lark's indenter, with a bound on nesting, dedent errors that carry their position,
    end-of-file dedents without one (so an error there reads "the file ended ..."), one
    indentation character per file, and every number checked against the limit as it is read."""

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token) -> Iterator[Token]:
        line = token.end_line or token.line
        if self.paren_level == 0:
            self._check_indent_char(token, line)
        levels = list(self.indent_level)
        try:
            for out in super().handle_NL(token):
                if out.type == self.INDENT_type and len(self.indent_level) > limits.MAX_INDENT_DEPTH + 1:
                    raise _NestingError(line, self.indent_level[-1] + 1)
                yield out
        except DedentError:
            width = self._width(token)
            deeper = min(level for level in levels if level > width)
            raise _IndentError(line, width + 1, self.indent_level[-1], deeper) from None

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        ended = False
        self._indent_char: tuple[str, int] | None = None

        def tokens() -> Iterator[Token]:
            nonlocal ended
            for count, token in enumerate(stream, 1):
                if token.type in _NUMBER_TOKENS:
                    _check_number(token)
                if count > limits.MAX_FILE_TOKENS:
                    _too_many_tokens(token)
                yield token
            ended = True

        for token in super().process(tokens()):
            yield Token(self.DEDENT_type, "", 0, 0, 0, 0, 0, 0) if ended else token

    def _width(self, token: Token) -> int:
        return indent_width(token.rsplit("\n", 1)[1])

    def _check_indent_char(self, token: Token, line: int) -> None:
        """A file indents with spaces or with tabs, not both: with both, how deep a line is
        depends on a tab's width, which editors disagree on."""
        indent = token.rsplit("\n", 1)[1]
        if not indent:
            return
        word = {" ": "spaces", "\t": "tabs"}
        if len(set(indent)) > 1:
            raise _TabError(line, "this line is indented with both tabs and spaces", "")
        char = indent[0]
        if self._indent_char is None:
            self._indent_char = (char, line)
        elif self._indent_char[0] != char:
            first, first_line = self._indent_char
            raise _TabError(
                line, f"this line is indented with {word[char]}, but line {first_line} with {word[first]}", word[first]
            )


class _TabError(Exception):
    def __init__(self, line: int, message: str, use: str) -> None:
        self.line, self.message, self.use = line, message, use


def _check_number(token: Token) -> None:
    """A number over :data:`~incdsl.limits.MAX_NUMBER` (or not finite) is refused where it is
    written, before anything converts it: Python will not even print an integer of 4,300 digits."""
    text = str(token)
    if token.type == "FLOAT":
        ok = len(text) <= 40 and math.isfinite(value := float(text)) and abs(value) <= limits.MAX_NUMBER
    elif token.type == "SI_NUMBER":
        ok = len(text) <= 40 and float(text[:-1]) * _SI_SCALE[text[-1]] <= limits.MAX_NUMBER
    else:
        runs = [run.lstrip("0") for run in _DIGIT_RUN.findall(text)]
        ok = all(len(run) <= len(str(limits.MAX_NUMBER)) and int(run or "0") <= limits.MAX_NUMBER for run in runs)
    if not ok:
        shown = text if len(text) <= 24 else text[:20] + "…"
        raise SpecError(
            f"the number `{shown}` is too large: numbers in a spec are at most {limits.MAX_NUMBER:,}",
            Span("", token.line, token.column, token.end_line, token.end_column),
            hint="is a digit too many?",
        )


def _too_many_tokens(token: Token) -> None:
    """Parsing costs by the token, so a file's tokens are bounded as they are read, not only its characters."""
    raise SpecError(
        f"this file has more than {limits.MAX_FILE_TOKENS:,} tokens (words, numbers, symbols and line ends); "
        "specs are limited to that",
        Span("", token.line, token.column, token.end_line, token.end_column),
        hint="split it with `include`, or repeat a block with `N x block(...)`",
    )


class _NestingError(Exception):
    def __init__(self, line: int, column: int) -> None:
        self.line, self.column = line, column


class _IndentError(Exception):
    """A line indented between two open levels: ``outer`` (where it would end the block above)
    and ``inner`` (where it would go on with it)."""

    def __init__(self, line: int, column: int, outer: int, inner: int) -> None:
        self.line, self.column, self.outer, self.inner = line, column, outer, inner


@cache
def _parser() -> Lark:
    """The spec parser: from the tables shipped in the package when they were made from this
    grammar by this Lark (about 2 ms), else built from the grammar (about 25 ms). Never from
    Lark's own cache, a pickle in the shared temporary folder, where anyone could plant one."""
    import lark

    from . import parser_tables as tables

    grammar = _grammar()
    if (_digest(grammar), lark.__version__) == (tables.GRAMMAR_SHA256, tables.LARK_VERSION):
        return Lark._load_from_dict(tables.DATA, tables.MEMO, postlex=_SpecIndenter())
    return _build_parser(grammar)


def _grammar() -> str:
    return resources.files("incdsl.grammars").joinpath("incdsl.lark").read_text(encoding="utf-8")


def _digest(grammar: str) -> str:
    import hashlib

    return hashlib.sha256(grammar.encode("utf-8")).hexdigest()


def _build_parser(grammar: str) -> Lark:
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        postlex=_SpecIndenter(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


def parser_tables_source() -> str:
    """The source of :mod:`incdsl.parser_tables`: the LALR tables Lark builds from the grammar, as
    Python literals (imported from bytecode like any module: no parsing, no pickle)."""
    import lark

    grammar = _grammar()
    data, memo = _build_parser(grammar).memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
    data["options"].pop("postlex")  # an object, not data; given again when loading
    return (
        '"""The spec parser\'s tables, generated from grammars/incdsl.lark by '
        "`make golden` (tests/test_syntax_tables.py); do not edit."
        '"""\n\n'
        "# fmt: off\n"
        f"GRAMMAR_SHA256 = {_digest(grammar)!r}\n"
        f"LARK_VERSION = {lark.__version__!r}\n"
        f"DATA = {data!r}\n"
        f"MEMO = {memo!r}\n"
    )


def decode(data: bytes, file: str) -> str:
    """Bytes of a spec file → text; invalid UTF-8 is a SpecError at the bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8")  # valid up to the bad byte
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise SpecError(
            f"this file is not valid UTF-8 (byte 0x{data[err.start]:02x})",
            Span(file, line, column, line, column + 1),
            hint="spec files are UTF-8 text; re-save the file with UTF-8 encoding",
            source=data.decode("utf-8", errors="replace"),
        ) from None
    return text.removeprefix("\ufeff")


def parse(text: str, file: str = "<string>") -> ast.SpecFile:
    """Parse spec text into a :class:`~incdsl.ast.SpecFile`.

    >>> parse("network tiny\\ninput 3x8x8\\nconv 3x3 4\\n").stmts[2].links[0].head
    'conv'
    """
    try:
        check_text(text, file)
    except SpecError as err:
        raise err.with_source(text) from None
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _parser().parse(source)
        stmts = _ToAst(file, source).transform(tree)
    except UnexpectedInput as err:
        raise _syntax_error(err, source, file).with_source(source) from None
    except _IndentError as err:
        raise SpecError(
            f"this line's indentation (column {err.column}) matches no enclosing block",
            Span(file, err.line, err.column, err.line, err.column + 1),
            hint=f"indent it to column {err.inner + 1} to go on with the block above, "
            f"or to column {err.outer + 1} to end that block",
            source=source,
        ) from None
    except _TabError as err:
        raise SpecError(
            err.message,
            Span(file, err.line, 1, err.line, indent_width(source_line(source, err.line)) + 1),
            hint=f"indent every line of a file the same way: here with {err.use}" if err.use else
            "indent every line of a file the same way, with spaces (or with tabs)",
            source=source,
        ) from None
    except SpecError as err:  # a number or the token count over its limit, raised by the post-lexer
        span = err.span
        assert span is not None
        err.span = Span(file, span.line, span.column, span.end_line, span.end_column)
        raise err.with_source(source) from None
    except _NestingError as err:
        raise SpecError(
            f"blocks are nested more than {limits.MAX_INDENT_DEPTH} levels deep",
            Span(file, err.line, err.column, err.line, err.column + 1),
            hint="no Inception network needs this; split the structure into blocks",
            source=source,
        ) from None
    except RecursionError:
        raise SpecError(
            "this spec nests too deeply to be read (an expression or chain of extreme length?)",
            Span(file, 1, 1),
            source=source,
        ) from None
    except VisitError as err:
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc.with_source(source) from None
        if isinstance(err.orig_exc, RecursionError):
            raise SpecError("this spec nests too deeply to be read", Span(file, 1, 1), source=source) from None
        raise
    return ast.SpecFile.model_construct(path=file, source=text, stmts=tuple(stmts))


#: Tokens that carry layout (line ends with their comments, indentation), not meaning of their own.
LAYOUT_TOKENS = frozenset({"_NL", "_INDENT", "_DEDENT"})


def tokens(text: str) -> list[Token]:
    """The tokens the parser reads from ``text``, as its own lexer splits them (in context),
    indentation tokens included; for text that :func:`parse` accepts.

    >>> [str(t) for t in tokens("conv 3x3 4 eps=1e-5\\n") if t.type not in LAYOUT_TOKENS]
    ['conv', '3x3', '4', 'eps', '=', '1e-5']
    """
    source = text if text.endswith("\n") else text + "\n"
    return list(_parser().parse_interactive(source).iter_parse())


def _span(file: str, meta_or_token) -> Span:
    return Span(
        file,
        meta_or_token.line,
        meta_or_token.column,
        meta_or_token.end_line,
        meta_or_token.end_column,
    )


def _describe(names: set[str]) -> str:
    readable = sorted({_TERMINAL_NAMES.get(n, f"`{n.lower()}`") for n in names if not n.startswith("__")})
    if len(readable) > 6:
        readable = readable[:6] + ["…"]
    return ", ".join(readable)


def _line_head(source: str, line: int) -> str | None:
    words = source_line(source, line).split()
    return words[0] if words else None


def _syntax_error(err: UnexpectedInput, source: str, file: str) -> SpecError:
    line, column = err.line, err.column
    at_end = isinstance(err, UnexpectedToken) and err.token.type == "$END"
    if isinstance(err, UnexpectedEOF) or at_end or line is None or line < 1:
        lines = source.rstrip("\n").split("\n")
        line, column = len(lines), len(lines[-1]) + 1
        return SpecError("the file ended in the middle of a statement", Span(file, line, column))
    head = _line_head(source, line)
    keyword_hint = did_you_mean(head, KEYWORDS) if head and head not in KEYWORDS else None
    if isinstance(err, UnexpectedCharacters):
        char = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        span = Span(file, line, column, line, column + 1)
        if char == '"':
            return SpecError("this string is not closed on its line", span, hint='close it with `"`')
        if char == "%":
            return SpecError(
                "`%` is not part of the language",
                span,
                hint="write a fraction as a decimal: a 40% dropout is `dropout 0.4`",
            )
        shown = f"`{char}`" if char.isprintable() and not char.isspace() else f"U+{ord(char):04X} ({unicodedata.name(char, '?')})"
        return SpecError(
            f"unexpected character {shown}",
            span,
            hint=keyword_hint or f"expected {_describe(err.allowed)}" if err.allowed else keyword_hint,
        )
    assert isinstance(err, UnexpectedToken)
    token = err.token
    width = max(len(str(token)), 1) if token.type not in ("_NL", "_INDENT", "_DEDENT") else 1
    span = Span(file, line, column, line, column + width)
    expected = set(err.expected)
    if token.type == "_INDENT":
        return SpecError(
            "unexpected indentation",
            span,
            hint="only a line ending in `:` or a table header may be followed by indented lines",
        )
    if token.type == "_NL" and "COLON" in expected and head == "block":
        return SpecError("a block definition ends with `:`", span, hint="write `block name(params):`")
    if token.type == "_NL":
        return SpecError(f"this line ended early: expected {_describe(expected)}", span, hint=keyword_hint)
    if token.type == "_DEDENT":
        return SpecError(f"the indented block ended early: expected {_describe(expected)}", span, hint=keyword_hint)
    if token.type in {*_NUMBER_TOKENS, "ROW_LABEL"} and source_line(source, line)[: column - 1].split()[-1:] == ["as"]:
        word = source_line(source, line)[column - 1 :].split()[0].rstrip(":")
        return SpecError(
            f"`{word}` after `as` is not a plain name",
            span,
            hint=f'a name that is not an identifier is quoted: `as "{word}"`',
        )
    name = _TERMINAL_NAMES.get(token.type)
    if name is None or name.startswith("`"):
        shown = f"`{token}`"
    else:  # "a name" reads "unexpected name `x`"
        shown = f"{name.split(' ', 1)[1] if name.startswith(('a ', 'an ')) else name} `{token}`"
    return SpecError(
        f"unexpected {shown}",
        span,
        hint=keyword_hint or f"expected {_describe(expected)}",
    )


def _written(source: str, span: Span) -> str:
    """The text at ``span`` in ``source``, its line breaks and indentation made single spaces."""
    lines = source.split("\n")[span.line - 1 : (span.end_line or span.line)]
    lines[-1] = lines[-1][: (span.end_column or 1) - 1]
    lines[0] = lines[0][span.column - 1 :]
    return " ".join(" ".join(lines).split())


class _CallArgs:
    """``( args )`` as parsed: the arguments and the two parentheses (their positions)."""

    def __init__(self, children: list) -> None:
        self.open, *middle, self.close = children
        self.args = tuple(c for c in middle if isinstance(c, ast.Arg))


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree → :mod:`incdsl.ast` models (bottom-up); every rule's method gets ``(meta, children)``."""

    def __init__(self, file: str, source: str) -> None:
        super().__init__()
        self.file = file
        self.source = source

    def _s(self, meta_or_token) -> Span:
        return _span(self.file, meta_or_token)

    # expressions
    def int(self, meta, children):
        (tok,) = children
        return ast.Num.model_construct(span=self._s(tok), value=int(tok), text=str(tok))

    def float(self, meta, children):
        (tok,) = children
        return ast.Num.model_construct(span=self._s(tok), value=float(tok), text=str(tok))

    def si_number(self, meta, children):
        (tok,) = children
        scale = {"K": 1e3, "M": 1e6, "G": 1e9}[tok[-1]]
        return ast.Num.model_construct(span=self._s(tok), value=float(tok[:-1]) * scale, text=str(tok))

    def string(self, meta, children):
        (tok,) = children
        return ast.Str.model_construct(span=self._s(tok), value=str(tok)[1:-1])

    def symbol(self, meta, children):
        (tok,) = children
        return ast.Sym.model_construct(span=self._s(tok), name=str(tok))

    def table_ref(self, meta, children):
        table, entry = children
        return ast.TableRef.model_construct(span=self._s(meta), table=str(table), entry=str(entry))

    def _binop(self, op, meta, children):
        left, right = children
        return ast.BinOp.model_construct(span=self._s(meta), op=op, left=left, right=right)

    def add(self, meta, children):
        return self._binop("+", meta, children)

    def sub(self, meta, children):
        return self._binop("-", meta, children)

    def mul(self, meta, children):
        return self._binop("*", meta, children)

    def neg(self, meta, children):
        (operand,) = children
        return ast.Neg.model_construct(span=self._s(meta), operand=operand)

    # items
    def arg(self, meta, children):
        (value,) = children
        return ast.Arg.model_construct(span=self._s(meta), name=None, value=value)

    def keyword_arg(self, meta, children):
        name, value = children
        return ast.Arg.model_construct(span=self._s(meta), name=str(name), value=value)

    def call_args(self, meta, children):
        return _CallArgs(children)

    def dims(self, meta, children):
        (tok,) = children
        text = str(tok)
        sizes, _, stride = text.replace("×", "x").partition("/")
        return ast.Dims.model_construct(
            span=self._s(tok),
            sizes=tuple(int(s) for s in sizes.split("x")),
            stride=int(stride) if stride else None,
            text=text,
        )

    def strided(self, meta, children):
        size, _slash, stride = children
        size_node = self.dims(meta, [size]) if size.type == "DIMS" else self.symbol(meta, [size])
        stride_node = self.int(meta, [stride]) if stride.type == "INT" else self.symbol(meta, [stride])
        return ast.Strided.model_construct(span=self._s(meta), size=size_node, stride=stride_node)

    def positional(self, meta, children):
        (value,) = children
        return ast.Positional.model_construct(span=value.span, value=value)

    def option(self, meta, children):
        key, value = children
        return ast.Option.model_construct(span=self._s(meta), key=str(key), value=value)

    def rename(self, meta, children):
        (tok,) = children
        quoted = tok.type == "STRING"
        return ast.Rename.model_construct(span=self._s(meta), name=str(tok)[1:-1] if quoted else str(tok), quoted=quoted)

    def annotation(self, meta, children):
        name, args = children
        return ast.Annotation.model_construct(span=self._s(meta), name=str(name), args=args.args)

    def item(self, meta, children):
        head, *rest = children
        args = None
        if rest and isinstance(rest[0], _CallArgs):
            if head in BUILTIN_WORDS:
                raise self._builtin_call(str(head), rest[0], meta)
            args, rest = rest[0].args, rest[1:]
        return ast.Item.model_construct(span=self._s(meta), head=str(head), head_span=self._s(head), args=args, terms=tuple(rest))

    def _builtin_call(self, head: str, call: _CallArgs, meta) -> SpecError:
        """``residual(scale=0.5):``: a built-in word with arguments in parentheses, which only a
        block call takes; the hint spells the line the way that works."""
        colon = ":" if head in _WITH_BODY else ""
        after = " ".join(self.source[call.close.end_pos : meta.end_pos].split())
        words = [_written(self.source, arg.span) for arg in call.args]
        if head in CONTAINER_OPTIONS and any(arg.name is None for arg in call.args):
            options = " ".join(f"{key}=…" for key in CONTAINER_OPTIONS[head])
            hint = f"`{head}` takes its settings by name after it: `{head} {options}{colon}`"
        else:
            hint = f"write `{' '.join([head, *words, *([after] if after else [])])}{colon}`"
        return SpecError(
            f"`{head}` is built in and takes nothing in parentheses (only a block call does)",
            self._s(call.open),
            hint=hint,
        )

    def repeat(self, meta, children):
        count, _times, item = children
        return ast.Repeat.model_construct(span=self._s(meta), count=int(count), count_span=self._s(count), item=item)

    def chain(self, meta, children):
        return tuple(c for c in children if not isinstance(c, Token))

    # statements
    def simple_stmt(self, meta, children):
        (links,) = children
        return ast.Stmt.model_construct(span=self._s(meta), links=links)

    def compound_stmt(self, meta, children):
        links, body = children
        if isinstance(body, tuple) and body and not isinstance(body[0], (ast.Stmt, ast.BlockDef)):
            body = (ast.Stmt.model_construct(span=body[0].span, links=body),)
        return ast.Stmt.model_construct(span=self._s(meta), links=links, body=body)

    def table_stmt(self, meta, children):
        links, *rows = children
        return ast.Stmt.model_construct(span=self._s(meta), links=links, rows=tuple(rows))

    def row(self, meta, children):
        label, *terms = children
        return ast.Row.model_construct(span=self._s(meta), label=str(label), label_span=self._s(label), terms=tuple(terms))

    def suite(self, meta, children):
        return tuple(children)

    def param(self, meta, children):
        name, *default = children
        return ast.Param.model_construct(span=self._s(meta), name=str(name), default=default[0] if default else None)

    def block_def(self, meta, children):
        name, *rest = children
        body = rest[-1]
        params = tuple(p for p in rest[:-1] if isinstance(p, ast.Param))
        return ast.BlockDef.model_construct(span=self._s(meta), name=str(name), name_span=self._s(name), params=params, body=body)

    def start(self, meta, children):
        return list(children)
