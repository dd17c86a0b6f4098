"""The front end's pipeline: file → text → syntax tree → IR → IR with shapes.

This is the only part of the front end that touches the file system: it reads
spec files, resolves ``include`` paths (next to the including file first,
then among the bundled specs) and remembers every file's text so that an
error anywhere can show its source line.
"""

from __future__ import annotations

import contextlib
import os
from importlib import resources
from pathlib import Path

from . import ast, ir
from .elaborate import elaborate, parse_input_shape
from .errors import Span, SpecError
from .shapes import infer_shapes
from .syntax import decode, parse

SPEC_SUFFIX = ".inc"


def bundled_specs_dir() -> Path:
    return Path(str(resources.files("incdsl.specs")))


def bundled_specs() -> dict[str, Path]:
    """Bundled network specs by name (``googlenet``, ``compat/torchvision_googlenet``)."""
    root = bundled_specs_dir()
    found = {}
    for path in sorted(root.rglob(f"*{SPEC_SUFFIX}")):
        rel = path.relative_to(root).with_suffix("").as_posix()
        if not rel.startswith("blocks/") and "/fixtures/" not in f"/{rel}":
            found[rel] = path
    return found


def resolve_spec(spec: str | os.PathLike[str]) -> Path:
    """A path, or the name of a bundled spec (a path that exists always wins)."""
    path = Path(spec)
    if path.exists():
        return path
    bundled = bundled_specs()
    name = str(spec).removesuffix(SPEC_SUFFIX)
    if name in bundled:
        return bundled[name]
    return path


def coerce_input(value: ir.Shape | str | None) -> ir.Shape | None:
    """``"3x299x299"`` or ``(3, 299, 299)`` → a shape; a malformed one is a SpecError."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        tree = None
        with contextlib.suppress(SpecError):
            tree = parse(f"input {text}\n", "<input>").stmts[0]
        dims = None
        if isinstance(tree, ast.Stmt) and isinstance(tree.links[0], ast.Item):
            terms = tree.links[0].terms
            dims = terms[0] if len(terms) == 1 and isinstance(terms[0], ast.Dims) else None
        return parse_input_shape(dims, text, Span("<input>", 1, 1))
    shape = tuple(int(v) for v in value)
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError(f"malformed input {value!r}: expected (channels, height, width)", None)
    return shape  # type: ignore[return-value]


class _Loader:
    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def read(self, path: Path, span: Span | None) -> ast.SpecFile:
        name = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SpecError(f"no such file: {name}", span) from None
        except IsADirectoryError:
            raise SpecError(f"{name} is a directory, not a spec file", span) from None
        except OSError as err:
            raise SpecError(f"cannot read {name}: {err.strerror}", span) from None
        return self.parse(decode(data, name), name)

    def parse(self, text: str, name: str) -> ast.SpecFile:
        self.sources[name] = text
        return parse(text, name)

    def include(self, target: str, span: Span) -> ast.SpecFile:
        here = Path(span.file).parent
        candidates = [here / target, bundled_specs_dir() / target]
        for candidate in candidates:
            if candidate.is_file():
                return self.read(_canonical(candidate), span)
        raise SpecError(
            f'cannot include "{target}": no such file',
            span,
            hint=f"looked in {here or '.'} and among the bundled specs ({bundled_specs_dir()})",
        )

    def build(self, spec: ast.SpecFile, input_shape: ir.Shape | str | None) -> ir.Network:
        network = elaborate(spec, self.include, coerce_input(input_shape))
        return infer_shapes(network)

    def attach(self, err: SpecError) -> SpecError:
        if err.span is not None and err.span.file in self.sources:
            err.with_source(self.sources[err.span.file])
        return err


def _canonical(path: Path) -> Path:
    """One name per file (for include cycles), relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd())
    except ValueError:
        return resolved


def load(path: str | os.PathLike[str], input: ir.Shape | str | None = None) -> ir.Network:  # noqa: A002
    """Read, parse, elaborate and shape-check a spec file (or a bundled spec's name).

    >>> net = load("googlenet")            # doctest: +SKIP
    >>> net.node(net.logits).shape         # doctest: +SKIP
    (1000, 1, 1)
    """
    loader = _Loader()
    try:
        spec = loader.read(_canonical(resolve_spec(path)), None)
        return loader.build(spec, input)
    except SpecError as err:
        raise loader.attach(err) from None


def loads(text: str, input: ir.Shape | str | None = None, *, file: str = "<string>") -> ir.Network:  # noqa: A002
    """Like :func:`load`, from a string; includes resolve against the current directory."""
    loader = _Loader()
    try:
        spec = loader.parse(text, file)
        return loader.build(spec, input)
    except SpecError as err:
        raise loader.attach(err) from None
