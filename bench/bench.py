"""Benchmark incdsl's backends against the reference implementations.

    python bench/bench.py                      # CPU: fp32, torch backends vs torchvision/timm eager
    python bench/bench.py --device cuda        # GPU: fp16 and bf16, channels-last, batches 1/32/256,
                                               # eager, torch.compile (default, max-autotune), incdsl
                                               # torch --fuse, incdsl triton; and every fused group alone

Prints a table and writes JSON (with the device's name) to bench/results/.
Times are medians of repeated runs after warm-up, measured in this one run;
compare ratios within a run, not across machines.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import incdsl
from incdsl import ir
from incdsl.compiler.pipeline import inference_passes, run_passes

RESULTS = Path(__file__).resolve().parent / "results"

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


def timer(device: str, warmup: int, reps: int) -> Callable[[Callable[[], object]], float]:
    def measure(fn: Callable[[], object]) -> float:
        """Median milliseconds per call."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return measure


def _variants(
    name: str, spec: str, device: str, dtype: torch.dtype, compile_modes: bool, triton: bool
) -> dict[str, torch.nn.Module]:
    spec_net = incdsl.load(spec)
    reference = NETWORKS[name][1]()
    models: dict[str, torch.nn.Module] = {"eager (reference)": reference}
    if compile_modes:
        models["torch.compile default"] = torch.compile(NETWORKS[name][1]())
        models["torch.compile max-autotune"] = torch.compile(NETWORKS[name][1](), mode="max-autotune")
    models["incdsl torch"] = incdsl.compile(spec_net)
    models["incdsl torch --fuse"] = incdsl.compile(spec_net, fuse=True)
    if triton:
        models["incdsl triton"] = incdsl.compile(spec_net, backend="triton")
        models["incdsl triton (all kernels)"] = incdsl.compile(spec_net, backend="triton", kernels="all")
        if device == "cuda":
            models["incdsl triton + CUDA graphs"] = incdsl.compile(spec_net, backend="triton", cuda_graphs=True)
    state = reference.state_dict()
    for label, model in models.items():
        if label.startswith("incdsl"):
            model.load_state_dict(state, strict=False)  # timm/torchvision extras (aux) aside
        elif label.startswith("torch.compile"):
            model._orig_mod.load_state_dict(state)  # type: ignore[union-attr]
        model.eval().to(device=device, dtype=dtype, memory_format=torch.channels_last)
    return models


def bench_networks(args, measure) -> list[dict]:
    rows = []
    for name in args.nets:
        spec = NETWORKS[name][0]
        shape = incdsl.load(spec).input_shape
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            models = _variants(name, spec, args.device, dtype, args.device == "cuda" and not args.no_compile, args.triton)
            for batch in args.batches:
                x = torch.randn(batch, *shape, device=args.device, dtype=dtype).contiguous(
                    memory_format=torch.channels_last
                )
                with torch.no_grad():
                    expected = models["eager (reference)"](x).float()
                    for label, model in models.items():
                        diff = (model(x).float() - expected).abs().max().item()
                        ms = measure(functools.partial(model, x))
                        rows.append(
                            {"network": name, "dtype": dtype_name, "batch": batch, "variant": label, "ms": ms,
                             "max_abs_diff_vs_eager": diff}
                        )  # fmt: skip
                        print(f"{name:<20} {dtype_name:<8} {batch:>4}  {label:<28} {ms:9.3f} ms   diff {diff:.2e}", flush=True)
    return rows


def _time_group(
    measure, device: str, dtype: torch.dtype, batch: int, cin: int, h: int, w: int, widths: list[int], triton: bool
) -> dict[str, float]:
    from incdsl.compiler.triton.kernels import conv_nhwc, pack_weight

    opts = {"device": device, "dtype": dtype}
    x = torch.randn(batch, cin, h, w, **opts).contiguous(memory_format=torch.channels_last)
    ws = [torch.randn(c, cin, 1, 1, **opts) / cin**0.5 for c in widths]
    bs = [torch.randn(c, **opts) for c in widths]
    weight, bias = torch.cat(ws), torch.cat(bs)
    floor = torch.zeros_like(bias)
    packed = pack_weight(weight)
    outs = [torch.empty(batch, c, h, w, **opts).contiguous(memory_format=torch.channels_last) for c in widths]
    a2d = x.permute(0, 2, 3, 1).reshape(-1, cin)
    times = {
        "separate convs": measure(lambda: [F.relu(F.conv2d(x, wi, bi)) for wi, bi in zip(ws, bs, strict=True)]),
        "one conv (torch --fuse)": measure(lambda: F.relu(F.conv2d(x, weight, bias))),
        "one GEMM (addmm, cuBLAS on GPU)": measure(lambda: F.relu(torch.addmm(bias, a2d, packed))),
    }
    if triton:
        times["triton fused"] = measure(lambda: conv_nhwc(x, packed, bias, floor, outs))
    return times


def bench_groups(args, measure) -> list[dict]:
    """Each fused 1×1 group alone: its separate convs, one conv, one GEMM (cuBLAS on a GPU) and the Triton kernel."""
    rows = []
    for name in args.nets:
        net = incdsl.load(NETWORKS[name][0])
        passed = run_passes(net, inference_passes("torch"))
        groups = [n for n in passed.nodes if isinstance(n.attrs, ir.Conv1x1GroupAttrs)]
        seen: set[tuple] = set()
        for group in groups:
            cin = passed.node(group.inputs[0]).shape[0]
            _, h, w = group.shape
            widths = [m.conv.out_channels for m in group.attrs.members]
            for dtype_name in args.dtypes:
                dtype = getattr(torch, dtype_name)
                for batch in args.batches:
                    key = (cin, h, w, tuple(widths), dtype_name, batch)
                    if key in seen:
                        continue
                    seen.add(key)
                    times = _time_group(measure, args.device, dtype, batch, cin, h, w, widths, args.triton)
                    gemm = f"[{batch}·{h}·{w}, {cin}]×[{cin}, {sum(widths)}]"
                    row = {"network": name, "group": group.name, "gemm": gemm, "dtype": dtype_name, "batch": batch, **{k: v for k, v in times.items()}}
                    rows.append(row)
                    print(f"{name:<20} {group.name:<32} {gemm:<28} {dtype_name:<8} " + "  ".join(f"{k} {v:.3f}" for k, v in times.items()), flush=True)
    return rows


def markdown(results: dict) -> str:
    """The results as the tables BENCHMARKS.md quotes: networks (ms, and speed-up over eager) and groups."""
    lines = [f"Device: {results['device']}, torch {results['torch']}, {results['date']}.", ""]
    nets = results["networks"]
    variants = list(dict.fromkeys(r["variant"] for r in nets))
    lines += [
        "| network | dtype | batch | " + " | ".join(variants) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in variants) + " |",
    ]
    for key in dict.fromkeys((r["network"], r["dtype"], r["batch"]) for r in nets):
        ms = {r["variant"]: r["ms"] for r in nets if (r["network"], r["dtype"], r["batch"]) == key}
        eager = ms["eager (reference)"]
        cells = [f"{ms[v]:.2f} ms ({eager / ms[v]:.2f}×)" if v in ms else "—" for v in variants]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    if results["groups"]:
        timed = [k for k in results["groups"][0] if k not in ("network", "group", "gemm", "dtype", "batch")]
        lines += [
            "",
            "| network | group | GEMM | dtype | " + " | ".join(f"{k} (ms)" for k in timed) + " | separate ÷ fused | fused ÷ GEMM |",
            "| --- | --- | --- | --- | " + " | ".join("---:" for _ in timed) + " | ---: | ---: |",
        ]
        fused = "triton fused" if "triton fused" in timed else "one conv (torch --fuse)"
        gemm = "one GEMM (addmm, cuBLAS on GPU)"
        for g in results["groups"]:
            cells = " | ".join(f"{g[k]:.3f}" for k in timed)
            ratios = f"{g['separate convs'] / g[fused]:.2f}× | {g[fused] / g[gemm]:.2f}×"
            lines.append(f"| {g['network']} | {g['group']} | {g['gemm']} | {g['dtype']} | {cells} | {ratios} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--nets", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--batches", nargs="+", type=int)
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (it takes minutes)")
    parser.add_argument("--skip-groups", action="store_true")
    parser.add_argument("--out", type=Path, help="JSON file (default OUT_DIR/DEVICE-DATE.json)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the default JSON file goes (bench/results)")
    parser.add_argument(
        "--triton", action="store_true", help="time the triton backend on the CPU too (with TRITON_INTERPRET=1: slow)"
    )
    parser.add_argument("--markdown", type=Path, metavar="JSON", help="print a results file as markdown tables, run nothing")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))), end="")
        return
    gpu = args.device == "cuda"
    args.triton = args.triton or gpu
    args.batches = args.batches or ([1, 32, 256] if gpu else [1, 8])
    args.dtypes = args.dtypes or (["float16", "bfloat16"] if gpu else ["float32"])
    measure = timer(args.device, warmup=10 if gpu else 2, reps=args.reps or (50 if gpu else 5))
    device_name = torch.cuda.get_device_name() if gpu else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    torch.backends.cudnn.benchmark = True
    results = {
        "device": device_name,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "networks": bench_networks(args, measure),
        "groups": [] if args.skip_groups else bench_groups(args, measure),
    }
    slug = "".join(c if c.isalnum() else "-" for c in device_name).strip("-").lower()
    out = args.out or args.out_dir / f"{slug}-{results['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print()
    print(markdown(results), end="")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
