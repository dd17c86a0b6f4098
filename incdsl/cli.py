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
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import ir
from .errors import SpecError
from .frontend import load

EXIT_SPEC, EXIT_USAGE, EXIT_BACKEND = 1, 2, 3


def use_color(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _add_spec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="a spec file, or the name of a bundled spec (e.g. googlenet)")
    parser.add_argument(
        "--input", metavar="CxHxW", help="override the spec's input size, e.g. 3x299x299", default=None
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
    parser = argparse.ArgumentParser(
        prog="incdsl",
        description="Describe Inception-family networks the way the papers print them; "
        "check them, tabulate their params and MACs, and compile them to PyTorch.",
        epilog="Run `incdsl COMMAND --help` for a command's options. Exit status: 0 ok, 1 spec error, "
        "2 usage error, 3 backend unavailable.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    params.add_argument("--expand", action="store_true", help="one row per copy of a repeated block")

    ir_cmd = _command(
        sub, "ir", "print the graph IR", "Print the elaborated, shape-checked graph IR: one node per line, or JSON."
    )
    ir_cmd.add_argument("--json", action="store_true", help="print the IR as JSON")

    fmt = _command(
        sub, "fmt", "format specs: aligned Table-1 rows, normalised spacing",
        "Format spec files in place: two-space indentation, normalised spacing, table rows "
        "aligned into columns; comments survive. A bundled spec's name prints the formatted text; "
        "`-` reads stdin and writes stdout.",
        spec=False,
    )
    fmt.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (or a bundled spec's name, or -)")
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
        "--report", action="store_true", help="torch: print what the inference passes (fuse=True) do, not the source"
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
        f"  input    {c}×{h}×{w}",
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
    from .compiler.pipeline import (
        DEFAULT_TRITON_KERNELS,
        BackendUnavailable,
        check_backend,
        compile_report,
        generate_source,
    )

    kernels = DEFAULT_TRITON_KERNELS if args.kernels is None else args.kernels
    if args.kernels not in (None, "all"):
        kernels = tuple(k.strip() for k in args.kernels.split(","))
    if args.target and (args.backend != "triton" or not args.output):
        print("incdsl compile: error: --target goes with --backend triton and -o DIR", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.features is not None:
            net = ir.with_features(net, [name.strip() for name in args.features.split(",")])
        check_backend(args.backend)  # the triton package; compiling needs no GPU
        if args.backend == "triton" or args.report:
            sys.stdout.write(compile_report(net, args.backend, kernels))
            if not args.output:
                return 0
        source = generate_source(net, backend=args.backend, kernels=kernels)
        if args.target:
            return _cross_compile(net, kernels, source, args)
    except BackendUnavailable as err:
        print(f"incdsl: {err}", file=sys.stderr)
        return EXIT_BACKEND
    except ValueError as err:  # an unknown kernel name, target, precision or feature
        print(f"incdsl compile: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.output:
        target = Path(args.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
        print(f"wrote {target} ({len(source.splitlines())} lines)", file=sys.stderr)
    else:
        sys.stdout.write(source)
    return 0


def _cross_compile(net: ir.Network, kernels: Any, source: str, args: argparse.Namespace) -> int:
    """``compile --target``: the module and its kernels, compiled for that GPU, into one folder."""
    from .compiler.pipeline import TRITON_KERNELS
    from .compiler.triton.aot import PRECISIONS, cross_compile, describe
    from .compiler.triton.targets import target
    from .progress import progress

    chosen = TRITON_KERNELS if kernels == "all" else tuple(kernels)
    gpu = target(args.target)
    precisions = [p.strip() for p in args.precision.split(",")]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {', '.join(unknown)}; choose among {', '.join(PRECISIONS)}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        raise ValueError(f"--batches takes whole numbers, got {args.batches!r}") from None
    folder = Path(args.output)
    module = folder / f"{net.name}.py"
    with progress(f"compiling {net.name}'s kernels for {gpu.name}"):
        rows = cross_compile(net, chosen, gpu, batches, precisions, folder / "kernels")
    module.write_text(source, encoding="utf-8")
    print(describe(rows, gpu), file=sys.stderr)
    print(f"wrote {module} and {folder / 'kernels'}", file=sys.stderr)
    return 1 if any(r.problems for r in rows) else 0


def _list(pattern: str) -> int:
    from .cost import total
    from .frontend import bundled_specs

    names = [name for name in bundled_specs() if fnmatch.fnmatch(name, pattern)]
    if not names:
        print(f"incdsl: no bundled spec matches {pattern!r}", file=sys.stderr)
        return EXIT_SPEC
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
    from .syntax import decode

    status = 0
    for name in args.specs:
        path = None if name == "-" else resolve_spec(name)
        try:
            text = sys.stdin.read() if path is None else decode(path.read_bytes(), str(path))
            formatted = format_spec(text, name if path is None else str(path))
        except SpecError as err:
            print(err.with_source(text).render() if err.span else err.render(), file=sys.stderr)
            status = EXIT_SPEC
            continue
        except OSError as err:
            print(f"incdsl: cannot read {name}: {err.strerror}", file=sys.stderr)
            status = EXIT_SPEC
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
            path.write_text(formatted, encoding="utf-8")
            print(f"reformatted {name}", file=sys.stderr)
    return status


def _usage_error(command: str, message: str) -> int:
    print(f"incdsl {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _draw(net: ir.Network, args: argparse.Namespace) -> int:
    from .draw import RENDERED, DrawUnavailable, UnknownModule, render, to_dot
    from .progress import progress

    fmt = Path(args.output).suffix.lower().lstrip(".") if args.output else "dot"
    if fmt not in (*RENDERED, "dot"):
        return _usage_error("draw", f"cannot tell the format of {args.output!r}: name it .svg, .png, .pdf or .dot")
    if args.module is not None and args.depth is not None:
        return _usage_error("draw", "--module draws one module layer by layer; --depth is for the whole network")
    try:
        source = to_dot(net, depth=args.depth or "module", module=args.module)
    except UnknownModule as err:
        return _usage_error("draw", str(err))
    if not args.output:
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
    target = Path(args.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    print(f"wrote {target} ({len(data):,} bytes)", file=sys.stderr)
    return 0


def _export(net: ir.Network, args: argparse.Namespace) -> int:
    from .compiler.pipeline import BackendUnavailable, compile_network
    from .progress import progress

    try:
        with progress(f"exporting {net.name} to ONNX") as step:
            from .compiler.torch.export import export_onnx  # imports torch: the spinner is already up

            step(f"compiling {net.name}")
            model = compile_network(net, backend="torch")
            exported = export_onnx(model, net.input_shape, args.onnx, on_step=step)
    except BackendUnavailable as err:
        print(f"incdsl export: {err}", file=sys.stderr)
        return EXIT_BACKEND
    print(f"wrote {exported.summary()}", file=sys.stderr)
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(args.pattern)
    if args.command == "fmt":
        return _fmt(args)
    try:
        net = load(args.spec, input=args.input)
    except SpecError as err:
        print(err.render(color=use_color(sys.stderr)), file=sys.stderr)
        return EXIT_SPEC
    if args.command == "check":
        sys.stdout.write(_summary(net, args.spec))
    elif args.command == "params":
        from .params_table import RENDERERS, params_table

        sys.stdout.write(RENDERERS[args.format](params_table(net), expand=args.expand))
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
