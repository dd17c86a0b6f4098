"""Names and scopes: what a layer, block or network may be called, and the dotted name each layer gets.

Naming rules (they decide whether a reference ``state_dict`` loads):

* an explicit ``as name`` (``as "1x1"`` where the name is not an identifier) puts the layer in the nearest *named* scope (the
  network, a block instance, an aux head, a ``seq NAME:`` or a named repeat);
* otherwise a layer in a named scope is called after its type and a running
  count (``conv1``, ``maxpool2``), and one in an *indexed* scope (a ``seq``,
  a multi-layer branch) after its position (``0``, ``1``, ...);
* the branches of a ``concat`` are ``branch1``, ``branch2``, ... (``base=0``
  counts from 0); a one-layer branch is that layer, a longer one is an indexed
  scope; ``concat`` and ``residual`` add no scope of their own.

:class:`Scope` is a value; :class:`Names` holds the only mutable part of
naming: the names given so far and each scope's counters.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from dataclasses import dataclass

from .. import ast
from ..errors import Span, SpecError

#: Statements that only make sense at the top level of a network spec.
TOP_LEVEL = ("network", "input", "defaults", "include", "aux", "table")
CONTAINERS = ("concat", "seq", "residual")
KEYWORDS = (*TOP_LEVEL, *CONTAINERS, "block")

#: Attributes of torch.nn.Module, and of the modules incdsl compiles, that a layer name must not
#: shadow (tests/test_names.py keeps this list equal to the public names of ``dir(torch.nn.Module())``
#: and of the fused torch and Triton networks' classes: ``program``, ``tune``, ...).
RESERVED_NAMES = frozenset(
    ["build_plan", "kernels", "program", "refresh_weights", "setup_inference", "setup_triton", "tune", "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad"]
)


def check_identifier(name: str, span: Span, what: str = "layer name") -> None:
    """Refuse a name that cannot be a Python attribute of a module, or would shadow one.

    >>> check_identifier("conv1", Span("t.inc", 1, 1))
    >>> check_identifier("eval", Span("t.inc", 1, 1))
    Traceback (most recent call last):
    incdsl.errors.SpecError: t.inc:1:1: error: layer name `eval` would shadow the torch.nn.Module attribute of that name
    hint: choose another name, e.g. `eval_`
    """
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise SpecError(
            f"{what} `{name}` is not a valid Python identifier",
            span,
            hint="module names become Python attributes: use letters, digits and `_`, not starting "
            "with a digit or `_`, and not a Python keyword",
        )
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{what} `{name}` would shadow the torch.nn.Module attribute of that name",
            span,
            hint=f"choose another name, e.g. `{name}_`" if not name.endswith("_") else "choose another name",
        )


def check_module_name(name: str, span: Span, what: str = "layer name") -> None:
    """Refuse a name PyTorch would not take for a submodule, or one that would shadow an attribute
    of ``torch.nn.Module``; anything else goes (``1x1``, ``3x3_reduce``, ``5b``), quoted where it
    is not an identifier.

    >>> check_module_name("3x3_reduce", Span("t.inc", 1, 1))
    >>> check_module_name("a.b", Span("t.inc", 1, 1))
    Traceback (most recent call last):
    incdsl.errors.SpecError: t.inc:1:1: error: layer name `a.b` cannot name a module
    hint: PyTorch module names cannot be empty or contain `.`, and incdsl keeps `:` for its own nodes
    """
    if not name or "." in name or ":" in name:
        raise SpecError(
            f"{what} `{name}` cannot name a module",
            span,
            hint="PyTorch module names cannot be empty or contain `.`, and incdsl keeps `:` for its own nodes",
        )
    odd = [c for c in name if not c.isprintable() or c.isspace() or c in "\\'\""]
    if odd:
        raise SpecError(
            f"{what} `{name}` contains {odd[0]!r}",
            span,
            hint="module names are written without spaces, quotes or backslashes",
        )
    if name.startswith("_"):
        raise SpecError(
            f"{what} `{name}` starts with `_`",
            span,
            hint="names starting with `_` are torch.nn.Module's private attributes; choose another name",
        )
    if name in RESERVED_NAMES:
        check_identifier(name, span, what)


def rename_of(terms: Sequence[ast.Term]) -> ast.Rename | None:
    """The ``as name`` among an item's terms, if any (at most one)."""
    renames = [t for t in terms if isinstance(t, ast.Rename)]
    if len(renames) > 1:
        raise SpecError("a layer can have only one `as` name", renames[1].span)
    return renames[0] if renames else None


@dataclass(frozen=True)
class Scope:
    """Where names are made: ``path`` is the dotted prefix (``""`` for the network)."""

    path: str
    #: Layers without a name are numbered 0, 1, ... (a ``seq``, a multi-layer branch).
    indexed: bool = False
    #: Where explicit names go when this scope is an automatic one.
    home: Scope | None = None

    def full(self, name: str) -> str:
        """``name`` inside this scope."""
        return f"{self.path}.{name}" if self.path else name

    @property
    def named(self) -> Scope:
        """The nearest scope with a name of its own (this one, or its home's)."""
        return self.home.named if self.home else self


class Names:
    """Every name given so far (with where), and each scope's counters."""

    def __init__(self) -> None:
        self.spans: dict[str, Span] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._next_index: dict[str, int] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.spans

    def register(self, name: str, span: Span) -> None:
        """Claim ``name``; a second claim is a duplicate-name error."""
        if name in self.spans:
            raise SpecError(
                f"duplicate layer name `{name}`", span, hint=f"`{name}` is already used at {self.spans[name]}"
            )
        self.spans[name] = span

    def allocate(self, scope: Scope, base: str, rename: ast.Rename | None, label: str | None, span: Span) -> str:
        """The name of a new module of kind ``base`` in ``scope``: its ``as`` name, else the label
        it is given (a concat branch's), else its position or type and count (see the module's rules)."""
        if rename is not None:
            check_module_name(rename.name, rename.span)
            if scope.indexed:
                self._take_index(scope)
            name = scope.named.full(rename.name)
            span = rename.span
        elif label is not None:
            name = scope.full(label)
        elif scope.indexed:
            name = scope.full(str(self._take_index(scope)))
        else:
            key = (scope.path, base)
            self._counts[key] = n = self._counts.get(key, 0) + 1
            name = scope.full(f"{base}_{n}" if base[-1].isdigit() else f"{base}{n}")
        self.register(name, span)
        return name

    def synthetic(self, scope: Scope, op: str) -> str:
        """A name for a node without a module (a concat, an add); `:` keeps it apart from module
        names, and a count per scope and op (not a search for a free name) keeps it unique."""
        key = (f"{scope.path}:", op)
        self._counts[key] = n = self._counts.get(key, 0) + 1
        name = f"{scope.path}:{op}" if n == 1 else f"{scope.path}:{op}{n}"
        self.spans[name] = Span("", 0, 0)
        return name

    def _take_index(self, scope: Scope) -> int:
        index = self._next_index.get(scope.path, 0)
        self._next_index[scope.path] = index + 1
        return index
