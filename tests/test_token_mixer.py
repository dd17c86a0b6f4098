"""InceptionNeXt's token mixer as one Triton kernel (``incdsl::inception_dw``), against timm's
``InceptionDWConv2d`` itself: parity in Triton's interpreter, one operator in traced graphs,
and the binaries it compiles to for sm_90 and sm_80."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from timm.models.inception_next import InceptionDWConv2d
from torch._subclasses.fake_tensor import FakeTensorMode

from incdsl.compiler.triton.ops import INCEPTION_DW
from incdsl.compiler.triton.token_mixer import branch_channels, pack, reference


def _timm(channels: int, dtype: torch.dtype = torch.float32, **options: float) -> InceptionDWConv2d:
    torch.manual_seed(channels)
    mixer = InceptionDWConv2d(channels, **options).eval()
    with torch.no_grad():
        for p in mixer.parameters():  # biases too: nn.Conv2d's init keeps them small
            p.copy_(torch.randn_like(p))
    return mixer.to(dtype)


def _packed(mixer: InceptionDWConv2d) -> tuple[torch.Tensor, torch.Tensor]:
    convs = (mixer.dwconv_hw, mixer.dwconv_w, mixer.dwconv_h)
    return pack(*(c.weight for c in convs), *(c.bias for c in convs))


def _kernels(mixer: InceptionDWConv2d) -> tuple[int, int]:
    return mixer.dwconv_hw.kernel_size[0], mixer.dwconv_w.kernel_size[1]


# (channels, batch, height, width): gc = int(C/8) filling its channel block (8), not (3, 5, 12),
# and over two blocks of 64 (68); identity parts of several blocks, the last one partial; odd
# sizes, images narrower than the band kernel and one pixel high.
CASES = [(40, 2, 5, 7), (64, 1, 7, 7), (96, 2, 6, 9), (27, 1, 13, 3), (24, 2, 1, 12), (544, 1, 3, 5)]


@pytest.mark.parametrize(("channels", "batch", "height", "width"), CASES)
def test_the_kernel_equals_timms_mixer(channels, batch, height, width):
    mixer = _timm(channels)
    x = torch.randn(batch, channels, height, width)
    with torch.no_grad():
        expected = mixer(x)
        out = INCEPTION_DW(x, *_packed(mixer), *_kernels(mixer))
    assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert (out - expected).abs().max().item() < 1e-5 * expected.abs().max().item()
    gc = branch_channels(channels)
    assert torch.equal(out[:, : channels - 3 * gc], x[:, : channels - 3 * gc])  # the identity part, bit for bit


def test_other_kernel_sizes_and_branch_ratios_and_a_channels_last_input():
    mixer = _timm(48, square_kernel_size=5, band_kernel_size=7, branch_ratio=0.25)
    x = torch.randn(2, 48, 9, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = mixer(x)
        out = INCEPTION_DW(x, *_packed(mixer), *_kernels(mixer))
    assert (out - expected).abs().max().item() < 1e-5 * expected.abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_input_and_output_sum_in_fp32(dtype):
    """Against timm in fp32 on the same 16-bit values: within one rounding of the output."""
    mixer = _timm(40, dtype)
    x = torch.randn(1, 40, 6, 7, dtype=dtype)
    with torch.no_grad():
        expected = mixer.float()(x.float())
        out = INCEPTION_DW(x, *_packed(mixer.to(dtype)), *_kernels(mixer))
    assert out.dtype == dtype
    ulp = torch.finfo(dtype).eps
    assert ((out.float() - expected).abs() <= ulp * expected.abs() + 1e-6).all()


def test_weights_in_any_layout_mean_the_same():
    mixer = _timm(40)
    weight, bias = _packed(mixer)
    x = torch.randn(1, 40, 5, 6)
    with torch.no_grad():
        strided = INCEPTION_DW(x, weight.t().contiguous().t(), bias.t().contiguous().t(), 3, 11)
        assert torch.equal(strided, INCEPTION_DW(x, weight, bias, 3, 11))


def test_the_reference_is_timms_mixer():
    mixer = _timm(40)
    x = torch.randn(2, 40, 5, 6)
    with torch.no_grad():
        assert torch.equal(reference(x, *_packed(mixer), 3, 11), mixer(x))


@pytest.mark.parametrize(
    ("weight_shape", "bias_shape", "kernels", "message"),
    [((29, 5), (3, 5), (3, 10), "odd kernels"), ((30, 5), (3, 5), (3, 11), "not packed"),
     ((31, 14), (3, 14), (3, 11), "do not fit")],
)  # fmt: skip
def test_a_mispacked_weight_is_refused(weight_shape, bias_shape, kernels, message):
    with pytest.raises(ValueError, match=message):
        INCEPTION_DW(torch.randn(1, 40, 4, 4), torch.randn(weight_shape), torch.randn(bias_shape), *kernels)


def test_the_fake_implementation_gives_the_real_shape_stride_and_dtype():
    mixer = _timm(40)
    args = (torch.randn(1, 40, 5, 6), *_packed(mixer), 3, 11)
    real = INCEPTION_DW(*args)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = INCEPTION_DW(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args))
    assert (fake.shape, fake.stride(), fake.dtype) == (real.shape, real.stride(), real.dtype)


class _Mixer(torch.nn.Module):
    def __init__(self, mixer: InceptionDWConv2d) -> None:
        super().__init__()
        weight, bias = _packed(mixer)
        self.register_buffer("weight", weight.detach())
        self.register_buffer("bias", bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return INCEPTION_DW(x, self.weight, self.bias, 3, 11)


def _calls(graph: torch.fx.Graph) -> list[str]:
    return [str(n.target) for n in graph.nodes if n.op == "call_function"]


def test_export_and_compile_see_one_operator():
    mixer = _timm(40)
    module = _Mixer(mixer)
    x = torch.randn(1, 40, 5, 6).contiguous(memory_format=torch.channels_last)
    assert _calls(torch.export.export(module, (x,)).graph) == ["incdsl.inception_dw.default"]
    graphs = []

    def backend(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]):  # noqa: ANN202
        from torch._dynamo.backends.common import aot_autograd

        def forward(fw: torch.fx.GraphModule, _: list[torch.Tensor]):  # noqa: ANN202
            graphs.append(fw.graph)
            return fw

        return aot_autograd(fw_compiler=forward)(gm, inputs)

    with torch.no_grad():
        compiled = torch.compile(module, backend=backend, fullgraph=True)(x)
        assert torch.equal(compiled, torch.compile(module, backend="aot_eager", fullgraph=True)(x))
        assert (compiled - mixer(x)).abs().max().item() < 1e-4
    assert [_calls(g) for g in graphs] == [["incdsl.inception_dw.default"]]


def test_off_the_interpreter_the_operator_is_a_triton_op_with_one_launch():
    """In a process without TRITON_INTERPRET, on the meta device: a triton_op that torch.export
    keeps as one call and that AOT tracing sees into, down to one launch writing only its output."""
    code = """
import torch
from torch._dynamo.backends.common import aot_autograd
from torch._library.triton import triton_ops_to_kernels
from incdsl.compiler.triton.launch import compiling_for
from incdsl.compiler.triton.ops import INCEPTION_DW
assert "incdsl::inception_dw" in triton_ops_to_kernels
class M(torch.nn.Module):
    def forward(self, x, w, b):
        return INCEPTION_DW(x, w, b, 3, 11)
args = (torch.empty(2, 40, 8, 8, device="meta"), torch.empty(31, 5, device="meta"), torch.empty(3, 5, device="meta"))
print([str(n.target) for n in torch.export.export(M(), args).graph.nodes if n.op == "call_function"])
launches = []
def forward_compiler(gm, example_inputs):
    launches.extend(n.kwargs["tensors_to_clone"] for n in gm.graph.nodes if "triton_kernel_wrapper" in str(n.target))
    raise SystemExit(0)  # traced: nothing to run on the meta device
try:
    with compiling_for(90):
        torch.compile(M(), backend=aot_autograd(fw_compiler=forward_compiler), fullgraph=True)(*args)
except SystemExit:
    pass
print(launches)
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['incdsl.inception_dw.default']", "[['out']]"]


@pytest.fixture(scope="module")
def compiled_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))  # compile for real
    done = subprocess.run(
        [sys.executable, "-m", "incdsl.compiler.triton.token_mixer_aot"], env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1].removeprefix("JSON "))


def test_the_kernel_compiles_for_sm_90_and_sm_80_without_spills_within_shared_memory(compiled_rows):
    """InceptionNeXt-T's four stages at batch 1 and 32, fp16."""
    assert {(r["target"], r["channels"], r["batch"]) for r in compiled_rows} == {
        (t, c, n) for t in ("sm_90", "sm_80") for c in (96, 192, 384, 768) for n in (1, 32)
    }
    for r in compiled_rows:
        assert r["stack"] == 0, r
        assert r["shared"] <= {"sm_90": 232_448, "sm_80": 166_912}[r["target"]], r


def test_fp16_moves_128_bits_an_instruction_where_every_part_starts_on_a_16_byte_boundary(compiled_rows):
    """Parts start at C − 3·gc, then gc apart: 8-channel aligned from C = 192 on; at C = 96 (gc = 12)
    the convs' parts start at channels 60, 72 and 84, 8-byte boundaries, so 64 bits is the width."""
    for r in compiled_rows:
        gc = r["gc"]
        aligned = (r["channels"] - 3 * gc) % 8 == 0 and gc % 8 == 0
        assert r["loads"] == r["stores"] == ([128] if aligned else [64]), r
