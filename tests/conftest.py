"""Shared fixtures: golden files, spec paths, a small CLI runner."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels run in its interpreter, which is chosen when a
# kernel is defined: set it before any test imports the kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
else:
    # On a GPU, torch runs fp32 convolutions and matmuls in TF32 by default (about 1e-3
    # off IEEE), and the Triton kernels follow torch's setting: the tests compare fp32
    # results at 1e-4, so they run both in IEEE precision.
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"

from incdsl.cli import run

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/* from the current output (make golden)"
    )


@pytest.fixture(autouse=True)
def _run_from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs are named by paths relative to the repository root, as a user in a checkout would."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """``golden("name.txt", text)`` compares text with tests/golden/name.txt (or rewrites it)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run `make golden`"
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"output differs from {path}; if the change is intended, run `make golden`"

    return check


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        try:
            code = run(list(argv))
        except SystemExit as exit_:  # argparse usage errors and --help
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def without_spans(value):
    if isinstance(value, dict):
        return {k: without_spans(v) for k, v in value.items() if not k.endswith("span") and k != "origin"}
    if isinstance(value, list):
        return [without_spans(v) for v in value]
    return value


@pytest.fixture(scope="session")
def same_network():
    """``same_network(a, b, file)``: the two spec texts elaborate to the same IR (spans aside)."""
    from incdsl import loads

    def compare(a: str, b: str, file: str) -> bool:
        return without_spans(loads(a, file=file).to_json()) == without_spans(loads(b, file=file).to_json())

    return compare


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial batch-norm statistics and affine terms, so that eval-mode
    conventions (eps, affine, folding) are really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


@pytest.fixture(scope="session")
def randomise_bn():
    """``randomise_bn(model, seed=0)``: give every BatchNorm2d random statistics and affine terms."""
    return _randomise_bn


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fan-in-scaled weights, small biases, and random BN statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.normal_(0.0, m.weight[0].numel() ** -0.5, generator=g)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=g)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5, generator=g)
                    m.bias.uniform_(-0.2, 0.2, generator=g)
    return model.eval()


def import_generated(source: str, path: Path):
    """Write generated source to ``path`` and import it as a module named after the file."""
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def check_triton_forwards(net, plain: torch.nn.Module) -> None:
    """``incdsl.compile(backend="triton", kernels="all")`` loads ``plain``'s state dict strictly and
    computes what it does (within 1e-4) through the launch plan, built then replayed, and through
    the graph forward, op by op."""
    import incdsl

    model = incdsl.compile(net, backend="triton", kernels="all")
    model.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(1, *net.input_shape)
    with torch.no_grad():
        expected = plain(x)
        for _ in range(2):  # builds the plan, then replays it
            assert torch.allclose(model.eval()(x), expected, rtol=1e-4, atol=1e-4)
        model.launch_plan = False
        assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-4)


def check_fused_and_generated(spec: str, net, plain: torch.nn.Module, tmp_path: Path, cli) -> None:
    """``incdsl.compile(fuse=True)`` and the module ``incdsl compile -o`` writes for ``spec``
    (whose network is ``net``) load ``plain``'s state dict strictly and compute what it does:
    the fused eval path within 1e-5, the generated module exactly."""
    import incdsl
    from incdsl.compiler.torch.codegen import class_name, generate

    fused = incdsl.compile(net, fuse=True)
    fused.load_state_dict(plain.state_dict(), strict=True)
    (tmp_path / "spec.inc").write_text(spec, encoding="utf-8")
    out = tmp_path / f"gen_{tmp_path.name}.py"
    assert cli("compile", str(tmp_path / "spec.inc"), "-o", str(out))[0] == 0
    assert out.read_text(encoding="utf-8") == generate(net)
    generated = getattr(import_generated(out.read_text(encoding="utf-8"), out), class_name(net.name))()
    generated.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        expected = plain(x)
        assert torch.allclose(fused.eval()(x), expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(generated.eval()(x), expected)

