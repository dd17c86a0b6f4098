"""Mutation operators over spec text, shared by tests/test_fuzz.py and bench/fuzz.py.

A mutant is a bundled spec with one to three operators applied. Each operator is a
function ``(text, rng, corpus) -> text``. Their vocabulary comes from the grammar
(its literal terminals, and random sentences derived from its rules), from what the
elaborator accepts (layer types, statement keywords, flags and option keys), and from
the bundled specs themselves (their lines and tokens): not from lists typed here,
except for the values meant to be extreme (huge or non-finite numbers, characters
other programs read as line breaks, format fields, paths out of the spec's tree).

:func:`mutant` makes mutant ``index`` of a seed (the same text on every run), and
:func:`run_mutant` loads one, bounded in CPU time, and checks ``fmt`` on it if it loads.

>>> corpus = Corpus.bundled()
>>> path, ops, text = mutant(corpus, 7, 0)
>>> run_mutant(text, path).outcome in {"loaded", "SpecError"}
True
"""

from __future__ import annotations

import builtins
import keyword
import random
import re
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from conftest import without_spans
from lark import Lark
from lark.lexer import PatternStr

from incdsl import SpecError, limits, loads
from incdsl.elaborate.names import KEYWORDS, RESERVED_NAMES
from incdsl.errors import SpecWarning
from incdsl.fmt import format_spec
from incdsl.layers import CONTAINER_OPTIONS
from incdsl.operations import LAYER_TYPES
from incdsl.syntax import BUILTIN_WORDS, LAYOUT_TOKENS, tokens

SPECS = Path(__file__).resolve().parent.parent / "specs"
#: The most CPU seconds one load of a mutant may take.
SECONDS = 2.0
#: fmt's: it loads the text and the formatted text to compare them, so it costs at least two loads.
FMT_SECONDS = 2 * SECONDS
#: Words and punctuation as the first fuzz test split them (a token of the language or a comment).
TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|->|[A-Za-z0-9_.×/]+|[^\sA-Za-z0-9_]')
#: A number as written in a spec, also inside a size (`3x3/2` holds three).
NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?[KMG]?|\.[0-9]+([eE][-+]?[0-9]+)?")
STRING = re.compile(r'"[^"\n]*"')


@dataclass(frozen=True)
class Corpus:
    """The material mutations draw on."""

    sources: tuple[tuple[str, str], ...]
    #: Lines of the bundled specs that hold code.
    lines: tuple[str, ...]
    #: Each token type of the parser → the distinct spellings the bundled specs use.
    spellings: dict[str, tuple[str, ...]]
    #: Words the language gives a meaning: the grammar's literal words, statement keywords,
    #: layer types, flags and option keys.
    words: tuple[str, ...]
    #: Option keys: the layers', the containers' and those the bundled specs write (`weight=`).
    option_keys: tuple[str, ...]
    #: The grammar, for random sentences of its rules.
    grammar: Lark = field(repr=False)

    @staticmethod
    @cache
    def bundled() -> Corpus:
        sources = tuple((str(p), p.read_text(encoding="utf-8")) for p in sorted(SPECS.rglob("*.inc")))
        spellings: dict[str, set[str]] = {}
        keys: set[str] = {k for t in LAYER_TYPES.values() for k in t.options}
        keys |= {k for options in CONTAINER_OPTIONS.values() for k in options}
        for _, text in sources:
            found = [t for t in tokens(text) if t.type not in LAYOUT_TOKENS]
            for t in found:
                spellings.setdefault(t.type, set()).add(str(t))
            keys |= {str(a) for a, b in zip(found, found[1:], strict=False) if b.type == "EQUAL" and a.type == "NAME"}
        grammar = _grammar()
        literal = {t.pattern.value for t in grammar.terminals if isinstance(t.pattern, PatternStr)}
        flags = {f for t in LAYER_TYPES.values() for f in t.flags}
        words = {w for w in literal if w.isidentifier()} | set(KEYWORDS) | set(LAYER_TYPES) | flags | keys
        lines = tuple(line for _, text in sources for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#"))
        return Corpus(
            sources, lines, {k: tuple(sorted(v)) for k, v in spellings.items()},
            tuple(sorted(words)), tuple(sorted(keys)), grammar,
        )


def _grammar() -> Lark:
    text = resources.files("incdsl.grammars").joinpath("incdsl.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", lexer="basic")


# --- values meant to be extreme ------------------------------------------------------------------

def _extreme_number(rng: random.Random) -> str:
    """A number at or past a limit, non-finite, a float where a count goes, or a huge product."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(["0", "-1", "1", "00", "0.0", "0.5", "1.5", "2.0", "-0", ".5e-2", "1e5", "1K", "1000G"])
    if kind == 1:
        return rng.choice(["1e999", "-1e999", "1e-999", "1e999-1e999", "1e999*0", "0*1e999", "1e308*10"])
    if kind == 2:
        return str(rng.choice([2**15, 2**16, 2**16 + 1, 2**31 - 1, 2**31, 2**63, 10**12, 10**12 + 1]))
    if kind == 3:
        return "1" + "0" * rng.choice([13, 20, 400, 4300, 5000])  # 4300: Python's int-to-str limit
    if kind == 4:
        return "9" * rng.randint(13, 3000) + rng.choice(["", "K", ".5", "e9", "x3"])
    factor = str(rng.choice([2, 10, 1000, 99999, 10**6]))
    return rng.choice(["*", "+", "*-"]).join([factor] * rng.randint(2, 40))


def _unicode_char(rng: random.Random) -> str:
    """A control, a line break to other programs, an invisible, a look-alike or an unpaired surrogate."""
    return rng.choice([
        chr(rng.randrange(0x20)), "\x7f", chr(rng.randrange(0x80, 0xA0)), "\u2028", "\u2029", "\ufeff",
        "\u200b", "\u200e", "\u202e", "\u2066", "\xa0", "\u3000", "\uff13", "\u0663", "\U0001f600", "\xe9",
        "\ud800", "\t", "\r", "\r\n", "\x00",
    ])


FORMAT_FIELDS = ("{", "}", "{}", "{0}", "{foo}", "{row}", "{block}", "{row:>400000000}", "{block.__class__}",
                 "{row!r}", "{{", "%s", "%(row)s", "{row}{row}{row}", "{row[0]}", "\\", "'")
PATHS = ("../../etc/passwd", "/etc/passwd", "/dev/zero", "", ".", "..", "specs", "missing.inc", "~/x.inc",
         "blocks/../../README.md", "blocks/inception_v4.inc", "blocks/inception_resnet_v2.inc", "googlenet.inc")


def _names(rng: random.Random, corpus: Corpus) -> str:
    """A name a spec might give: the corpus's, the language's, Python's or torch's own."""
    pool = rng.choice([corpus.spellings.get("NAME", ("x",)), corpus.words, keyword.kwlist, dir(builtins),
                       sorted(RESERVED_NAMES)])
    return rng.choice(pool)


#: Digits as superscripts: NFKC makes each the digit again.
_SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
_LIGATURES = {"ffi": "\ufb03", "ffl": "\ufb04", "ff": "\ufb00", "fi": "\ufb01", "fl": "\ufb02"}


def nfkc_twin(name: str, rng: random.Random) -> str:
    """``name`` with one character (or letter pair) spelled as a compatibility character that
    Python's NFKC folding turns back into it: a fullwidth letter or digit, a ligature, a
    mathematical bold letter, a superscript digit.

    >>> import unicodedata
    >>> twin = nfkc_twin("conv1_fil", random.Random(3))
    >>> twin != "conv1_fil" and unicodedata.normalize("NFKC", twin) == "conv1_fil"
    True
    """
    ligatures = [(m.start(), m.group()) for m in re.finditer("|".join(_LIGATURES), name)]
    if ligatures and rng.random() < 0.3:
        at, pair = rng.choice(ligatures)
        return name[:at] + _LIGATURES[pair] + name[at + len(pair):]
    spots = [i for i, c in enumerate(name) if c.isascii() and c.isalnum()]
    if not spots:
        return name
    i = rng.choice(spots)
    c = name[i]
    kind = rng.randrange(3)
    if kind == 1 and c.isalpha():
        twin = chr((0x1D400 if c.isupper() else 0x1D41A) + ord(c.lower()) - ord("a"))
    elif kind == 2 and c.isdigit():
        twin = _SUPERSCRIPTS[int(c)]
    else:
        twin = chr(ord(c) + 0xFEE0)  # the fullwidth form
    return name[:i] + twin + name[i + 1:]


def _value(rng: random.Random, corpus: Corpus) -> str:
    pick = rng.randrange(4)
    if pick == 0:
        return _extreme_number(rng)
    if pick == 1:
        return rng.choice(corpus.words)
    if pick == 2:
        return rng.choice([*corpus.spellings.get("DIMS", ("3x3",)), *corpus.spellings.get("STRING", ('""',))])
    return rng.choice([*corpus.spellings.get("INT", ("1",)), *corpus.spellings.get("FLOAT", ("0.5",))])


# --- helpers -------------------------------------------------------------------------------------

def _code_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")] or [0]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _with_lines(text: str, edit: Callable[[list[str]], None]) -> str:
    lines = text.split("\n")
    edit(lines)
    return "\n".join(lines)


def _sentence(rng: random.Random, corpus: Corpus, symbol: str, depth: int = 0) -> list[str]:
    """A random derivation of one grammar symbol, as tokens (terminals of a pattern spelled as the
    bundled specs spell them); past a depth the shortest expansions are taken."""
    terminals = {t.name: t for t in corpus.grammar.terminals}
    if symbol in terminals or symbol.startswith("_") and symbol.isupper():
        if symbol == "_NL":
            return ["\n"]
        if symbol in ("_INDENT", "_DEDENT"):
            return ["\n" + "  " * rng.randint(0, 3)]
        pattern = terminals[symbol].pattern
        if isinstance(pattern, PatternStr):
            return [pattern.value]
        return [rng.choice(corpus.spellings.get(symbol) or ("x",))]
    rules = [r for r in corpus.grammar.rules if r.origin.name == symbol]
    if depth > 6:
        rules = sorted(rules, key=lambda r: len(r.expansion))[:1]
    out: list[str] = []
    for part in rng.choice(rules).expansion:
        out += _sentence(rng, corpus, part.name, depth + 1)
    return out


# --- operators: the first fuzz test's token and line edits ----------------------------------------

def _token_edit(text: str, rng: random.Random, kind: str) -> str:
    found = list(TOKEN.finditer(text))
    if not found:
        return text
    i = rng.randrange(len(found))
    start, end = found[i].span()
    word = found[i].group()
    if kind == "del_token":
        return text[:start] + text[end:]
    if kind == "dup_token":
        return text[:end] + " " + word + text[end:]
    if kind == "replace_token":
        return text[:start] + rng.choice(found).group() + text[end:]
    j = min(i + 1, len(found) - 1)
    s2, e2 = found[j].span()
    return text if j == i else text[:start] + found[j].group() + text[end:s2] + word + text[e2:]


def _line_edit(text: str, rng: random.Random, kind: str) -> str:
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return text
    indented = [k for k, line in enumerate(lines) if line.startswith(" ")]
    # a dedent takes an indented line (most lines are not, and a dedent would leave them as they are)
    i = rng.choice(indented) if kind == "dedent" and indented else rng.randrange(len(lines))
    if kind == "del_line":
        del lines[i]
    elif kind == "dup_line":
        lines.insert(i, lines[i])
    elif kind == "swap_lines":
        j = min(i + 1, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "indent":
        lines[i] = "  " + lines[i]
    else:
        lines[i] = lines[i][min(2, len(lines[i]) - len(lines[i].lstrip(" "))):]
    return "".join(lines)


# --- operators of this module's own --------------------------------------------------------------

def extreme_number(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A number (or one side of a size) becomes an extreme one."""
    found = [m for m in NUMBER.finditer(text) if not _in_comment(text, m.start())]
    if not found:
        return text
    m = rng.choice(found)
    return text[: m.start()] + _extreme_number(rng) + text[m.end():]


def _in_comment(text: str, at: int) -> bool:
    line_start = text.rfind("\n", 0, at) + 1
    return "#" in text[line_start:at]


def splice_line(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A line of any bundled spec, at any place, at the indentation of the line it goes before."""
    def edit(lines: list[str]) -> None:
        i = rng.randrange(len(lines) + 1)
        indent = _indent(lines[i]) if i < len(lines) else ""
        lines.insert(i, indent + rng.choice(corpus.lines).lstrip(" \t"))
    return _with_lines(text, edit)


def grammar_fragment(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A random sentence of a grammar rule, inserted between two tokens or as a line of its own."""
    symbol = rng.choice(["item", "term", "expr", "call_args", "chain", "param", "arg", "row", "_stmt", "block_def"])
    fragment = " ".join(_sentence(rng, corpus, symbol))
    found = list(TOKEN.finditer(text))
    if found and rng.random() < 0.5:
        at = rng.choice(found).end()
        return text[:at] + " " + fragment + text[at:]
    return _with_lines(text, lambda lines: lines.insert(rng.randrange(len(lines) + 1), fragment))


def call_chain(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A top-level layer line moved into a block reached through a chain of blocks, each calling
    the next with arithmetic on its parameter (`block fz3(p): fz2(p*p)`), up to past the call limit."""
    lines = text.split("\n")
    candidates = [i for i in _code_lines(lines) if not _indent(lines[i]) and NUMBER.search(lines[i])
                  and lines[i].split()[0] in LAYER_TYPES]
    if not candidates:
        return text
    i = rng.choice(candidates)
    m = rng.choice(list(NUMBER.finditer(lines[i])))
    depth = rng.choice([1, 2, 5, 31, 32, 33, rng.randint(1, 40)])
    defs = ["block fz0(p):", f"  {lines[i][: m.start()]}p{lines[i][m.end():]}"]
    for level in range(1, depth):
        step = rng.choice(["p", "p*p", "p+p", "p*2", "p-1", "-p", "p*p*p", "p*1000"])
        defs += [f"block fz{level}(p):", f"  fz{level - 1}({step})"]
    lines[i: i + 1] = [*defs, f"fz{depth - 1}({m.group()})"]
    return "\n".join(lines)


def unicode_char(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A control, line-break, invisible or look-alike character anywhere (in comments, strings, words)."""
    at = rng.randrange(len(text) + 1)
    return text[:at] + _unicode_char(rng) + text[at:]


def repeat_many(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A code line repeated `N x` times, N small, at the limit, past it, or nested."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        count = rng.choice(["0", "1", "2", "999", "1000", "1001", "1000000", "10000000000000", "3 x 3", "1000 x 1000"])
        lines[i] = f"{_indent(lines[i])}{count} x {lines[i].lstrip()}"
    return _with_lines(text, edit)


def many_lines(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A code line copied hundreds or thousands of times in a row (paths quadratic in the lines)."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        lines[i: i + 1] = [lines[i]] * rng.choice([100, 1000, 3000])
    return _with_lines(text, edit)


def fill(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A short code line (or comment) copied until the file is near or at its size limit: the
    most tokens (or characters) one file can hold."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        line = rng.choice([lines[i], _indent(lines[i]) + rng.choice(corpus.words), "#"])
        room = int(limits.MAX_FILE_CHARS * rng.choice([0.5, 0.9, 0.99, 1.0])) - len(text)
        lines[i: i + 1] = [line] * max(1, room // (len(line) + 1))
    return _with_lines(text, edit)


def swap_keyword(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A word the language knows becomes another such word."""
    known = set(corpus.words)
    found = [m for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", text) if m.group() in known and not _in_comment(text, m.start())]
    if not found:
        return text
    m = rng.choice(found)
    return text[: m.start()] + rng.choice(corpus.words) + text[m.end():]


def format_field(text: str, rng: random.Random, corpus: Corpus) -> str:
    """Format-field braces in a quoted string, or a quoted name pattern with them after a line."""
    found = [m for m in STRING.finditer(text) if not _in_comment(text, m.start())]
    brace = rng.choice(FORMAT_FIELDS)
    if found and rng.random() < 0.5:
        m = rng.choice(found)
        at = rng.randint(m.start() + 1, m.end() - 1)
        return text[:at] + brace + text[at:]

    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        lines[i] += f' as "{rng.choice(corpus.spellings.get("NAME", ("x",)))}{brace}"'
    return _with_lines(text, edit)


def random_option(text: str, rng: random.Random, corpus: Corpus) -> str:
    """`key=value` after a code line: a key the language knows, a value of any kind."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        option = f" {rng.choice(corpus.option_keys)}={_value(rng, corpus)}"
        head, colon, tail = lines[i].partition(":")
        lines[i] = head + option + colon + tail if colon and rng.random() < 0.5 else lines[i] + option
    return _with_lines(text, edit)


def rename(text: str, rng: random.Random, corpus: Corpus) -> str:
    """`as NAME` after a code line, NAME one the corpus, the language, Python or torch uses."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        lines[i] += f" as {_names(rng, corpus)}"
    return _with_lines(text, edit)


RENAME = re.compile(r'\bas +("?)([^\s"]+)\1')


def _layer_lines(lines: list[str], types: tuple[str, ...] = tuple(LAYER_TYPES)) -> list[int]:
    """Code lines that start with one of the layer ``types``, or every code line if none do."""
    return [i for i in _code_lines(lines) if lines[i].split()[0] in types] or _code_lines(lines)


def _append(line: str, extra: str) -> str:
    """``extra`` at the end of a line's code, before its comment."""
    code = STRING.sub(lambda m: "_" * len(m.group()), line)
    end = code.find("#") if "#" in code else len(line)
    return line[:end].rstrip() + extra + (" " + line[end:] if end < len(line) else "")


def unicode_twin(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A layer line copied beside itself, the copy named with an NFKC twin of the original's name
    (`as conv1` and `as "ｃonv1"`, one module to Python), or a name replaced by its twin."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_layer_lines(lines))
        found = list(RENAME.finditer(lines[i]))
        if not found:
            lines[i] = _append(lines[i], f" as {_names(rng, corpus)}")
            found = list(RENAME.finditer(lines[i]))
        m = rng.choice(found)
        twin = f'{lines[i][: m.start()]}as "{nfkc_twin(m.group(2), rng)}"{lines[i][m.end():]}'
        if rng.random() < 0.7:
            lines.insert(i + rng.randrange(2), twin)
        else:
            lines[i] = twin
    return _with_lines(text, edit)


def part_names(text: str, rng: random.Random, corpus: Corpus) -> str:
    """`parts="..."` on a layer line or in `defaults:`: children (`X.name`) or siblings (`X_name`)
    named as torch, Python, the spec or an NFKC twin would, `_`-private, or the same name twice."""
    def part() -> str:
        name = _names(rng, corpus)
        return rng.choice([name, name, nfkc_twin(name, rng), f"_{name}", f"__{name}__"])

    def edit(lines: list[str]) -> None:
        i = rng.choice(_layer_lines(lines, ("conv", "linear")))
        a, b, c = part(), part(), part()
        patterns = rng.choice([
            f"X.{a} X.{b}", f"X.{a} X.{b} X.{c}", f"X.{a} X.{a}", f"X.conv X.{b}", f"X X_{b}", f"X X{b}",
            f"{a}X X", f"X_{a} X_{b} X_{c}", f"X.{nfkc_twin('bn', rng)} X.bn",
        ])
        lines[i] = _append(lines[i], f' bn parts="{patterns}"' if rng.random() < 0.8 else f' parts="{patterns}"')
    return _with_lines(text, edit)


def annotation(text: str, rng: random.Random, corpus: Corpus) -> str:
    """`@paper(...)` (or another word) with extreme or odd figures after a code line."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        name = rng.choice(["paper", *corpus.words])
        args = rng.sample([f"params={_value(rng, corpus)}", f"ops={_value(rng, corpus)}", "params", "ops",
                           f'note="{rng.choice(FORMAT_FIELDS)}"', f"{_names(rng, corpus)}=1"], k=rng.randint(0, 3))
        lines[i] += f"  @{name}({', '.join(args)})"
    return _with_lines(text, edit)


def deep_nest(text: str, rng: random.Random, corpus: Corpus) -> str:
    """A run of code lines nested inside containers, up to past the indentation limit."""
    def edit(lines: list[str]) -> None:
        i = rng.choice(_code_lines(lines))
        j = min(len(lines), i + rng.randint(1, 4))
        depth = rng.choice([1, 2, 8, 31, 32, 33, rng.randint(1, 40)])
        base = _indent(lines[i])
        heads = [f"{base}{'  ' * d}{rng.choice(['concat:', 'seq:', 'residual:', 'concat base=0:'])}" for d in range(depth)]
        body = ["  " * depth + line for line in lines[i:j]]
        lines[i:j] = [*heads, *body]
    return _with_lines(text, edit)


def include(text: str, rng: random.Random, corpus: Corpus) -> str:
    """`include "PATH"` at some line, PATH in the bundled library, out of the spec's tree, or a device."""
    def edit(lines: list[str]) -> None:
        lines.insert(rng.randrange(len(lines) + 1), f'include "{rng.choice(PATHS)}"')
    return _with_lines(text, edit)


def layout(text: str, rng: random.Random, corpus: Corpus) -> str:
    """Indentation with tabs (all of it or one line's), CR LF line ends, no final line feed, trailing blanks."""
    kind = rng.randrange(5)
    if kind == 0:
        return re.sub(r"(?m)^((?:  )+)", lambda m: "\t" * (len(m.group(1)) // 2), text)
    if kind == 1:
        return _with_lines(text, lambda lines: _tab_one(lines, rng))
    if kind == 2:
        return text.replace("\n", "\r\n")
    if kind == 3:
        return text.rstrip("\n")
    return _with_lines(text, lambda lines: lines.__setitem__(i := rng.randrange(len(lines)), lines[i] + " \t "))


#: A built-in word heading an item: at the start of a line, after `->` or after `N x`.
_BUILTIN_HEAD = re.compile(rf"(?m)(?:^[ \t]*|->[ \t]*|[0-9]+ x )({'|'.join(BUILTIN_WORDS)})\b")
#: Where an item's words end: its body's `:`, the next link, its name, an annotation, a comment.
_ITEM_END = re.compile(r":|->|\bas\b|@|#|$", re.M)


def builtin_call(text: str, rng: random.Random, corpus: Corpus) -> str:
    """Arguments in parentheses on a built-in word that heads an item, as a PyTorch user writes them
    (`residual(scale=0.5, act=none):`, `concat(base=0):`, `conv(3x3, 64)`): the item's own words
    moved inside, or values and options of any kind put there."""
    found = [m for m in _BUILTIN_HEAD.finditer(text) if not _in_comment(text, m.start(1))]
    if not found:
        return text
    m = rng.choice(found)
    at = m.end(1)
    end = _ITEM_END.search(text, at)
    assert end is not None  # `$` always matches
    words = text[at : end.start()].split()
    if words and rng.random() < 0.5:
        return f"{text[:at]}({', '.join(words)}) {text[end.start():]}"
    args = [rng.choice([_value(rng, corpus), f"{rng.choice(corpus.option_keys)}={_value(rng, corpus)}"])
            for _ in range(rng.randint(0, 3))]
    return f"{text[:at]}({', '.join(args)}){text[at:]}"


def _tab_one(lines: list[str], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    lines[i] = "\t" + lines[i].lstrip(" ")


OPERATORS: dict[str, Callable[[str, random.Random, Corpus], str]] = {
    **{kind: (lambda k: lambda text, rng, corpus: _token_edit(text, rng, k))(kind)
       for kind in ("del_token", "dup_token", "swap_tokens", "replace_token")},
    **{kind: (lambda k: lambda text, rng, corpus: _line_edit(text, rng, k))(kind)
       for kind in ("del_line", "dup_line", "swap_lines", "indent", "dedent")},
    **{op.__name__: op for op in (extreme_number, splice_line, grammar_fragment, call_chain, unicode_char,
                                  repeat_many, many_lines, fill, swap_keyword, format_field, random_option, rename,
                                  unicode_twin, part_names, annotation, deep_nest, include, layout, builtin_call)},
}


def mutant(corpus: Corpus, seed: int, index: int) -> tuple[str, list[str], str]:
    """Mutant ``index`` of ``seed``: (the spec it comes from, the operators applied, its text)."""
    rng = random.Random(f"{seed}/{index}")
    path, text = rng.choice(corpus.sources)
    ops = [rng.choice(sorted(OPERATORS)) for _ in range(rng.randint(1, 3))]
    for op in ops:
        text = OPERATORS[op](text, rng, corpus)
    return path, ops, text


# --- running one ---------------------------------------------------------------------------------

class TooSlow(Exception):
    """Raised in the middle of a load that has used up its CPU seconds."""


@dataclass
class Result:
    """What one mutant did: ``outcome`` is loaded, SpecError, error (any other exception) or slow;
    ``fmt`` (for one that loaded) is same, refused, changed (a different network, or not
    idempotent), error or slow."""

    outcome: str
    detail: str = ""
    cpu: float = 0.0
    wall: float = 0.0
    fmt: str = ""
    fmt_detail: str = ""
    fmt_cpu: float = 0.0

    @property
    def failed(self) -> bool:
        return self.outcome not in ("loaded", "SpecError") or self.fmt not in ("", "same", "refused")


def error_class(message: str) -> str:
    """A SpecError's message without what varies between mutants (quoted text, numbers)."""
    first = message.split("\n")[0].split(": error: ", 1)[-1]
    first = re.sub(r"`[^`]*`|\"[^\"]*\"|'[^']*'", "`…`", first)
    return re.sub(r"[0-9][0-9,.×x]*", "N", first)[:90]


def _on_alarm(signum, frame):
    raise TooSlow


def _bounded(seconds: float, work: Callable[[], object]) -> tuple[object, float, float]:
    """``work()``, interrupted by TooSlow after ``seconds`` of this process's CPU time; with its CPU and wall seconds."""
    previous = signal.signal(signal.SIGPROF, _on_alarm)
    cpu, wall = time.process_time(), time.perf_counter()
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        return work(), time.process_time() - cpu, time.perf_counter() - wall
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def run_mutant(text: str, file: str, seconds: float = SECONDS) -> Result:
    """Load ``text`` (as if it were ``file``) within ``seconds`` of CPU, rendering any SpecError;
    if it loads, format it (each fmt step within FMT_SECONDS, scaled alike) and check that the formatted text loads to the same
    network (the IR's JSON, positions aside) and formats to itself."""
    cpu, wall = time.process_time(), time.perf_counter()

    def spent() -> tuple[float, float]:
        return time.process_time() - cpu, time.perf_counter() - wall

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)
        try:
            net, c, w = _bounded(seconds, lambda: loads(text, file=file))
        except SpecError as err:
            result = Result("SpecError", error_class(str(err)))
            _bounded(seconds, err.render)
            result.cpu, result.wall = spent()
            return result
        except TooSlow:
            return Result("slow", "", *spent())
        except Exception as err:  # noqa: BLE001 - any other exception is what fuzzing looks for
            return Result("error", f"{type(err).__name__}: {str(err)[:200]}", *spent())
        result = Result("loaded", "", c, w)
        result.fmt, result.fmt_detail, result.fmt_cpu = _check_fmt(text, file, net, seconds * FMT_SECONDS / SECONDS)
    return result


def _check_fmt(text: str, file: str, net, seconds: float) -> tuple[str, str, float]:
    """fmt of a mutant that loads, and the checks on what it gives, each step within ``seconds``
    of CPU; with the CPU seconds of the first (fmt as a user runs it)."""
    try:
        formatted, cpu, _ = _bounded(seconds, lambda: format_spec(text, file))
    except SpecError as err:
        return "refused", error_class(str(err)), 0.0
    except TooSlow:
        return "slow", "fmt", seconds
    except Exception as err:  # noqa: BLE001
        return "error", f"{type(err).__name__}: {str(err)[:200]}", 0.0
    try:
        again, _, _ = _bounded(seconds, lambda: loads(formatted, file=file))
        if without_spans(again.to_json()) != without_spans(net.to_json()):
            return "changed", "the formatted text loads to another network", cpu
        twice, _, _ = _bounded(seconds, lambda: format_spec(formatted, file))
        if twice != formatted:
            return "changed", "formatting the formatted text changes it", cpu
    except TooSlow:
        return "slow", "checking fmt's text", cpu
    except Exception as err:  # noqa: BLE001 - a SpecError here too: the formatted text must load
        return "error", f"fmt's text: {type(err).__name__}: {str(err)[:200]}", cpu
    return "same", "", cpu
