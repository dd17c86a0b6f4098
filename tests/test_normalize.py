"""The input normalisation (`input CxHxW:` holding `normalize mean … std … [from mean … std …]`):
the formula against torchvision's transform_input, in every backend, in eval and training, with
nothing in the state_dict; its errors; the IR's check of its widths when read from JSON."""

from __future__ import annotations

import pydantic
import pytest
import torch
from conftest import import_generated

import incdsl
from incdsl import SpecError, ir, loads
from incdsl.compiler.torch.codegen import generate

IMAGENET = "mean 0.485 0.456 0.406 std 0.229 0.224 0.225"
TRANSFORM_INPUT = f"normalize mean 0.5 0.5 0.5 std 0.5 0.5 0.5 from {IMAGENET}"
SPEC = f"""network normed
input 3x16x16:
  {TRANSFORM_INPUT}
conv 3x3 8 bn -> maxpool 3x3/2
concat:
  conv 1x1 4
  conv 1x1 4 -> conv 3x3 4
global_avgpool -> linear 5
"""


def transform_input(x: torch.Tensor) -> torch.Tensor:
    """torchvision's GoogLeNet/Inception3 ``_transform_input``, the oracle, written out per channel."""
    channels = [
        x[:, c : c + 1] * (std / 0.5) + (mean - 0.5) / 0.5
        for c, (mean, std) in enumerate([(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)])
    ]
    return torch.cat(channels, 1)


def plain_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s layers after its normalisation, run on ``x`` itself."""
    hook = model.normalize1.register_forward_hook(lambda _m, inputs, _out: inputs[0])
    try:
        return model(x)
    finally:
        hook.remove()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return incdsl.compile(loads(SPEC)).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_the_module_is_torchvisions_transform_input_exactly(model, x):
    assert torch.equal(model.normalize1(x), transform_input(x))


def test_nothing_of_it_is_in_the_state_dict(model):
    assert not any(key.startswith("normalize1") for key in model.state_dict())
    assert {name for name, _ in model.named_buffers()} >= {"normalize1.scale", "normalize1.shift"}
    assert not any(name.startswith("normalize1") for name, _ in model.named_parameters())


def test_the_network_runs_its_layers_on_the_normalised_input(model, x):
    with torch.no_grad():
        assert torch.equal(model(x), plain_forward(model, transform_input(x)))


def test_training_mode_normalises_alike(model, x):
    trained = incdsl.compile(loads(SPEC))
    trained.load_state_dict(model.state_dict(), strict=True)
    trained.train()
    with torch.no_grad():
        assert torch.equal(trained.normalize1(x), transform_input(x))


def test_a_plain_normalisation_is_x_minus_mean_over_std(x):
    model = incdsl.compile(loads(f"input 3x16x16:\n  normalize {IMAGENET}\nconv 1x1 2\n")).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model.normalize1(x), (x - mean) / std, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["fused", "generated", "export", "triton"])
def test_every_backend_applies_it(backend, model, x, tmp_path):
    with torch.no_grad():
        want = model(x)
        if backend == "fused":
            other = incdsl.compile(loads(SPEC), fuse=True).eval()
        elif backend == "generated":
            other = import_generated(generate(loads(SPEC)), tmp_path / "normed_net.py").Normed().eval()
        elif backend == "triton":
            pytest.importorskip("triton")  # conftest sets TRITON_INTERPRET=1 where there is no GPU
            other = incdsl.compile(loads(SPEC), backend="triton").eval()
        if backend == "export":
            got = torch.export.export(model, (x,)).module()(x)
        else:
            other.load_state_dict(model.state_dict(), strict=True)
            got = other(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the normalisation mattered: without it the logits differ by far more than the tolerance
    assert (plain_forward(model, x) - want).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("body", "message", "column"),
    [
        ("normalize mean 0.5 0.5 std 0.5 0.5", "normalize gives 2 values per statistic, and the input has 3 channels", 3),
        ("normalize mean 0.5 0.5 0.5 std 0.5 0.5", "`normalize` gives different numbers of values (mean 3, std 2)", 3),
        ("normalize mean 0.5 0.5 0.5 std 0.5 0 0.5", "a std must be positive; got 0", 38),
        ("normalize mean 0.5 0.5 0.5 sdt 1 1 1", "`normalize` does not take `sdt`", 30),
        ("normalize mean 0.5 0.5 0.5 std 1 1 1 from mean 0 0 0", "`normalize` is missing its from std values", 3),
        ("conv 3x3 4", "under `input …:` go only `normalize` lines, not `conv`", 3),
    ],
)
def test_mistakes_point_at_the_line(body, message, column):
    with pytest.raises(SpecError) as info:
        loads(f"input 3x8x8:\n  {body}\nconv 3x3 4\n", file="t.inc")
    assert (info.value.message, info.value.line, info.value.column) == (message, 2, column)
    assert info.value.hint


def test_normalize_elsewhere_says_where_it_goes():
    with pytest.raises(SpecError) as info:
        loads("input 3x8x8\nconv 3x3 4\nnormalize mean 0 0 0 std 1 1 1\n")
    assert info.value.message == "`normalize` is the input's: it goes indented under `input CxHxW:`"
    assert info.value.line == 3


def test_an_input_size_given_later_is_checked_against_it():
    with pytest.raises(SpecError) as info:
        loads(SPEC, input="1x16x16")
    assert info.value.message == "normalize gives 3 values per statistic, and the input has 1 channel"
    assert info.value.line == 3


def test_the_ir_read_from_json_is_held_to_the_widths():
    data = loads(SPEC).to_json()
    assert ir.network_from_json(data) == loads(SPEC)
    node = next(n for n in data["nodes"] if n["attrs"]["op"] == "normalize")
    node["attrs"]["mean"] = node["attrs"]["mean"][:2]
    with pytest.raises(pydantic.ValidationError, match="one value per channel"):
        ir.network_from_json(data)
    for key in ("mean", "std", "from_mean", "from_std"):
        node["attrs"][key] = node["attrs"][key][:2]
    with pytest.raises(pydantic.ValidationError, match="normalize gives 2 values per statistic for 3 channels"):
        ir.network_from_json(data)
