"""The graph IR: the contract between the front end and the backends.

A :class:`Network` is a frozen pydantic model whose ``nodes`` are frozen
:class:`Node` models in execution order. A node knows its op and attributes,
its *ordered* inputs (concat is order-sensitive: the edges of the graph are
exactly these lists, nothing else stores them), its inferred (C, H, W)
output, the source span it came from and the spec row it belongs to (so the
params table can roll a module's seven convs up into one "inception (3a)"
row, as the paper does).

Lookups by name and the consumers of a value come from an index built once
per network; a networkx graph is built only on demand (:attr:`Network.graph`)
for the code that runs a graph algorithm, so loading a spec never imports
networkx. ``Network.model_dump`` / ``Network.model_validate`` are the one
serialisation (``incdsl ir --json``, a generated Triton module's embedded net).

Node names are the hierarchical module names the backends use
(``inception_3a.branch2.1``); nodes without a module (concat, residual add)
have names with a ``:`` that no module name can contain.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .activations import Activation
from .errors import Span

if TYPE_CHECKING:
    import networkx as nx

Shape = tuple[int, int, int]
Pair = tuple[int, int]


class _Attrs(BaseModel):
    model_config = ConfigDict(frozen=True)


class InputAttrs(_Attrs):
    """The network's input; its shape is ``Network.input_shape``."""

    op: Literal["input"] = "input"


class Parts(_Attrs):
    """Where the modules of a layer with batch norm or an activation module live, as
    patterns of the layer's name ``X``: children (``X.conv``, ``X.bn``, ``X.relu``) or
    siblings (``X``, ``X_bn``). ``act`` None: the activation is a function, not a module. A layer
    that is one module alone is the module ``X`` itself."""

    main: str = "X.conv"
    bn: str = "X.bn"
    act: str | None = None

    def text(self) -> str:
        """The patterns as a spec writes them: ``"X.conv X.bn"``."""
        return " ".join(p for p in (self.main, self.bn, self.act) if p is not None)


class ConvAttrs(_Attrs):
    """A 2-d convolution over (C, H, W), optionally followed by batch norm (``bn_eps``)
    and a ReLU (``act``); ``padding`` is per side, (rows, columns). ``groups`` splits the
    input and output channels into that many independent convs (PyTorch's ``groups``).
    A depthwise conv (``dwconv``) leaves ``groups`` — and, unless written, ``out_channels`` —
    None: shape inference sets them to the input's channels, so a typed IR has ints."""

    op: Literal["conv"] = "conv"
    out_channels: int | None
    kernel: Pair
    groups: int | None = 1
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    bias: bool = True
    bn_eps: float | None = None
    act: Activation | None = Activation.RELU
    #: Set by the fold-BN pass: the batch norm (with this eps) that the spec puts
    #: after the conv is folded into its weights and bias, for inference.
    folded_bn_eps: float | None = None
    #: Set with ``folded_bn_eps`` when the folded batch norm was a layer of its own after the
    #: conv (``conv 1x1 n linear -> bn``): that ``bn``'s module path, where its statistics live.
    folded_bn: str | None = None
    parts: Parts = Parts()


class PoolAttrs(_Attrs):
    """Max or average pooling with PyTorch's conventions: ``ceil`` rounds the output size
    up (dropping a last window that starts in the padding), ``count_include_pad``
    divides an average by the whole window."""

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
    """Local response normalisation across ``size`` neighbouring channels (GoogLeNet's stem),
    ``x / (k + alpha / size · Σ x²) ** beta`` as ``torch.nn.LocalResponseNorm`` computes it."""

    op: Literal["lrn"] = "lrn"
    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


class DropoutAttrs(_Attrs):
    """Dropout in training, with drop probability ``p``; nothing in eval."""

    op: Literal["dropout"] = "dropout"
    p: float


class LinearAttrs(_Attrs):
    """A fully connected layer; inputs with spatial extent are flattened first."""

    op: Literal["linear"] = "linear"
    out_features: int
    bias: bool = True
    act: Activation | None = None
    bn_eps: float | None = None
    parts: Parts = Parts(main="X.linear")


class BatchNormAttrs(_Attrs):
    """Batch norm over channels: ``BatchNorm2d`` on a (C, H, W) map, ``BatchNorm1d`` on
    features (after ``linear`` or ``flatten``); ``affine`` adds the learned scale and shift."""

    op: Literal["bn"] = "bn"
    eps: float = 1e-5
    affine: bool = True


class L2NormAttrs(_Attrs):
    """Each sample divided by its L2 norm over channels (``F.normalize(x, dim=1)``), as
    embedding networks end."""

    op: Literal["l2norm"] = "l2norm"
    eps: float = 1e-12


class LayerNormAttrs(_Attrs):
    """Layer norm over channels, with a learned scale and shift per channel: of each feature
    vector (``nn.LayerNorm(C)``), or of each pixel of a map (timm's ``LayerNorm2d``)."""

    op: Literal["layernorm"] = "layernorm"
    eps: float = 1e-6


class NormalizeAttrs(_Attrs):
    """A fixed per-channel affine of the network's input: ``(x − mean) / std``, or, with ``from_mean``
    and ``from_std`` (the input arrives normalised with those), ``(x · from_std + from_mean − mean) / std``
    (torchvision's ``transform_input``). One value per input channel; no parameters and nothing in a
    ``state_dict``, so a reference's weights load strictly."""

    op: Literal["normalize"] = "normalize"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    from_mean: tuple[float, ...] | None = None
    from_std: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NormalizeAttrs:
        given = [v for v in (self.mean, self.std, self.from_mean, self.from_std) if v is not None]
        if len({len(v) for v in given}) != 1 or not self.mean:
            raise ValueError("normalize: mean, std (and from_mean, from_std) give one value per channel each")
        if (self.from_mean is None) != (self.from_std is None):
            raise ValueError("normalize: from_mean and from_std come together")
        if not all(math.isfinite(v) and v > 0 for v in (*self.std, *(self.from_std or ()))):
            raise ValueError("normalize: every std is a positive number")
        if not all(math.isfinite(v) for v in (*self.mean, *(self.from_mean or ()))):
            raise ValueError("normalize: every mean is a finite number")
        return self


class FlattenAttrs(_Attrs):
    op: Literal["flatten"] = "flatten"


class ActivationAttrs(_Attrs):
    """An activation as a layer of its own (``relu``, ``gelu``): the op is the activation."""

    op: Literal[tuple(Activation)]  # type: ignore[valid-type]


class SoftmaxAttrs(_Attrs):
    """Softmax over channels; a trailing one names the loss, and a compiled module returns its input."""

    op: Literal["softmax"] = "softmax"


class ConcatAttrs(_Attrs):
    """Channel concatenation; ``branches`` names each input for messages."""

    op: Literal["concat"] = "concat"
    branches: tuple[str, ...]


class AddAttrs(_Attrs):
    """Residual add: ``act(inputs[0] + scale * drop_path(inputs[1]))``. ``drop_path`` is the
    stochastic-depth rate: in training each sample's branch is dropped with that probability
    (and the kept ones divided by ``1 - drop_path``); in eval it is the identity."""

    op: Literal["add"] = "add"
    scale: float = 1.0
    act: Activation | None = None
    drop_path: float = 0.0


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


class TokenMixerAttrs(_Attrs):
    """Made by the token-mixer pass (Triton backend): InceptionNeXt's token mixer as one
    operation. Its input's channels split into an identity part and three parts of equal width,
    through ``members``: a square, a 1×band and a band×1 depthwise conv (linear, stride 1,
    same padding), concatenated in that order into the node's value."""

    op: Literal["token_mixer"] = "token_mixer"
    members: tuple[FusedMember, FusedMember, FusedMember]
    square: int
    band: int


class SliceAttrs(_Attrs):
    """Channels ``[start, stop)`` of the input: a fused group's member, or a part of a ``split``,
    whose parts take ``of`` channels in all (the input must have exactly that many)."""

    op: Literal["slice"] = "slice"
    start: int
    stop: int
    of: int | None = None


class LayerScaleAttrs(_Attrs):
    """Layer scale (CaiT, ConvNeXt, MetaNeXt): each channel times a learned scale, first ``init``.
    The scale is a parameter, not a module: at the node's name in its block (timm's ``gamma``)."""

    op: Literal["layer_scale"] = "layer_scale"
    init: float = 1e-6


Attrs = Annotated[
    InputAttrs | NormalizeAttrs | ConvAttrs | PoolAttrs | AdaptiveAvgPoolAttrs | LRNAttrs | DropoutAttrs | LinearAttrs | BatchNormAttrs | L2NormAttrs | LayerNormAttrs | FlattenAttrs | ActivationAttrs | SoftmaxAttrs | ConcatAttrs | AddAttrs | Conv1x1GroupAttrs | TokenMixerAttrs | SliceAttrs | LayerScaleAttrs,
    Field(discriminator="op"),
]

class Node(BaseModel):
    """One value of the network: the op that computes it from its ordered ``inputs``, and where
    it came from. ``name`` is its module path (``inception_3a.branch2.1``), or ``scope:op`` for
    a node without a module."""

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
        """Whether the node is a layer: a module at its name in a backend."""
        from .operations import operation  # the table imports this module, for the attributes' models

        return operation(self.op).has_module


def part_paths(node: Node) -> dict[str, str]:
    """The module paths of a layer's parts by role (``main``, ``bn``, ``act``), in the order they
    run; a layer of one part is the module at its own name.

    >>> attrs = ConvAttrs(out_channels=8, kernel=(1, 1), bn_eps=1e-3, parts=Parts(main="X", bn="X_bn"))
    >>> part_paths(Node(name="m.conv1", attrs=attrs))
    {'main': 'm.conv1', 'bn': 'm.conv1_bn'}
    """
    a = node.attrs
    parts: Parts | None = getattr(a, "parts", None)
    roles = {"main": parts.main if parts else "X"}
    if parts is not None and getattr(a, "bn_eps", None) is not None:
        roles["bn"] = parts.bn
    if parts is not None and parts.act is not None and a.act is not None:  # type: ignore[union-attr]
        roles["act"] = parts.act
    if len(roles) == 1:
        return {"main": node.name}
    scope, _, leaf = node.name.rpartition(".")
    return {role: _fill(pattern, node.name, scope, leaf) for role, pattern in roles.items()}


def _fill(pattern: str, name: str, scope: str, leaf: str) -> str:
    if pattern.startswith("X."):
        return f"{name}{pattern[1:]}"
    sibling = pattern.replace("X", leaf, 1)
    return f"{scope}.{sibling}" if scope else sibling


def wrapped(node: Node) -> bool:
    """Whether a layer's parts are children of a module at its name (``X.conv``, ``X.bn``)."""
    paths = part_paths(node)
    return len(paths) > 1 and all(p.startswith(node.name + ".") for p in paths.values())


class PaperFigure(BaseModel):
    """A number as a paper prints it (``159K``): its value and its text, whose
    last digit tells how precise the paper was."""

    model_config = ConfigDict(frozen=True)
    value: float
    text: str


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
    #: Index into ``Network.tables`` when the row shows a block's columns.
    table: int | None = None
    values: tuple[Any, ...] = ()
    count: int = 1
    paper: PaperFigures | None = None


class TableHeader(BaseModel):
    """The columns a row of the params table shows for a block: a table's header
    labels, or the columns of the argument table whose entry a call passes
    (Reduction-A's k l m n)."""

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


class Scope(BaseModel):
    """A named group of layers — a block instance, a ``seq``, a repeat, a multi-layer branch,
    an aux head — with the value it reads and the value it gives. ``block`` names the block
    definition an instance was made from."""

    model_config = ConfigDict(frozen=True)
    name: str
    input: str
    output: str
    block: str | None = None


class Feature(BaseModel):
    """A named output asked for by ``features=``: ``name`` as the user wrote it, ``node`` the value."""

    model_config = ConfigDict(frozen=True)
    name: str
    node: str


class Network(BaseModel):
    """A validated network: nodes in execution order plus what the params table and backends need.

    ``nodes`` given out of order (a pass that appends a node) are put in
    execution order, keeping the given order wherever the inputs allow.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    input_shape: Shape
    output: str
    nodes: tuple[Node, ...]
    aux: tuple[AuxHead, ...] = ()
    rows: tuple[Row, ...] = ()
    tables: tuple[TableHeader, ...] = ()
    scopes: tuple[Scope, ...] = ()
    #: When not empty, compiled modules return these values in a dict instead of the logits.
    features: tuple[Feature, ...] = ()
    #: The whole network's figures as its paper prints them (``network NAME @paper(params=22.9M)``).
    paper: PaperFigures | None = None

    _index: _Index | None = PrivateAttr(default=None)

    @field_validator("nodes")
    @classmethod
    def _in_execution_order(cls, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        return execution_order(nodes)

    @model_validator(mode="after")
    def _normalize_widths(self) -> Network:
        """An input normalisation gives one value per channel of what it reads (checked here too, so
        that an IR read from JSON is held to it; shape inference reports it at the spec's line)."""
        for node in self.nodes:
            a = node.attrs
            if isinstance(a, NormalizeAttrs) and node.shape is not None and len(a.mean) != node.shape[0]:
                raise ValueError(
                    f"{node.name}: normalize gives {len(a.mean)} values per statistic for {node.shape[0]} channels"
                )
        return self

    # --- queries ---------------------------------------------------------

    def node(self, name: str) -> Node:
        """The node called ``name`` (KeyError if there is none)."""
        return self._indexed().by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._indexed().by_name

    def consumers(self, name: str) -> list[str]:
        """The nodes that read ``name``, in execution order, each once."""
        return list(self._indexed().consumers.get(name, ()))

    def ancestors(self, name: str) -> set[str]:
        """The names of every value ``name`` depends on, itself left out (``networkx.ancestors``
        without building a graph)."""
        index = self._indexed().by_name
        found: set[str] = set()
        todo = list(index[name].inputs)
        while todo:
            src = todo.pop()
            if src not in found:
                found.add(src)
                todo.extend(index[src].inputs if src in index else ())
        return found

    @property
    def graph(self) -> nx.DiGraph:
        """The nodes as a networkx ``DiGraph`` (edges from each input), for graph algorithms.

        Built on first use and shared: treat it as read-only (it is frozen).
        """
        index = self._indexed()
        if index.graph is None:
            index.graph = _to_networkx(self.nodes)
        return index.graph

    @property
    def logits(self) -> str:
        """The node whose value the network returns: a trailing softmax names the
        loss, so a compiled module returns its input, the logits."""
        return _strip_softmax(self, self.output)

    def aux_logits(self, head: AuxHead) -> str:
        return _strip_softmax(self, head.output)

    def outputs(self) -> list[str]:
        """The values the compiled network returns: the features when asked for, else the logits."""
        return [f.node for f in self.features] or [self.logits]

    def is_flat(self, name: str) -> bool:
        """Whether value ``name`` is a batch of feature vectors (N, C) at run time (after a
        ``linear`` or ``flatten``), not maps."""
        from .operations import operation  # the table imports this module, for the attributes' models

        node = self.node(name)
        while operation(node.op).rank == "keep" and node.inputs:
            node = self.node(node.inputs[0])
        return operation(node.op).rank == "flat"

    def scope(self, name: str) -> Scope | None:
        """The scope called ``name``, if there is one."""
        return self._indexed().scopes.get(name)

    def in_aux(self, node: Node) -> bool:
        """Whether ``node`` belongs to an auxiliary head (the one definition of membership)."""
        return node.row is not None and node.row in self._indexed().aux_rows

    def aux_nodes(self, head: AuxHead) -> list[Node]:
        """The nodes of one auxiliary head, in execution order."""
        return [n for n in self.nodes if n.row == head.row]

    def main_nodes(self) -> Iterator[Node]:
        """The nodes outside the auxiliary heads, in execution order."""
        return (n for n in self.nodes if not self.in_aux(n))

    # --- construction and serialisation ------------------------------------

    def with_nodes(self, nodes: Sequence[Node], **changes: Any) -> Network:
        """A copy of this network with a new node list (and other fields changed)."""
        return self.model_copy(update={"nodes": tuple(nodes), **changes})

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Network:
        """A copy with ``update`` applied, validated again (so nodes stay in order and the index is fresh)."""
        del deep  # every part of a network is frozen: a shallow copy shares nothing that can change
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self).model_validate({**fields, **(update or {})})

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dump (``incdsl ir --json``): the model's dump with ``logits`` beside ``output``."""
        data = self.model_dump(mode="json")
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[key] = value
            if key == "output":
                out["logits"] = self.logits
        return out

    def _indexed(self) -> _Index:
        if self._index is None:
            self._index = _Index(self)
        return self._index


class _Index:
    """Lookups derived from a network's fields; never part of its equality."""

    def __init__(self, net: Network) -> None:
        self.by_name = {n.name: n for n in net.nodes}
        consumers: dict[str, dict[str, None]] = {}
        for node in net.nodes:
            for src in node.inputs:
                consumers.setdefault(src, {})[node.name] = None
        self.consumers = {name: tuple(readers) for name, readers in consumers.items()}
        self.aux_rows = frozenset(h.row for h in net.aux)
        self.scopes = {s.name: s for s in net.scopes}
        self.graph: nx.DiGraph | None = None

    def __eq__(self, other: object) -> bool:
        # pydantic compares private attributes too: an index, built or not yet, never tells networks apart
        return other is None or isinstance(other, _Index)

    __hash__ = None  # type: ignore[assignment]


def execution_order(nodes: Sequence[Node]) -> tuple[Node, ...]:
    """``nodes`` in an order where every node comes after its inputs, as close to the given
    order as the inputs allow (the given order when it already is one).

    Inputs that are not among ``nodes`` are ignored; nodes on a cycle keep their
    given order at the end (:func:`incdsl.compiler.verify.verify` reports the cycle).
    """
    position = {n.name: i for i, n in enumerate(nodes)}
    if all(position.get(src, -1) < i for i, n in enumerate(nodes) for src in n.inputs):
        return tuple(nodes)
    waiting = [sum(1 for src in set(n.inputs) if src in position) for n in nodes]
    readers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for src in set(n.inputs):
            if src in position:
                readers.setdefault(src, []).append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in readers.get(nodes[i].name, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    placed = set(order)
    order += [i for i in range(len(nodes)) if i not in placed]
    return tuple(nodes[i] for i in order)


def _to_networkx(nodes: Sequence[Node]) -> nx.DiGraph:
    import networkx as nx  # only the passes and tools that run a graph algorithm pay for it

    graph = nx.DiGraph()
    for node in nodes:
        graph.add_node(node.name, node=node)
        for src in node.inputs:
            graph.add_edge(src, node.name)
    return nx.freeze(graph)


def scope_of(name: str) -> str:
    """The scope a node lives in: ``inception_3a`` for ``inception_3a.branch1`` and for ``inception_3a:concat``."""
    base, colon, _ = name.partition(":")
    return base if colon else base.rpartition(".")[0]


def common_scope(names: Iterable[str]) -> str:
    """The longest dotted scope shared by node names (``inception_3a`` for its branches and concat)."""
    parts = [scope_of(name).split(".") for name in names]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common)


def with_features(net: Network, names: Sequence[str]) -> Network:
    """``net`` made to return the named values in a dict, in the given order: a layer
    (``Conv2d_1a_3x3``), a block instance or other scope (``Mixed_6e``: its output) or a
    table row's label (``6e``). Unknown or repeated names are a ValueError with a suggestion.

    >>> from incdsl import loads
    >>> net = with_features(loads("input 3x8x8\\nconv 3x3 4 as stem\\nglobal_avgpool\\nlinear 2\\n"), ["stem"])
    >>> [(f.name, f.node) for f in net.features]
    [('stem', 'stem')]
    """
    if not names:
        raise ValueError("features= names at least one layer or block")
    rows = {r.label: r for r in net.rows if r.kind == "block" and r.label is not None}
    found: list[Feature] = []
    for name in names:
        if any(f.name == name for f in found):
            raise ValueError(f"feature {name!r} is asked for twice")
        scope = net.scope(name)
        if scope is not None:
            node = scope.output
        elif name in net and ":" not in name and net.node(name).op != "input":
            node = name
        elif name in rows:  # a Table-1 row: the block instance it made
            members = {n.name for n in net.nodes if n.row == rows[name].index}
            node = next(s.output for s in net.scopes if s.block == rows[name].block and s.output in members)
        else:
            raise ValueError(_unknown_feature(net, name))
        found.append(Feature(name=name, node=node))
    return net.model_copy(update={"features": tuple(found)})


def _unknown_feature(net: Network, name: str) -> str:
    from .errors import closest

    known = [*(s.name for s in net.scopes), *(n.name for n in net.nodes if n.has_module)]
    best = closest(name, known)
    hint = f"; did you mean {best!r}?" if best else "; name a layer or a block instance of the network"
    return f"{name!r} is not a layer, block or row of {net.name}{hint}"


def network_from_json(data: dict[str, Any]) -> Network:
    """The network :meth:`Network.to_json` (or ``model_dump``) wrote; derived keys such as ``logits`` are ignored."""
    return Network.model_validate(data)


def _strip_softmax(net: Network, name: str) -> str:
    node = net.node(name)
    return node.inputs[0] if node.op == "softmax" else name
