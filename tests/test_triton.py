"""The Triton backend: the kernel against torch's conv per branch, whole networks
against the torch backend on the same weights, and the command line.

Without a GPU the kernels run in Triton's interpreter (conftest sets
TRITON_INTERPRET=1), so shapes stay small; on a GPU the same tests run for real.
"""

from __future__ import annotations

import pytest
import torch

import incdsl
from incdsl.compiler.pipeline import BackendUnavailable
from incdsl.compiler.triton.kernels import (
    POOL_AVG,
    POOL_AVG_WITH_PAD,
    POOL_MAX,
    POOL_NONE,
    conv_nhwc,
    conv_nhwc_reference,
    pack_weight,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _channels_last(*shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype, device=DEVICE).to(memory_format=torch.channels_last)


def _run(batch, cin, h, w, widths, kernel=(1, 1), stride=(1, 1), padding=(0, 0), pool=(POOL_NONE, 1), dtype=torch.float32, seed=0):
    """Run the kernel with the first output a channel slice of a wider (concat) buffer;
    return the max abs error against torch and whether the buffer's other channels were left alone."""
    g = torch.Generator().manual_seed(seed)
    cout = sum(widths)
    x = torch.randn(batch, cin, h, w, generator=g).to(DEVICE, dtype).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(cout, cin, *kernel, generator=g) / (cin * kernel[0] * kernel[1]) ** 0.5).to(DEVICE, dtype)
    bias = torch.randn(cout, generator=g).to(DEVICE, dtype)
    relu = [i % 2 == 0 for i in range(len(widths))]  # alternate ReLU and linear members
    floor = torch.cat([torch.full((c,), 0.0 if r else float("-inf")) for c, r in zip(widths, relu, strict=True)])
    floor = floor.to(DEVICE, dtype)
    expected = conv_nhwc_reference(x.float(), weight.float(), bias.float(), floor.float(), widths, stride, padding, pool)
    oh, ow = expected[0].shape[2:]
    sentinel = 1234.5
    buffer = _channels_last(batch, widths[0] + 7, oh, ow, dtype=dtype).fill_(sentinel)
    outs = [buffer[:, 3 : 3 + widths[0]]] + [_channels_last(batch, c, oh, ow, dtype=dtype) for c in widths[1:]]
    conv_nhwc(x, pack_weight(weight), bias, floor, outs, kernel, stride, padding, pool)
    error = max((o.float() - e).abs().max().item() for o, e in zip(outs, expected, strict=True))
    untouched = bool((buffer[:, :3] == sentinel).all() and (buffer[:, 3 + widths[0] :] == sentinel).all())
    return error, untouched


@pytest.mark.parametrize(
    ("batch", "cin", "h", "w", "widths"),
    [
        (1, 192, 7, 7, [64, 96, 16]),  # GoogLeNet 3a's reductions at a small size
        (2, 19, 5, 3, [5, 11, 3]),  # odd channel counts, odd grid
        (1, 33, 1, 1, [7, 9]),  # a 1×1 grid
        (3, 70, 4, 6, [1, 65, 130]),  # columns spanning several tiles
        (2, 40, 13, 12, [50, 90]),  # rows spanning several tiles, in grouped order
        (1, 8, 5, 5, [3, 4, 5, 6, 7, 2]),  # more destinations than one launch takes
    ],
)
def test_fused_1x1_matches_torch_per_branch(batch, cin, h, w, widths):
    error, untouched = _run(batch, cin, h, w, widths)
    assert error < 1e-4
    assert untouched, "a store went outside its channel slice"


@pytest.mark.parametrize("pool", [POOL_MAX, POOL_AVG, POOL_AVG_WITH_PAD])
def test_pool_is_taken_while_loading(pool):
    error, untouched = _run(2, 20, 9, 7, [10], pool=(pool, 3))
    assert error < 1e-4 and untouched


def test_residual_add_in_the_epilogue():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 24, 5, 7, generator=g).to(DEVICE).contiguous(memory_format=torch.channels_last)
    shortcut = torch.randn(2, 40, 5, 7, generator=g).to(DEVICE).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(40, 24, 1, 1, generator=g).to(DEVICE) / 5
    bias = torch.randn(40, generator=g).to(DEVICE)
    for floor_value in (0.0, float("-inf")):  # with and without the ReLU after the add
        floor = torch.full((40,), floor_value, device=DEVICE)
        (expected,) = conv_nhwc_reference(x, weight, bias, floor, [40], residual=(shortcut, 0.17))
        out = _channels_last(2, 40, 5, 7)
        conv_nhwc(x, pack_weight(weight), bias, floor, [out], residual=(shortcut, 0.17))
        assert (out - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"),
    [((3, 3), (1, 1), (1, 1)), ((5, 5), (1, 1), (2, 2)), ((1, 7), (1, 1), (0, 3)), ((7, 1), (1, 1), (3, 0)), ((3, 3), (2, 2), (0, 0))],
)
def test_implicit_gemm_conv(kernel, stride, padding):
    error, untouched = _run(2, 17, 9, 11, [13], kernel, stride, padding)
    assert error < 1e-4 and untouched


INTERPRETED = not torch.cuda.is_available()


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float16,
        pytest.param(
            torch.bfloat16,
            # numpy has no bfloat16: the interpreter's tl.dot on bf16 returns garbage
            # (a bare 16×16 bf16 dot is off by 1e10), so this runs on a GPU only.
            marks=pytest.mark.skipif(INTERPRETED, reason="Triton's interpreter gets bf16 tl.dot wrong"),
        ),
    ],
)
def test_half_precision_accumulates_in_fp32(dtype):
    # Inputs and outputs round to 8 (fp16: 11) significant bits; with fp32
    # accumulation over K = 192 the error stays near one output ulp.
    error, untouched = _run(2, 192, 6, 6, [64, 96, 16], dtype=dtype)
    tolerance = 2e-2 if dtype == torch.float16 else 1e-1
    assert error < tolerance and untouched


# --- whole networks against the torch backend on the same weights ----------------


def _compare(randomise_bn, spec: str, input: str | None, batch: int, **options) -> float:
    torch.manual_seed(0)
    net = incdsl.load(spec, input=input)
    reference = incdsl.compile(net)
    randomise_bn(reference)
    model = incdsl.compile(net, backend="triton", **options)
    model.load_state_dict(reference.state_dict(), strict=True)
    reference.eval().to(DEVICE)
    model.eval().to(DEVICE)
    x = torch.randn(batch, *net.input_shape, device=DEVICE)
    with torch.no_grad():
        diff = (reference(x) - model(x)).abs().max().item()
    print(f"{spec} at {'x'.join(map(str, net.input_shape))}, triton vs torch backend: max abs difference {diff:.1e}")
    return diff


def test_googlenet_matches_the_torch_backend(randomise_bn):
    # The paper's GoogLeNet needs 224×224 (its 7×7 average pool); batch 1 keeps the interpreter quick.
    assert _compare(randomise_bn, "googlenet", None, 1) < 1e-4


def test_inception_v4_matches_the_torch_backend(randomise_bn):
    # 75×75 is about the least Inception-v4's stem and reductions take.
    assert _compare(randomise_bn, "inception_v4", "3x75x75", 1) < 1e-4


def test_inception_resnet_v2_matches_the_torch_backend(randomise_bn):
    # every Block35/17/8 runs its filter expansion and residual add as one kernel
    assert _compare(randomise_bn, "inception_resnet_v2", "3x75x75", 1) < 1e-4


def test_every_kernel_matches_on_a_small_network(randomise_bn):
    assert _compare(randomise_bn, "examples/mini_googlenet", None, 2, kernels="all") < 1e-4


def test_training_mode_runs_the_spec_layers():
    model = incdsl.compile("examples/mini_googlenet", backend="triton").train()
    out = model(torch.randn(2, 1, 32, 32))
    assert [(a.name, a.weight) for a in out.aux] == [("aux", 0.3)] or len(out.aux) == 1


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown Triton kernel"):
        incdsl.compile("googlenet", backend="triton", kernels=["winograd"])


# --- the command line --------------------------------------------------------------


def test_without_a_gpu_the_backend_says_how_to_run_it(cli, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = cli("compile", "googlenet", "--backend", "triton")
    assert code == 3 and out == ""
    assert "needs a CUDA GPU" in err and "TRITON_INTERPRET=1" in err
    with pytest.raises(BackendUnavailable):
        incdsl.compile("googlenet", backend="triton")


def test_compile_report(cli):
    code, out, err = cli("compile", "googlenet", "--backend", "triton")
    assert code == 0, err
    assert "fuse_parallel_1x1       9 groups of 27 convs" in out
    assert "inception_3a:conv1x1_group  [N·28·28, 192] × [192, 176]" in out
    assert "inception_3a.branch1 64 → inception_3a:concat[0:64]" in out
    assert "Triton launches per forward: 18" in out


def test_compile_writes_a_triton_module(cli, tmp_path, randomise_bn):
    target = tmp_path / "mini.py"
    code, out, err = cli("compile", "examples/mini_googlenet", "--backend", "triton", "-o", str(target))
    assert code == 0, err
    namespace: dict = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)  # noqa: S102 - our own generated file
    generated = namespace["MiniGooglenetTriton"]()
    torch.manual_seed(0)
    reference = incdsl.compile("examples/mini_googlenet")
    randomise_bn(reference)
    generated.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert (generated.eval()(x) - reference.eval()(x)).abs().max().item() < 1e-4


def test_cuda_graphs_replay_the_eval_program(randomise_bn):
    # On the CPU (the interpreter) the option changes nothing; on a GPU the second
    # call captures a graph and later calls replay it, recaptured when weights change.
    torch.manual_seed(0)
    reference = incdsl.compile("examples/mini_googlenet")
    randomise_bn(reference)
    model = incdsl.compile("examples/mini_googlenet", backend="triton", cuda_graphs=True)
    model.load_state_dict(reference.state_dict())
    reference.eval().to(DEVICE)
    model.eval().to(DEVICE)
    for step in range(4):
        x = torch.randn(2, 1, 32, 32, device=DEVICE)
        if step == 3:
            with torch.no_grad():
                for m in (model, reference):
                    m.get_submodule("inception_3a.branch1").conv.weight.mul_(2)
        with torch.no_grad():
            assert (model(x) - reference(x)).abs().max().item() < 1e-4
    assert len(model._graphs) == (1 if DEVICE == "cuda" else 0)


@pytest.mark.parametrize("spec", ["inception_resnet_v2", "googlenet"])
def test_generated_module_carries_the_whole_network(spec):
    import json

    from incdsl.compiler.triton.codegen import _compact
    from incdsl.ir import network_from_json

    net = incdsl.load(spec)
    back = network_from_json(json.loads(_compact(net)))
    strip = {"span", "origin"}
    assert [n.model_dump(exclude=strip) for n in back.nodes] == [n.model_dump(exclude=strip) for n in net.nodes]
    assert (back.output, back.aux, back.input_shape) == (net.output, net.aux, net.input_shape)


def test_torch_report_and_kernel_choice_on_the_command_line(cli):
    code, out, err = cli("compile", "inception_v4", "--report")
    assert code == 0, err
    assert "inception_v4 → torch backend" in out and "fuse_parallel_1x1       16 groups of 46 convs" in out
    assert "class " not in out  # the report instead of the source
    code, out, err = cli("compile", "googlenet", "--backend", "triton", "--kernels", "fused_1x1,winograd")
    assert code == 2 and "unknown Triton kernel(s) winograd" in err
    code, out, err = cli("compile", "googlenet", "--backend", "triton", "--kernels", "all")
    # 9 groups + 9 pool projections + 21 convs (conv1, conv2, conv3 and two per module)
    assert code == 0 and "Triton launches per forward: 39" in out
