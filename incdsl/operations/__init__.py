"""The table of operations: one :class:`~.base.Operation` per op of the IR, which every stage
consults instead of a branch of its own on op names — the words and defaults of the language
(``elaborate``), shape inference (``shapes``), params and MACs (``cost``), the params table's
and the pictures' labels, the IR's rank rules, the torch module and how the backends run it.

Adding a layer type is adding an entry: a module here holding its :class:`~.base.Operation`
(its attributes' model in ``incdsl/ir.py``), listed in :data:`OPERATIONS` below. The README's
code map has the checklist. Importing this package imports no torch.
"""

from __future__ import annotations

from typing import Any

from ..layers import LayerType
from .base import Cost, Operation, Settings, TorchModule
from .conv import CONV
from .layer_scale import LAYER_SCALE
from .layernorm import LAYERNORM
from .linear import LINEAR
from .norm import BN, L2NORM, LRN
from .normalize import NORMALIZE
from .pool import ADAPTIVE_AVGPOOL, AVGPOOL, MAXPOOL
from .simple import ACTIVATIONS, DROPOUT, FLATTEN, SOFTMAX, activation_module
from .structure import ADD, CONCAT, CONV1X1_GROUP, INPUT, SLICE, TOKEN_MIXER

#: Every operation by its op, the layer types in the order messages list them.
OPERATIONS: dict[str, Operation] = {
    o.op: o
    for o in (
        CONV, MAXPOOL, AVGPOOL, ADAPTIVE_AVGPOOL, LRN, DROPOUT, LINEAR, BN, L2NORM, LAYERNORM, FLATTEN,
        *ACTIVATIONS, SOFTMAX, LAYER_SCALE, INPUT, NORMALIZE, CONCAT, ADD, CONV1X1_GROUP, TOKEN_MIXER,
        SLICE,
    )
}  # fmt: skip

#: Each word of the language that writes a layer → its vocabulary.
LAYER_TYPES: dict[str, LayerType] = {t.name: t for o in OPERATIONS.values() for t in o.syntax}

#: Each layer type's word → the operation it writes (``dwconv`` → ``conv``).
_WRITES: dict[str, Operation] = {t.name: o for o in OPERATIONS.values() for t in o.syntax}


def operation(op: str) -> Operation:
    """The entry of an IR op (``conv``, ``concat``)."""
    return OPERATIONS[op]


def of_word(word: str) -> Operation:
    """The operation a layer type's word writes (``dwconv`` → the conv's)."""
    return _WRITES[word]


def build_attrs(word: str, settings: Settings) -> Any:
    """Settings collected from a layer line (and the defaults) → IR attributes."""
    build = _WRITES[word].build
    assert build is not None, word
    return build(word, settings)


__all__ = [
    "LAYER_TYPES", "OPERATIONS", "Cost", "Operation", "TorchModule", "activation_module", "build_attrs", "of_word",
    "operation",
]  # fmt: skip
