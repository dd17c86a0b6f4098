"""The one exception a user's mistake in a spec may raise, and how it is shown.

Every stage (decoding, parsing, elaboration, shape inference) reports problems
as a :class:`SpecError` that points at a place in a file. The CLI prints it as

    googlenet.inc:12:5: error: unknown layer type `convv`
       12 |     convv 3x3 64
          |     ^^^^^
    hint: did you mean `conv`?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class Span:
    """A place in a source file: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class _Located:
    """A message about a place in a spec, with a hint: what SpecError and SpecWarning share."""

    #: The word the rendered message starts with, and its colour.
    kind, colour = "error", "1;31"

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source

    @property
    def file(self) -> str | None:
        return self.span.file if self.span else None

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def with_source(self, source: str) -> Self:
        """Attach the text of the file the span points into (for the caret display)."""
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        return self.render()

    def render(self, color: bool = False) -> str:
        """The message as the CLI prints it; ``color`` adds ANSI colours (for a terminal)."""
        paint = _paint if color else (lambda text, _code: text)
        where = f"{self.span}: " if self.span else ""
        out = [f"{paint(where, '1')}{paint(self.kind + ':', self.colour)} {paint(self.message, '1')}"]
        excerpt = self._excerpt()
        if excerpt:
            out += [excerpt[0], paint(excerpt[1], "31")]
        if self.hint:
            out.append(f"{paint('hint:', '1;36')} {self.hint}")
        return "\n".join(out)

    def _excerpt(self) -> list[str]:
        if not (self.span and self.source is not None):
            return []
        if not 1 <= self.span.line <= self.source.count("\n") + 1:
            return []
        # one character a column, as the parser counts them; anything that would not print
        # as itself (a control character the spec was refused for) prints as one `�`
        text = "".join(c if c.isprintable() else " " if c == "\t" else "\ufffd" for c in source_line(self.source, self.span.line))
        start = max(self.span.column, 1)
        if self.span.end_line == self.span.line and self.span.end_column:
            width = max(self.span.end_column - start, 1)
        else:
            width = max(len(text.rstrip()) - start + 1, 1)
        gutter = " " * len(str(self.span.line))
        return [
            f" {self.span.line} | {text}",
            f" {gutter} | {' ' * (start - 1)}{'^' * width}",
        ]


class SpecError(_Located, Exception):
    """A mistake in a spec, with where it is and what to do about it.

    >>> err = SpecError("unknown layer type `convv`", Span("net.inc", 3, 1, 3, 6),
    ...                 hint="did you mean `conv`?")
    >>> (err.file, err.line, err.column)
    ('net.inc', 3, 1)
    """


class SpecWarning(_Located, UserWarning):
    """Something in a spec that is valid but likely not what was meant (an input written
    height×width×channels); shown like a SpecError, as ``file:line:col: warning: ...``."""

    kind, colour = "warning", "1;33"


class SpecNotFound(SpecError):
    """The spec a command or :func:`incdsl.load` names is neither a file nor a bundled spec."""


def source_line(source: str, line: int) -> str:
    """Line ``line`` (1-based) of ``source`` as the parser counts lines: only a line feed
    ends one (``str.splitlines`` also splits at characters the language does not break at).

    >>> source_line("a\\u2028b\\r\\nc\\n", 1)
    'a\\u2028b'
    """
    lines = source.split("\n")
    return lines[line - 1].removesuffix("\r") if 1 <= line <= len(lines) else ""


def _paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if text else text


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate most like ``word``, if any is close enough to be a typo."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None."""
    best = closest(word, candidates)
    return f"did you mean `{best}`?" if best else None


def shorten(text: str, width: int = 60) -> str:
    """``text`` as a message echoes it: cut to ``width`` characters, the cut marked with `…`.

    >>> shorten("x" * 100, 10)
    'xxxxxxxxx…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"
