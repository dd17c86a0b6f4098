"""The torch backend: modules named as the spec, aux heads in training, generated source,
and torchvision's GoogLeNet as the oracle."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torchvision
from conftest import import_generated, randomise
from torch import nn

import incdsl
from incdsl.compiler.torch.codegen import LINE, class_name, generate
from incdsl.compiler.torch.runtime import TrainOutput
from incdsl.cost import total


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def googlenet_ir():
    return incdsl.load("specs/googlenet.inc")


@pytest.fixture(scope="module")
def googlenet(googlenet_ir):
    torch.manual_seed(0)
    return incdsl.compile(googlenet_ir)


def test_module_parameters_equal_the_analysis(googlenet, googlenet_ir):
    assert _count(googlenet) == total(googlenet_ir, aux=True).params


def test_submodules_carry_the_spec_names(googlenet, googlenet_ir):
    names = {n for n, _ in googlenet.named_modules()}
    # the trailing softmaxes only name the loss: forward returns the logits and builds no softmax
    heads = [googlenet_ir.output, *(h.output for h in googlenet_ir.aux)]
    softmaxes = set(heads) - {googlenet_ir.logits, *map(googlenet_ir.aux_logits, googlenet_ir.aux)}
    assert softmaxes == {"softmax1", "aux1.softmax1", "aux2.softmax1"}
    layer_nodes = [n.name for n in googlenet_ir.nodes if n.has_module]
    assert set(layer_nodes) - names == softmaxes
    assert isinstance(googlenet.get_submodule("inception_3a.branch3.1"), nn.Conv2d)
    assert googlenet.get_submodule("inception_3a.branch3.1").kernel_size == (5, 5)
    assert googlenet.get_submodule("inception_3a.branch4")[0].ceil_mode is True


def test_eval_returns_logits_of_the_inferred_shape(googlenet, googlenet_ir):
    googlenet.eval()
    with torch.no_grad():
        out = googlenet(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, googlenet_ir.node(googlenet_ir.logits).shape[0])


def test_training_returns_aux_logits_with_their_weights(googlenet):
    googlenet.train()
    out = googlenet(torch.randn(2, 3, 224, 224))
    assert isinstance(out, TrainOutput)
    assert [(a.name, a.weight, tuple(a.logits.shape)) for a in out.aux] == [("aux1", 0.3, (2, 1000)), ("aux2", 0.3, (2, 1000))]
    target = torch.tensor([3, 7])
    ce = nn.functional.cross_entropy
    expected = ce(out.logits, target) + 0.3 * ce(out.aux[0].logits, target) + 0.3 * ce(out.aux[1].logits, target)
    assert torch.allclose(out.loss(ce, target), expected)


def test_training_the_paper_googlenet_lowers_the_loss(googlenet_ir):
    torch.manual_seed(1)
    model = incdsl.compile(googlenet_ir)
    model.train()
    images, labels = torch.randn(4, 3, 224, 224), torch.tensor([0, 1, 2, 3])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = model(images).loss(nn.functional.cross_entropy, labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


# --- torchvision's GoogLeNet as the oracle -------------------------------------------


#: spec → torchvision's transform_input: the plain compat spec, and its pretrained form
#: (torchvision switches transform_input on whenever weights are requested).
TORCHVISION_GOOGLENETS = {"compat/torchvision_googlenet": False, "compat/torchvision_googlenet_pretrained": True}


@pytest.fixture(scope="module", params=list(TORCHVISION_GOOGLENETS))
def torchvision_pair(request):
    torch.manual_seed(0)
    transform_input = TORCHVISION_GOOGLENETS[request.param]
    # fan-in-scaled weights: with torchvision's own init the logits hardly depend on the input
    reference = randomise(
        torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=transform_input), seed=1
    )
    ours = incdsl.compile(request.param)
    return reference, ours


def test_torchvision_parameter_counts(torchvision_pair):
    reference, ours = torchvision_pair
    assert _count(ours) == _count(reference) == 13_004_888
    without_aux = _count(reference) - _count(reference.aux1) - _count(reference.aux2)
    net = incdsl.load("specs/compat/torchvision_googlenet.inc")
    assert total(net).params == without_aux == 6_624_904


def test_torchvision_state_dict_loads_strictly_and_logits_agree(torchvision_pair):
    reference, ours = torchvision_pair
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.eval()
    ours.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        diff = (reference(x) - ours(x)).abs().max().item()
    print(f"torchvision googlenet (transform_input={reference.transform_input}) vs {ours._network_name}, eval, "
          f"batch 2: max abs difference {diff:.1e}")
    assert diff <= 1e-5


def test_the_pretrained_form_is_not_the_plain_one():
    """The two forms differ by far more than the tolerance, so the parity above tells them apart."""
    torch.manual_seed(0)
    reference = randomise(torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True), seed=1)
    plain, pretrained = (incdsl.compile(spec).eval() for spec in TORCHVISION_GOOGLENETS)
    for model in (plain, pretrained):
        model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (plain(x) - pretrained(x)).abs().max() > 1e-3


def test_torchvision_aux_heads_agree_in_training(torchvision_pair):
    reference, ours = (copy.deepcopy(m) for m in torchvision_pair)
    ours.load_state_dict(reference.state_dict(), strict=True)
    for model in (reference, ours):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0  # the two draw dropout masks in different orders
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref, out = reference(x), ours(x)
    assert torch.allclose(out.logits, ref.logits, atol=1e-5)
    assert torch.allclose(out.aux[0].logits, ref.aux_logits1, atol=1e-5)
    assert torch.allclose(out.aux[1].logits, ref.aux_logits2, atol=1e-5)


# --- generated source ------------------------------------------------------------------


def _same_output(a, b) -> bool:
    """Equal logits (or equal TrainOutputs: logits, and each aux head's name, weight and logits)."""
    if isinstance(a, TrainOutput):
        heads = zip(a.aux, b.aux, strict=True)
        return torch.equal(a.logits, b.logits) and all(
            p.name == q.name and p.weight == q.weight and torch.equal(p.logits, q.logits) for p, q in heads
        )
    return torch.equal(a, b)


def _smallest_input(spec: str) -> incdsl.Network:
    """The spec at the smallest of a few input sizes its layers take (its own as the last resort), to keep the test quick."""
    channels = incdsl.load(spec).input_shape[0]
    for size in (75, 139):
        try:
            return incdsl.load(spec, input=(channels, size, size))
        except incdsl.SpecError:
            pass
    return incdsl.load(spec)


@pytest.mark.parametrize("spec", sorted(incdsl.bundled_specs()))
def test_generated_source_equals_the_in_memory_module(spec, tmp_path, randomise_bn):
    """Every bundled spec: the generated file's class has the in-memory module's name, its
    state_dict keys in order, and its outputs in eval and in training mode (same seed); it
    builds no module that neither mode calls (GoogLeNet's trailing softmax)."""
    net = _smallest_input(spec)
    torch.manual_seed(0)
    ours = incdsl.compile(net)
    randomise_bn(ours)
    module = import_generated(generate(net), tmp_path / f"gen_{net.name}.py")
    assert type(ours).__name__ == class_name(net.name)
    generated = getattr(module, type(ours).__name__)()
    assert list(generated.state_dict()) == list(ours.state_dict())
    generated.load_state_dict(ours.state_dict(), strict=True)
    called: set[str] = set()
    for name, m in generated.named_modules():
        m.register_forward_hook(lambda m, i, o, name=name: called.add(name))
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        ours.train(train)
        generated.train(train)
        with torch.no_grad():
            torch.manual_seed(5)
            a = ours(x)
            torch.manual_seed(5)
            b = generated(x)
        assert _same_output(a, b), f"{spec}, {'train' if train else 'eval'} mode"
    leaves = {name for name, m in generated.named_modules() if not list(m.children())}
    assert leaves <= called, f"modules that forward never calls: {sorted(leaves - called)}"


def test_generated_googlenet_source_golden(googlenet_ir, golden):
    golden("codegen/googlenet.py", generate(googlenet_ir))


def test_generated_source_needs_only_torch(googlenet_ir):
    source = generate(googlenet_ir)
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "typing", "torch", "torch.nn.functional"}


@pytest.mark.parametrize("spec", sorted(incdsl.bundled_specs()))
def test_generated_lines_fit_and_repeats_are_loops(spec):
    """No generated line is longer than LINE; a repeat (`10 x block35(320) as repeat`) is one
    loop, not a line per copy."""
    source = generate(incdsl.load(spec))
    longest = max(source.splitlines(), key=len)
    assert len(longest) <= LINE, longest
    _every_argument_is_used(source)
    for line in source.splitlines():
        call = re.fullmatch(r"\s*self\.(\w+)\.add_module\('(\d+)', (\w+)\(.*", line)
        assert call is None, f"a repeat's copy built on a line of its own: {line}"


def _every_argument_is_used(source: str) -> None:
    """Each argument of each generated ``__init__`` is read in its body."""
    import ast as pyast

    for node in pyast.walk(pyast.parse(source)):
        if isinstance(node, pyast.FunctionDef) and node.name == "__init__":
            read = {n.id for stmt in node.body for n in pyast.walk(stmt) if isinstance(n, pyast.Name)}
            unused = [a.arg for a in node.args.args[1:] if a.arg not in read]
            assert not unused, f"{node.lineno}: arguments never used: {unused}"


NESTED = """network nested
input 8x16x16
block unit(w):
  concat:
    conv 1x1 w
    conv 1x1 4 -> conv 3x3 w
block outer(a, b):
  seq:
    unit(a)
    unit(b)
  residual scale=0.5:
    conv 1x1 8 -> conv 1x1 b+b linear
outer(4, 6) as o1
outer(2, 3) as o2
2 x unit(4) as rep
global_avgpool -> linear 10
"""


def test_a_block_inside_a_block_gets_its_arguments_from_its_caller(tmp_path, randomise_bn):
    """A block instance inside another block's body is built by the outer class's __init__ from
    the outer's arguments; keys, outputs and every argument used, as for the bundled specs."""
    net = incdsl.loads(NESTED)
    torch.manual_seed(0)
    ours = incdsl.compile(net).eval()
    source = generate(net)
    _every_argument_is_used(source)
    assert "self.rep = nn.Sequential(Unit(6, 4), Unit(8, 4))" in source
    generated = getattr(import_generated(source, tmp_path / "gen_nested.py"), type(ours).__name__)().eval()
    assert list(generated.state_dict()) == list(ours.state_dict())
    generated.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        assert torch.equal(generated(x), ours(x))


def test_inception_resnet_v2_builds_its_repeats_in_loops_and_block8_with_its_arguments():
    """`10 x inception_resnet_a(320) as repeat` and `inception_resnet_c(2080, scale=1.0, act=none) as block8`."""
    source = generate(incdsl.load("inception_resnet_v2"))
    assert "self.repeat = nn.Sequential(*[InceptionResnetA(320) for _ in range(10)])" in source
    assert "self.block8 = InceptionResnetC(2080, scale=1.0, relu=False)" in source
    assert "residual(x, conv2d, self.scale, self.relu)" in source


def _block_calls(source: str, blocks: set[str]) -> dict[str, str]:
    """``self.NAME = Block(…)`` in the network's ``__init__``: instance name → the call as written."""
    import ast as pyast

    calls = {}
    for node in pyast.walk(pyast.parse(source)):
        if isinstance(node, pyast.Assign) and isinstance(node.value, pyast.Call):
            target, func = node.targets[0], node.value.func
            if isinstance(target, pyast.Attribute) and isinstance(func, pyast.Name) and func.id in blocks:
                calls[target.attr] = pyast.unparse(node.value)
    return calls


@pytest.mark.parametrize("spec", ["googlenet", "inception_v3", "inception_resnet_v2"])
def test_block_classes_build_standalone_from_their_arguments(spec, tmp_path):
    """Each block instance the network builds by a call (``Inception(192, 64, 96, 128, 16, 32, 32)``,
    ``InceptionResnetC(2080, scale=1.0, relu=False)``), evaluated on its own, takes the in-memory
    instance's weights strictly and computes what it computes."""
    from incdsl.compiler.torch.lower import plan

    net = _smallest_input(spec)
    p = plan(net)
    torch.manual_seed(0)
    ours = incdsl.compile(net).eval()
    source = generate(net)
    module = import_generated(source, tmp_path / f"standalone_{net.name}.py")
    calls = _block_calls(source, set(p.block_classes))
    assert {type(ours.get_submodule(name)).__name__ for name in calls} == set(p.block_classes) - _nested(p)
    for name, call in calls.items():
        block = eval(call, vars(module)).eval()  # noqa: S307 - the generated file's own call
        block.load_state_dict(ours.get_submodule(name).state_dict(), strict=True)
        x = torch.randn(2, *net.node(p.units[name].input).shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            assert torch.equal(block(x), ours.get_submodule(name)(x)), call


def _nested(p) -> set[str]:
    """Block classes whose every instance sits inside a container (a repeat) rather than at the top."""
    top = {u.cls for path, u in p.units.items() if "." not in path}
    return set(p.block_classes) - top


def test_a_block_class_takes_widths_no_instance_has(tmp_path):
    """GoogLeNet's Inception built with widths of its own: the branch widths it is given, concatenated."""
    module = import_generated(generate(incdsl.load("googlenet")), tmp_path / "gen_widths.py")
    block = module.Inception(64, 8, 8, 16, 4, 8, 8)
    assert block(torch.randn(1, 64, 7, 7)).shape == (1, 8 + 16 + 8 + 8, 7, 7)
    assert block.branch2[1].in_channels == 8 and block.branch4[1].in_channels == 64
