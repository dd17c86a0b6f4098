"""The inference passes, IR → IR: what each does to the bundled networks, and
that a network after them computes what it did before (torch backend, eval)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import incdsl
from incdsl import ir
from incdsl.compiler.passes import (
    fold_batch_norm,
    fuse_parallel_1x1,
    fuse_pool_into_1x1,
    fuse_residual_into_1x1,
    plan_concat_buffers,
)
from incdsl.compiler.pipeline import TRITON_KERNELS, inference_passes, run_passes


def _groups(net: ir.Network, pooled: bool = False) -> list[ir.Node]:
    return [
        n for n in net.nodes if isinstance(n.attrs, ir.Conv1x1GroupAttrs) and (n.attrs.pool is not None) == pooled
    ]


def test_fold_batch_norm_marks_every_bn_conv():
    net = incdsl.load("inception_v4")
    folded = fold_batch_norm(net)
    before = {n.name: n.attrs for n in net.nodes if isinstance(n.attrs, ir.ConvAttrs)}
    after = {n.name: n.attrs for n in folded.nodes if isinstance(n.attrs, ir.ConvAttrs)}
    assert before.keys() == after.keys()
    assert all(a.bn_eps is None and a.folded_bn_eps == before[name].bn_eps for name, a in after.items())
    assert sum(1 for a in before.values() if a.bn_eps is not None) == 149


_STANDALONE_BN = """network standalone
input 8x10x10
conv 1x1 16 linear nobias as pointwise
bn as norm                          # folds: a linear conv read by this bn alone
relu
conv 3x3 16 linear
bn affine=false                     # folds: no γ or β
conv 3x3 16                         # a ReLU between conv and bn: stays
bn
concat:
  conv 1x1 8 linear -> bn           # folds, and then joins the 1×1 group beside
  conv 1x1 8 linear
maxpool 3x3/1 same
bn                                  # after a pool: stays
conv 1x1 8 linear as read_twice
residual linear:
  bn                                # its conv's value is also the shortcut: stays
conv 1x1 4 linear
bn as last                          # folds: the network's output renamed to the conv
"""


def test_fold_batch_norm_folds_a_bn_layer_into_the_linear_conv_only_it_reads(randomise_bn):
    net = incdsl.loads(_STANDALONE_BN)
    passed = run_passes(net, inference_passes("torch"), verify=True)
    left = {n.name for n in passed.nodes if n.op == "bn"}
    assert left == {"bn2", "bn3", "bn4"}
    folded = {n.name: n.attrs.folded_bn for n in passed.nodes if isinstance(n.attrs, ir.ConvAttrs) and n.attrs.folded_bn}
    assert folded == {"pointwise": "norm", "conv1": "bn1", "conv3": "last"}
    assert passed.output == "conv3" and passed.node("relu1").inputs == ("pointwise",)
    group = next(n for n in passed.nodes if isinstance(n.attrs, ir.Conv1x1GroupAttrs))
    assert [(m.name, m.conv.folded_bn) for m in group.attrs.members] == [("branch1.0", "branch1.1"), ("branch2", None)]
    assert passed.node(":concat").inputs == ("branch1.0", "branch2")
    # the fused eval computes what the layers as written compute
    torch.manual_seed(0)
    plain = incdsl.compile(net)
    randomise_bn(plain)
    fused = incdsl.compile(net, fuse=True)
    fused.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        expected = plain.eval()(x)
        assert torch.allclose(fused.eval()(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "sizes"),
    [
        ("googlenet", [3] * 9),
        # stem Mixed_4a, 4 × A, 7 × B, Reduction-B, 3 × C
        ("inception_v4", [2] + [3] * 4 + [3] * 7 + [2] + [3] * 3),
        ("inception_v3", [3, 3, 3, 3, 3, 3, 3, 2, 3, 3]),
        # Mixed_5b, 10 × Block35, 20 × Block17 (1×1 192 and 128), Mixed_7a, 10 × Block8
        ("inception_resnet_v2", [3] + [3] * 10 + [2] * 20 + [3] + [2] * 10),
    ],
)
def test_fuse_parallel_1x1_groups(spec, sizes):
    net = fuse_parallel_1x1(fold_batch_norm(incdsl.load(spec)))
    groups = _groups(net)
    assert [len(g.attrs.members) for g in groups] == sizes
    for g in groups:
        widths = [m.conv.out_channels for m in g.attrs.members]
        assert g.shape[0] == sum(widths)
        # every member is now a slice of the group, under its own name, in order
        starts = [0, *torch.tensor(widths).cumsum(0).tolist()]
        for member, start, stop in zip(g.attrs.members, starts, starts[1:], strict=False):
            s = net.node(member.name)
            assert (s.op, s.inputs, s.attrs.start, s.attrs.stop) == ("slice", (g.name,), start, stop)


def test_googlenet_groups_are_each_modules_three_reductions():
    net = fuse_parallel_1x1(incdsl.load("googlenet"))
    first = _groups(net)[0]
    assert first.name == "inception_3a:conv1x1_group"
    assert [m.name for m in first.attrs.members] == [
        "inception_3a.branch1",
        "inception_3a.branch2.0",
        "inception_3a.branch3.0",
    ]
    assert first.shape == (64 + 96 + 16, 28, 28)
    # the pool projection reads the pooled tensor: not in the group
    assert net.node("inception_3a.branch4.1").op == "conv"


def test_live_batch_norm_and_aux_heads_stay_out():
    net = incdsl.load("inception_v4")
    assert _groups(fuse_parallel_1x1(net)) == []  # BN not folded yet
    googlenet = incdsl.load("googlenet")
    fused = fuse_parallel_1x1(googlenet)
    aux_rows = {h.row for h in googlenet.aux}
    assert all(n.op == "conv" for n in fused.nodes if n.row in aux_rows and n.name.endswith(".1"))


def test_fuse_pool_into_1x1():
    net = fuse_pool_into_1x1(incdsl.load("googlenet"))
    pooled = _groups(net, pooled=True)
    assert len(pooled) == 9
    proj = pooled[0]
    assert proj.inputs == ("maxpool2",)
    assert proj.attrs.pool.op == "maxpool" and proj.attrs.pool.kernel == (3, 3)
    assert "inception_3a.branch4.0" not in net  # the pooled tensor is never made
    v4 = fuse_pool_into_1x1(fold_batch_norm(incdsl.load("inception_v4")))
    pools = [g.attrs.pool for g in _groups(v4, pooled=True)]
    assert len(pools) == 14 and all(p.op == "avgpool" and not p.count_include_pad for p in pools)


def test_plan_concat_buffers_places_every_branch_output():
    net = run_passes(incdsl.load("googlenet"), inference_passes("triton"))
    concat = net.node("inception_3a:concat")
    assert [net.node(i).storage for i in concat.inputs] == [
        ("inception_3a:concat", 0),
        ("inception_3a:concat", 64),
        ("inception_3a:concat", 192),
        ("inception_3a:concat", 224),
    ]
    assert net.node("inception_3a.branch2.0").storage is None  # a reduction: scratch


def test_nested_concats_are_placed_in_their_parent():
    net = run_passes(incdsl.load("inception_v4"), inference_passes("triton"))
    inner = [n for n in net.nodes if n.op == "concat" and n.storage is not None]
    assert inner, "Inception-C's split branches concat into the block's concat"
    for node in inner:
        parent = net.node(node.storage[0])
        assert parent.op == "concat" and node.name in parent.inputs


def test_plan_leaves_the_input_and_repeated_inputs_alone():
    # The language makes neither; build the IR by hand.
    net = incdsl.loads("network t\ninput 4x8x8\nconv 1x1 4 as a\n", file="t.inc")
    cat = ir.Node(
        name="cat:concat",
        attrs=ir.ConcatAttrs(branches=("x", "a1", "a2")),
        inputs=("input", "a", "a"),
        shape=(12, 8, 8),
    )
    planned = plan_concat_buffers(net.with_nodes([*net.nodes, cat], output="cat:concat"))
    assert planned.node("input").storage is None
    assert planned.node("a").storage is None


@pytest.mark.parametrize("spec", ["googlenet", "compat/torchvision_googlenet", "inception_v3"])
def test_fused_torch_eval_equals_the_reference(spec, randomise_bn):
    torch.manual_seed(0)
    net = incdsl.load(spec)
    reference = incdsl.compile(net)
    randomise_bn(reference)
    fused = incdsl.compile(net, fuse=True)
    fused.load_state_dict(reference.state_dict(), strict=True)
    reference.eval()
    fused.eval()
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        diff = (reference(x) - fused(x)).abs().max().item()
    assert diff < 1e-4


def test_fused_weights_follow_the_parameters(randomise_bn):
    torch.manual_seed(0)
    model = incdsl.compile("examples/mini_googlenet", fuse=True).eval()
    reference = incdsl.compile("examples/mini_googlenet").eval()
    x = torch.randn(2, 1, 32, 32)
    before = model(x)
    randomise_bn(reference, seed=3)
    model.load_state_dict(reference.state_dict())
    after = model(x)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, reference(x), atol=1e-5)


def test_fused_training_mode_is_the_reference():
    torch.manual_seed(0)
    model = incdsl.compile("examples/mini_googlenet", fuse=True).train()
    out = model(torch.randn(4, 1, 32, 32))
    assert out.aux and out.aux[0].weight == 0.3
    out.loss(nn.functional.cross_entropy, torch.tensor([0, 1, 2, 3])).backward()
    assert model.get_submodule("inception_3a.branch1").conv.weight.grad is not None


def test_fused_weights_follow_in_place_edits_and_moves():
    torch.manual_seed(0)
    model = incdsl.compile("examples/mini_googlenet", fuse=True).eval()
    reference = incdsl.compile("examples/mini_googlenet").eval()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 32, 32)
    model(x)
    with torch.no_grad():  # as an optimizer step would, in place
        for module in (model, reference):
            module.get_submodule("inception_3a.branch1").conv.weight.mul_(3)
    assert torch.allclose(model(x), reference(x), atol=1e-5)
    model.double()
    assert model(x.double()).dtype == torch.float64
    assert torch.allclose(model(x.double()).float(), reference(x), atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("spec", incdsl.bundled_specs())
def test_every_pass_keeps_the_ir_invariants(spec, backend):
    net = incdsl.load(spec)
    passed = run_passes(net, inference_passes(backend, TRITON_KERNELS), verify=True)
    # the passes never touch the parameters: the same modules hold them
    assert {m.name for n in passed.nodes if isinstance(n.attrs, ir.Conv1x1GroupAttrs) for m in n.attrs.members} <= {
        n.name for n in net.nodes if n.op == "conv"
    }


def test_the_verifier_catches_a_misplaced_value():
    from incdsl.compiler.verify import verify

    net = run_passes(incdsl.load("googlenet"), inference_passes("triton"))
    node = net.node("inception_3a.branch2.1")
    wrong = node.model_copy(update={"storage": ("inception_3a:concat", 0)})
    broken = net.with_nodes([wrong if n.name == node.name else n for n in net.nodes])
    with pytest.raises(AssertionError, match="stored at channel 0 of `inception_3a:concat`, which reads it at \\[64\\]"):
        verify(broken, after="a test")


@pytest.mark.parametrize("spec", ["inception_resnet_v2", "inception_resnet_v1", "paper/inception_resnet_v2"])
def test_fuse_residual_takes_every_residual_add(spec):
    net = fold_batch_norm(incdsl.load(spec))
    adds = [n for n in net.nodes if n.op == "add"]
    fused = fuse_residual_into_1x1(net)
    groups = [n for n in fused.nodes if isinstance(n.attrs, ir.Conv1x1GroupAttrs)]
    assert [g.name for g in groups] == [a.name for a in adds]  # under the add's name: readers unchanged
    for group, add in zip(groups, adds, strict=True):
        conv = net.node(add.inputs[1])
        assert group.attrs.residual == add.attrs and group.attrs.members[0].name == conv.name
        assert group.inputs == (conv.inputs[0], add.inputs[0])
        assert conv.name not in fused
    if spec == "inception_resnet_v2":
        assert groups[-1].attrs.residual.act is None  # TF-slim's last Block8 has no ReLU


@pytest.mark.parametrize(
    ("spec", "shape", "features"),
    [
        ("compat/torchvision_googlenet", (3, 96, 96), None),
        ("inception_resnet_v2", (3, 75, 75), None),
        ("compat/fid_inception_v3", (3, 75, 75), ["maxpool2", "Mixed_6e"]),
    ],
)
def test_fused_eval_is_one_graph_for_torch_compile(spec, shape, features, randomise_bn):
    """torch.compile of the fused eval broke the graph 19 times and hit Dynamo's recompile limit:
    it walked IR nodes with dict lookups. The steps are plain values now: one graph, compiled once."""
    from torch._dynamo.testing import CompileCounter

    torch.manual_seed(0)
    net = incdsl.load(spec, input="x".join(map(str, shape)))
    model = incdsl.compile(net, fuse=True, features=features)
    randomise_bn(model)
    model.eval()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=False)  # fullgraph: a break is an error
    x, other = torch.randn(2, *shape), torch.randn(2, *shape)
    with torch.no_grad():
        got, got_other, again = compiled(x), compiled(other), compiled(x)
        expected, expected_other = model(x), model(other)
    assert counter.frame_count == 1, "compiled once, and not again for the next calls"
    if features:
        assert list(got) == features
        got, expected, again, got_other, expected_other = (v["Mixed_6e"] for v in (got, expected, again, got_other, expected_other))
    assert torch.allclose(got, expected, atol=1e-5) and torch.allclose(got_other, expected_other, atol=1e-5)
    assert torch.equal(got, again)


def test_compiled_fused_eval_folds_the_parameters_as_they_are(randomise_bn):
    """Under torch.compile the weights are folded in the graph: a state_dict loaded later is used
    (unless Inductor's freezing made them constants, as it does for any model)."""
    from torch._dynamo.testing import CompileCounter

    torch.manual_seed(0)
    model = incdsl.compile("examples/mini_googlenet", fuse=True).eval()
    reference = incdsl.compile("examples/mini_googlenet").eval()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        compiled(x)
        randomise_bn(reference, seed=4)
        model.load_state_dict(reference.state_dict())
        assert torch.allclose(compiled(x), reference(x), atol=1e-5)
    assert counter.frame_count == 1
