"""The Triton backend's modules import one another without a cycle (function-local imports
count: they only hide one), and none but the ahead-of-time entry point (``aot``, which starts
from a spec) reaches up into the pipeline that drives the backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRITON = Path(__file__).resolve().parent.parent / "compiler" / "triton"
MODULES = sorted(p.stem for p in TRITON.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The modules a backend module imports by relative name, anywhere in its body
    (``.x`` and ``from . import x`` as ``x``, ``..x`` as ``../x``)."""
    found = set()
    for node in ast.walk(ast.parse((TRITON / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            up = "../" * (node.level - 1)
            names = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
            found.update(up + name for name in names)
    return found


def _reaches(start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        for name in _imports(module) & set(MODULES):
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return False


@pytest.mark.parametrize("module", MODULES)
def test_no_backend_module_imports_itself_back(module):
    assert not _reaches(module, module)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "aot"])
def test_only_the_entry_point_reaches_up_into_the_pipeline(module):
    assert "../pipeline" not in _imports(module)
