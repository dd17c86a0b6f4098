"""From a validated network to a backend's output: the passes, in order, then the backend.

The torch backend runs no passes (it is the reference); ``fuse=True`` asks
for the inference passes (see ``compiler/passes``).
"""

from __future__ import annotations

from typing import Any

from incdsl import ir

BACKENDS = ("torch", "triton")


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine; the message says what is missing."""


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "triton":
        raise BackendUnavailable("the triton backend is not available in this version")


def compile_network(net: ir.Network, backend: str = "torch", **options: Any):
    """A validated network → an ``nn.Module``."""
    _check_backend(backend)
    if options:
        raise TypeError(f"unexpected options for the {backend} backend: {', '.join(sorted(options))}")
    from .torch.lower import lower

    return lower(net)


def generate_source(net: ir.Network, backend: str = "torch") -> str:
    """Python source that defines the compiled network as an ``nn.Module`` class."""
    _check_backend(backend)
    from .torch.codegen import generate

    return generate(net)
