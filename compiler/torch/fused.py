"""The torch backend with the inference passes (``incdsl.compile(..., fuse=True)``).

Training runs the spec's layers exactly as :class:`~.lower.IncNetwork` does
(batch norm live, aux heads on). Eval runs the network after the passes:
batch norm folded into the convs, and each group of parallel 1×1 convs as one
``conv2d`` over the concatenated weights whose output is sliced per branch.
Weights are prepared from the parameters on the first eval call and again
after ``load_state_dict``, a move (``.to()``, ``.half()``), ``.eval()`` or
``.train()`` (which also notices replaced submodules), or
``refresh_weights()``. With ``track_in_place`` (the torch backend's default)
each call also compares the parameters' version counters, so in-place edits
(an optimizer step, an EMA update) are seen without a call; the Triton
backend leaves that per-call scan out of its steady state.
Eval is for inference: it runs under prepared (detached) weights, so no
gradient reaches the parameters from it.

:class:`InferenceEval` is a mixin over any module that has the spec's
submodules (the lowering's :class:`~.lower.IncNetwork`, or a class generated
by ``incdsl compile -o``); the Triton backend's mixin overrides how convs,
groups and concats run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from incdsl import ir

from ..program import eval_program, last_uses
from . import runtime
from .lower import IncNetwork, call_layer
from .weights import conv_weights, group_weights


def pool(x: torch.Tensor, attrs: ir.PoolAttrs) -> torch.Tensor:
    if attrs.op == "maxpool":
        return F.max_pool2d(x, attrs.kernel, attrs.stride, attrs.padding, ceil_mode=attrs.ceil)
    return F.avg_pool2d(
        x, attrs.kernel, attrs.stride, attrs.padding, ceil_mode=attrs.ceil, count_include_pad=attrs.count_include_pad
    )


class InferenceEval(nn.Module):
    """Eval mode runs a passed IR (see the module's docstring); training mode is the base class's.

    Put it before the network class in the bases and call :meth:`setup_inference`
    after the network's ``__init__``.
    """

    def setup_inference(self, passed: ir.Network, track_in_place: bool = True) -> None:
        self._nodes = {n.name: n for n in passed.nodes}
        self._outputs = passed.outputs()
        self._feature_names = [f.name for f in passed.features]
        self._program = eval_program(passed)
        self._program_last_read = {k: i for k, i in last_uses(self._program).items() if k not in self._outputs}
        self._prepared: dict[str, Any] = {}
        self._prepared_for: Any = None
        self._weights_epoch = 0
        self._track_in_place = track_in_place
        self._tracked: list[torch.Tensor] | None = None
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def refresh_weights(self) -> None:
        """Prepare the inference weights again on the next eval call (after editing parameters in place)."""
        self._weights_epoch += 1
        self._tracked = None  # re-read which tensors hold the weights

    def train(self, mode: bool = True):
        self.refresh_weights()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self.refresh_weights()
        return super()._apply(fn, *args, **kwargs)

    @property
    def program(self) -> list[ir.Node]:
        """The eval-mode program: nodes of the passed IR, in execution order."""
        return list(self._program)

    def forward(self, x: torch.Tensor) -> torch.Tensor | runtime.TrainOutput:
        return super().forward(x) if self.training else self._infer(x)

    def _infer(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Run the eval program on ``x``."""
        with torch.no_grad():
            self._prepare()
            env: dict[Any, torch.Tensor] = {}
            for i, node in enumerate(self._program):
                if node.name not in env:  # a fused kernel may have produced it already
                    value = self._compute(node, env, x)
                    if value is not None:
                        env[node.name] = value
                for name in node.inputs:
                    if self._program_last_read.get(name) == i:
                        env.pop(name, None)
            return self._returned([env[name] for name in self._outputs])

    def _returned(self, values: list[torch.Tensor]) -> torch.Tensor | dict[str, torch.Tensor]:
        """The logits, or the features by name when the network was compiled with ``features=``."""
        return dict(zip(self._feature_names, values, strict=True)) if self._feature_names else values[0]

    # --- weights ------------------------------------------------------------

    def _weights_key(self) -> Any:
        """Equal between two calls exactly when the prepared weights still hold."""
        if not self._track_in_place:
            return self._weights_epoch
        if self._tracked is None:
            self._tracked = [*self.parameters(), *self.buffers()]
        # In-place changes bump a tensor's version counter.
        return (self._weights_epoch, tuple(t._version for t in self._tracked))

    def _prepare(self) -> bool:
        """Prepare the weights if they changed; whether they did."""
        key = self._weights_key()
        if key == self._prepared_for:
            return False
        self._prepared = {node.name: self._prepare_node(node) for node in self._program if _has_weights(node)}
        self._prepared_for = key
        return True

    def _prepare_node(self, node: ir.Node) -> Any:
        a = node.attrs
        if isinstance(a, ir.Conv1x1GroupAttrs):
            return group_weights(self, a)
        assert isinstance(a, ir.ConvAttrs)
        return conv_weights(self, node.name, a)

    # --- ops ----------------------------------------------------------------

    def _compute(self, node: ir.Node, env: dict[Any, torch.Tensor], x: torch.Tensor) -> torch.Tensor | None:
        """The node's value; None when the node stored its outputs in ``env`` itself."""
        a = node.attrs
        xs = [env[name] for name in node.inputs]
        if isinstance(a, ir.InputAttrs):
            return self._input(x)
        if isinstance(a, ir.ConvAttrs):
            return self._conv(node, xs[0], env)
        if isinstance(a, ir.Conv1x1GroupAttrs):
            return self._group(node, xs[0], env)
        if isinstance(a, ir.SliceAttrs):
            return xs[0][:, a.start : a.stop]
        if isinstance(a, ir.ConcatAttrs):
            return self._concat(node, xs, env)
        if isinstance(a, ir.AddAttrs):
            return runtime.residual(xs[0], xs[1], a.scale, a.act == "relu")
        return call_layer(self, node, xs[0])

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _conv(self, node: ir.Node, x: torch.Tensor, env: dict[Any, torch.Tensor]) -> torch.Tensor:
        a = node.attrs
        assert isinstance(a, ir.ConvAttrs)
        weight, bias = self._prepared[node.name]
        y = F.conv2d(x, weight, bias, a.stride, a.padding)
        return F.relu_(y) if a.act == "relu" else y

    def _group(self, node: ir.Node, x: torch.Tensor, env: dict[Any, torch.Tensor]) -> torch.Tensor | None:
        a = node.attrs
        assert isinstance(a, ir.Conv1x1GroupAttrs)
        weight, bias, floor = self._prepared[node.name]
        y = F.conv2d(pool(x, a.pool) if a.pool else x, weight, bias)
        if a.residual is not None:
            return runtime.residual(env[node.inputs[1]], y, a.residual.scale, a.residual.act == "relu")
        acts = {m.conv.act for m in a.members}
        if acts == {"relu"}:
            return F.relu_(y)
        return torch.maximum(y, floor[:, None, None]) if "relu" in acts else y

    def _concat(self, node: ir.Node, xs: list[torch.Tensor], env: dict[Any, torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


def _refresh_after_load(module: InferenceEval, incompatible_keys: Any) -> None:
    module.refresh_weights()


def _has_weights(node: ir.Node) -> bool:
    return isinstance(node.attrs, ir.ConvAttrs | ir.Conv1x1GroupAttrs)


class FusedNetwork(InferenceEval, IncNetwork):
    """The torch lowering whose eval mode runs the torch inference passes' IR."""

    def __init__(self, net: ir.Network, passed: ir.Network) -> None:
        super().__init__(net)
        self.setup_inference(passed)
