"""Progress for the slow commands (export, rendering): a spinner on stderr.

Shown only when stderr is a terminal, so logs and pipes stay clean; rich
leaves out colours when ``NO_COLOR`` is set. Data never goes here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress(message: str, stream: TextIO | None = None) -> Iterator[Callable[[str], None]]:
    """Show ``message`` with a spinner while the block runs; the block may update it.

    >>> with progress("exporting") as step:     # silent: doctest's stderr is no terminal
    ...     step("writing")
    """
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        yield lambda _message: None
        return
    from rich.console import Console

    console = Console(file=stream, highlight=False)
    with console.status(message) as status:
        yield lambda text: status.update(text)
