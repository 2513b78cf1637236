"""Compiler behaviour that mutation testing found unchecked (see docs/testing.md).

Each test states a rule of the compiler (which provider an argument is bound to, which
controller decides about a node, what a refused decision ignores, what is warned
about) on a flow built so that the rule makes a difference.
"""

from __future__ import annotations

import logging

import pytest

from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow
from tideflow._compiler import NO_PROVIDER, compile_flow, ignore_set
from tideflow.retry import Times


class T(Task):
    def execute(self, **kwargs):
        return None


def t(name, provides=None, requires=None):
    return T(name, provides=provides, requires=requires)


def provider_of(plan, atom, symbol):
    for binding in plan.args[plan.index[atom]]:
        if binding.symbol == symbol:
            return None if binding.provider == NO_PROVIDER else plan.names[binding.provider]
    raise AssertionError(f"{atom} has no binding for {symbol}")


# -- a link inferred for a symbol names its provider ---------------------------------------


def _inferred_and_manual_providers():
    """Graph g: p provides x, c requires x (link p -> c inferred for x), then q, which
    also provides x, added without resolving existing nodes and linked to c by hand.

    q is added after c, so the links do not follow insertion order: the graph is sorted,
    p and q are compiled one after the other (q right after p), then c.
    """
    p, c, q = t("p", "x"), t("c", requires=["x"]), t("q", "x")
    g = GraphFlow("g").add(p, c)
    g.add(q, resolve_existing=False)
    g.link(q, c)
    assert not g._forward
    return g


def test_the_provider_a_link_was_inferred_for_wins_over_a_later_linked_one():
    plan = compile_flow(_inferred_and_manual_providers())
    assert plan.names[2:] == ["p", "q", "c"]  # q is compiled after p, right after it
    assert provider_of(plan, "c", "x") == "p"


def test_the_inferred_provider_inside_a_subflow_is_its_latest_provider_of_the_symbol():
    # the link is inferred for x from subflow s; s holds two providers of x (the later
    # one wins inside s), and q, compiled after s, provides x too
    s = LinearFlow("s").add(t("s1", "x"), t("s2", "x"), t("s3"))
    c, q = t("c", requires=["x"]), t("q", "x")
    g = GraphFlow("g").add(s, c)
    g.add(q, resolve_existing=False)
    g.link(q, c)
    plan = compile_flow(g)
    assert plan.index["q"] > plan.index["s3"]
    assert provider_of(plan, "c", "x") == "s2"


def test_a_symbol_no_link_was_inferred_for_is_looked_for_among_direct_predecessors():
    # c's link from q was inferred for x; y comes from p, linked by hand
    q, c, p = t("q", "x"), t("c", requires=["x", "y"]), t("p", "y")
    g = GraphFlow("g").add(q, c)
    g.add(p, resolve_existing=False)
    g.link(p, c)
    plan = compile_flow(g)
    assert provider_of(plan, "c", "x") == "q"
    assert provider_of(plan, "c", "y") == "p"


# -- what a graph flow's children cannot see --------------------------------------------------


def test_providers_in_unlinked_siblings_are_skipped_together_for_the_one_before_the_graph():
    # b and c provide x inside g but are not d's ancestors: d gets a, from before g
    g = GraphFlow("g").add(t("b", "x"), t("c", "x"))
    g.add(t("d", requires=["x"]), resolve_requires=False)
    plan = compile_flow(LinearFlow("root").add(t("a", "x"), g))
    assert provider_of(plan, "d", "x") == "a"


def test_a_provider_is_judged_by_the_innermost_graph_that_holds_it_at_every_depth():
    # d (in g2) does not see b (unlinked in g2); it sees e, linked before g2 in g1;
    # g0 and the root lie between them and the root, each holding providers
    g2 = GraphFlow("g2").add(t("b", "x"))
    g2.add(t("d", requires=["x"]), resolve_requires=False)
    g1 = GraphFlow("g1").add(t("e", "x"), g2)  # e -> g2, inferred for x
    g0 = GraphFlow("g0").add(t("c", "x"))
    g0.add(g1, resolve_requires=False)
    plan = compile_flow(LinearFlow("root").add(t("a", "x"), g0))
    assert provider_of(plan, "d", "x") == "e"
    assert [f.name for f in plan.flows] == ["root", "g0", "g1", "g2"]


# -- a flow's controller provides to everything in the flow --------------------------------


def test_a_controllers_value_reaches_an_atom_of_its_graph_flow_inside_another_graph():
    inner = GraphFlow("inner", retry=Times(2, name="r", provides="x")).add(t("use", requires=["x"]))
    outer = GraphFlow("outer").add(t("before", "z"), inner)
    plan = compile_flow(outer)
    assert provider_of(plan, "use", "x") == "r"
    assert plan.external == {}


# -- which controller decides about a node -------------------------------------------------


def test_nodes_of_a_subflow_without_a_controller_are_decided_about_by_the_enclosing_one():
    sub = LinearFlow("sub").add(t("a"), UnorderedFlow("deeper").add(t("b")))
    plan = compile_flow(LinearFlow("f", retry=Times(2, name="r")).add(sub, t("c")))
    r = plan.index["r"]
    assert plan.guards[r] == -1
    for node in range(plan.size):
        if node != r:
            assert plan.guards[node] == r, plan.names[node]


def test_nodes_no_controller_encloses_have_no_guard():
    sub = LinearFlow("sub", retry=Times(2, name="r")).add(t("b"))
    plan = compile_flow(LinearFlow("f").add(t("a"), sub, t("c")))
    r = plan.index["r"]
    guarded = {plan.names[n] for n in range(plan.size) if plan.guards[n] == r}
    assert guarded == {"sub[start]", "sub[end]", "b"}
    unguarded = [plan.guards[n] for n in range(plan.size) if plan.names[n] not in guarded]
    assert unguarded == [-1] * (plan.size - 3)  # f's nodes, a, c and r itself


def test_a_flow_without_a_controller_says_so_with_minus_one():
    sub = LinearFlow("sub", retry=Times(2, name="r")).add(t("b"))
    plan = compile_flow(GraphFlow("f").add(t("a"), sub))
    assert [(f.name, f.retry) for f in plan.flows] == [("f", -1), ("sub", plan.index["r"])]


# -- what a refused decision ignores ---------------------------------------------------------


def _no(history):
    return False


@pytest.mark.parametrize("forward", [True, False], ids=["in-order", "sorted"])
def test_flow_depth_ignores_every_branch_after_the_target_however_long(forward):
    # gate -> b; b -> short -> (end); b -> c -> d -> e: the short branch reaches the
    # graph's end before the long one is walked to its last node
    names = ["gate", "b", "short", "c", "d", "e"]
    nodes = {n: t(n) for n in names}
    g = GraphFlow("g")
    for n in names if forward else reversed(names):
        g.add(nodes[n])
    g.link(nodes["gate"], nodes["b"], decider=_no, decider_depth="FLOW")
    for u, v in [("b", "short"), ("b", "c"), ("c", "d"), ("d", "e")]:
        g.link(nodes[u], nodes[v])
    plan = compile_flow(LinearFlow("root").add(g, t("tail")))
    (decisions,) = plan.decisions.values()
    ignored = {plan.names[n] for n in ignore_set(plan, decisions[0])}
    assert ignored == {"b", "short", "c", "d", "e"}


@pytest.mark.parametrize("depth", ["FLOW", "NEIGHBORS"])
def test_a_sorted_graph_records_which_flow_a_decided_link_belongs_to(depth):
    a, b, after = t("a"), t("b"), t("after")
    g = GraphFlow("g").add(after, b, a)  # links point backwards: the graph is sorted
    g.link(a, b, decider=_no, decider_depth=depth)
    g.link(b, after)
    plan = compile_flow(LinearFlow("root").add(t("head"), g, t("tail")))
    (decisions,) = plan.decisions.values()
    assert plan.flows[decisions[0].flow].name == "g"
    expected = {"b", "after"}
    assert {plan.names[n] for n in ignore_set(plan, decisions[0])} == expected


# -- the warning about two unordered providers ----------------------------------------------


def _compiler_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "tideflow.compiler"]


def test_two_unordered_providers_are_warned_about_once_in_full(caplog):
    caplog.set_level(logging.WARNING, logger="tideflow.compiler")
    flow = LinearFlow("f").add(
        UnorderedFlow("both").add(t("first", "x"), t("second", "x")),
        t("use", requires=["x"]),
        t("again", requires=["x"]),
    )
    plan = compile_flow(flow)
    assert provider_of(plan, "use", "x") == provider_of(plan, "again", "x") == "second"
    assert _compiler_warnings(caplog) == [
        "unordered flow 'both' has two atoms providing 'x', 'first' and 'second'; what "
        "follows it gets the value of 'second', the one added last (as in TaskFlow). Give "
        "them different names (provides= or rebind=) to choose"
    ]


def test_one_provider_inside_an_unordered_flow_is_not_warned_about(caplog):
    caplog.set_level(logging.WARNING, logger="tideflow.compiler")
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(t("only", "x"), t("other", "y")), t("use", requires=["x", "y"])
    )
    plan = compile_flow(flow)
    assert provider_of(plan, "use", "x") == "only"
    assert _compiler_warnings(caplog) == []
