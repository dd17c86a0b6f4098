"""Layer names: the naming rules that decide whether a reference state_dict loads, and names
that can never become Python attributes."""

from __future__ import annotations

import ast
import re
import sys

import pytest
from torch import nn

import incdsl
from incdsl import SpecError, loads
from incdsl.elaborate import RESERVED_NAMES

HEAD = "network t\ninput 3x16x16\n"


def test_reserved_names_are_exactly_the_public_attributes_a_module_name_could_take():
    """A module name is an attribute of its parent: of the network (named `program` a layer would
    hide the fused network's property, and the Triton module's forward would call it), of a
    scope's container (`Group`, a block's class) or of a layer's `Chain` of parts (`X.training`
    made `add_module` raise KeyError). The list is checked in, so that `check` need not import
    torch; this keeps it equal to what the installed torch and the compiled classes have:
    their public attributes, the instances' (`training`) with them."""
    from incdsl.compiler.torch.fused import FusedNetwork
    from incdsl.compiler.torch.runtime import Chain, Group
    from incdsl.compiler.triton.module import TritonNetwork

    spec = loads(HEAD + "conv 1x1 4 bn\nseq s:\n  conv 1x1 4\n  conv 1x1 4\n")
    networks = [incdsl.compile(spec), incdsl.compile(spec, fuse=True), incdsl.compile(spec, backend="triton")]
    instances = [nn.Module(), Chain(), Group(), *networks]
    classes = [*map(type, instances), FusedNetwork, TritonNetwork]
    names = {*(n for cls in classes for n in dir(cls)), *(n for m in instances for n in vars(m))}
    public = {name for name in names if not name.startswith("_")}
    assert public == RESERVED_NAMES


def names(text: str) -> list[str]:
    net = loads(HEAD + text)
    return [n.name for n in net.nodes if n.has_module]


def test_top_level_layers_are_named_by_type_and_count():
    assert names("conv 3x3 8\nmaxpool 3x3/2\nconv 1x1 8\nconv 3x3 8 as stem\n") == [
        "conv1", "maxpool1", "conv2", "stem",
    ]


def test_branches_are_numbered_and_long_branches_are_indexed_scopes():
    text = "block m():\n  concat:\n    conv 1x1 4\n    conv 1x1 4 -> conv 3x3 4\n    maxpool 3x3/1 same -> conv 1x1 4\nm()\n"
    assert names(text) == ["m1.branch1", "m1.branch2.0", "m1.branch2.1", "m1.branch3.0", "m1.branch3.1"]


def test_branch_numbering_can_start_at_zero_like_timm():
    text = "defaults:\n  concat base=0\nblock m():\n  concat:\n    conv 1x1 4\n    conv 1x1 4\nm() as mixed\n"
    assert names(text) == ["mixed.branch0", "mixed.branch1"]


def test_explicit_names_live_in_the_block_not_in_the_branch():
    text = (
        "block a():\n  concat:\n    conv 1x1 4 as branch1x1\n"
        "    conv 1x1 4 as branch5x5_1 -> conv 5x5 4 as branch5x5_2\n"
        "    avgpool 3x3/1 same -> conv 1x1 4 as branch_pool\n"
        "a() as Mixed_5b\n"
    )
    assert names(text) == [
        "Mixed_5b.branch1x1", "Mixed_5b.branch5x5_1", "Mixed_5b.branch5x5_2", "Mixed_5b.branch3.0",
        "Mixed_5b.branch_pool",
    ]


def test_seq_scopes_and_repeats_take_consecutive_indices():
    text = "block b():\n  conv 1x1 3\nseq features:\n  conv 3x3 3\n  2 x b()\n  3 x b() as repeat\n"
    assert names(text) == [
        "features.0", "features.1.conv1", "features.2.conv1",
        "features.repeat.0.conv1", "features.repeat.1.conv1", "features.repeat.2.conv1",
    ]


@pytest.mark.parametrize(
    "name", ["__import__", "os.system", "a b", "x;y", '"a.b"', '"a b"', '"x\\\\y"', "x\\ny", "__class__", '"forward"']
)
def test_hostile_layer_names_are_rejected(name):
    with pytest.raises(SpecError):
        loads(HEAD + f"conv 3x3 8 as {name}\n")


@pytest.mark.parametrize(
    "text",
    [
        "network __import__\ninput 3x8x8\nconv 1x1 4\n",
        HEAD + "block __init__():\n  conv 1x1 4\n__init__()\n",
        HEAD + 'block b(c):\n  conv 1x1 c\nb "c" as "x{row}; import os"\n  r 4\n',
        HEAD + 'block b(c):\n  conv 1x1 c\nb "c" as "{row}"\n  __import__ 4\n',
        HEAD + "conv 1x1 4 as stem\naux __dict__ after stem weight=0.3:\n  linear 2\n",
        HEAD + 'seq "a.b":\n  conv 1x1 4\n',
    ],
)
def test_hostile_names_anywhere_a_module_is_named(text):
    with pytest.raises(SpecError):
        loads(text)


def test_generated_source_holds_only_validated_names():
    import ast as pyast

    from incdsl.compiler.torch.codegen import generate

    net = loads(HEAD + 'block b(c):\n  conv 1x1 c\nb "c" as "Odd_{row}"\n  x9 4\nconv 1x1 4 as class_\n')
    tree = pyast.parse(generate(net))
    attributes = {n.attr for n in pyast.walk(tree) if isinstance(n, pyast.Attribute)}
    assert {"Odd_x9", "class_"} <= attributes
    calls = {n.func.id for n in pyast.walk(tree) if isinstance(n, pyast.Call) and isinstance(n.func, pyast.Name)}
    # the runtime helpers copied in and the block's class, and nothing else: no eval, exec, getattr or __import__
    runtime = {"super", "Group", "Chain", "L2Norm", "residual", "drop_samples", "layer_scale", "TrainOutput", "AuxOutput", "criterion", "str", "tuple", "module"}
    assert calls <= runtime | {"B"}


def test_module_names_that_are_not_identifiers_are_quoted():
    """Any name PyTorch takes for a module: `"1x1"`, `"3x3_reduce"`, a leading digit."""
    import ast as pyast

    from incdsl.compiler.torch.codegen import generate

    text = 'block inc():\n  concat:\n    conv 1x1 4 as "1x1"\n    conv 1x1 2 as "3x3_reduce" -> conv 3x3 4 as "3x3"\n'
    text += 'inc() as "5b"\n'
    net = loads(HEAD + text)
    assert names(text) == ["5b.1x1", "5b.3x3_reduce", "5b.3x3"]
    source = generate(net)
    pyast.parse(source)
    assert "getattr(self, '1x1')(x)" in source and "self.add_module('5b', Inc(3))" in source


def _import(source: str, path):
    import importlib.util

    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("network", ["group", "f", "conv_b_n", "train_output", "aux_output", "chain", "l2_norm",
                                     "NETWORK", "PASSED", "network_from_json", "triton_eval", "json", "residual"])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_generated_names_never_take_a_helper_s(network, backend, tmp_path):
    """A network named `group` once gave `class Group` a second time (infinite recursion), `f` a
    class that shadowed `torch.nn.functional as F`; a layer named `residual` a local that
    shadowed the helper, `TrainOutput` the class. Every name the file binds is now kept apart."""
    import torch

    from incdsl.compiler.pipeline import generate_source
    from incdsl.compiler.torch.lower import RUNTIME_NAMES, bound_names

    text = (
        f"network {network}\ninput 3x8x8\nblock {network}_triton():\n  conv 3x3 4\nblock network_():\n  conv 1x1 4\n"
        f"{network}_triton()\nnetwork_()\nconv 1x1 4 as residual\nconv 1x1 4 as TrainOutput\nconv 1x1 4 as getattr\n"
        "concat:\n  conv 1x1 2 as F\n  conv 1x1 2 as torch\nglobal_avgpool -> linear 3\n"
        "aux after residual weight=0.3:\n  global_avgpool -> linear 3\n"
    )
    net = loads(text)
    source = generate_source(net, backend)
    tree = ast.parse(source)
    bindings = [name for node in tree.body for name in bound_names(ast.unparse(node))]
    assert len(bindings) == len(set(bindings)), "the file binds a name twice"
    last = tree.body[-1] if backend == "torch" else next(n for n in reversed(tree.body) if isinstance(n, ast.ClassDef))
    assert isinstance(last, ast.ClassDef)
    network_class = last.name if backend == "torch" else last.bases[1].id
    assert network_class not in RUNTIME_NAMES
    module = _import(source, tmp_path / f"gen_{network}_{backend}.py")
    model = getattr(module, network_class)()
    reference = incdsl.compile(net)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))
        out = model.train()(x)
    assert out.logits.shape == (2, 3) and out.aux[0].weight == 0.3


def test_a_file_name_and_module_names_outside_ascii_compile(tmp_path, cli):
    """`a²b.inc` gave class `NetA²b` (a SyntaxError), and with --backend triton -o an
    AssertionError: the embedded network held a backslash."""
    spec = tmp_path / "a²b.inc"
    spec.write_text('input 3x8x8\nconv 3x3 4 as "층"\nglobal_avgpool -> linear 2\n', encoding="utf-8")
    for backend in ("torch", "triton"):
        out = tmp_path / f"net_{backend}.py"
        code, _, err = cli("compile", str(spec), "--backend", backend, "-o", str(out))
        assert code == 0, err
        module = _import(out.read_text(encoding="utf-8"), tmp_path / f"gen_ascii_{backend}.py")
        assert hasattr(module, "AB")
    assert [n["name"] for n in module.PASSED["nodes"]][1] == "층"


# --- every name, every place: refused by `check` where Python or nn.Module would change it, else the same everywhere

#: Where a spec names a module, `{n}` the name and `^` where an error about it points (the term that gives it).
PLACES = {
    "as": 'conv 3x3 4 ^as "{n}"\n',
    "child part": 'conv 3x3 4 bn ^parts="X.{n} X.bn"\n',
    "sibling part": 'conv 3x3 4 bn ^as "{n}" parts="X_conv X"\n',
    "seq": 'seq ^as "{n}":\n  conv 3x3 4\n  conv 1x1 4\n',
    "block instance": 'block b():\n  conv 3x3 4\nb() ^as "{n}"\n',
    "aux head": 'conv 3x3 4 as stem\naux ^"{n}" after stem weight=0.3:\n  global_avgpool -> linear 2\n',
}
TAIL = "global_avgpool -> linear 3\n"
#: Names Python reads as others (NFKC): fullwidth letters and digits, ligatures, a roman numeral,
#: a superscript, an accent written apart from its letter.
NOT_NFKC = ["ｃonv1", "ｆorward", "ｔraining", "ﬁlter", "１x1", "Ⅸ", "a²", "cafe\u0301"]
PRIVATE = ["_modules", "__class__", "_parameters", "__dict__"]
#: Keywords: torch.export writes module names into Python code (`incdsl export` failed with a SyntaxError).
KEYWORDS = ["class", "for", "None", "lambda"]
#: Names that go: the generated file's helpers and imports, builtins, a soft keyword, names
#: outside ASCII in NFKC form, names that are not identifiers.
ACCEPTED = ["residual", "F", "torch", "getattr", "Chain", "Group", "TrainOutput", "self", "match", "층", "café",
            "Δx", "1x1", "eval_"]


def _spec(place: str, name: str) -> tuple[str, int, int]:
    """The spec with ``name`` at ``place``, and the line and column an error about it points at."""
    body = PLACES[place]
    before = body[: body.index("^")]
    line = HEAD.count("\n") + 1 + before.count("\n")
    return HEAD + body.replace("^", "").replace("{n}", name) + TAIL, line, len(before) - before.rfind("\n")


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("name", [*NOT_NFKC, *PRIVATE, *KEYWORDS, *sorted(RESERVED_NAMES)])
def test_a_name_python_or_nn_module_would_change_is_refused_where_it_is_written(name, place):
    text, line, column = _spec(place, name)
    with pytest.raises(SpecError) as info:
        loads(text, file="t.inc")
    assert (info.value.line, info.value.column) == (line, column) and info.value.hint


@pytest.mark.parametrize(("first", "second"), [("conv1", "ｃonv1"), ("filter", "ﬁlter"), ("1x1", "１x1"),
                                               ("café", "cafe\u0301"), ("IX", "Ⅸ")])
@pytest.mark.parametrize("swap", [False, True])
def test_of_two_names_python_reads_as_one_the_one_not_in_nfkc_form_is_refused(first, second, swap, cli, tmp_path):
    """`ｃonv1` beside `conv1` made one module of two in generated code (`self.ｃonv1 = ...` is
    `self.conv1`): forward failed, or with equal shapes ran one conv twice."""
    names = (second, first) if swap else (first, second)
    spec = tmp_path / "pair.inc"
    spec.write_text(HEAD + f'conv 3x3 4 as "{names[0]}"\nconv 3x3 4 as "{names[1]}"\n' + TAIL, encoding="utf-8")
    line = 3 if swap else 4
    for command in (["check"], ["compile", "-o", str(tmp_path / "pair.py")], ["export", "--onnx", str(tmp_path / "p.onnx")]):
        code, _, err = cli(*command[:1], str(spec), *command[1:])
        assert code == 1 and f"{spec}:{line}:12: error: layer name `{second}` is `" in err, err
    assert not (tmp_path / "pair.py").exists()


@pytest.mark.parametrize(("parts", "refused"), [
    ("X.training X.bn", True), ("X.conv X.forward", True), ("X._modules X.bn", True), ("X.__class__ X.bn", True),
    ("X.conv X.bn X.eval", True), ("X.for X.bn", True), ("X.ｃonv X.bn", True), ("X X_ｂn", True),
    ("X Xaining", True), ("X X_training", False), ("X.conv X.norm X.act", False),
])
def test_part_names_are_checked_as_module_names_by_check(parts, refused, cli, tmp_path):
    """Child part names passed `check` and `compile -o`, then `incdsl.compile` raised a KeyError
    from add_module. A sibling's name is its pattern filled in with the layer's (`tr`): `Xaining`
    is `training`, `X_training` is `tr_training`."""
    spec = tmp_path / "parts.inc"
    spec.write_text(HEAD + f'conv 3x3 4 bn as tr parts="{parts}"\n' + TAIL, encoding="utf-8")
    export = [["export", "--onnx", str(tmp_path / "parts.onnx")]] if refused else []
    for command in (["check"], ["compile", "-o", str(tmp_path / "parts.py")], *export):
        code, _, err = cli(*command[:1], str(spec), *command[1:])
        assert (code, f"{spec}:3:21: error: the " in err and "part's name" in err and "hint:" in err) == (
            (1, True) if refused else (0, False)
        ), err
    if not refused:
        incdsl.compile(incdsl.load(spec))


def _accepted(placed: list[tuple[str, str]]):
    """A network with each accepted name at its place (name, place), and its in-memory module in eval mode."""
    text = HEAD + "".join(
        PLACES[place].replace("^", "").replace("{n}", name).replace("stem", f"stem{i}").replace("b()", f"b{i}()")
        for i, (name, place) in enumerate(placed)
    ) + TAIL
    net = loads(text)
    return net, incdsl.compile(net).eval()


@pytest.mark.parametrize("place", sorted(PLACES))
def test_names_that_pass_check_are_the_same_in_memory_and_in_the_generated_file(place, tmp_path):
    """Every accepted name at one place: the in-memory module and the generated file's class hold
    the same weights under the same keys, each name a key's part, and compute the same."""
    import torch

    from incdsl.compiler.torch.codegen import generate

    net, reference = _accepted([(name, place) for name in ACCEPTED])
    keys = list(reference.state_dict())
    assert {name for name in ACCEPTED if any(name in key.split(".") for key in keys)} == set(ACCEPTED)
    generated = _import(generate(net), tmp_path / f"gen_accepted_{place.replace(' ', '_')}.py").T()
    assert list(generated.state_dict()) == keys
    generated.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(generated.eval()(x), reference(x))


def test_names_that_pass_check_export_to_onnx(tmp_path):
    """torch.export writes module names into Python code: a keyword there was a SyntaxError. Each
    accepted name at one place, the places taken in turn (one export is slow)."""
    import torch

    from incdsl.compiler.torch.export import export_onnx

    pytest.importorskip("onnxscript", reason="ONNX export needs onnx and onnxscript (incdsl[onnx])")
    ort = pytest.importorskip("onnxruntime")
    places = sorted(PLACES)
    net, reference = _accepted([(name, places[i % len(places)]) for i, name in enumerate(ACCEPTED)])
    export_onnx(reference, net.input_shape, tmp_path / "accepted.onnx")
    session = ort.InferenceSession(str(tmp_path / "accepted.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 16, 16)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(got) - reference(x)).abs().max().item() < 1e-4


# --- flat names: a block instance whose modules join its name with `_` ------------------------

FLAT = HEAD + """defaults:
  conv bn bias parts="X X_bn"
block inception(n1x1, n3x3red, n3x3):
  concat:
    conv 1x1 n1x1 as "1x1"
    conv 1x1 n3x3red as "3x3_reduce" -> conv 3x3 n3x3 as "3x3"
    maxpool 3x3/1 same as pool -> conv 1x1 n1x1 as pool_proj
"""


def test_a_flat_instance_names_its_modules_as_pretrainedmodels_bn_inception_does():
    model = incdsl.compile(loads(FLAT + 'inception(4, 4, 8) as "inception_3a_{layer}"\n'))
    convs = {k.rsplit(".", 1)[0] for k in model.state_dict()}
    assert convs == {f"inception_3a_{m}{bn}" for m in ("1x1", "3x3_reduce", "3x3", "pool_proj") for bn in ("", "_bn")}
    assert not hasattr(model, "inception_3a")  # no module of its own


def test_table_rows_can_be_flat():
    text = FLAT + 'inception  "#1x1"  "#3x3 reduce"  "#3x3"  as "inception_{row}_{layer}"\n  3a  4  4  8\n  3b  8  4  8\n'
    text += "aux after inception_3a weight=0.3:\n  global_avgpool -> linear 2\nglobal_avgpool -> linear 2 as fc\n"
    net = loads(text)
    assert [n.name for n in net.nodes if n.op == "conv"][:4] == [
        "inception_3a_1x1", "inception_3a_3x3_reduce", "inception_3a_3x3", "inception_3a_pool_proj"
    ]
    assert net.scope("inception_3b").output == "inception_3b:concat"  # features= and `aux after` name the instance
    assert net.aux[0].input == "inception_3a:concat"
    model = incdsl.compile(net)
    assert "inception_3b_3x3_bn.running_var" in model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == incdsl.cost.total(net, aux=True).params


def test_flat_instances_nest():
    text = HEAD + 'block b():\n  conv 1x1 4 as c\nblock o():\n  b() as "inner_{layer}"\n  conv 1x1 4 as d\n'
    net = loads(text + 'o() as "out_{layer}"\no() as nested\n')
    assert [n.name for n in net.nodes if n.op == "conv"] == ["out_inner_c", "out_d", "nested.inner_c", "nested.d"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('inception(4, 4, 8) as "{layer}"', "`{layer}` gives the instance no name of its own"),
        ('inception(4, 4, 8) as "a_{layer}_{layer}"', "a block instance's name holds only the field `{layer}`, once"),
        ('conv 1x1 4 as "a_{layer}"', "`{layer}` names the modules of a block instance, and this is not one"),
        ('inception(4, 4, 8) as "state_{layer}"\ninception(4, 4, 8) as "state"', "duplicate layer name `state`"),
    ],
)
def test_flat_names_that_cannot_be(line, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        loads(FLAT + line + "\n")
