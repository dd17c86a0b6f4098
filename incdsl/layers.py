"""What each layer type accepts, and how its written form becomes IR attributes.

A layer line is ``op positional... flag... key=value...``; network defaults
(``defaults:``) supply flags and options that the line itself can override.
This module holds the machinery of that vocabulary (a :class:`LayerType`, the kinds of
values, the shared flags, and turning a line into settings, so that error messages can
list what is valid and suggest the closest word); each layer type's own vocabulary and
its attributes are its entry in the table of operations (``incdsl/operations/``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import activations, ast, ir, limits
from .errors import Span, SpecError, did_you_mean


class Symbol(str):
    """A bare word that is not a block parameter: a flag (``linear``) or a symbolic value."""


@dataclass(frozen=True)
class Setting:
    value: Any
    span: Span


@dataclass(frozen=True)
class LayerType:
    """The vocabulary of one layer type."""

    name: str
    #: Positional slots, in order: (slot, kind) with kind "window", "size", "count", "fraction".
    positional: tuple[tuple[str, str], ...]
    #: Flags: word → (setting, value).
    flags: dict[str, tuple[str, Any]] = field(default_factory=dict)
    #: Options: key → kind ("int" 1 to MAX_SPATIAL, "count" 1 to MAX_CHANNELS, "index" ≥ 0, "float",
    #: "positive" > 0, "nonnegative" ≥ 0, "bool", "pair", "act", "parts").
    options: dict[str, str] = field(default_factory=dict)
    example: str = ""
    #: How many of the last positional slots a line may leave out.
    optional: int = 0

    def usage(self) -> str:
        return f"e.g. `{self.example}`" if self.example else ""


#: Each activation is a flag (``conv 1x1 64 gelu``), and ``linear`` is none.
ACT_FLAGS = {**{a.value: ("act", a) for a in activations.Activation}, "linear": ("act", None)}
PAD_FLAGS = {"same": ("padding", "same"), "valid": ("padding", "valid"), "V": ("padding", "valid")}
BIAS_FLAGS = {"bias": ("bias", True), "nobias": ("bias", False)}
ROUND_FLAGS = {"ceil": ("ceil", True), "floor": ("ceil", False)}
BN_FLAGS = {"bn": ("bn", True), "nobn": ("bn", False)}

#: Settings of compound statements, accepted in ``defaults:`` too.
CONTAINER_OPTIONS: dict[str, dict[str, str]] = {
    "concat": {"base": "index"},
    "split": {"base": "index"},
    "residual": {"scale": "float", "act": "act", "drop_path": "rate", "drop_path_rate": "rate"},
}
CONTAINER_FLAGS: dict[str, dict[str, tuple[str, Any]]] = {"concat": {}, "split": {}, "residual": dict(ACT_FLAGS)}


def expect(cond: bool, message: str, span: Span, hint: str | None = None) -> None:
    if not cond:
        raise SpecError(message, span, hint)


def as_int(value: Any, what: str, span: Span, *, minimum: int = 1, maximum: int | None = None) -> int:
    ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    expect(ok and not isinstance(value, (bool, Symbol)), f"{what} must be a whole number; got `{value}`", span)
    number = int(value)
    expect(number >= minimum, f"{what} must be at least {minimum}; got {number}", span)
    if maximum is not None:
        expect(number <= maximum, f"{what} {number:,} is over the limit of {maximum:,}", span,
                hint="no Inception network comes near it; is a digit too many?")
    return number


def as_float(value: Any, what: str, span: Span, *, minimum: float | None = None, strict: bool = False) -> float:
    """A number (finite: every number of a spec is bounded where it is read or computed), at
    least ``minimum`` (above it, with ``strict``)."""
    expect(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        f"{what} must be a number; got `{value}`",
        span,
    )
    number = float(value)
    if minimum is not None:
        ok = number > minimum if strict else number >= minimum
        expect(ok, f"{what} must be {'greater than' if strict else 'at least'} {minimum:g}; got {number:g}", span,
                hint="an epsilon keeps a division away from zero: it must be positive, e.g. 1e-5" if what == "eps" else None)
    return number


def as_bool(value: Any, what: str, span: Span) -> bool:
    expect(
        isinstance(value, Symbol) and value in ("true", "false"), f"{what} must be `true` or `false`; got `{value}`", span
    )
    return value == "true"


def as_act(value: Any, span: Span) -> activations.Activation | None:
    words = activations.WORDS
    expect(
        isinstance(value, Symbol) and value in words,
        f"act must be {', '.join(f'`{w}`' for w in words[:-1])} or `{words[-1]}`; got `{value}`",
        span,
        did_you_mean(str(value), words),
    )
    return activations.parse(value)


_PARTS_HINT = (
    'write the patterns of the main part, the batch norm and optionally the activation module, '
    'with X for the layer\'s name: children `parts="X.conv X.bn"`, siblings `parts="X X_bn"`'
)


def as_parts(value: Any, span: Span) -> ir.Parts:
    """``"X.conv X.bn [X.relu]"`` (children of the layer's module X) or ``"X X_bn [X_relu]"``
    (siblings of X in its scope) → :class:`~incdsl.ir.Parts`."""
    expect(isinstance(value, str) and not isinstance(value, Symbol), f"parts= takes a quoted pattern list; got `{value}`", span, _PARTS_HINT)
    patterns = value.split()
    expect(len(patterns) in (2, 3), f"parts= names 2 or 3 parts (main, bn, activation); got {len(patterns)}", span, _PARTS_HINT)
    for pattern in patterns:
        child = pattern.startswith("X.")
        name = pattern[2:] if child else pattern.replace("X", "", 1)
        expect(pattern.count("X") >= 1 and (child or "." not in pattern), f"`{pattern}` is not a part pattern", span, _PARTS_HINT)
        expect(not child or (name and "." not in name and ":" not in name), f"`{pattern}`: a child part is `X.name`", span, _PARTS_HINT)
    children = [p.startswith("X.") for p in patterns]
    expect(
        all(children) or not any(children),
        f"parts `{value}` mixes children (X.name) and siblings",
        span,
        hint="the parts are either all inside the layer's module (X.conv X.bn) or all beside it (X X_bn)",
    )
    expect(len(set(patterns)) == len(patterns), f"parts `{value}` names one module twice", span, _PARTS_HINT)
    return ir.Parts(main=patterns[0], bn=patterns[1], act=patterns[2] if len(patterns) == 3 else None)


def convert_option(kind: str, key: str, value: Any, span: Span) -> Any:
    if kind == "int":
        return as_int(value, key, span, maximum=limits.MAX_SPATIAL)
    if kind == "index":
        return as_int(value, key, span, minimum=0)
    if kind == "count":
        return as_int(value, key, span, maximum=limits.MAX_CHANNELS)
    if kind == "float":
        return as_float(value, key, span)
    if kind == "positive":
        return as_float(value, key, span, minimum=0.0, strict=True)
    if kind == "nonnegative":
        return as_float(value, key, span, minimum=0.0)
    if kind == "rate":
        rate = as_float(value, key, span, minimum=0.0)
        expect(rate < 1.0, f"{key} is a drop probability, in [0, 1); got {rate:g}", span)
        return rate
    if kind == "bool":
        return as_bool(value, key, span)
    if kind == "act":
        return as_act(value, span)
    if kind == "parts":
        return as_parts(value, span)
    if kind == "pair":
        if isinstance(value, ast.Dims):
            expect(len(value.sizes) == 2 and value.stride is None, f"{key} takes N or HxW; got `{value.text}`", span)
            for size in value.sizes:
                as_int(size, key, span, minimum=0, maximum=limits.MAX_SPATIAL)
            return tuple(value.sizes)
        number = as_int(value, key, span, minimum=0, maximum=limits.MAX_SPATIAL)
        return (number, number)
    raise AssertionError(kind)


def apply_settings(
    op: str,
    flags: dict[str, tuple[str, Any]],
    options: dict[str, str],
    words: Sequence[tuple[Symbol, Span]],
    keyed: Sequence[tuple[str, Any, Span]],
    settings: dict[str, Setting],
    parameters: Sequence[str] = (),
) -> None:
    """Fold flags and ``key=value`` options into ``settings`` (later wins)."""
    for word, span in words:
        if word not in flags:
            hint = did_you_mean(word, [*flags, *parameters])
            if hint is None and flags:
                hint = f"{op} accepts {', '.join(f'`{f}`' for f in flags)}"
            raise SpecError(f"unknown option `{word}` for {op}", span, hint)
        setting, value = flags[word]
        settings[setting] = Setting(value, span)
    for key, value, span in keyed:
        if key not in options:
            hint = did_you_mean(key, options) or (
                f"{op} takes {', '.join(f'`{k}=`' for k in options)}" if options else f"{op} takes no options"
            )
            raise SpecError(f"unknown option `{key}=` for {op}", span, hint)
        settings[key] = Setting(convert_option(options[key], key, value, span), span)


def window(setting: Setting, op: str) -> tuple[ir.Pair, int | None]:
    dims: ast.Dims = setting.value
    expect(
        len(dims.sizes) == 2,
        f"{op} takes a kernel size like 3x3 or 1x7; `{dims.text}` has {len(dims.sizes)} sizes",
        setting.span,
    )
    kh, kw = dims.sizes
    expect(kh >= 1 and kw >= 1, f"kernel sizes must be at least 1; got `{dims.text}`", setting.span)
    for size in (kh, kw):
        as_int(size, "kernel size", setting.span, maximum=limits.MAX_SPATIAL)
    if dims.stride is not None:
        as_int(dims.stride, "stride", setting.span, maximum=limits.MAX_SPATIAL)
    return (kh, kw), dims.stride


def padding(settings: dict[str, Setting], kernel: ir.Pair, op: str, default: str) -> ir.Pair:
    if "pad" in settings:
        return settings["pad"].value
    mode = settings["padding"].value if "padding" in settings else default
    if mode == "valid":
        return (0, 0)
    kh, kw = kernel
    span = settings["padding"].span if "padding" in settings else settings["window"].span
    expect(
        kh % 2 == 1 and kw % 2 == 1,
        f"`same` padding needs an odd kernel; {op} {kh}x{kw} has an even side",
        span,
        hint="write `V` (valid) or an explicit `pad=N`",
    )
    return (kh // 2, kw // 2)


def stride(settings: dict[str, Setting], from_window: int | None) -> ir.Pair:
    step = settings["stride"].value if "stride" in settings else 1 if from_window is None else from_window
    return (step, step)


def get(settings: dict[str, Setting], key: str, default: Any = None) -> Any:
    """A setting's value, or ``default`` where neither the line nor the defaults wrote it."""
    return settings[key].value if key in settings else default


def fill_positional(layer: LayerType, values: Sequence[tuple[Any, Span]], item_span: Span) -> dict[str, Setting]:
    """Assign positional values to the layer type's slots, checking kinds."""
    settings: dict[str, Setting] = {}
    slots = list(layer.positional)
    for value, span in values:
        if not slots:
            expected = ", ".join(s for s, _ in layer.positional) or "no values"
            raise SpecError(
                f"too many values for {layer.name}: `{_show(value)}` is one too many",
                span,
                hint=f"{layer.name} takes {expected}; {layer.usage()}",
            )
        slot, kind = slots.pop(0)
        settings[slot] = Setting(_convert_positional(layer, slot, kind, value, span), span)
    if len(slots) > layer.optional:
        missing = ", ".join(s for s, _ in slots[: len(slots) - layer.optional])
        raise SpecError(f"{layer.name} is missing its {missing}", item_span, hint=layer.usage())
    return settings


def _show(value: Any) -> str:
    return value.text if isinstance(value, ast.Dims) else str(value)


def _convert_positional(layer: LayerType, slot: str, kind: str, value: Any, span: Span) -> Any:
    if kind == "window":
        expect(
            isinstance(value, ast.Dims),
            f"{layer.name} needs a kernel size like 3x3 first; got `{_show(value)}`",
            span,
            hint=layer.usage(),
        )
        return value
    if kind == "size":
        if isinstance(value, ast.Dims):
            expect(len(value.sizes) == 2 and value.stride is None, f"expected HxW; got `{value.text}`", span)
            sizes = value.sizes
        else:
            n = as_int(value, slot, span)
            sizes = (n, n)
        expect(min(sizes) >= 1 and max(sizes) <= limits.MAX_SPATIAL, f"{slot} must be 1 to {limits.MAX_SPATIAL:,}", span)
        return tuple(sizes)
    expect(
        not isinstance(value, ast.Dims),
        f"{layer.name} does not take a size here; got `{_show(value)}`",
        span,
        hint=layer.usage(),
    )
    if kind == "count":
        what = "channel count" if slot in ("out_channels", "out_features") else slot
        count = as_int(value, what, span)
        expect(
            count <= limits.MAX_CHANNELS,
            f"{what} {count:,} is over the limit of {limits.MAX_CHANNELS:,}",
            span,
            hint="no Inception network comes near it; is a digit too many?",
        )
        return count
    if kind == "fraction":
        p = as_float(value, slot, span)
        expect(0.0 <= p < 1.0, f"dropout probability must be in [0, 1); got {p}", span)
        return p
    if kind == "positive":
        return as_float(value, slot, span, minimum=0.0, strict=True)
    raise AssertionError(kind)
