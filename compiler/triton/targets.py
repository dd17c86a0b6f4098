"""The GPUs the backend is built for: what the compiler must fit (shared memory
per block, registers), which instructions each should use, and the vendor's
peak figures for the roofline (dense, no sparsity; see shared/reference/GPU.md).

A target is named like ``sm_90``; a device is matched to its row of
:data:`DEVICES` by its name as torch reports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A compile target: ``arch`` as Triton numbers it (90 is sm_90)."""

    arch: int
    max_shared: int  # bytes of shared memory one block may opt in to
    has_tma: bool  # tensor descriptors through the copy engine (sm_90+)
    has_wgmma: bool  # warp-group MMA (sm_90): Hopper's fast GEMM path
    sms: int  # streaming multiprocessors of the GPU the target stands for (H200, A100, L4)
    shared_per_sm: int  # bytes of shared memory an SM holds for all its blocks
    threads_per_sm: int
    blocks_per_sm: int  # resident blocks an SM can hold at most

    @property
    def name(self) -> str:
        return f"sm_{self.arch}"


TARGETS: dict[str, Target] = {
    "sm_90": Target(90, 232_448, has_tma=True, has_wgmma=True, sms=132, shared_per_sm=233_472, threads_per_sm=2048, blocks_per_sm=32),
    "sm_89": Target(89, 101_376, has_tma=False, has_wgmma=False, sms=58, shared_per_sm=102_400, threads_per_sm=1536, blocks_per_sm=24),
    "sm_80": Target(80, 166_912, has_tma=False, has_wgmma=False, sms=108, shared_per_sm=167_936, threads_per_sm=2048, blocks_per_sm=32),
}  # fmt: skip

#: Registers a thread may hold before ptxas spills to local memory.
MAX_REGISTERS = 255
#: An SM's registers come in four quarters (one per warp scheduler) of 16,384; a warp takes
#: its registers from one quarter, in units of 8 per thread (256 per warp).
REGISTERS_PER_QUARTER = 16_384
#: Shared memory the CUDA runtime reserves in each resident block.
SHARED_RESERVED_PER_BLOCK = 1024


def blocks_per_sm(target: Target, registers: int, shared: int, num_warps: int) -> int:
    """How many blocks of a kernel (``registers`` per thread, ``shared`` bytes, ``num_warps``)
    an SM of ``target`` holds at once, the least of what registers, shared memory, threads
    and the block limit allow (0: it does not fit)."""
    per_warp = -(-max(registers, 1) // 8) * 8 * 32
    by_registers = 4 * (REGISTERS_PER_QUARTER // per_warp) // num_warps
    by_shared = target.shared_per_sm // (shared + SHARED_RESERVED_PER_BLOCK)
    by_threads = target.threads_per_sm // (32 * num_warps)
    return min(by_registers, by_shared, by_threads, target.blocks_per_sm)


def target(name: str) -> Target:
    """The target named ``sm_NN`` (ValueError naming the known ones otherwise)."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown GPU target {name!r}; known: {', '.join(TARGETS)}") from None


def target_of_capability(major: int, minor: int) -> Target:
    """The target for a device of compute capability ``major.minor`` (the nearest one below it)."""
    arch = major * 10 + minor
    known = [t for t in TARGETS.values() if t.arch <= arch]
    if not known:
        raise ValueError(f"compute capability {major}.{minor} is older than the backend's targets")
    return max(known, key=lambda t: t.arch)


@dataclass(frozen=True)
class Device:
    """Peak figures of one GPU model (dense tensor-core rates)."""

    name: str
    sms: int
    half_tflops: float  # fp16/bf16 tensor cores
    tf32_tflops: float
    fp32_tflops: float  # plain CUDA cores, IEEE fp32
    gbps: float  # HBM bandwidth


DEVICES: tuple[Device, ...] = (
    Device("H200", 132, 989.0, 494.0, 67.0, 4800.0),
    Device("H100", 132, 989.0, 494.0, 67.0, 3350.0),
    Device("A100", 108, 312.0, 156.0, 19.5, 2039.0),
    Device("L4", 58, 121.0, 60.0, 30.3, 300.0),
)


def device_named(name: str) -> Device | None:
    """The row of :data:`DEVICES` whose model is a word of a device name such as
    'NVIDIA H200' or 'NVIDIA A100-SXM4-80GB' (an L40S is not an L4)."""
    words = name.upper().replace("-", " ").split()
    return next((d for d in DEVICES if d.name in words), None)
