"""InceptionNeXt (Yu et al., CVPR 2024) against timm's models, and the forms it is written with:
``split:`` with ``take N`` parts, ``layer_scale``, ``drop_path`` / ``drop_path_rate`` on residual adds.

timm's models are built with random weights (nothing is downloaded) and re-initialised so that
every part of a block matters: batch norm statistics and affine terms, and the layer scales
(timm starts them at 1e-6, which would hide the mixer and the MLP behind the shortcut).
"""

from __future__ import annotations

import pytest
import torch
from conftest import import_generated, randomise

import incdsl
from incdsl.compiler.torch.codegen import generate
from incdsl.compiler.torch.lower import network_class
from incdsl.frontend import bundled_specs_dir

timm = pytest.importorskip("timm")

#: spec → the input side its parity test runs at (the base model at 224 takes long on a CPU)
SIZES = {"inception_next_tiny": 224, "inception_next_small": 96, "inception_next_base": 96}
TOLERANCE = 1e-5


def _reference(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomise(timm.create_model(name, **kwargs), seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.endswith("gamma"):
                p.uniform_(0.5, 1.5, generator=g)
    return model


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", SIZES)
def test_equal_to_timm_in_eval_and_in_training(name):
    side = SIZES[name]
    reference = _reference(name)
    ours = incdsl.compile(incdsl.load(name, input=(3, side, side)))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    assert sorted(ours.state_dict()) == sorted(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(3))
    diffs = {}
    for training in (False, True):
        ours.train(training)
        reference.train(training)
        with torch.no_grad():
            want = reference(x)
            diffs[training] = _relative(ours(x), want)
        assert 0.1 < want.abs().max() < 1e3, "activations should stay of order one"
    print(f"\n{name} at {side}x{side}: relative max |Δ| eval {diffs[False]:.3g}, training {diffs[True]:.3g}")
    assert max(diffs.values()) <= TOLERANCE


def test_drop_path_rates_and_draws_are_timms():
    """timm's rule (linear from 0 at the first block to the rate at the last) written once in the
    spec's defaults; in training each block's branch is dropped per sample as timm's DropPath drops it."""
    text = bundled_specs_dir().joinpath("inception_next_tiny.inc").read_text()
    text = text.replace("drop_path_rate=0", "drop_path_rate=0.3")
    net = incdsl.loads(text, input=(3, 64, 64))
    reference = _reference("inception_next_tiny", drop_path_rate=0.3)
    rates = [n.attrs.drop_path for n in net.nodes if n.op == "add"]
    theirs = [getattr(m, "drop_prob", 0.0) for key, m in reference.named_modules() if key.endswith(".drop_path")]
    assert len(rates) == len(theirs) == 18
    assert rates == pytest.approx(theirs, abs=1e-7)
    ours = incdsl.compile(net)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert _relative(ours.eval()(x), reference.eval()(x)) <= TOLERANCE  # identity in eval
    ours.train()
    reference.train()
    with torch.no_grad():
        torch.manual_seed(5)
        got = ours(x)
        torch.manual_seed(5)
        want = reference(x)
        torch.manual_seed(6)
        other = ours(x)
    assert _relative(got, want) <= TOLERANCE
    assert _relative(other, want) > 1e-3, "another seed drops other samples"


def test_generated_code_fused_and_triton_paths_equal_the_module(tmp_path, monkeypatch):
    """The split's channels and the drop-path rates become block arguments in generated code;
    the fused eval path and the Triton plan run the split and the layer scale as torch does."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    text = bundled_specs_dir().joinpath("inception_next_tiny.inc").read_text()
    text = text.replace("drop_path_rate=0", "drop_path_rate=0.2")
    net = incdsl.loads(text, input=(3, 64, 64))
    model = incdsl.compile(net)
    model.load_state_dict(_reference("inception_next_tiny").state_dict(), strict=True)
    source = generate(net)
    assert "drop_path=0.2)" in source.replace("\n", "")
    generated = getattr(import_generated(source, tmp_path / "inx.py"), network_class(net.name))()
    generated.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    for training in (True, False):
        model.train(training)
        generated.train(training)
        with torch.no_grad():
            torch.manual_seed(8)
            want = model(x)
            torch.manual_seed(8)
            assert _relative(generated(x), want) == 0.0
    for options in ({"fuse": True}, {"backend": "triton"}):
        other = incdsl.compile(net, **options)
        other.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            assert _relative(other.eval()(x), want) <= 1e-5, options


def test_layer_scale_is_a_parameter_of_its_block():
    model = incdsl.compile("inception_next_tiny")
    block = model.get_submodule("stages.0.blocks.0")
    assert isinstance(block.gamma, torch.nn.Parameter) and block.gamma.shape == (96,)
    assert "gamma" in dict(block.named_parameters(recurse=False))
    assert torch.all(block.gamma == 1e-6)


SPLIT = """\
network s
input 32x8x8
block mixer(c, g):
  split:
    take c - 3*g
    take g -> dwconv 3x3 linear as hw
    take g -> dwconv 1x5 linear as w
    take g -> dwconv 5x1 linear as h
mixer(32, 4) as m
"""


def test_a_split_runs_each_part_on_its_channels():
    net = incdsl.loads(SPLIT)
    parts = [(n.attrs.start, n.attrs.stop) for n in net.nodes if n.op == "slice"]
    assert parts == [(0, 20), (20, 24), (24, 28), (28, 32)]
    model = incdsl.compile(net).eval()
    x = torch.randn(2, 32, 8, 8)
    want = torch.cat([x[:, :20], model.m.hw(x[:, 20:24]), model.m.w(x[:, 24:28]), model.m.h(x[:, 28:])], 1)
    with torch.no_grad():
        assert torch.equal(model(x), want)


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        (SPLIT.replace("mixer(32, 4)", "mixer(40, 4)"), "its parts take 40 channels in all, but its input has 32", (4, 3)),
        (SPLIT.replace("take c - 3*g\n", "dwconv 3x3\n"), "each line of a `split:` starts with `take N`", (5, 5)),
        (SPLIT.replace("take c - 3*g", "take c * 0.3"), "must be a whole number", (5, 10)),
        (SPLIT.replace("take c - 3*g", "take c - 3*g linear"), "`take` takes one value", (5, 18)),
        (SPLIT.replace("mixer(32, 4) as m", "take 4"), "`take` starts a branch of a `split:`", (9, 1)),
        ("input 8x4x4\nresidual drop_path=1.0:\n  conv 1x1 8\n", "drop probability, in [0, 1)", (2, 10)),
        ("input 8x4x4\nresidual drop_path=0.1 drop_path_rate=0.2:\n  conv 1x1 8\n", "not both", (2, 10)),
        ("input 8x4x4\nresidual drop_path_rate=0.1:\n  conv 1x1 8\nresidual drop_path_rate=0.2:\n  conv 1x1 8\n",
         "`drop_path_rate=0.2` here, but `drop_path_rate=0.1` at", (4, 10)),
        ("input 8x4x4\nlayer_scale 0\n", "greater than 0", (2, 13)),
    ],
)
def test_misuse_is_a_spec_error_at_the_place(text, message, where):
    with pytest.raises(incdsl.SpecError) as err:
        incdsl.loads(text, file="t.inc")
    assert message in str(err.value)
    assert (err.value.line, err.value.column) == where, str(err.value)


def test_the_triton_plan_runs_each_token_mixer_as_one_kernel(monkeypatch):
    """Each block's split, three depthwise convs and concat are one ``incdsl::inception_dw``
    launch in the launch plan (Triton's interpreter here), equal to the torch module, also after
    the weights change."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    net = incdsl.load("inception_next_tiny", input=(3, 64, 64))
    model = incdsl.compile(net).eval()
    model.load_state_dict(_reference("inception_next_tiny").state_dict(), strict=True)
    triton_model = incdsl.compile(net, backend="triton").eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    for seed in (1, 2):
        state = _reference("inception_next_tiny").state_dict() if seed == 1 else randomise(model, seed).state_dict()
        model.load_state_dict(state)
        triton_model.load_state_dict(state)
        with torch.no_grad():
            assert _relative(triton_model(x), model(x)) <= 1e-5
    (plan,) = triton_model._plans.values()
    mixers = [launch for launch in plan.launches if "inception_dw" in str(getattr(launch.kernel, "fn", launch.kernel))]
    assert len(mixers) == 18  # one per block: 3 + 3 + 9 + 3


@pytest.mark.parametrize(
    ("change", "mixers"),
    [
        ((), 1),
        (("dwconv 3x3 linear as hw", "dwconv 3x3 as hw"), 0),  # a ReLU after the square conv
        (("dwconv 1x5 linear as w", "dwconv 1x3 linear as w"), 0),  # bands of two lengths
        (("dwconv 5x1 linear as h", "conv 5x1 4 linear as h"), 0),  # a full conv, not a depthwise one
    ],
)
def test_the_triton_passes_make_a_token_mixer_one_operation_and_leave_near_misses(change, mixers):
    from incdsl.compiler.pipeline import inference_passes, run_passes

    net = incdsl.loads(SPLIT.replace(*change) if change else SPLIT)
    passed = run_passes(net, inference_passes("triton"), verify=True)
    found = [n for n in passed.nodes if n.op == "token_mixer"]
    assert len(found) == mixers
    if mixers:
        (node,) = found
        assert (node.name, node.inputs, node.shape) == (net.output, (net.nodes[0].name,), (32, 8, 8))
        assert (node.attrs.square, node.attrs.band) == (3, 5)
        assert [m.name for m in node.attrs.members] == ["m.hw", "m.w", "m.h"]
        assert not [n for n in passed.nodes if n.op in ("slice", "conv")]


def test_the_triton_graph_forward_runs_a_token_mixer_through_its_operator(monkeypatch):
    """In kernel form the traceable forward calls ``incdsl::inception_dw`` once per mixer (what
    ``torch.export`` keeps and ``torch.compile`` traces without a break), equal to the torch module;
    in the default, torch form it is the split, the three convs and the cat."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    net = incdsl.loads(SPLIT)
    model = randomise(incdsl.compile(net), seed=4).eval()
    triton_model = incdsl.compile(net, backend="triton").eval()
    triton_model.load_state_dict(model.state_dict(), strict=True)
    assert list(triton_model.forms) == [net.output]
    x = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = model(x)
        assert _relative(triton_model(x), want) <= 1e-6  # the launch plan
        triton_model.launch_plan = False
        assert _relative(triton_model(x), want) <= 1e-6  # torch form
        triton_model.set_forms("kernel")
        eager = triton_model(x)
        assert _relative(eager, want) <= 1e-6
        assert torch.equal(torch.compile(triton_model, backend="aot_eager", fullgraph=True)(x), eager)
    exported = torch.export.export(triton_model, (x,))
    calls = [str(n.target) for m in exported.graph_module.modules() if isinstance(m, torch.fx.GraphModule)
             for n in m.graph.nodes if str(n.target).startswith("incdsl.")]  # fmt: skip
    assert calls == ["incdsl.inception_dw.default"]
