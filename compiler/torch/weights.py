"""Inference weights for the passes' nodes, computed from a compiled network's
parameters: batch norm folded in, the members of a fused group concatenated.

The parameters stay where the torch lowering puts them (at the spec's names),
so a fused or Triton-compiled network loads the reference ``state_dict`` as is.
A node's weights are described once, as plain values (:class:`Member`), and
computed by plain tensor arithmetic, so ``torch.compile`` traces them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from incdsl import activations, ir
from incdsl.activations import Activation


@dataclass(frozen=True)
class Member:
    """Where one conv's weights are: its conv module's path, its batch norm's (empty when there
    is none to fold) with that norm's ``eps``, and the activation of its output columns."""

    conv: str
    bn: str
    eps: float
    act: Activation | None


def _member(name: str, conv: ir.ConvAttrs, act: Activation | None) -> Member:
    # Where the parts are follows the spec's naming rule (`parts=`); a folded batch norm is still where the spec puts it.
    eps = conv.folded_bn_eps
    if conv.folded_bn is not None:  # a `bn` layer of its own, not a part of the conv
        return Member(ir.part_paths(ir.Node(name=name, attrs=conv))["main"], conv.folded_bn, eps or 0.0, act)
    bn_eps = conv.bn_eps if conv.bn_eps is not None else eps
    paths = ir.part_paths(ir.Node(name=name, attrs=conv.model_copy(update={"bn_eps": bn_eps})))
    return Member(paths["main"], paths["bn"] if eps is not None else "", eps or 0.0, act)


def members_of(node: ir.Node) -> tuple[Member, ...]:
    """The convs whose weights make a conv's or a fused group's (with a residual add, the add's
    activation applies to every column)."""
    a = node.attrs
    if isinstance(a, ir.Conv1x1GroupAttrs):
        return tuple(_member(m.name, m.conv, a.residual.act if a.residual else m.conv.act) for m in a.members)
    assert isinstance(a, ir.ConvAttrs)
    return (_member(node.name, a, a.act),)


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
