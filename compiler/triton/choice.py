"""Which form of each operation the Triton backend's graph runs: incdsl's kernel
(an ``incdsl::`` operator, :mod:`.ops`) or the library form (torch's ops, which
Inductor lowers to cuDNN/cuBLAS or its own templates and fuses with the pools,
bias, ReLU and concats around them) — chosen by measurement, as Inductor's
max-autotune chooses between its templates and the library call.

The rule (:func:`pick`): the kernel runs only where it was timed, and timed
faster than the library form by more than ``margin``; a tie, a missing timing
(nothing measured yet, or a form that failed to run) or a slower kernel leaves
the library form. So without measurements every operation takes the library
form: on an H200 (fp16, issue 16, 2026-12-04) no measured group shape had
incdsl's 1×1 GEMM as fast as cuBLAS ``_addmm_activation`` (today's 64×64 tiles:
2.9–3.3× slower at batch 256, 1.7× at batch 1), and ``torch.compile`` of the
torch forms (``fuse=True``) ran GoogLeNet and Inception-v4 1.7–1.9× faster than
the launch plan at batches 1, 32 and 256. The pool projection is the mixed case
(3–5× faster than torch's pool then conv at batch 256 on 2026-11-29, slow at
batch 1 where its K loop is serial): shape-dependent, which is what measuring
per operation decides. :meth:`.module.TritonEval.measure_forms` times both forms
of every operation on the GPU and keeps what :func:`choose_forms` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Form = Literal["kernel", "library"]
FORMS: tuple[Form, ...] = ("kernel", "library")


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call of an operation's two forms (None: not measured, or failed)."""

    kernel: float | None = None
    library: float | None = None


def pick(timing: Timing, margin: float = 0.0) -> Form:
    """The kernel when it was measured faster than the library form by more than ``margin``
    (a fraction of the library's time), else the library form."""
    if timing.kernel is None or timing.library is None:
        return "library"
    return "kernel" if timing.kernel < timing.library * (1.0 - margin) else "library"


def choose_forms(timings: Mapping[str, Timing], margin: float = 0.0) -> dict[str, Form]:
    """Each operation's form by :func:`pick`."""
    return {name: pick(timing, margin) for name, timing in timings.items()}
