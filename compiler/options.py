"""What a user picks when compiling — the backends and the Triton kernels — and the
error for a backend that cannot run here. A leaf module: the pipeline and every
backend import it, and it imports none of them."""

from __future__ import annotations

from collections.abc import Iterable

BACKENDS = ("torch", "triton")

#: The Triton kernels a compiled network can use; ``kernels=`` picks among them.
#: ``conv`` (implicit-GEMM k×k convs) is not on by default: cuDNN may beat it,
#: and only a GPU benchmark (bench/) can say.
TRITON_KERNELS = ("fused_1x1", "pool_conv", "residual_1x1", "conv")
DEFAULT_TRITON_KERNELS = ("fused_1x1", "pool_conv", "residual_1x1")


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says what is missing."""


def check_kernels(kernels: Iterable[str] | str) -> tuple[str, ...]:
    """``kernels`` as a tuple (``"all"`` is every kernel); ValueError naming any unknown one."""
    chosen = TRITON_KERNELS if kernels == "all" else tuple(kernels)
    unknown = sorted(set(chosen) - set(TRITON_KERNELS))
    if unknown:
        raise ValueError(f"unknown Triton kernel(s) {', '.join(unknown)}; choose among {', '.join(TRITON_KERNELS)}")
    return chosen
