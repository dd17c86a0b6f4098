"""incdsl.ir: one structure (nodes in execution order), its index, its one serialisation."""

from __future__ import annotations

import networkx as nx
import pytest

import incdsl
from incdsl import ir

SPECS = ["googlenet", "inception_v4", "inception_resnet_v2"]


def node(name: str, *inputs: str) -> ir.Node:
    attrs = ir.InputAttrs() if not inputs else ir.ActivationAttrs(op="relu")
    return ir.Node(name=name, attrs=attrs, inputs=inputs)


def network(*nodes: ir.Node) -> ir.Network:
    return ir.Network(name="t", input_shape=(1, 1, 1), nodes=nodes, output=nodes[-1].name)


def test_nodes_are_kept_in_the_order_given_when_it_is_an_execution_order():
    net = network(node("input"), node("b", "input"), node("a", "input"), node("c", "a", "b"))
    assert [n.name for n in net.nodes] == ["input", "b", "a", "c"]


def test_nodes_given_out_of_order_move_only_as_far_as_their_inputs_ask():
    net = network(node("input"), node("c", "a"), node("b", "input"), node("a", "input"))
    assert [n.name for n in net.nodes] == ["input", "b", "a", "c"]
    appended = net.with_nodes([*net.nodes[:1], node("d", "input"), *net.nodes[1:]])
    assert [n.name for n in appended.nodes] == ["input", "d", "b", "a", "c"]


def test_a_cycle_keeps_its_nodes_for_the_verifier_to_report():
    net = network(node("input"), node("a", "b"), node("b", "a"))
    assert [n.name for n in net.nodes] == ["input", "a", "b"]
    assert not nx.is_directed_acyclic_graph(net.graph)


@pytest.mark.parametrize("spec", SPECS)
def test_the_index_agrees_with_a_graph_built_from_the_inputs(spec):
    net = incdsl.load(spec)
    graph = net.graph
    assert list(nx.topological_sort(graph)) and all(n.name in net for n in net.nodes)
    for n in net.nodes:
        assert net.consumers(n.name) == list(graph.successors(n.name))
    assert net.ancestors(net.logits) == nx.ancestors(graph, net.logits)


def test_the_graph_is_built_once_and_cannot_be_changed():
    net = incdsl.load("googlenet")
    assert net.graph is net.graph
    with pytest.raises(nx.NetworkXError):
        net.graph.add_node("x")


def test_aux_membership_is_defined_once():
    net = incdsl.load("googlenet")
    aux = [n.name for head in net.aux for n in net.aux_nodes(head)]
    assert aux and all(net.in_aux(net.node(name)) for name in aux)
    assert [n.name for n in net.main_nodes()] == [n.name for n in net.nodes if n.name not in aux]


@pytest.mark.parametrize("spec", SPECS)
def test_one_serialisation_round_trips(spec):
    net = incdsl.load(spec)
    data = net.to_json()
    assert list(data)[:4] == ["name", "input_shape", "output", "logits"]
    assert ir.network_from_json(data) == net
    assert ir.Network.model_validate_json(net.model_dump_json()) == net


def test_scopes():
    assert ir.scope_of("inception_3a.branch2.1") == "inception_3a.branch2"
    assert ir.scope_of("inception_3a:concat") == "inception_3a"
    assert ir.scope_of("conv1") == ""
    assert ir.common_scope(["m.branch1", "m.branch2.0", "m:concat"]) == "m"
