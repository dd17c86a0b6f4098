"""Syntax tree → graph IR: blocks instantiated, tables expanded, names given.

The one entry point is :func:`elaborate`. It resolves includes through a
callback (so this package does no I/O of its own), expands block calls, table
rows and repetitions, applies the network's defaults, and names every layer.
One module per concern, in the order the data goes through them:

* :mod:`.names` — identifiers, scopes and the naming rules;
* :mod:`.declarations` — includes, blocks, argument tables and defaults, collected first;
* :mod:`.expressions` — values of terms, and a call's arguments bound to a block's parameters;
* :mod:`.tables` — Table-1 headers and rows, and the paper's figures;
* :mod:`.walker` — statements, layers, containers, repeats and calls over an immutable cursor;
* :mod:`.network` — the top level: name, input, main path rows, aux heads.

Words, each with one meaning: a *table* is a header line with indented *rows*
in a spec — a Table-1 table (its header names a block; each row instantiates
it) or an *argument table* (``table NAME col...``; each row is an *entry*, a
named set of arguments). The *params table* is the report ``incdsl params``
prints; its rows are :class:`~incdsl.ir.Row` (a statement of the main path, a
Table-1 row, or an aux head), whose columns come from :class:`~incdsl.ir.TableHeader`.
"""

from __future__ import annotations

from .declarations import IncludeResolver
from .names import RESERVED_NAMES, check_identifier
from .network import elaborate, parse_input_shape

__all__ = ["elaborate", "parse_input_shape", "check_identifier", "IncludeResolver", "RESERVED_NAMES"]
