"""Layer names: the naming rules that decide whether a reference state_dict loads, and names
that can never become Python attributes."""

from __future__ import annotations

import ast
import sys

import pytest
from torch import nn

import incdsl
from incdsl import SpecError, loads
from incdsl.elaborate import RESERVED_NAMES

HEAD = "network t\ninput 3x16x16\n"


def test_reserved_names_are_exactly_the_public_attributes_of_the_compiled_modules():
    """A top-level layer is an attribute of the network's module: named `program` it would hide
    the fused network's property of that name (and the Triton module's forward would call it)."""
    from incdsl.compiler.torch.fused import FusedNetwork
    from incdsl.compiler.triton.module import TritonNetwork

    public = {name for cls in (nn.Module, FusedNetwork, TritonNetwork) for name in dir(cls) if not name.startswith("_")}
    assert public | {"training"} == RESERVED_NAMES


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
    runtime = {"super", "Group", "Chain", "L2Norm", "residual", "TrainOutput", "AuxOutput", "criterion", "str", "tuple", "module"}
    assert calls <= runtime | {"B"}


def test_module_names_that_are_not_identifiers_are_quoted():
    """Any name PyTorch takes for a module: `"1x1"`, `"3x3_reduce"`, a leading digit, a keyword."""
    import ast as pyast

    from incdsl.compiler.torch.codegen import generate

    text = 'block inc():\n  concat:\n    conv 1x1 4 as "1x1"\n    conv 1x1 2 as "3x3_reduce" -> conv 3x3 4 as "3x3"\n'
    text += 'inc() as "5b"\nconv 1x1 4 as class\n'
    net = loads(HEAD + text)
    assert names(text) == ["5b.1x1", "5b.3x3_reduce", "5b.3x3", "class"]
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
                                     "NETWORK", "triton_eval", "json", "residual"])
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
    assert [n["name"] for n in module.NETWORK["nodes"]][1] == "층"
