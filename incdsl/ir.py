"""The graph IR: the contract between the front end and the backends.

A :class:`Network` holds a networkx ``DiGraph`` whose nodes are frozen
pydantic :class:`Node` models. A node knows its op and attributes, its
*ordered* inputs (concat is order-sensitive, so the order lives on the node,
not in networkx's edge order), its inferred (C, H, W) output, the source span
it came from and the spec row it belongs to (so the params table can roll a
module's seven convs up into one "inception (3a)" row, as the paper does).

Node names are the hierarchical module names the backends use
(``inception_3a.branch2.1``); nodes without a module (concat, residual add)
have names with a ``:`` that no module name can contain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from .errors import Span

Shape = tuple[int, int, int]
Pair = tuple[int, int]


class _Attrs(BaseModel):
    model_config = ConfigDict(frozen=True)


class InputAttrs(_Attrs):
    op: Literal["input"] = "input"


class ConvAttrs(_Attrs):
    op: Literal["conv"] = "conv"
    out_channels: int
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    bias: bool = True
    bn_eps: float | None = None
    act: Literal["relu"] | None = "relu"
    #: Set by the fold-BN pass: the batch norm (with this eps) that the spec puts
    #: after the conv is folded into its weights and bias, for inference.
    folded_bn_eps: float | None = None


class PoolAttrs(_Attrs):
    op: Literal["maxpool", "avgpool"]
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)
    ceil: bool = False
    count_include_pad: bool = True


class AdaptiveAvgPoolAttrs(_Attrs):
    """Average pooling to a fixed output size (global average pooling is 1×1)."""

    op: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    size: Pair


class LRNAttrs(_Attrs):
    op: Literal["lrn"] = "lrn"
    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


class DropoutAttrs(_Attrs):
    op: Literal["dropout"] = "dropout"
    p: float


class LinearAttrs(_Attrs):
    """A fully connected layer; inputs with spatial extent are flattened first."""

    op: Literal["linear"] = "linear"
    out_features: int
    bias: bool = True
    act: Literal["relu"] | None = None


class FlattenAttrs(_Attrs):
    op: Literal["flatten"] = "flatten"


class ReLUAttrs(_Attrs):
    op: Literal["relu"] = "relu"


class SoftmaxAttrs(_Attrs):
    op: Literal["softmax"] = "softmax"


class ConcatAttrs(_Attrs):
    """Channel concatenation; ``branches`` names each input for messages."""

    op: Literal["concat"] = "concat"
    branches: tuple[str, ...]


class AddAttrs(_Attrs):
    """Residual add: ``act(inputs[0] + scale * inputs[1])``."""

    op: Literal["add"] = "add"
    scale: float = 1.0
    act: Literal["relu"] | None = None


class FusedMember(_Attrs):
    """One conv of a fused group: its parameters live at module ``name``."""

    name: str
    conv: ConvAttrs


class Conv1x1GroupAttrs(_Attrs):
    """Made by the fusion passes: 1×1 convs that read the same tensor, as one GEMM
    ``[N·H·W, Cin] × [Cin, ΣCout]`` whose output columns are the members' outputs
    in order (read through ``slice`` nodes); ``pool`` (stride 1, same size) is
    applied to the operand first. With ``residual``, the one member's output goes
    into that residual add, ``act(inputs[1] + scale · conv(inputs[0]))``, and the
    node's value is the add's."""

    op: Literal["conv1x1_group"] = "conv1x1_group"
    members: tuple[FusedMember, ...]
    pool: PoolAttrs | None = None
    residual: AddAttrs | None = None

    @property
    def out_channels(self) -> int:
        return sum(m.conv.out_channels for m in self.members)


class SliceAttrs(_Attrs):
    """Channels ``[start, stop)`` of the input (a fused group's member)."""

    op: Literal["slice"] = "slice"
    start: int
    stop: int


Attrs = Annotated[
    InputAttrs | ConvAttrs | PoolAttrs | AdaptiveAvgPoolAttrs | LRNAttrs | DropoutAttrs | LinearAttrs | FlattenAttrs | ReLUAttrs | SoftmaxAttrs | ConcatAttrs | AddAttrs | Conv1x1GroupAttrs | SliceAttrs,
    Field(discriminator="op"),
]

#: Ops that become a module (with a dotted name) in a backend.
MODULE_OPS = frozenset({"conv", "maxpool", "avgpool", "adaptive_avgpool", "lrn", "dropout", "linear", "flatten", "relu", "softmax"})


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    attrs: Attrs
    inputs: tuple[str, ...] = ()
    shape: Shape | None = None
    span: Span | None = None
    #: The statement the node was instantiated from (a table row, a block call).
    origin: Span | None = None
    #: Index into ``Network.rows``; None for the input.
    row: int | None = None
    #: For repeated blocks (``4 x inception_a``), which copy this node is in.
    repeat_index: int | None = None
    #: Set by the concat-buffer pass: ``(concat, offset)`` when this value is
    #: computed straight into channels ``offset…`` of that concat's output.
    storage: tuple[str, int] | None = None

    @property
    def op(self) -> str:
        return self.attrs.op

    @property
    def has_module(self) -> bool:
        return self.op in MODULE_OPS


class PaperFigure(BaseModel):
    """A number as a paper prints it (``159K``): its value and its text, whose
    last digit tells how precise the paper was."""

    model_config = ConfigDict(frozen=True)
    value: float
    text: str

    @property
    def rounding(self) -> float:
        """Half a unit of the last printed digit (0.5M for "54M", 0.05K for "2.7K")."""
        body = self.text.rstrip("KMG")
        scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(self.text[-1], 1.0)
        decimals = len(body.partition(".")[2])
        return 0.5 * 10**-decimals * scale


class PaperFigures(BaseModel):
    """Figures a paper prints for a row, kept to be compared with ours."""

    model_config = ConfigDict(frozen=True)
    params: PaperFigure | None = None
    ops: PaperFigure | None = None
    note: str | None = None


class Row(BaseModel):
    """One line of the params table: one statement of the spec's main path,
    one table row, or one auxiliary head."""

    model_config = ConfigDict(frozen=True)
    index: int
    kind: Literal["layer", "block", "repeat", "aux"]
    span: Span
    #: The table row label (``3a``), the aux head's name, or None.
    label: str | None = None
    block: str | None = None
    #: Index into ``Network.tables`` when the row is a table row.
    table: int | None = None
    values: tuple[Any, ...] = ()
    count: int = 1
    paper: PaperFigures | None = None


class Table(BaseModel):
    """Columns of the params table for a block: a table header's labels, or the
    columns of a parameter table whose row a call passes (Reduction-A's k l m n)."""

    model_config = ConfigDict(frozen=True)
    block: str
    columns: tuple[str, ...]


class AuxHead(BaseModel):
    """An auxiliary classifier: it reads ``input`` (the output of module ``after``)."""

    model_config = ConfigDict(frozen=True)
    name: str
    after: str
    input: str
    weight: float
    output: str
    row: int


class Network(BaseModel):
    """A validated network: the graph plus what the tables and backends need."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    input_shape: Shape
    graph: nx.DiGraph
    output: str
    aux: tuple[AuxHead, ...] = ()
    rows: tuple[Row, ...] = ()
    tables: tuple[Table, ...] = ()

    # --- queries ---------------------------------------------------------

    def node(self, name: str) -> Node:
        return self.graph.nodes[name]["node"]

    def __contains__(self, name: object) -> bool:
        return name in self.graph

    @property
    def nodes(self) -> list[Node]:
        """All nodes in a topological order that keeps the spec's order where it can."""
        order = {name: i for i, name in enumerate(self.graph.nodes)}
        names = nx.lexicographical_topological_sort(self.graph, key=order.__getitem__)
        return [self.node(n) for n in names]

    def consumers(self, name: str) -> list[str]:
        return list(self.graph.successors(name))

    @property
    def logits(self) -> str:
        """The node whose value the network returns: a trailing softmax names the
        loss, so a compiled module returns its input, the logits."""
        return _strip_softmax(self, self.output)

    def aux_logits(self, head: AuxHead) -> str:
        return _strip_softmax(self, head.output)

    def main_nodes(self) -> Iterator[Node]:
        aux_rows = {h.row for h in self.aux}
        return (n for n in self.nodes if n.row not in aux_rows)

    # --- construction ----------------------------------------------------

    @staticmethod
    def build_graph(nodes: list[Node]) -> nx.DiGraph:
        graph = nx.DiGraph()
        for node in nodes:
            graph.add_node(node.name, node=node)
            for src in node.inputs:
                graph.add_edge(src, node.name)
        return graph

    def with_nodes(self, nodes: list[Node], **changes: Any) -> Network:
        """A copy of this network with a new node list (and other fields changed)."""
        return self.model_copy(update={"graph": self.build_graph(nodes), **changes})

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dump (``incdsl ir --json``)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output": self.output,
            "logits": self.logits,
            "nodes": [n.model_dump(mode="json") for n in self.nodes],
            "aux": [h.model_dump(mode="json") for h in self.aux],
            "rows": [r.model_dump(mode="json") for r in self.rows],
            "tables": [t.model_dump(mode="json") for t in self.tables],
        }


def common_scope(names: Iterable[str]) -> str:
    """The longest dotted scope shared by node names (``inception_3a`` for its branches and concat)."""
    parts = []
    for name in names:
        base, colon, _ = name.partition(":")
        parts.append(base.split(".") if colon else base.split(".")[:-1])
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common)


def network_from_json(data: dict[str, Any]) -> Network:
    """The network :meth:`Network.to_json` dumped (a generated Triton module embeds one)."""
    nodes = [Node.model_validate(n) for n in data["nodes"]]
    return Network(
        name=data["name"],
        input_shape=tuple(data["input_shape"]),  # type: ignore[arg-type]
        graph=Network.build_graph(nodes),
        output=data["output"],
        aux=tuple(AuxHead.model_validate(h) for h in data.get("aux", ())),
        rows=tuple(Row.model_validate(r) for r in data.get("rows", ())),
        tables=tuple(Table.model_validate(t) for t in data.get("tables", ())),
    )


def _strip_softmax(net: Network, name: str) -> str:
    node = net.node(name)
    return node.inputs[0] if node.op == "softmax" else name
