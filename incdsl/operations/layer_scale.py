"""``layer_scale``: each channel times a learned scale (CaiT, ConvNeXt, MetaNeXt), first ``init``
(timm's ``ls_init_value``, 1e-6 by default). The scale is a parameter of the block it is in, at
the layer's name (``as gamma``: timm's ``stages.0.blocks.0.gamma``), not a module of its own:
its torch module is the runtime's ``Parameter`` form, which the lowering registers on the parent."""

from __future__ import annotations

from .. import ir
from ..layers import LayerType, get
from .base import Cost, Operation, TorchModule

LAYER_SCALE = Operation(
    "layer_scale",
    ir.LayerScaleAttrs,
    syntax=(LayerType("layer_scale", (("init", "positive"),), example="layer_scale 1e-6", optional=1),),
    build=lambda word, s: ir.LayerScaleAttrs(init=get(s, "init", 1e-6)),
    cost=lambda node, inputs: Cost(inputs[0][0]),
    label=lambda a: "layer scale",
    describe=lambda a: "layer scale",
    torch=lambda a, shape, flat: TorchModule("Parameter", {"channels": shape[0], "init": a.init}),
)
