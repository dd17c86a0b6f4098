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

#: The activations by their names in the spec language, as functions (a module instance
#: shared by every network would be called from outside the module tree, which FX tracing
#: refuses and a hook on it would see every network's values).
ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


class Chain(nn.Module):
    """Children run one after another, like ``nn.Sequential`` with named children: a layer and
    its parts (conv, batch norm), or a branch. Each keyword names an activation and the
    children it follows (``relu=("conv",)``); those in ``flatten`` flatten their input first
    (a linear layer). ``chain["1"]`` reaches a child by name."""

    def __init__(self, children: dict[str, nn.Module] | None = None, flatten: tuple[str, ...] = (),
                 **after: tuple[str, ...]) -> None:  # fmt: skip
        super().__init__()
        for name, module in (children or {}).items():
            self.add_module(name, module)
        self._after = {act: tuple(names) for act, names in after.items()}
        self._act_after = {name: ACTIVATIONS[act] for act, names in after.items() for name in names}
        self._flatten_before = tuple(flatten)

    def __getitem__(self, key: int | str) -> nn.Module:
        return self._modules[str(key)]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self._modules.items():
            if name in self._flatten_before:
                x = torch.flatten(x, 1)
            x = module(x)  # type: ignore[misc]
            if name in self._act_after:
                x = self._act_after[name](x)  # not in place: a hook on the module keeps the value it saw
        return x

    def extra_repr(self) -> str:
        return ", ".join(f"{act}={names}" for act, names in self._after.items())


class L2Norm(nn.Module):
    """Each sample divided by its L2 norm over channels (``F.normalize(x, dim=1)``)."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each pixel of (N, C, H, W) maps, with a learned scale
    and shift per channel (``weight``, ``bias``): ``nn.LayerNorm(C)`` applied channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class Normalize(nn.Module):
    """A fixed per-channel affine of the input: ``(x − mean) / std``, or with ``from_mean`` and
    ``from_std`` (an input normalised with those) ``(x · from_std + from_mean − mean) / std``, computed
    as ``x · scale + shift`` with ``scale`` and ``shift`` worked out in double precision, as
    torchvision's ``transform_input`` computes them. Its tensors are buffers outside the
    ``state_dict``, so a reference's weights load strictly."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], from_mean: tuple[float, ...] | None = None,
                 from_std: tuple[float, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.mean, self.std, self.from_mean, self.from_std = mean, std, from_mean, from_std
        # in double precision, then rounded once, as torchvision's Python floats are
        wide = torch.float64
        target_mean, target_std = torch.tensor(mean, dtype=wide), torch.tensor(std, dtype=wide)
        source_mean = torch.tensor(from_mean if from_mean is not None else 0.0, dtype=wide)
        source_std = torch.tensor(from_std if from_std is not None else 1.0, dtype=wide)
        scale = (source_std / target_std).float()
        shift = ((source_mean - target_mean) / target_std).float()
        self.register_buffer("scale", scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift

    def extra_repr(self) -> str:
        source = f", from_mean={self.from_mean}, from_std={self.from_std}" if self.from_mean is not None else ""
        return f"mean={self.mean}, std={self.std}{source}"


class Group(nn.Module):
    """A named scope of a spec whose layers its parent runs (a branch that is not a chain):
    it only holds submodules. ``group[1]`` reaches a child named by position."""

    def __getitem__(self, key: int | str) -> nn.Module:
        return self._modules[str(key)]  # type: ignore[return-value]


def residual(
    shortcut: torch.Tensor,
    branch: torch.Tensor,
    scale: float,
    relu: bool,
    drop_path: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """``act(shortcut + scale * branch)``, the Inception-ResNet residual unit; in training with a
    ``drop_path`` rate, each sample's branch is dropped with that probability (stochastic depth)."""
    if drop_path and training:
        branch = drop_samples(branch, drop_path)
    out = branch * scale + shortcut
    return F.relu_(out) if relu else out


def drop_samples(x: torch.Tensor, p: float) -> torch.Tensor:
    """Stochastic depth (Huang et al., 2016), as timm's ``DropPath``: each sample kept with
    probability ``1 - p`` (one Bernoulli draw per sample) and divided by it, or zeroed."""
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


def layer_scale(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x`` (maps or vectors) times its scale."""
    return x * gamma.view(-1, *([1] * (x.dim() - 2)))


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
