"""``conv`` (grouped with ``groups=``) and ``dwconv`` (depthwise): a 2-d convolution, with its
batch norm and activation as parts."""

from __future__ import annotations

from .. import activations, ir
from ..errors import SpecError
from ..layers import ACT_FLAGS, BIAS_FLAGS, BN_FLAGS, PAD_FLAGS, LayerType, get, padding, stride, window
from .base import (
    Cost,
    Operation,
    Settings,
    TorchModule,
    act_note,
    padding_note,
    pair_text,
    patch,
    windowed,
    with_origin,
)

_FLAGS = {**ACT_FLAGS, **PAD_FLAGS, **BIAS_FLAGS, **BN_FLAGS}
_OPTIONS = {"stride": "int", "pad": "pair", "eps": "positive", "act": "act", "parts": "parts"}


def _build(word: str, settings: Settings) -> ir.ConvAttrs:
    kernel, step = window(settings["window"], word)
    bn = get(settings, "bn", False)
    return ir.ConvAttrs(
        out_channels=get(settings, "out_channels"),
        kernel=kernel,
        groups=get(settings, "groups", 1) if word == "conv" else None,
        stride=stride(settings, step),
        padding=padding(settings, kernel, word, "same"),
        bias=get(settings, "bias", not bn),
        bn_eps=get(settings, "eps", 1e-5) if bn else None,
        act=get(settings, "act", activations.Activation.RELU),
        parts=get(settings, "parts", ir.Parts()),
    )


def _settle(node: ir.Node, shape: ir.Shape) -> ir.ConvAttrs:
    """A conv's groups and width made whole numbers (a depthwise conv's are its input's
    channels), checked to divide the input's and the output's channels as PyTorch requires."""
    a: ir.ConvAttrs = node.attrs  # type: ignore[assignment]
    cin = shape[0]
    groups = cin if a.groups is None else a.groups
    cout = cin if a.out_channels is None else a.out_channels
    if cin % groups or cout % groups:
        what = f"dwconv `{node.name}`" if a.groups is None else f"conv `{node.name}` with groups={groups}"
        raise SpecError(
            f"{what} reads {cin} channels and writes {cout}: "
            f"{groups} groups must divide both, and {_not_divided(groups, cin, cout)}",
            node.span,
            hint=with_origin(
                "a depthwise conv's width is a multiple of its input's channels"
                if a.groups is None
                else "each group reads in/groups channels and writes out/groups: pick groups that divide both",
                node,
            ),
        )
    return a.model_copy(update={"groups": groups, "out_channels": cout})


def _not_divided(groups: int, cin: int, cout: int) -> str:
    bad = [f"{n} ({what})" for n, what in ((cin, "in"), (cout, "out")) if n % groups]
    return f"{' and '.join(bad)} {'is not a multiple' if len(bad) == 1 else 'are not multiples'} of {groups}"


def _infer(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    a: ir.ConvAttrs = node.attrs  # type: ignore[assignment]
    h, w = windowed(node, inputs[0], a.kernel, a.stride, a.padding, ceil=False)
    return (a.out_channels, h, w)  # type: ignore[return-value]


def _cost(node: ir.Node, inputs: list[ir.Shape]) -> Cost:
    a: ir.ConvAttrs = node.attrs  # type: ignore[assignment]
    assert node.shape is not None and a.out_channels is not None and a.groups is not None
    weights = a.out_channels * (inputs[0][0] // a.groups) * a.kernel[0] * a.kernel[1]
    extra = (a.out_channels if a.bias else 0) + (2 * a.out_channels if a.bn_eps is not None else 0)
    return Cost(weights + extra, weights * node.shape[1] * node.shape[2], weights)


def _label(a: ir.ConvAttrs) -> str:
    return f"convolution, {a.groups} groups" if a.groups != 1 else "convolution"


def _describe(a: ir.ConvAttrs) -> str:
    step = f"/{a.stride[0]}" if a.stride != (1, 1) else ""
    groups = f" groups={a.groups}" if a.groups != 1 else ""
    return f"conv {pair_text(a.kernel)}{step}{padding_note(a, True)}{groups}, {a.out_channels}"


def _torch(a: ir.ConvAttrs, shape: ir.Shape, flat: bool) -> TorchModule:
    return TorchModule(
        "nn.Conv2d",
        {
            "in_channels": shape[0],
            "out_channels": a.out_channels,
            "kernel_size": _pair(a.kernel),
            "stride": _pair(a.stride),
            "padding": _pair(a.padding),
            "bias": a.bias,
            # only where it is not 1, so the generated source of an ungrouped conv stays as it was
            **({"groups": a.groups} if a.groups != 1 else {}),
        },
    )


def _notes(a: ir.ConvAttrs) -> tuple[str, ...]:
    bn = ("BN",) if a.bn_eps is not None else ()
    if a.act is None:
        return (*bn, "linear")
    return bn if a.act is activations.Activation.RELU else (*bn, *act_note(a.act))  # a conv's ReLU goes without saying


def _pair(p: ir.Pair) -> tuple[int, int]:
    return (int(p[0]), int(p[1]))


CONV = Operation(
    "conv",
    ir.ConvAttrs,
    syntax=(
        LayerType(
            "conv", (("window", "window"), ("out_channels", "count")), _FLAGS, {**_OPTIONS, "groups": "count"},
            "conv 3x3/2 64 V",
        ),
        # Depthwise (Xception's "depthwise separable" first half): one group per input channel;
        # the width, a multiple of the input's, is the input's unless written.
        LayerType("dwconv", (("window", "window"), ("out_channels", "count")), _FLAGS, _OPTIONS,
                  "dwconv 3x3 linear", optional=1),
    ),
    build=_build,
    settle=_settle,
    infer=_infer,
    cost=_cost,
    rank="map",
    spatial=True,
    deep=True,
    label=_label,
    patch=patch,
    describe=_describe,
    fill="#cfe2f3",
    notes=_notes,
    torch=_torch,
)
