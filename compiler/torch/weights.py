"""Inference weights for the passes' nodes, computed from a compiled network's
parameters: batch norm folded in, the members of a fused group concatenated.

The parameters stay where the torch lowering puts them (at the spec's names),
so a fused or Triton-compiled network loads the reference ``state_dict`` as is.
"""

from __future__ import annotations

import torch
from torch import nn

from incdsl import ir


def conv_weights(model: nn.Module, name: str, attrs: ir.ConvAttrs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of conv ``name`` as inference computes it; the bias is never None.

    With ``folded_bn_eps`` set, the batch norm after the conv is folded in:
    ``W·s`` and ``β + (b − μ)·s`` with ``s = γ / √(σ² + ε)``, in float32, then
    cast back to the parameters' dtype.
    """
    # Where the parts are follows the spec's naming rule (`parts=`), in the lowering and in generated source alike.
    paths = ir.part_paths(ir.Node(name=name, attrs=attrs.model_copy(update={"bn_eps": attrs.bn_eps if attrs.bn_eps is not None else attrs.folded_bn_eps})))
    conv = model.get_submodule(paths["main"])
    bn = model.get_submodule(paths["bn"]) if "bn" in paths else None
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(weight[:, 0, 0, 0])
    if attrs.folded_bn_eps is None:
        return weight, bias
    assert bn is not None and bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + attrs.folded_bn_eps)
    folded_w = weight.float() * scale[:, None, None, None]
    folded_b = bn.bias.detach().float() + (bias.float() - bn.running_mean.float()) * scale
    return folded_w.to(weight.dtype), folded_b.to(weight.dtype)


def activation_floor(bias: torch.Tensor, act: str | None) -> torch.Tensor:
    """Per output column, 0 for ReLU and −∞ for linear: ``max(y, floor)`` applies the activation."""
    return torch.full_like(bias, 0.0 if act == "relu" else float("-inf"))


def group_weights(
    model: nn.Module, attrs: ir.Conv1x1GroupAttrs
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fused group's ``(weight [ΣCout, Cin, 1, 1], bias, floor)``: ``floor`` is 0 for
    a member's columns with ReLU and −∞ without, so ``max(y, floor)`` is each one's
    activation (with a residual add, the add's, applied after it)."""
    weights, biases, floors = [], [], []
    for member in attrs.members:
        w, b = conv_weights(model, member.name, member.conv)
        act = attrs.residual.act if attrs.residual is not None else member.conv.act
        weights.append(w)
        biases.append(b)
        floors.append(activation_floor(b, act))
    return torch.cat(weights), torch.cat(biases), torch.cat(floors)
