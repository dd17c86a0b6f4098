"""Kernels compiled for a GPU that is not here, and what their machine code says:
the library under the ahead-of-time check (:mod:`.aot`) and ``incdsl compile
--target``. It takes a network already through the Triton backend's passes.

:func:`check_plan` builds a network's launch plan on the meta device (the same
code that runs on a GPU, so the specialisations are exactly the ones a GPU
would compile) and a :class:`Check` compiles every config the tuner may pick
for each launch, with Triton's own compiler and the ptxas it ships. Each
distinct binary is one row: shared memory, registers, stack (spills), and
from its machine code (SASS) whether its dot runs on ``wgmma`` (HGMMA, sm_90) or ``mma.sync`` (HMMA) and
whether it loads through TMA (UTMALDG); compile time. Beside the fit, what
decides its speed: the width of its narrowest global store (``STG``), how many
of its blocks an SM holds at once (from registers, shared memory and warps:
:func:`.targets.blocks_per_sm`), and the waves its grids make over the
target's SMs at the checked batches (grid ÷ (blocks per SM × SMs), least and
most over the launches it serves).

A row fails when its shared memory exceeds the target's, when it spills,
when a 16-bit dot misses the target's tensor-core instruction, when it stores
16-bit elements one at a time to destinations whose table is 16-byte aligned
(``ALIGN`` 8: the epilogue could store 128 bits at once), or when the
pruning rule's estimate (:func:`.tuning.estimate_shared`) is below what the
compiler reports — then the runtime could pick a config this check never
passed.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import triton

from incdsl import ir

from ..options import BackendUnavailable
from .launch import Config, Launch, compiling_for, interpreted
from .targets import Target, blocks_per_sm
from .tuning import Shape, candidates, default_config, estimate_shared

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
    store_bits: int  # the narrowest global store, in bits (0: none)
    align: int  # the destination table's ALIGN (elements)
    blocks: int  # blocks per SM
    seconds: float
    waves: tuple[float, float] = (0.0, 0.0)  # least and most over the launches it serves
    users: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _cuobjdump() -> str:
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")


@dataclass(frozen=True)
class Machine:
    """What a cubin holds, read with the cuobjdump that Triton ships."""

    registers: int
    stack: int  # bytes of stack and local memory: spills
    wgmma: bool  # HGMMA: Hopper's warp-group MMA
    mma: bool  # HMMA: mma.sync
    tma: bool  # UTMALDG: loads through the tensor memory accelerator
    store_bits: int  # the narrowest STG (global store), in bits; 0 when there is none


#: An ``STG`` mnemonic's size suffix, in bits; none is 32.
_STORE_BITS = {"U8": 8, "S8": 8, "U16": 16, "S16": 16, "64": 64, "128": 128}


def narrowest_store(sass: str) -> int:
    """The width in bits of the narrowest global store in ``sass`` (0 when it has none)."""
    widths = [
        next((_STORE_BITS[part] for part in op.split(".") if part in _STORE_BITS), 32)
        for op in re.findall(r"\bSTG(?:\.\w+)*", sass)
    ]
    return min(widths, default=0)


def scalar_stores(store_bits: int, align: int, itemsize: int) -> bool:
    """The speed lint's store rule: a kernel whose destination table is 16-byte aligned
    (``ALIGN`` elements of ``itemsize`` bytes) must not store 16-bit elements one at a time."""
    return itemsize == 2 and align * itemsize == 16 and store_bits == 16


def dump(cubin: bytes, *flags: str) -> list[str]:
    """cuobjdump's output for ``cubin``, one text per flag (``-sass``, ``-res-usage``)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return [
            subprocess.run([_cuobjdump(), flag, f.name], capture_output=True, text=True, check=True).stdout
            for flag in flags
        ]


def inspect(cubin: bytes) -> Machine:
    usage, sass = dump(cubin, "-res-usage", "-sass")
    found = re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", usage)
    if found is None:
        raise RuntimeError(f"cuobjdump gave no resource usage:\n{usage}")
    return Machine(
        int(found[1]), int(found[2]) + int(found[3]), "HGMMA" in sass, "HMMA" in sass, "UTMALDG" in sass,
        narrowest_store(sass),
    )  # fmt: skip


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
        flags += ["split-k"] if args["PARTIAL"] else []
    else:
        flags.append(f"{args['KH']}x{args['KW']}/{args['SH']}" + (" c-tiled" if args["C_TILED"] else ""))
    flags.append(f"align{args['ALIGN']}")
    return kind, " ".join(flags)


#: Which configs of each launch a check compiles: every candidate the tuner may pick; the
#: default, the widest and a split-K one for one launch of each kind (the test suite's subset);
#: the default alone (what a cross-compiled module runs before it is tuned).
MODES = ("all", "subset", "default")


class Check:
    """Compiles launches for one target and collects a row per distinct binary."""

    def __init__(self, target: Target, mode: str = "all") -> None:
        self.target = target
        self.mode = mode
        self.rows: dict[str, Row] = {}
        self.compiled: dict[str, dict[str, str]] = {}  # hash → the binary's files in Triton's cache
        self.seen: set[tuple[str, str, bool, str]] = set()  # what subset mode compiled already
        self.user = ""

    def choose(self, shape: Shape, make: Callable[[Config], list[Launch]], label: str) -> list[Launch]:
        configs = candidates(shape, self.target)
        default = default_config(shape, self.target)
        if self.mode == "subset":  # the default, the widest, and a split-K config where there is one
            widest = max(configs, key=lambda c: estimate_shared(c, shape))
            split = [c for c in configs if c.split_k > 1][:1]
            configs = list(dict.fromkeys([default, widest, *split]))
        elif self.mode == "default":
            configs = [default]
        for config in configs:
            for launch in make(config):
                if self.mode == "subset":  # one launch of each kind (a residual GEMM is a kind) per precision
                    kind, variant = _variant(launch, shape.precision)
                    key = (kind, shape.precision, "residual" in variant.split(), str(config))
                    if key in self.seen:
                        continue
                    self.seen.add(key)
                self.compile(launch, shape, config, label)
        return make(default)

    def compile(self, launch: Launch, shape: Shape, config: Config, label: str) -> None:
        start = time.perf_counter()
        compiled = launch.compile()
        seconds = time.perf_counter() - start
        self.compiled[compiled.hash] = dict(compiled.metadata_group)
        row = self.rows.get(compiled.hash)
        if row is None:
            kind, variant = _variant(launch, shape.precision)
            machine = inspect(compiled.asm["cubin"])
            if kind == "reduce":
                estimate, shown = 0, f"{launch.args['BLOCK_M']}×{launch.args['BLOCK_N']} w{launch.options['num_warps']}"
            else:
                estimate, shown = estimate_shared(config, shape), str(config)
            blocks = blocks_per_sm(self.target, machine.registers, compiled.metadata.shared, launch.options["num_warps"])
            row = self.rows[compiled.hash] = Row(
                self.target.name, kind, variant, shown, compiled.metadata.shared, estimate, machine.registers,
                machine.stack, machine.wgmma, machine.mma, machine.tma, machine.store_bits, launch.args["ALIGN"],
                blocks, seconds,
            )  # fmt: skip
            row.problems = self.problems(row, shape.itemsize)
        waves = math.prod(launch.grid) / max(row.blocks * self.target.sms, 1)
        row.waves = (min(row.waves[0], waves), max(row.waves[1], waves)) if row.waves[1] else (waves, waves)
        user = f"{self.user}{label}"
        if len(row.users) < 3 and user not in row.users:
            row.users.append(user)

    def problems(self, row: Row, itemsize: int) -> list[str]:
        found = []
        if row.shared > self.target.max_shared:
            found.append(f"shared {row.shared:,} > {self.target.max_shared:,}")
        if row.stack:
            found.append(f"spills ({row.stack} bytes of stack)")
        if row.blocks == 0:
            found.append("no block fits an SM")
        if scalar_stores(row.store_bits, row.align, itemsize):
            found.append("scalar 16-bit stores to 16-byte-aligned destinations")
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


def check_plan(
    check: Check, net: ir.Network, passed: ir.Network, kernels: tuple[str, ...], batches: list[int],
    precisions: list[str], progress: Callable[[str], None] = lambda _: None,
) -> None:  # fmt: skip
    """Build ``net``'s plan (``passed``: ``net`` after the passes for ``kernels``) on the meta
    device for ``check``'s target and compile its launches."""
    from .module import TritonNetwork

    if interpreted():  # kernels defined under the interpreter are not compilable
        raise BackendUnavailable("compiling for a GPU target needs TRITON_INTERPRET unset")
    with torch.device("meta"):
        model = TritonNetwork(net, passed, kernels, cuda_graphs=False).eval()
    for precision in precisions:
        dtype, mode = PRECISIONS[precision]
        model.to(dtype)
        for batch in batches:
            progress(f"{check.target.name} {net.name} [{','.join(kernels)}] {precision} batch {batch}")
            check.user = f"{net.name}:"
            x = torch.empty(batch, *net.input_shape, device="meta", dtype=dtype)
            with _precision(mode), compiling_for(check.target.arch), torch.no_grad():
                model._prepare()
                model.build_plan(x, check.choose, check.target)


def table(rows: list[Row]) -> str:
    """One line per binary; problems at the end of the line."""
    head = (
        f"{'target':6} {'kernel':6} {'variant':34} {'config':26} {'shared':>8} {'regs':>4} {'stack':>5} {'tc':6} "
        f"{'tma':3} {'store':>5} {'cta/SM':>6} {'waves':>11} {'s':>5}  users"
    )
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: (r.target, r.kernel, r.variant, r.config)):
        tc = "wgmma" if r.wgmma else "mma" if r.mma else "fma"
        flag = ("  FAIL: " + "; ".join(r.problems)) if r.problems else ""
        lines.append(
            f"{r.target:6} {r.kernel:6} {r.variant:34} {r.config:26} {r.shared:>8,} {r.registers:>4} {r.stack:>5} "
            f"{tc:6} {'yes' if r.tma else 'no':3} {r.store_bits:>5} {r.blocks:>6} {_waves(r.waves):>11} "
            f"{r.seconds:>5.1f}  {', '.join(r.users)}{flag}"
        )
    return "\n".join(lines)


def _waves(waves: tuple[float, float]) -> str:
    low, high = waves
    return f"{low:.2g}" if low == high else f"{low:.2g}–{high:.3g}"


def summary(rows: list[Row], wall: float) -> dict[str, Any]:
    by_target: dict[str, Any] = {}
    for name in sorted({r.target for r in rows}):
        mine = [r for r in rows if r.target == name]
        dots16 = [r for r in mine if r.kernel != "reduce" and r.variant.startswith(("fp16", "bf16"))]
        gemms = [r for r in mine if r.kernel == "gemm"]
        vector = [r for r in mine if r.variant.startswith(("fp16", "bf16")) and r.align == 8]
        by_target[name] = {
            "binaries": len(mine),
            "failing": sum(1 for r in mine if r.problems),
            "max_shared": max((r.shared for r in mine), default=0),
            "max_registers": max((r.registers for r in mine), default=0),
            "spilling": sum(1 for r in mine if r.stack),
            "16-bit dots on tensor cores": f"{sum(1 for r in dots16 if r.wgmma or r.mma)}/{len(dots16)}",
            "16-bit dots on wgmma": f"{sum(1 for r in dots16 if r.wgmma)}/{len(dots16)}",
            "GEMMs through TMA": f"{sum(1 for r in gemms if r.tma)}/{len(gemms)}",
            "128-bit stores where aligned": f"{sum(1 for r in vector if r.store_bits >= 128)}/{len(vector)}",
            "one block per SM": sum(1 for r in mine if r.blocks == 1),
            "never a full wave": sum(1 for r in mine if r.waves[1] < 1),
            "compile seconds": round(sum(r.seconds for r in mine), 1),
        }
    return {"triton": triton.__version__, "torch": torch.__version__, "wall_seconds": round(wall, 1), "targets": by_target}


def describe(rows: list[Row], target: Target) -> str:
    """One paragraph on a cross-compiled module's kernels."""
    failing = [r for r in rows if r.problems]
    text = (
        f"compiled {len(rows)} kernels for {target.name}: max shared {max(r.shared for r in rows):,} B of "
        f"{target.max_shared:,}, max registers {max(r.registers for r in rows)}, "
        f"{sum(1 for r in rows if r.stack)} spilling, "
        f"{sum(1 for r in rows if r.wgmma or r.mma)} on tensor cores, {sum(1 for r in rows if r.tma)} through TMA"
    )
    return text + "".join(f"\n  FAIL {r.kernel} {r.variant} {r.config}: {'; '.join(r.problems)}" for r in failing)
