"""The Triton backend's network: the torch lowering's modules and parameters
(so reference weights load, and training runs the spec's layers), with an
eval mode that runs the passed IR through the Triton kernels.

Eval prepares a launch plan (:mod:`.plan`) per input shape, dtype and device
on the first call and replays it afterwards: no per-node dispatch and no
autotuner look-up per call. On a GPU the plan is captured as a CUDA graph on
the second call and replayed from the third (``cuda_graphs=False`` opts out).
Configs come from the tuning cache when a shape was tuned (``autotune=True``,
or :meth:`TritonEval.tune`), else from the default for the shape's class.

Under ``torch.compile`` and ``torch.export`` (and eagerly with
``launch_plan = False``) eval is instead one traceable forward (:mod:`.graph`):
the fused torch path's step program with each operation in the form
:mod:`.choice` picked for it, incdsl's kernel as an ``incdsl::`` operator
(:mod:`.ops`) or the torch form that Inductor fuses. Until
:meth:`TritonEval.measure_forms` has timed both forms on the GPU at an input
shape — :meth:`TritonEval.tune` does, and so does the first eager call at a
shape with ``autotune=True`` — every operation takes the torch form there (why:
:mod:`.choice`); :meth:`TritonEval.set_forms` sets them by hand. Decided forms
live with the model, per input shape and dtype, not in the tuning cache on disk:
that cache keys a launch by its GEMM shape, while the torch form's time depends
on the whole operation (pool kind and stride, conv attributes, residual scale). Eager eval keeps the launch plan (``launch_plan = True``)
until a GPU run measures the compiled graph faster (bench/bench.py's
``torch.compile(incdsl triton)`` rows).

Inference weights (batch norm folded, each group's weights packed) are
prepared again after ``load_state_dict``, ``.to()``/``.half()``, a
``train()``/``eval()`` switch or :meth:`refresh_weights` — not by scanning
every parameter on each call; an in-place edit of a parameter while in eval
mode needs ``refresh_weights()``. Refreshed weights are copied into the
tensors the plans and graphs already hold, so nothing is rebuilt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from incdsl import ir
from incdsl.progress import progress

from ..options import DEFAULT_TRITON_KERNELS
from ..program import values_of
from ..torch.fused import InferenceEval
from ..torch.lower import IncNetwork
from ..torch.weights import activation_floor, member_weights, stacked_weights
from .choice import FORMS, Form, Timing, choose_forms
from .epilogue import epilogue_code
from .graph import kernel_calls, run_kernel
from .plan import Weights
from .token_mixer import pack
from .tuning import RuntimeChooser, runtime_chooser


def no_gpu_message(x: torch.Tensor) -> str:
    where = "torch sees no CUDA GPU here" if not torch.cuda.is_available() else f"this input is on {x.device}"
    return (
        f"the triton backend's eval mode runs on a CUDA GPU, and {where}. Move the model and its input "
        "to the GPU (model.cuda(), x.cuda()); or, to test on the CPU, run the kernels in Triton's "
        "interpreter (slow) by setting TRITON_INTERPRET=1 before importing incdsl"
    )


class TritonEval(InferenceEval):
    """Eval through the Triton kernels; see the module's docstring."""

    def setup_triton(
        self,
        passed: ir.Network,
        kernels: Iterable[str] = DEFAULT_TRITON_KERNELS,
        cuda_graphs: bool = True,
        autotune: bool = False,
        carried: tuple[Path, Mapping[str, Any]] | None = None,
    ) -> None:
        """``carried``: a folder of kernels compiled ahead of time for this GPU (``incdsl compile
        --target``) and the record of them the module was built with; while a plan is built on a
        GPU, Triton finds those of them that match the record (:func:`.precompiled.serving`)."""
        self.setup_inference(passed, track_in_place=False)
        self._carried = carried
        self._kernels = tuple(kernels)
        self._cuda_graphs = cuda_graphs
        self._autotune = autotune
        self._plans: dict[tuple[Any, ...], Any] = {}
        #: eager eval runs the launch plan (True) or the graph forward (False: op by op, weights prepared per call)
        self.launch_plan = True
        self._kernel_calls = kernel_calls(self._program, "conv" in self._kernels)
        self._forms: dict[str, Form] = {}  # set_forms: at every shape not measured since
        self._measured: dict[tuple[Any, ...], dict[str, Form]] = {}  # measure_forms: per input shape
        self._timing_steps: dict[str, tuple[Any, list[torch.Tensor]]] | None = None
        self._graphs: dict[tuple[Any, ...], tuple[Any, tuple[torch.Tensor, ...]]] = {}

    @property
    def kernels(self) -> tuple[str, ...]:
        return self._kernels

    def forward(self, x: torch.Tensor):
        if self.training:
            return super().forward(x)
        return self._infer(x)

    def tune(self, x: torch.Tensor, timer: Callable[[Callable[[], Any]], float] | None = None) -> None:
        """Time every candidate config of each launch at ``x``'s shape on this GPU, keep the fastest
        (on disk, for later processes too) and use them from the next call on; then, on a GPU (or
        with a ``timer``), :meth:`measure_forms` at that shape."""
        self._check_input(x)
        with torch.no_grad():
            self._prepare()
            key = (tuple(x.shape), x.dtype, x.device)
            self._graphs.pop(key, None)
            with self._serving_carried(x):
                choose = self._chooser(x, tune=True)
                self._plans[key] = self.build_plan(x, choose, choose.target)
        if x.is_cuda or timer is not None:
            self.measure_forms(x, timer)

    # --- the traceable forward and the choice of forms --------------------------

    @property
    def forms(self) -> dict[str, Form]:
        """Each operation that has an incdsl kernel, and the form the graph forward runs it in at
        input shapes not measured (:meth:`forms_at` gives a shape's)."""
        return {name: self._forms.get(name, "library") for name in self._kernel_calls}

    def forms_at(self, x: torch.Tensor) -> dict[str, Form]:
        """The forms the graph forward runs at ``x``'s shape: those :meth:`measure_forms` (or
        :meth:`tune`) decided there, else :attr:`forms`."""
        return {**self.forms, **self._measured.get(_shape_key(x), {})}

    def set_forms(self, forms: Mapping[str, Form] | Form) -> None:
        """Set the forms by operation name, or one form (``"kernel"`` or ``"library"``) for all,
        at every input shape (forms measured before are dropped for these operations)."""
        chosen = dict.fromkeys(self._kernel_calls, forms) if isinstance(forms, str) else dict(forms)
        unknown = sorted(set(chosen) - set(self._kernel_calls))
        if unknown:
            raise ValueError(f"no operation with an incdsl kernel is named {', '.join(unknown)}")
        wrong = sorted({str(f) for f in chosen.values()} - set(FORMS))
        if wrong:
            raise ValueError(f"unknown form(s) {', '.join(wrong)}; choose among {', '.join(FORMS)}")
        self._forms.update(chosen)
        for measured in self._measured.values():
            for name in chosen:
                measured.pop(name, None)

    def measure_forms(self, x: torch.Tensor, timer: Callable[[Callable[[], Any]], float] | None = None,
                      margin: float = 0.0) -> dict[str, Timing]:  # fmt: skip
        """Time both forms of every operation at ``x``'s shape (``timer(fn)`` → ms, by default
        Triton's ``do_bench`` on the GPU), keep :func:`.choice.choose_forms`'s pick for inputs of
        that shape and return the timings. The torch form is timed eagerly (Inductor would fuse its bias and ReLU
        further)."""
        self._check_input(x)
        if timer is None:
            if not x.is_cuda:
                raise RuntimeError("measuring the forms needs a CUDA GPU (or a timer=)")
            import triton.testing

            def timer(fn: Callable[[], Any]) -> float:
                return triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median")

        with torch.no_grad():
            self._timing_steps = {}
            try:
                self._graph_forward(x, {name: "library" for name in self._kernel_calls})
                seen = self._timing_steps
            finally:
                self._timing_steps = None
            timings = {name: self._time_forms(timer, step, xs, x) for name, (step, xs) in seen.items()}
        self._measured[_shape_key(x)] = choose_forms(timings, margin)
        return timings

    def _time_forms(self, timer: Callable[[Callable[[], Any]], float], step: Any, xs: list[torch.Tensor],
                    x: torch.Tensor) -> Timing:  # fmt: skip
        """Both forms of ``step`` timed on its inputs ``xs`` (``x``: the network's input)."""
        kernel, library = self._weights_for(step), InferenceEval._weights_for(self, step)
        return Timing(
            _timed(timer, lambda: run_kernel(self._kernel_calls[step.name], step, xs, kernel)),
            _timed(timer, lambda: InferenceEval._compute(self, step, xs, x, library)),
        )

    def _graph_forward(self, x: torch.Tensor, forms: Mapping[str, Form]) -> Any:
        """The step program, each operation in its form, weights prepared in the graph (under
        ``torch.compile`` with freezing they are folded once). An operation whose weights are
        packed (:class:`.plan.Weights`) runs its kernel; the others, torch's form."""
        with torch.no_grad():
            weights = {
                s.name: self._weights_for(s) if forms.get(s.name) == "kernel" else InferenceEval._weights_for(self, s)
                for s in self._eval_steps
                if s.members
            }
            return self._run(x, weights)

    def _compute(self, step: Any, xs: list[torch.Tensor], x: torch.Tensor, weights: dict[str, Any]) -> torch.Tensor:
        if self._timing_steps is not None and step.name in self._kernel_calls:
            self._timing_steps[step.name] = (step, list(xs))
        if isinstance(weights.get(step.name), Weights):
            return run_kernel(self._kernel_calls[step.name], step, xs, weights[step.name])
        return super()._compute(step, xs, x, weights)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if torch.compiler.is_compiling() or not self.launch_plan:
            return self._graph_forward(x, self.forms_at(x))
        with torch.no_grad():
            self._prepare()
            key = (tuple(x.shape), x.dtype, x.device)
            plan = self._plans.get(key)
            if plan is None:
                # Compiling (and with autotune, timing) the kernels for a new shape: seconds to minutes.
                with progress(f"compiling Triton kernels for input {'×'.join(map(str, x.shape))}"), self._serving_carried(x):
                    choose = self._chooser(x, tune=self._autotune)
                    plan = self._plans[key] = self.build_plan(x, choose, choose.target)
                if self._autotune and x.is_cuda and _shape_key(x) not in self._measured:
                    with progress("measuring incdsl's kernels against the torch forms"):
                        self.measure_forms(x)
                return self._returned(list(plan.output()))
            if self._cuda_graphs and x.is_cuda:
                return self._returned(self._replay(plan, key, x))
            return self._returned(list(plan(x)))

    def _check_input(self, x: torch.Tensor) -> None:
        from .launch import interpreted

        if not (x.is_cuda or x.is_meta or interpreted()):
            raise RuntimeError(no_gpu_message(x))
        expected = tuple(self._nodes[self._program[0].name].shape)  # type: ignore[arg-type]
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            c, h, w = expected
            raise ValueError(
                f"this network was compiled for inputs N×{c}×{h}×{w}, got {'×'.join(map(str, x.shape))}; "
                "compile it for another size with incdsl.load(spec, input=...)"
            )
        dtype = next(self.parameters()).dtype
        if x.dtype != dtype:
            raise TypeError(f"the input is {x.dtype} and the weights are {dtype}: convert one to the other")

    def _serving_carried(self, x: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
        """Where the kernels compiled for a plan come from: the carried ones that check out, on a GPU."""
        if self._carried is None or not x.is_cuda:
            return contextlib.nullcontext()
        from .precompiled import serving

        return serving(*self._carried)

    def _chooser(self, x: torch.Tensor, tune: bool) -> RuntimeChooser:
        return runtime_chooser(x.device, tune)

    def build_plan(self, x: torch.Tensor, choose: Any, target: Any) -> Any:
        """The launch plan for inputs like ``x`` on ``target``, built with ``choose`` picking each
        launch's config (on the meta device this compiles the launches and runs nothing)."""
        from .plan import build_plan

        return build_plan(
            self, self._eval_steps, values_of(self._nodes.values()), self._prepared, x, choose, tma=target.has_tma,
            kernel_convs={name for name, call in self._kernel_calls.items() if call.kernel is not None},
            outputs=tuple(self._outputs),
        )  # fmt: skip

    # --- weights ----------------------------------------------------------------

    def _prepare(self) -> bool:
        """Prepare the weights if they changed; refreshed weights go into the tensors the plans hold."""
        held = self._prepared
        if not super()._prepare():
            return False
        if held and _same_layout(held, self._prepared):
            for name, weights in self._prepared.items():
                for old, new in zip(_tensors(held[name]), _tensors(weights), strict=True):
                    old.copy_(new)
            self._prepared = held
        else:
            self._plans.clear()
            self._graphs.clear()
        return True

    def _weights_for(self, step: Any) -> Any:
        """A conv's, group's or token mixer's weights as its launches read them: packed, with padded
        columns (a conv left to cuDNN keeps the torch path's)."""
        from .operands import pack_weight, pad_columns

        if step.name not in self._kernel_calls:
            return Weights(*member_weights(self, step.members[0]))
        if step.kind == "mixer":
            convs = [member_weights(self, m) for m in step.members]
            return Weights(*pack(*(w for w, _ in convs), *(b for _, b in convs)))
        if step.kind == "group":
            weight, bias, floor = stacked_weights(self, step.members)
        else:
            weight, bias = member_weights(self, step.members[0])
            floor = activation_floor(bias, step.members[0].act)
        packed = pack_weight(weight)
        n = packed.shape[1]
        act = epilogue_code([m.act for m in step.members])
        if act is None:
            raise NotImplementedError(f"{step.name}: no Triton epilogue applies {[m.act for m in step.members]}")
        return Weights(packed, pad_columns(bias, n), pad_columns(floor, n), act)

    # --- CUDA graphs: one launch sequence per input shape, replayed ------------

    def _replay(self, plan: Any, key: tuple[Any, ...], x: torch.Tensor) -> list[torch.Tensor]:
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = _capture(plan)
        graph, outs = entry
        plan.input_place.copy_(x)
        graph.replay()
        return [out.clone() for out in outs]


def _shape_key(x: torch.Tensor) -> tuple[Any, ...]:
    """What decided forms are kept by: the input's shape and dtype (a form's speed depends on both)."""
    return tuple(x.shape), x.dtype


def _timed(timer: Callable[[Callable[[], Any]], float], fn: Callable[[], Any]) -> float | None:
    """``timer(fn)``, or None when the form cannot run here (it is then not chosen)."""
    try:
        return timer(fn)
    except Exception:  # noqa: BLE001 - out of resources on this GPU, say: not a candidate
        return None


def _capture(plan: Any) -> tuple[Any, tuple[torch.Tensor, ...]]:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture wants
        for _ in range(2):
            plan.run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = plan.run()
    return graph, out


def _tensors(weights: Any) -> list[torch.Tensor]:
    return [t for t in (weights.weight, weights.bias, weights.floor) if t is not None]


def _same_layout(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def layout(w: Any) -> list[Any]:
        return [(t.shape, t.dtype, t.device) for t in _tensors(w)]

    return old.keys() == new.keys() and all(layout(old[k]) == layout(new[k]) for k in old)


class TritonNetwork(TritonEval, IncNetwork):
    """A network compiled by the triton backend (``incdsl.compile(spec, backend="triton")``)."""

    def __init__(
        self,
        net: ir.Network,
        passed: ir.Network,
        kernels: Iterable[str] = DEFAULT_TRITON_KERNELS,
        cuda_graphs: bool = True,
        autotune: bool = False,
    ) -> None:
        super().__init__(net)
        self.setup_triton(passed, kernels, cuda_graphs, autotune)
