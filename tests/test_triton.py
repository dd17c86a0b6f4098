"""The Triton backend: each kernel against torch per branch and per config, the
launch plan's arena, whole networks against the torch backend on the same
weights, the module's behaviour, and the command line.

Without a GPU the kernels run in Triton's interpreter (conftest sets
TRITON_INTERPRET=1), so shapes stay small; on a GPU the same tests run for
real, with fp32 in IEEE precision (conftest turns TF32 off) so that 1e-4
tolerances hold. That the kernels compile for sm_90 and sm_80 within the
targets' limits is tests/test_aot.py's business.
"""

from __future__ import annotations

import pytest
import torch

import incdsl
from incdsl.compiler.triton.conv import (
    POOL_AVG,
    POOL_AVG_WITH_PAD,
    POOL_MAX,
    conv,
    conv_reference,
    pack_weight,
    pool_projection_reference,
)
from incdsl.compiler.triton.epilogue import destinations
from incdsl.compiler.triton.gemm import gemm, gemm_reference
from incdsl.compiler.triton.launch import Config

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRETED = not torch.cuda.is_available()

#: Small tiles so that the small test shapes still span several tiles in each direction.
SMALL = Config(16, 16, 16, 4, 2)


def _channels_last(*shape: int, dtype=torch.float32, fill: float | None = None) -> torch.Tensor:
    t = torch.empty(*shape, dtype=dtype, device=DEVICE).to(memory_format=torch.channels_last)
    return t.fill_(fill) if fill is not None else t


def _inputs(batch, cin, h, w, cout, kernel=(1, 1), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cin, h, w, generator=g).to(DEVICE, dtype).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(cout, cin, *kernel, generator=g) / (cin * kernel[0] * kernel[1]) ** 0.5).to(DEVICE, dtype)
    bias = torch.randn(cout, generator=g).to(DEVICE)
    return x, weight, bias


def _floor(widths: list[int]) -> torch.Tensor:
    """ReLU and linear members in turn: 0 and −∞ as the activation floor."""
    return torch.cat([torch.full((c,), 0.0 if i % 2 == 0 else float("-inf")) for i, c in enumerate(widths)]).to(DEVICE)


def _outs(batch, widths, h, w, dtype=torch.float32):
    """Destinations: the first a channel slice of a wider (concat) buffer full of a sentinel."""
    buffer = _channels_last(batch, widths[0] + 7, h, w, dtype=dtype, fill=1234.5)
    outs = [buffer[:, 3 : 3 + widths[0]]] + [_channels_last(batch, c, h, w, dtype=dtype) for c in widths[1:]]
    return buffer, outs


def _untouched(buffer: torch.Tensor, width: int) -> bool:
    """The buffer's channels around the first destination still hold the sentinel."""
    return bool((buffer[:, :3] == 1234.5).all() and (buffer[:, 3 + width :] == 1234.5).all())


def _error(outs, expected) -> float:
    return max((o.float() - e.float()).abs().max().item() for o, e in zip(outs, expected, strict=True))


# --- the 1×1 GEMM ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "cin", "h", "w", "widths"),
    [
        (1, 192, 7, 7, [64, 96, 16]),  # GoogLeNet 3a's reductions at a small size
        (2, 19, 5, 3, [5, 11, 3]),  # odd channel counts, odd grid
        (1, 33, 1, 1, [7, 9]),  # a 1×1 grid
        (3, 70, 4, 6, [1, 65, 130]),  # columns spanning several tiles
        (2, 40, 13, 12, [50, 90]),  # rows spanning several tiles, in grouped order
        (1, 8, 5, 5, [3, 4, 5, 6, 7, 2]),  # six destinations in one launch
    ],
)
@pytest.mark.parametrize(
    ("config", "tma"),
    [(SMALL, False), (SMALL, True), (Config(16, 32, 16, 4, 2, split_k=3), False), (Config(32, 16, 16, 4, 2, split_k=2), True)],
    ids=["pointers", "tma", "split-k", "split-k-tma"],
)
def test_gemm_matches_torch_per_branch(batch, cin, h, w, widths, config, tma):
    x, weight, bias = _inputs(batch, cin, h, w, sum(widths))
    floor = _floor(widths)
    expected = gemm_reference(x, weight, bias, floor, widths)
    buffer, outs = _outs(batch, widths, h, w)
    gemm(x, pack_weight(weight), bias, floor, outs, config, tma=tma)
    assert _error(outs, expected) < 1e-4
    assert _untouched(buffer, widths[0]), "a store went outside its channel slice"


@pytest.mark.parametrize("config", [SMALL, Config(16, 16, 16, 4, 2, split_k=4)], ids=["whole-k", "split-k"])
def test_residual_add_in_the_epilogue(config):
    x, weight, bias = _inputs(2, 24, 5, 7, 40, seed=1)
    shortcut = _inputs(2, 40, 5, 7, 1, seed=2)[0]
    for floor_value in (0.0, float("-inf")):  # with and without the ReLU after the add
        floor = torch.full((40,), floor_value, device=DEVICE)
        (expected,) = gemm_reference(x, weight, bias, floor, [40], residual=(shortcut, 0.17))
        out = _channels_last(2, 40, 5, 7)
        gemm(x, pack_weight(weight), bias, floor, [out], config, residual=(shortcut, 0.17))
        assert _error([out], [expected]) < 1e-4


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
    widths = [64, 96, 16]
    x, weight, bias = _inputs(2, 192, 6, 6, sum(widths), dtype=dtype)
    floor = _floor(widths)
    expected = gemm_reference(x.float(), weight.float(), bias, floor, widths)
    buffer, outs = _outs(2, widths, 6, 6, dtype=dtype)
    gemm(x, pack_weight(weight), bias, floor, outs, Config(32, 32, 32, 4, 2), tma=True)
    assert _error(outs, expected) < (2e-2 if dtype == torch.float16 else 1e-1)
    assert _untouched(buffer, widths[0])


def _aligned_outs(batch, widths, h, w, at, dtype):
    """Destinations: consecutive channel slices from channel ``at`` of one concat buffer
    and eight sentinel channels after them (the row stride keeps the alignment of ``at``)."""
    buffer = _channels_last(batch, at + sum(widths) + 8, h, w, dtype=dtype, fill=1234.5)
    starts = [at + sum(widths[:i]) for i in range(len(widths))]
    return buffer, [buffer[:, lo : lo + c] for lo, c in zip(starts, widths, strict=True)]


@pytest.mark.parametrize(
    ("at", "widths", "dtype", "align"),
    [
        (0, [64, 96, 16], torch.float16, 8),  # 16-byte entries throughout (3a's reductions)
        (8, [24, 40], torch.float16, 8),
        (8, [12, 20], torch.float16, 4),  # 8-byte entries: 64-bit stores
        (4, [16, 16], torch.float16, 1),  # a base Triton cannot know is 16-byte aligned
        (8, [16, 10], torch.float16, 2),  # the last stop alone is off the vector
        (3, [8, 8], torch.float16, 1),
        (4, [8, 12], torch.float32, 4),
        (0, [8, 6], torch.float32, 2),
    ],
)
def test_store_width_is_what_every_table_entry_allows(at, widths, dtype, align):
    batch, h, w = 2, 3, 5
    buffer, outs = _aligned_outs(batch, widths, h, w, at, dtype)
    dest = destinations(outs)
    assert dest.align == align
    entries = dest.table.cpu().flatten().tolist()
    assert all(v % align == 0 for v in entries)  # stops included: the mask is constant per vector
    x, weight, bias = _inputs(batch, 24, h, w, sum(widths), dtype=dtype)
    floor = _floor(widths)
    expected = gemm_reference(x.float(), weight.float(), bias, floor, widths)
    gemm(x, pack_weight(weight), bias, floor, outs, SMALL)
    assert _error(outs, expected) < (2e-2 if dtype == torch.float16 else 1e-4)
    assert bool((buffer[:, :at] == 1234.5).all() and (buffer[:, at + sum(widths) :] == 1234.5).all())


# --- pool projections and k×k convs ----------------------------------------------------


@pytest.mark.parametrize("pool", [POOL_MAX, POOL_AVG, POOL_AVG_WITH_PAD])
def test_pool_is_taken_while_loading(pool):
    x, weight, bias = _inputs(2, 20, 9, 7, 10)
    floor = _floor([10])
    expected = pool_projection_reference(x, weight, bias, floor, (pool, 3))
    buffer, outs = _outs(2, [10], 9, 7)
    conv(x, pack_weight(weight), bias, floor, outs, SMALL, pool=(pool, 3))
    assert _error(outs, [expected]) < 1e-4 and _untouched(buffer, 10)


@pytest.mark.parametrize(
    ("size", "cin", "pool", "dtype", "splits"),
    [
        (7, 208, POOL_MAX, torch.float32, 4),  # GoogLeNet's 5b pool projection at batch 1, narrowed
        (4, 64, POOL_AVG, torch.float32, 8),  # more ranges than K tiles: the last ones are empty
        (7, 80, POOL_AVG_WITH_PAD, torch.float16, 3),  # a ragged last range
        (4, 256, POOL_MAX, torch.float16, 2),
    ],
)
def test_split_k_pool_projection_reduces_then_runs_the_epilogue(size, cin, pool, dtype, splits):
    # Batch 1 at 7×7 or 4×4: the tiles that leave SMs idle. Bias and ReLU/linear floors after
    # the reduce, into a channel slice of a concat buffer and a tensor of its own.
    widths = [24, 16]
    x, weight, bias = _inputs(1, cin, size, size, sum(widths), dtype=dtype, seed=cin)
    floor = _floor(widths)
    expected = torch.split(pool_projection_reference(x.float(), weight.float(), bias, floor, (pool, 3)), widths, dim=1)
    buffer, outs = _outs(1, widths, size, size, dtype=dtype)
    conv(x, pack_weight(weight), bias, floor, outs, Config(16, 16, 16, 4, 2, split_k=splits), pool=(pool, 3))
    assert _error(outs, expected) < (2e-2 if dtype == torch.float16 else 1e-4)
    assert _untouched(buffer, widths[0]), "a store went outside its channel slice"


@pytest.mark.parametrize(
    ("cin", "kernel", "stride", "padding"),
    [
        (17, (3, 3), (1, 1), (1, 1)),
        (17, (5, 5), (1, 1), (2, 2)),
        (16, (1, 7), (1, 1), (0, 3)),  # Cin a multiple of BLOCK_K: one tap per K tile
        (16, (7, 1), (1, 1), (3, 0)),
        (17, (3, 3), (2, 2), (0, 0)),
        (3, (7, 7), (2, 2), (3, 3)),  # the stem: three channels, one flattened K loop over 147
    ],
)
def test_implicit_gemm_conv(cin, kernel, stride, padding):
    x, weight, bias = _inputs(2, cin, 9, 11, 13, kernel)
    floor = _floor([13])
    expected = conv_reference(x, weight, bias, floor, stride, padding)
    buffer, outs = _outs(2, [13], *expected.shape[2:])
    conv(x, pack_weight(weight), bias, floor, outs, SMALL, kernel, stride, padding)
    assert _error(outs, [expected]) < 1e-4 and _untouched(buffer, 13)


# --- the launch plan -------------------------------------------------------------------


@pytest.mark.parametrize("spec", incdsl.bundled_specs())
def test_arena_buffers_that_live_together_never_share_memory(spec):
    from incdsl.compiler.pipeline import TRITON_KERNELS, inference_passes, run_passes
    from incdsl.compiler.program import compile_steps, eval_program, kernel_conv, values_of
    from incdsl.compiler.triton.plan import arena_layout

    passed = run_passes(incdsl.load(spec), inference_passes("triton", TRITON_KERNELS))
    program = eval_program(passed)
    kernel_convs = {n.name for n in program if kernel_conv(n, True)}
    layout = arena_layout(compile_steps(program, passed.outputs()), values_of(passed.nodes), 2, 2, kernel_convs)
    buffers = sorted(layout.offsets)
    assert buffers, "the plan places nothing"
    for i, a in enumerate(buffers):
        assert layout.offsets[a] + layout.sizes[a] <= layout.total
        for b in buffers[i + 1 :]:
            (a0, a1), (b0, b1) = layout.spans[a], layout.spans[b]
            if a0 <= b1 and b0 <= a1:  # alive at the same step
                lo, hi = sorted([a, b], key=layout.offsets.get)
                assert layout.offsets[lo] + layout.sizes[lo] <= layout.offsets[hi], (a, b)
    # sharing memory is the point: the arena is smaller than the buffers side by side
    if len(buffers) > 4:
        assert layout.total < sum(layout.sizes.values())


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
    diff = 0.0
    for _ in range(3):  # builds the plan, then replays it (on a GPU: captures a graph, replays it)
        x = torch.randn(batch, *net.input_shape, device=DEVICE)
        with torch.no_grad():
            diff = max(diff, (reference(x) - model(x)).abs().max().item())
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


# --- the module --------------------------------------------------------------------


def test_training_mode_runs_the_spec_layers():
    net = incdsl.load("examples/mini_googlenet")
    model = incdsl.compile(net, backend="triton").train()
    out = model(torch.randn(2, 1, 32, 32))
    assert [(a.name, a.weight) for a in out.aux] == [(h.name, h.weight) for h in net.aux] == [("aux1", 0.3)]


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown Triton kernel"):
        incdsl.compile("googlenet", backend="triton", kernels=["winograd"])


def test_weights_are_prepared_again_after_load_state_dict_and_refresh(randomise_bn):
    torch.manual_seed(0)
    reference = incdsl.compile("examples/mini_googlenet").eval().to(DEVICE)
    model = incdsl.compile("examples/mini_googlenet", backend="triton").eval().to(DEVICE)
    x = torch.randn(2, 1, 32, 32, device=DEVICE)

    def close() -> bool:
        with torch.no_grad():
            return (model(x) - reference(x)).abs().max().item() < 1e-4

    model.load_state_dict(reference.state_dict())
    assert close()
    for _ in range(2):  # the plan replays (on a GPU, a captured graph) on the old weights' tensors
        assert close()
    randomise_bn(reference)
    model.load_state_dict(reference.state_dict())  # new values into the same tensors: the plan holds
    assert close()
    plans = dict(model._plans)
    with torch.no_grad():  # in place, as an EMA update would: not seen until refresh_weights()
        for m in (model, reference):
            m.get_submodule("inception_3a.branch1").conv.weight.mul_(2)
    model.refresh_weights()
    assert close()
    assert model._plans == plans, "refreshing the weights rebuilt the plans"


def test_inputs_the_plan_cannot_take_are_refused():
    model = incdsl.compile("examples/mini_googlenet", backend="triton").eval().to(DEVICE)
    with pytest.raises(ValueError, match=r"compiled for inputs N×1×32×32, got 2×1×31×32"):
        model(torch.randn(2, 1, 31, 32, device=DEVICE))
    with pytest.raises(TypeError, match="the input is torch.float64 and the weights are torch.float32"):
        model(torch.randn(2, 1, 32, 32, device=DEVICE, dtype=torch.float64))


def test_without_a_gpu_eval_refuses_clearly(monkeypatch):
    # Compiling needs no GPU; running the kernels without one (and without the interpreter) does.
    model = incdsl.compile("examples/mini_googlenet", backend="triton").eval()
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="eval mode runs on a CUDA GPU.*TRITON_INTERPRET=1"):
        model(torch.randn(2, 1, 32, 32))


def test_cuda_graphs_replay_the_plan(randomise_bn):
    # On a GPU the second call captures the plan as a graph and later calls replay it;
    # in the interpreter the plan itself replays.
    torch.manual_seed(0)
    reference = incdsl.compile("examples/mini_googlenet")
    randomise_bn(reference)
    model = incdsl.compile("examples/mini_googlenet", backend="triton")
    model.load_state_dict(reference.state_dict())
    reference.eval().to(DEVICE)
    model.eval().to(DEVICE)
    outputs = []
    for _ in range(4):
        x = torch.randn(2, 1, 32, 32, device=DEVICE)
        with torch.no_grad():
            y = model(x)
            assert (y - reference(x)).abs().max().item() < 1e-4
        outputs.append(y)
    assert not torch.equal(outputs[-1], outputs[-2]), "a returned output was overwritten by the next call"
    assert len(model._plans) == 1 and len(model._graphs) == (1 if DEVICE == "cuda" else 0)


# --- generated source and the command line -----------------------------------------


@pytest.mark.parametrize("passed", [False, True], ids=["spec", "passed"])
@pytest.mark.parametrize("spec", ["inception_resnet_v2", "googlenet"])
def test_generated_module_carries_the_whole_network(spec, passed):
    import json

    from incdsl.compiler.pipeline import passed_for_triton
    from incdsl.compiler.triton.codegen import _compact
    from incdsl.ir import network_from_json

    net = incdsl.load(spec)
    if passed:  # what a generated Triton module embeds: fused groups, slices, folded batch norms
        net = passed_for_triton(net, "all")
    back = network_from_json(json.loads(_compact(net)))
    strip = {"span", "origin"}
    assert [n.model_dump(exclude=strip) for n in back.nodes] == [n.model_dump(exclude=strip) for n in net.nodes]
    assert (back.output, back.aux, back.input_shape) == (net.output, net.aux, net.input_shape)


@pytest.mark.parametrize("kernels", [("fused_1x1",), "all"], ids=["fused_1x1", "all"])
def test_a_generated_triton_module_runs_no_pass_when_built(tmp_path, monkeypatch, kernels):
    from conftest import import_generated

    from incdsl.compiler import pipeline
    from incdsl.compiler.options import check_kernels

    source = pipeline.generate_source(incdsl.load("inception_resnet_v2"), "triton", kernels)
    module = import_generated(source, tmp_path / f"irv2_{len(kernels)}.py")

    def refused(*args, **kwargs):
        raise AssertionError("a generated module ran the passes")

    monkeypatch.setattr(pipeline, "run_passes", refused)
    built = module.InceptionResnetV2Triton()
    monkeypatch.undo()
    compiled = incdsl.compile("inception_resnet_v2", backend="triton", kernels=check_kernels(kernels))
    strip = {"span", "origin"}
    assert built.kernels == compiled.kernels
    assert [n.model_dump(exclude=strip) for n in built._program] == [n.model_dump(exclude=strip) for n in compiled._program]


def test_compile_needs_no_gpu(cli, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = cli("compile", "googlenet", "--backend", "triton")
    assert code == 0, err
    assert "Triton launches per forward" in out


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        ("googlenet", ["--backend", "triton"]),
        ("inception_resnet_v2", ["--backend", "triton"]),
        ("examples/mini_googlenet", ["--backend", "triton", "--kernels", "all"]),
        ("inception_v4", ["--report"]),
    ],
)
def test_compile_reports_are_golden(cli, golden, spec, options):
    code, out, err = cli("compile", spec, *options)
    assert code == 0, err
    backend = "torch" if "--report" in options else "triton-all" if "all" in options else "triton"
    golden(f"compile/{spec.replace('/', '_')}.{backend}.txt", out)


def test_generated_triton_module_is_golden(golden):
    from incdsl.compiler.pipeline import generate_source

    golden("codegen/mini_googlenet_triton.py", generate_source(incdsl.load("examples/mini_googlenet"), "triton"))


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
    import importlib.util

    spec = importlib.util.spec_from_file_location("mini", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imported as a user would, from its own file
    generated = module.MiniGooglenetTriton()
    torch.manual_seed(0)
    reference = incdsl.compile("examples/mini_googlenet")
    randomise_bn(reference)
    generated.load_state_dict(reference.state_dict(), strict=True)
    generated.eval().to(DEVICE)
    reference.eval().to(DEVICE)
    x = torch.randn(2, 1, 32, 32, device=DEVICE)
    with torch.no_grad():
        assert (generated(x) - reference(x)).abs().max().item() < 1e-4


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


def test_a_compiled_launch_gets_a_three_dimensional_grid():
    # The bug the first GPU run found: a compiled kernel's launcher indexes grid[0..2], and
    # the interpreter, which the other tests run, takes any grid. Off the interpreter, a
    # launch must hand the launcher all three dimensions, and its arguments in order.
    from incdsl.compiler.triton.launch import Launch

    seen = []

    class Compiled:
        def __getitem__(self, grid):
            assert len(grid) == 3, grid
            return lambda *args: seen.append((grid, args))

    class Kernel:
        arg_names = ["x", "n", "BLOCK"]

        def warmup(self, grid, **kwargs):
            return Compiled()

    for grid, full in (((7,), (7, 1, 1)), ((7, 3), (7, 3, 1)), ((7, 3, 2), (7, 3, 2))):
        Launch(Kernel(), grid, {"n": 5, "BLOCK": 64, "x": "ptr"}, {"num_warps": 4})()
        assert seen[-1] == (full, ("ptr", 5, 64))
