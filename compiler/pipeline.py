"""From a validated network to a backend's output: the passes, in order, then the backend.

The torch backend runs no passes (it is the reference). ``fuse=True`` on the
torch backend, and the triton backend always, run the inference passes below
for eval mode; training mode always runs the spec's layers as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from incdsl import ir

from .passes import (
    fold_batch_norm,
    fuse_parallel_1x1,
    fuse_pool_into_1x1,
    fuse_residual_into_1x1,
    plan_concat_buffers,
)

BACKENDS = ("torch", "triton")

#: The Triton kernels a compiled network can use; ``kernels=`` picks among them.
#: ``conv`` (implicit-GEMM k×k convs) is not on by default: cuDNN may beat it,
#: and only a GPU benchmark (bench/) can say.
TRITON_KERNELS = ("fused_1x1", "pool_conv", "residual_1x1", "conv")
DEFAULT_TRITON_KERNELS = ("fused_1x1", "pool_conv", "residual_1x1")

Pass = Callable[[ir.Network], ir.Network]


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says what is missing."""


def inference_passes(backend: str, kernels: Iterable[str] = DEFAULT_TRITON_KERNELS) -> list[Pass]:
    """The passes, in order, that prepare a network for a backend's eval mode."""
    if backend == "torch":
        return [fold_batch_norm, fuse_parallel_1x1]
    passes: list[Pass] = [fold_batch_norm]
    if "pool_conv" in kernels:
        passes.append(fuse_pool_into_1x1)
    if "residual_1x1" in kernels:
        passes.append(fuse_residual_into_1x1)
    if "fused_1x1" in kernels:
        passes.append(fuse_parallel_1x1)
    return [*passes, plan_concat_buffers]


def run_passes(net: ir.Network, passes: Iterable[Pass], verify: bool = False) -> ir.Network:
    """Apply ``passes`` in order; with ``verify``, check the IR's invariants before and after each."""
    from .verify import verify as check

    if verify:
        check(net)
    for p in passes:
        net = p(net)
        if verify:
            check(net, after=p.__name__)
    return net


def _check_kernels(kernels: Iterable[str] | str) -> tuple[str, ...]:
    chosen = TRITON_KERNELS if kernels == "all" else tuple(kernels)
    unknown = sorted(set(chosen) - set(TRITON_KERNELS))
    if unknown:
        raise ValueError(f"unknown Triton kernel(s) {', '.join(unknown)}; choose among {', '.join(TRITON_KERNELS)}")
    return chosen


def compile_network(
    net: ir.Network,
    backend: str = "torch",
    *,
    fuse: bool = False,
    kernels: Iterable[str] | str = DEFAULT_TRITON_KERNELS,
    cuda_graphs: bool | None = None,
    autotune: bool | None = None,
    **options: Any,
):
    """A validated network → an ``nn.Module``.

    ``fuse`` (torch backend): eval folds batch norm and runs each group of
    parallel 1×1 convs as one conv. ``kernels`` (triton backend): which of
    :data:`TRITON_KERNELS` to use, or ``"all"``; ``cuda_graphs`` (triton
    backend, on by default): from the second eval call at an input shape on,
    replay the whole forward as one captured CUDA graph; ``autotune`` (triton
    backend, off by default): time each launch's candidate configs at a new
    shape instead of taking the default for its class (results are cached on
    disk). Compiling needs no GPU; running the triton backend's eval does.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "triton" and (cuda_graphs is not None or autotune is not None):
        raise TypeError("cuda_graphs= and autotune= apply to the triton backend")
    if options:
        raise TypeError(f"unexpected options for the {backend} backend: {', '.join(sorted(options))}")
    if backend == "triton":
        from .triton.module import TritonNetwork, check_available

        chosen = _check_kernels(kernels)
        check_available()
        passed = run_passes(net, inference_passes("triton", chosen))
        return TritonNetwork(net, passed, chosen, cuda_graphs is not False, bool(autotune))
    if fuse:
        from .torch.fused import FusedNetwork

        return FusedNetwork(net, run_passes(net, inference_passes("torch")))
    from .torch.lower import lower

    return lower(net)


def compile_report(net: ir.Network, backend: str, kernels: Iterable[str] | str = DEFAULT_TRITON_KERNELS) -> str:
    """What the inference passes do to ``net`` and what the backend runs (``incdsl compile`` prints it)."""
    from .report import compile_report as report

    chosen = _check_kernels(kernels) if backend == "triton" else ()
    return report(net, run_passes(net, inference_passes(backend, chosen)), backend, chosen)


def generate_source(net: ir.Network, backend: str = "torch", kernels: Iterable[str] | str = DEFAULT_TRITON_KERNELS) -> str:
    """Python source that defines the compiled network as an ``nn.Module`` class.

    The torch backend's source needs only torch. The triton backend's adds a
    subclass whose eval mode runs incdsl's Triton kernels, so it needs incdsl
    (with triton) to import.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from .torch.codegen import generate

    source = generate(net)
    if backend == "triton":
        from .triton.codegen import triton_footer

        source += triton_footer(net, _check_kernels(kernels))
    return source
