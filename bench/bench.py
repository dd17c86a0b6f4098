"""Benchmark incdsl's backends against the reference implementations, with a roofline.

    python bench/bench.py                          # CPU: fp32, torch backends vs torchvision/timm eager; groups
    python bench/bench.py --device cuda            # GPU: every stage (see below), as long as it takes
    python bench/bench.py --device cuda --stage first --budget 420 --out DIR/first.json
    python bench/bench.py --device cuda --stage second --resume first.json --budget 300
    python bench/bench.py --device cuda --dry-run  # build every item's objects on the meta device; no CUDA
    python bench/bench.py --markdown FILE.json     # a results file (old CPU ones too) as BENCHMARKS.md's tables

What is measured
----------------
Networks (GoogLeNet, Inception-v3, Inception-v4, Inception-ResNet-v2), eval mode, channels-last
inputs drawn fresh for each (network, batch); the reference's own initialisation with its batch
norms' statistics and affine parameters drawn at random (seeded; the defaults would hide a wrongly
folded batch norm), and those weights loaded into every variant:

- ``eager (reference)``: torchvision ``googlenet`` / ``inception_v3``, timm ``inception_v4`` /
  ``inception_resnet_v2``, with cuDNN (``torch.backends.cudnn.benchmark = True`` for every variant);
- ``torch.compile default`` / ``reduce-overhead`` / ``max-autotune`` of the reference: compiled
  afresh for each batch (``torch._dynamo.reset()`` first, ``dynamic=False``), with inductor's
  freezing on (``torch._inductor.config.freezing = True``; every call runs under ``no_grad``);
  reduce-overhead and max-autotune replay CUDA graphs;
- ``incdsl torch --fuse`` (BN folded, each group of parallel 1×1 convs as one conv), and on the CPU
  ``incdsl torch`` (the plain lowering);
- ``incdsl triton``: the default kernels with CUDA graphs (the default); ``… no CUDA graphs``;
  ``… all kernels`` (``kernels="all"``: k×k convs too); ``… tuned`` (``model.tune(x)`` first).
- ``torch.compile(incdsl --fuse)``, ``torch.compile(incdsl triton)`` (the triton backend's graph
  forward with its default forms: :mod:`incdsl.compiler.triton.choice`) and ``torch.compile(incdsl
  triton, measured)`` (``model.measure_forms(x)`` first: per operation, incdsl's kernel or the torch
  form, whichever this GPU times faster): reduce-overhead, compiled as the reference is.

Every fused 1×1 group of a network alone, at the network's shapes, random weights (GEMM
``[N·H·W, Cin] × [Cin, ΣCout]``): ``separate convs`` (cuDNN, one per member, bias and ReLU),
``one conv`` over the concatenated weights, ``torch GEMM`` (``torch._addmm_activation``: cuBLASLt
with the bias and ReLU in its epilogue), ``triton`` (incdsl's kernel, the default config for the
shape; and ``triton tuned``, the fastest candidate config). A pool projection pools first in every
torch variant (torch's pool); ``triton`` is the fused pool kernel and ``triton, pool then GEMM``
is torch's pool followed by the Triton GEMM. An Inception-ResNet residual expansion adds
``shortcut + scale·y`` (torch: a separate add). The k×k convs (``convs`` table): cuDNN against
the Triton implicit-GEMM kernel. InceptionNeXt-T's token mixer at its four stages (``mixer``
table, fp16, batches up to 32): timm's ``InceptionDWConv2d`` eager (a split, three depthwise
convs, a cat) and under ``torch.compile``, against incdsl's one-kernel ``incdsl::inception_dw``.

How it is timed
---------------
- Networks: ``n`` back-to-back calls between two CUDA events (``n`` chosen so that a round takes
  about 25 ms), 7 rounds recorded before a single synchronisation; the per-call median over the
  rounds, and its min and max. No synchronisation per call: host overhead counts where the GPU
  waits for it, as a user sees it. Warm-up first (3 calls after the first, which compiles).
- Groups and convs: ``triton.testing.do_bench_cudagraph`` (the calls captured in one CUDA graph
  and replayed 10 times; median), each call rotating through up to 8 independently drawn input
  and weight sets so that together they are at least twice the L2 cache (``copies`` in each row).
- On the CPU: the same back-to-back rounds with ``time.perf_counter``.
- Correctness of each variant: ``max_abs_diff_vs_eager`` (networks: against eager in the same
  dtype; groups: against ``separate convs``) and ``rel_err = ‖out − ref‖ / ‖ref‖`` in float64,
  where ``ref`` is the network's reference in fp32 with TF32 off (IEEE), or the group in float64.
  Triton outputs are filled with NaN before the checked call: an unwritten element shows as NaN.
- fp32 on a GPU follows torch's defaults, as users get them: cuDNN convolutions in TF32, matmuls
  as ``torch.backends.cuda.matmul`` says; the Triton kernels follow the convolution setting. The
  JSON's ``settings.fp32`` records each.

The roofline
------------
``flops`` = 2 × multiply-adds (convs and linear layers, ``incdsl.cost``; pools, adds, ReLU
not counted) × batch. ``min_bytes`` = the fewest bytes the computation must move through device
memory when each kernel reads its operands and weights once and writes its outputs once:

- a group or conv: ``(M·K + K·N + N + M·N [+ M·N for a residual's shortcut]) × itemsize`` with
  ``M = N·H·W`` (output pixels), ``K`` input channels × taps, ``N`` output channels (a pool
  projection's operand is read once and the pooled tensor never written);
- a network: summed over its eval program as the triton backend's passes leave it (BN folded,
  parallel 1×1 convs one group, pool projections and residual adds fused into their 1×1 GEMM,
  concat inputs written in place): each node that computes reads each input activation once, its
  weights and biases once, and writes its output once; slices, dropout, flatten and in-place
  concats move nothing; a concat input not written in place is read and written once.

Beside each GPU time: ``tflops`` and ``gbps`` (``flops`` and ``min_bytes`` over the time), their
fractions of the device's datasheet peak (``compute_frac``, ``bw_frac``; ``DEVICES`` in
``incdsl.compiler.triton.targets``, by ``torch.cuda.get_device_name()``; 16-bit tensor-core rate
for fp16/bf16, TF32 or IEEE fp32 for fp32) and ``floor_ms`` = max(flops / peak, bytes / bandwidth):
no implementation can beat it. The measured ceilings (a 1 GiB device copy, an 8192³ fp16 and bf16
matmul) are recorded beside it.

Stages, budget, results
-----------------------
On a GPU the items run in a fixed order (``--stage first``: the decisive table, GoogLeNet and
Inception-v4 at fp16, batches 1/32/256: eager, incdsl triton, incdsl --fuse, then
torch.compile reduce-overhead and default at batches 1 and 32, then at 256, then torch.compile
reduce-overhead of incdsl --fuse and of incdsl triton (its graph forward: default forms, then the
forms ``measure_forms`` picks on this GPU) at every batch, then the groups
table, then triton without CUDA graphs; ``--stage second``: whatever ``--resume``'s file skipped,
then kernels="all", the k×k convs table and the mixer table, tuned configs, max-autotune at batches 1 and 32,
bf16, the other networks, max-autotune at 256). ``--budget SECONDS`` (counted from this process's
start) skips an item whose estimate would not fit, keeping time for the groups table in the first
stage; estimates start from priors (below) and follow what this run measured. Each row is written
to the JSON as it finishes (atomically): a run cut short keeps what it measured. Skipped items
and errors are listed in it.
"""

from __future__ import annotations

import time

START = time.monotonic()  # --budget counts from here: imports included

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import incdsl  # noqa: E402
from incdsl import ir  # noqa: E402
from incdsl.compiler.pipeline import DEFAULT_TRITON_KERNELS, TRITON_KERNELS, inference_passes, run_passes  # noqa: E402
from incdsl.compiler.program import eval_program  # noqa: E402
from incdsl.cost import total as total_cost  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA = 2

#: network → (incdsl spec whose state_dict is the reference's, the reference's constructor)
NETWORKS: dict[str, tuple[str, Callable[[], torch.nn.Module]]] = {
    "googlenet": (
        "compat/torchvision_googlenet",
        lambda: __import__("torchvision").models.googlenet(weights=None, aux_logits=False, init_weights=True),
    ),
    "inception_v3": (
        "inception_v3",
        lambda: __import__("torchvision").models.inception_v3(weights=None, aux_logits=False, init_weights=False),
    ),
    "inception_v4": ("inception_v4", lambda: __import__("timm").create_model("inception_v4")),
    "inception_resnet_v2": ("inception_resnet_v2", lambda: __import__("timm").create_model("inception_resnet_v2")),
}
DECISIVE = ("googlenet", "inception_v4")

# Network variants, in the order the tables show them.
EAGER = "eager (reference)"
TORCH = "incdsl torch"
FUSE = "incdsl torch --fuse"
TRITON = "incdsl triton"
TRITON_NO_GRAPHS = "incdsl triton, no CUDA graphs"
TRITON_ALL = "incdsl triton, all kernels"
TRITON_TUNED = "incdsl triton, tuned"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
# torch.compile reduce-overhead (freezing, afresh per batch) of incdsl's models: the fused torch path,
# and the triton backend's graph forward with its default forms and with the forms measured here
# (``model.measure_forms(x)`` before compiling).
FUSE_COMPILED = "torch.compile(incdsl --fuse)"
TRITON_COMPILED = "torch.compile(incdsl triton)"
TRITON_COMPILED_MEASURED = "torch.compile(incdsl triton, measured)"
COMPILED_INCDSL = {FUSE_COMPILED: FUSE, TRITON_COMPILED: TRITON, TRITON_COMPILED_MEASURED: TRITON}
NETWORK_VARIANTS = (
    EAGER, *(f"torch.compile {m}" for m in COMPILE_MODES), *COMPILED_INCDSL, TORCH, FUSE, TRITON, TRITON_NO_GRAPHS,
    TRITON_ALL, TRITON_TUNED,
)  # fmt: skip

# Group and conv variants.
SEPARATE = "separate convs"
ONE_CONV = "one conv"
TORCH_GEMM = "torch GEMM"
TRI = "triton"
TRI_POOL_THEN_GEMM = "triton, pool then GEMM"
TRI_TUNED = "triton tuned"
CUDNN = "cuDNN"
TIMM_MIXER = "timm eager"
TIMM_MIXER_COMPILED = "torch.compile(timm)"
MIXER_VARIANTS = (TIMM_MIXER, TIMM_MIXER_COMPILED, TRI)
GROUP_VARIANTS = (SEPARATE, ONE_CONV, TORCH_GEMM, TRI_POOL_THEN_GEMM, TRI, TRI_TUNED)

#: Seconds an item is expected to take before this run has measured one like it: on an H100/H200
#: with a 16-core host, Triton compiling each kernel binary in 1–2 s, inductor tens of seconds per
#: model and batch (max-autotune benchmarks every conv's templates: minutes).
PRIORS_GPU = {
    "eager": 6.0, "fuse": 4.0, "torch": 4.0, "triton": 25.0, "triton-next-batch": 8.0, "triton-variant": 8.0,
    "triton-all": 30.0, "tuned": 60.0, "compile:googlenet": 35.0, "compile:inception_v3": 50.0, "compile:inception_v4": 60.0,
    "compile:inception_resnet_v2": 90.0, "max-autotune-factor": 5.0, "group-row": 2.5, "tuned-row": 20.0,
    "conv-row": 3.0, "ceilings": 4.0, "mixer": 40.0,
}  # fmt: skip
PRIORS_CPU = {"network": 15.0, "group-row": 3.0, "conv-row": 3.0}

ROUND_MS = {"cuda": 25.0, "cpu": 100.0}
ROUNDS = {"cuda": 7, "cpu": 5}
GRAPH_REP_MS = 10


# --- the results file ---------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("triton", "torchvision", "timm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a reader (or a kill) never sees half a file


class Results:
    """The JSON results, rewritten after every row. With ``resumed``, its rows are kept and this
    run's are marked with the next run number (ratios are taken within one run)."""

    def __init__(self, path: Path | None, run_info: dict, resumed: dict | None = None) -> None:
        self.path = path
        if resumed is not None:
            self.data = resumed
            self.data.setdefault("runs", [])
        else:
            self.data = {"schema": SCHEMA, "runs": [], "networks": [], "groups": [], "convs": [],
                         "skipped": [], "errors": []}  # fmt: skip
        self.run = 1 + max((r["run"] for r in self.data["runs"]), default=0)
        self.data["runs"].append({"run": self.run, **run_info})
        self.data.update({k: v for k, v in run_info.items() if k in ("device", "date", "torch")})
        self.data.setdefault("skipped", [])
        self.data.setdefault("errors", [])

    @property
    def info(self) -> dict:
        return self.data["runs"][-1]

    def done(self) -> set[str]:
        """Keys of the items an earlier run measured."""
        return {r["key"] for table in ("networks", "groups", "convs", "mixer") for r in self.data.get(table, []) if "key" in r}

    def add(self, table: str, row: dict) -> None:
        row["run"] = self.run
        self.data.setdefault(table, []).append(row)
        self.save()

    def skip(self, key: str, reason: str) -> None:
        self.data["skipped"] = [s for s in self.data["skipped"] if s["key"] != key]
        self.data["skipped"].append({"key": key, "reason": reason, "run": self.run})
        self.save()

    def error(self, key: str, err: BaseException) -> None:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__)).strip()
        self.data["errors"].append({"key": key, "error": text[-3000:], "run": self.run})
        self.save()

    def save(self) -> None:
        self.info["elapsed_s"] = round(time.monotonic() - START, 1)
        if self.path is not None:
            _write_json(self.path, self.data)


# --- timing -------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], device: str, rounds: int | None = None, warmup: int = 3,
               round_ms: float | None = None) -> dict:  # fmt: skip
    """Median ms per call over rounds of back-to-back calls (no synchronisation within a round;
    on a GPU one at the end): see the module's docstring."""
    rounds = rounds or ROUNDS[device]
    round_ms = round_ms or ROUND_MS[device]
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    estimate = max((time.perf_counter() - t0) * 1e3, 1e-3)
    n = max(1, min(1000, round(round_ms / estimate)))
    per_call = []
    if device == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(rounds)]
        for start, end in events:
            start.record()
            for _ in range(n):
                fn()
            end.record()
        torch.cuda.synchronize()
        per_call = [start.elapsed_time(end) / n for start, end in events]
    else:
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            per_call.append((time.perf_counter() - t0) * 1e3 / n)
    return {"ms": statistics.median(per_call), "ms_min": min(per_call), "ms_max": max(per_call),
            "calls_per_round": n, "rounds": rounds}  # fmt: skip


def time_graph(fn: Callable[[], object], device: str, rounds: int | None = None, round_ms: float | None = None) -> dict:
    """On a GPU, ``triton.testing.do_bench_cudagraph`` (median of 10 replays of a graph of back-to-back
    calls); elsewhere :func:`time_calls`."""
    if device != "cuda":
        return time_calls(fn, device, rounds, warmup=1, round_ms=round_ms)
    import triton.testing

    times = triton.testing.do_bench_cudagraph(fn, rep=GRAPH_REP_MS, return_mode="all")
    return {"ms": statistics.median(times), "ms_min": min(times), "ms_max": max(times), "replays": len(times)}


@contextlib.contextmanager
def ieee_fp32() -> Iterator[None]:
    """fp32 convolutions and matmuls in IEEE precision (no TF32), for references."""
    saved = []
    for holder in (getattr(torch.backends.cudnn, "conv", None), getattr(torch.backends.cuda, "matmul", None)):
        if holder is not None and hasattr(holder, "fp32_precision"):
            saved.append((holder, holder.fp32_precision))
            holder.fp32_precision = "ieee"
    try:
        yield
    finally:
        for holder, value in saved:
            holder.fp32_precision = value


def fp32_settings() -> dict[str, str]:
    """How torch runs fp32 here (TF32 or IEEE) and what the Triton kernels follow."""
    found = {}
    for label, holder in (("cudnn.conv", getattr(torch.backends.cudnn, "conv", None)),
                          ("cuda.matmul", getattr(torch.backends.cuda, "matmul", None))):  # fmt: skip
        if holder is not None and hasattr(holder, "fp32_precision"):
            found[label] = holder.fp32_precision
    found["cudnn.allow_tf32"] = str(torch.backends.cudnn.allow_tf32)
    found["cuda.matmul.allow_tf32"] = str(torch.backends.cuda.matmul.allow_tf32)
    try:
        from incdsl.compiler.triton.gemm import dot_precision

        found["triton dot"] = dot_precision(torch.float32)
    except ImportError:
        pass
    return found


# --- numerics and the roofline ------------------------------------------------------------------


def as_rows(out: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """An output (a tensor, N×C×H×W or pixels × channels, or a list of them side by side) as
    float64 pixels × channels."""
    parts = [out] if isinstance(out, torch.Tensor) else list(out)
    rows = [p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]) if p.dim() == 4 else p for p in parts]
    return torch.cat([r.double() for r in rows], dim=1)


def errors(out: torch.Tensor, same_dtype: torch.Tensor | None, ref: torch.Tensor | None) -> dict:
    """``max_abs_diff_vs_eager`` against ``same_dtype``; ``rel_err`` against ``ref`` in float64."""
    found: dict[str, Any] = {}
    if out.is_meta:
        return found
    out = out.double()
    if same_dtype is not None:
        found["max_abs_diff_vs_eager"] = (out - same_dtype.double()).abs().max().item()
    if ref is not None:
        ref = ref.double()
        found["rel_err"] = ((out - ref).norm() / ref.norm().clamp_min(1e-300)).item()
    found["nonfinite"] = int((~torch.isfinite(out)).sum().item())
    return found


def peak_of(device_name: str) -> dict | None:
    """The datasheet row for the device (``targets.DEVICES``), or None."""
    try:
        from incdsl.compiler.triton.targets import device_named
    except ImportError:
        return None
    d = device_named(device_name)
    if d is None:
        return None
    return {"name": d.name, "sms": d.sms, "half_tflops": d.half_tflops, "tf32_tflops": d.tf32_tflops,
            "fp32_tflops": d.fp32_tflops, "gbps": d.gbps,
            "source": "datasheet, incdsl.compiler.triton.targets.DEVICES"}  # fmt: skip


def peak_tflops(peak: dict, dtype: str, fp32: dict) -> float:
    if dtype in ("float16", "bfloat16"):
        return peak["half_tflops"]
    return peak["tf32_tflops"] if fp32.get("cudnn.conv", "tf32") == "tf32" else peak["fp32_tflops"]


def roofline(flops: float, nbytes: float, ms: float, peak: dict | None, dtype: str, fp32: dict) -> dict:
    found = {"tflops": flops / ms / 1e9, "gbps": nbytes / ms / 1e6}
    if peak:
        tflops = peak_tflops(peak, dtype, fp32)
        found["compute_frac"] = found["tflops"] / tflops
        found["bw_frac"] = found["gbps"] / peak["gbps"]
        found["floor_ms"] = max(flops / (tflops * 1e9), nbytes / (peak["gbps"] * 1e6))
    return found


def _numel(shape: Sequence[int] | None) -> int:
    assert shape is not None
    return math.prod(shape)


def _weights(node: ir.Node, passed: ir.Network) -> int:
    """Weights and biases a node reads (BN folded: every conv has a bias)."""
    a = node.attrs
    if isinstance(a, ir.ConvAttrs):
        cin = passed.node(node.inputs[0]).shape[0]  # type: ignore[index]
        return a.out_channels * cin * a.kernel[0] * a.kernel[1] + a.out_channels
    if isinstance(a, ir.Conv1x1GroupAttrs):
        cin = passed.node(node.inputs[0]).shape[0]  # type: ignore[index]
        return a.out_channels * (cin + 1)
    if isinstance(a, ir.LinearAttrs):
        features = _numel(passed.node(node.inputs[0]).shape)
        return a.out_features * (features + (1 if a.bias else 0))
    return 0


def network_min_bytes(passed: ir.Network, batch: int, itemsize: int) -> int:
    """The network's ``min_bytes`` (the module's docstring defines it)."""
    moved = 0
    for node in eval_program(passed):
        a = node.attrs
        if isinstance(a, ir.InputAttrs | ir.SliceAttrs | ir.DropoutAttrs | ir.FlattenAttrs):
            continue
        if isinstance(a, ir.ConcatAttrs):
            offset = 0
            for name in node.inputs:
                width = passed.node(name).shape[0]  # type: ignore[index]
                if passed.node(name).storage != (node.name, offset):
                    moved += 2 * batch * _numel(passed.node(name).shape) * itemsize
                offset += width
            continue
        reads = sum(_numel(passed.node(name).shape) for name in dict.fromkeys(node.inputs))
        moved += (batch * (reads + _numel(node.shape)) + _weights(node, passed)) * itemsize
    return moved


# --- groups and convs as benchmark cases -------------------------------------------------------


@dataclass(frozen=True)
class GemmCase:
    """One fused 1×1 group of a network: parallel 1×1 convs, a pool projection (``pool``) or an
    Inception-ResNet residual expansion (``residual = (scale, ReLU after the add)``)."""

    network: str
    name: str
    cin: int
    h: int
    w: int
    widths: tuple[int, ...]
    relu: tuple[bool, ...]
    pool: tuple[str, int, bool] | None = None  # (maxpool|avgpool, k, count_include_pad)
    residual: tuple[float, bool] | None = None

    @property
    def n(self) -> int:
        return sum(self.widths)

    @property
    def kind(self) -> str:
        if self.pool is not None:
            op, k, _ = self.pool
            return f"pool ({op[:3]} {k}×{k}) + 1×1"
        return "residual 1×1" if self.residual is not None else "parallel 1×1"

    def signature(self) -> tuple:
        return (self.cin, self.h, self.w, self.widths, self.relu, self.pool, self.residual)

    def dims(self, batch: int) -> tuple[int, int, int]:
        return batch * self.h * self.w, self.n, self.cin

    def text(self, batch: int) -> str:
        return f"[{batch}·{self.h}·{self.w}, {self.cin}]×[{self.cin}, {self.n}]"

    def flops(self, batch: int) -> int:
        m, n, k = self.dims(batch)
        return 2 * m * n * k

    def min_bytes(self, batch: int, itemsize: int) -> int:
        m, n, k = self.dims(batch)
        return (m * k + k * n + n + m * n + (m * n if self.residual else 0)) * itemsize


@dataclass(frozen=True)
class ConvCase:
    """One k×k conv of a network (``kernels="all"`` runs it through the Triton conv kernel)."""

    network: str
    name: str
    cin: int
    h: int
    w: int
    cout: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    oh: int
    ow: int
    relu: bool

    def signature(self) -> tuple:
        return (self.cin, self.h, self.w, self.cout, self.kernel, self.stride, self.padding, self.relu)

    def text(self, batch: int) -> str:
        kh, kw = self.kernel
        return f"{batch}×{self.cin}×{self.h}×{self.w} → {self.cout}, {kh}×{kw}/{self.stride[0]}"

    def dims(self, batch: int) -> tuple[int, int, int]:
        return batch * self.oh * self.ow, self.cout, self.cin * self.kernel[0] * self.kernel[1]

    def flops(self, batch: int) -> int:
        m, n, k = self.dims(batch)
        return 2 * m * n * k

    def min_bytes(self, batch: int, itemsize: int) -> int:
        m, n, k = self.dims(batch)
        return (batch * self.cin * self.h * self.w + k * n + n + m * n) * itemsize


def gemm_cases(network: str, passed: ir.Network) -> list[GemmCase]:
    """The network's fused groups, one per distinct shape, in execution order."""
    cases: dict[tuple, GemmCase] = {}
    for node in eval_program(passed):
        a = node.attrs
        if not isinstance(a, ir.Conv1x1GroupAttrs):
            continue
        _, h, w = node.shape  # type: ignore[misc]
        pool = None
        if a.pool is not None:
            pool = (a.pool.op, a.pool.kernel[0], a.pool.count_include_pad)
        residual = None
        if a.residual is not None:
            residual = (a.residual.scale, a.residual.act == "relu")
        case = GemmCase(
            network, node.name, passed.node(node.inputs[0]).shape[0], h, w,  # type: ignore[index]
            tuple(m.conv.out_channels for m in a.members), tuple(m.conv.act == "relu" for m in a.members), pool, residual,
        )  # fmt: skip
        cases.setdefault(case.signature(), case)
    return list(cases.values())


def conv_cases(network: str, passed_all: ir.Network) -> list[ConvCase]:
    """The convs the ``conv`` kernel takes (those no group absorbed), one per distinct shape."""
    cases: dict[tuple, ConvCase] = {}
    for node in eval_program(passed_all):
        a = node.attrs
        if not isinstance(a, ir.ConvAttrs):
            continue
        cin, h, w = passed_all.node(node.inputs[0]).shape  # type: ignore[misc]
        _, oh, ow = node.shape  # type: ignore[misc]
        case = ConvCase(network, node.name, cin, h, w, a.out_channels, a.kernel, a.stride, a.padding, oh, ow,
                        a.act == "relu")  # fmt: skip
        cases.setdefault(case.signature(), case)
    return list(cases.values())


# --- the benchmark --------------------------------------------------------------------------------


class CudaBroken(RuntimeError):
    """A CUDA error that leaves the context unusable: nothing after it can run."""


def _is_fatal(err: BaseException) -> bool:
    text = str(err)
    return any(s in text for s in ("illegal memory access", "device-side assert", "unspecified launch failure",
                                   "CUDA error: an illegal", "misaligned address"))  # fmt: skip


@dataclass
class Item:
    key: str
    category: str
    estimate: Callable[[], float]
    run: Callable[[], None]
    protected: bool = False  # earlier unprotected items leave time for it
    minimum: Callable[[], float] | None = None  # what its first part takes (a table goes row by row)


def randomise_batch_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Draw each batch norm's statistics and affine parameters (a fresh reference has mean 0,
    variance 1, γ 1, β 0, which would hide a wrongly folded batch norm)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_((torch.rand(c, generator=g) - 0.5) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_((torch.rand(c, generator=g) - 0.5) * 0.2)
    return model


class NetState:
    """A network at one dtype: its reference (eager), an fp32 copy for references, the passed IR
    for the roofline, the incdsl models built so far, and per batch the input and reference outputs."""

    def __init__(self, bench: Bench, name: str, dtype: torch.dtype) -> None:
        self.bench = bench
        self.name = name
        self.dtype = dtype
        spec, ctor = NETWORKS[name]
        self.spec_net = incdsl.load(spec, input=bench.input) if bench.input else incdsl.load(spec)
        self.shape = tuple(self.spec_net.input_shape)
        reference = randomise_batch_norms(ctor().eval())
        self.state = reference.state_dict()  # the CPU fp32 tensors: .to() below makes new ones
        self.ref32 = None
        if dtype != torch.float32 and bench.device != "meta":
            self.ref32 = copy.deepcopy(reference).to(device=bench.device, memory_format=torch.channels_last)
        self.reference = reference.to(device=bench.device, dtype=dtype, memory_format=torch.channels_last)
        self.passed = run_passes(self.spec_net, inference_passes("triton", DEFAULT_TRITON_KERNELS))
        self.macs = total_cost(self.spec_net).macs
        self.models: dict[str, torch.nn.Module] = {}
        self.batches: dict[int, dict[str, Any]] = {}

    def cost(self, batch: int) -> tuple[int, int]:
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return 2 * self.macs * batch, network_min_bytes(self.passed, batch, itemsize)

    def data(self, batch: int) -> dict[str, Any]:
        """This batch's input (fresh random, channels-last), eager output and fp32 reference output."""
        if batch not in self.batches:
            device = self.bench.device
            if device == "meta":
                x = torch.empty(batch, *self.shape, device="meta", dtype=self.dtype)
            else:
                gen = torch.Generator(device=device).manual_seed(1000 + 7 * batch + len(self.name))
                x = torch.randn(batch, *self.shape, device=device, dtype=torch.float32, generator=gen)
            x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                eager = self.reference(x)
                if self.ref32 is not None:
                    with ieee_fp32():
                        ref = self.ref32(x.float())
                else:
                    ref = eager
            self.batches[batch] = {"x": x, "eager": eager, "ref": ref}
        return self.batches[batch]

    def incdsl_model(self, variant: str) -> torch.nn.Module:
        if variant not in self.models:
            kwargs: dict[str, Any] = {}
            base = COMPILED_INCDSL.get(variant, variant)  # a compiled variant keeps its own (uncalled) model
            if base == FUSE:
                kwargs = {"fuse": True}
            elif variant == TRITON_ALL:
                kwargs = {"backend": "triton", "kernels": "all"}
            elif variant == TRITON_NO_GRAPHS:
                kwargs = {"backend": "triton", "cuda_graphs": False}
            elif base in (TRITON, TRITON_TUNED):
                kwargs = {"backend": "triton"}
            model = incdsl.compile(self.spec_net, **kwargs)
            loaded = model.load_state_dict(self.state, strict=False)
            # The reference may lack the spec's aux heads (eval never runs them); nothing else.
            aux = tuple(f"{n.name}." for n in self.spec_net.nodes if self.spec_net.in_aux(n))
            missing = [k for k in loaded.missing_keys if not k.startswith(aux)]
            if missing or loaded.unexpected_keys:
                raise RuntimeError(f"{self.name}: state_dict mismatch: missing {missing[:5]}, unexpected "
                                   f"{loaded.unexpected_keys[:5]}")  # fmt: skip
            self.models[variant] = model.eval().to(device=self.bench.device, dtype=self.dtype,
                                                   memory_format=torch.channels_last)  # fmt: skip
        return self.models[variant]


class Bench:
    def __init__(self, args: argparse.Namespace, results: Results | None) -> None:
        self.args = args
        self.results = results
        self.dry = args.dry_run
        self.device = "meta" if self.dry else args.device
        self.timing_device = args.device
        self.gpu = args.device == "cuda"
        self.input = args.input
        self.budget = args.budget
        self.observed: dict[str, list[float]] = {}
        self.states: dict[tuple[str, torch.dtype], NetState] = {}
        self.eager_done: set[tuple[str, str, int]] = set()
        self.prepared: list[str] = []  # dry run: what was built
        self.fp32 = fp32_settings() if self.gpu else {}
        self.peak = results.info.get("peak") if results else None
        self._target = None
        self.priors = PRIORS_GPU if self.gpu else PRIORS_CPU
        self.done: set[str] = set()

    # -- budget

    def elapsed(self) -> float:
        return time.monotonic() - START

    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.elapsed()

    def seen(self, category: str, fallback: float) -> float:
        got = self.observed.get(category)
        return statistics.mean(got) if got else fallback

    def observe(self, category: str, seconds: float) -> None:
        self.observed.setdefault(category, []).append(seconds)

    # -- helpers

    @property
    def target(self):
        """The compile target of this GPU (sm_90 in a dry run or the interpreter)."""
        if self._target is None:
            from incdsl.compiler.triton.targets import TARGETS, target_of_capability

            if self.device == "cuda":
                self._target = target_of_capability(*torch.cuda.get_device_capability())
            else:
                self._target = TARGETS["sm_90"]
        return self._target

    def triton_here(self) -> bool:
        """Whether Triton kernels can run in this process (a GPU, or the CPU interpreter with --triton)."""
        return self.gpu or (self.args.triton and os.environ.get("TRITON_INTERPRET") == "1")

    def tiny(self, macs: float) -> bool:
        """In the CPU interpreter, Triton runs on tiny shapes only."""
        return self.gpu or self.dry or macs <= self.args.interpreter_macs

    def state(self, name: str, dtype: str) -> NetState:
        key = (name, getattr(torch, dtype))
        if key not in self.states:
            # Two networks at a time (the plan alternates between two): free the oldest's models and graphs.
            while len(self.states) >= 2:
                del self.states[next(iter(self.states))]
                self._free()
            self.states[key] = NetState(self, name, key[1])
        self.states[key] = self.states.pop(key)  # the most recently used last
        return self.states[key]

    def _reset_compiled(self) -> None:
        """Forget every compiled graph (and the CUDA graphs of reduce-overhead), free their memory."""
        import torch._dynamo

        torch._dynamo.reset()
        with contextlib.suppress(ImportError, AttributeError):
            from torch._inductor.cudagraph_trees import reset_cudagraph_trees

            reset_cudagraph_trees()
        self._free()

    def _free(self) -> None:
        if self.device == "cuda":
            gc.collect()
            torch.cuda.empty_cache()

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- networks

    def network_row(self, st: NetState, batch: int, variant: str, out: torch.Tensor, timing: dict,
                    setup: dict) -> dict:  # fmt: skip
        data = st.data(batch)
        flops, nbytes = st.cost(batch)
        dtype = str(st.dtype).removeprefix("torch.")
        row = {"key": f"networks|{st.name}|{dtype}|{batch}|{variant}", "network": st.name, "dtype": dtype,
               "batch": batch, "variant": variant, **timing, **errors(out, data["eager"], data["ref"]),
               **setup, "flops": flops, "min_bytes": nbytes}  # fmt: skip
        row.update(roofline(flops, nbytes, timing["ms"], self.peak, dtype, self.fp32))
        return row

    def ensure_eager(self, st: NetState, batch: int) -> None:
        dtype = str(st.dtype).removeprefix("torch.")
        if (st.name, dtype, batch) in self.eager_done:
            return
        self.eager_done.add((st.name, dtype, batch))
        self.measure_network(st, batch, EAGER, lambda: st.reference)

    def measure_network(self, st: NetState, batch: int, variant: str, build: Callable[[], Any],
                        prepare: Callable[[Any, torch.Tensor], dict] | None = None) -> None:  # fmt: skip
        """Build the variant, run it once (compiling: ``setup_s``), time it, check its steady-state output."""
        data = st.data(batch)
        x = data["x"]
        with torch.no_grad():
            t0 = time.perf_counter()
            model = build()
            setup: dict[str, float] = {"build_s": round(time.perf_counter() - t0, 3)}
            if prepare is not None:
                setup.update(prepare(model, x))
            if self.dry:
                if not variant.startswith("torch.compile"):
                    model(x)  # on the meta device: shapes, plans, no kernels
                self.prepared.append(f"{st.name} {batch} {variant}")
                return
            t0 = time.perf_counter()
            model(x)
            _sync(self.device)
            setup["setup_s"] = round(time.perf_counter() - t0, 3)
            timing = time_calls(lambda: model(x), self.device, self.args.rounds, round_ms=self.args.round_ms)
            out = model(x).clone()
        row = self.network_row(st, batch, variant, out, timing, setup)
        self.results.add("networks", row)  # type: ignore[union-attr]
        eager = next((r["ms"] for r in self.results.data["networks"]  # type: ignore[union-attr]
                      if r["run"] == self.results.run and r["key"] == row["key"].rsplit("|", 1)[0] + "|" + EAGER), None)  # type: ignore[union-attr]  # fmt: skip
        ratio = f"{eager / row['ms']:5.2f}× eager" if eager else ""
        self.say(f"  {st.name:<20} {row['dtype']:<8} {batch:>4}  {variant:<34} {row['ms']:9.3f} ms {ratio}  "
                 f"rel err {row.get('rel_err', float('nan')):.1e}  setup {setup.get('setup_s', 0):.1f} s")  # fmt: skip

    def network_item(self, name: str, dtype: str, batch: int, variant: str) -> Item:
        key = f"networks|{name}|{dtype}|{batch}|{variant}"

        def run() -> None:
            st = self.state(name, dtype)
            if variant.startswith("incdsl triton") and not self.tiny(batch * st.macs):
                self.results.skip(key, "Triton's interpreter runs tiny shapes only (try --input 3x64x64)")  # type: ignore[union-attr]
                return
            self.ensure_eager(st, batch)
            if variant == EAGER:
                return
            if variant in COMPILED_INCDSL:
                self.measure_compiled(st, batch, "reduce-overhead", variant)
            elif variant.startswith("torch.compile"):
                self.measure_compiled(st, batch, variant.removeprefix("torch.compile "))
            elif variant == TRITON_TUNED:
                self.measure_network(st, batch, variant, lambda: st.incdsl_model(variant), self.tune_model)
            else:
                self.measure_network(st, batch, variant, lambda: st.incdsl_model(variant))

        def estimate() -> float:
            p = self.priors
            eager = 0.0 if (name, dtype, batch) in self.eager_done else self.seen(f"eager:{name}", p.get("eager", p.get("network", 10)))
            if not self.gpu:
                return eager + self.seen(f"{variant}:{name}", p["network"])
            if variant in COMPILED_INCDSL:
                return eager + self.seen(f"{variant}:{name}", self.seen(f"compile:{name}", p[f"compile:{name}"]))
            if variant.startswith("torch.compile"):
                mode = variant.removeprefix("torch.compile ")
                base = self.seen(f"compile:{name}", p[f"compile:{name}"])
                guess = base * p["max-autotune-factor"] if mode == "max-autotune" else base
                return eager + self.seen(f"compile {mode}:{name}", guess)
            if variant == TRITON:
                # The first batch compiles most of the kernels; a later one only those whose configs differ.
                got = self.observed.get(f"{variant}:{name}")
                return eager + (max(0.4 * got[0], p["triton-next-batch"] / 3) if got else p["triton"])
            if variant == TRITON_TUNED:
                return eager + self.seen(f"{variant}:{name}", p["tuned"])
            if variant == TRITON_ALL:
                return eager + self.seen(f"{variant}:{name}", p["triton-all"])
            if variant == EAGER:
                return eager
            if variant == FUSE:
                return eager + self.seen(f"{variant}:{name}", p["fuse"])
            return eager + self.seen(f"{variant}:{name}", p.get("triton-variant", 10.0))

        category = {EAGER: f"eager:{name}"}.get(variant, f"{variant}:{name}")
        if variant.startswith("torch.compile") and variant not in COMPILED_INCDSL:
            category = f"compile {variant.removeprefix('torch.compile ')}:{name}"
        return Item(key, category, estimate, run)

    def tune_model(self, model: Any, x: torch.Tensor) -> dict:
        if self.dry:
            return {}
        t0 = time.perf_counter()
        model.tune(x)
        _sync(self.device)
        return {"tune_s": round(time.perf_counter() - t0, 1)}

    def measure_compiled(self, st: NetState, batch: int, mode: str, variant: str | None = None) -> None:
        """torch.compile of the reference (or of the incdsl model a :data:`COMPILED_INCDSL` ``variant``
        names), afresh for this batch: dynamo reset, dynamic=False, freezing."""
        import torch._dynamo
        import torch._inductor.config

        torch._inductor.config.freezing = True
        self._reset_compiled()
        holder: dict[str, Any] = {}
        measured = variant == TRITON_COMPILED_MEASURED

        def build() -> Any:
            holder["model"] = copy.deepcopy(st.incdsl_model(variant) if variant else st.reference)
            if measured and not self.dry:
                holder["model"].measure_forms(st.data(batch)["x"])
            return torch.compile(holder["model"], mode=mode, dynamic=False)

        try:
            self.measure_network(st, batch, variant or f"torch.compile {mode}", build)
        finally:
            holder.clear()
            self._reset_compiled()
        if not self.dry and mode != "max-autotune":
            row = self.results.data["networks"][-1]  # type: ignore[union-attr]
            if row.get("variant") == f"torch.compile {mode}":
                self.observe(f"compile:{st.name}", row["setup_s"])

    # -- groups and convs

    def sets(self, bytes_per_set: int) -> int:
        """How many input sets to rotate through: together at least twice the L2 cache, at most 8."""
        if self.device != "cuda":
            return 1
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 * 2**20)
        return max(1, min(8, math.ceil(2 * l2 / max(bytes_per_set, 1))))

    def _randn(self, *shape: int, dtype: torch.dtype, gen: torch.Generator | None, scale: float = 1.0,
               channels_last: bool = False) -> torch.Tensor:  # fmt: skip
        if self.device == "meta":
            t = torch.empty(*shape, device="meta", dtype=dtype)
        else:
            t = (torch.randn(*shape, device=self.device, generator=gen) * scale).to(dtype)
        return t.contiguous(memory_format=torch.channels_last) if channels_last else t

    def _generator(self, seed: int) -> torch.Generator | None:
        return None if self.device == "meta" else torch.Generator(device=self.device).manual_seed(seed)

    def gemm_set(self, case: GemmCase, batch: int, dtype: torch.dtype, seed: int) -> dict[str, Any]:
        g = self._generator(seed)
        m, n, k = case.dims(batch)
        s = {
            "x": self._randn(batch, k, case.h, case.w, dtype=dtype, gen=g, channels_last=True),
            "weight": self._randn(n, k, 1, 1, dtype=dtype, gen=g, scale=k**-0.5),
            "bias": self._randn(n, dtype=dtype, gen=g, scale=0.1),
        }
        relu = [r for r, c in zip(case.relu, case.widths, strict=True) for _ in range(c)]
        if case.residual is not None:
            relu = [case.residual[1]] * n
            s["shortcut"] = self._randn(batch, n, case.h, case.w, dtype=dtype, gen=g, channels_last=True)
        s["floor"] = torch.tensor([0.0 if r else -math.inf for r in relu], device=self.device)
        return s

    def gemm_variants(self, case: GemmCase, s: dict[str, Any], batch: int, configs: dict[str, Any]) -> dict[str, Callable]:
        """The variants' callables over one input set; each returns its output."""
        x, weight, bias, floor = s["x"], s["weight"], s["bias"], s["floor"]
        widths = list(case.widths)
        m, n, k = case.dims(batch)
        all_relu = all(case.relu) and case.residual is None

        def pool(t: torch.Tensor) -> torch.Tensor:
            op, pk, with_pad = case.pool  # type: ignore[misc]
            if op == "maxpool":
                return F.max_pool2d(t, pk, 1, pk // 2)
            return F.avg_pool2d(t, pk, 1, pk // 2, count_include_pad=with_pad)

        def operand() -> torch.Tensor:
            return pool(x) if case.pool is not None else x

        def finish(y: torch.Tensor, relu: bool) -> torch.Tensor:
            return F.relu_(y) if relu else y

        variants: dict[str, Callable] = {}
        if case.residual is not None:
            scale, relu_after = case.residual
            shortcut = s["shortcut"]
            shortcut_rows = shortcut.permute(0, 2, 3, 1).reshape(m, n)
            scaled_bias = bias * scale

            def separate() -> torch.Tensor:
                return finish(torch.add(shortcut, F.conv2d(x, weight, bias), alpha=scale), relu_after)

            def gemm() -> torch.Tensor:
                rows = x.permute(0, 2, 3, 1).reshape(m, k)
                y = torch.addmm(shortcut_rows, rows, weight.view(n, k).t(), alpha=scale).add_(scaled_bias)
                return finish(y, relu_after)

            variants[SEPARATE] = separate
            variants[TORCH_GEMM] = gemm
        else:
            ws, bs = weight.split(widths), bias.split(widths)

            def separate_convs() -> list[torch.Tensor]:
                xin = operand()
                return [finish(F.conv2d(xin, wi, bi), r) for wi, bi, r in zip(ws, bs, case.relu, strict=True)]

            variants[SEPARATE] = separate_convs
            floor_t = floor.to(weight.dtype) if weight.dtype != torch.float32 else floor
            if len(widths) > 1:

                def one_conv() -> torch.Tensor:
                    y = F.conv2d(operand(), weight, bias)
                    return F.relu_(y) if all_relu else torch.maximum(y, floor_t[:, None, None])

                variants[ONE_CONV] = one_conv

            def gemm() -> torch.Tensor:
                rows = operand().permute(0, 2, 3, 1).reshape(m, k)
                if all_relu:
                    return torch._addmm_activation(bias, rows, weight.view(n, k).t())
                return torch.maximum(torch.addmm(bias, rows, weight.view(n, k).t()), floor_t)

            variants[TORCH_GEMM] = gemm
        if self.triton_here() and self.tiny(m * n * k):
            for name, config in configs.items():
                variants[name] = self.triton_group(case, s, batch, config, pool_then_gemm=name == TRI_POOL_THEN_GEMM)
        return variants

    def triton_group(self, case: GemmCase, s: dict[str, Any], batch: int, config: Any, pool_then_gemm: bool) -> Callable:
        """incdsl's kernel for the group, prepared (outputs poisoned with NaN until it writes them)."""
        from incdsl.compiler.triton.conv import POOL_AVG, POOL_AVG_WITH_PAD, POOL_MAX, pack_weight, prepare_conv  # noqa: I001
        from incdsl.compiler.triton.gemm import precision_of, prepare_gemm

        x, dtype = s["x"], s["x"].dtype
        packed = pack_weight(s["weight"])
        bias32 = s["bias"].float()
        widths = [case.n] if case.residual is not None else list(case.widths)
        outs = [torch.full((batch, c, case.h, case.w), math.nan, dtype=dtype, device=self.device)
                .contiguous(memory_format=torch.channels_last) for c in widths]  # fmt: skip
        tma = self.target.has_tma and precision_of(dtype) != "ieee" and self.device != "cpu"
        if case.pool is not None and not pool_then_gemm:
            op, pk, with_pad = case.pool
            code = POOL_MAX if op == "maxpool" else POOL_AVG_WITH_PAD if with_pad else POOL_AVG
            run = prepare_conv(x, packed, bias32, s["floor"], outs, config, pool=(code, pk))
        elif case.pool is not None:
            op, pk, with_pad = case.pool
            pooled = torch.empty_like(x)
            indices = torch.empty_like(x, dtype=torch.int64) if op == "maxpool" else None
            gemm = prepare_gemm(pooled, packed, bias32, s["floor"], outs, config, tma=tma)

            def run() -> None:
                # torch's own pool (on a GPU max pooling writes its indices too, as eager's does)
                if op == "maxpool":
                    torch.ops.aten.max_pool2d_with_indices.out(x, [pk, pk], [1, 1], [pk // 2] * 2, [1, 1], False,
                                                               out=pooled, indices=indices)  # fmt: skip
                else:
                    torch.ops.aten.avg_pool2d.out(x, [pk, pk], [1, 1], [pk // 2] * 2, False, with_pad, None, out=pooled)
                gemm()
        else:
            residual = (s["shortcut"], case.residual[0]) if case.residual is not None else None
            run = prepare_gemm(x, packed, bias32, s["floor"], outs, config, residual=residual, tma=tma)

        def call() -> list[torch.Tensor]:
            run()
            return outs

        return call

    def gemm_configs(self, case: GemmCase, batch: int, dtype: torch.dtype) -> tuple[dict[str, Any], Any, Any]:
        """The default configs of the Triton variants, and the tuning Shapes (fused, GEMM alone)."""
        from incdsl.compiler.triton.conv import pack_weight
        from incdsl.compiler.triton.gemm import precision_of
        from incdsl.compiler.triton.tuning import Shape, default_config

        m, n, k = case.dims(batch)
        npad = pack_weight(torch.empty(n, k, 1, 1, device="meta")).shape[1]
        precision = precision_of(dtype)
        gemm_shape = Shape("gemm", m, npad, k, 1, precision)
        configs = {}
        if case.pool is not None:
            fused = Shape("pool", m, npad, k, case.pool[1] ** 2, precision)
            configs[TRI_POOL_THEN_GEMM] = default_config(gemm_shape, self.target)
        else:
            fused = gemm_shape
        configs[TRI] = default_config(fused, self.target)
        return configs, fused, gemm_shape

    def measure_case(self, key: str, table: str, case: GemmCase | ConvCase, batch: int, dtype_name: str,
                     tuned: bool) -> None:  # fmt: skip
        dtype = getattr(torch, dtype_name)
        itemsize = torch.empty((), dtype=dtype).element_size()
        m, n, k = case.dims(batch)
        flops, nbytes = case.flops(batch), case.min_bytes(batch, itemsize)
        triton_ok = self.triton_here() and self.tiny(m * n * k)
        configs: dict[str, Any] = {}
        fused_shape = None
        if triton_ok or self.dry:
            if isinstance(case, GemmCase):
                configs, fused_shape, _ = self.gemm_configs(case, batch, dtype)
            else:
                configs, fused_shape = self.conv_configs(case, batch, dtype)
        copies = self.sets(nbytes)
        make_set = self.gemm_set if isinstance(case, GemmCase) else self.conv_set
        make_variants = self.gemm_variants if isinstance(case, GemmCase) else self.conv_variants
        sets = [make_set(case, batch, dtype, seed=17 * i + batch) for i in range(copies)]  # type: ignore[arg-type]
        per_set = [make_variants(case, s, batch, configs) for s in sets]  # type: ignore[arg-type]
        row: dict[str, Any] = {"key": key, "network": case.network, "dtype": dtype_name, "batch": batch,
                               "m": m, "n": n, "k": k, "flops": flops, "min_bytes": nbytes, "copies": copies,
                               "variants": {}}  # fmt: skip
        if isinstance(case, GemmCase):
            row.update({"group": case.name, "kind": case.kind, "gemm": case.text(batch)})
        else:
            row.update({"conv": case.name, "shape": case.text(batch)})
        if configs:
            row["configs"] = {name: str(c) for name, c in configs.items()}
        tune_configs = []
        if tuned and fused_shape is not None:
            from incdsl.compiler.triton.tuning import candidates

            tune_configs = candidates(fused_shape, self.target)
            row["candidates"] = len(tune_configs)
        if self.dry:
            for variants in per_set[:1]:
                for name, fn in variants.items():
                    if not name.startswith("triton"):
                        fn()  # torch on the meta device: shapes only
            if tune_configs:
                self.tuned_variant(case, sets, batch, tune_configs)
            self.prepared.append(f"{key}: {', '.join(per_set[0])}" + (f" + {len(tune_configs)} candidates" if tune_configs else ""))
            return
        ref = self.case_reference(case, sets[0])
        eager_rows = None
        for name in per_set[0]:
            out = as_rows(per_set[0][name]())
            if eager_rows is None:
                eager_rows = out
            timing = self.time_rotating([v[name] for v in per_set])
            row["variants"][name] = {**timing, **errors(out, eager_rows, ref)}
        if tune_configs:
            best, seconds, failed = self.tuned_variant(case, sets, batch, tune_configs)
            if best is not None:
                config, fns = best
                out = as_rows(fns[0]())
                timing = self.time_rotating(fns)
                row["variants"][TRI_TUNED] = {**timing, **errors(out, eager_rows, ref)}
                row["configs"][TRI_TUNED] = str(config)
                self.save_tuned(fused_shape, config)
            row["tune_s"], row["candidates_failed"] = round(seconds, 1), failed
        for v in row["variants"].values():
            v.update(roofline(flops, nbytes, v["ms"], self.peak, dtype_name, self.fp32))
        self.results.add(table, row)  # type: ignore[union-attr]
        cells = "  ".join(f"{name} {v['ms']:.4f}" for name, v in row["variants"].items())
        label = row.get("group", row.get("conv"))
        self.say(f"  {case.network:<20} {label:<34} {dtype_name:<8} {batch:>4}  {cells}")

    def time_rotating(self, fns: list[Callable]) -> dict:
        """:func:`time_graph` of calls that take the input sets in turn (each called once first, so
        that nothing is compiled or loaded while a CUDA graph is being captured)."""
        for fn in fns:
            fn()
        _sync(self.device)
        turn = itertools.cycle(fns)
        return time_graph(lambda: next(turn)(), self.timing_device, self.args.rounds, self.args.round_ms)

    def tuned_variant(self, case: GemmCase | ConvCase, sets: list[dict], batch: int,
                      configs: list[Any]) -> tuple[tuple[Any, list[Callable]] | None, float, int]:  # fmt: skip
        """The fastest candidate config (each timed with every input set rotating), its callables,
        the seconds tuning took and how many candidates failed to compile or run."""
        t0 = time.perf_counter()
        best, best_ms, failed = None, math.inf, 0
        for config in configs:
            try:
                if isinstance(case, GemmCase):
                    fns = [self.triton_group(case, s, batch, config, pool_then_gemm=False) for s in sets]
                else:
                    fns = [self.triton_conv(case, s, batch, config) for s in sets]
                if self.dry:
                    continue
                ms = self.time_rotating(fns)["ms"]
            except Exception as err:  # noqa: BLE001 - a candidate that cannot run here is not one
                if _is_fatal(err):
                    raise
                failed += 1
                continue
            if ms < best_ms:
                best, best_ms = (config, fns), ms
        return best, time.perf_counter() - t0, failed

    def save_tuned(self, shape: Any, config: Any) -> None:
        """Keep the choice in incdsl's tuning cache, where ``model.tune`` finds it."""
        if self.device != "cuda":
            return
        from incdsl.compiler.triton.tuning import TuningCache

        TuningCache(torch.cuda.get_device_name()).put(f"{self.target.name}:{shape.bucket()}", config)

    def case_reference(self, case: GemmCase | ConvCase, s: dict[str, Any]) -> torch.Tensor:
        """The case in float64 from the same inputs, as pixel rows."""
        if isinstance(case, ConvCase):
            from torch.nn.functional import conv2d

            y = conv2d(s["x"].double(), s["weight"].double(), s["bias"].double(), case.stride, case.padding)
            return as_rows(torch.maximum(y, s["floor"].double()[:, None, None]))
        x = s["x"].double()
        if case.pool is not None:
            op, pk, with_pad = case.pool
            x = F.max_pool2d(x, pk, 1, pk // 2) if op == "maxpool" else F.avg_pool2d(x, pk, 1, pk // 2, count_include_pad=with_pad)
        y = F.conv2d(x, s["weight"].double(), s["bias"].double())
        if case.residual is not None:
            y = s["shortcut"].double() + case.residual[0] * y
        return as_rows(torch.maximum(y, s["floor"].double()[:, None, None]))

    def conv_set(self, case: ConvCase, batch: int, dtype: torch.dtype, seed: int) -> dict[str, Any]:
        g = self._generator(seed)
        fan_in = case.cin * case.kernel[0] * case.kernel[1]
        return {
            "x": self._randn(batch, case.cin, case.h, case.w, dtype=dtype, gen=g, channels_last=True),
            "weight": self._randn(case.cout, case.cin, *case.kernel, dtype=dtype, gen=g, scale=fan_in**-0.5),
            "bias": self._randn(case.cout, dtype=dtype, gen=g, scale=0.1),
            "floor": torch.full((case.cout,), 0.0 if case.relu else -math.inf, device=self.device),
        }

    def conv_configs(self, case: ConvCase, batch: int, dtype: torch.dtype) -> tuple[dict[str, Any], Any]:
        from incdsl.compiler.triton.conv import pack_weight
        from incdsl.compiler.triton.gemm import precision_of
        from incdsl.compiler.triton.tuning import Shape, default_config

        m, n, k = case.dims(batch)
        npad = pack_weight(torch.empty(n, case.cin, *case.kernel, device="meta")).shape[1]
        shape = Shape("conv", m, npad, k, case.kernel[0] * case.kernel[1], precision_of(dtype))
        return {TRI: default_config(shape, self.target)}, shape

    def conv_variants(self, case: ConvCase, s: dict[str, Any], batch: int, configs: dict[str, Any]) -> dict[str, Callable]:
        x, weight, bias = s["x"], s["weight"], s["bias"]

        def cudnn() -> torch.Tensor:
            y = F.conv2d(x, weight, bias, case.stride, case.padding)
            return F.relu_(y) if case.relu else y

        variants: dict[str, Callable] = {CUDNN: cudnn}
        m, n, k = case.dims(batch)
        if self.triton_here() and self.tiny(m * n * k):
            variants[TRI] = self.triton_conv(case, s, batch, configs[TRI])
        return variants

    def triton_conv(self, case: ConvCase, s: dict[str, Any], batch: int, config: Any) -> Callable:
        from incdsl.compiler.triton.conv import pack_weight, prepare_conv

        out = torch.full((batch, case.cout, case.oh, case.ow), math.nan, dtype=s["x"].dtype, device=self.device)
        out = out.contiguous(memory_format=torch.channels_last)
        run = prepare_conv(s["x"], pack_weight(s["weight"]), s["bias"].float(), s["floor"], [out], config,
                           case.kernel, case.stride, case.padding)  # fmt: skip

        def call() -> torch.Tensor:
            run()
            return out

        return call

    def case_item(self, table: str, name: str, dtype: str, batch: int, tuned: bool = False, protected: bool = False) -> Item:
        """Every group (or k×k conv) of a network at one dtype and batch: one row each."""
        suffix = "tuned" if tuned else "default"
        key = f"{table}|{name}|{dtype}|{batch}|{suffix}"
        per_row = "tuned-row" if tuned else ("group-row" if table == "groups" else "conv-row")
        category = f"{table}-{suffix}-row"

        found: list[GemmCase | ConvCase] = []

        def cases() -> list[GemmCase | ConvCase]:
            if not found:
                spec = NETWORKS[name][0]
                net = incdsl.load(spec, input=self.input) if self.input else incdsl.load(spec)
                if table == "groups":
                    found.extend(gemm_cases(name, run_passes(net, inference_passes("triton", DEFAULT_TRITON_KERNELS))))
                else:
                    found.extend(conv_cases(name, run_passes(net, inference_passes("triton", TRITON_KERNELS))))
            return found

        def estimate() -> float:
            todo = [c for c in cases() if f"{key}|{c.name}" not in self.done]
            return len(todo) * self.seen(category, self.priors[per_row])

        def run() -> None:
            todo = cases()
            for i, case in enumerate(todo):
                row_key = f"{key}|{case.name}"
                if row_key in self.done:
                    continue
                each = self.seen(category, self.priors[per_row])
                if each > self.left() and not self.dry:
                    for rest in todo[i:]:
                        self.results.skip(f"{key}|{rest.name}", f"budget: ~{each:.0f} s a row, {self.left():.0f} s left")  # type: ignore[union-attr]
                    return
                t0 = time.perf_counter()
                try:
                    self.measure_case(row_key, table, case, batch, dtype, tuned)
                except Exception as err:
                    if _is_fatal(err) or self.dry:
                        raise
                    self.results.error(row_key, err)  # type: ignore[union-attr]
                    self.say(f"  error in {row_key}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
                self.observe(category, time.perf_counter() - t0)

        return Item(key, "rows", estimate, run, protected, lambda: self.seen(category, self.priors[per_row]))

    # -- InceptionNeXt's token mixer

    def mixer_item(self, dtype_name: str, batch: int) -> Item:
        """InceptionNeXt-T's token mixer at each of its stages: timm's ``InceptionDWConv2d`` eager
        and under ``torch.compile`` (default mode, whole graph) against ``incdsl::inception_dw``."""
        key = f"mixer|{dtype_name}|{batch}"

        def run() -> None:
            from incdsl.compiler.triton.token_mixer import STAGES

            for channels, size in STAGES:
                if f"{key}|{channels}" not in self.done:
                    self.measure_mixer(f"{key}|{channels}", channels, size, batch, dtype_name)

        return Item(key, "mixer", lambda: self.priors.get("mixer", 0.0), run)

    def measure_mixer(self, key: str, channels: int, size: int, batch: int, dtype_name: str) -> None:
        from timm.models.inception_next import InceptionDWConv2d

        from incdsl.compiler.triton.ops import INCEPTION_DW
        from incdsl.compiler.triton.token_mixer import BAND, SQUARE, branch_channels, pack

        if self.gpu and not self.dry:
            self._reset_compiled()  # a fresh module each stage: no recompile limit reached
        dtype = getattr(torch, dtype_name)
        itemsize = torch.empty((), dtype=dtype).element_size()
        gc = branch_channels(channels)
        pixels = batch * size * size
        flops = 2 * pixels * gc * (SQUARE**2 + 2 * BAND)
        nbytes = (2 * pixels * channels + gc * (SQUARE**2 + 2 * BAND + 3)) * itemsize
        torch.manual_seed(batch)
        mixer = InceptionDWConv2d(channels).eval().to(self.device, dtype)
        convs = (mixer.dwconv_hw, mixer.dwconv_w, mixer.dwconv_h)
        weight, bias = (t.detach() for t in pack(*(c.weight for c in convs), *(c.bias for c in convs)))
        xs = [self._randn(batch, channels, size, size, dtype=dtype, gen=self._generator(17 * i + batch), channels_last=True)
              for i in range(self.sets(nbytes))]  # fmt: skip
        variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {TIMM_MIXER: mixer}
        if self.gpu:
            variants[TIMM_MIXER_COMPILED] = torch.compile(mixer, fullgraph=True, dynamic=False)
        if self.triton_here():
            variants[TRI] = lambda x: INCEPTION_DW(x, weight, bias, SQUARE, BAND)
        row: dict[str, Any] = {"key": key, "network": "inception_next_tiny", "dtype": dtype_name, "batch": batch,
                               "mixer": f"C{channels} gc{gc}", "shape": f"{batch}×{channels}×{size}×{size}",
                               "flops": flops, "min_bytes": nbytes, "copies": len(xs), "variants": {}}  # fmt: skip
        with torch.no_grad():
            if self.dry:
                mixer(xs[0])  # shapes only, on the meta device
                self.prepared.append(f"{key}: {', '.join(variants)}")
                return
            ref = as_rows(mixer.double()(xs[0].double()))
            mixer.to(dtype)
            eager_rows = as_rows(mixer(xs[0]))
            for name, fn in variants.items():
                out = as_rows(fn(xs[0]))
                timing = self.time_rotating([lambda fn=fn, x=x: fn(x) for x in xs])
                row["variants"][name] = {**timing, **errors(out, eager_rows, ref),
                                         **roofline(flops, nbytes, timing["ms"], self.peak, dtype_name, self.fp32)}  # fmt: skip
        self.results.add("mixer", row)  # type: ignore[union-attr]
        cells = "  ".join(f"{name} {v['ms']:.4f}" for name, v in row["variants"].items())
        self.say(f"  inception_next_tiny mixer {row['shape']:<20} {dtype_name:<8}  {cells}")

    # -- the device's ceilings

    def ceilings_item(self) -> Item:
        def run() -> None:
            import triton.testing

            found = {}
            copy_from = torch.randn(2**28, device="cuda")  # 1 GiB
            copy_to = torch.empty_like(copy_from)
            ms = triton.testing.do_bench(lambda: copy_to.copy_(copy_from), return_mode="median")
            found["copy_gbps"] = 2 * copy_from.numel() * 4 / ms / 1e6
            for dtype in (torch.float16, torch.bfloat16):
                a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
                b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
                ms = triton.testing.do_bench(lambda a=a, b=b: a @ b, return_mode="median")
                found[f"{str(dtype).removeprefix('torch.')}_mm_tflops"] = 2 * 8192**3 / ms / 1e9
            self._free()
            self.results.info["ceilings"] = {k: round(v, 1) for k, v in found.items()}  # type: ignore[union-attr]
            self.results.save()  # type: ignore[union-attr]
            self.say("  measured ceilings: " + ", ".join(f"{k} {v:.0f}" for k, v in found.items()))

        return Item("ceilings", "ceilings", lambda: self.priors["ceilings"], run)

    # -- the plan

    def plan(self) -> list[Item]:
        args = self.args
        nets, batches, dtypes = args.nets, args.batches, args.dtypes
        main = dtypes[0]
        if not self.gpu:
            items = []
            variants = [EAGER, TORCH, FUSE] + ([TRITON] if args.triton else [])
            for name in nets:
                for dtype in dtypes:
                    for batch in batches:
                        items += [self.network_item(name, dtype, batch, v) for v in variants]
            if not args.skip_groups:
                items += [self.case_item("groups", name, dtype, b) for name in nets for dtype in dtypes for b in batches]
            return items
        decisive = [n for n in nets if n in DECISIVE]
        others = [n for n in nets if n not in DECISIVE]
        small = [b for b in batches if b <= 32]
        large = [b for b in batches if b > 32]
        compile_ok = not args.no_compile

        def net(names, dtype, bs, variants) -> list[Item]:
            return [self.network_item(n, dtype, b, v) for n in names for b in bs for v in variants]

        def compiled(names, dtype, bs, modes) -> list[Item]:
            if not compile_ok:
                return []
            return [self.network_item(n, dtype, b, f"torch.compile {m}") for m in modes for n in names for b in bs]

        # The decisive table; then the groups, those at the middle batch kept time for (protected).
        middle = [b for b in batches if b == 32] or batches[len(batches) // 2 : len(batches) // 2 + 1]
        first = net(decisive, main, batches, [EAGER, TRITON, FUSE])
        first += compiled(decisive, main, small, ["reduce-overhead", "default"])
        first += compiled(decisive, main, large, ["reduce-overhead", "default"])
        if compile_ok:
            first += net(decisive, main, batches, list(COMPILED_INCDSL))
        if not args.skip_groups:
            first += [self.case_item("groups", n, main, b, protected=True) for n in decisive for b in middle]
            first += [self.case_item("groups", n, main, b) for b in batches if b not in middle for n in decisive]
        first += net(decisive, main, batches, [TRITON_NO_GRAPHS])

        second = net(decisive, main, batches, [TRITON_ALL])
        if not args.skip_groups:
            second += [self.case_item("convs", n, main, b) for n in decisive for b in batches]
            second += [self.mixer_item(main, b) for b in batches if b <= 32]
            second += [self.case_item("groups", n, main, b, tuned=True) for n in decisive for b in batches]
        second += net(decisive, main, batches, [TRITON_TUNED])
        second += compiled(decisive, main, small, ["max-autotune"])
        for dtype in dtypes[1:]:
            second += net(decisive, dtype, batches, [EAGER, TRITON, FUSE])
            second += compiled(decisive, dtype, batches, ["reduce-overhead"])
        second += net(others, main, batches, [EAGER, TRITON, FUSE])
        second += compiled(others, main, batches, ["reduce-overhead", "default"])
        if not args.skip_groups:
            second += [self.case_item("groups", n, main, b) for n in others for b in batches]
        second += compiled(decisive, main, large, ["max-autotune"])

        if args.stage == "first":
            return first
        if args.stage == "second":
            # What the first stage left (when resuming its file) comes first.
            return (first if args.resume else []) + second
        return first + second

    # -- running

    def execute(self) -> None:
        items = self.plan()
        if self.gpu and not self.dry:
            items.insert(0, self.ceilings_item())
        self.done = self.results.done() if self.results else set()
        for i, item in enumerate(items):
            if item.key in self.done:
                continue
            if self.dry:
                item.run()
                continue
            estimate = item.estimate()
            needed = item.minimum() if item.minimum is not None else estimate
            reserve = 0.0
            if not item.protected:
                reserve = sum(it.estimate() for it in items[i + 1 :] if it.protected and it.key not in self.done)
            if needed + reserve > self.left():
                kept = f" (+{reserve:.0f} s kept for the groups table)" if reserve else ""
                self.results.skip(item.key, f"budget: needs ~{estimate:.0f} s{kept}, {self.left():.0f} s left")  # type: ignore[union-attr]
                self.say(f"  skip {item.key}: ~{estimate:.0f} s{kept} > {self.left():.0f} s left")
                continue
            t0 = time.perf_counter()
            try:
                item.run()
            except torch.cuda.OutOfMemoryError as err:
                self.results.error(item.key, err)  # type: ignore[union-attr]
                self._free()
            except Exception as err:  # noqa: BLE001 - one item's failure must not cost the rest
                self.results.error(item.key, err)  # type: ignore[union-attr]
                self.say(f"  error in {item.key}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
                if self.gpu and _is_fatal(err):
                    for rest in items[i + 1 :]:
                        self.results.skip(rest.key, "the CUDA context broke (see errors)")  # type: ignore[union-attr]
                    raise CudaBroken(str(err)) from err
            else:
                if item.category != "rows":
                    self.observe(item.category, time.perf_counter() - t0)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- markdown -----------------------------------------------------------------------------------


def _ms(v: float) -> str:
    return f"{v:.2f}" if v >= 1 else f"{v:.3f}" if v >= 0.01 else f"{v:.4f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.0f}%" if v >= 0.01 else f"{100 * v:.1f}%"


def _legacy_groups(groups: list[dict]) -> list[str]:
    """Schema 1 (the old CPU files): one flat row per group."""
    timed = [k for k in groups[0] if k not in ("network", "group", "gemm", "dtype", "batch", "run")]
    lines = [
        "| network | group | GEMM | dtype | " + " | ".join(f"{k} (ms)" for k in timed) + " | separate ÷ fused | fused ÷ GEMM |",
        "| --- | --- | --- | --- | " + " | ".join("---:" for _ in timed) + " | ---: | ---: |",
    ]
    fused = "triton fused" if "triton fused" in timed else "one conv (torch --fuse)"
    gemm = "one GEMM (addmm, cuBLAS on GPU)"
    for g in groups:
        cells = " | ".join(f"{g[k]:.3f}" for k in timed)
        ratios = f"{g['separate convs'] / g[fused]:.2f}× | {g[fused] / g[gemm]:.2f}×"
        lines.append(f"| {g['network']} | {g['group']} | {g['gemm']} | {g['dtype']} | {cells} | {ratios} |")
    return lines


def _latest(rows: list[dict], key: Callable[[dict], tuple]) -> dict[tuple, dict]:
    found: dict[tuple, dict] = {}
    for r in rows:
        k = key(r)
        if k not in found or r.get("run", 1) >= found[k].get("run", 1):
            found[k] = r
    return found


def markdown(results: dict, networks_only: bool = False) -> str:
    """The results as the tables BENCHMARKS.md quotes: networks (ms and speed-up over eager in the
    same run), their roofline, the groups, the convs; what was skipped and what failed."""
    lines = _header(results) + [""] + _network_tables(results, details=not networks_only)
    if networks_only:
        return "\n".join(lines) + "\n"
    groups = results.get("groups", [])
    if groups and "variants" not in groups[0]:
        lines += [""] + _legacy_groups(groups)
    elif groups:
        lines += [""] + _case_table(groups, "group", "GEMM", "gemm", GROUP_VARIANTS)
    convs = results.get("convs", [])
    if convs:
        lines += [""] + _case_table(convs, "conv", "shape", "shape", (CUDNN, TRI))
    mixers = results.get("mixer", [])
    if mixers:
        lines += [""] + _case_table(mixers, "mixer", "shape", "shape", MIXER_VARIANTS)
    measured = {r["key"] for table in ("networks", "groups", "convs", "mixer") for r in results.get(table, []) if "key" in r}
    skipped = [s for s in results.get("skipped", [])
               if s["key"] not in measured and not any(k.startswith(s["key"] + "|") for k in measured)]  # fmt: skip
    if skipped:
        lines += ["", f"Not measured ({len(skipped)}):", ""]
        lines += [f"- `{s['key']}`: {s['reason']}" for s in skipped]
    if results.get("errors"):
        lines += ["", f"Errors ({len(results['errors'])}):", ""]
        lines += [f"- `{e['key']}`: {e['error'].splitlines()[-1][:300]}" for e in results["errors"]]
    return "\n".join(lines) + "\n"


def _header(results: dict) -> list[str]:
    runs = results.get("runs") or [{"run": 1, "device": results["device"], "date": results["date"],
                                    "torch": results["torch"]}]  # fmt: skip
    lines = []
    for r in runs:
        versions = ", ".join(f"{k} {r[k]}" for k in ("torch", "triton", "torchvision", "timm") if k in r)
        tag = f"Run {r['run']} ({r.get('stage', '')} stage): " if len(runs) > 1 else ""
        lines.append(f"{tag}Device: {r['device']}, {versions}, {r['date']}.")
        if r.get("ceilings"):
            c = r["ceilings"]
            lines.append(f"Measured ceilings: {', '.join(f'{k} {v:,.0f}' for k, v in c.items())}.")
        if r.get("peak"):
            p = r["peak"]
            lines.append(f"Datasheet peak ({p['name']}): {p['half_tflops']:.0f} TFLOP/s fp16/bf16, "
                         f"{p['tf32_tflops']:.0f} TF32, {p['gbps']:,.0f} GB/s.")  # fmt: skip
        if r.get("settings", {}).get("fp32"):
            lines.append(f"fp32 precision: {', '.join(f'{k} {v}' for k, v in r['settings']['fp32'].items())}.")
        if r.get("interrupted"):
            lines.append(f"Interrupted: {r['interrupted']}.")
    return lines


def _network_tables(results: dict, details: bool) -> list[str]:
    nets = results.get("networks", [])
    if not nets:
        return []
    multi = len(results.get("runs") or [1]) > 1
    variants = [v for v in NETWORK_VARIANTS if any(r["variant"] == v for r in nets)]
    variants += [v for v in dict.fromkeys(r["variant"] for r in nets) if v not in variants]
    eager = {(r["network"], r["dtype"], r["batch"], r.get("run", 1)): r["ms"] for r in nets if r["variant"] == EAGER}
    latest = _latest(nets, lambda r: (r["network"], r["dtype"], r["batch"], r["variant"]))
    keys = list(dict.fromkeys((r["network"], r["dtype"], r["batch"]) for r in nets))
    lines = [
        "| network | dtype | batch | " + " | ".join(variants) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in variants) + " |",
    ]
    for key in keys:
        cells = []
        for v in variants:
            r = latest.get((*key, v))
            if r is None:
                cells.append("—")
                continue
            base = eager.get((*key, r.get("run", 1)))
            ratio = f" ({base / r['ms']:.2f}×)" if base else ""
            mark = f" ^{r['run']}" if multi else ""
            cells.append(f"{_ms(r['ms'])} ms{ratio}{mark}")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    if multi:
        lines += ["", "^N: measured in run N; its ratio is against that run's eager."]
    if not details or not any("rel_err" in r for r in nets):
        return lines
    lines += [
        "",
        "| network | dtype | batch | variant | ms (min–max) | rel err | max abs diff | setup s | GFLOP | min MB "
        "| TFLOP/s | % peak | GB/s | % BW | floor ms | floor ÷ time |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in keys:
        for v in variants:
            r = latest.get((*key, v))
            if r is None:
                continue
            floor = r.get("floor_ms")
            lines.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {v} | {_ms(r['ms'])} ({_ms(r['ms_min'])}–{_ms(r['ms_max'])}) "
                f"| {r.get('rel_err', math.nan):.1e} | {r.get('max_abs_diff_vs_eager', math.nan):.1e} "
                f"| {r.get('setup_s', math.nan):.1f} | {r['flops'] / 1e9:,.1f} | {r['min_bytes'] / 1e6:,.1f} "
                f"| {r['tflops']:.1f} | {_pct(r.get('compute_frac'))} | {r['gbps']:,.0f} | {_pct(r.get('bw_frac'))} "
                f"| {'—' if floor is None else _ms(floor)} | {'—' if floor is None else _pct(floor / r['ms'])} |"
            )
    return lines


def _case_table(rows: list[dict], label: str, shape_head: str, shape_key: str, order: Sequence[str]) -> list[str]:
    present = [v for v in order if any(v in r["variants"] for r in rows)]
    baseline = next((v for v in (SEPARATE, CUDNN, TIMM_MIXER) if v in present), present[0])
    gemm = next((v for v in (TORCH_GEMM, TIMM_MIXER_COMPILED) if v in present), None)
    best = [v for v in (TRI, TRI_TUNED) if v in present] or [v for v in (ONE_CONV,) if v in present]
    head = [label] + (["kind"] if label == "group" else []) + [shape_head, "dtype"] + [f"{v} (ms)" for v in present]
    ratios = [f"{baseline} ÷ {v}" for v in best] + ([f"{v} ÷ {gemm}" for v in best] if gemm else [])
    roof = ["triton TFLOP/s (% peak)", "GB/s (% BW)", "floor ÷ time", "triton rel err"] if TRI in present else []
    lines = ["| network | " + " | ".join(head + ratios + roof) + " |",
             "| --- | " + " | ".join(["---"] * (len(head) - len(present)) + ["---:"] * (len(present) + len(ratios) + len(roof))) + " |"]  # fmt: skip
    latest = _latest(rows, lambda r: (r["network"], r[label], r["dtype"], r["batch"]))
    for r in latest.values():
        v = r["variants"]
        cells = [r["network"], r[label]] + ([r["kind"]] if label == "group" else []) + [r[shape_key], r["dtype"]]
        cells += [_ms(v[n]["ms"]) if n in v else "—" for n in present]
        for b in best:
            cells.append(f"{v[baseline]['ms'] / v[b]['ms']:.2f}×" if b in v and baseline in v else "—")
        if gemm:
            for b in best:
                cells.append(f"{v[b]['ms'] / v[gemm]['ms']:.2f}×" if b in v and gemm in v else "—")
        if roof:
            t = v.get(TRI)
            if t is None:
                cells += ["—"] * 4
            else:
                floor = t.get("floor_ms")
                cells += [f"{t['tflops']:.1f} ({_pct(t.get('compute_frac'))})", f"{t['gbps']:,.0f} ({_pct(t.get('bw_frac'))})",
                          "—" if floor is None else _pct(floor / t["ms"]), f"{t.get('rel_err', math.nan):.1e}"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


# --- main ---------------------------------------------------------------------------------------


def _shape(text: str) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in text.lower().split("x"))
    return c, h, w


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--stage", choices=["first", "second", "all"], default="all",
                        help="GPU: which part of the plan (see the docstring; default all)")  # fmt: skip
    parser.add_argument("--budget", type=float, metavar="SECONDS",
                        help="skip items that would not finish this many seconds after the process started")  # fmt: skip
    parser.add_argument("--resume", type=Path, metavar="JSON",
                        help="keep this results file's rows, measure only what it lacks, write both")  # fmt: skip
    parser.add_argument("--nets", nargs="+", choices=list(NETWORKS))
    parser.add_argument("--batches", nargs="+", type=int)
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float16", "bfloat16"],
                        help="the first is the main one (GPU default: float16, then bfloat16)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per measurement (GPU 7, CPU 5)")
    parser.add_argument("--round-ms", type=float, default=None,
                        help="about how long one round of back-to-back calls takes (GPU 25, CPU 100)")  # fmt: skip
    parser.add_argument("--input", type=_shape, metavar="CxHxW", help="another input size (tests, the interpreter)")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument("--skip-groups", action="store_true", help="leave out the groups and convs tables")
    parser.add_argument("--triton", action="store_true",
                        help="CPU: run the Triton variants in Triton's interpreter (tiny shapes only)")  # fmt: skip
    parser.add_argument("--interpreter-macs", type=float, default=2e8,
                        help="CPU with --triton: the most multiply-adds a Triton variant may take")  # fmt: skip
    parser.add_argument("--out", type=Path, help="JSON file (default OUT_DIR/DEVICE-DATE.json)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the default JSON file goes (bench/results)")
    parser.add_argument("--markdown", type=Path, metavar="JSON", help="print a results file as markdown tables, run nothing")
    parser.add_argument("--dry-run", action="store_true",
                        help="build every item's objects on the meta device (no CUDA, no timing), then stop")  # fmt: skip
    args = parser.parse_args(argv)
    gpu = args.device == "cuda"
    args.nets = args.nets or list(NETWORKS)
    args.batches = args.batches or ([1, 32, 256] if gpu else [1, 8])
    args.dtypes = args.dtypes or (["float16", "bfloat16"] if gpu else ["float32"])
    if args.dry_run:
        args.budget = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))), end="")
        return 0
    gpu = args.device == "cuda"
    if args.triton and not gpu:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel is defined
    if gpu and not args.dry_run and not torch.cuda.is_available():
        print("bench.py: error: --device cuda, and torch sees no CUDA device", file=sys.stderr)
        return 3
    torch.backends.cudnn.benchmark = True
    if args.dry_run:
        device_name = "dry run (meta device)"
    elif gpu:
        device_name = torch.cuda.get_device_name()
    else:
        device_name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    fp32 = fp32_settings() if gpu else {}
    run_info = {
        "device": device_name, "date": datetime.date.today().isoformat(), **_versions(), "stage": args.stage,
        "budget_s": args.budget, "argv": sys.argv[1:],
        "settings": {"cudnn.benchmark": True, "inductor.freezing": gpu, "fp32": fp32,
                     "channels_last": True, "no_grad": True},
    }  # fmt: skip
    if gpu and not args.dry_run:
        run_info["peak"] = peak_of(device_name)
        run_info["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        run_info["triton_cache"] = os.environ.get("TRITON_CACHE_DIR")
    resumed = json.loads(args.resume.read_text(encoding="utf-8")) if args.resume else None
    if resumed is not None and resumed.get("schema") != SCHEMA:
        print(f"bench.py: error: {args.resume} is not a schema-{SCHEMA} results file", file=sys.stderr)
        return 2
    slug = "".join(c if c.isalnum() else "-" for c in device_name).strip("-").lower()
    out = None if args.dry_run else (args.out or args.out_dir / f"{slug}-{run_info['date']}.json")
    results = Results(out, run_info, resumed)
    bench = Bench(args, results)
    signal.signal(signal.SIGTERM, _interrupted)
    status = 0
    try:
        bench.execute()
    except (KeyboardInterrupt, CudaBroken) as err:
        results.info["interrupted"] = str(err) or type(err).__name__
        results.save()
        status = 124 if isinstance(err, KeyboardInterrupt) else 1
    if args.dry_run:
        print("\n".join(f"  prepared {p}" for p in bench.prepared))
        print(f"bench.py: dry run: {len(bench.prepared)} items built on the meta device in {bench.elapsed():.0f} s")
        return status
    results.save()
    print()
    print(markdown(results.data), end="")
    print("\nThe networks again (the output's tail is what a device call returns):\n")
    print(markdown(results.data, networks_only=True), end="")
    d = results.data
    print(f"bench.py: run {results.run}: {sum(r['run'] == results.run for r in d['networks'])} network rows, "
          f"{sum(r['run'] == results.run for r in d['groups'])} group rows, "
          f"{sum(r['run'] == results.run for r in d['convs'])} conv rows; "
          f"{sum(s['run'] == results.run for s in d['skipped'])} skipped, "
          f"{sum(e['run'] == results.run for e in d['errors'])} errors; {bench.elapsed():.0f} s; wrote {out}")  # fmt: skip
    return status


if __name__ == "__main__":
    sys.exit(main())
