"""The `incdsl` command.

Exit status: 0 ok, 1 a mistake in the spec, 2 a command-line usage error,
3 a backend that cannot run here. Data goes to stdout, diagnostics to stderr.
``check`` and ``params`` never import torch, so they suit an editor's save hook.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import json
import os
import re
import shutil
import stat
import sys
import warnings
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, ir
from .errors import SpecError, SpecNotFound, SpecWarning, did_you_mean, shorten
from .frontend import coerce_input, load, load_named, read_spec_text

EXIT_SPEC, EXIT_USAGE, EXIT_BACKEND = 1, 2, 3


def use_color(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors (status 2) suggest the closest command, choice or option."""

    def error(self, message: str) -> NoReturn:
        hint = _usage_hint(message, self)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_short_words(message)}\n" + (f"hint: {hint}\n" if hint else ""))


def _usage_hint(message: str, parser: argparse.ArgumentParser) -> str | None:
    """"did you mean ...?" for a misspelt command or choice (argparse lists the choices in its
    message) or option (any option of ``parser``, which for a subcommand's is that subcommand)."""
    choice = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
    if choice:
        return did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)) or choice.group(2).split(", "))
    unknown = re.search(r"unrecognized arguments: (.*)", message)
    if unknown:
        options = [o for action in parser._actions for o in action.option_strings]  # noqa: SLF001
        for word in unknown.group(1).split():
            if word.startswith("-"):
                return did_you_mean(word.partition("=")[0], options)
    return None


def _input_size(text: str) -> str:
    """``--input``'s value, checked as the command line is read: a malformed one is a usage error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpecWarning)  # shown when the spec is loaded, with it
            coerce_input(text)
    except SpecError as err:
        raise argparse.ArgumentTypeError(f"{err.message}, e.g. 3x224x224") from None
    return text


def _add_spec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "spec", help="a spec file, the name of a bundled spec (e.g. googlenet), or - for standard input"
    )
    parser.add_argument(
        "--input", metavar="CxHxW", type=_input_size, default=None,
        help="override the spec's input size, channels×height×width, e.g. 3x299x299",
    )
    parser.add_argument(
        "--include-path", metavar="DIR", action="append", default=[],
        help="a folder `include` may also read from (repeatable); by default a spec includes only "
        "from its own folder and those below it, and the bundled library",
    )


def _command(
    sub: argparse._SubParsersAction, name: str, help: str, description: str, spec: bool = True, **options: Any  # noqa: A002
) -> argparse.ArgumentParser:
    """A subcommand; with ``spec``, it takes a spec and ``--input``."""
    parser = sub.add_parser(name, help=help, description=description, **options)
    if spec:
        _add_spec(parser)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="incdsl",
        description="Describe Inception-family networks the way the papers print them; "
        "check them, tabulate their params and MACs, and compile them to PyTorch.",
        epilog="Run `incdsl COMMAND --help` for a command's options. Exit status: 0 ok, 1 spec error, "
        "2 usage error, 3 backend unavailable.",
    )
    parser.add_argument("--version", action="version", version=f"incdsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    listing = _command(
        sub, "list", "list the bundled specs",
        "List the bundled specs, one line each: name, input, params and MACs of the main path.",
        spec=False,
    )
    listing.add_argument("pattern", nargs="?", default="*", help="a glob on the spec names, e.g. 'incep*'")

    _command(
        sub, "check", "validate a spec and print a one-screen summary",
        "Parse, elaborate and shape-check a spec; print layers, params, MACs and the output shape.",
    )

    params = _command(
        sub, "params", "print the params/MACs table (like GoogLeNet's Table 1)",
        "Print the network as the paper's Table 1: one row per spec row, the blocks' columns, "
        "params and MACs (multiply-adds of conv and linear layers), and the paper's figures where "
        "the spec carries them.",
    )
    params.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")
    rows = params.add_mutually_exclusive_group()  # --layers already gives every layer of every copy
    rows.add_argument("--expand", action="store_true", help="one row per copy of a repeated block")
    rows.add_argument(
        "--layers", action="store_true",
        help="one row per layer instead, with its input and output shapes, params, MACs and activation "
        "memory (as torchinfo's summary shows them)",
    )

    ir_cmd = _command(
        sub, "ir", "print the graph IR", "Print the elaborated, shape-checked graph IR: one node per line, or JSON."
    )
    ir_cmd.add_argument("--json", action="store_true", help="print the IR as JSON")

    fmt = _command(
        sub, "fmt", "format specs: aligned Table-1 rows, normalised spacing",
        "Format spec files in place: two-space indentation, normalised spacing, table rows "
        "aligned into columns; comments survive. A bundled spec's name prints the formatted text; "
        "`-` reads stdin and writes stdout. The formatted text is checked to mean what the file "
        "means (the same tokens, syntax tree and network); if it would not, the file is left as it is "
        "and the status is 1.",
        spec=False,
    )
    fmt.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (or a bundled spec's name, or -)")
    fmt.add_argument(
        "--include-path", metavar="DIR", action="append", default=[],
        help="a folder `include` may also read from, for the check that the formatted file loads the same",
    )
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    fmt.add_argument("--diff", action="store_true", help="change nothing; print a unified diff")

    compile_cmd = _command(
        sub, "compile", "compile a spec to a PyTorch module, or with Triton kernels",
        "Compile a spec with a backend. torch: with -o, write Python source that defines the "
        "network as an nn.Module and needs only torch; without it, print the source. triton: print the "
        "compile report (fusion groups with their GEMM shapes, kernels, what stays in torch); with -o, also "
        "write the module, whose eval mode runs the Triton kernels. The triton backend needs a CUDA GPU, or "
        "TRITON_INTERPRET=1 to run its kernels in Triton's CPU interpreter.",
    )
    compile_cmd.add_argument("--backend", choices=["torch", "triton"], default="torch")
    compile_cmd.add_argument("-o", "--output", metavar="FILE.py", help="write the generated module here")
    compile_cmd.add_argument(
        "--kernels",
        metavar="K[,K…]",
        help="triton: the kernels to use, from fused_1x1, pool_conv, residual_1x1, conv, or `all` "
        "(default fused_1x1,pool_conv,residual_1x1)",
    )
    compile_cmd.add_argument(
        "--report", action="store_true",
        help="print the compile report (what the inference passes, fuse=True, do) instead of the source; the "
        "triton backend always prints its report",
    )
    compile_cmd.add_argument(
        "--target",
        metavar="sm_NN",
        help="triton: also compile the kernels ahead of time for this GPU (sm_90: H100/H200, sm_80: A100, sm_89: "
        "L4); -o then names a folder that gets the module and its kernels, which run there without compiling",
    )
    compile_cmd.add_argument(
        "--batches", metavar="B[,B…]", default="1,8,32,128", help="with --target: the batch sizes to compile for"
    )
    compile_cmd.add_argument(
        "--precision",
        default="fp16",
        metavar="P[,P…]",
        help="with --target: fp16, bf16, tf32 (fp32 in TF32, torch's default), ieee (fp32); default fp16",
    )
    compile_cmd.add_argument(
        "--features",
        metavar="NAME[,NAME…]",
        help="the module returns these layers' or blocks' outputs in a dict (e.g. maxpool1,Mixed_6e), not the logits",
    )

    draw = _command(
        sub, "draw", "draw the network with Graphviz (SVG, PNG, PDF or DOT source)",
        """\
Draw the network top to bottom, with the output shape (H×W×C) on the edges:
  - the whole network, each module collapsed to one box and the aux heads as
    side branches (the paper's Figure 3; the default),
  - the whole network layer by layer, each module framed (--depth layer),
  - one module with its branches, kernel sizes and channel counts (--module 3a,
    the paper's Figure 2(b)).
SVG, PNG and PDF need Graphviz's `dot` program; DOT source needs nothing.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
examples:
  incdsl draw googlenet -o googlenet.svg
  incdsl draw googlenet --module 3a -o inception_3a.png
  incdsl draw googlenet | dot -Tsvg > googlenet.svg""",
    )
    draw.add_argument("-o", "--output", metavar="FILE", help="FILE.svg, .png, .pdf or .dot (default: DOT on stdout)")
    draw.add_argument(
        "--depth",
        choices=["module", "layer"],
        help="the whole network with one box per module (default), or every layer with the modules framed",
    )
    draw.add_argument(
        "--module", metavar="ROW|NAME", help="one module, layer by layer: a table row (3a) or a module (inception_3a)"
    )

    export = _command(
        sub, "export", "export the compiled network to ONNX",
        "Compile the spec with the torch backend and export it with torch.onnx (the exporter based "
        "on torch.export) to one self-contained ONNX file: eval mode, input `input` of shape "
        "batch×C×H×W with a symbolic batch, output `logits`; auxiliary heads are left out.",
    )
    export.add_argument("--onnx", metavar="FILE.onnx", required=True, help="write the ONNX model here")
    return parser


def _summary(net: ir.Network, path: str) -> str:
    from .cost import total

    ops = Counter(n.op for n in net.main_nodes() if n.op != "input")
    layer_kinds = ", ".join(f"{count} {op}" for op, count in ops.most_common())
    main, with_aux = total(net), total(net, aux=True)
    out = net.node(net.logits).shape
    c, h, w = net.input_shape
    lines = [
        f"{net.name}: ok ({path})",
        f"  input    {c}×{h}×{w} (C×H×W)",
        f"  output   {'×'.join(map(str, out or ()))} from `{net.logits}`",
        f"  layers   {sum(ops.values())} ({layer_kinds})",
        f"  rows     {len(net.rows) - len(net.aux)} in the params table",
        f"  params   {main.params:,}",
        f"  MACs     {main.macs:,} ({main.macs / 1e9:.2f} G)",
    ]
    for head in net.aux:
        lines.append(f"  aux      {head.name} after `{head.after}`, loss weight {head.weight:g}")
    if net.aux:
        lines.append(f"  with aux {with_aux.params:,} params, {with_aux.macs / 1e9:.2f} G MACs (training)")
    return "\n".join(lines) + "\n"


def _width() -> int | None:
    """The width text tables must fit: ``COLUMNS`` when it is a positive whole number in ASCII
    digits (not "²", which passes ``str.isdigit``, nor more than nine digits), else the
    terminal's when stdout is one, else none (a file or a pipe gets the whole table)."""
    columns = os.environ.get("COLUMNS", "")
    if re.fullmatch(r"[0-9]{1,9}", columns) and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _ir_text(net: ir.Network) -> str:
    lines = []
    for node in net.nodes:
        attrs = node.attrs.model_dump(exclude={"op"})
        shown = " ".join(f"{k}={v}" for k, v in attrs.items())
        shape = "×".join(map(str, node.shape)) if node.shape else "?"
        inputs = ", ".join(node.inputs)
        lines.append(f"{node.name} = {node.op}({inputs}) {shown} -> {shape}".replace("  ", " "))
    return "\n".join(lines) + "\n"


def _compile(net: ir.Network, args: argparse.Namespace) -> int:
    from .compiler.options import check_kernels
    from .compiler.pipeline import (
        DEFAULT_TRITON_KERNELS,
        BackendUnavailable,
        check_backend,
        compile_report,
        generate_source,
        passed_for_triton,
    )

    kernels = DEFAULT_TRITON_KERNELS if args.kernels is None else args.kernels
    if args.kernels not in (None, "all"):
        kernels = tuple(k.strip() for k in args.kernels.split(","))
    if args.target is not None and (args.backend != "triton" or args.output is None):
        return _usage_error("compile", "--target goes with --backend triton and -o DIR")
    if args.kernels is not None and args.backend != "triton":
        return _usage_error("compile", "--kernels picks the Triton kernels: it goes with --backend triton")
    if args.output is not None and args.target is None:
        refused = _output_refused(args.output, args.sources)
        if refused:
            return _usage_error("compile", refused)
    try:
        if args.features is not None:
            net = ir.with_features(net, [name.strip() for name in args.features.split(",")])
        check_backend(args.backend)  # the triton package; compiling needs no GPU
        # the passes run once: the report and the cross-compile share their result
        passed = passed_for_triton(net, check_kernels(kernels)) if args.backend == "triton" else None
        if args.backend == "triton" or args.report:
            sys.stdout.write(compile_report(net, args.backend, kernels, passed))
            if args.output is None:
                return 0
        if args.target is not None:
            return _cross_compile(net, passed, kernels, args)
        source = generate_source(net, backend=args.backend, kernels=kernels, passed=passed)
    except BackendUnavailable as err:
        print(f"incdsl: {err}", file=sys.stderr)
        return EXIT_BACKEND
    except ValueError as err:  # an unknown kernel name, target, precision or feature
        return _usage_error("compile", str(err))
    if args.output is None:
        sys.stdout.write(source)
        return 0
    return _write("compile", args.output, source.encode(), f"{source.count(chr(10))} lines", args.sources)


def _cross_compile(net: ir.Network, passed: ir.Network, kernels: Any, args: argparse.Namespace) -> int:
    """``compile --target``: the module and its kernels, compiled for that GPU, into one folder.
    Every argument is checked before the first kernel compiles; the module embeds the kernels'
    hashes (see compiler/triton/precompiled.py) and is written only when there are kernels."""
    import tempfile

    from .compiler.pipeline import TRITON_KERNELS, generate_source
    from .compiler.triton.aot import PRECISIONS, cross_compile, describe
    from .compiler.triton.precompiled import UntrustedKernels, read_manifest
    from .compiler.triton.targets import target
    from .progress import progress

    chosen = TRITON_KERNELS if kernels == "all" else tuple(kernels)
    gpu = target(args.target)
    precisions = [p.strip() for p in args.precision.split(",")]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {', '.join(unknown)}; choose among {', '.join(PRECISIONS)}")
    batches = _batches(net, args.batches)
    folder = Path(args.output)
    try:
        refused = _target_folder_refused(args.output, folder)
    except OSError as err:  # a name the system cannot look up (too long, say)
        refused = f"cannot use -o {args.output}: {err.strerror or err}"
    if refused:
        raise ValueError(refused)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".kernels-", dir=folder))
    except OSError as err:
        raise ValueError(f"cannot write {args.output}: {err.strerror or err}") from None
    try:
        with progress(f"compiling {net.name}'s kernels for {gpu.name}"):
            rows = cross_compile(net, chosen, gpu, batches, precisions, staging, passed)
        if not rows:
            raise ValueError(
                f"{net.name} launches none of the Triton kernels {', '.join(chosen)}: nothing to precompile for "
                f"{gpu.name} (compile without --target to write the module)"
            )
        try:
            manifest = read_manifest(staging)
        except UntrustedKernels as err:  # a file system where modes or owners do not hold
            raise ValueError(f"cannot keep the kernels in {args.output}: {err}") from None
        kernels_folder = folder / "kernels"
        if kernels_folder.is_symlink() or kernels_folder.is_file():
            kernels_folder.unlink()
        elif kernels_folder.exists():
            shutil.rmtree(kernels_folder)  # an earlier build's: its kernels are not this module's
        staging.rename(kernels_folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(folder.iterdir()):  # nothing came of it: leave no empty folder
            folder.rmdir()
    carried = {key: manifest[key] for key in ("triton", "target", "kernels")}
    module = folder / f"{net.name}.py"
    if module.is_symlink():  # the module replaces the link, never writes where it points
        module.unlink()
    module.write_text(generate_source(net, "triton", chosen, carried, passed), encoding="utf-8")
    print(describe(rows, gpu), file=sys.stderr)
    print(f"wrote {module} and {kernels_folder}", file=sys.stderr)
    return 1 if any(r.problems for r in rows) else 0


def _batches(net: ir.Network, text: str) -> list[int]:
    """``--batches``: whole numbers from 1 to the largest batch whose every value (N·C·H·W) the
    kernels' 32-bit indices reach."""
    import math

    from .limits import MAX_ELEMENTS

    largest = MAX_ELEMENTS // max(math.prod(n.shape) for n in net.nodes if n.shape)
    try:
        batches = [int(b) for b in text.split(",")]
    except ValueError:
        batches = []
    if not batches or not all(1 <= b <= largest for b in batches):
        raise ValueError(
            f"--batches takes whole numbers from 1 to {largest:,} for {net.name} (a larger batch overflows the "
            f"kernels' 32-bit indices), got {text!r}"
        )
    return batches


def _target_folder_refused(name: str, folder: Path) -> str | None:
    """Why ``-o`` cannot be the folder ``--target`` writes, or None."""
    if not name:
        return "-o needs a folder name"
    if folder.suffix == ".py":
        return f"-o {name}: with --target, -o names a folder for the module and its kernels, not a .py file"
    if folder.is_symlink() and not folder.exists():
        return f"-o {name} is a symbolic link to nothing (or to itself)"
    if folder.exists() and not folder.is_dir():
        return f"-o {name} is a file: with --target, -o names a folder for the module and its kernels"
    return None


def _list(pattern: str) -> int:
    from .cost import total
    from .frontend import bundled_specs

    names = [name for name in bundled_specs() if fnmatch.fnmatch(name, pattern)]
    if not names:  # an empty listing, as `find` gives: not a spec error, and nothing for a pipe to read
        wider = f"*{pattern}*"
        plain = pattern and not any(c in pattern for c in "*?[")
        hint = f"; the pattern matches whole names: try '{wider}'" if plain and any(
            fnmatch.fnmatch(name, wider) for name in bundled_specs()
        ) else ""
        print(f"incdsl list: no bundled spec matches '{shorten(pattern)}'{hint}", file=sys.stderr)
        return 0
    width = max(len(n) for n in names)
    for name in names:
        net = load(name)
        cost = total(net)
        shape = "x".join(map(str, net.input_shape))
        print(f"{name:<{width}}  {shape:<11}  {cost.params / 1e6:6.2f}M params  {cost.macs / 1e9:6.2f}G MACs")
    return 0


def _fmt(args: argparse.Namespace) -> int:
    from .fmt import format_spec
    from .frontend import resolve_spec

    status = 0
    for name in args.specs:
        try:
            path = None if name == "-" else resolve_spec(name)
            file = "<stdin>" if path is None else str(path)
            text = read_spec_text(path, file)
            formatted = format_spec(text, file, include_path=args.include_path)
        except SpecNotFound as err:
            print(f"incdsl fmt: {err.render(color=use_color(sys.stderr))}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        except SpecError as err:  # each carries the text of the file it is about
            print(err.render(color=use_color(sys.stderr)), file=sys.stderr)
            status = max(status, EXIT_SPEC)
            continue
        changed = formatted != text
        if args.diff and changed:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), formatted.splitlines(keepends=True), f"{name}", f"{name} (formatted)"
            ))
        if args.check or args.diff:
            if changed:
                print(f"would reformat {name}", file=sys.stderr)
                status = max(status, 1)
        elif path is None or not Path(name).exists():
            sys.stdout.write(formatted)
        elif changed:
            try:
                path.write_text(formatted, encoding="utf-8")
            except OSError as err:
                print(f"incdsl fmt: error: cannot write {name}: {err.strerror or err}", file=sys.stderr)
                status = max(status, EXIT_SPEC)
                continue
            print(f"reformatted {name}", file=sys.stderr)
    return status


def _usage_error(command: str, message: str) -> int:
    print(f"incdsl {command}: error: {_short_words(message)}", file=sys.stderr)
    return EXIT_USAGE


def _short_words(message: str) -> str:
    """``message`` with every word over 60 characters cut short: a value echoed back whatever its
    length (``--kernels``, ``--module``, a choice) would bury what the message says."""
    return re.sub(r"[^\s'\"`]{61,}", lambda word: shorten(word.group()), message)


def _output_refused(target: str, sources: Collection[str], option: str = "-o") -> str | None:
    """Why ``target`` cannot be a command's output file (a usage error, found before any work is
    done and again just before writing), or None: an empty name, a name the file system refuses, a
    folder, a symbolic link that leads to no file (writing would create whatever it points to), or
    a file the spec was read from (the spec itself or a file it includes)."""
    if not target:
        return f"{option} needs a file name" + (" (omit it to write to standard output)" if option == "-o" else "")
    shown = shorten(target)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return _new_file_refused(Path(target), shown)
    except OSError as err:
        return f"cannot write {shown}: {err.strerror}"
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(target)
        except OSError as err:
            return f"{shown} is a symbolic link that leads to no file ({err.strerror}); {option} does not create it"
    if stat.S_ISDIR(info.st_mode):
        return f"{shown} is a folder; {option} names the file to write"
    if any(_same_file(Path(target), Path(source)) for source in sources):
        return f"{shown} is a file this command reads (the spec or a file it includes); {option} must name another"
    return None


def _new_file_refused(path: Path, shown: str) -> str | None:
    """Why a file that does not exist yet cannot be created at ``path`` (None if it can): a folder
    on the way that is a symbolic link to nothing, or a name longer than its file system allows."""
    missing, folder = [], path
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder.name)
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot write {shown}: {shorten(str(folder))} is not a folder nor a link to one"
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if any(len(os.fsencode(name)) > limit for name in missing):
        return f"cannot write {shown}: a name in it is longer than the file system allows ({limit} bytes)"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _write(command: str, target: str, data: bytes, what: str, sources: Collection[str], option: str = "-o") -> int:
    """Write a command's output file, checked again (the work took a while); a file that cannot be
    written is a usage error (as click has it)."""
    refused = _output_refused(target, sources, option)
    if refused:
        return _usage_error(command, refused)
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as err:
        return _usage_error(command, f"cannot write {shorten(target)}: {err.strerror or err}")
    print(f"wrote {path} ({what})", file=sys.stderr)
    return 0


def _draw(net: ir.Network, args: argparse.Namespace) -> int:
    from .draw import RENDERED, DrawUnavailable, UnknownModule, render, to_dot
    from .progress import progress

    fmt = Path(args.output).suffix.lower().lstrip(".") if args.output else "dot"
    refused = _output_refused(args.output, args.sources) if args.output is not None else None
    if refused:
        return _usage_error("draw", refused)
    if fmt not in (*RENDERED, "dot"):
        return _usage_error("draw", f"cannot tell the format of {args.output!r}: name it .svg, .png, .pdf or .dot")
    if args.module is not None and args.depth is not None:
        return _usage_error("draw", "--module draws one module layer by layer; --depth is for the whole network")
    try:
        source = to_dot(net, depth=args.depth or "module", module=args.module)
    except UnknownModule as err:
        return _usage_error("draw", str(err))
    if args.output is None:
        sys.stdout.write(source)
        return 0
    data = source.encode()
    if fmt != "dot":
        try:
            with progress(f"rendering {net.name} with Graphviz dot"):
                data = render(source, fmt)
        except DrawUnavailable as err:
            print(f"incdsl draw: {err}", file=sys.stderr)
            return EXIT_BACKEND
    return _write("draw", args.output, data, f"{len(data):,} bytes", args.sources)


def _export(net: ir.Network, args: argparse.Namespace) -> int:
    from .compiler.pipeline import BackendUnavailable, compile_network
    from .progress import progress

    refused = _output_refused(args.onnx, args.sources, "--onnx")
    if refused:
        return _usage_error("export", refused)
    try:
        with progress(f"exporting {net.name} to ONNX") as step:
            from .compiler.torch.export import to_onnx  # imports torch: the spinner is already up

            step(f"compiling {net.name}")
            model = compile_network(net, backend="torch")
            exported = to_onnx(model, net.input_shape, on_step=step)
    except BackendUnavailable as err:
        print(f"incdsl export: {err}", file=sys.stderr)
        return EXIT_BACKEND
    return _write("export", args.onnx, exported.data, exported.summary(), args.sources, "--onnx")


def _load(args: argparse.Namespace) -> tuple[ir.Network, tuple[str, ...]]:
    """The network a command names (``-`` reads it from standard input) and the files it was read
    from, its warnings shown on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpecWarning)
        try:
            return load_named(args.spec, input=args.input, include_path=args.include_path)
        finally:  # before the error, if there is one
            for found in caught:
                if isinstance(found.message, SpecWarning):
                    print(found.message.render(color=use_color(sys.stderr)), file=sys.stderr)


def run(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, which knows its options
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "list":
        return _list(args.pattern)
    if args.command == "fmt":
        return _fmt(args)
    try:
        net, args.sources = _load(args)  # the files this network was read from, which no output may overwrite
    except SpecNotFound as err:  # the command line names no spec: a usage error
        print(f"incdsl {args.command}: {err.render(color=use_color(sys.stderr))}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as err:
        print(err.render(color=use_color(sys.stderr)), file=sys.stderr)
        return EXIT_SPEC
    if args.command == "check":
        sys.stdout.write(_summary(net, "<stdin>" if args.spec == "-" else args.spec))
    elif args.command == "params":
        from .params_table import LAYER_RENDERERS, RENDERERS, params_table

        if args.layers:
            sys.stdout.write(LAYER_RENDERERS[args.format](net, width=_width()))
        else:
            sys.stdout.write(RENDERERS[args.format](params_table(net), expand=args.expand, width=_width()))
    elif args.command == "ir":
        sys.stdout.write(json.dumps(net.to_json(), indent=1) + "\n" if args.json else _ir_text(net))
    elif args.command == "compile":
        return _compile(net, args)
    elif args.command == "draw":
        return _draw(net, args)
    elif args.command == "export":
        return _export(net, args)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(argv)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
