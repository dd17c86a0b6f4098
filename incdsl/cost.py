"""Parameters and multiply-adds per node, and rolled up per spec row.

Conventions (the same as the architecture notes and ``torch.utils.flop_counter``):

* params: every learnable scalar: conv/linear weights and biases, and batch
  norm's γ and β (running statistics are buffers, not parameters);
* MACs: multiply-adds of conv and linear layers only; pooling, LRN, ReLU,
  concat and residual adds are not counted;
* weights: conv/linear kernel weights only, without biases or BN, which is
  what GoogLeNet's Table 1 counts as "params".
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir


@dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0
    weights: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.weights + other.weights)

    def __mul__(self, k: int) -> Cost:
        return Cost(self.params * k, self.macs * k, self.weights * k)


def node_cost(node: ir.Node, inputs: list[ir.Shape]) -> Cost:
    """The cost of one node, given its input shapes."""
    a = node.attrs
    if isinstance(a, ir.ConvAttrs):
        assert node.shape is not None
        cin = inputs[0][0]
        weights = a.out_channels * (cin // a.groups) * a.kernel[0] * a.kernel[1]
        extra = (a.out_channels if a.bias else 0) + (2 * a.out_channels if a.bn_eps is not None else 0)
        return Cost(weights + extra, weights * node.shape[1] * node.shape[2], weights)
    if isinstance(a, ir.LinearAttrs):
        c, h, w = inputs[0]
        weights = c * h * w * a.out_features
        extra = (a.out_features if a.bias else 0) + (2 * a.out_features if a.bn_eps is not None else 0)
        return Cost(weights + extra, weights, weights)
    if isinstance(a, ir.BatchNormAttrs):
        return Cost(2 * inputs[0][0] if a.affine else 0)
    return Cost()


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
