"""`incdsl export --onnx`: the torch lowering through torch.onnx, checked by onnx and compared under onnxruntime."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import incdsl
from incdsl.compiler.torch.export import export_onnx

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx and onnxscript (incdsl[onnx])")
pytest.importorskip("onnxscript", reason="ONNX export needs onnx and onnxscript (incdsl[onnx])")

# Every op the torch backend emits, and an aux head (which the export leaves out).
ZOO = """
network zoo
input 3x33x33
defaults:
  conv bn eps=0.001
block mixed(scale):
  residual scale=scale:
    concat:
      conv 1x1 8
      conv 1x1 8 -> conv 1x7 8 -> conv 7x1 8
      avgpool 3x3/1 same count_include_pad=false -> conv 1x1 8
      conv 1x1 8 -> concat:
        conv 1x3 4
        conv 3x1 4
    conv 1x1 16 linear bias bn
conv 3x3/2 16 V
maxpool 3x3/2 ceil -> lrn 5
mixed(0.2)
conv 1x1 16 nobn bias
flatten -> dropout 0.3 -> linear 32 relu -> linear 10
softmax
aux after mixed1 weight=0.3:
  avgpool 3x3/2 -> linear 10
"""


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """The zoo network with batch-norm statistics that are not the identity, and its ONNX export."""
    torch.manual_seed(0)
    model = incdsl.compile(incdsl.loads(ZOO))
    for name, buffer in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand_like(buffer) + (0.5 if name.endswith("var") else -0.5))
    path = tmp_path_factory.mktemp("onnx") / "zoo.onnx"
    export_onnx(model.train(), (3, 33, 33), path)
    return model, path


def test_the_export_passes_the_onnx_checker(zoo):
    _, path = zoo
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnxruntime_computes_what_torch_computes(zoo):
    ort = pytest.importorskip("onnxruntime")
    model, path = zoo
    assert model.training, "export leaves the module in the mode it found it"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 33, 33)  # a batch size other than the one traced
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = model.eval()(x)
    assert got.shape == (3, 10)
    diff = (torch.from_numpy(got) - expected).abs().max().item()
    assert diff < 1e-4, f"max |onnxruntime - torch| = {diff:.2e}"


def test_cli_export(cli, tmp_path: Path):
    target = tmp_path / "out" / "mini.onnx"
    code, out, err = cli("export", "examples/mini_googlenet", "--input", "1x40x40", "--onnx", str(target))
    assert code == 0 and out == ""
    assert (
        err == f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, ONNX opset 20: "
        "`input` batch×1×40×40 → `logits` batch×10)\n"
    )
    onnx.checker.check_model(str(target), full_check=True)
    assert not list(tmp_path.glob("out/*.data")), "weights travel inside the .onnx file"


def test_cli_export_without_the_exporter(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    code, out, err = cli("export", "examples/mini_googlenet", "--onnx", str(tmp_path / "mini.onnx"))
    assert code == 3 and out == ""
    assert "ONNX export needs onnxscript: pip install 'incdsl[onnx]'" in err


def test_cli_export_needs_a_target(cli):
    code, _, err = cli("export", "googlenet")
    assert code == 2 and "--onnx" in err
