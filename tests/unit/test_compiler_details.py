"""The compiler's finer points, each in both graph paths where a graph is involved.

A graph flow whose links all point forward in insertion order compiles in one pass;
any other graph by sorting its links. Tests that build a graph take ``order`` and
build it both ways, and expect the same plan. (Written to kill what mutation testing
found unchecked: see docs/testing.md.)
"""

from __future__ import annotations

import pytest

from tideflow import (
    DuplicateAtomError,
    GraphFlow,
    LinearFlow,
    MissingRequirementError,
    Task,
    UnorderedFlow,
)
from tideflow._compiler import END, NO_PROVIDER, START, compile_flow, ignore_set
from tideflow._flow import TargetedFlow


class T(Task):
    def execute(self, **kwargs):
        return None

    def revert(self, **kwargs):
        return None


def t(name, provides=None, requires=None, **kw):
    return T(name, provides=provides, requires=requires, **kw)


def provider_of(plan, atom, symbol, *, revert=False):
    table = plan.revert_args if revert else plan.args
    for binding in table[plan.index[atom]]:
        if binding.symbol == symbol:
            return None if binding.provider == NO_PROVIDER else plan.names[binding.provider]
    raise AssertionError(f"{atom} has no binding for {symbol}")


def graph(name, nodes, links, order):
    """A graph flow of ``nodes`` (no inferred links) with manual ``links`` (by name).

    ``order``: "forward" adds the nodes as listed (links point forward); "backward"
    adds them reversed (links point backward, so the graph is sorted by its links).
    """
    by_name = {n.name: n for n in nodes}
    g = GraphFlow(name)
    for node in nodes if order == "forward" else reversed(nodes):
        g.add(node, resolve_requires=False, resolve_existing=False)
    for u, v in links:
        g.link(by_name[u], by_name[v])
    assert g._forward is (order == "forward")
    return g


ORDERS = pytest.mark.parametrize("order", ["forward", "backward"])


# -- symbols found among ancestors (links that carry no data) ---------------------------


@ORDERS
def test_a_node_sees_what_an_indirect_ancestor_provides(order):
    g = graph("g", [t("a", "x"), t("b"), t("c", requires=["x"])], [("a", "b"), ("b", "c")], order)
    assert provider_of(compile_flow(g), "c", "x") == "a"


@ORDERS
def test_a_direct_predecessor_wins_over_a_later_added_farther_ancestor(order):
    nodes = [t("a", "x"), t("d", "x"), t("e"), t("c", requires=["x"])]
    g = graph("g", nodes, [("d", "e"), ("e", "c"), ("a", "c")], order)
    assert provider_of(compile_flow(g), "c", "x") == "a"


def test_among_indirect_ancestors_the_last_added_provides():
    # in insertion order a, d, b, e, c: both a and d are ancestors of c, neither direct
    nodes = [t("a", "x"), t("d", "x"), t("b"), t("e"), t("c", requires=["x"])]
    g = graph("g", nodes, [("a", "b"), ("d", "e"), ("b", "c"), ("e", "c")], "forward")
    assert provider_of(compile_flow(g), "c", "x") == "d"


@ORDERS
def test_a_provider_that_is_not_an_ancestor_is_not_seen(order):
    g = graph("g", [t("f", "x"), t("b"), t("c", requires=["x"])], [("b", "c")], order)
    plan = compile_flow(g)
    assert provider_of(plan, "c", "x") is None
    assert plan.external == {"x": [("c", "g")]}


@ORDERS
def test_every_symbol_is_looked_for_after_one_is_found_or_missing(order):
    # w: nobody provides it; x: an inferred link from a; y: an ancestor through b
    a, b, z = t("a", "x"), t("b"), t("z", "y")
    c = t("c", requires=["w", "x", "y"])
    g = GraphFlow("g")
    nodes = [z, b, a, c] if order == "forward" else [c, a, b, z]
    for node in nodes:
        g.add(node, resolve_requires=node is c, resolve_existing=node is not c)
    g.link(z, b)
    g.link(b, c)
    plan = compile_flow(g)
    assert provider_of(plan, "c", "w") is None
    assert provider_of(plan, "c", "x") == "a"
    assert provider_of(plan, "c", "y") == "z"


@ORDERS
def test_revert_arguments_come_from_ancestors_too(order):
    b = T("b", revert_requires=["y"])
    g = graph("g", [t("a", "y"), t("m"), b], [("a", "m"), ("m", "b")], order)
    plan = compile_flow(g)
    assert provider_of(plan, "b", "y", revert=True) == "a"
    assert plan.args[plan.index["b"]] == ()


@ORDERS
def test_a_subflow_node_sees_its_graph_ancestors(order):
    inner = LinearFlow("s").add(t("s1", requires=["x"]))
    a, m = t("a", "x"), t("m")
    g = GraphFlow("g")
    for node in [a, m, inner] if order == "forward" else [inner, m, a]:
        g.add(node, resolve_requires=False, resolve_existing=False)
    g.link(a, m)
    g.link(m, inner)
    assert provider_of(compile_flow(g), "s1", "x") == "a"


def test_a_subflow_in_a_graph_leaves_the_outer_scope_as_it_was():
    # p (outside) and q (inside the graph) both provide x. The subflow s, after q, sees
    # q's x; r, added with no link, sees p's: q's x was visible inside s only.
    p, q, r = t("p", "x"), t("q", "x"), t("r", requires=["x"])
    s = LinearFlow("s").add(t("s1", requires=["x"]))
    g = GraphFlow("g").add(q, s)
    g.add(r, resolve_requires=False, resolve_existing=False)
    plan = compile_flow(LinearFlow("root").add(p, g))
    assert provider_of(plan, "s1", "x") == "q"
    assert provider_of(plan, "r", "x") == "p"


def test_a_symbol_wanted_twice_by_one_atom_is_listed_once():
    a = T("a", requires=["z"], revert_requires=["z"])
    plan = compile_flow(LinearFlow("f").add(a))
    assert plan.external == {"z": [("a", "f")]}


# -- the flow tree -------------------------------------------------------------------


def test_flow_records_name_parent_and_node_range():
    flow = LinearFlow("root").add(
        t("a"), UnorderedFlow("u").add(t("b"), LinearFlow("inner").add(t("c"))), t("d")
    )
    plan = compile_flow(flow)
    assert plan.flow is flow
    assert [(f.name, f.parent) for f in plan.flows] == [("root", -1), ("u", 0), ("inner", 1)]
    for info in plan.flows:
        assert plan.kinds[info.start] == START
        assert plan.kinds[info.end] == END
        assert plan.names[info.start] == f"{info.name}[start]"
        assert plan.names[info.end] == f"{info.name}[end]"
        assert info.holds(info.start)
        assert info.holds(info.stop - 1)
        assert not info.holds(info.stop)
        assert not info.holds(info.start - 1)
        assert repr(info) == f"FlowInfo({info.name!r}, nodes {info.start}..{info.stop - 1})"
    assert plan.flows[0].stop == plan.size
    u, inner = plan.flows[1], plan.flows[2]
    assert {plan.names[n] for n in range(u.start, u.stop) if plan.kinds[n] < START} == {"b", "c"}
    assert inner.stop == u.stop
    assert plan.flow_of[plan.index["c"]] == 2


@pytest.mark.parametrize(
    "empty",
    [GraphFlow("e"), UnorderedFlow("e"), LinearFlow("e")],
    ids=["graph", "unordered", "linear"],
)
def test_an_empty_subflow_is_its_start_then_its_end(empty):
    plan = compile_flow(LinearFlow("f").add(t("a"), empty, t("b")))
    info = plan.flows[1]
    assert plan.succ[info.start] == [info.end]
    assert plan.pred[info.end] == [info.start]
    assert plan.succ[info.end] == [plan.index["b"]]


def test_an_empty_backward_graph_is_its_start_then_its_end():
    g = TargetedFlow("tg").add(t("a"))
    plan = compile_flow(g)
    assert plan.succ[0] == [plan.index["a"]]


# -- targeted flows ------------------------------------------------------------------


def test_a_targeted_flow_keeps_the_target_and_what_it_needs_only():
    a, b, target = t("a", "x"), t("b", "y", requires=["x"]), t("target", requires=["y"])
    c, d = t("c", "u"), t("d", requires=["u"])
    g = TargetedFlow("tg")
    g.add(c, d)  # an unrelated pair, linked first
    g.add(a, b, target)
    g.set_target(target)
    plan = compile_flow(g)
    assert {plan.names[n] for n in plan.atom_nodes} == {"a", "b", "target"}
    assert plan.pred[plan.index["target"]] == [plan.index["b"]]
    assert plan.pred[plan.index["b"]] == [plan.index["a"]]


# -- deciders ------------------------------------------------------------------------


def _no(history):
    return False


@ORDERS
@pytest.mark.parametrize("depth", [None, "ALL", "FLOW", "NEIGHBORS", "ATOM"])
def test_a_decided_link_keeps_its_depth_all_by_default(order, depth):
    a, b = t("a"), t("b")
    g = GraphFlow("g")
    for node in [a, b] if order == "forward" else [b, a]:
        g.add(node)
    g.link(a, b, decider=_no, decider_depth=depth)
    plan = compile_flow(g)
    (decision,) = plan.decisions[plan.index["b"]]
    assert decision.depth == (depth or "ALL")
    assert decision.history == (plan.index["a"],)
    assert decision.target_entry == decision.target_exit == plan.index["b"]
    assert decision.target_stop == plan.index["b"] + 1


def _decided(depth, target_is_flow):
    """root: linear(graph g (a -> target -> after, plus other), tail).

    ``target`` is an atom or a linear subflow (t1, t2); ``after`` is a linear subflow
    (n1, n2); ``other`` sits in g, unlinked; ``tail`` follows g.
    """
    a = t("a")
    target = LinearFlow("target").add(t("t1"), t("t2")) if target_is_flow else t("tgt")
    after = LinearFlow("after").add(t("n1"), t("n2"))
    g = GraphFlow("g").add(a, target, after, t("other"))
    g.link(a, target, decider=_no, decider_depth=depth)
    g.link(target, after)
    plan = compile_flow(LinearFlow("root").add(g, t("tail")))
    (decisions,) = plan.decisions.values()
    return plan, decisions[0]


@pytest.mark.parametrize(
    ("depth", "target_is_flow", "expected"),
    [
        ("ATOM", False, {"tgt"}),
        ("ATOM", True, {"t1"}),
        ("NEIGHBORS", False, {"tgt", "n1"}),
        ("NEIGHBORS", True, {"t1", "t2", "n1"}),
        ("FLOW", False, {"tgt", "n1", "n2"}),
        ("FLOW", True, {"t1", "t2", "n1", "n2"}),
        ("ALL", False, {"tgt", "n1", "n2", "tail"}),
        ("ALL", True, {"t1", "t2", "n1", "n2", "tail"}),
    ],
)
def test_what_a_refused_decision_ignores(depth, target_is_flow, expected):
    plan, decision = _decided(depth, target_is_flow)
    assert {plan.names[n] for n in ignore_set(plan, decision)} == expected


def test_neighbors_of_a_target_last_in_its_graph_stop_at_the_graph():
    a, target = t("a"), t("tgt")
    g = GraphFlow("g").add(a, target)
    g.link(a, target, decider=_no, decider_depth="NEIGHBORS")
    plan = compile_flow(LinearFlow("root").add(g, t("tail")))
    (decisions,) = plan.decisions.values()
    assert {plan.names[n] for n in ignore_set(plan, decisions[0])} == {"tgt"}


# -- messages ------------------------------------------------------------------------


def test_compiling_something_that_is_not_a_flow():
    with pytest.raises(TypeError, match=r"^expected a flow to compile, got int$"):
        compile_flow(5)


def test_the_same_atom_twice_says_what_to_do():
    a = t("a")
    with pytest.raises(
        DuplicateAtomError,
        match=r"^atom 'a' appears more than once in flow 'f'.*; an atom object can be used "
        r"once: create another instance$",
    ):
        compile_flow(LinearFlow("f").add(a, LinearFlow("s").add(a)))


def test_two_atoms_of_one_name_say_what_to_do():
    with pytest.raises(
        DuplicateAtomError,
        match=r"^two atoms are named 'a' \(in flows 'f' and 's'\); atom names must be unique "
        r"in a flow: pass name= to one$",
    ):
        compile_flow(LinearFlow("f").add(t("a"), LinearFlow("s").add(t("a"))))


def test_the_same_flow_twice_is_refused():
    s = LinearFlow("s").add(t("a"))
    with pytest.raises(
        DuplicateAtomError,
        match=r"^flow 's' appears more than once.*; a flow object can be used once",
    ):
        compile_flow(LinearFlow("f").add(s, UnorderedFlow("u").add(s)))


def test_a_flows_retry_controller_is_its_third_node_and_guards_its_range():
    from tideflow.retry import Times

    inner = GraphFlow("g", retry=Times(2, name="ri", provides="y")).add(t("b", requires=["x", "y"]))
    plan = compile_flow(
        LinearFlow("f", retry=Times(2, name="ro", provides="x")).add(t("a"), inner, t("c"))
    )
    assert plan.names == [
        "f[start]", "f[end]", "ro", "a", "g[start]", "g[end]", "ri", "b", "c"
    ]  # fmt: skip
    assert plan.retries == [2, 6]
    assert [plan.flows[0].retry, plan.flows[1].retry] == [2, 6]
    assert plan.scope(2) == (1, 9)
    assert plan.scope(6) == (5, 8)
    # a, the graph flow's nodes and c are decided about by ro; b by ri; ro by nobody,
    # ri (its own failure) by ro
    assert [plan.guards[n] for n in (2, 3, 6, 7, 8)] == [-1, 2, 2, 6, 2]
    assert plan.succ[0] == [2]  # the flow's start leads to its controller alone
    assert plan.succ[2] == [3]  # ... which leads to the first child
    assert plan.succ[6] == [7]
    b = plan.args[plan.index["b"]]
    assert [(x.symbol, plan.names[x.provider]) for x in b] == [("x", "ro"), ("y", "ri")]


def test_every_child_of_a_graph_or_unordered_flow_sees_its_controllers_value():
    from tideflow.retry import ForEach

    def provider_of(plan, atom, symbol):
        found = [b for b in plan.args[plan.index[atom]] if b.symbol == symbol]
        return plan.names[found[0].provider]

    unordered = UnorderedFlow("u", retry=ForEach([1, 2], name="r", provides="x")).add(
        t("a", requires=["x"]), t("b", requires=["x"])
    )
    plan = compile_flow(LinearFlow("f").add(unordered, t("after", requires=["x"])))
    assert [provider_of(plan, n, "x") for n in ("a", "b", "after")] == ["r", "r", "r"]
    graph = GraphFlow("g", retry=ForEach([1], name="r", provides="x")).add(
        t("c1", provides="w"), t("c2", requires=["x"]), t("c3", requires=["w", "x"])
    )
    plan = compile_flow(LinearFlow("f").add(t("x0", provides="x"), graph))
    assert provider_of(plan, "c2", "x") == "r"  # no link into c2: its flow's controller
    assert provider_of(plan, "c3", "x") == "r"  # linked after c1, which does not provide x
    assert provider_of(plan, "c3", "w") == "c1"


def test_a_plan_without_retries_has_no_guards():
    plan = compile_flow(LinearFlow("f").add(t("a")))
    assert plan.retries == []
    assert plan.guards == []


def test_missing_requirements_message_in_full():
    plan = compile_flow(LinearFlow("f").add(t("a", requires=["m"])))
    with pytest.raises(
        MissingRequirementError,
        match=r"^nothing provides what these atoms require: atom 'a' \(in flow 'f'\) requires "
        r"'m'\. Pass the values in store=, inject= them, or add an atom that provides them "
        r"before their users$",
    ):
        plan.check_requirements(set())


def test_a_symbol_seen_only_inside_a_graph_subflow_is_gone_after_it():
    # as above without p: after s, nothing outside provides x, so r's x is external
    q, r = t("q", "x"), t("r", requires=["x"])
    s = LinearFlow("s").add(t("s1", requires=["x"]))
    g = GraphFlow("g").add(q, s)
    g.add(r, resolve_requires=False, resolve_existing=False)
    plan = compile_flow(LinearFlow("root").add(g))
    assert provider_of(plan, "s1", "x") == "q"
    assert provider_of(plan, "r", "x") is None
    assert plan.external == {"x": [("r", "g")]}


@ORDERS
def test_a_subflow_of_a_graph_records_the_graph_as_its_parent(order):
    inner = LinearFlow("s").add(t("s1"))
    g = graph("g", [t("a"), inner], [("a", "s")], order)
    plan = compile_flow(LinearFlow("root").add(g))
    assert [(f.name, f.parent) for f in plan.flows] == [("root", -1), ("g", 0), ("s", 1)]
