"""What an operation is (:class:`Operation`), and the pieces its entries share: a cost, the
shape helpers of a windowed layer, and the messages' ways of saying where a node is.

Nothing here imports torch: an entry names its torch module as a string (``nn.Conv2d``, or
a class of ``compiler/torch/runtime.py``) that the backend resolves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .. import activations, ir, limits
from ..errors import SpecError
from ..layers import LayerType, Setting

Settings = dict[str, Setting]


@dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0
    weights: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.weights + other.weights)

    def __mul__(self, k: int) -> Cost:
        return Cost(self.params * k, self.macs * k, self.weights * k)


@dataclass(frozen=True)
class TorchModule:
    """A layer's torch module: ``cls(**kwargs)``, ``cls`` a class of ``torch.nn`` (``nn.Conv2d``)
    or of ``compiler/torch/runtime.py`` (``L2Norm``)."""

    cls: str
    kwargs: dict[str, Any]


def _same_shape(node: ir.Node, inputs: list[ir.Shape], net: ir.Network) -> ir.Shape:
    return inputs[0]


def _no_cost(node: ir.Node, inputs: list[ir.Shape]) -> Cost:
    return Cost()


def _no_notes(attrs: Any) -> tuple[str, ...]:
    return ()


def act_note(act: activations.Activation | None) -> tuple[str, ...]:
    """A layer's activation as a picture notes it (nothing for none)."""
    return () if act is None else (activations.FORMS[act].label,)


@dataclass(frozen=True)
class Operation:
    """One operation of the IR (its ``attrs.op``), everything each stage needs of it in one place.

    A layer type of the language has ``syntax`` (the words that write it, with their
    positional values, flags, options and defaults) and ``build`` (a line's settings → its
    attributes), and a ``torch`` module; an operation made by elaboration (``concat``, ``add``)
    or by a pass (``conv1x1_group``, ``slice``) has neither.
    """

    op: str
    #: Its attributes' model (in ``incdsl/ir.py``, the contract with the backends).
    attrs: type[Any]
    #: The layer types that write it (``conv`` and ``dwconv`` both write a conv), in the order
    #: messages list them.
    syntax: tuple[LayerType, ...] = ()
    #: ``(word, settings) → attrs``: a layer line's settings (and the defaults') as attributes.
    build: Callable[[str, Settings], Any] | None = None
    #: Attributes that depend on the input's channels, made whole before shapes are inferred
    #: (a depthwise conv's groups): ``(node, input shape) → attrs``.
    settle: Callable[[ir.Node, ir.Shape], Any] | None = None
    #: ``(node, input shapes, network) → (C, H, W)``; a :class:`SpecError` where it cannot work.
    infer: Callable[[ir.Node, list[ir.Shape], ir.Network], ir.Shape] = _same_shape
    #: ``(node with its shape, input shapes) → Cost`` (params, MACs, weights).
    cost: Callable[[ir.Node, list[ir.Shape]], Cost] = _no_cost
    #: What its value is at run time: "map" (N, C, H, W), "flat" (N, C: after ``linear`` or
    #: ``flatten``) or "keep" (its input's rank).
    rank: Literal["map", "flat", "keep"] = "keep"
    #: Whether it reads maps only (a flat input is a spec error).
    spatial: bool = False
    #: Whether it counts in a row's depth (the paper's layers with weights).
    deep: bool = False
    #: Its type in the params table (``incdsl params``): ``attrs → text``.
    label: Callable[[Any], str] | None = None
    #: Its patch size/stride column in the params table (``3×3/2``), where it has one.
    patch: Callable[[Any], str] | None = None
    #: Its label in pictures (``incdsl draw``), in the spec's words: ``attrs → text``.
    describe: Callable[[Any], str] | None = None
    #: Its fill colour in pictures.
    fill: str = "#ffffff"
    #: What a picture notes beside its name (``BN``, ``linear``, an activation): ``attrs → words``.
    notes: Callable[[Any], tuple[str, ...]] = _no_notes
    #: Its torch module (a conv's or linear's main part): ``(attrs, input shape, input is
    #: flat) → TorchModule``; None for an operation that is no layer module.
    torch: Callable[[Any, ir.Shape, bool], TorchModule] | None = None
    #: Whether it flattens its input before its module (``linear`` on maps).
    flatten: bool = False

    @property
    def has_module(self) -> bool:
        """Whether it is a layer: a module at its spec name in a backend."""
        return self.torch is not None

    def type_label(self, attrs: Any) -> str:
        return self.label(attrs) if self.label is not None else self.op

    def picture_label(self, attrs: Any) -> str:
        return self.describe(attrs) if self.describe is not None else self.op


# --- shapes ------------------------------------------------------------------------------


def where(node: ir.Node) -> str:
    """`` in `scope``` for a node inside a scope, for messages."""
    scope = ir.scope_of(node.name)
    return f" in `{scope}`" if scope else ""


def with_origin(hint: str, node: ir.Node) -> str:
    """``hint``, and where the node's block was instantiated when that is another line."""
    origin, span = node.origin, node.span
    if origin is not None and span is not None and (origin.file, origin.line) != (span.file, span.line):
        return f"{hint}; instantiated at {origin}"
    return hint


def check_size(node: ir.Node, shape: ir.Shape, what: str) -> None:
    """A value (or a padded input) within the limits on its height, width, channels and elements."""
    c, h, w = shape
    if max(h, w) <= limits.MAX_SPATIAL and c * h * w <= limits.MAX_ELEMENTS:
        return
    raise SpecError(
        f"{node.op}{where(node)}: its {what} would be {c:,}×{h:,}×{w:,} (C×H×W) per image, over the limits of "
        f"{limits.MAX_SPATIAL:,} a side and {limits.MAX_ELEMENTS:,} elements",
        node.span,
        hint=with_origin("is a padding, stride or input size far larger than meant?", node),
    )


def _hw(shape: ir.Shape) -> str:
    return f"{shape[1]}x{shape[2]}"


def _window_out(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int | None:
    """PyTorch's output size (``pooling_output_shape``); None when it would be empty."""
    out = (size + 2 * pad - kernel + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out if out >= 1 else None


def windowed(node: ir.Node, shape: ir.Shape, kernel: ir.Pair, stride: ir.Pair, pad: ir.Pair, ceil: bool) -> ir.Pair:
    """The height and width of a windowed layer's output (PyTorch's rule, ``ceil_mode``'s too)."""
    check_size(node, (shape[0], shape[1] + 2 * pad[0], shape[2] + 2 * pad[1]), "padded input")
    out_h = _window_out(shape[1], kernel[0], stride[0], pad[0], ceil)
    out_w = _window_out(shape[2], kernel[1], stride[1], pad[1], ceil)
    if out_h is None or out_w is None:
        padding = f" with padding {pad[0]}x{pad[1]}" if any(pad) else " (no padding)"
        hint = "each stride or valid layer before it shrinks the map: check the input size (`input`, --input)"
        if node.op == "avgpool":
            hint += ", or use `global_avgpool` to pool whatever is left"
        raise SpecError(
            f"{node.op} {kernel[0]}x{kernel[1]}/{stride[0]} on a {_hw(shape)} input{where(node)}: "
            f"the window is larger than its input{padding}, so the output would be empty",
            node.span,
            hint=with_origin(hint, node),
        )
    return out_h, out_w


def pair_text(pair: ir.Pair) -> str:
    """``3×3``, as tables and pictures print a kernel."""
    return f"{pair[0]}×{pair[1]}"


def padding_note(attrs: ir.ConvAttrs | ir.PoolAttrs, default_same: bool) -> str:
    """A windowed layer's padding as a picture notes it: nothing where it is the layer's default."""
    same = ((attrs.kernel[0] - 1) // 2, (attrs.kernel[1] - 1) // 2)
    if attrs.padding == same and same != (0, 0):
        return "" if default_same else " same"
    if attrs.padding == (0, 0):
        return " V" if default_same and attrs.kernel != (1, 1) else ""
    return f" pad={pair_text(attrs.padding)}"


def patch(attrs: ir.ConvAttrs | ir.PoolAttrs) -> str:
    """A windowed layer's patch size and stride, as the papers' tables print them: ``3×3/2``."""
    (kh, kw), (sh, _sw) = attrs.kernel, attrs.stride
    return f"{kh}×{kw}/{sh}"
