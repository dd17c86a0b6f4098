"""Inference weights for the passes' nodes, computed from a compiled network's
parameters: batch norm folded in, the members of a fused group concatenated.

The parameters stay where the torch lowering puts them (at the spec's names),
so a fused or Triton-compiled network loads the reference ``state_dict`` as is.
A node's weights are described once, as plain values (:class:`~..program.Member`), and
computed by plain tensor arithmetic, so ``torch.compile`` traces them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from incdsl import activations
from incdsl.activations import Activation

from ..program import Member


def member_weights(model: nn.Module, member: Member) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv's ``(weight, bias)`` as inference computes it (the bias is never None), the batch
    norm after it folded in when there is one: ``W·s`` and ``β + (b − μ)·s`` with
    ``s = γ / √(σ² + ε)``, in float32, then cast back to the parameters' dtype."""
    conv = model.get_submodule(member.conv)
    weight = conv.weight.detach()
    if not member.bn:
        return weight, conv.bias.detach() if conv.bias is not None else weight.new_zeros(weight.shape[0])
    bn = model.get_submodule(member.bn)
    gamma = bn.weight.detach().float() if bn.weight is not None else 1.0  # affine=false: γ = 1, β = 0
    scale = gamma / torch.sqrt(bn.running_var.float() + member.eps)
    folded_w = weight.float() * scale[:, None, None, None]
    # Without a conv bias, no zeros enter the sum: Inductor's freezing leaves ops on fresh zeros to run every call.
    shift = -bn.running_mean.float() if conv.bias is None else conv.bias.detach().float() - bn.running_mean.float()
    folded_b = shift * scale if bn.bias is None else bn.bias.detach().float() + shift * scale
    return folded_w.to(weight.dtype), folded_b.to(weight.dtype)


def activation_floor(bias: torch.Tensor, act: Activation | None) -> torch.Tensor:
    """Per output column, 0 for ReLU and −∞ for linear: ``max(y, floor)`` applies the activation;
    an activation no floor applies (GELU) gets −∞, and its epilogue applies it after."""
    value = activations.floor(act)
    return torch.full_like(bias, float("-inf") if value is None else value)


def stacked_weights(model: nn.Module, group: Sequence[Member]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fused group's ``(weight [ΣCout, Cin, 1, 1], bias, floor)``, its members' stacked:
    ``max(y, floor)`` is each member's activation."""
    folded = [member_weights(model, m) for m in group]
    floors = [activation_floor(b, m.act) for (_, b), m in zip(folded, group, strict=True)]
    return torch.cat([w for w, _ in folded]), torch.cat([b for _, b in folded]), torch.cat(floors)
