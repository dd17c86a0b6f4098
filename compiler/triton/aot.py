"""The ahead-of-time check: every kernel the bundled networks launch, compiled
for real GPU targets with Triton's own compiler and the ptxas it ships, on a
machine without a GPU — which is where shared-memory overflows, register
spills and a missing tensor-core path show before a GPU ever runs the code.

For each network, kernel set, batch, dtype and target it builds the network's
launch plan on the meta device (the same code that runs on a GPU, so the
specialisations are exactly the ones a GPU would compile) and compiles every
config the tuner may pick for each launch. Each distinct binary is one row:
shared memory, registers, stack (spills), whether its dot uses ``wgmma``
(sm_90) or ``mma.sync`` (sm_80), whether it loads through TMA, compile time.

A row fails when its shared memory exceeds the target's, when it spills,
when a 16-bit dot misses the target's tensor-core instruction, or when the
pruning rule's estimate (:func:`.tuning.estimate_shared`) is below what the
compiler reports — then the runtime could pick a config this check never
passed. ``python -m incdsl.compiler.triton.aot --help``; ``make gpu-check``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if os.environ.get("TRITON_INTERPRET") == "1":  # kernels defined under the interpreter cannot be compiled
    sys.exit("incdsl aot: unset TRITON_INTERPRET: the check compiles the kernels for real GPUs")

import torch  # noqa: E402
import triton  # noqa: E402

import incdsl  # noqa: E402

from ..pipeline import DEFAULT_TRITON_KERNELS, TRITON_KERNELS  # noqa: E402
from .launch import Config, Launch, compiling_for  # noqa: E402
from .targets import TARGETS, Target  # noqa: E402
from .tuning import Shape, candidates, default_config, estimate_shared  # noqa: E402

NETWORKS = ("googlenet", "inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2")

#: The dots the kernels run: fp32 is TF32 by default (torch's setting for convs), IEEE when asked.
PRECISIONS: dict[str, tuple[torch.dtype, str]] = {
    "fp16": (torch.float16, "tf32"),
    "bf16": (torch.bfloat16, "tf32"),
    "tf32": (torch.float32, "tf32"),
    "ieee": (torch.float32, "ieee"),
}

_KIND_OF_KERNEL = {"_gemm_kernel": "gemm", "_reduce_kernel": "reduce", "_conv_kernel": "conv"}


@dataclass
class Row:
    """One compiled binary."""

    target: str
    kernel: str  # gemm, reduce, conv, pool
    variant: str  # precision and the constexprs that make it a distinct specialisation
    config: str
    shared: int
    estimate: int
    registers: int
    stack: int
    wgmma: bool
    mma: bool
    tma: bool
    seconds: float
    users: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _cuobjdump() -> str:
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")


def _resources(cubin: bytes) -> tuple[int, int]:
    """(registers, stack bytes) of a cubin, as cuobjdump reports them."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([_cuobjdump(), "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", text)
    if found is None:
        raise RuntimeError(f"cuobjdump gave no resource usage:\n{text}")
    return int(found[1]), int(found[2]) + int(found[3])


def _variant(launch: Launch, precision: str) -> tuple[str, str]:
    """(kernel kind, the flags that distinguish its specialisation)."""
    args = launch.args
    kind = _KIND_OF_KERNEL[launch.kernel.__name__]
    flags = [precision]
    if kind == "gemm":
        flags += [f for f, on in (("tma", args["TMA"]), ("residual", args["RESIDUAL"]), ("split-k", args["PARTIAL"])) if on]
    elif kind == "reduce":
        flags += ["residual"] if args["RESIDUAL"] else []
    elif args["POOL"]:
        kind = "pool"
        flags.append(f"{('max', 'avg', 'avg-pad')[args['POOL'] - 1]}{args['PK']}")
    else:
        flags.append(f"{args['KH']}x{args['KW']}/{args['SH']}" + (" c-tiled" if args["C_TILED"] else ""))
    flags.append(f"align{args['ALIGN']}")
    return kind, " ".join(flags)


class Check:
    """Compiles launches for one target and collects a row per distinct binary."""

    def __init__(self, target: Target, subset: bool) -> None:
        self.target = target
        self.subset = subset
        self.rows: dict[str, Row] = {}
        self.seen: set[tuple[str, str]] = set()  # (variant, config) compiled in subset mode
        self.user = ""

    def choose(self, shape: Shape, make: Callable[[Config], list[Launch]], label: str) -> list[Launch]:
        configs = candidates(shape, self.target)
        default = default_config(shape, self.target)
        if self.subset:  # the default config and the one with the most shared memory, once per variant
            widest = max(configs, key=lambda c: estimate_shared(c, shape))
            configs = [default] if widest == default else [default, widest]
        for config in configs:
            for launch in make(config):
                key = (" ".join(_variant(launch, shape.precision)), str(config))
                if self.subset and key in self.seen:
                    continue
                self.seen.add(key)
                self.compile(launch, shape, config, label)
        return make(default)

    def compile(self, launch: Launch, shape: Shape, config: Config, label: str) -> None:
        start = time.perf_counter()
        compiled = launch.compile()
        seconds = time.perf_counter() - start
        row = self.rows.get(compiled.hash)
        if row is None:
            kind, variant = _variant(launch, shape.precision)
            registers, stack = _resources(compiled.asm["cubin"])
            ptx = compiled.asm["ptx"]
            if kind == "reduce":
                estimate, shown = 0, f"{launch.args['BLOCK_M']}×{launch.args['BLOCK_N']} w{launch.options['num_warps']}"
            else:
                estimate, shown = estimate_shared(config, shape), str(config)
            row = self.rows[compiled.hash] = Row(
                self.target.name, kind, variant, shown, compiled.metadata.shared, estimate, registers, stack,
                "wgmma.mma_async" in ptx, "mma.sync" in ptx, "cp.async.bulk.tensor" in ptx, seconds,
            )  # fmt: skip
            row.problems = self.problems(row, shape.itemsize)
        user = f"{self.user}{label}"
        if len(row.users) < 3 and user not in row.users:
            row.users.append(user)

    def problems(self, row: Row, itemsize: int) -> list[str]:
        found = []
        if row.shared > self.target.max_shared:
            found.append(f"shared {row.shared:,} > {self.target.max_shared:,}")
        if row.stack:
            found.append(f"spills ({row.stack} bytes of stack)")
        if row.kernel != "reduce":
            if itemsize == 2 and self.target.has_wgmma and not row.wgmma:
                found.append("no wgmma")
            if itemsize == 2 and not self.target.has_wgmma and not row.mma:
                found.append("no mma.sync")
            if row.shared > row.estimate:
                found.append(f"estimate {row.estimate:,} < shared {row.shared:,}")
        return found


@contextlib.contextmanager
def _precision(mode: str) -> Iterator[None]:
    """fp32 dots in ``mode`` (the kernels follow torch's cuDNN convolution setting)."""
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = mode
    try:
        yield
    finally:
        conv.fp32_precision = before


def check_target(
    target: Target, nets: list[str], kernel_sets: list[tuple[str, ...]], batches: list[int], precisions: list[str],
    subset: bool, progress: Callable[[str], None],
) -> list[Row]:  # fmt: skip
    """Build every plan on the meta device for ``target`` and compile its launches."""
    from .module import TritonNetwork, passed_for_triton

    check = Check(target, subset)
    for name in nets:
        net = incdsl.load(name)
        for kernels in kernel_sets:
            passed = passed_for_triton(net, kernels)
            with torch.device("meta"):
                model = TritonNetwork(net, passed, kernels, cuda_graphs=False).eval()
            for precision in precisions:
                dtype, mode = PRECISIONS[precision]
                model.to(dtype)
                for batch in batches:
                    progress(f"{target.name} {name} [{','.join(kernels)}] {precision} batch {batch}")
                    check.user = f"{name}:"
                    x = torch.empty(batch, *net.input_shape, device="meta", dtype=dtype)
                    with _precision(mode), compiling_for(target.arch), torch.no_grad():
                        model._prepare()
                        model.build_plan(x, check.choose, target)
    return list(check.rows.values())


def table(rows: list[Row]) -> str:
    """One line per binary; problems at the end of the line."""
    head = f"{'target':6} {'kernel':6} {'variant':34} {'config':26} {'shared':>8} {'regs':>4} {'stack':>5} {'tc':6} {'tma':3} {'s':>5}  users"
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r.target, r.kernel, r.variant, r.config)):
        tc = "wgmma" if r.wgmma else "mma" if r.mma else "fma"
        flag = ("  FAIL: " + "; ".join(r.problems)) if r.problems else ""
        lines.append(
            f"{r.target:6} {r.kernel:6} {r.variant:34} {r.config:26} {r.shared:>8,} {r.registers:>4} {r.stack:>5} "
            f"{tc:6} {'yes' if r.tma else 'no':3} {r.seconds:>5.1f}  {', '.join(r.users)}{flag}"
        )
    return "\n".join(lines)


def summary(rows: list[Row], wall: float) -> dict[str, Any]:
    by_target: dict[str, Any] = {}
    for name in sorted({r.target for r in rows}):
        mine = [r for r in rows if r.target == name]
        dots16 = [r for r in mine if r.kernel != "reduce" and r.variant.startswith(("fp16", "bf16"))]
        gemms = [r for r in mine if r.kernel == "gemm"]
        by_target[name] = {
            "binaries": len(mine),
            "failing": sum(1 for r in mine if r.problems),
            "max_shared": max((r.shared for r in mine), default=0),
            "max_registers": max((r.registers for r in mine), default=0),
            "spilling": sum(1 for r in mine if r.stack),
            "16-bit dots on tensor cores": f"{sum(1 for r in dots16 if r.wgmma or r.mma)}/{len(dots16)}",
            "16-bit dots on wgmma": f"{sum(1 for r in dots16 if r.wgmma)}/{len(dots16)}",
            "GEMMs through TMA": f"{sum(1 for r in gemms if r.tma)}/{len(gemms)}",
            "compile seconds": round(sum(r.seconds for r in mine), 1),
        }
    return {"triton": triton.__version__, "torch": torch.__version__, "wall_seconds": round(wall, 1), "targets": by_target}


def _summary_text(s: dict[str, Any]) -> str:
    lines = [f"ahead-of-time check, Triton {s['triton']}: {s['wall_seconds']} s"]
    for name, t in s["targets"].items():
        lines.append(
            f"  {name}: {t['binaries']} binaries, {t['failing']} failing; max shared {t['max_shared']:,} B, "
            f"max registers {t['max_registers']}, {t['spilling']} spilling; 16-bit dots on tensor cores "
            f"{t['16-bit dots on tensor cores']} (wgmma {t['16-bit dots on wgmma']}); GEMMs through TMA "
            f"{t['GEMMs through TMA']}; {t['compile seconds']} s compiling"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incdsl.compiler.triton.aot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--targets", default="sm_90,sm_80", help="comma-separated (default sm_90,sm_80)")
    parser.add_argument("--nets", default=",".join(NETWORKS), help="bundled specs (default: the family)")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="fp16,bf16,tf32,ieee (fp32 in IEEE)")
    parser.add_argument("--subset", action="store_true", help="one launch of each kind, default and widest config")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)
    kernel_sets = [DEFAULT_TRITON_KERNELS, TRITON_KERNELS]
    start = time.perf_counter()
    rows: list[Row] = []
    for name in args.targets.split(","):
        rows += check_target(
            TARGETS[name], args.nets.split(","), kernel_sets, [int(b) for b in args.batches.split(",")],
            args.precisions.split(","), args.subset, lambda text: print(f"  {text}", file=sys.stderr, flush=True),
        )  # fmt: skip
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
