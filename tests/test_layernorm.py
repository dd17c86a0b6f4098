"""``layernorm``, the first layer type added through the table of operations: on features it is
``nn.LayerNorm(C)``, on maps timm's ``LayerNorm2d`` (each pixel's channels). timm's modules are
the oracles (their own state_dict loaded strictly, outputs in eval and training), and every
backend path (fused eval, generated source, the Triton plan) equals the plain module."""

from __future__ import annotations

import pytest
import torch
from conftest import import_generated, randomise
from torch import nn

import incdsl
from incdsl.compiler.torch.codegen import class_name, generate
from incdsl.cost import node_costs
from incdsl.draw import describe
from incdsl.fmt import format_spec

timm_layers = pytest.importorskip("timm.layers")

# A map norm after a conv, and a feature norm in the head, as InceptionNeXt's MLP head has one.
_SPEC = """network ln
input 8x6x6
conv 3x3 16 as conv
layernorm as norm
global_avgpool as pool
flatten as flat
layernorm eps=1e-5 as head_norm
linear 10 as fc
"""


class _Reference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.norm = timm_layers.LayerNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.head_norm = timm_layers.LayerNorm(16, eps=1e-5)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(torch.relu(self.conv(x)))
        return self.fc(self.head_norm(self.flat(self.pool(x))))


def _random_norms(model: nn.Module, seed: int) -> nn.Module:
    """Scales and shifts away from 1 and 0, so that a missing or swapped affine term shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return model


def _reference() -> tuple[incdsl.ir.Network, nn.Module]:
    torch.manual_seed(0)
    return incdsl.loads(_SPEC), _random_norms(randomise(_Reference(), seed=1), seed=2)


def test_timms_layernorms_load_strictly_and_agree_in_eval_and_training():
    net, ref = _reference()
    ours = incdsl.compile(net)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert type(ours.norm).__name__ == "LayerNorm2d" and type(ours.head_norm) is nn.LayerNorm
    x = torch.randn(3, 8, 6, 6)
    for mode in ("eval", "train"):
        getattr(ref, mode)()
        getattr(ours, mode)()
        with torch.no_grad():
            expected, got = ref(x), ours(x)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), mode


def test_eps_is_timms_default_unless_written():
    net = incdsl.loads(_SPEC)
    assert net.node("norm").attrs.eps == timm_layers.LayerNorm2d(16).eps == 1e-6
    assert net.node("head_norm").attrs.eps == 1e-5
    model = incdsl.compile(net)
    assert model.norm.eps == 1e-6 and model.head_norm.eps == 1e-5


def test_params_table_draw_and_cost_count_torchs_parameters(cli, tmp_path):
    net, ref = _reference()
    costs = node_costs(net)
    for name in ("norm", "head_norm"):
        assert costs[name].params == sum(p.numel() for p in ref.get_submodule(name).parameters())
        assert costs[name].macs == 0
        assert describe(net.node(name)) == "layernorm"
    path = tmp_path / "ln.inc"
    path.write_text(_SPEC, encoding="utf-8")
    code, out, _ = cli("params", str(path))
    assert code == 0 and out.count("LayerNorm") == 2


def test_every_backend_path_equals_the_plain_module(tmp_path):
    net, ref = _reference()
    plain = incdsl.compile(net).eval()
    plain.load_state_dict(ref.state_dict(), strict=True)
    fused = incdsl.compile(net, fuse=True)
    fused.load_state_dict(ref.state_dict(), strict=True)
    out = tmp_path / "gen_ln.py"
    generated = getattr(import_generated(generate(net), out), class_name(net.name))()
    generated.load_state_dict(ref.state_dict(), strict=True)
    triton = incdsl.compile(net, backend="triton", kernels="all")
    triton.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        expected = plain(x)
        assert torch.allclose(fused.eval()(x), expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(generated.eval()(x), expected)
        for _ in range(2):  # builds the Triton plan, then replays it
            assert torch.allclose(triton.eval()(x), expected, rtol=1e-4, atol=1e-4)


def test_fmt_keeps_it():
    once = format_spec(_SPEC)
    assert format_spec(once) == once and incdsl.loads(once) == incdsl.loads(_SPEC)


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        ("layernrom", "unknown layer type", "did you mean `layernorm`"),
        ("layernorm eps=0", "eps must be greater than 0", None),
        ("layernorm affine=true", "unknown option `affine=` for layernorm", "layernorm takes `eps=`"),
        ("layernorm 16", "too many values for layernorm", None),
    ],
)
def test_misused_layernorm_says_what_is_wrong(line, message, hint):
    with pytest.raises(incdsl.SpecError) as caught:
        incdsl.loads(f"network g\ninput 8x6x6\n{line}\n")
    assert message in caught.value.message
    if hint is not None:
        assert hint in (caught.value.hint or "")
