"""``layernorm``: each position normalised over its channels, with a learned scale and shift
per channel (``weight``, ``bias``, as timm names them). On features (after ``linear`` or
``flatten``) it is ``nn.LayerNorm(C)``; on maps, the runtime's ``LayerNorm2d`` normalises the C
values of each pixel (timm's ``LayerNorm2d``: a channels-last MLP head's norm). ``eps`` is
timm's default, 1e-6, not torch's."""

from __future__ import annotations

from .. import ir
from ..layers import LayerType, get
from .base import Cost, Operation, TorchModule

LAYERNORM = Operation(
    "layernorm",
    ir.LayerNormAttrs,
    syntax=(LayerType("layernorm", (), options={"eps": "positive"}, example="layernorm eps=1e-6"),),
    build=lambda word, s: ir.LayerNormAttrs(eps=get(s, "eps", 1e-6)),
    cost=lambda node, inputs: Cost(2 * inputs[0][0]),
    label=lambda a: "LayerNorm",
    torch=lambda a, shape, flat: TorchModule(
        "nn.LayerNorm" if flat else "LayerNorm2d", {"normalized_shape": shape[0], "eps": a.eps}
    ),
)
