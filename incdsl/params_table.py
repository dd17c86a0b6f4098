"""The params table (`incdsl params`): the network as the paper's Table 1.

One row per spec row (a module is one row, not its seven convs), the block's
columns from the spec's table headers, params and MACs, and — where the spec
carries the paper's own figures with ``@paper`` — those figures beside ours,
with a note wherever the two disagree by more than :data:`PAPER_TOLERANCE`.

:func:`params_table` builds the data; ``render_*`` turn it into text, markdown,
CSV or JSON (the JSON layout is documented in docs/CLI.md and is stable).
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import ast, ir
from .cost import Cost, node_costs
from .operations import operation

#: Relative difference above which a paper figure is flagged.
PAPER_TOLERANCE = 0.015
#: GoogLeNet's Table 1 prints params in K of 1024 weights (its linear row's
#: 1024·1000 weights print as "1000K"); ops are plain multiply-adds.
PAPER_PARAMS_K = 1024 / 1000
JSON_SCHEMA_VERSION = 1

@dataclass
class ParamsRow:
    """One row of the params table: a statement of the main path, a Table-1 row, an aux head,
    or (``kind="copy"``) one copy of a repeated statement."""

    kind: str
    type: str
    patch: str
    output: ir.Shape
    depth: int
    params: int
    macs: int
    weights: int
    values: dict[str, int | float | str] = field(default_factory=dict)
    count: int = 1
    per_copy: Cost | None = None
    line: int = 0
    paper: ir.PaperFigures | None = None
    notes: list[str] = field(default_factory=list)
    copies: list[ParamsRow] = field(default_factory=list)


@dataclass
class ParamsTable:
    network: str
    input_shape: ir.Shape
    columns: list[str]
    rows: list[ParamsRow]
    aux: list[ParamsRow]
    total: Cost
    total_with_aux: Cost
    has_paper: bool
    #: ``network NAME @paper(...)``: the whole network's figures, shown beside the total.
    paper: ir.PaperFigures | None = None
    #: Where those figures differ from the total (same tolerance as a row's).
    notes: list[str] = field(default_factory=list)


def _describe(node: ir.Node) -> str:
    return operation(node.op).type_label(node.attrs)


def _patch(node: ir.Node) -> str:
    patch = operation(node.op).patch
    return patch(node.attrs) if patch is not None else ""


def _depth(nodes: list[ir.Node]) -> int:
    """Layers with weights on the longest path through a row (the paper's "depth")."""
    depth: dict[str, int] = {}
    for node in nodes:
        here = 1 if operation(node.op).deep else 0
        depth[node.name] = here + max((depth.get(i, 0) for i in node.inputs), default=0)
    return max(depth.values(), default=0)


def paper_rounding(figure: ir.PaperFigure) -> float:
    """Half a unit of the figure's last printed digit (0.5M for "54M", 0.05K for "2.7K")."""
    body = figure.text.rstrip("KMG")
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(figure.text[-1], 1.0)
    decimals = len(body.partition(".")[2])
    return 0.5 * 10**-decimals * scale


def _compare(what: str, ours: float, ours_text: str, figure: ir.PaperFigure, scale: float = 1.0) -> str | None:
    """A note when a paper figure differs from ours by more than the tolerance
    and more than the paper's own rounding ("1M" stands for 0.5M–1.5M)."""
    paper = figure.value * scale
    slack = max(PAPER_TOLERANCE * paper, paper_rounding(figure) * scale)
    if abs(ours - paper) <= slack:
        return None
    # a row with no weights (a pool, a concat) has nothing to divide by: say so without a ratio
    relative = f" (paper {paper / ours - 1:+.1%})" if ours else ""
    return f"{what}: paper {figure.text}, here {ours_text}{relative}"


def _paper_notes(row: ParamsRow) -> list[str]:
    paper = row.paper
    if paper is None:
        return []
    notes = []
    if paper.ops is not None:
        notes.append(_compare("ops", row.macs, format_si(row.macs), paper.ops))
    if paper.params is not None:
        notes.append(_compare("params", row.weights, f"{row.weights / 1024:.1f}K weights", paper.params, PAPER_PARAMS_K))
    if paper.note:
        notes.append(paper.note)
    return [n for n in notes if n]


def _network_notes(paper: ir.PaperFigures | None, total: Cost) -> list[str]:
    """A network's own figures against the total of its main path: every learnable scalar
    (as papers' model-size columns count, M = 10⁶) and every multiply-add."""
    if paper is None:
        return []
    notes = [
        _compare("ops", total.macs, format_si(total.macs), paper.ops) if paper.ops is not None else None,
        _compare("params", total.params, f"{total.params:,}", paper.params) if paper.params is not None else None,
        paper.note,
    ]
    return [n for n in notes if n]


def _copy_name(nodes: list[ir.Node]) -> str:
    """The module a copy of a repeated statement is (``features.6`` for a copy of a block,
    the layer itself for a copy of one layer)."""
    return nodes[0].name if len(nodes) == 1 else ir.common_scope(n.name for n in nodes)


def _row_type(row: ir.Row, principal: ir.Node) -> str:
    if row.kind == "block" and row.label is not None and row.table is not None:
        return f"{row.block} ({row.label})"
    if row.kind == "block":
        return str(row.block)
    if row.kind == "repeat":
        return f"{row.count} × {row.block}"
    if row.kind == "aux":
        return f"aux classifier ({row.label})"
    return _describe(principal)


def cell(value: Any) -> int | float | str:
    """A table row's value as every format shows it: a number as a number, a size as the spec
    wrote it (``3x3``), anything else (a name, a flag) as its text.

    >>> cell(ast.Dims.model_construct(sizes=(1, 7), stride=None, text="1x7"))
    '1x7'
    """
    if isinstance(value, ast.Dims):
        return value.text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return str(value)


def _build_row(net: ir.Network, row: ir.Row, nodes: list[ir.Node], costs: dict[str, Cost], columns: list[str]) -> ParamsRow:
    cost = sum((costs[n.name] for n in nodes), Cost())
    principal = max(nodes, key=lambda n: costs[n.name].macs)  # the first of equals
    if costs[principal.name].macs == 0:
        principal = nodes[0]
    last = nodes[-1]
    if row.kind == "aux":
        last = net.node(net.aux_logits(next(h for h in net.aux if h.row == row.index)))
    values: dict[str, Any] = {}
    if row.table is not None:
        values = dict(zip(net.tables[row.table].columns, row.values, strict=True))
    out = ParamsRow(
        kind=row.kind,
        type=_row_type(row, principal),
        patch=_patch(principal) if row.kind == "layer" else "",
        output=last.shape or (0, 0, 0),
        depth=_depth(nodes),
        params=cost.params,
        macs=cost.macs,
        weights=cost.weights,
        values={k: cell(v) for k, v in values.items() if k in columns},
        count=row.count,
        line=row.span.line,
        paper=row.paper,
    )
    if row.count > 1:
        by_copy: dict[int, list[ir.Node]] = defaultdict(list)
        for n in nodes:
            by_copy[n.repeat_index or 0].append(n)
        copies = []
        for index, group in sorted(by_copy.items()):
            c = sum((costs[n.name] for n in group), Cost())
            copies.append(
                ParamsRow(
                    kind="copy",
                    type=_copy_name(group) or f"{row.block} [{index}]",
                    patch="",
                    output=group[-1].shape or (0, 0, 0),
                    depth=_depth(group),
                    params=c.params,
                    macs=c.macs,
                    weights=c.weights,
                    line=row.span.line,
                )
            )
        out.copies = copies
        per_copy = {Cost(c.params, c.macs, c.weights) for c in copies}
        # "(N each)" only where it is true: a first copy may see a different input width
        out.per_copy = per_copy.pop() if len(per_copy) == 1 else None
    out.notes = _paper_notes(out)
    return out


def params_table(net: ir.Network) -> ParamsTable:
    """The data of the params table for a shape-checked network."""
    costs = node_costs(net)
    by_row: dict[int, list[ir.Node]] = defaultdict(list)
    for node in net.nodes:
        if node.row is not None:
            by_row[node.row].append(node)
    columns: list[str] = []
    for header in net.tables:
        columns.extend(c for c in header.columns if c not in columns)
    rows, aux = [], []
    for row in net.rows:
        if not by_row.get(row.index):
            continue
        built = _build_row(net, row, by_row[row.index], costs, columns)
        (aux if row.kind == "aux" else rows).append(built)
    total = sum((Cost(r.params, r.macs, r.weights) for r in rows), Cost())
    with_aux = sum((Cost(r.params, r.macs, r.weights) for r in aux), total)
    return ParamsTable(
        network=net.name,
        input_shape=net.input_shape,
        columns=columns,
        rows=rows,
        aux=aux,
        total=total,
        total_with_aux=with_aux,
        has_paper=net.paper is not None or any(r.paper is not None for r in rows),
        paper=net.paper,
        notes=_network_notes(net.paper, total),
    )


# --- formatting ----------------------------------------------------------------


def format_si(value: float) -> str:
    """1.58G, 128.0M, 2.7K: three or so significant figures, decimal units."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            digits = 2 if unit == "G" else 1
            return f"{value / scale:.{digits}f}{unit}"
    return f"{value:g}"


def format_shape(shape: ir.Shape) -> str:
    c, h, w = shape
    return f"{h}×{w}×{c}"


def _expanded(table: ParamsTable, expand: bool) -> Iterable[ParamsRow]:
    for row in table.rows:
        yield row
        if expand:
            yield from row.copies


#: The order every shape of this report is printed in (the paper's); the headers say so.
SHAPE_ORDER = "H×W×C"
_FIXED = ["type", "patch size/stride", f"output ({SHAPE_ORDER})", "depth"]
_TAIL = ["params", "MACs"]
_PAPER = ["paper params", "paper ops", "notes"]
_TOTAL_WITH_AUX = "total with aux (training)"


def _header(table: ParamsTable) -> list[str]:
    return [*_FIXED, *table.columns, *_TAIL, *(_PAPER if table.has_paper else [])]


def _cells(table: ParamsTable, row: ParamsRow, footnotes: list[str]) -> list[str]:
    per_copy = f" ({row.per_copy.params:,} each)" if row.per_copy else ""
    cells = [
        ("  " if row.kind == "copy" else "") + row.type,
        row.patch,
        format_shape(row.output),
        str(row.depth) if row.depth else "",
        *[str(row.values.get(c, "")) for c in table.columns],
        f"{row.params:,}{per_copy}" if row.params else "",
        format_si(row.macs) if row.macs else "",
    ]
    if table.has_paper:
        paper = row.paper
        refs = ""
        if row.notes:
            footnotes.append(f"{row.type}: " + "; ".join(row.notes))
            refs = f"[{len(footnotes)}]"
        cells += [
            paper.params.text if paper and paper.params else "",
            paper.ops.text if paper and paper.ops else "",
            refs,
        ]
    return cells


def _total_cells(table: ParamsTable, label: str, cost: Cost, footnotes: list[str] | None = None) -> list[str]:
    """A total's row; with ``footnotes`` it is the main path's, beside the network's own figures."""
    blanks = [""] * (len(_FIXED) - 1 + len(table.columns))
    paper: list[str] = ["", "", ""] if table.has_paper else []
    if footnotes is not None and table.paper is not None:
        refs = ""
        if table.notes:
            footnotes.append(f"{label}: " + "; ".join(table.notes))
            refs = f"[{len(footnotes)}]"
        figures = table.paper
        paper = [figures.params.text if figures.params else "", figures.ops.text if figures.ops else "", refs]
    return [label, *blanks, f"{cost.params:,}", format_si(cost.macs), *paper]


#: What the counts include and leave out, beside the two tools most people compare with
#: (fvcore's FlopCountAnalysis, torchinfo's summary); tests/test_params.py checks torchinfo's.
COUNTING = (
    "params: every learnable scalar (weights, biases, batch-norm γ and β). MACs: multiply-adds of conv "
    "and linear layers, per image; not counted: bias adds, batch norm, pooling, LRN, activations, concats "
    "and residual adds. fvcore's FlopCountAnalysis counts the same multiply-adds as its \"flops\", plus one "
    "or two per element for each batch norm and one per input element for adaptive average pooling; "
    "torchinfo's Mult-Adds add one per output element for each bias and two per channel for each batch "
    "norm, for the whole batch."
)


def _footer(table: ParamsTable) -> str:
    if not table.has_paper:
        return COUNTING
    conventions = []
    if any(r.paper for r in [*table.rows, *table.aux]):
        conventions.append("the paper's params count weights only, with K = 1024")
    if table.paper is not None:
        conventions.append("the network's own figures, beside the total, count every parameter, with M = 10⁶")
    return COUNTING + (
        f" Paper figures are flagged when they differ from ours by more than {PAPER_TOLERANCE:.1%}; "
        + "; ".join(conventions) + "."
    )


def table_rows(table: ParamsTable, expand: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body rows (main path, total, aux heads, total with aux) and footnotes, as text."""
    footnotes: list[str] = []
    body = [_cells(table, r, footnotes) for r in _expanded(table, expand)]
    body.append(_total_cells(table, "total", table.total, footnotes))
    for aux in table.aux:
        body.append(_cells(table, aux, footnotes))
    if table.aux:
        body.append(_total_cells(table, _TOTAL_WITH_AUX, table.total_with_aux))
    return _header(table), body, footnotes


def _without_empty_columns(header: list[str], body: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The columns with something in them (the first, the row's name, always)."""
    keep = [i for i in range(len(header)) if i == 0 or any(row[i] for row in body)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in body]


# --- a text table that fits the terminal -------------------------------------------------------

_GAP = "  "


def _header_words(text: str) -> list[str]:
    """Where a header may break: at spaces, and after a `/` (``patch size/`` ``stride``)."""
    return [w for word in text.split(" ") for w in word.replace("/", "/ ").split(" ") if w]


def _header_lines(text: str, width: int) -> list[str]:
    """A header broken into lines of at most ``width`` (or of its longest word)."""
    lines: list[str] = []
    for word in _header_words(text):
        joiner = "" if lines and lines[-1].endswith("/") else " "
        if lines and len(lines[-1]) + len(joiner) + len(word) <= width:
            lines[-1] += joiner + word
        else:
            lines.append(word)
    return lines or [""]


def grid(
    header: list[str], body: list[list[str]], right: set[int], width: int | None = None, breaks: set[int] = frozenset()
) -> list[str]:
    """Rows as text columns under a rule, a blank line after each row index in ``breaks``.

    Within ``width`` (no limit when None): headers break onto several lines where that saves
    room, and when the columns still do not fit they go on in another block below, each block
    starting with the first column, so no line is longer than ``width`` unless one column is.

    >>> print("\\n".join(grid(["name", "a long header"], [["x", "1"], ["yy", "22"]], {1}, width=12)))
          a long
    name  header
    ────────────
    x          1
    yy        22
    """
    cells = [max((len(row[i]) for row in body), default=0) for i in range(len(header))]
    natural = [max(c, len(h)) for c, h in zip(cells, header, strict=True)]
    if width is None or _span(natural) <= width:
        return _block(header, body, right, natural, breaks, list(range(len(header))), None)
    narrow = [max(c, *(len(w) for w in _header_words(h))) for c, h in zip(cells, header, strict=True)]
    blocks: list[list[int]] = [[0]]
    for i in range(1, len(header)):
        if len(blocks[-1]) > 1 and _span([narrow[j] for j in blocks[-1]] + [narrow[i]]) > width:
            blocks.append([0])
        blocks[-1].append(i)
    out: list[str] = []
    for n, columns in enumerate(blocks):
        if n:
            out.append("")
        out += _block(header, body, right, narrow, breaks, columns, width)
    return out


def _span(widths: list[int]) -> int:
    return sum(widths) + len(_GAP) * (len(widths) - 1)


def _block(
    header: list[str], body: list[list[str]], right: set[int], widths: list[int], breaks: set[int],
    columns: list[int], width: int | None,
) -> list[str]:
    heads = {i: _header_lines(header[i], widths[i]) if width else [header[i]] for i in columns}
    depth = max(len(lines) for lines in heads.values())

    def line(texts: dict[int, str]) -> str:
        parts = [texts[i].rjust(widths[i]) if i in right else texts[i].ljust(widths[i]) for i in columns]
        return _GAP.join(parts).rstrip()

    out = [line({i: ([""] * (depth - len(heads[i])) + heads[i])[k] for i in columns}) for k in range(depth)]
    out.append("─" * _span([widths[i] for i in columns]))
    for k, row in enumerate(body):
        out.append(line({i: row[i] for i in columns}))
        if k in breaks:
            out.append("")
    return out


def _wrapped(text: str, width: int | None, indent: int = 0) -> str:
    if width is None:
        return text
    return textwrap.fill(text, width, subsequent_indent=" " * indent, break_on_hyphens=False)


def render_text(table: ParamsTable, expand: bool = False, width: int | None = None) -> str:
    """The table as text, within ``width`` columns when given (the CLI gives the terminal's, or
    ``COLUMNS``): empty columns left out, headers broken, columns that still do not fit in a
    block below, footnotes and the footer wrapped."""
    header, body, footnotes = table_rows(table, expand)
    header, body = _without_empty_columns(header, body)
    numeric = set(table.columns) | {"depth", "params", "MACs", "paper params", "paper ops"}
    right = {i for i, name in enumerate(header) if name in numeric}
    n_main = len(table.rows) + sum(len(r.copies) for r in table.rows) * expand
    breaks = {n_main - 1, n_main, len(body) - 2} if table.aux else set()
    c, h, w = table.input_shape
    lines = [f"{table.network} — input {c}×{h}×{w} (C×H×W)", "", *grid(header, body, right, width, breaks)]
    for i, note in enumerate(footnotes, 1):
        lines.append(_wrapped(f"[{i}] {note}", width, len(f"[{i}] ")))
    lines.append(_wrapped(_footer(table), width))
    return "\n".join(lines) + "\n"


def render_markdown(table: ParamsTable, expand: bool = False, width: int | None = None) -> str:
    header, body, footnotes = table_rows(table, expand)
    header, body = _without_empty_columns(header, body)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join(" --- " for _ in header) + "|"]
    out += [line(cells) for cells in body]
    out.append("")
    out += [f"[{i}] {note}  " for i, note in enumerate(footnotes, 1)]
    out.append(_footer(table))
    return "\n".join(out) + "\n"


def render_csv(table: ParamsTable, expand: bool = False, width: int | None = None) -> str:
    """Every column, always (a stable layout for scripts): the paper's figures and notes, and the
    totals with and without the aux heads; shapes as three columns, C, H, W."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["kind", "type", "patch", "output_c", "output_h", "output_w", "depth", *table.columns, "params",
                     "macs", "weights", "paper_params", "paper_ops", "notes"])
    for row in [*_expanded(table, expand), *table.aux]:
        paper = row.paper
        writer.writerow(
            [row.kind, row.type, row.patch, *row.output, row.depth, *[row.values.get(c, "") for c in table.columns],
             row.params, row.macs, row.weights, paper.params.text if paper and paper.params else "",
             paper.ops.text if paper and paper.ops else "", "; ".join(row.notes)]
        )
    blanks = ["", "", "", "", "", *[""] * len(table.columns)]
    figures = table.paper
    paper = [figures.params.text if figures and figures.params else "", figures.ops.text if figures and figures.ops else "",
             "; ".join(table.notes)]
    for label, cost in (("total", table.total), ("total_with_aux", table.total_with_aux)):
        writer.writerow([label, label, *blanks, cost.params, cost.macs, cost.weights, *(paper if label == "total" else ["", "", ""])])
    return buffer.getvalue()


def _row_json(row: ParamsRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": row.kind,
        "type": row.type,
        "patch": row.patch or None,
        "output": list(row.output),
        "depth": row.depth,
        "columns": row.values,
        "params": row.params,
        "macs": row.macs,
        "weights": row.weights,
        "line": row.line,
    }
    if row.count > 1:
        out["count"] = row.count
        out["copies"] = [_row_json(c) for c in row.copies]
    if row.paper is not None:
        out["paper"] = row.paper.model_dump(exclude_none=True)
    if row.notes:
        out["notes"] = row.notes
    return out


def _total_json(table: ParamsTable) -> dict[str, Any]:
    out: dict[str, Any] = {"params": table.total.params, "macs": table.total.macs}
    if table.paper is not None:
        out["paper"] = table.paper.model_dump(exclude_none=True)
    if table.notes:
        out["notes"] = table.notes
    return out


def render_json(table: ParamsTable, expand: bool = False, width: int | None = None) -> str:
    data = {
        "schema": JSON_SCHEMA_VERSION,
        "network": table.network,
        "input": list(table.input_shape),
        "columns": table.columns,
        "rows": [_row_json(r) for r in table.rows],
        "aux": [_row_json(r) for r in table.aux],
        "total": _total_json(table),
        "total_with_aux": {"params": table.total_with_aux.params, "macs": table.total_with_aux.macs},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"table": render_text, "markdown": render_markdown, "csv": render_csv, "json": render_json}


# --- one row per layer ----------------------------------------------------------------------


#: Bytes of one activation value, as the layer rows count memory (fp32).
ACTIVATION_BYTES = 4


@dataclass(frozen=True)
class LayerRow:
    """One layer (or concat, or residual add) of the network, as torchinfo's summary shows a module."""

    name: str
    type: str
    op: str
    inputs: tuple[ir.Shape, ...]
    output: ir.Shape
    params: int
    macs: int
    aux: bool

    @property
    def activation_bytes(self) -> int:
        """The memory of this layer's output for one image, in fp32."""
        c, h, w = self.output
        return c * h * w * ACTIVATION_BYTES


def layer_rows(net: ir.Network) -> list[LayerRow]:
    """Every node but the input, main path first, then the aux heads, in execution order."""
    costs = node_costs(net)
    rows = []
    for node in [*net.main_nodes(), *(n for n in net.nodes if net.in_aux(n))]:
        if node.op == "input":
            continue
        cost = costs[node.name]
        patch = _patch(node)
        rows.append(LayerRow(
            name=node.name,
            type=f"{_describe(node)} {patch}".strip(),
            op=node.op,
            inputs=tuple(net.node(i).shape or (0, 0, 0) for i in node.inputs),
            output=node.shape or (0, 0, 0),
            params=cost.params,
            macs=cost.macs,
            aux=net.in_aux(node),
        ))
    return rows


def format_bytes(n: int) -> str:
    """3.2MB, 800.0KB, 512B (decimal units, as torchinfo prints them)."""
    return f"{format_si(n)}B" if n >= 1000 else f"{n}B"


def _input_text(op: str, shapes: tuple[ir.Shape, ...]) -> str:
    """One input's shape; a concat's as its channels summed, equal ones too
    (``35×35×(96+96+96+96)``); the several inputs of anything else each in full
    (a residual add's ``35×35×320 + 35×35×320``).

    >>> _input_text("concat", ((4, 8, 8), (4, 8, 8)))
    '8×8×(4+4)'
    """
    if len(shapes) <= 1:
        return format_shape(shapes[0]) if shapes else ""
    _, h, w = shapes[0]
    if op == "concat" and all(s[1:] == (h, w) for s in shapes):
        return f"{h}×{w}×({'+'.join(str(s[0]) for s in shapes)})"
    return " + ".join(format_shape(s) for s in shapes)


_LAYER_HEADER = ["layer", "type", f"input ({SHAPE_ORDER})", f"output ({SHAPE_ORDER})", "params", "MACs",
                 "activations"]


def _layer_cells(net: ir.Network) -> tuple[list[list[str]], set[int]]:
    rows = layer_rows(net)
    body = [
        [r.name, r.type, _input_text(r.op, r.inputs), format_shape(r.output), f"{r.params:,}" if r.params else "",
         format_si(r.macs) if r.macs else "", format_bytes(r.activation_bytes)]
        for r in rows
    ]
    main = [r for r in rows if not r.aux]
    body.append(["total", "", "", "", f"{sum(r.params for r in main):,}", format_si(sum(r.macs for r in main)),
                 format_bytes(sum(r.activation_bytes for r in main))])
    breaks = {len(main) - 1}
    if len(main) < len(rows):
        breaks.add(len(rows))
        body.append(["total with aux (training)", "", "", "", f"{sum(r.params for r in rows):,}",
                     format_si(sum(r.macs for r in rows)), format_bytes(sum(r.activation_bytes for r in rows))])
        breaks.add(len(main))
    return body, breaks


LAYERS_FOOTER = (
    f"activations: the output of each layer for one image in fp32 ({ACTIVATION_BYTES} bytes a value); the total is "
    "what one forward pass writes, and training keeps it for the backward pass (torchinfo's \"forward/backward "
    "pass size\" counts twice the output of each module with parameters: a conv and its batch norm each)."
)


def render_layers_text(net: ir.Network, width: int | None = None) -> str:
    """One row per layer, like torchinfo's summary: input and output shapes, params, MACs and
    activation memory, within ``width`` columns when given."""
    body, breaks = _layer_cells(net)
    c, h, w = net.input_shape
    lines = [f"{net.name} — input {c}×{h}×{w} (C×H×W), one row per layer", "",
             *grid(_LAYER_HEADER, body, {4, 5, 6}, width, breaks)]
    lines += [_wrapped(COUNTING, width), _wrapped(LAYERS_FOOTER, width)]
    return "\n".join(lines) + "\n"


def render_layers_markdown(net: ir.Network, width: int | None = None) -> str:
    body, _ = _layer_cells(net)
    out = ["| " + " | ".join(_LAYER_HEADER) + " |", "|" + "|".join(" --- " for _ in _LAYER_HEADER) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join([*out, "", COUNTING, LAYERS_FOOTER]) + "\n"


def render_layers_csv(net: ir.Network, width: int | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "type", "inputs", "output_c", "output_h", "output_w", "params", "macs",
                     "activation_bytes", "aux"])
    for r in layer_rows(net):
        inputs = " ".join("x".join(map(str, s)) for s in r.inputs)  # each C×H×W
        writer.writerow([r.name, r.type, inputs, *r.output, r.params, r.macs, r.activation_bytes, int(r.aux)])
    return buffer.getvalue()


def render_layers_json(net: ir.Network, width: int | None = None) -> str:
    rows = layer_rows(net)
    data = {
        "schema": JSON_SCHEMA_VERSION,
        "network": net.name,
        "input": list(net.input_shape),
        "layers": [
            {"name": r.name, "type": r.type, "inputs": [list(s) for s in r.inputs], "output": list(r.output),
             "params": r.params, "macs": r.macs, "activation_bytes": r.activation_bytes, "aux": r.aux}
            for r in rows
        ],
        "activation_bytes": sum(r.activation_bytes for r in rows if not r.aux),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


LAYER_RENDERERS = {"table": render_layers_text, "markdown": render_layers_markdown, "csv": render_layers_csv,
                   "json": render_layers_json}
