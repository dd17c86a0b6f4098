"""``linear``: a fully connected layer (maps are flattened first), with its batch norm and
activation as parts."""

from __future__ import annotations

from .. import ir
from ..layers import ACT_FLAGS, BIAS_FLAGS, BN_FLAGS, LayerType, get
from .base import Cost, Operation, Settings, TorchModule, act_note


def _build(word: str, settings: Settings) -> ir.LinearAttrs:
    bn = get(settings, "bn", False)
    return ir.LinearAttrs(
        out_features=get(settings, "out_features"),
        bias=get(settings, "bias", not bn),
        act=get(settings, "act"),
        bn_eps=get(settings, "eps", 1e-5) if bn else None,
        parts=get(settings, "parts", ir.Parts(main="X.linear")),
    )


def _cost(node: ir.Node, inputs: list[ir.Shape]) -> Cost:
    a: ir.LinearAttrs = node.attrs  # type: ignore[assignment]
    c, h, w = inputs[0]
    weights = c * h * w * a.out_features
    extra = (a.out_features if a.bias else 0) + (2 * a.out_features if a.bn_eps is not None else 0)
    return Cost(weights + extra, weights, weights)


def _torch(a: ir.LinearAttrs, shape: ir.Shape, flat: bool) -> TorchModule:
    c, h, w = shape
    return TorchModule("nn.Linear", {"in_features": c * h * w, "out_features": a.out_features, "bias": a.bias})


LINEAR = Operation(
    "linear",
    ir.LinearAttrs,
    syntax=(
        LayerType("linear", (("out_features", "count"),), {**ACT_FLAGS, **BIAS_FLAGS, **BN_FLAGS},
                  {"act": "act", "eps": "positive", "parts": "parts"}, "linear 1000"),
    ),
    build=_build,
    infer=lambda node, inputs, net: (node.attrs.out_features, 1, 1),  # type: ignore[union-attr]
    cost=_cost,
    rank="flat",
    deep=True,
    label=lambda a: "linear",
    describe=lambda a: f"linear {a.out_features}",
    fill="#d9d2e9",
    notes=lambda a: act_note(a.act),
    torch=_torch,
    flatten=True,
)
