"""Flows: structure, requires/provides, and the checks made while building."""

import pytest

from tideflow import (
    AmbiguousProviderError,
    CycleError,
    DuplicateAtomError,
    GraphFlow,
    LinearFlow,
    NotFoundError,
    TargetedFlow,
    Task,
    UnorderedFlow,
)


class T(Task):
    def execute(self, **kwargs):
        return None


def t(name, provides=None, requires=None):
    return T(name, provides=provides, requires=requires)


def test_linear_links_requires_and_provides():
    a, b, c = t("a", provides="x"), t("b", requires=["x", "y"]), t("c")
    flow = LinearFlow("lin").add(a, b, c)
    assert len(flow) == 3
    assert list(flow) == [a, b, c]
    assert [(u.name, v.name, m) for u, v, m in flow.iter_links()] == [
        ("a", "b", {"invariant": True}),
        ("b", "c", {"invariant": True}),
    ]
    assert flow.requires == {"y"}
    assert flow.provides == {"x"}


def test_unordered_siblings_do_not_satisfy_each_other():
    flow = UnorderedFlow("u").add(t("a", provides="x"), t("b", requires=["x", "z"]))
    assert flow.requires == {"x", "z"}
    assert list(flow.iter_links()) == []


def test_nested_requires():
    inner = LinearFlow("inner").add(t("i1", provides="r", requires=["p", "q"]))
    outer = LinearFlow("outer").add(t("o1", provides="p"), inner)
    assert outer.requires == {"q"}
    assert outer.provides == {"p", "r"}


def test_adding_the_same_object_twice_is_refused():
    a = t("a")
    flow = LinearFlow("f").add(a)
    with pytest.raises(DuplicateAtomError, match="'a' was added twice"):
        flow.add(a)


def test_adding_a_non_atom_is_a_type_error():
    with pytest.raises(TypeError, match="takes atoms"):
        LinearFlow("f").add(None)  # type: ignore[arg-type]


def test_graph_infers_links_from_requirements_in_any_order():
    graph = GraphFlow("g")
    consumer = t("b", requires=["x"])
    graph.add(consumer)
    graph.add(t("a", provides="x"))
    assert [(u.name, v.name, m) for u, v, m in graph.iter_links()] == [
        ("a", "b", {"reasons": {"x"}})
    ]
    assert graph.requires == frozenset()


def test_graph_refuses_ambiguous_providers_and_stays_unchanged():
    graph = GraphFlow("g").add(t("a", provides="x"), t("b", provides="x"))
    with pytest.raises(AmbiguousProviderError, match=r"'c' requires 'x'.*\['a', 'b'\]"):
        graph.add(t("c", requires=["x"]))
    assert len(graph) == 2


def test_graph_refuses_cycles_from_requirements():
    graph = GraphFlow("g").add(t("a", provides="x", requires=["y"]))
    with pytest.raises(CycleError, match="cycle"):
        graph.add(t("b", provides="y", requires=["x"]))
    assert len(graph) == 1
    assert list(graph.iter_links()) == []


def test_graph_refuses_cycles_from_links_and_unknown_nodes():
    a, b, c = t("a"), t("b"), t("c")
    graph = GraphFlow("g").add(a, b)
    graph.link(a, b)
    with pytest.raises(CycleError, match="'b' -> 'a' would create a cycle"):
        graph.link(b, a)
    with pytest.raises(CycleError, match=r"graph flow 'g': cannot link 'a' to itself"):
        graph.link(a, a)
    with pytest.raises(NotFoundError, match="not in this flow"):
        graph.link(a, c)
    assert [(u.name, v.name) for u, v, _ in graph.iter_links()] == [("a", "b")]


def test_manual_link_merges_with_inferred_one():
    a, b = t("a", provides="x"), t("b", requires=["x"])
    graph = GraphFlow("g").add(a, b)
    graph.link(a, b)
    assert next(iter(graph.iter_links()))[2] == {"reasons": {"x"}, "manual": True}


def test_targeted_flow_keeps_target_and_its_predecessors():
    a, b, c = t("a", provides="x"), t("b", requires=["x"]), t("c")
    flow = TargetedFlow("tg").add(a, b, c)
    flow.set_target(b)
    assert [n.name for n, _ in flow.iter_nodes()] == ["a", "b"]
    assert len(flow) == 2
    flow.reset_target()
    assert len(flow) == 3
