"""The activations a layer can end with: one table that every stage consults.

The front end reads the words (``act=gelu``, the flag ``relu``), the IR stores an
:class:`Activation` (or None for linear), and each backend looks up what it needs by
the member: the torch backend's module and function (``MODULE``, ``functional``
names below, applied by ``compiler/torch/runtime.py``), the Triton backend's epilogue
code (``compiler/triton/epilogue.py``). Adding one: a member here, its row in
:data:`FORMS`, and its epilogue in the Triton table if the kernels should apply it.
Importing this module imports no torch (``incdsl check`` does not).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Activation(StrEnum):
    """An activation by its name in the language (``relu``, ``gelu``); equal to, hashed and
    printed as that word."""

    RELU = "relu"
    GELU = "gelu"  # exact (erf), as torch.nn.GELU() and timm's MLPs
    GELU_TANH = "gelu_tanh"  # the tanh approximation, nn.GELU(approximate="tanh")

    def __repr__(self) -> str:  # IR dumps show the word
        return repr(self.value)


class Form(NamedTuple):
    """An activation's label in tables and pictures, and how torch computes it:
    ``nn.<module>(**kwargs)``, ``F.<function>(x, **kwargs)`` (``compiler/torch/runtime.py``
    holds the functions themselves, as generated code copies it)."""

    label: str
    module: str
    function: str
    kwargs: tuple[tuple[str, str], ...] = ()
    #: ``act(y) = max(y, floor)``: a per-column floor applies it, so one fused GEMM can mix
    #: its columns with linear ones (None: not of that form).
    floor: float | None = None


#: Each activation's label and torch form (as strings: the front end imports no torch).
FORMS: dict[Activation, Form] = {
    Activation.RELU: Form("ReLU", "ReLU", "relu", floor=0.0),
    Activation.GELU: Form("GELU", "GELU", "gelu"),
    Activation.GELU_TANH: Form("GELU (tanh)", "GELU", "gelu", (("approximate", "tanh"),)),
}

#: Words that mean no activation.
LINEAR_WORDS = ("linear", "none")

#: Every word ``act=`` accepts, in the order messages list them.
WORDS: tuple[str, ...] = (*(a.value for a in Activation), *LINEAR_WORDS)


def floor(act: Activation | None) -> float | None:
    """The floor that applies ``act`` (linear: −∞), or None when no floor does.

    >>> floor(Activation.RELU), floor(None), floor(Activation.GELU)
    (0.0, -inf, None)
    """
    return float("-inf") if act is None else FORMS[act].floor


def parse(word: str) -> Activation | None:
    """The activation a word names (None: linear).

    >>> parse("gelu"), parse("linear")
    ('gelu', None)
    """
    return None if word in LINEAR_WORDS else Activation(word)


assert set(FORMS) == set(Activation), "every activation needs its form"
