"""The ahead-of-time entry points, which start from a spec and so run the passes
(:mod:`.binaries` is the library they share, and takes passed networks):

- :func:`cross_compile`: a network's kernels compiled for one target and exported
  beside the module ``incdsl compile --backend triton --target`` writes;
- the CI check, ``python -m incdsl.compiler.triton.aot`` (``make gpu-check``): every
  kernel the bundled networks launch, for every kernel set, batch, precision and
  target, compiled and read from its SASS on a machine without a GPU — which is
  where shared-memory overflows, register spills, a missing tensor-core path and
  scalar stores show before a GPU ever runs the code. The options below choose a
  subset. One row per binary: the columns and the rules a row fails by are in
  :mod:`.binaries`.

The names of :mod:`.binaries` that callers imported from here are re-exported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import incdsl
from incdsl import ir

from ..options import DEFAULT_TRITON_KERNELS, TRITON_KERNELS
from ..pipeline import passed_for_triton
from .binaries import (
    MODES,
    PRECISIONS,
    Check,
    Machine,
    Row,
    _precision,
    check_plan,
    describe,
    inspect,
    narrowest_store,
    scalar_stores,
    summary,
    table,
)
from .launch import interpreted
from .targets import TARGETS, Target

__all__ = [
    "MODES", "NETWORKS", "PRECISIONS", "Check", "Machine", "Row", "_precision", "check_plan", "check_plans",
    "cross_compile", "describe", "inspect", "main", "narrowest_store", "scalar_stores", "summary", "table",
]  # fmt: skip

NETWORKS = ("googlenet", "inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2")


def check_plans(
    check: Check, net: ir.Network, kernel_sets: list[tuple[str, ...]], batches: list[int], precisions: list[str],
    progress: Callable[[str], None] = lambda _: None,
) -> None:  # fmt: skip
    """Run ``net`` through the passes for each kernel set and compile its plans' launches for
    ``check``'s target."""
    for kernels in kernel_sets:
        check_plan(check, net, passed_for_triton(net, kernels), kernels, batches, precisions, progress)


def cross_compile(
    net: ir.Network, kernels: tuple[str, ...], target: Target, batches: list[int], precisions: list[str], dest: Path,
    passed: ir.Network | None = None,
) -> list[Row]:  # fmt: skip
    """Compile the default config of every launch ``net``'s module makes at ``batches`` for
    ``target`` and export the binaries to ``dest`` (``incdsl compile --target``); ``passed``:
    ``net`` after the passes for ``kernels`` when the caller has it already."""
    from .precompiled import export

    check = Check(target, "default")
    check_plan(check, net, passed or passed_for_triton(net, kernels), kernels, batches, precisions)
    about = {"network": net.name, "target": target.name, "batches": batches, "precisions": precisions}
    export(check.compiled.items(), dest, about)
    return list(check.rows.values())


def _summary_text(s: dict[str, Any]) -> str:
    lines = [f"ahead-of-time check, Triton {s['triton']}: {s['wall_seconds']} s"]
    for name, t in s["targets"].items():
        lines.append(
            f"  {name}: {t['binaries']} binaries, {t['failing']} failing; max shared {t['max_shared']:,} B, "
            f"max registers {t['max_registers']}, {t['spilling']} spilling; 16-bit dots on tensor cores "
            f"{t['16-bit dots on tensor cores']} (wgmma {t['16-bit dots on wgmma']}); GEMMs through TMA "
            f"{t['GEMMs through TMA']}; 128-bit stores where aligned {t['128-bit stores where aligned']}; "
            f"{t['one block per SM']} at one block per SM, {t['never a full wave']} never filling the SMs once (waves < 1 at every checked batch); "
            f"{t['compile seconds']} s compiling"
        )
    return "\n".join(lines)


def _check_task(task: tuple[str, str, list[str], list[int], str]) -> tuple[list[Row], dict[str, dict[str, str]]]:
    """One target and precision, every network, kernel set and batch (a worker process's share)."""
    target, precision, nets, batches, mode = task
    check = Check(TARGETS[target], mode)
    for spec in nets:
        check_plans(check, incdsl.load(spec), [DEFAULT_TRITON_KERNELS, TRITON_KERNELS], batches, [precision],
                    lambda text: print(f"  {text}", file=sys.stderr, flush=True))  # fmt: skip
    return list(check.rows.values()), check.compiled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incdsl.compiler.triton.aot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--targets", default="sm_90,sm_80", help="comma-separated (default sm_90,sm_80)")
    parser.add_argument("--nets", default=",".join(NETWORKS), help="bundled specs (default: the family)")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="fp16,bf16,tf32,ieee (fp32 in IEEE)")
    parser.add_argument("--subset", action="store_true", help="one launch of each kind: default, widest, split-K config")
    parser.add_argument("--export", type=Path, metavar="DIR", help="copy every binary to DIR/<target>/ (to carry)")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiling processes (default: one per CPU)")
    args = parser.parse_args(argv)
    if interpreted():
        parser.error("unset TRITON_INTERPRET: the check compiles the kernels for real GPUs")
    batches = [int(b) for b in args.batches.split(",")]
    tasks = [
        (target, precision, args.nets.split(","), batches, "subset" if args.subset else "all")
        for target in args.targets.split(",")
        for precision in args.precisions.split(",")
    ]
    start = time.perf_counter()
    rows: list[Row] = []
    compiled: dict[str, dict[str, dict[str, str]]] = {}
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(tasks)))) as pool:
        for (target, *_), (done_rows, done_compiled) in zip(tasks, pool.map(_check_task, tasks), strict=True):
            rows += done_rows
            compiled.setdefault(target, {}).update(done_compiled)
    if args.export:
        from .precompiled import export

        for target, kernels in compiled.items():
            about = {"target": target, "networks": args.nets.split(","), "batches": batches}
            export(kernels.items(), args.export / target, about)
    result = summary(rows, time.perf_counter() - start)
    if not args.quiet:
        print(table(rows))
    print(_summary_text(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": result, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    failing = sum(t["failing"] for t in result["targets"].values())
    if failing:
        print(f"FAILED: {failing} binaries outside their target's limits", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
