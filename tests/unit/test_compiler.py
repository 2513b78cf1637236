"""The compiler: plan shape, argument resolution by scope, validation."""

import pytest

from tideflow import (
    DuplicateAtomError,
    GraphFlow,
    LinearFlow,
    MissingRequirementError,
    Task,
    UnorderedFlow,
)
from tideflow._compiler import END, NO_PROVIDER, START, TASK, compile_flow


class T(Task):
    def execute(self, **kwargs):
        return None


def t(name, provides=None, requires=None, **kw):
    return T(name, provides=provides, requires=requires, **kw)


def provider_of(plan, atom, symbol):
    for binding in plan.args[plan.index[atom]]:
        if binding.symbol == symbol:
            return None if binding.provider == NO_PROVIDER else plan.names[binding.provider]
    raise AssertionError(f"{atom} has no binding for {symbol}")


def test_linear_flow_is_a_chain_between_start_and_end():
    plan = compile_flow(LinearFlow("f").add(t("a"), t("b")))
    assert plan.names == ["f[start]", "f[end]", "a", "b"]
    assert list(plan.kinds) == [START, END, TASK, TASK]
    assert plan.succ == [[2], [], [3], [1]]
    assert plan.edge_count == 3


def test_unordered_flow_fans_out_and_in():
    plan = compile_flow(UnorderedFlow("u").add(t("a"), t("b"), t("c")))
    start, end = 0, 1
    assert sorted(plan.names[n] for n in plan.succ[start]) == ["a", "b", "c"]
    assert sorted(plan.names[n] for n in plan.pred[end]) == ["a", "b", "c"]


def test_edges_grow_linearly_with_nesting():
    # linear[unordered(100), unordered(100)] needs O(n) edges, not 100 x 100
    left = UnorderedFlow("l").add(*[t(f"l{i}") for i in range(100)])
    right = UnorderedFlow("r").add(*[t(f"r{i}") for i in range(100)])
    plan = compile_flow(LinearFlow("f").add(left, right))
    assert plan.edge_count < 500


def test_nearest_preceding_provider_wins_in_linear_flows():
    flow = LinearFlow("f").add(t("a", provides="x"), t("b", provides="x"), t("c", requires=["x"]))
    plan = compile_flow(flow)
    assert provider_of(plan, "c", "x") == "b"


def test_unordered_siblings_are_invisible_but_visible_afterwards():
    inner = UnorderedFlow("u").add(t("a", provides="x"), t("b", requires=["x"]))
    flow = LinearFlow("f").add(inner, t("c", requires=["x"]))
    plan = compile_flow(flow)
    assert provider_of(plan, "b", "x") is None
    assert plan.external == {"x": [("b", "u")]}
    assert provider_of(plan, "c", "x") == "a"


def test_graph_nodes_see_their_ancestors_only():
    graph = GraphFlow("g").add(
        t("a", provides="x"), t("b", requires=["x"], provides="y"), t("c", requires=["y"])
    )
    plan = compile_flow(graph)
    assert provider_of(plan, "b", "x") == "a"
    assert provider_of(plan, "c", "y") == "b"
    assert plan.external == {}


def test_subflows_see_outer_values_and_outer_atoms_see_subflow_results():
    inner = LinearFlow("inner").add(t("i", requires=["p"], provides="r"))
    outer = LinearFlow("outer").add(t("o", provides="p"), inner, t("after", requires=["r"]))
    plan = compile_flow(outer)
    assert provider_of(plan, "i", "p") == "o"
    assert provider_of(plan, "after", "r") == "i"


def test_graph_subflow_sees_what_its_graph_ancestors_provide():
    sub = LinearFlow("sub").add(t("s", requires=["x"]))
    graph = GraphFlow("g").add(t("a", provides="x"), sub)
    plan = compile_flow(graph)
    assert provider_of(plan, "s", "x") == "a"


def test_later_siblings_do_not_satisfy_earlier_ones():
    flow = LinearFlow("f").add(t("a", requires=["z"]), t("b", provides="z"))
    plan = compile_flow(flow)
    with pytest.raises(
        MissingRequirementError, match=r"atom 'a' \(in flow 'f'\) requires 'z'"
    ) as info:
        plan.check_requirements(set())
    message = str(info.value)
    assert "atom 'a' (in flow 'f') requires 'z'" in message
    assert info.value.missing == ("z",)
    plan.check_requirements({"z"})


def test_injected_values_need_no_provider():
    plan = compile_flow(LinearFlow("f").add(t("a", requires=["z"], inject={"z": 1})))
    assert plan.external == {}


def test_duplicate_names_are_refused_across_nesting():
    flow = LinearFlow("f").add(t("a"), LinearFlow("sub").add(t("a")))
    with pytest.raises(DuplicateAtomError, match=r"two atoms are named 'a'.*'f' and 'sub'"):
        compile_flow(flow)


def test_the_same_atom_object_in_two_flows_is_refused():
    shared = t("a")
    flow = LinearFlow("f").add(shared, LinearFlow("sub").add(shared))
    with pytest.raises(DuplicateAtomError, match="'a' appears more than once"):
        compile_flow(flow)


def test_compile_is_linear_in_size():
    flow = LinearFlow("big").add(*[t(f"t{i}") for i in range(20_000)])
    plan = compile_flow(flow)
    assert plan.size == 20_002
    assert plan.edge_count == 20_001


def test_only_the_root_start_has_no_predecessor():
    # the scheduler relies on this to start a fresh pass at node 0 alone
    graph = GraphFlow("g").add(t("a", provides="x"), t("b", requires=["x"]), t("c"))
    nested = LinearFlow("root").add(
        UnorderedFlow("u").add(t("d"), LinearFlow("empty")), graph, t("e")
    )
    plan = compile_flow(nested)
    assert [n for n in range(plan.size) if not plan.pred[n]] == [0]


def _graph_bindings(plan):
    return {
        plan.names[n]: sorted(
            (b.symbol, None if b.provider == NO_PROVIDER else plan.names[b.provider])
            for b in plan.args[n]
        )
        for n in plan.atom_nodes
    }


def test_graph_in_insertion_order_and_in_any_order_compile_alike():
    def nodes():
        return [
            t("a", provides="x"),
            t("b", provides="y", requires=["x"]),
            t("c", requires=["x", "y", "z"]),
            LinearFlow("sub").add(t("s", requires=["y"], provides="w")),
            t("d", requires=["w"]),
        ]

    forward = GraphFlow("g").add(*nodes())
    assert forward._forward
    backward = GraphFlow("g")
    for node in reversed(nodes()):
        backward.add(node)
    assert not backward._forward  # links point from later to earlier additions
    one, two = compile_flow(forward), compile_flow(backward)
    assert _graph_bindings(one) == _graph_bindings(two)
    assert _graph_bindings(one)["c"] == [("x", "a"), ("y", "b"), ("z", None)]
    assert _graph_bindings(one)["s"] == [("y", "b")]
    assert _graph_bindings(one)["d"] == [("w", "s")]
    assert one.edge_count == two.edge_count
