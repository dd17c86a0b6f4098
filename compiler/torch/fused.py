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

Eval runs the eval program's steps (:class:`~..program.EvalStep`, made once from the
passed IR: plain values, no IR objects and no lookups by name), so that
``torch.compile`` traces a whole forward as one graph, with no graph break and no
recompilation from one call to the next. Under ``torch.compile`` the
weights are folded inside the graph, from the parameters as they are: with
Inductor's freezing (``torch._inductor.config.freezing = True``) that folding
is done once, when compiling.

:class:`InferenceEval` is a mixin over any module that has the spec's
submodules (the lowering's :class:`~.lower.IncNetwork`, or a class generated
by ``incdsl compile -o``); the Triton backend's mixin runs the same prepared
weights through its own launch plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from incdsl import ir
from incdsl.activations import Activation

from ..program import EvalStep, compile_steps, eval_program
from . import runtime
from .lower import IncNetwork, activate, run_layer
from .weights import member_weights, stacked_weights


def pool(x: torch.Tensor, attrs: ir.PoolAttrs) -> torch.Tensor:
    if attrs.op == "maxpool":
        return F.max_pool2d(x, attrs.kernel, attrs.stride, attrs.padding, ceil_mode=attrs.ceil)
    return F.avg_pool2d(
        x, attrs.kernel, attrs.stride, attrs.padding, ceil_mode=attrs.ceil, count_include_pad=attrs.count_include_pad
    )


def token_mixer(x: torch.Tensor, convs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """InceptionNeXt's token mixer in torch: ``x``'s channels split into an identity part and one
    part per depthwise conv (``(weight, bias)``, same padding), each through its conv, concatenated."""
    gc = convs[0][0].shape[0]
    identity, *parts = torch.split(x, (x.shape[1] - len(convs) * gc, *(gc,) * len(convs)), dim=1)
    outs = [F.conv2d(part, w, b, padding=(w.shape[2] // 2, w.shape[3] // 2), groups=gc)
            for part, (w, b) in zip(parts, convs, strict=True)]  # fmt: skip
    return torch.cat((identity, *outs), 1)


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
        self._eval_steps = compile_steps(self._program, self._outputs)
        self._output_slots = tuple(self._program.index(self._nodes[name]) for name in self._outputs)
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
        """Run the eval program on ``x``: with the prepared weights, or under ``torch.compile`` with
        weights folded in the graph (a version check per call would end the graph)."""
        with torch.no_grad():
            if torch.compiler.is_compiling():
                weights = {s.name: self._weights_for(s) for s in self._eval_steps if s.members}
            else:
                self._prepare()
                weights = self._prepared
            return self._run(x, weights)

    def _run(self, x: torch.Tensor, weights: dict[str, Any]) -> torch.Tensor | dict[str, torch.Tensor]:
        values: list[Any] = [None] * len(self._eval_steps)
        for step in self._eval_steps:
            values[step.out] = self._compute(step, [values[i] for i in step.inputs], x, weights)
            for i in step.free:
                values[i] = None
        return self._returned([values[i] for i in self._output_slots])

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
        self._prepared = {s.name: self._weights_for(s) for s in self._eval_steps if s.members}
        self._prepared_for = key
        return True

    def _weights_for(self, step: EvalStep) -> Any:
        """A conv's ``(weight, bias)``, a group's ``(weight, bias, floor)`` or a token mixer's three
        convs' ``(weight, bias)`` from the parameters."""
        if step.kind == "conv":
            return member_weights(self, step.members[0])
        if step.kind == "mixer":
            return tuple(member_weights(self, m) for m in step.members)
        return stacked_weights(self, step.members)

    # --- ops ----------------------------------------------------------------

    def _compute(self, step: EvalStep, xs: list[torch.Tensor], x: torch.Tensor, weights: dict[str, Any]) -> torch.Tensor:
        kind = step.kind
        if kind == "input":
            return x
        if kind == "conv":
            weight, bias = weights[step.name]
            y = F.conv2d(xs[0], weight, bias, step.stride, step.padding, 1, step.groups)
            return F.relu_(y) if step.act is Activation.RELU else activate(step.act, y)
        if kind == "group":
            weight, bias, floor = weights[step.name]
            operand = pool(xs[0], step.pool) if step.pool is not None else xs[0]
            y = F.conv2d(operand, weight, bias)
            if step.residual:
                return runtime.residual(xs[1], y, step.scale, step.act is not None)
            if step.act == "mixed":
                return torch.maximum(y, floor[:, None, None])
            return F.relu_(y) if step.act is Activation.RELU else activate(step.act, y)
        if kind == "mixer":
            return token_mixer(xs[0], weights[step.name])
        if kind == "slice":
            return xs[0][:, step.start : step.stop]
        if kind == "concat":
            return torch.cat(xs, 1)
        if kind == "add":
            return runtime.residual(xs[0], xs[1], step.scale, step.act is not None)
        return run_layer(self, step.modules, step.flatten, step.act, xs[0])  # type: ignore[arg-type]


def _refresh_after_load(module: InferenceEval, incompatible_keys: Any) -> None:
    module.refresh_weights()


class FusedNetwork(InferenceEval, IncNetwork):
    """The torch lowering whose eval mode runs the torch inference passes' IR."""

    def __init__(self, net: ir.Network, passed: ir.Network) -> None:
        super().__init__(net)
        self.setup_inference(passed)
