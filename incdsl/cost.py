"""Parameters and multiply-adds per node, and rolled up per spec row.

Conventions (the same as the architecture notes and ``torch.utils.flop_counter``):

* params: every learnable scalar: conv/linear weights and biases, and batch
  norm's and layer norm's γ and β (running statistics are buffers, not parameters);
* MACs: multiply-adds of conv and linear layers only; pooling, LRN, norms,
  activations, concat and residual adds are not counted;
* weights: conv/linear kernel weights only, without biases or BN, which is
  what GoogLeNet's Table 1 counts as "params".
"""

from __future__ import annotations

from . import ir
from .operations import Cost, operation


def node_cost(node: ir.Node, inputs: list[ir.Shape]) -> Cost:
    """The cost of one node, given its input shapes."""
    return operation(node.op).cost(node, inputs)


def node_costs(net: ir.Network) -> dict[str, Cost]:
    costs = {}
    for node in net.nodes:
        inputs = [net.node(i).shape for i in node.inputs]
        costs[node.name] = node_cost(node, [s for s in inputs if s is not None])
    return costs


def total(net: ir.Network, *, aux: bool = False) -> Cost:
    """The whole network's cost; aux heads only when ``aux`` is true."""
    costs = node_costs(net)
    return sum((c for name, c in costs.items() if aux or not net.in_aux(net.node(name))), Cost())
