"""The few pieces a compiled network needs besides ``torch.nn``.

This file is used twice: imported by the in-memory lowering, and copied
verbatim into generated sources (``incdsl compile -o net.py``) so that those
need only torch. Keep it self-contained: imports of torch only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Module):
    """A bias-free convolution followed by batch norm (its activation is applied by the caller)."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Group(nn.Module):
    """A named scope of a spec (a block instance, a branch): it only holds submodules.
    ``group[1]`` reaches a child named by position."""

    def __getitem__(self, key: int | str) -> nn.Module:
        return self._modules[str(key)]  # type: ignore[return-value]


def residual(shortcut: torch.Tensor, branch: torch.Tensor, scale: float, relu: bool) -> torch.Tensor:
    """``act(shortcut + scale * branch)``, the Inception-ResNet residual unit."""
    out = branch * scale + shortcut
    return F.relu_(out) if relu else out


class AuxOutput(NamedTuple):
    name: str
    logits: torch.Tensor
    weight: float


class TrainOutput(NamedTuple):
    """What a network with auxiliary heads returns in training mode.

    ``out.loss(criterion, target)`` is the main loss plus each aux head's loss
    times its weight from the spec (0.3 for GoogLeNet's two heads).
    """

    logits: torch.Tensor
    aux: tuple[AuxOutput, ...]

    def loss(self, criterion, target: torch.Tensor) -> torch.Tensor:
        total = criterion(self.logits, target)
        for head in self.aux:
            total = total + head.weight * criterion(head.logits, target)
        return total
