"""``normalize``: the fixed per-channel affine of the network's input, written under
``input CxHxW:`` (read with the input in ``incdsl/elaborate/network.py``, not as a layer line:
it has no layer type). Its module, the runtime's ``Normalize``, keeps its scale and shift as
buffers outside the ``state_dict``."""

from __future__ import annotations

from .. import ir
from ..errors import SpecError
from .base import Operation, TorchModule


def _infer(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    a: ir.NormalizeAttrs = node.attrs  # type: ignore[assignment]
    x = inputs[0]
    if len(a.mean) != x[0]:
        raise SpecError(
            f"normalize gives {len(a.mean)} values per statistic, and the input has {x[0]} channel{'s' * (x[0] != 1)}",
            node.span,
            hint=f"give one mean and one std per channel ({x[0]} each), or change the input's channels",
        )
    return x


def _module(a: ir.NormalizeAttrs, shape: ir.Shape, flat: bool) -> TorchModule:
    source = {"from_mean": a.from_mean, "from_std": a.from_std} if a.from_mean is not None else {}
    return TorchModule("Normalize", {"mean": a.mean, "std": a.std, **source})


NORMALIZE = Operation(
    "normalize",
    ir.NormalizeAttrs,
    infer=_infer,
    label=lambda a: "input normalisation",
    describe=lambda a: "normalize" if a.from_mean is None else "normalize (renormalise)",
    torch=_module,
)
