"""torch.compile on the CPU: incdsl's fused torch path against the reference, both compiled.

    python bench/compiled.py                          # GoogLeNet, batches 1 and 8, 21 rounds
    python bench/compiled.py --nets googlenet inception_v3 --batches 1 8 --rounds 15 --threads 1

For each network and batch, four variants from the same weights (the reference's
initialisation with its batch norms' statistics and affine terms drawn at random):
``eager (reference)`` — torchvision's model; ``torch.compile (reference)``; ``incdsl
fuse=True`` — ``incdsl.compile(spec, fuse=True)``, batch norm folded and each group of
parallel 1×1 convs one conv (the fusion Inductor does not do); and ``torch.compile (incdsl
fuse=True)``. Everything runs in eval mode under ``no_grad`` on channels-last inputs;
both compiled variants are compiled afresh for each batch (``torch._dynamo.reset()``,
``dynamic=False``) with Inductor's freezing on, which folds the weights into constants.

Each figure is the median of single calls, the variants taking turns within each round
so that the machine's load falls on all alike (after a warm-up of three calls each).
For the compiled incdsl model the script also records the graphs Dynamo made of one
forward and its graph breaks (``torch._dynamo.explain``), and for both compiled models
how many graphs Inductor compiled after the first call (recompilations). Prints a table and writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import incdsl
from bench import NETWORKS, randomise_batch_norms  # bench/bench.py: the references and their weights

RESULTS = Path(__file__).resolve().parent / "results"
EAGER, COMPILED, FUSED, FUSED_COMPILED = (
    "eager (reference)", "torch.compile (reference)", "incdsl fuse=True", "torch.compile (incdsl fuse=True)",
)


def models(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the reference, incdsl's fused model with its weights), eval mode, channels-last."""
    spec, build = NETWORKS[name]
    reference = randomise_batch_norms(build().eval())
    net = incdsl.load(spec)
    ours = incdsl.compile(net, fuse=True)
    loaded = ours.load_state_dict(reference.state_dict(), strict=False)
    heads = tuple(f"{h.name}." for h in net.aux)  # the reference is built without its aux heads
    missing = [k for k in loaded.missing_keys if not k.startswith(heads)]
    assert not missing and not loaded.unexpected_keys, (missing, loaded.unexpected_keys)
    return reference.to(memory_format=torch.channels_last), ours.eval().to(memory_format=torch.channels_last)


def compiled(model: torch.nn.Module, graphs: list[int]) -> torch.nn.Module:
    """``torch.compile`` with Inductor (freezing on), counting in ``graphs`` each graph it compiles."""
    import torch._inductor.config
    from torch._inductor.compile_fx import compile_fx

    torch._inductor.config.freezing = True

    def inductor(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable:
        graphs.append(len(gm.graph.nodes))
        return compile_fx(gm, example_inputs)

    return torch.compile(copy.deepcopy(model), backend=inductor, dynamic=False)


def measure(name: str, batch: int, rounds: int) -> list[dict[str, Any]]:
    reference, ours = models(name)
    gen = torch.Generator().manual_seed(1000 + batch)
    x = torch.randn(batch, *incdsl.load(NETWORKS[name][0]).input_shape, generator=gen).contiguous(memory_format=torch.channels_last)
    variants: dict[str, torch.nn.Module] = {EAGER: reference, FUSED: ours}
    setup: dict[str, float] = {}
    info: dict[str, Any] = {}
    graphs: dict[str, list[int]] = {COMPILED: [], FUSED_COMPILED: []}
    with torch.no_grad():
        explained = torch._dynamo.explain(ours)(x)
        info = {"graphs": explained.graph_count, "graph_breaks": explained.graph_break_count}
        expected = reference(x)
        torch._dynamo.reset()
        for variant, model in ((COMPILED, reference), (FUSED_COMPILED, ours)):
            start = time.perf_counter()
            variants[variant] = compiled(model, graphs[variant])
            variants[variant](x)  # compiles
            setup[variant] = time.perf_counter() - start
        first = {v: len(g) for v, g in graphs.items()}
        outputs = {v: m(x) for v, m in variants.items()}
        for _ in range(2):
            for model in variants.values():
                model(x)
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for variant, model in variants.items():
                start = time.perf_counter()
                model(x)
                times[variant].append((time.perf_counter() - start) * 1e3)
    recompiled = {v: len(g) - first[v] for v, g in graphs.items()}
    info["recompilations"] = recompiled[FUSED_COMPILED]
    eager_ms = statistics.median(times[EAGER])
    compiled_ms = statistics.median(times[COMPILED])
    rows = []
    for variant, ms in times.items():
        median = statistics.median(ms)
        row = {
            "network": name, "batch": batch, "variant": variant, "ms": round(median, 3),
            "ms_min": round(min(ms), 3), "ms_max": round(max(ms), 3), "rounds": rounds,
            "vs_eager_reference": round(eager_ms / median, 3), "vs_compiled_reference": round(compiled_ms / median, 3),
            # relative to the logits' scale: random weights and batch-norm statistics make it large
            "max_rel_diff_vs_eager_reference": ((outputs[variant] - expected).abs().max() / expected.abs().max()).item(),
        }
        if variant in setup:
            row["compile_s"] = round(setup[variant], 1)
            row["recompilations"] = recompiled[variant]
        if variant == FUSED_COMPILED:
            row.update(info)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'network':<13}{'batch':>5}  {'variant':<34}{'ms':>9}  {'min–max':>17}  {'× eager ref':>11}  {'× compiled ref':>14}  {'rel. diff':>10}"
    lines = [head, "─" * len(head)]
    for r in rows:
        span = f"{r['ms_min']:.1f}–{r['ms_max']:.1f}"
        lines.append(
            f"{r['network']:<13}{r['batch']:>5}  {r['variant']:<34}{r['ms']:>9.2f}  {span:>17}  "
            f"{r['vs_eager_reference']:>10.2f}×  {r['vs_compiled_reference']:>13.2f}×  {r['max_rel_diff_vs_eager_reference']:>10.1e}"
        )
    for r in rows:
        if r["variant"] == FUSED_COMPILED:
            lines.append(
                f"{r['network']} batch {r['batch']}: torch.compile of incdsl fuse=True: {r['graphs']} graph, "
                f"{r['graph_breaks']} graph breaks, {r['recompilations']} recompilations after the first call"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=["googlenet"], choices=sorted(NETWORKS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's, one per core)")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/compiled-MACHINE-DATE.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.nets:
        for batch in args.batches:
            rows += measure(name, batch, args.rounds)
            print(table(rows[-4:]), flush=True)
    print()
    print(table(rows))
    date = datetime.date.today().isoformat()
    results = {
        "date": date,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "command": "python bench/compiled.py " + " ".join(
            [f"--nets {' '.join(args.nets)}", f"--batches {' '.join(map(str, args.batches))}", f"--rounds {args.rounds}"]
            + ([f"--threads {args.threads}"] if args.threads else [])
        ),
        "rows": rows,
    }
    out = args.out or RESULTS / f"compiled-{platform.machine()}-{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
