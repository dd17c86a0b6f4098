"""Every activation of :mod:`incdsl.activations`, through every stage: the words, the IR, the
torch module and generated code against torch's own modules, the fused eval path and the
Triton epilogue (interpreter on a CPU)."""

from __future__ import annotations

import pytest
import torch
from conftest import import_generated
from torch import nn

import incdsl
from incdsl import activations
from incdsl.activations import FORMS, Activation
from incdsl.compiler.pipeline import generate_source
from incdsl.compiler.torch import runtime
from incdsl.compiler.triton.epilogue import EPILOGUE_CODES

ACTS = list(Activation)


def _module(act: Activation) -> nn.Module:
    """torch's own module for ``act``, the oracle."""
    return {Activation.RELU: nn.ReLU(), Activation.GELU: nn.GELU(), Activation.GELU_TANH: nn.GELU(approximate="tanh")}[act]


def _spec(act: Activation) -> str:
    """Two 1×1 convs that read one tensor (a fused group), a 3×3 conv, a standalone activation
    and a linear layer, each with ``act``."""
    return f"""network tiny
input 3x6x6
conv 3x3 8 act={act}
concat:
  conv 1x1 4 act={act}
  conv 1x1 5 {act}
{act}
conv 3x3/2 6 bn act={act}
linear 7 act={act}
"""


class Reference(nn.Module):
    """The spec above written by hand in torch."""

    def __init__(self, act: Activation) -> None:
        super().__init__()
        self.act = _module(act)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 1)
        self.conv3 = nn.Conv2d(8, 5, 1)
        self.conv4 = nn.Conv2d(9, 6, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.linear = nn.Linear(6 * 3 * 3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(torch.cat([self.act(self.conv2(x)), self.act(self.conv3(x))], 1))
        x = self.act(self.bn(self.conv4(x)))
        return self.act(self.linear(torch.flatten(x, 1)))


def _pair(act: Activation):
    net = incdsl.loads(_spec(act))
    torch.manual_seed(0)
    reference = Reference(act)
    with torch.no_grad():
        reference.bn.running_mean.uniform_(-1, 1)
        reference.bn.running_var.uniform_(0.5, 2)
    ours = incdsl.compile(net)
    ours.load_state_dict(dict(zip(ours.state_dict(), reference.state_dict().values(), strict=True)), strict=True)
    return net, reference, ours


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_compiled_module_equals_torch_reference(act, mode):
    _, reference, ours = _pair(act)
    x = torch.randn(2, 3, 6, 6)
    reference.train(mode == "train")
    ours.train(mode == "train")
    assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize("act", ACTS)
def test_fused_eval_and_generated_source_equal_the_module(act, tmp_path):
    net, reference, ours = _pair(act)
    x = torch.randn(2, 3, 6, 6)
    expected = reference.eval()(x)
    fused = incdsl.compile(net, fuse=True)
    fused.load_state_dict(ours.state_dict(), strict=True)
    assert torch.allclose(fused.eval()(x), expected, atol=1e-5)

    source = generate_source(net)
    assert f"F.{FORMS[act].function}(" in source
    module = import_generated(source, tmp_path / f"tiny_{act}.py")
    generated = module.Tiny()
    generated.load_state_dict(ours.state_dict(), strict=True)
    assert torch.equal(generated.eval()(x), expected)


@pytest.mark.parametrize("act", ACTS)
def test_triton_epilogue_applies_the_activation(act):
    """A fused 1×1 group and a k×k conv through the Triton kernels (the interpreter on a CPU),
    their outputs the network's, against the torch backend on the same weights."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = f"network mixer\ninput 16x5x5\nconcat:\n  conv 1x1 16 act={act}\n  conv 1x1 8 act={act}\n  conv 3x3 8 act={act}\n"
    net = incdsl.loads(spec)
    torch.manual_seed(0)
    reference = incdsl.compile(net).eval().to(device)
    model = incdsl.compile(net, backend="triton", kernels=("fused_1x1", "conv")).eval().to(device)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 16, 5, 5, device=device)
    with torch.no_grad():
        out = model(x)
        launches = next(iter(model._plans.values())).launches
        assert {launch.args["ACT"] for launch in launches} == {EPILOGUE_CODES.get(act, 0)}
        assert len(launches) == 2  # the group's GEMM and the 3×3 conv
        assert (out - reference(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize("kind", ["gemm", "pool"])
@pytest.mark.parametrize("act", list(EPILOGUE_CODES))
def test_split_k_reduce_applies_the_activation(act, kind):
    """A split-K 1×1 group GEMM and a split-K pool projection (batch 1, 7×7 and 4×4: the
    small-M shapes that split) skip the main kernel's epilogue, so the reduce launch must
    apply the activation; against torch's module on the fp32 reference."""
    from incdsl.compiler.triton.conv import POOL_MAX, conv_launches, pack_weight, pool_projection_reference
    from incdsl.compiler.triton.epilogue import destinations, pixel_rows
    from incdsl.compiler.triton.gemm import gemm_launches, gemm_reference
    from incdsl.compiler.triton.launch import Config, in_order
    from incdsl.compiler.triton.operands import pad_columns
    from incdsl.compiler.triton.splitk import workspace_floats

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, cin, widths = (7, 48, [16, 8]) if kind == "gemm" else (4, 64, [16, 8])
    n, config = sum(widths), Config(16, 16, 16, 4, 2, split_k=3)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, cin, size, size, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(n, cin, 1, 1, generator=g) / cin**0.5).to(device)
    bias = torch.randn(n, generator=g).to(device)
    floor = torch.full((n,), float("-inf"), device=device)  # no ReLU floor: the activation alone
    outs = [torch.empty(1, c, size, size, device=device).contiguous(memory_format=torch.channels_last) for c in widths]
    packed = pack_weight(weight)  # its columns padded: the kernels' bias, floor and workspace follow
    columns = packed.shape[1]
    workspace = torch.empty(workspace_floats(size * size, columns, config), device=device)
    padded = pad_columns(bias, columns), pad_columns(floor, columns)
    code = EPILOGUE_CODES[act]
    if kind == "gemm":
        expected = gemm_reference(x, weight, bias, floor, widths)
        launches = gemm_launches(
            pixel_rows(x), packed, *padded, destinations(outs), config, workspace=workspace, act=code
        )
    else:
        pooled = pool_projection_reference(x, weight, bias, floor, (POOL_MAX, 3))
        expected = torch.split(pooled, widths, dim=1)
        launches = conv_launches(
            x, packed, *padded, destinations(outs), (size, size), config,
            pool=(POOL_MAX, 3), act=code, workspace=workspace,
        )  # fmt: skip
    assert [launch.kernel.__name__ for launch in launches][1:] == ["_reduce_kernel"]
    assert [launch.args["ACT"] for launch in launches] == [code, code]
    in_order(launches)()
    for out, linear in zip(outs, expected, strict=True):
        assert (out - _module(act)(linear)).abs().max().item() < 1e-4


@pytest.mark.parametrize("act", ACTS)
def test_every_activation_has_torch_and_epilogue_forms(act):
    x = torch.linspace(-4, 4, 101)
    assert torch.equal(runtime.ACTIVATIONS[act](x), _module(act)(x))
    form = FORMS[act]
    assert type(getattr(nn, form.module)(**dict(form.kwargs))) is type(_module(act))
    # the Triton epilogue applies it: by a per-column floor, or by its own code
    assert activations.floor(act) is not None or act in EPILOGUE_CODES


@pytest.mark.parametrize("act", ACTS)
def test_ir_and_params_show_the_activation(act, cli, tmp_path):
    path = tmp_path / "tiny.inc"
    path.write_text(_spec(act), encoding="utf-8")
    code, out, _ = cli("ir", str(path))
    assert code == 0
    assert out.count(f"act={act.value} ") == 5 and f"= {act.value}(" in out
    code, out, _ = cli("params", str(path))
    assert code == 0 and FORMS[act].label in out


@pytest.mark.parametrize("word", ["gelux", "gelu_tan", "rel"])
def test_unknown_activation_lists_every_one_and_guesses(word):
    with pytest.raises(incdsl.SpecError) as e:
        incdsl.loads(f"network t\ninput 3x8x8\nconv 1x1 4 act={word}\n")
    message = str(e.value)
    for w in activations.WORDS:
        assert f"`{w}`" in message
    assert "did you mean" in message


def test_a_residual_add_takes_relu_or_linear_only():
    spec = "network t\ninput 8x4x4\nresidual act=gelu:\n  conv 1x1 8 linear\n"
    with pytest.raises(incdsl.SpecError, match="residual add's activation"):
        incdsl.loads(spec)
