"""One kernel launch, prepared: the kernel, its grid, every argument and the
compile options of its config, so that a launch plan replays it without
binding arguments or looking up an autotuner on each call.

On a GPU a launch is compiled once (Triton's own ``warmup``, which specialises
the kernel on its arguments exactly as a normal call would, so its on-disk
cache serves both) and then called through the compiled kernel's launcher.
In Triton's interpreter it is simply called. :func:`compiling_for` points
Triton at a GPU that is not here, so that the same code path compiles ahead
of time for ``sm_90`` or ``sm_80`` on a machine without one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch


def interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


@dataclass(frozen=True, order=True)
class Config:
    """A kernel's tile shape and compile options."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int
    group_m: int = 8
    split_k: int = 1  # K ranges per tile (GEMM only); above 1, a second launch reduces them

    @property
    def meta(self) -> dict[str, int]:
        return {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "BLOCK_K": self.block_k, "GROUP_M": self.group_m}

    @property
    def options(self) -> dict[str, int]:
        return {"num_warps": self.num_warps, "num_stages": self.num_stages}

    def __str__(self) -> str:
        split = f" split{self.split_k}" if self.split_k > 1 else ""
        return f"{self.block_m}×{self.block_n}×{self.block_k} w{self.num_warps} s{self.num_stages}{split}"

    @classmethod
    def parse(cls, fields: list[int]) -> Config:
        return cls(*fields)

    def to_list(self) -> list[int]:
        return [self.block_m, self.block_n, self.block_k, self.num_warps, self.num_stages, self.group_m, self.split_k]


@dataclass
class Launch:
    """``kernel[grid](**args)`` with ``options`` (num_warps, num_stages).

    ``args`` holds every parameter of the kernel by name, constexprs included.
    Tensors may be replaced per call through :meth:`bind` (a launch plan's
    values that torch allocates anew on each call).
    """

    kernel: Any  # a triton JITFunction (an InterpretedFunction under TRITON_INTERPRET=1)
    grid: tuple[int, ...]
    args: dict[str, Any]
    options: dict[str, int]
    _run: Any = field(default=None, repr=False)  # the compiled kernel's launcher for this grid
    _values: list[Any] = field(default_factory=list, repr=False)  # its arguments, in order

    def compile(self) -> Any:
        """The compiled kernel for this launch's specialisation (from Triton's cache when it has it)."""
        return self.kernel.warmup(grid=self.grid, **self.args, **self.options)

    def __call__(self) -> None:
        if self._run is None:
            if type(self.kernel).__name__ == "InterpretedFunction":
                self.kernel[self.grid](**self.args, **self.options)
                return
            # A compiled kernel's launcher takes all three grid dimensions.
            self._run = self.compile()[(*self.grid, 1, 1)[:3]]
            self._values = [self.args[name] for name in self.kernel.arg_names]
        self._run(*self._values)

    def bind(self, **tensors: torch.Tensor) -> None:
        """Replace tensor arguments (same shapes, strides and alignment, so the same binary)."""
        self.args.update(tensors)
        if self._run is not None:
            self._values = [self.args[name] for name in self.kernel.arg_names]


def in_order(launches: list[Launch]) -> Callable[[], None]:
    """A function that runs ``launches`` one after another (a split-K launch, then its reduce)."""

    def run() -> None:
        for launch in launches:
            launch()

    return run


class _AheadOfTimeDriver:
    """Enough of Triton's driver interface for ``warmup`` to compile for a GPU that is not here."""

    def __init__(self, arch: int) -> None:
        from triton.backends.compiler import GPUTarget

        self.arch = arch
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self) -> int:
        return self.arch  # a device per target, so the JIT's per-device caches don't mix targets

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_current_target(self) -> Any:
        return self.target

    def get_active_torch_device(self) -> torch.device:
        return torch.device("meta")


@contextlib.contextmanager
def compiling_for(arch: int) -> Iterator[None]:
    """Within this block, :meth:`Launch.compile` compiles for ``sm_<arch>`` (tensors may be on
    the meta device); nothing can be launched."""
    from triton.runtime import driver

    previous = driver.active if driver._active is not None else None
    driver.set_active(_AheadOfTimeDriver(arch))  # type: ignore[arg-type]
    try:
        yield
    finally:
        if previous is None:
            driver._active = None
        else:
            driver.set_active(previous)
