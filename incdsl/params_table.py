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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import ir
from .cost import Cost, node_costs

#: Relative difference above which a paper figure is flagged.
PAPER_TOLERANCE = 0.015
#: GoogLeNet's Table 1 prints params in K of 1024 weights (its linear row's
#: 1024·1000 weights print as "1000K"); ops are plain multiply-adds.
PAPER_PARAMS_K = 1024 / 1000
JSON_SCHEMA_VERSION = 1

_OP_NAMES = {
    "conv": "convolution",
    "maxpool": "max pool",
    "avgpool": "avg pool",
    "lrn": "LRN",
    "linear": "linear",
    "softmax": "softmax",
    "flatten": "flatten",
    "relu": "ReLU",
    "concat": "concat",
    "add": "residual add",
}


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
    values: dict[str, Any] = field(default_factory=dict)
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


def _describe(node: ir.Node) -> str:
    a = node.attrs
    if isinstance(a, ir.DropoutAttrs):
        return f"dropout ({a.p:.0%})"
    if isinstance(a, ir.AdaptiveAvgPoolAttrs):
        return "global avg pool" if a.size == (1, 1) else f"adaptive avg pool {a.size[0]}×{a.size[1]}"
    return _OP_NAMES.get(node.op, node.op)


def _patch(node: ir.Node) -> str:
    a = node.attrs
    if isinstance(a, (ir.ConvAttrs, ir.PoolAttrs)):
        (kh, kw), (sh, _sw) = a.kernel, a.stride
        return f"{kh}×{kw}/{sh}"
    return ""


def _depth(nodes: list[ir.Node]) -> int:
    """Layers with weights on the longest path through a row (the paper's "depth")."""
    depth: dict[str, int] = {}
    for node in nodes:
        here = 1 if node.op in ("conv", "linear") else 0
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
        values={k: v for k, v in values.items() if k in columns},
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
        has_paper=any(r.paper is not None for r in rows),
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


_FIXED = ["type", "patch size/stride", "output size", "depth"]
_TAIL = ["params", "MACs"]


def _header(table: ParamsTable) -> list[str]:
    paper = ["paper params", "paper ops", "notes"] if table.has_paper else []
    return [*_FIXED, *table.columns, *_TAIL, *paper]


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


def _total_cells(table: ParamsTable, label: str, cost: Cost) -> list[str]:
    blanks = [""] * (len(_FIXED) - 1 + len(table.columns))
    paper = ["", "", ""] if table.has_paper else []
    return [label, *blanks, f"{cost.params:,}", format_si(cost.macs), *paper]


def _footer(table: ParamsTable) -> str:
    return (
        "params: every learnable scalar (weights, biases, batch-norm γ and β). "
        "MACs: multiply-adds of conv and linear layers."
        + (
            f" Paper figures are flagged when they differ from ours by more than {PAPER_TOLERANCE:.1%}; "
            "the paper's params count weights only, with K = 1024."
            if table.has_paper
            else ""
        )
    )


def table_rows(table: ParamsTable, expand: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body rows (main path, total, aux heads, total with aux) and footnotes, as text."""
    footnotes: list[str] = []
    body = [_cells(table, r, footnotes) for r in _expanded(table, expand)]
    body.append(_total_cells(table, "total", table.total))
    for aux in table.aux:
        body.append(_cells(table, aux, footnotes))
    if table.aux:
        body.append(_total_cells(table, "total with aux heads (training)", table.total_with_aux))
    return _header(table), body, footnotes


def render_text(table: ParamsTable, expand: bool = False, width: int | None = None) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    header, body, footnotes = table_rows(table, expand)
    c, h, w = table.input_shape
    grid = Table(
        title=f"{table.network} — input {c}×{h}×{w}",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    numeric = set(table.columns) | {"depth", "params", "MACs", "paper params", "paper ops"}
    for name in header:
        grid.add_column(name, justify="right" if name in numeric else "left", no_wrap=name != "notes")
    n_main = len(table.rows) + sum(len(r.copies) for r in table.rows) * expand
    for i, cells in enumerate(body):
        grid.add_row(*cells, end_section=i in (n_main - 1, n_main, len(body) - 2) and bool(table.aux))
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 400, no_color=True, highlight=False, emoji=False)
    console.print(grid)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    out = "\n".join(lines).rstrip() + "\n"
    for i, note in enumerate(footnotes, 1):
        out += f"[{i}] {note}\n"
    return out + _footer(table) + "\n"


def render_markdown(table: ParamsTable, expand: bool = False) -> str:
    header, body, footnotes = table_rows(table, expand)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join(" --- " for _ in header) + "|"]
    out += [line(cells) for cells in body]
    out.append("")
    out += [f"[{i}] {note}  " for i, note in enumerate(footnotes, 1)]
    out.append(_footer(table))
    return "\n".join(out) + "\n"


def render_csv(table: ParamsTable, expand: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["kind", "type", "patch", "output_c", "output_h", "output_w", "depth", *table.columns, "params", "macs"])
    for row in [*_expanded(table, expand), *table.aux]:
        writer.writerow(
            [row.kind, row.type, row.patch, *row.output, row.depth, *[row.values.get(c, "") for c in table.columns],
             row.params, row.macs]
        )
    writer.writerow(["total", "total", "", "", "", "", "", *[""] * len(table.columns), table.total.params, table.total.macs])
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


def render_json(table: ParamsTable, expand: bool = False) -> str:
    data = {
        "schema": JSON_SCHEMA_VERSION,
        "network": table.network,
        "input": list(table.input_shape),
        "columns": table.columns,
        "rows": [_row_json(r) for r in table.rows],
        "aux": [_row_json(r) for r in table.aux],
        "total": {"params": table.total.params, "macs": table.total.macs},
        "total_with_aux": {"params": table.total_with_aux.params, "macs": table.total_with_aux.macs},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"table": render_text, "markdown": render_markdown, "csv": render_csv, "json": render_json}
