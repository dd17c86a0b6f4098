"""``maxpool`` and ``avgpool`` (windowed, PyTorch's ``ceil_mode`` and ``count_include_pad``), and
``adaptive_avgpool`` (``global_avgpool`` is its 1×1 form)."""

from __future__ import annotations

from .. import ir
from ..layers import PAD_FLAGS, ROUND_FLAGS, LayerType, expect, get, padding, stride, window
from .base import Operation, Settings, TorchModule, padding_note, pair_text, patch, windowed

_FLAGS = {**PAD_FLAGS, **ROUND_FLAGS}
_OPTIONS = {"stride": "int", "pad": "pair"}


def _build(word: str, settings: Settings) -> ir.PoolAttrs:
    kernel, step = window(settings["window"], word)
    pad = padding(settings, kernel, word, "valid")
    expect(
        pad[0] <= kernel[0] // 2 and pad[1] <= kernel[1] // 2,
        f"{word} padding {pad[0]}x{pad[1]} is more than half its {kernel[0]}x{kernel[1]} window",
        settings.get("pad", settings["window"]).span,
    )
    return ir.PoolAttrs(
        op=word,  # type: ignore[arg-type]
        kernel=kernel,
        stride=stride(settings, step),
        padding=pad,
        ceil=get(settings, "ceil", False),
        count_include_pad=get(settings, "count_include_pad", True),
    )


def _infer(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    a: ir.PoolAttrs = node.attrs  # type: ignore[assignment]
    h, w = windowed(node, inputs[0], a.kernel, a.stride, a.padding, ceil=a.ceil)
    return (inputs[0][0], h, w)


def _torch(a: ir.PoolAttrs, shape: ir.Shape, flat: bool) -> TorchModule:
    kwargs = {"kernel_size": _pair(a.kernel), "stride": _pair(a.stride), "padding": _pair(a.padding), "ceil_mode": a.ceil}
    if a.op == "avgpool":
        return TorchModule("nn.AvgPool2d", {**kwargs, "count_include_pad": a.count_include_pad})
    return TorchModule("nn.MaxPool2d", kwargs)


def _pair(p: ir.Pair) -> tuple[int, int]:
    return (int(p[0]), int(p[1]))


def _describe(a: ir.PoolAttrs) -> str:
    return f"{a.op} {pair_text(a.kernel)}/{a.stride[0]}{padding_note(a, False)}"


def _pool(op: str, label: str, example: str, options: dict[str, str]) -> Operation:
    return Operation(
        op,
        ir.PoolAttrs,
        syntax=(LayerType(op, (("window", "window"),), _FLAGS, options, example),),
        build=_build,
        infer=_infer,
        rank="map",
        spatial=True,
        label=lambda a: label,
        patch=patch,
        describe=_describe,
        fill="#f4cccc",
        torch=_torch,
    )


MAXPOOL = _pool("maxpool", "max pool", "maxpool 3x3/2", _OPTIONS)
AVGPOOL = _pool("avgpool", "avg pool", "avgpool 5x5/3 V", {**_OPTIONS, "count_include_pad": "bool"})


def _adaptive_build(word: str, settings: Settings) -> ir.AdaptiveAvgPoolAttrs:
    return ir.AdaptiveAvgPoolAttrs(size=(1, 1) if word == "global_avgpool" else settings["size"].value)


def _adaptive_infer(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    a: ir.AdaptiveAvgPoolAttrs = node.attrs  # type: ignore[assignment]
    return (inputs[0][0], *a.size)


ADAPTIVE_AVGPOOL = Operation(
    "adaptive_avgpool",
    ir.AdaptiveAvgPoolAttrs,
    syntax=(
        LayerType("global_avgpool", (), example="global_avgpool"),
        LayerType("adaptive_avgpool", (("size", "size"),), example="adaptive_avgpool 4x4"),
    ),
    build=_adaptive_build,
    infer=_adaptive_infer,
    rank="map",
    spatial=True,
    label=lambda a: "global avg pool" if a.size == (1, 1) else f"adaptive avg pool {a.size[0]}×{a.size[1]}",
    describe=lambda a: "global avgpool" if a.size == (1, 1) else f"adaptive avgpool {pair_text(a.size)}",
    fill="#f4cccc",
    torch=lambda a, shape, flat: TorchModule("nn.AdaptiveAvgPool2d", {"output_size": _pair(a.size)}),
)
