"""incdsl.elaborate.names: identifiers, scopes and the counters behind automatic names."""

from __future__ import annotations

import doctest

import pytest

from incdsl import SpecError, ast
from incdsl.elaborate import declarations, expressions, names, network, tables, walker
from incdsl.elaborate.names import Names, Scope, check_identifier, check_module_name, rename_of
from incdsl.errors import Span

AT = Span("t.inc", 1, 1)


def rename(name: str, quoted: bool = False) -> ast.Rename:
    return ast.Rename(span=AT, name=name, quoted=quoted)


@pytest.mark.parametrize("module", [names, declarations, expressions, tables, walker, network])
def test_the_docstring_examples_hold(module):
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0


@pytest.mark.parametrize(("name", "message"), [
    ("3a", "is not a valid Python identifier"),
    ("_hidden", "is not a valid Python identifier"),
    ("class", "is not a valid Python identifier"),
    ("forward", "would shadow the torch.nn.Module attribute"),
])
def test_names_that_cannot_be_module_attributes(name, message):
    with pytest.raises(SpecError, match=message):
        check_identifier(name, AT)


@pytest.mark.parametrize(("name", "message"), [
    ("ｃonv1", "is `conv1` to Python"),
    ("ﬁlter", "is `filter` to Python"),
    ("Ⅸ", "is `IX` to Python"),
    ("class", "is a Python keyword"),
    ("None", "is a Python keyword"),
    ("_modules", "starts with `_`"),
    ("training", "would shadow the torch.nn.Module attribute"),
    ("a.b", "cannot name a module"),
])
def test_module_names_python_or_torch_would_change(name, message):
    with pytest.raises(SpecError, match=message):
        check_module_name(name, AT)


@pytest.mark.parametrize("name", ["1x1", "3x3_reduce", "5b", "층", "café", "residual", "match", "eval_"])
def test_module_names_that_mean_the_same_everywhere(name):
    check_module_name(name, AT)


def test_every_name_a_scope_claims_is_checked_and_claimed_once():
    """Names.register is where every module name passes: a part's name as a layer's."""
    given = Names()
    assert given.register(Scope("m.conv1"), "bn", AT, "the bn part's name") == "m.conv1.bn"
    with pytest.raises(SpecError, match="the main part's name `forward` would shadow"):
        given.register(Scope("m.conv1"), "forward", AT, "the main part's name")
    with pytest.raises(SpecError, match="duplicate layer name `m.conv1.bn`"):
        given.register(Scope("m.conv1"), "bn", AT)


def test_a_named_scope_counts_each_type_on_its_own():
    given = Names()
    root = Scope("")
    assert [given.allocate(root, op, None, None, AT) for op in ("conv", "conv", "maxpool", "inception_v4")] == [
        "conv1", "conv2", "maxpool1", "inception_v4_1",
    ]


def test_an_indexed_scope_numbers_by_position_and_sends_explicit_names_home():
    given = Names()
    home = Scope("net")
    seq = Scope("net.seq1", indexed=True, home=home)
    assert given.allocate(seq, "conv", None, None, AT) == "net.seq1.0"
    assert given.allocate(seq, "conv", rename("stem"), None, AT) == "net.stem"  # takes position 1
    assert given.allocate(seq, "conv", None, None, AT) == "net.seq1.2"
    assert given.allocate(seq, "conv", None, "branch1", AT) == "net.seq1.branch1"


def test_scopes_are_values_and_counters_belong_to_the_path():
    given = Names()
    assert given.allocate(Scope("a"), "conv", None, None, AT) == "a.conv1"
    assert given.allocate(Scope("a"), "conv", None, None, AT) == "a.conv2"
    assert Scope("a") == Scope("a")


def test_a_name_is_given_once():
    given = Names()
    given.allocate(Scope(""), "conv", rename("x"), None, AT)
    with pytest.raises(SpecError, match="duplicate layer name `x`"):
        given.allocate(Scope(""), "conv", rename("x"), None, Span("t.inc", 2, 1))


def test_synthetic_names_take_a_colon_and_never_collide():
    given = Names()
    assert [given.synthetic(Scope("m"), "concat") for _ in range(3)] == ["m:concat", "m:concat2", "m:concat3"]


def test_quoted_names_are_module_names_and_two_renames_are_refused():
    assert Names().allocate(Scope("m"), "conv", rename("1x1", quoted=True), None, AT) == "m.1x1"
    with pytest.raises(SpecError, match="cannot name a module"):
        Names().allocate(Scope(""), "conv", rename("a.b", quoted=True), None, AT)
    with pytest.raises(SpecError, match="only one `as` name"):
        rename_of([rename("a"), rename("b")])


def test_a_flat_scope_names_its_layers_beside_it():
    given = Names()
    flat = Scope("m.inception_3a", flat="m.inception_3a_{layer}")
    assert given.allocate(flat, "conv", rename("1x1", quoted=True), None, AT) == "m.inception_3a_1x1"
    assert given.allocate(flat, "conv", None, None, AT) == "m.inception_3a_conv1"
    assert given.allocate(flat, "branch", None, "branch2", AT) == "m.inception_3a_branch2"
    with pytest.raises(SpecError, match="layer name `state_dict` would shadow"):
        given.allocate(Scope("state", flat="state_{layer}"), "conv", rename("dict"), None, AT)
