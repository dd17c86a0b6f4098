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

    @property
    def name(self) -> str:
        return f"sm_{self.arch}"


TARGETS: dict[str, Target] = {
    "sm_90": Target(90, 232_448, has_tma=True, has_wgmma=True),
    "sm_89": Target(89, 101_376, has_tma=False, has_wgmma=False),
    "sm_80": Target(80, 166_912, has_tma=False, has_wgmma=False),
}

#: Registers a thread may hold before ptxas spills to local memory.
MAX_REGISTERS = 255


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
