"""The table of operations (``incdsl/operations/``) is complete and consistent: every op of the
IR has one entry, every word of the language writes one, and every layer entry's example
builds, its module runs, and its shape inference and parameter count agree with torch's."""

from __future__ import annotations

import typing
from functools import partial

import pytest
import torch

import incdsl
from incdsl import ir
from incdsl.compiler.torch import runtime
from incdsl.compiler.torch.lower import ModuleSpec, build
from incdsl.cost import node_costs
from incdsl.operations import LAYER_TYPES, OPERATIONS, of_word
from incdsl.syntax import BUILTIN_WORDS


def _ir_ops() -> dict[str, type]:
    """Each op of the IR → its attributes' model, from the models themselves."""
    union = typing.get_args(typing.get_args(ir.Attrs)[0])
    return {op: model for model in union for op in typing.get_args(model.model_fields["op"].annotation)}


def test_every_ir_op_has_one_entry_of_its_model():
    ops = _ir_ops()
    assert set(OPERATIONS) == set(ops)
    for op, entry in OPERATIONS.items():
        assert entry.op == op and entry.attrs is ops[op], op


def test_every_word_the_language_takes_writes_an_entry_that_builds_and_runs():
    assert set(LAYER_TYPES) <= set(BUILTIN_WORDS)
    for word, layer in LAYER_TYPES.items():
        entry = of_word(word)
        assert layer.name == word and layer.example.split()[0] == word, word
        assert entry.build is not None and entry.torch is not None, word
    for entry in OPERATIONS.values():
        # an op without syntax is made by elaboration or a pass, and has no module; but the
        # input's normalisation, written under `input CxHxW:` (not a layer line), is a module
        assert bool(entry.syntax) == entry.has_module or entry.op == "normalize", entry.op


def test_flags_agree():
    for entry in OPERATIONS.values():
        assert entry.rank in ("map", "flat", "keep")
        assert not entry.spatial or entry.rank == "map", entry.op  # a spatial op reads and writes maps
        assert not entry.flatten or entry.rank == "flat", entry.op


def _example_nets(word: str) -> list[tuple[str, str]]:
    """The word's example on maps, and on features after ``flatten`` where it takes them."""
    example = LAYER_TYPES[word].example
    nets = [("maps", f"network t\ninput 8x12x12\n{example} as layer\n")]
    if not of_word(word).spatial:
        nets.append(("features", f"network t\ninput 8x2x2\nflatten\n{example} as layer\n"))
    return nets


@pytest.mark.parametrize(("word", "rank", "spec"), [(w, r, s) for w in LAYER_TYPES for r, s in _example_nets(w)])
def test_each_layer_types_module_agrees_with_its_shape_inference_and_cost(word, rank, spec):
    net = incdsl.loads(spec)
    node = net.node("layer")
    entry = OPERATIONS[node.op]
    assert entry is of_word(word)
    before = net.node(node.inputs[0])
    made = entry.torch(node.attrs, before.shape, net.is_flat(before.name))
    built = build(ModuleSpec(made.cls, made.kwargs))
    # a layer scale is a parameter of the module it is in, which the input is multiplied by
    module = built.eval() if isinstance(built, torch.nn.Module) else partial(runtime.layer_scale, gamma=built)
    x = torch.randn(2, *before.shape) if rank == "maps" else torch.randn(2, before.shape[0])
    with torch.no_grad():
        y = module(torch.flatten(x, 1) if entry.flatten else x)
    c, h, w = node.shape
    assert tuple(y.shape[1:]) == ((c, h, w) if y.dim() == 4 else (c,)), word
    assert net.is_flat(node.name) == (y.dim() == 2), word
    parts = incdsl.compile(net)  # with its batch norm and activation parts, as the network builds it
    owned = sum(p.numel() for n, p in parts.named_parameters() if n.startswith("layer"))
    assert node_costs(net)[node.name].params == owned, word
    assert entry.type_label(node.attrs) and entry.picture_label(node.attrs), word
