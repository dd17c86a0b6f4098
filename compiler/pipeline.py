"""From a validated network to a backend's output: the passes, in order, then the backend.

The torch backend runs no passes (it is the reference). ``fuse=True`` on the
torch backend, and the triton backend always, run the inference passes below
for eval mode; training mode always runs the spec's layers as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from incdsl import ir

from .options import BACKENDS, DEFAULT_TRITON_KERNELS, TRITON_KERNELS, BackendUnavailable, check_kernels
from .passes import (
    fold_batch_norm,
    fuse_parallel_1x1,
    fuse_pool_into_1x1,
    fuse_residual_into_1x1,
    fuse_token_mixers,
    plan_concat_buffers,
)

__all__ = [
    "BACKENDS", "DEFAULT_TRITON_KERNELS", "TRITON_KERNELS", "BackendUnavailable", "check_backend", "compile_network",
    "compile_report", "generate_source", "inference_passes", "passed_for_triton", "run_passes",
]

Pass = Callable[[ir.Network], ir.Network]


def inference_passes(backend: str, kernels: Iterable[str] = DEFAULT_TRITON_KERNELS) -> list[Pass]:
    """The passes, in order, that prepare a network for a backend's eval mode."""
    if backend == "torch":
        return [fold_batch_norm, fuse_parallel_1x1]
    # InceptionNeXt's token mixers, one operation each, whatever ``kernels`` says
    passes: list[Pass] = [fold_batch_norm, fuse_token_mixers]
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


def passed_for_triton(network: dict[str, Any] | ir.Network, kernels: Iterable[str] = DEFAULT_TRITON_KERNELS) -> ir.Network:
    """The network (or its JSON, as a generated module carries it) after the triton backend's passes."""
    net = ir.network_from_json(network) if isinstance(network, dict) else network
    return run_passes(net, inference_passes("triton", tuple(kernels)))


def check_backend(backend: str) -> None:
    """Raise :class:`BackendUnavailable` if ``backend`` cannot compile here (running may need more)."""
    if backend == "triton":
        try:
            import triton  # noqa: F401
        except ImportError as err:
            raise BackendUnavailable("the triton backend needs the triton package: pip install 'incdsl[triton]'") from err


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
    disk), then on a GPU each operation's kernel against its torch form (kept
    per shape with the model). Compiling needs no GPU; running the triton backend's eval does.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "triton" and (cuda_graphs is not None or autotune is not None):
        raise TypeError("cuda_graphs= and autotune= apply to the triton backend")
    if options:
        raise TypeError(f"unexpected options for the {backend} backend: {', '.join(sorted(options))}")
    if backend == "triton":
        chosen = check_kernels(kernels)
        check_backend(backend)
        from .triton.module import TritonNetwork

        return TritonNetwork(net, passed_for_triton(net, chosen), chosen, cuda_graphs is not False, bool(autotune))
    if fuse:
        from .torch.fused import FusedNetwork

        return FusedNetwork(net, run_passes(net, inference_passes("torch")))
    from .torch.lower import lower

    return lower(net)


def compile_report(
    net: ir.Network,
    backend: str,
    kernels: Iterable[str] | str = DEFAULT_TRITON_KERNELS,
    passed: ir.Network | None = None,
) -> str:
    """What the inference passes do to ``net`` and what the backend runs (``incdsl compile`` prints it);
    ``passed``: ``net`` after those passes when the caller has it already."""
    from .report import compile_report as report

    chosen = check_kernels(kernels) if backend == "triton" else ()
    if passed is None:
        passed = run_passes(net, inference_passes(backend, chosen))
    return report(net, passed, backend, chosen)


def generate_source(
    net: ir.Network,
    backend: str = "torch",
    kernels: Iterable[str] | str = DEFAULT_TRITON_KERNELS,
    carried: Mapping[str, Any] | None = None,
    passed: ir.Network | None = None,
) -> str:
    """Python source that defines the compiled network as an ``nn.Module`` class.

    The torch backend's source needs only torch. The triton backend's adds a
    subclass whose eval mode runs incdsl's Triton kernels, so it needs incdsl
    (with triton) to import; ``carried`` records the kernels compiled ahead of
    time with it (``incdsl compile --target``), which it then uses. That subclass
    embeds ``net`` after the triton backend's passes (``passed``, when the caller has
    run them already): building the module runs no pass.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from .torch.codegen import generate

    if backend == "triton":
        from .triton.codegen import triton_footer

        chosen = check_kernels(kernels)
        if passed is None:
            passed = passed_for_triton(net, chosen)
        return generate(net, footer=lambda cls: triton_footer(passed, chosen, cls, carried))
    return generate(net)
