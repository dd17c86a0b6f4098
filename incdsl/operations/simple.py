"""Layers without weights that the backends run as they are: ``dropout``, ``flatten``,
``softmax`` and each activation as a layer of its own (``relu``, ``gelu``)."""

from __future__ import annotations

from .. import activations, ir
from ..activations import FORMS
from ..layers import LayerType, get
from .base import Operation, TorchModule

DROPOUT = Operation(
    "dropout",
    ir.DropoutAttrs,
    syntax=(LayerType("dropout", (("p", "fraction"),), example="dropout 0.4"),),
    build=lambda word, s: ir.DropoutAttrs(p=get(s, "p")),
    label=lambda a: f"dropout ({a.p:.0%})",
    describe=lambda a: f"dropout {a.p:g}",
    fill="#eeeeee",
    torch=lambda a, shape, flat: TorchModule("nn.Dropout", {"p": a.p}),
)


def _flatten_infer(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    c, h, w = inputs[0]
    return (c * h * w, 1, 1)


FLATTEN = Operation(
    "flatten",
    ir.FlattenAttrs,
    syntax=(LayerType("flatten", (), example="flatten"),),
    build=lambda word, s: ir.FlattenAttrs(),
    infer=_flatten_infer,
    rank="flat",
    label=lambda a: "flatten",
    fill="#eeeeee",
    torch=lambda a, shape, flat: TorchModule("nn.Flatten", {}),
)


def activation_module(act: activations.Activation) -> TorchModule:
    """An activation as a module: ``nn.ReLU()``, ``nn.GELU(approximate="tanh")``."""
    form = FORMS[act]
    return TorchModule(f"nn.{form.module}", dict(form.kwargs))


def _activation(act: activations.Activation) -> Operation:
    return Operation(
        act.value,
        ir.ActivationAttrs,
        syntax=(LayerType(act.value, (), example=act.value),),
        build=lambda word, s: ir.ActivationAttrs(op=word),
        label=lambda a: FORMS[act].label,
        fill="#eeeeee",
        torch=lambda a, shape, flat: activation_module(act),
    )


ACTIVATIONS = tuple(_activation(a) for a in activations.Activation)

SOFTMAX = Operation(
    "softmax",
    ir.SoftmaxAttrs,
    syntax=(LayerType("softmax", (), example="softmax"),),
    build=lambda word, s: ir.SoftmaxAttrs(),
    label=lambda a: "softmax",
    fill="#fce5cd",
    torch=lambda a, shape, flat: TorchModule("nn.Softmax", {"dim": 1}),
)
