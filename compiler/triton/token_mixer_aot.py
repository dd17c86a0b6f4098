"""InceptionNeXt's token mixer compiled ahead of time, without a GPU: ``python -m
incdsl.compiler.triton.token_mixer_aot`` compiles :mod:`.token_mixer`'s kernel for sm_90 and
sm_80 at InceptionNeXt-T's stages and prints each binary's registers, spills, shared memory
and global load/store widths (the last line as JSON, which tests/test_token_mixer.py reads).
An entry point beside the kernel, not in it: the plan imports the kernel, and this reads
binaries through :mod:`.binaries`, which reaches the plan."""

from __future__ import annotations

import json
import re

import torch

from .binaries import dump, inspect
from .launch import compiling_for
from .token_mixer import BAND, SQUARE, STAGES, branch_channels, inception_dw_launch


def _widths(sass: str, op: str) -> list[int]:
    """The bit widths of the global ``op`` (LDG, STG) instructions in ``sass``, each once, sorted:
    an instruction without a width suffix moves 32 bits (U16/S16: 16)."""
    found = set()
    for suffixes in re.findall(rf"\b{op}\.E((?:\.\w+)*)", sass):
        sizes = [s for s in suffixes.split(".") if s in ("U8", "S8", "U16", "S16", "64", "128")]
        found.add(int(sizes[0].lstrip("US")) if sizes else 32)
    return sorted(found)


def compile_rows(arch: int, batches: tuple[int, ...] = (1, 32), dtype: torch.dtype = torch.float16) -> list[dict]:
    """Compile the kernel for ``sm_<arch>`` at every stage and batch (nothing runs; needs
    ``TRITON_INTERPRET`` unset) and read each binary: registers, spills, shared memory and the
    widths of its global loads and stores."""
    rows = []
    for channels, size in STAGES:
        gc = branch_channels(channels)
        for batch in batches:
            x = torch.empty(batch, channels, size, size, device="meta", dtype=dtype, memory_format=torch.channels_last)
            weight = torch.empty(SQUARE**2 + 2 * BAND, gc, device="meta", dtype=dtype)
            bias = torch.empty(3, gc, device="meta", dtype=dtype)
            launch = inception_dw_launch(x, weight, bias, torch.empty_like(x), SQUARE, BAND)
            with compiling_for(arch):
                compiled = launch.compile()
            cubin = compiled.asm["cubin"]
            machine = inspect(cubin)
            (sass,) = dump(cubin, "-sass")
            rows.append({
                "target": f"sm_{arch}", "channels": channels, "size": size, "batch": batch, "gc": gc,
                "block": f"{launch.args['BLOCK_P']}×{launch.args['BLOCK_C']}", "registers": machine.registers,
                "stack": machine.stack, "shared": compiled.metadata.shared,
                "loads": _widths(sass, "LDG"), "stores": _widths(sass, "STG"),
            })  # fmt: skip
    return rows


def main() -> None:
    print(f"{'target':6} {'C':>4} {'H=W':>3} {'N':>2} {'gc':>3} {'block':>6} {'regs':>4} {'stack':>5} {'shared':>6}  loads/stores (bits)")
    rows = [row for arch in (90, 80) for row in compile_rows(arch)]
    for r in rows:
        print(
            f"{r['target']:6} {r['channels']:>4} {r['size']:>3} {r['batch']:>2} {r['gc']:>3} {r['block']:>6} "
            f"{r['registers']:>4} {r['stack']:>5} {r['shared']:>6}  {r['loads']}/{r['stores']}"
        )
    print("JSON", json.dumps(rows))


if __name__ == "__main__":
    main()
