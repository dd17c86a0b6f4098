"""The torch lowering exported to ONNX with ``torch.onnx`` (its torch.export-based exporter).

The exported graph is the eval-mode network: it returns the logits, the
auxiliary heads are not in it. The batch dimension is symbolic (``batch``);
channels and spatial size are the spec's (or ``--input``'s). The file holds its
weights (no external ``.data`` file).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from incdsl import ir

from ..options import BackendUnavailable

INPUT_NAME, OUTPUT_NAME = "input", "logits"
#: The exporter needs onnxscript (which brings onnx); onnxruntime is only for checking.
_NEEDED = ("onnx", "onnxscript")


@dataclass(frozen=True)
class Exported:
    """An exported network: the ONNX file's bytes, and what they hold."""

    data: bytes
    opset: int
    input_shape: tuple[str | int, ...]
    output_shape: tuple[str | int, ...]

    def summary(self) -> str:
        shape_in = "×".join(map(str, self.input_shape))
        shape_out = "×".join(map(str, self.output_shape))
        return (
            f"{len(self.data) / 1e6:.1f} MB, ONNX opset {self.opset}: "
            f"`{INPUT_NAME}` {shape_in} → `{OUTPUT_NAME}` {shape_out}"
        )


def _require_exporter() -> None:
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):
        raise BackendUnavailable(
            f"ONNX export needs torch 2.6 or newer (its torch.export-based exporter), not {torch.__version__}"
        )
    missing = [name for name in _NEEDED if not _importable(name)]
    if missing:
        raise BackendUnavailable(f"ONNX export needs {' and '.join(missing)}: pip install 'incdsl[onnx]'")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def export_onnx(
    model: nn.Module, input_shape: ir.Shape, path: str | Path, on_step: Callable[[str], None] = lambda _: None
) -> Exported:
    """Write a compiled network to ``path`` as ONNX: its eval mode, whatever mode it is in.

    >>> import incdsl
    >>> model = incdsl.compile("googlenet")
    >>> export_onnx(model, (3, 224, 224), "googlenet.onnx").opset   # doctest: +SKIP
    20
    """
    exported = to_onnx(model, input_shape, on_step)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(exported.data)
    return exported


def to_onnx(model: nn.Module, input_shape: ir.Shape, on_step: Callable[[str], None] = lambda _: None) -> Exported:
    """A compiled network as an ONNX file's bytes (its eval mode, weights inside), for the caller
    to write: the CLI writes them as it writes every output, checking the file again first."""
    _require_exporter()
    c, h, w = input_shape
    # Batch 2, not 1: torch.export specialises a dimension whose example size is 1.
    example = torch.randn(2, c, h, w)
    on_step("exporting with torch.onnx (torch.export, then ONNX)")
    training = model.training
    try:
        program = torch.onnx.export(
            model.eval(),
            (example,),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
        )
    finally:
        model.train(training)
    on_step("serialising the ONNX model")
    proto = program.model_proto
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    shape_in, shape_out = (_dims(v) for v in (proto.graph.input[0], proto.graph.output[0]))
    return Exported(proto.SerializeToString(), opset, shape_in, shape_out)


def _dims(value) -> tuple[str | int, ...]:  # an onnx ValueInfoProto
    return tuple(d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim)
