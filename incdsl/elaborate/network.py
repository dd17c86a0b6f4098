"""The top level of a network spec: ``network``, ``input``, the main path statement by statement
(each a row of the params table) and the auxiliary heads → :class:`~incdsl.ir.Network`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from .. import ast, ir, limits
from ..errors import Span, SpecError, SpecWarning, closest, did_you_mean
from ..layers import as_float
from .declarations import IncludeResolver, collect
from .expressions import evaluate
from .names import TOP_LEVEL, Names, Scope, check_identifier
from .tables import take_paper, written_rename
from .walker import Cursor, Output, Walker, statement


def elaborate(spec: ast.SpecFile, resolve_include: IncludeResolver, input_shape: ir.Shape | None = None) -> ir.Network:
    """Build the graph IR (without shapes) from a parsed spec.

    ``resolve_include(path, span)`` returns the parsed file an ``include``
    statement names, or raises :class:`SpecError`; ``input_shape`` overrides the spec's.

    >>> from incdsl.syntax import parse
    >>> net = elaborate(parse("input 3x8x8\\nconv 3x3 4\\n", "t.inc"), resolve_include=None)
    >>> net.name, [n.name for n in net.nodes]
    ('t', ['input', 'conv1'])
    """
    if not spec.stmts:
        raise SpecError(
            "this spec is empty",
            Span(spec.path, 1, 1),
            hint="a spec needs at least `input CxHxW` and one layer, e.g. `input 3x32x32` then `conv 3x3 16`",
        )
    spec = variant(spec, resolve_include)
    decls = collect(spec, resolve_include)
    top = _top_level(spec)
    if not top.main:
        raise SpecError(
            "this spec defines no layers",
            Span(spec.path, 1, 1),
            hint="a block library is meant to be included from a network spec (`include \"file.inc\"`)",
        )
    shape = input_shape or top.input_shape
    if shape is None:
        raise SpecError("this spec has no `input` statement", Span(spec.path, 1, 1), hint="add e.g. `input 3x224x224`")
    walker = Walker(decls, Names(), Output())
    first_line = Span(spec.path, 1, 1)
    walker.out.nodes.append(ir.Node(name="input", attrs=ir.InputAttrs(), span=first_line))
    walker.names.register(Scope(""), "input", first_line)
    root = Cursor(Scope(""), defaults=decls.defaults)
    x = "input"
    for item in top.input_layers:
        x = _normalize(walker, item, x, root)
    for stmt in top.main:
        x = _main_statement(walker, stmt, x, root)
    heads = [_aux_head(walker, stmt) for stmt in top.aux]
    _drop_path_rule(walker.out)
    return ir.Network(
        name=top.name or _name_from_path(spec.path),
        input_shape=shape,
        nodes=tuple(walker.out.nodes),
        output=x,
        aux=tuple(heads),
        rows=tuple(walker.out.rows),
        tables=tuple(walker.out.headers.all),
        scopes=tuple(walker.out.scopes),
        paper=top.paper,
    )


_EXTENDS_USAGE = 'write `extends "base.inc"`, then this network\'s `network NAME` and `input CxHxW:` lines'


def variant(spec: ast.SpecFile, resolve_include: IncludeResolver) -> ast.SpecFile:
    """A spec that ``extends "base.inc"`` is the base network with its own ``network`` and ``input``
    lines in place of the base's (a pretrained form: the same layers, a normalised input), and says
    nothing else; any other spec is returned as it is.

    >>> from incdsl.syntax import parse
    >>> base = parse("network a\\ninput 3x8x8\\nconv 3x3 4\\n", "a.inc")
    >>> spec = parse('network b\\nextends "a.inc"\\n', "b.inc")
    >>> [s.links[0].head for s in variant(spec, lambda path, span: base).stmts]
    ['network', 'input', 'conv']
    """
    lines = [s for s in spec.stmts if _head(s) == "extends"]
    if not lines:
        return spec
    if len(lines) > 1:
        raise SpecError("a second `extends` line", lines[1].span, hint="a spec extends one network")
    stmt = lines[0]
    item = stmt.links[0]
    assert isinstance(item, ast.Item)
    path = item.terms[0] if len(item.terms) == 1 and isinstance(item.terms[0], ast.Positional) else None
    if path is None or not isinstance(path.value, ast.Str) or len(stmt.links) > 1 or stmt.body or stmt.rows:
        raise SpecError("`extends` takes one quoted file name", item.span, hint=_EXTENDS_USAGE)
    own = {_head(s): s for s in spec.stmts if _head(s) in ("network", "input")}
    others = [s for s in spec.stmts if s is not stmt and _head(s) not in own]
    if others:
        raise SpecError(
            "a spec that `extends` another gives only its `network` name and its `input`",
            others[0].span,
            hint="write the layers, blocks and defaults in the base spec (or `include` it for its blocks "
            "and write the layers here)",
        )
    base = resolve_include(path.value.value, path.span)
    if any(_head(s) == "extends" for s in base.stmts):
        raise SpecError("`extends` names a spec that extends another", path.span, hint="extend the base spec itself")
    stmts: list[ast.Statement] = [own.pop(head) for head in ("network", "input") if head in own and
                                  not any(_head(s) == head for s in base.stmts)]  # fmt: skip
    stmts += [own.pop(_head(s), s) for s in base.stmts]
    return spec.model_copy(update={"stmts": tuple(stmts)})


def _head(stmt: ast.Statement) -> str | None:
    if isinstance(stmt, ast.BlockDef):
        return None
    first = stmt.links[0]
    return first.head if isinstance(first, ast.Item) else None


@dataclass
class _TopLevel:
    name: str | None = None
    input_shape: ir.Shape | None = None
    #: ``network NAME @paper(params=…, ops=…)``: the whole network's figures as its paper prints them.
    paper: ir.PaperFigures | None = None
    #: The layers under ``input …:`` (its normalisation).
    input_layers: list[ast.Item] = field(default_factory=list)
    main: list[ast.Stmt] = field(default_factory=list)
    aux: list[ast.Stmt] = field(default_factory=list)


def _top_level(spec: ast.SpecFile) -> _TopLevel:
    """The spec's statements sorted out: its name, its input, the main path and the aux heads."""
    top = _TopLevel()
    seen: dict[str, ast.Item] = {}
    for stmt in spec.stmts:
        if isinstance(stmt, ast.BlockDef):
            continue
        head = stmt.links[0]
        if isinstance(head, ast.Item) and head.head in TOP_LEVEL:
            if head.head in ("network", "input"):
                _alone(stmt, head, seen.get(head.head))
                seen[head.head] = head
            if head.head == "network":
                stmt, top.paper = take_paper(stmt)
                top.name = _network_name(stmt.links[0])  # type: ignore[arg-type]
            elif head.head == "input":
                top.input_shape = _input(head)
                top.input_layers = _input_layers(stmt)
            elif head.head == "aux":
                top.aux.append(stmt)
            continue
        top.main.append(stmt)
    return top


def _alone(stmt: ast.Stmt, head: ast.Item, earlier: ast.Item | None) -> None:
    """``network`` and ``input`` are said once each, on a line of their own (what would follow
    them on the line or under it would otherwise be dropped)."""
    word = head.head
    if earlier is not None:
        raise SpecError(
            f"a second `{word}` line (the first is on line {earlier.span.line})",
            head.span,
            hint=f"a spec describes one network with one input; delete one of the `{word}` lines",
        )
    if len(stmt.links) > 1:
        raise SpecError(
            f"`{word}` stands alone on its line",
            stmt.links[1].span,
            hint=f"start the layers on the next line, after `{word} …`",
        )
    if (stmt.body is not None and word != "input") or stmt.rows is not None:
        first = (stmt.body or stmt.rows or (stmt,))[0]
        raise SpecError(
            f"`{word}` has no indented body",
            first.span,
            hint="a network's lines follow `network NAME` and `input CxHxW` unindented, one layer or block per line",
        )


def parse_input_shape(dims: ast.Dims | None, text: str, span: Span) -> ir.Shape:
    """``3x224x224`` → (3, 224, 224), with a clear error for anything else."""
    ok = dims is not None and len(dims.sizes) == 3 and dims.stride is None and min(dims.sizes) >= 1
    if not ok:
        raise SpecError(
            f"malformed input `{text}`: expected channels×height×width",
            span,
            hint="write e.g. `input 3x224x224` (three positive sizes joined by `x`)",
        )
    assert dims is not None
    c, h, w = dims.sizes
    if c > limits.MAX_CHANNELS or max(h, w) > limits.MAX_SPATIAL:
        raise SpecError(
            f"input `{text}` is too large: at most {limits.MAX_CHANNELS:,} channels and "
            f"{limits.MAX_SPATIAL:,} pixels a side",
            span,
        )
    if w <= 4 < min(c, h):
        warnings.warn(
            SpecWarning(
                f"input `{text}` reads as {c} channels of {h}×{w} pixels (the order is channels×height×width)",
                span,
                hint=f"an image of {c}×{h} pixels with {w} channels is `{w}x{c}x{h}`",
            ),
            stacklevel=2,
        )
    return (c, h, w)


def _network_name(item: ast.Item) -> str:
    names = [t.value.name for t in item.terms if isinstance(t, ast.Positional) and isinstance(t.value, ast.Sym)]
    if len(names) != 1 or len(item.terms) != 1:
        raise SpecError("`network` takes one name", item.span, hint="e.g. `network googlenet`")
    check_identifier(names[0], item.terms[0].span, "network name")
    return names[0]


def _input(item: ast.Item) -> ir.Shape:
    dims = item.terms[0] if len(item.terms) == 1 and isinstance(item.terms[0], ast.Dims) else None
    text = " ".join(_term_text(t) for t in item.terms) or "(nothing)"
    return parse_input_shape(dims, text, item.span)


def _drop_path_rule(out: Output) -> None:
    """timm's stochastic-depth rule: the residual adds that say ``drop_path_rate=R`` drop with
    rates rising linearly over the network, from 0 at the first to R at the last."""
    rule = out.drop_path_rule
    for _, rate, span in rule:
        if rate != rule[0][1]:
            raise SpecError(
                f"`drop_path_rate={rate:g}` here, but `drop_path_rate={rule[0][1]:g}` at {rule[0][2]}",
                span,
                hint="the rule gives one rate for the whole network: the last add's; set it once, in `defaults:`",
            )
    for k, (index, rate, _) in enumerate(rule):
        node = out.nodes[index]
        step = rate * k / (len(rule) - 1) if len(rule) > 1 else 0.0
        out.nodes[index] = node.model_copy(update={"attrs": node.attrs.model_copy(update={"drop_path": step})})


_NORMALIZE_USAGE = (
    "write `normalize mean M… std S…` with one value per input channel, and `from mean M… std S…` after it "
    "when the input arrives normalised otherwise (torchvision's transform_input)"
)


def _input_layers(stmt: ast.Stmt) -> list[ast.Item]:
    """The lines under ``input CxHxW:``: each a ``normalize``, the one layer an input owns."""
    items = []
    for inner in stmt.body or ():
        if isinstance(inner, ast.BlockDef) or inner.rows is not None or inner.body is not None:
            raise SpecError("under `input …:` go only `normalize` lines", inner.span, hint=_NORMALIZE_USAGE)
        for link in inner.links:
            if not isinstance(link, ast.Item) or link.head != "normalize":
                raise SpecError(
                    f"under `input …:` go only `normalize` lines, not `{_link_head(link)}`",
                    link.span,
                    hint="the network's layers follow `input …:` unindented",
                )
            items.append(link)
    return items


def _link_head(link: ast.Link) -> str:
    return link.head if isinstance(link, ast.Item) else f"{link.count} x {link.item.head}"


def _normalize(walker: Walker, item: ast.Item, x: str, at: Cursor) -> str:
    """``normalize mean M… std S… [from mean M… std S…] [as NAME]``: the input's normalisation,
    a row of the params table of its own."""
    if item.args is not None:
        raise SpecError("`normalize` takes no parentheses", item.span, hint=_NORMALIZE_USAGE)
    lists: dict[str, list[float]] = {}
    current: str | None = None
    source = ""
    for term in item.terms:
        if isinstance(term, ast.Rename):
            continue
        if not isinstance(term, ast.Positional):
            raise SpecError("`normalize` takes words and numbers", term.span, hint=_NORMALIZE_USAGE)
        value = term.value
        if isinstance(value, ast.Sym) and value.name in ("mean", "std", "from"):
            if value.name == "from":
                if source or "mean" not in lists or "std" not in lists:
                    raise SpecError("`from` comes once, after `mean …` and `std …`", term.span, hint=_NORMALIZE_USAGE)
                source, current = "from_", None
                continue
            current = source + value.name
            if current in lists:
                raise SpecError(f"`{value.name}` is given twice", term.span, hint=_NORMALIZE_USAGE)
            lists[current] = []
            continue
        if isinstance(value, ast.Sym) or current is None:
            shown = f"`{value.name}`" if isinstance(value, ast.Sym) else "a value here"
            raise SpecError(f"`normalize` does not take {shown}", term.span,
                            hint=did_you_mean(value.name, ["mean", "std", "from"]) if isinstance(value, ast.Sym) else _NORMALIZE_USAGE)
        what = current.replace("_", " ")
        number = as_float(evaluate(value, {}, walker.decls.arg_tables), what, term.span)
        if current.endswith("std") and number <= 0:
            raise SpecError(f"a {what} must be positive; got {number:g}", term.span, hint="a std divides: 0.229, 0.5, 1")
        lists[current].append(number)
    wanted = ["mean", "std", *(["from_mean", "from_std"] if source else [])]
    for key in wanted:
        if not lists.get(key):
            raise SpecError(f"`normalize` is missing its {key.replace('_', ' ')} values", item.span, hint=_NORMALIZE_USAGE)
    counts = {key: len(lists[key]) for key in wanted}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items())
        raise SpecError(f"`normalize` gives different numbers of values ({shown})", item.span, hint=_NORMALIZE_USAGE)
    attrs = ir.NormalizeAttrs(**{key: tuple(lists[key]) for key in wanted})
    row = walker.out.new_row("layer", item.span)
    name = walker.names.allocate(at.scope, "normalize", written_rename(item.terms, {}), None, item.span)
    return walker.out.add_node(name, attrs, (x,), item.span, replace(at, row=row, origin=item.span))


def _main_statement(walker: Walker, stmt: ast.Stmt, x: str, at: Cursor) -> str:
    """A statement of the main path: a row of the params table (a table gives one per row;
    a top-level ``seq`` one per statement in it)."""
    first = stmt.links[0]
    if stmt.rows is not None and len(stmt.links) == 1 and isinstance(first, ast.Item):
        return walker.table(stmt, first, x, at)
    stmt, paper = take_paper(stmt)
    first = stmt.links[0]
    if len(stmt.links) == 1 and isinstance(first, ast.Item) and first.head == "seq" and stmt.body:
        scope = walker.seq_scope(first, at)
        inside, x_in = at.inside(scope), x
        for inner in stmt.body:
            x = _main_statement(walker, statement(inner), x, inside)
        return walker.out.add_scope(scope.path, x_in, x)
    kind = "layer"
    call: ast.Item | None = None
    count = 1
    if len(stmt.links) == 1 and isinstance(first, ast.Repeat):
        kind, call, count = "repeat", first.item, first.count
    elif len(stmt.links) == 1 and first.head in walker.decls.blocks:
        kind, call = "block", first
    table, values = walker.out.headers.for_call(call, walker.decls.arg_tables) if call else (None, ())
    row = walker.out.new_row(
        kind,
        first.span,
        block=call.head if call else None,
        count=count,
        paper=paper,
        table=table,
        values=values,
    )
    return walker.statement(stmt, x, replace(at, row=row, origin=first.span))


def _aux_head(walker: Walker, stmt: ast.Stmt) -> ir.AuxHead:
    """``aux [NAME] after MODULE weight=W:`` and its layers, reading the output of ``MODULE``."""
    item = stmt.links[0]
    assert isinstance(item, ast.Item)
    usage = "write `aux [NAME] after MODULE weight=W:` and the head's layers"
    if stmt.body is None or len(stmt.links) != 1:
        raise SpecError("an aux head needs `:` and its layers", item.span, hint=usage)
    words = [t for t in item.terms if isinstance(t, ast.Positional) and isinstance(t.value, (ast.Sym, ast.Str))]
    # A module path with dots (`repeat.2`) is quoted: `aux after "repeat.2" weight=0.3:`.
    names = [t.value.name if isinstance(t.value, ast.Sym) else t.value.value for t in words]  # type: ignore[union-attr]
    weight = [t for t in item.terms if isinstance(t, ast.Option) and t.key == "weight"]
    others = [t for t in item.terms if t not in words and t not in weight]
    _unquoted_path(item.terms)
    if others or "after" not in names or len(names) - names.index("after") != 2 or names.index("after") > 1:
        raise SpecError("malformed aux head", item.span, hint=usage)
    if not weight:
        raise SpecError("an aux head needs its loss weight", item.span, hint="add e.g. `weight=0.3`")
    loss_weight = as_float(evaluate(weight[0].value, {}, walker.decls.arg_tables), "weight", weight[0].span, minimum=0.0)
    target_term = words[names.index("after") + 1]
    target = names[names.index("after") + 1]
    out = walker.out
    module = target if target in out.outputs else out.row_labels.get(target, "")
    tensor = out.outputs.get(module)
    if tensor is None:
        candidates = [n for n in out.outputs if ":" not in n]
        best = closest(target, [*candidates, *out.row_labels])
        shown = f'"{best}"' if best and "." in best else best
        raise SpecError(
            f"aux head is attached after `{target}`, which is not a layer or module of this network",
            target_term.span,
            hint=f"did you mean `{shown}`?" if best else "name a module, e.g. `inception_4a`",
        )
    rename = ast.Rename.model_construct(span=words[0].span, name=names[0], quoted=False) if names[0] != "after" else None
    root = Scope("")
    name = walker.names.allocate(root, "aux", rename, None, item.span)
    row = out.new_row("aux", item.span, label=name)
    output = walker.sequence(stmt.body, tensor, Cursor(Scope(name), row=row, origin=item.span, defaults=walker.decls.defaults))
    out.add_scope(name, tensor, output)
    return ir.AuxHead(name=name, after=module, input=tensor, weight=loss_weight, output=output, row=row)


def _unquoted_path(terms: tuple[ast.Term, ...]) -> None:
    """``aux after Mixed_6e.branch1 …``, ``after repeat.2`` or ``after 3a``: a dotted module path
    or a name that starts with a digit written bare, which the parser reads as several values
    (``repeat`` then ``.2``, ``3`` then ``a``); it is quoted."""
    after = [i for i, t in enumerate(terms) if isinstance(t, ast.Positional) and isinstance(t.value, ast.Sym) and t.value.name == "after"]
    if not after:
        return
    pieces: list[ast.Positional] = []
    for term in terms[after[0] + 1 :]:
        touching = not pieces or (term.span.line, term.span.column) == (pieces[-1].span.end_line, pieces[-1].span.end_column)
        if not isinstance(term, ast.Positional) or not touching:
            break
        pieces.append(term)
    texts = [_term_text(p) if not isinstance(p.value, ast.TableRef) else f"{p.value.table}.{p.value.entry}" for p in pieces]
    if len(pieces) > 1 or any(isinstance(p.value, ast.TableRef) for p in pieces):
        path = "".join(texts)
        first, last = pieces[0].span, pieces[-1].span
        why = "has dots" if "." in path else "starts with a digit (a table row's label, say)"
        raise SpecError(
            f"the module path `{path}` {why}, so it is quoted in an aux head",
            Span(first.file, first.line, first.column, last.end_line, last.end_column),
            hint=f'write `after "{path}"`',
        )


def _term_text(term: ast.Term) -> str:
    if isinstance(term, ast.Dims):
        return term.text
    if isinstance(term, ast.Positional):
        value: Any = term.value
        if isinstance(value, ast.Num):
            return value.text
        if isinstance(value, ast.Sym):
            return value.name
        if isinstance(value, ast.Str):
            return f'"{value.value}"'
    return "…"


def _name_from_path(path: str) -> str:
    """The network's name when the spec gives none: the file's name made an ASCII identifier
    (a network name becomes a Python class name; ``a²b.inc`` is ``a_b``).

    >>> _name_from_path("specs/a²b.inc"), _name_from_path("3net.inc")
    ('a_b', 'net_3net')
    """
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]
    name = "".join(c if (c.isascii() and c.isalnum()) or c == "_" else "_" for c in stem).strip("_") or "network"
    return name if name[0].isalpha() else f"net_{name}"
