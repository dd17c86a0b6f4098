"""The normalisations that were in the family before LayerNorm: ``lrn`` (GoogLeNet's stem),
``bn`` (batch norm as a layer of its own) and ``l2norm`` (embedding heads)."""

from __future__ import annotations

from .. import ir
from ..layers import LayerType, get
from .base import Cost, Operation, Settings, TorchModule

LRN = Operation(
    "lrn",
    ir.LRNAttrs,
    syntax=(
        LayerType("lrn", (("size", "count"),), options={"alpha": "nonnegative", "beta": "nonnegative", "k": "positive"},
                  example="lrn 5 alpha=0.0001 beta=0.75"),
    ),
    build=lambda word, s: ir.LRNAttrs(size=get(s, "size"), alpha=get(s, "alpha", 1e-4), beta=get(s, "beta", 0.75),
                                      k=get(s, "k", 1.0)),
    rank="map",
    spatial=True,
    label=lambda a: "LRN",
    describe=lambda a: f"LRN {a.size}",
    fill="#fff2cc",
    torch=lambda a, shape, flat: TorchModule("nn.LocalResponseNorm", {"size": a.size, "alpha": a.alpha, "beta": a.beta, "k": a.k}),
)


def _bn_cost(node: ir.Node, inputs: list[ir.Shape]) -> Cost:
    return Cost(2 * inputs[0][0] if node.attrs.affine else 0)  # type: ignore[union-attr]


def _bn_build(word: str, settings: Settings) -> ir.BatchNormAttrs:
    return ir.BatchNormAttrs(eps=get(settings, "eps", 1e-5), affine=get(settings, "affine", True))


BN = Operation(
    "bn",
    ir.BatchNormAttrs,
    syntax=(LayerType("bn", (), options={"eps": "positive", "affine": "bool"}, example="bn eps=0.001"),),
    build=_bn_build,
    cost=_bn_cost,
    # BatchNorm1d on features (after ``linear`` or ``flatten``), BatchNorm2d on maps
    torch=lambda a, shape, flat: TorchModule(
        "nn.BatchNorm1d" if flat else "nn.BatchNorm2d", {"num_features": shape[0], "eps": a.eps, "affine": a.affine}
    ),
)

L2NORM = Operation(
    "l2norm",
    ir.L2NormAttrs,
    syntax=(LayerType("l2norm", (), options={"eps": "positive"}, example="l2norm"),),
    build=lambda word, s: ir.L2NormAttrs(eps=get(s, "eps", 1e-12)),
    torch=lambda a, shape, flat: TorchModule("L2Norm", {"eps": a.eps}),
)
