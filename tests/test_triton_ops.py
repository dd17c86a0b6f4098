"""The Triton backend composed with torch.compile: incdsl's kernels as ``incdsl::``
operators (each against torch, and its fake implementation against the real
one), the traceable eval forward (``torch.export`` holds the operators;
``torch.compile(fullgraph=True)`` equals eager), and the per-operation choice
between the kernel and the torch form, from timings.

Without a GPU the kernels run in Triton's interpreter (conftest), so shapes are small.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import incdsl
from incdsl.compiler.triton import ops
from incdsl.compiler.triton.choice import Timing, choose_forms, pick
from incdsl.compiler.triton.conv import (
    POOL_AVG,
    POOL_MAX,
    conv_reference,
    pack_weight,
    pad_columns,
    pool_projection_reference,
)
from incdsl.compiler.triton.gemm import gemm_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
#: Every operator's class in a few layers: groups, an average-pool projection, k×k convs
#: (with kernels="all") and two residual expansions (ReLU after the add, and none).
MINI_RESIDUAL = """network mini_residual
input 3x12x12

block unit(scale, act):
  residual scale=scale act=act:
    concat base=0:
      conv 1x1 8
      conv 1x1 8 -> conv 3x3 8
      avgpool 3x3/1 same -> conv 1x1 4
    conv 1x1 16 linear nobn as conv2d

conv 3x3 16
unit(scale=0.2, act=relu) as a
unit(scale=1.0, act=none) as b
global_avgpool
linear 10
"""
NETWORKS = {"mini_googlenet": lambda: incdsl.load("examples/mini_googlenet"), "mini_residual": lambda: incdsl.loads(MINI_RESIDUAL)}

# --- the operators -------------------------------------------------------------------


def _operands(cin: int, cout: int, kernel: tuple[int, int] = (1, 1), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # a channel slice of a channels-last tensor, as a group member's output is: read in place
    x = torch.randn(2, cin + 8, 5, 6, generator=g).to(DEVICE).contiguous(memory_format=torch.channels_last)[:, 3 : 3 + cin]
    weight = torch.randn(cout, cin, *kernel, generator=g).to(DEVICE)
    bias = torch.randn(cout, generator=g).to(DEVICE)
    floor = torch.where(torch.arange(cout, device=DEVICE) < cout // 3, 0.0, float("-inf"))  # ReLU on some columns
    packed = pack_weight(weight)
    n = packed.shape[1]
    return x, weight, bias, floor, (packed, pad_columns(bias, n), pad_columns(floor, n))


def _group(cin: int, cout: int):
    x, w, b, f, packed = _operands(cin, cout)
    return (x, *packed, cout, 0), torch.cat(gemm_reference(x, w, b, f, [cout]), 1), ops.GROUP_1X1


def _residual(cin: int, cout: int):
    x, w, b, f, packed = _operands(cin, cout)
    shortcut = torch.randn(2, cout, 5, 6, device=DEVICE)  # contiguous, not channels-last: the op converts it
    expected = torch.cat(gemm_reference(x, w, b, f, [cout], residual=(shortcut, 0.17)), 1)
    return (x, shortcut, *packed, 0.17, cout, 0), expected, ops.RESIDUAL_1X1


def _pool(kind: int):
    def case(cin: int, cout: int):
        x, w, b, f, packed = _operands(cin, cout)
        return (x, *packed, kind, 3, cout, 0), pool_projection_reference(x, w, b, f, (kind, 3)), ops.POOL_1X1

    return case


def _conv(cin: int, cout: int):
    x, w, b, f, packed = _operands(cin, cout, (3, 3))
    expected = conv_reference(x, w, b, f, (2, 2), (1, 1))
    return (x, *packed, [3, 3], [2, 2], [1, 1], cout, 0), expected, ops.CONV


OPERATORS = {"group": _group, "residual": _residual, "maxpool": _pool(POOL_MAX), "avgpool": _pool(POOL_AVG), "conv": _conv}


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("cout", [20, 24])  # 24 fills 16-byte rows (vector stores); 20 does not
def test_each_operator_computes_what_torch_does(name, cout):
    args, expected, op = OPERATORS[name](24, cout)
    out = op(*args)
    assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert (out - expected).abs().max().item() < 1e-4


def test_a_pool_projection_that_splits_k_by_default_computes_what_torch_does():
    # 128 channels over a 5×6 image: one tile, so the default config splits K (tuning.py) and the
    # operator runs the reduce launch after the partial sums.
    from incdsl.compiler.triton.targets import TARGETS
    from incdsl.compiler.triton.tuning import Shape, default_config

    assert default_config(Shape("pool", 2 * 5 * 6, 32, 128, 9, "ieee"), TARGETS["sm_90"]).split_k > 1
    args, expected, op = _pool(POOL_MAX)(128, 24)
    assert (op(*args) - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", OPERATORS)
def test_each_fake_implementation_gives_the_real_shape_stride_and_dtype(name):
    args, _, op = OPERATORS[name](24, 20)
    real = op(*args)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = op(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args))
    assert (fake.shape, fake.stride(), fake.dtype, fake.device) == (real.shape, real.stride(), real.dtype, real.device)


# --- the traceable forward -----------------------------------------------------------


def _models(randomise_bn, network: str = "mini_googlenet", **options):
    torch.manual_seed(0)
    net = NETWORKS[network]()
    reference = incdsl.compile(net)
    randomise_bn(reference)
    model = incdsl.compile(net, backend="triton", **options)
    model.load_state_dict(reference.state_dict(), strict=True)
    return reference.eval().to(DEVICE), model.eval().to(DEVICE), torch.randn(2, *net.input_shape, device=DEVICE)


def _incdsl_ops(exported: torch.export.ExportedProgram) -> list[str]:
    """The ``incdsl::`` calls anywhere in the program (eval's ``no_grad`` puts the forward in a submodule)."""
    graphs = [m.graph for m in exported.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]
    return sorted(str(n.target) for g in graphs for n in g.nodes if str(n.target).startswith("incdsl."))


def test_export_holds_an_incdsl_operator_for_each_operation_in_kernel_form(randomise_bn):
    _, model, x = _models(randomise_bn, "mini_residual", kernels="all")
    fake_x = torch.empty_like(x, device="meta")
    assert _incdsl_ops(torch.export.export(model.to("meta"), (fake_x,))) == []  # the default: torch forms
    model.set_forms("kernel")
    held = _incdsl_ops(torch.export.export(model, (fake_x,)))
    expected = {"group_1x1": 2, "pool_1x1": 2, "residual_1x1": 2, "conv": 3}  # conv1 and each unit's 3×3
    assert held == sorted(f"incdsl.{op}.default" for op, n in expected.items() for _ in range(n))


@pytest.mark.parametrize(("network", "options"), [("mini_googlenet", {}), ("mini_residual", {"kernels": "all"})])
def test_compiled_graph_equals_eager_and_the_torch_backend(randomise_bn, network, options):
    reference, model, x = _models(randomise_bn, network, **options)
    model.set_forms("kernel")
    model.launch_plan = False
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
        expected = reference(x)
    assert torch.equal(compiled, eager)
    assert (eager - expected).abs().max().item() < 1e-4


def test_the_launch_plan_stays_the_eager_default(randomise_bn):
    reference, model, x = _models(randomise_bn)
    assert model.launch_plan and set(model.forms.values()) == {"library"}
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() < 1e-4
    assert model._plans  # the eager call built a launch plan


# --- the choice ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timing", "form"),
    [
        (Timing(1.0, 2.0), "kernel"),  # faster kernel
        (Timing(2.0, 1.0), "library"),  # slower kernel: the library call runs
        (Timing(1.0, 1.0), "library"),  # a tie goes to the library call
        (Timing(None, 1.0), "library"),  # the kernel failed or was not timed
        (Timing(1.0, None), "library"),  # nothing to compare it with
        (Timing(), "library"),  # nothing measured (no GPU)
    ],
)
def test_pick(timing, form):
    assert pick(timing) == form


def test_a_margin_asks_the_kernel_to_win_by_more_than_it():
    assert pick(Timing(0.97, 1.0), margin=0.05) == "library"
    assert pick(Timing(0.90, 1.0), margin=0.05) == "kernel"
    assert choose_forms({"a": Timing(1, 2), "b": Timing(2, 1)}) == {"a": "kernel", "b": "library"}


def test_measure_forms_times_both_forms_of_every_operation_and_keeps_the_pick(randomise_bn):
    _, model, x = _models(randomise_bn)
    names = list(model.forms)
    calls: list[str] = []

    def timer(fn) -> float:  # kernel, then library, per operation: the odd ones' kernel wins, one fails
        i, form = divmod(len(calls), 2)
        calls.append(form)
        if i == 0 and form == 0:
            raise RuntimeError("out of resources")
        return 2.0 if form == 1 else (1.0 if i % 2 else 3.0)

    timings = model.measure_forms(x, timer=timer)
    assert list(timings) == names and len(calls) == 2 * len(names)
    assert timings[names[0]] == Timing(None, 2.0)
    assert model.forms_at(x) == {name: "kernel" if i % 2 else "library" for i, name in enumerate(names)}
    assert set(model.forms.values()) == {"library"}  # decided at x's shape only


def test_tune_measures_the_forms_at_its_shape_and_a_tie_or_failure_keeps_the_torch_form(randomise_bn):
    _, model, x = _models(randomise_bn)
    names = list(model.forms)
    assert len(names) >= 3
    kernel_ms = {0: 1.0, 1: 2.0}  # the first operation's kernel wins, the second ties, the rest fail

    def timer(fn) -> float:
        i, form = divmod(timer.calls, 2)
        timer.calls += 1
        if form == 1:
            return 2.0
        if i not in kernel_ms:
            raise RuntimeError("out of resources")
        return kernel_ms[i]

    timer.calls = 0
    model.tune(x, timer=timer)
    assert timer.calls == 2 * len(names)
    assert model.forms_at(x) == {name: "kernel" if i == 0 else "library" for i, name in enumerate(names)}
    assert set(model.forms_at(x[:1]).values()) == {"library"}  # another shape: not measured
    model.set_forms("kernel")  # forcing a form overrides what was measured, at every shape
    assert set(model.forms_at(x).values()) == {"kernel"}


def test_set_forms_refuses_unknown_names_and_forms(randomise_bn):
    _, model, _ = _models(randomise_bn)
    with pytest.raises(ValueError, match="no operation"):
        model.set_forms({"nope": "kernel"})
    with pytest.raises(ValueError, match="unknown form"):
        model.set_forms("fast")


def test_off_the_interpreter_the_operators_are_triton_ops_that_export_and_compile(tmp_path):
    """What a GPU gets, checked in a process without TRITON_INTERPRET on the meta device: the four
    operators are triton_op s; torch.export keeps one ``incdsl::`` call per operation; and
    torch.compile's AOT tracing (compiling for sm_90, nothing run) sees into each, down to one
    functional Triton launch that writes only its output (no defensive copies of its inputs)."""
    code = f"""
import torch, incdsl
from torch._dynamo.backends.common import aot_autograd
from torch._library.triton import triton_ops_to_kernels
from incdsl.compiler.triton.launch import compiling_for
model = incdsl.compile(incdsl.loads({MINI_RESIDUAL!r}), backend="triton", kernels="all").eval().to("meta")
assert {{"incdsl::group_1x1", "incdsl::residual_1x1", "incdsl::pool_1x1", "incdsl::conv"}} <= set(triton_ops_to_kernels)
model.set_forms("kernel")
x = torch.empty(2, 3, 12, 12, device="meta")
exported = torch.export.export(model, (x,))
print(sum(str(n.target).startswith("incdsl.") for m in exported.graph_module.modules()
          if isinstance(m, torch.fx.GraphModule) for n in m.graph.nodes))
launches = []
def forward_compiler(gm, example_inputs):
    launches.extend(n.kwargs["tensors_to_clone"] for n in gm.graph.nodes if "triton_kernel_wrapper" in str(n.target))
    raise SystemExit(0)  # traced: nothing to run on the meta device
try:
    with compiling_for(90):
        torch.compile(model, backend=aot_autograd(fw_compiler=forward_compiler), fullgraph=True)(x)
except SystemExit:
    pass
print(len(launches), sorted({{tuple(t) for t in launches}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # 2 groups, 2 pool projections, 2 residual expansions, 3 convs: one call, one launch each
    assert done.stdout.splitlines() == ["9", "9 [('out_ptr',)]"]
