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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .. import ast
from ..errors import Span, SpecError

#: The field of a block instance's flat name pattern (``as "inception_3a_{layer}"``).
LAYER_FIELD = "{layer}"


def flat_instance_name(pattern: str) -> str:
    """The name of a block instance whose modules are named by ``pattern``: the pattern without its
    ``{layer}`` and the ``_`` that joins it (what ``aux after``, ``features=`` and the params table
    use); a name without the field is the instance's own.

    >>> flat_instance_name("inception_3a_{layer}"), flat_instance_name("_x")
    ('inception_3a', '_x')
    """
    return pattern.replace(LAYER_FIELD, "").strip("_") if LAYER_FIELD in pattern else pattern


#: Statements that only make sense at the top level of a network spec.
TOP_LEVEL = ("network", "input", "defaults", "include", "extends", "aux", "table")
CONTAINERS = ("concat", "split", "seq", "residual", "shortcut")
KEYWORDS = (*TOP_LEVEL, *CONTAINERS, "block")

#: Attributes a module name must not take: those of ``torch.nn.Module`` (its methods, ``training``,
#: ``T_destination``...), of the runtime's containers that hold a layer's parts and a scope's layers
#: (``Chain``, ``Group``) and of the networks incdsl compiles (``program``, ``tune``...). Names
#: starting with ``_`` are refused as a class, so only the public ones are listed. Checked in (``check``
#: must not import torch); tests/test_names.py keeps it equal to what the installed torch gives.
RESERVED_NAMES = frozenset(
    ["build_plan", "forms", "forms_at", "kernels", "launch_plan", "measure_forms", "program", "set_forms", "refresh_weights", "setup_inference", "setup_triton", "tune", "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad"]
)


def _check_normal_form(name: str, span: Span, what: str) -> None:
    """Refuse a name that Python would read as another: it folds every identifier in source to
    its NFKC form (``ｃonv1`` and ``conv1`` are one attribute, ``ﬁlter`` is ``filter``), so
    ``self.ｃonv1 = ...`` in a generated file would not be the module ``add_module("ｃonv1")``
    makes in memory. In NFKC form a name means the same in both, and two names that differ stay
    two attributes."""
    normal = unicodedata.normalize("NFKC", name)
    if normal != name:
        raise SpecError(
            f"{what} `{name}` is `{normal}` to Python",
            span,
            hint=f"Python reads identifiers in NFKC form, where compatibility characters (fullwidth "
            f"letters, ligatures such as `ﬁ`) become plain ones: write `{normal}`",
        )


def _check_not_reserved(name: str, span: Span, what: str) -> None:
    if name.startswith("_"):
        raise SpecError(
            f"{what} `{name}` starts with `_`",
            span,
            hint="names starting with `_` are torch.nn.Module's private attributes; choose another name",
        )
    if name in RESERVED_NAMES:
        raise SpecError(
            f"{what} `{name}` would shadow the torch.nn.Module attribute of that name",
            span,
            hint=f"choose another name, e.g. `{name}_`" if not name.endswith("_") else "choose another name",
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
    _check_normal_form(name, span, what)
    _check_not_reserved(name, span, what)


def check_module_name(name: str, span: Span, what: str = "layer name") -> None:
    """Refuse a name PyTorch would not take for a submodule, a Python keyword (torch.export's
    generated code cannot hold one), a name that would shadow an attribute of ``torch.nn.Module``
    or one Python would read as another (see :func:`_check_normal_form`); anything else goes
    (``1x1``, ``3x3_reduce``, ``5b``, ``층``), quoted where it is not an identifier. Every module
    name passes here: :meth:`Names.register` calls it on each.

    >>> check_module_name("3x3_reduce", Span("t.inc", 1, 1))
    >>> check_module_name("a.b", Span("t.inc", 1, 1))
    Traceback (most recent call last):
    incdsl.errors.SpecError: t.inc:1:1: error: layer name `a.b` cannot name a module
    hint: PyTorch module names cannot be empty or contain `.`, and incdsl keeps `:` for its own nodes
    >>> check_module_name("ｆorward", Span("t.inc", 1, 1))
    Traceback (most recent call last):
    incdsl.errors.SpecError: t.inc:1:1: error: layer name `ｆorward` is `forward` to Python
    hint: Python reads identifiers in NFKC form, where compatibility characters (fullwidth letters, ligatures such as `ﬁ`) become plain ones: write `forward`
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
    if keyword.iskeyword(name):
        raise SpecError(
            f"{what} `{name}` is a Python keyword",
            span,
            hint=f"torch.export (and so `incdsl export`) writes module names into Python code, where a "
            f"keyword cannot stand: choose another name, e.g. `{name}_`",
        )
    _check_normal_form(name, span, what)
    _check_not_reserved(name, span, what)


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

    #: A flat scope (a block instance named ``as "inception_3a_{layer}"``) opens no module: its
    #: names are this pattern filled in, beside the instance in the scope that holds it.
    flat: str | None = None

    def full(self, name: str) -> str:
        """``name`` inside this scope."""
        if self.flat is not None:
            return self.flat.replace(LAYER_FIELD, name)
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

    def register(self, scope: Scope, leaf: str, span: Span, what: str = "layer name") -> str:
        """Claim the module ``leaf`` in ``scope`` once :func:`check_module_name` passes it (every
        module name comes here); a second claim of its path is a duplicate-name error."""
        check_module_name(leaf, span, what)
        name = scope.full(leaf)
        if scope.flat is not None:  # the joined name is the module's: `state` + `dict` would shadow state_dict
            check_module_name(name.rpartition(".")[2], span, what)
        if name in self.spans:
            raise SpecError(
                f"duplicate layer name `{name}`", span, hint=f"`{name}` is already used at {self.spans[name]}"
            )
        self.spans[name] = span
        return name

    def allocate(self, scope: Scope, base: str, rename: ast.Rename | None, label: str | None, span: Span) -> str:
        """The name of a new module of kind ``base`` in ``scope``: its ``as`` name, else the label
        it is given (a concat branch's), else its position or type and count (see the module's rules)."""
        if rename is not None:
            if scope.indexed:
                self._take_index(scope)
            return self.register(scope.named, rename.name, rename.span)
        if label is not None:
            return self.register(scope, label, span)
        if scope.indexed:
            return self.register(scope, str(self._take_index(scope)), span)
        key = (scope.path, base)
        self._counts[key] = n = self._counts.get(key, 0) + 1
        return self.register(scope, f"{base}_{n}" if base[-1].isdigit() else f"{base}{n}", span)

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
