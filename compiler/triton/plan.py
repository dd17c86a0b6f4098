"""The eval forward of a Triton-compiled network, prepared once per input
shape, dtype and device: a flat list of steps over numbered value slots.

Building a plan runs the eval program (:class:`~..program.EvalStep`, the steps the
fused torch path and the traceable forward run) once, step by step, and keeps each
step as a closure:

- every value a Triton kernel writes (a fused group's members, a pool
  projection, a residual block's output, a k×k conv with the ``conv`` kernel)
  and every concat buffer lives in one arena, placed by liveness, so the
  kernels' destination tables, grids and arguments are fixed once;
- each Triton launch is compiled (or taken from Triton's cache) with the
  config the :class:`Chooser` picks (a tuned choice, or the default for its
  shape class), and replayed through the compiled kernel's launcher;
- the rest (the stem's convs and pools without the ``conv`` kernel, LRN, the
  head) are torch calls; their results go into their concat slices.

A step that reads a value torch allocated on this call rebinds that one
argument; everything else is bound once. With tensors on the meta device,
building a plan compiles its launches and runs nothing (the AOT check).
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from incdsl import ir
from incdsl.activations import Activation

from ..program import EvalStep, Value
from ..torch import runtime
from ..torch.lower import activate, run_layer
from .conv import POOL_AVG, POOL_AVG_WITH_PAD, POOL_MAX, POOL_NONE, conv_launches
from .epilogue import Destinations, destinations, pixel_rows
from .gemm import _descriptor, gemm_launches, tma_applies
from .launch import Config, Launch
from .operands import precision_of
from .splitk import workspace_floats
from .token_mixer import inception_dw_launch
from .tuning import Shape

Step = Callable[[list[Any]], None]

#: Arena offsets are rounded to this many bytes (TMA wants 16; 256 keeps rows on cache-line pairs).
_ALIGN_BYTES = 256


class Chooser(Protocol):
    """Picks a config for a launch and returns the launches to keep (after tuning or compiling)."""

    def __call__(self, shape: Shape, make: Callable[[Config], list[Launch]], label: str) -> list[Launch]: ...


@dataclass(frozen=True)
class Weights:
    """A node's inference weights: ``weight`` packed [kh·kw·Cin, Cout] for a Triton kernel
    (else torch's [Cout, Cin, kh, kw]); ``bias`` and ``floor`` fp32 for a kernel, and ``act`` its
    epilogue's activation after the floor (:data:`.epilogue.EPILOGUE_CODES`)."""

    weight: torch.Tensor
    bias: torch.Tensor
    floor: torch.Tensor | None = None
    act: int = 0


class Plan:
    """The prepared forward for one input shape; ``plan(x)`` runs it."""

    def __init__(self, steps: list[Step], slots: int, input_slot: int, output_slots: tuple[int, ...], input_place: torch.Tensor,
                 first_outputs: tuple[torch.Tensor, ...], launches: list[Launch], arena: torch.Tensor) -> None:  # fmt: skip
        self.steps = steps
        self.slots = slots
        self.input_slot = input_slot
        self.output_slots = output_slots
        self.input_place = input_place  # the arena's copy of the input
        self.launches = launches  # every Triton launch, in order (for reports and the AOT check)
        self.arena = arena
        self._first_outputs = first_outputs

    def run(self) -> tuple[torch.Tensor, ...]:
        """Run the steps on :attr:`input_place`; the outputs may live in the arena."""
        values: list[Any] = [None] * self.slots
        values[self.input_slot] = self.input_place
        for step in self.steps:
            step(values)
        return tuple(values[s] for s in self.output_slots)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.input_place.copy_(x)
        return tuple(map(self._handed_out, self.run()))

    def output(self) -> tuple[torch.Tensor, ...]:
        """What the run that built the plan computed."""
        return tuple(map(self._handed_out, self._first_outputs))

    def _handed_out(self, out: torch.Tensor) -> torch.Tensor:
        # A value in the arena is overwritten by the next call: hand out a copy.
        in_arena = out.untyped_storage().data_ptr() == self.arena.untyped_storage().data_ptr()
        return out.clone() if in_arena and not out.is_meta else out


def pool_code(pool: ir.PoolAttrs | None) -> tuple[int, int]:
    """The conv kernel's ``(POOL, PK)`` for a group's pool prologue."""
    if pool is None:
        return (POOL_NONE, 1)
    if pool.op == "maxpool":
        return (POOL_MAX, pool.kernel[0])
    return (POOL_AVG_WITH_PAD if pool.count_include_pad else POOL_AVG, pool.kernel[0])


# --- where values live -----------------------------------------------------------------


def _kernel_written(step: EvalStep, kernel_convs: Set[str]) -> tuple[str, ...]:
    """The values a Triton kernel writes when it computes ``step``."""
    if step.kind == "group":
        return step.writes
    return (step.name,) if step.kind == "mixer" or step.name in kernel_convs else ()


@dataclass(frozen=True)
class ArenaLayout:
    """Where the arena's buffers sit: element offsets and sizes, the steps each is alive
    (first written, last read), and the arena's size in elements."""

    offsets: dict[str, int]
    sizes: dict[str, int]
    spans: dict[str, tuple[int, int]]
    total: int


def arena_layout(
    steps: list[EvalStep], values: dict[str, Value], batch: int, itemsize: int, kernel_convs: Set[str],
    outputs: tuple[str, ...] = (),
) -> ArenaLayout:
    """The arena for the eval program ``steps`` at ``batch`` (``kernel_convs``: the convs the
    k×k kernel computes): the input, every concat and every value a kernel writes that is not
    stored in a concat each get a buffer; buffers alive at no common step share memory (greedy,
    largest first, each at the lowest offset that is free)."""
    born: dict[str, int] = {}
    for i, step in enumerate(steps):
        for name in _kernel_written(step, kernel_convs) or (step.name,):
            born.setdefault(name, i)
    last = {steps[j].name: i for i, step in enumerate(steps) for j in step.inputs}

    def root(name: str) -> str:
        while values[name].storage is not None:
            name = values[name].storage[0]  # type: ignore[index]
        return name

    placed = {steps[0].name} | {s.name for s in steps if s.kind == "concat" or values[s.name].storage is not None}
    placed |= {name for s in steps for name in _kernel_written(s, kernel_convs)}
    spans: dict[str, tuple[int, int]] = {}
    for name in placed:
        r = root(name)
        start, stop = born[name], max(last.get(name, len(steps)), born[name])
        if name in (outputs or (steps[-1].name,)):
            stop = len(steps)
        old = spans.get(r, (start, stop))
        spans[r] = (min(old[0], start), max(old[1], stop))
    sizes = {r: batch * _numel(values[r].shape) for r in spans}
    align = _ALIGN_BYTES // itemsize
    offsets: dict[str, int] = {}
    for r in sorted(spans, key=lambda r: (-sizes[r], r)):
        busy = sorted((offsets[o], offsets[o] + sizes[o]) for o in offsets if _overlap(spans[o], spans[r]))
        at = 0
        for lo, hi in busy:
            if at + sizes[r] <= lo:
                break
            at = max(at, -(-hi // align) * align)
        offsets[r] = at
    total = max((offsets[r] + sizes[r] for r in offsets), default=0)
    return ArenaLayout(offsets, sizes, spans, total)


def _numel(shape: tuple[int, ...]) -> int:
    c, h, w = shape
    return c * h * w


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


# --- building ------------------------------------------------------------------------


class _Builder:
    def __init__(
        self,
        model: torch.nn.Module,
        steps: list[EvalStep],
        values: dict[str, Value],
        weights: dict[str, Weights],
        x: torch.Tensor,
        choose: Chooser,
        kernel_convs: Set[str],
        tma: bool,
        outputs: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.program = steps
        self.where = values
        self.weights = weights
        self.choose = choose
        self.kernel_convs = kernel_convs
        self.tma = tma
        self.batch = x.shape[0]
        self.device = x.device
        self.run_now = not x.is_meta  # on the meta device, launches are compiled, never run
        self.outputs = outputs or (steps[-1].name,)
        layout = arena_layout(steps, values, self.batch, x.element_size(), kernel_convs, self.outputs)
        self.arena = torch.empty(layout.total, dtype=x.dtype, device=x.device)
        self.offsets = layout.offsets
        self.slot = {s.name: s.out for s in steps}
        self.name_of = [s.name for s in steps]
        self.static: dict[str, torch.Tensor] = {}  # values that live in the arena
        self.values: list[Any] = [None] * len(steps)
        self.steps: list[Step] = []
        self.launches: list[Launch] = []
        self.workspace: torch.Tensor | None = None

    # -- places

    def place(self, name: str) -> torch.Tensor:
        """The arena view that holds value ``name`` (N, C, H, W, channels-last or a channel slice)."""
        if name not in self.static:
            value = self.where[name]
            if value.storage is not None:
                concat, offset = value.storage
                self.static[name] = self.place(concat)[:, offset : offset + value.shape[0]]
            else:
                c, h, w = value.shape
                start = self.offsets[name]
                flat = self.arena[start : start + self.batch * c * h * w]
                self.static[name] = flat.view(self.batch, h, w, c).permute(0, 3, 1, 2)
        return self.static[name]

    def is_static(self, name: str) -> bool:
        return name in self.static

    # -- steps

    def add(self, step: Step) -> None:
        """Keep ``step`` and run it now (so later steps see its values)."""
        self.steps.append(step)
        step(self.values)

    def build(self, x: torch.Tensor) -> Plan:
        first = self.program[0]
        input_place = self.place(first.name)
        input_place.copy_(x)
        self.values[first.out] = input_place
        for step in self.program[1:]:
            if self.values[step.out] is None:  # a group may have produced it already
                self.compute(step)
            self.free_after(step)
        outs = tuple(self.slot[name] for name in self.outputs)
        return Plan(self.steps, len(self.program), first.out, outs, input_place,
                    tuple(self.values[s] for s in outs), self.launches, self.arena)  # fmt: skip

    def free_after(self, step: EvalStep) -> None:
        """Drop the values ``step`` read for the last time once the latest step has run, so
        torch's allocator can reuse them (arena values are kept by the arena)."""
        dead = step.free
        if not dead or not self.steps:
            return
        for s in dead:
            self.values[s] = None
        latest = self.steps[-1]

        def run(values: list[Any]) -> None:
            latest(values)
            for s in dead:
                values[s] = None

        self.steps[-1] = run

    def compute(self, step: EvalStep) -> None:
        """A step's closure: a Triton k×k conv where that kernel takes it, the plan's own for a
        kind it specialises, else the layer's modules (:func:`~..torch.lower.run_layer`)."""
        if step.name in self.kernel_convs:
            self.kxk_conv(step)
        elif step.kind in _SPECIALISED:
            _SPECIALISED[step.kind](self, step)
        else:
            self.torch_op(step, lambda x: run_layer(self.model, step.modules, step.flatten, step.act, x))

    def token_mixer(self, step: EvalStep) -> None:
        """InceptionNeXt's token mixer: one launch reads its input and writes its whole output."""
        w = self.weights[step.name]
        x_slot = step.inputs[0]
        x = self.values[x_slot].contiguous(memory_format=torch.channels_last)
        launch = inception_dw_launch(x, w.weight, w.bias, self.place(step.name), *step.kernel)
        self.launch_step((step.name,), [launch], lambda values: {"x": values[x_slot].contiguous(memory_format=torch.channels_last)})

    def torch_conv(self, step: EvalStep) -> None:
        """A conv no kernel takes (grouped, or without the ``conv`` kernel), with its prepared weights."""
        w = self.weights[step.name]

        def conv(x: torch.Tensor) -> torch.Tensor:
            y = F.conv2d(x, w.weight, w.bias, step.stride, step.padding, 1, step.groups)
            return F.relu_(y) if step.act is Activation.RELU else activate(step.act, y)  # type: ignore[arg-type]

        self.torch_op(step, conv)

    def torch_op(self, step: EvalStep, op: Callable[..., torch.Tensor]) -> None:
        ins = step.inputs

        def fn(*xs: torch.Tensor) -> torch.Tensor:
            y = op(*xs)
            # The kernels read pixels as rows: keep activations channels-last (a no-op for
            # most torch ops given channels-last inputs; not for LRN, nor on the meta device).
            return y.contiguous(memory_format=torch.channels_last) if y.dim() == 4 else y

        out = step.out
        if self.where[step.name].storage is None:

            def run(values: list[Any]) -> None:
                values[out] = fn(*(values[i] for i in ins))

        else:  # torch allocates the result: copy it into its concat slice
            place = self.place(step.name)

            def run(values: list[Any]) -> None:
                place.copy_(fn(*(values[i] for i in ins)))
                values[out] = place

        self.add(run)

    def concat(self, step: EvalStep) -> None:
        buffer = self.place(step.name)
        copies, offset = [], 0
        for i in step.inputs:
            value = self.where[self.name_of[i]]
            if value.storage != (step.name, offset):
                copies.append((i, buffer[:, offset : offset + value.shape[0]]))
            offset += value.shape[0]
        out = step.out

        def run(values: list[Any]) -> None:
            for i, view in copies:
                view.copy_(values[i])
            values[out] = buffer

        self.add(run)

    # -- Triton launches

    def launch_step(self, outs: tuple[str, ...], launches: list[Launch],
                    rebind: Callable[[list[Any]], dict[str, Any]] | None) -> None:  # fmt: skip
        """Keep the launches as one step that also publishes the values they write."""
        self.launches.extend(launches)
        slots = [(self.slot[name], self.place(name)) for name in outs if name in self.slot]
        run_now = self.run_now

        def run(values: list[Any]) -> None:
            if rebind is not None:
                args = rebind(values)
                for launch in launches:
                    launch.bind(**{k: v for k, v in args.items() if k in launch.args})
            if run_now:
                for launch in launches:
                    launch()
            for s, place in slots:
                values[s] = place

        self.add(run)

    def operand(self, name: str) -> torch.Tensor:
        x = self.values[self.slot[name]]
        assert x is not None
        return x

    def group(self, step: EvalStep) -> None:
        w = self.weights[step.name]
        x_name = self.name_of[step.inputs[0]]
        precision = precision_of(self.operand(x_name).dtype)
        dest = destinations([self.place(name) for name in step.writes])
        _, h, wd = self.where[step.name].shape
        m, n, k = self.batch * h * wd, w.weight.shape[1], w.weight.shape[0]
        if step.pool is not None:
            pool = pool_code(step.pool)

            def make(config: Config) -> list[Launch]:
                workspace = self.split_workspace(workspace_floats(m, n, config))
                return conv_launches(self.operand(x_name), w.weight, w.bias, w.floor, dest, (h, wd), config,  # type: ignore[arg-type]
                                     pool=pool, workspace=workspace, act=w.act)  # fmt: skip

            launches = self.choose(Shape("pool", m, n, k, pool[1] ** 2, precision), make, step.name)
            self.launch_step(step.writes, launches, self.rebinder(launches, x_name))
            return
        residual = (self.name_of[step.inputs[1]], step.scale) if step.residual else None

        def make_gemm(config: Config) -> list[Launch]:
            return self.gemm_launches(x_name, residual, w, dest, config)

        launches = self.choose(Shape("gemm", m, n, k, 1, precision), make_gemm, step.name)
        self.launch_step(step.writes, launches, self.rebinder(launches, x_name, residual[0] if residual else None))

    def rebinder(self, launches: list[Launch], x_name: str, residual_name: str | None = None):
        """Per call, the arguments made from values torch allocated on that call (None if there are none)."""
        if all(self.is_static(name) for name in (x_name, residual_name) if name is not None):
            return None
        x_slot = self.slot[x_name]
        r_slot = self.slot[residual_name] if residual_name is not None else None
        first = launches[0].args
        if "x" in first:  # the conv kernel takes the activation as it is
            return lambda values: {"x": values[x_slot]}
        block = (first["BLOCK_M"], first["BLOCK_K"]) if first["TMA"] else None

        def rebind(values: list[Any]) -> dict[str, Any]:
            rows = pixel_rows(values[x_slot])
            args = {"a": rows if block is None else _descriptor(rows, block)}
            if r_slot is not None:
                args["res_ptr"] = pixel_rows(values[r_slot])
            return args

        return rebind

    def gemm_launches(self, x_name: str, residual: tuple[str, float] | None, w: Weights, dest: Destinations,
                      config: Config) -> list[Launch]:  # fmt: skip
        """A 1×1 group's launches on ``x_name``'s pixels (with ``residual``: the value added, and its scale)."""
        rows = pixel_rows(self.operand(x_name))
        added = None if residual is None else (pixel_rows(self.operand(residual[0])), residual[1])
        workspace = self.split_workspace(workspace_floats(rows.shape[0], w.weight.shape[1], config))
        # FMA dots (IEEE fp32) read their operands into registers: the copy engine buys nothing there.
        tma = self.tma and precision_of(rows.dtype) != "ieee" and tma_applies(rows, w.weight)
        return gemm_launches(
            rows, w.weight, w.bias, w.floor, dest, config,  # type: ignore[arg-type]
            residual=added, tma=tma, workspace=workspace, act=w.act,
        )  # fmt: skip

    def kxk_conv(self, step: EvalStep) -> None:
        w = self.weights[step.name]
        x_name = self.name_of[step.inputs[0]]
        x = self.operand(x_name)
        dest = destinations([self.place(step.name)])
        n = w.weight.shape[1]
        _, h, wd = self.where[step.name].shape
        taps = step.kernel[0] * step.kernel[1]
        shape = Shape("conv", self.batch * h * wd, n, w.weight.shape[0], taps, precision_of(x.dtype))

        def make(config: Config) -> list[Launch]:
            return conv_launches(self.operand(x_name), w.weight, w.bias, w.floor, dest, (h, wd), config,  # type: ignore[arg-type]
                                 step.kernel, step.stride, step.padding, act=w.act)  # fmt: skip

        launches = self.choose(shape, make, step.name)
        self.launch_step((step.name,), launches, self.rebinder(launches, x_name))

    def split_workspace(self, floats: int) -> torch.Tensor | None:
        """One fp32 workspace for every split-K launch (they run one after another); None
        when ``floats`` is 0 (no split)."""
        if not floats:
            return None
        if self.workspace is None or self.workspace.numel() < floats:
            self.workspace = torch.empty(floats, dtype=torch.float32, device=self.device)
        return self.workspace


#: The step kinds the plan computes itself (``(builder, step)``); every other runs as a layer.
_SPECIALISED: dict[str, Callable[[_Builder, EvalStep], None]] = {
    "group": _Builder.group,
    "conv": _Builder.torch_conv,
    "concat": _Builder.concat,
    "mixer": _Builder.token_mixer,
    "slice": lambda b, step: b.torch_op(step, lambda x: x[:, step.start : step.stop]),
    "add": lambda b, step: b.torch_op(step, lambda x, r: runtime.residual(x, r, step.scale, step.act is not None)),
}


def build_plan(
    model: torch.nn.Module,
    steps: list[EvalStep],
    values: dict[str, Value],
    weights: dict[str, Weights],
    x: torch.Tensor,
    choose: Chooser,
    *,
    kernel_convs: Set[str] = frozenset(),
    tma: bool = False,
    outputs: tuple[str, ...] = (),
) -> Plan:
    """Build (and, off the meta device, run once) the plan for input ``x``: ``steps`` is the passed
    network's eval program (:func:`~..program.compile_steps`), ``values`` where its values are
    (:func:`~..program.values_of`), ``weights`` the inference weights of its conv, group and mixer
    steps, ``kernel_convs`` the convs the k×k kernel computes,
    ``outputs`` the values the plan returns (by default the program's last)."""
    return _Builder(model, steps, values, weights, x, choose, kernel_convs, tma, outputs).build(x)
