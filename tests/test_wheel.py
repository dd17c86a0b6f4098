"""`pip install .` (a wheel, not an editable install) gives a working `incdsl` from any directory.

The wheel is built from a copy of the sources and installed into a fresh virtual
environment; only the third-party dependencies are borrowed from the test
environment (through a .pth line), so incdsl itself must come from the wheel.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "incdsl", "compiler", "grammars", "specs"]


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    done = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, src, cwd=src)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("incdsl-*.whl")
    return built


def test_wheel_carries_the_grammar_and_the_specs(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "incdsl/grammars/incdsl.lark" in names
    assert "incdsl/specs/googlenet.inc" in names
    assert "incdsl/specs/compat/torchvision_googlenet.inc" in names
    assert "incdsl/compiler/torch/lower.py" in names
    shipped = {p.relative_to(ROOT / "specs").as_posix() for p in (ROOT / "specs").rglob("*.inc")}
    assert {f"incdsl/specs/{s}" for s in shipped} <= set(names)


def test_installed_wheel_runs_from_any_directory(wheel: Path, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    done = _run(py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    purelib = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (Path(purelib.stdout.strip()) / "borrowed-deps.pth").write_text("\n".join(deps) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(py, "-c", "import incdsl; print(incdsl.__file__)", cwd=elsewhere)
    assert str(env_dir) in where.stdout, where.stdout + where.stderr

    params = _run(env_dir / "bin" / "incdsl", "params", "googlenet", cwd=elsewhere)
    assert params.returncode == 0, params.stderr
    assert "inception (5b)" in params.stdout and "6,998,552" in params.stdout

    user_spec = elsewhere / "mine.inc"
    user_spec.write_text("network mine\ninput 3x64x64\nconv 3x3/2 8\nglobal_avgpool\nlinear 10\n", encoding="utf-8")
    check = _run(env_dir / "bin" / "incdsl", "check", "mine.inc", cwd=elsewhere)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("mine: ok")
