"""The front end's pipeline: file → text → syntax tree → IR → IR with shapes.

This is the only part of the front end that touches the file system: it reads
spec files (each within a size bound, while reading), resolves ``include`` paths
(next to the including file first, then in the folders the user names, then among
the bundled specs; never outside the spec's own folder tree, those folders and the
bundled library) and remembers every file's text so that an error anywhere can
show its source line.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TypeVar

from . import ast, ir, limits
from .elaborate import elaborate, parse_input_shape
from .errors import Span, SpecError, SpecNotFound, SpecWarning, closest, shorten
from .shapes import infer_shapes
from .syntax import decode, parse

SPEC_SUFFIX = ".inc"
SpecErrorOrWarning = TypeVar("SpecErrorOrWarning", SpecError, SpecWarning)


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
    """A path, or the name of a bundled spec (a path that exists always wins); a
    :class:`SpecNotFound` naming the closest bundled spec when it is neither."""
    if not str(spec):  # Path("") is the working folder
        raise SpecNotFound("the spec's name is empty", hint="name a spec file, a bundled spec, or - for standard input")
    path = Path(spec)
    try:
        if path.is_dir():
            raise SpecNotFound(f"{shorten(str(spec))} is a folder, not a spec file")
        if path.exists():
            return path
    except (OSError, ValueError) as err:  # a name too long for the file system, or with a NUL in it
        raise SpecNotFound(f"cannot open {shorten(str(spec))}: {getattr(err, 'strerror', None) or err}") from None
    bundled = bundled_specs()
    name = str(spec).removesuffix(SPEC_SUFFIX)
    if name in bundled:
        return bundled[name]
    best = closest(name, bundled)
    raise SpecNotFound(
        f"no such file or bundled spec: {shorten(str(spec))}",
        hint=f"did you mean `{best}`?" if best else "`incdsl list` lists the bundled specs",
    )


_INPUT = re.compile(r"\s*([0-9]{1,6})\s*[x×]\s*([0-9]{1,6})\s*[x×]\s*([0-9]{1,6})\s*")


def coerce_input(value: ir.Shape | str | None) -> ir.Shape | None:
    """``"3x299x299"`` or ``(3, 299, 299)`` → a shape; a malformed one is a SpecError.

    >>> coerce_input("3x299x299")
    (3, 299, 299)
    """
    if value is None:
        return None
    if isinstance(value, str):
        found = _INPUT.fullmatch(value)
        sizes = tuple(int(v) for v in found.groups()) if found else None
        text = value
    else:
        sizes = tuple(int(v) for v in value)
        if len(sizes) != 3 or min(sizes) < 1:
            raise SpecError(f"malformed input {value!r}: expected (channels, height, width)", None)
        text = "x".join(map(str, sizes))
    dims = ast.Dims.model_construct(span=None, sizes=sizes, stride=None, text=text.strip()) if sizes else None
    return parse_input_shape(dims, text, Span("<input>", 1, 1))


def read_spec_bytes(path: Path | None, name: str, span: Span | None = None) -> bytes:
    """At most :data:`~incdsl.limits.MAX_FILE_READ` bytes of a file (standard input when
    ``path`` is None): a bigger one is a SpecError once that much is read, so a device that
    never ends (``/dev/zero``) is refused rather than read until memory runs out."""
    try:
        if path is None:
            data = sys.stdin.buffer.read(limits.MAX_FILE_READ + 1)
        else:
            with path.open("rb") as file:
                data = file.read(limits.MAX_FILE_READ + 1)
    except FileNotFoundError:
        raise SpecError(f"no such file: {name}", span) from None
    except IsADirectoryError:
        raise SpecError(f"{name} is a directory, not a spec file", span) from None
    except OSError as err:
        raise SpecError(f"cannot read {name}: {err.strerror or err}", span) from None
    if len(data) > limits.MAX_FILE_READ:
        raise SpecError(
            f"{name} is larger than {limits.MAX_FILE_READ:,} bytes; specs are limited to "
            f"{limits.MAX_FILE_CHARS:,} characters",
            span,
            hint="is this a spec file?",
        )
    return data


def read_spec_text(path: Path | None, name: str) -> str:
    """A spec file's text (standard input when ``path`` is None), read within the limits; a
    SpecError for a file that cannot be read or decoded (with its text, for the caret)."""
    return decode(read_spec_bytes(path, name), name)


class _Loader:
    """Reads a spec and the files it includes, each once, from the folders it may read: the
    top spec's own folder and those below it, the bundled library, and ``include_path``."""

    def __init__(self, root: Path, include_path: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.sources: dict[str, str] = {}
        self._parsed: dict[str, ast.SpecFile] = {}
        self._chars = 0
        self.search = [Path(p) for p in include_path]
        self.roots = [_real(root), _real(bundled_specs_dir()), *(_real(p) for p in self.search)]

    @property
    def files(self) -> tuple[str, ...]:
        """The name of every file read so far (not standard input nor a string)."""
        return tuple(self._parsed)

    def read(self, path: Path, span: Span | None) -> ast.SpecFile:
        name = str(path)
        if name in self._parsed:
            return self._parsed[name]
        if len(self._parsed) > limits.MAX_INCLUDED_FILES:
            raise SpecError(f"this spec includes more than {limits.MAX_INCLUDED_FILES} files", span)
        text = decode(read_spec_bytes(path, name, span), name)
        self._parsed[name] = parsed = self.parse(text, name)
        return parsed

    def parse(self, text: str, name: str, tree: ast.SpecFile | None = None) -> ast.SpecFile:
        self.sources[name] = text
        self._chars += len(text)
        if self._chars > limits.MAX_SOURCE_CHARS:
            raise SpecError(
                f"this spec and its includes come to more than {limits.MAX_SOURCE_CHARS:,} characters",
                Span(name, 1, 1),
            )
        return tree if tree is not None else parse(text, name)

    def include(self, target: str, span: Span) -> ast.SpecFile:
        """The file an ``include`` names: next to the including file, then in each folder of
        ``include_path``, then among the bundled specs; a file outside the folders this spec
        may read is refused before it is opened."""
        here = Path(span.file).parent
        refused = None
        for folder in [here, *self.search, bundled_specs_dir()]:
            candidate = folder / target
            if not any(_real(candidate).is_relative_to(root) for root in self.roots):
                refused = candidate
                continue
            if _is_file(candidate, target, span):
                return self.read(_canonical(candidate), span)
        if refused is not None:
            raise SpecError(
                f'cannot include "{target}": it is outside the folders this spec may read',
                span,
                hint="a spec includes files from its own folder and the folders below it, the bundled "
                "library, and folders named with --include-path (include_path= in Python)",
            )
        folders = ", ".join(str(f) for f in [here, *self.search]) or "."
        raise SpecError(
            f'cannot include "{target}": no such file',
            span,
            hint=f"looked in {folders} and among the bundled specs ({bundled_specs_dir()})",
        )

    def build(self, spec: ast.SpecFile, input_shape: ir.Shape | str | None) -> ir.Network:
        # warnings come out once the network is built (or has failed: a warning may say why, like
        # an input written height×width×channels), each with its file's text for the caret
        failure: SpecError | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpecWarning)
            try:
                network = infer_shapes(elaborate(spec, self.include, coerce_input(input_shape)))
            except SpecError as err:
                failure = err
        for found in caught:
            if isinstance(found.message, SpecWarning):
                warnings.warn(self.attach(found.message), stacklevel=5)  # at load's or loads' caller
            else:
                warnings.warn_explicit(found.message, found.category, found.filename, found.lineno)
        if failure is not None:
            raise failure
        return network

    def attach(self, err: SpecErrorOrWarning) -> SpecErrorOrWarning:
        if err.span is not None and err.span.file in self.sources:
            err.with_source(self.sources[err.span.file])
        return err


def _is_file(candidate: Path, target: str, span: Span) -> bool:
    """Whether ``candidate`` is a file; a name the system cannot even look up (too long, say:
    ``Path.is_file`` raises for that) is a SpecError at the include."""
    try:
        return candidate.is_file()
    except OSError as err:
        raise SpecError(f'cannot include "{shorten(target)}": {err.strerror or err}', span) from None


def _real(path: Path) -> Path:
    """``path`` made absolute with every symbolic link followed (where the bytes really are)."""
    return Path(os.path.realpath(path))


def _canonical(path: Path) -> Path:
    """One name per file (for include cycles), relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd())
    except ValueError:
        return resolved


def load(
    path: str | os.PathLike[str],
    input: ir.Shape | str | None = None,  # noqa: A002
    *,
    include_path: Sequence[str | os.PathLike[str]] = (),
) -> ir.Network:
    """Read, parse, elaborate and shape-check a spec file (or a bundled spec's name).

    ``include`` reads files from the spec's own folder and the folders below it, the
    bundled library, and the folders of ``include_path``; nothing else.

    >>> net = load("googlenet")            # doctest: +SKIP
    >>> net.node(net.logits).shape         # doctest: +SKIP
    (1000, 1, 1)
    """
    return _load_file(path, input, include_path)[0]


def load_named(
    spec: str,
    input: ir.Shape | str | None = None,  # noqa: A002
    *,
    include_path: Sequence[str | os.PathLike[str]] = (),
) -> tuple[ir.Network, tuple[str, ...]]:
    """The network a command line names (a file, a bundled spec's name, or ``-`` for standard
    input), and the name of every file it was read from: the spec and each file it includes,
    none of which a command's output may overwrite."""
    if spec != "-":
        return _load_file(spec, input, include_path)
    loader = _Loader(Path("<stdin>").parent, include_path)
    return _built(loader, lambda: loader.parse(read_spec_text(None, "<stdin>"), "<stdin>"), input)


def _load_file(
    path: str | os.PathLike[str], input: ir.Shape | str | None, include_path: Sequence[str | os.PathLike[str]]  # noqa: A002
) -> tuple[ir.Network, tuple[str, ...]]:
    file = _canonical(resolve_spec(path))
    loader = _Loader(file.parent, include_path)
    return _built(loader, lambda: loader.read(file, None), input)


def _built(
    loader: _Loader, read: Callable[[], ast.SpecFile], input: ir.Shape | str | None  # noqa: A002
) -> tuple[ir.Network, tuple[str, ...]]:
    """The network of the spec ``read`` gives (its errors with their file's text, for the caret),
    and the files ``loader`` read."""
    try:
        return loader.build(read(), input), loader.files
    except SpecError as err:
        raise loader.attach(err) from None


def loads(
    text: str,
    input: ir.Shape | str | None = None,  # noqa: A002
    *,
    file: str = "<string>",
    include_path: Sequence[str | os.PathLike[str]] = (),
) -> ir.Network:
    """Like :func:`load`, from a string; ``file`` names it in messages, and its folder (the
    current directory for ``<string>``) is the spec's own for includes."""
    return loads_parsed(text, None, input, file=file, include_path=include_path)


def loads_parsed(
    text: str,
    tree: ast.SpecFile | None,
    input: ir.Shape | str | None = None,  # noqa: A002
    *,
    file: str = "<string>",
    include_path: Sequence[str | os.PathLike[str]] = (),
) -> ir.Network:
    """:func:`loads` of ``text`` whose syntax tree the caller already has (``parse(text, file)``;
    None to parse it here): for ``fmt``, which reads a file's tree before it loads it."""
    loader = _Loader(Path(file).parent, include_path)
    return _built(loader, lambda: loader.parse(text, file, tree), input)[0]
