"""The Triton backend's network: the torch lowering's modules and parameters
(so reference weights load, and training runs the spec's layers), with an
eval mode that runs the passed IR through the Triton kernels.

Activations are channels-last from the input on. Each fused 1×1 group is one
launch of :func:`~.kernels.conv_nhwc` storing every member straight to its
place: the 1×1 branch into its slice of the module's concat buffer, the
reductions into scratch. A pool-proj branch is one launch that pools while it
loads. With the ``conv`` kernel, k×k convs are Triton launches too; without
it they run through torch (cuDNN on a GPU) and are copied into their concat
slice. A concat whose inputs were all stored in place costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from incdsl import ir
from incdsl.progress import progress

from ..pipeline import DEFAULT_TRITON_KERNELS, BackendUnavailable
from ..torch.fused import InferenceEval
from ..torch.lower import IncNetwork
from ..torch.weights import activation_floor


def check_available() -> None:
    """Raise :class:`BackendUnavailable` unless Triton can run here (a CUDA GPU, or its interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError as err:
        raise BackendUnavailable(
            "the triton backend needs the triton package: pip install 'incdsl[triton]'"
        ) from err
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        raise BackendUnavailable(
            "the triton backend needs a CUDA GPU, and torch sees none here. To run its kernels on the CPU "
            "in Triton's interpreter (slow; for testing on small inputs), set TRITON_INTERPRET=1, "
            "e.g. `TRITON_INTERPRET=1 incdsl compile SPEC --backend triton`"
        )


def passed_for_triton(network: dict[str, Any] | ir.Network, kernels: Iterable[str] = DEFAULT_TRITON_KERNELS) -> ir.Network:
    """The network (or its JSON) after the triton backend's passes."""
    from ..pipeline import inference_passes, run_passes

    net = ir.network_from_json(network) if isinstance(network, dict) else network
    return run_passes(net, inference_passes("triton", tuple(kernels)))


def _pool_code(pool: ir.PoolAttrs | None) -> tuple[int, int]:
    """The kernel's ``(POOL, PK)`` for a group's pool prologue."""
    from .kernels import POOL_AVG, POOL_AVG_WITH_PAD, POOL_MAX, POOL_NONE

    if pool is None:
        return (POOL_NONE, 1)
    if pool.op == "maxpool":
        return (POOL_MAX, pool.kernel[0])
    return (POOL_AVG_WITH_PAD if pool.count_include_pad else POOL_AVG, pool.kernel[0])


class TritonEval(InferenceEval):
    """Eval through the Triton kernels; see the module's docstring."""

    def setup_triton(
        self, passed: ir.Network, kernels: Iterable[str] = DEFAULT_TRITON_KERNELS, cuda_graphs: bool = False
    ) -> None:
        self.setup_inference(passed)
        self._kernels = tuple(kernels)
        self._cuda_graphs = cuda_graphs
        self._warm: set[tuple[Any, ...]] = set()
        self._graphs: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def forward(self, x: torch.Tensor):
        if self.training:
            return super().forward(x)
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._warm:
            # A new input shape compiles and autotunes the kernels for its GEMM sizes: seconds to minutes.
            with progress(f"compiling and autotuning Triton kernels for input {'×'.join(map(str, x.shape))}"):
                out = self._infer(x)
            self._warm.add(key)
            return out
        if self._cuda_graphs and x.is_cuda:
            return self._replay(x, key)
        return self._infer(x)

    def train(self, mode: bool = True):
        self._graphs.clear()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._graphs.clear()
        return super()._apply(fn, *args, **kwargs)

    # --- CUDA graphs: one launch sequence per input shape, replayed ------------

    def _replay(self, x: torch.Tensor, key: tuple[Any, ...]) -> torch.Tensor:
        """Run the captured graph for ``key``; capture it first, or again when the weights changed
        (a graph holds the prepared weights' addresses)."""
        with torch.no_grad():
            self._prepare()
        entry = self._graphs.get(key)
        if entry is None or entry[0] != self._prepared_for:
            entry = self._graphs[key] = self._capture(x)
        _, static_in, graph, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[Any, ...]:
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture wants
            for _ in range(2):
                self._infer(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._infer(static_in)
        return (self._prepared_for, static_in, graph, static_out)

    @property
    def kernels(self) -> tuple[str, ...]:
        return self._kernels

    def _triton_conv(self, node: ir.Node) -> bool:
        return "conv" in self._kernels and isinstance(node.attrs, ir.ConvAttrs)

    def _prepare_node(self, node: ir.Node) -> Any:
        from .kernels import pack_weight

        a = node.attrs
        prepared = super()._prepare_node(node)
        if isinstance(a, ir.Conv1x1GroupAttrs):
            weight, bias, floor = prepared
            return pack_weight(weight), bias, floor
        if self._triton_conv(node):
            weight, bias = prepared
            return pack_weight(weight), bias, activation_floor(bias, a.act)  # type: ignore[union-attr]
        return prepared

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    def _compute(self, node: ir.Node, env: dict[Any, torch.Tensor], x: torch.Tensor) -> torch.Tensor | None:
        y = super()._compute(node, env, x)
        if y is None or node.storage is None:
            return y
        place = self._place(node, env, y)
        if not (place.data_ptr() == y.data_ptr() and place.stride() == y.stride()):
            place.copy_(y)
        return place

    # --- where values live ----------------------------------------------------

    def _place(self, node: ir.Node, env: dict[Any, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """The tensor ``node``'s value is written to: its slice of a concat buffer, or a new tensor."""
        assert node.shape is not None
        if node.storage is None:
            return torch.empty(
                (like.shape[0], *node.shape), dtype=like.dtype, device=like.device, memory_format=torch.channels_last
            )
        concat, offset = node.storage
        return self._buffer(concat, env, like)[:, offset : offset + node.shape[0]]

    def _buffer(self, concat: str, env: dict[Any, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        # Kept in env under a tuple key, which no node name can be: it lives as long as this call.
        key = ("buffer", concat)
        if key not in env:
            env[key] = self._place(self._nodes[concat], env, like)
        return env[key]

    # --- ops ------------------------------------------------------------------

    def _conv(self, node: ir.Node, x: torch.Tensor, env: dict[Any, torch.Tensor]) -> torch.Tensor:
        from .kernels import conv_nhwc

        a = node.attrs
        assert isinstance(a, ir.ConvAttrs)
        if not self._triton_conv(node):
            return super()._conv(node, x, env)
        weight, bias, floor = self._prepared[node.name]
        out = self._place(node, env, x)
        conv_nhwc(x, weight, bias, floor, [out], a.kernel, a.stride, a.padding)
        return out

    def _group(self, node: ir.Node, x: torch.Tensor, env: dict[Any, torch.Tensor]) -> torch.Tensor | None:
        from .kernels import conv_nhwc

        a = node.attrs
        assert isinstance(a, ir.Conv1x1GroupAttrs)
        weight, bias, floor = self._prepared[node.name]
        if a.residual is not None:
            out = self._place(node, env, x)
            conv_nhwc(x, weight, bias, floor, [out], residual=(env[node.inputs[1]], a.residual.scale))
            return out
        outs = []
        for member in a.members:
            out = self._place(self._nodes[member.name], env, x)
            env[member.name] = out
            outs.append(out)
        conv_nhwc(x, weight, bias, floor, outs, pool=_pool_code(a.pool))
        return None

    def _concat(self, node: ir.Node, xs: list[torch.Tensor], env: dict[Any, torch.Tensor]) -> torch.Tensor:
        out = self._buffer(node.name, env, xs[0])
        offset = 0
        for name, x in zip(node.inputs, xs, strict=True):
            width = x.shape[1]
            if self._nodes[name].storage != (node.name, offset):
                out[:, offset : offset + width].copy_(x)
            offset += width
        return out


class TritonNetwork(TritonEval, IncNetwork):
    """A network compiled by the triton backend (``incdsl.compile(spec, backend="triton")``)."""

    def __init__(
        self,
        net: ir.Network,
        passed: ir.Network,
        kernels: Iterable[str] = DEFAULT_TRITON_KERNELS,
        cuda_graphs: bool = False,
    ) -> None:
        super().__init__(net)
        self.setup_triton(passed, kernels, cuda_graphs)
