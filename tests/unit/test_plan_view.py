"""The public view of a compiled plan: ``atom_order()`` and ``store_requirements()``.

``tideflow graph`` draws these; here they are checked on the shapes users build:
chains, fan-out and fan-in through unordered flows, nesting (deep, without
recursion), graph links made by hand, and values taken from other atoms or from the
store.
"""

from __future__ import annotations

from typing import Any

from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow
from tideflow._compiler import compile_flow


class T(Task):
    def execute(self, **kwargs: Any) -> None:
        return None


def t(name: str, provides: Any = None, requires: Any = None) -> T:
    return T(name, provides=provides, requires=requires)


def test_a_chain_orders_each_atom_after_the_one_before() -> None:
    plan = compile_flow(LinearFlow("f").add(t("a"), t("b"), t("c")))
    assert plan.atom_order() == {("a", "b"): frozenset(), ("b", "c"): frozenset()}
    assert plan.store_requirements() == {}


def test_an_unordered_flow_fans_out_and_in_with_its_bookkeeping_collapsed() -> None:
    flow = LinearFlow("f").add(
        t("first"), UnorderedFlow("u").add(t("x"), t("y"), t("z")), t("last")
    )
    assert compile_flow(flow).atom_order() == {
        ("first", "x"): frozenset(),
        ("first", "y"): frozenset(),
        ("first", "z"): frozenset(),
        ("x", "last"): frozenset(),
        ("y", "last"): frozenset(),
        ("z", "last"): frozenset(),
    }


def test_values_taken_from_an_atom_are_named_on_its_edge() -> None:
    flow = LinearFlow("f").add(
        t("make", provides=("p", "q")),
        t("mid"),
        t("use", requires=("p", "q", "s")),
    )
    plan = compile_flow(flow)
    assert plan.atom_order() == {
        ("make", "mid"): frozenset(),
        ("mid", "use"): frozenset(),
        ("make", "use"): frozenset({"p", "q"}),  # a value, not only an order
    }
    assert plan.store_requirements() == {"s": ["use"]}


def test_atoms_needing_one_store_value_are_listed_in_order() -> None:
    flow = UnorderedFlow("u").add(t("b", requires="k"), t("a", requires=("k", "j")))
    assert compile_flow(flow).store_requirements() == {"k": ["a", "b"], "j": ["a"]}


def test_flows_nested_inside_flows_collapse_to_atom_edges() -> None:
    inner = LinearFlow("inner").add(UnorderedFlow("deep").add(t("d1"), t("d2")), t("after"))
    flow = LinearFlow("f").add(t("a"), inner, UnorderedFlow("empty"), t("z"))
    assert compile_flow(flow).atom_order() == {
        ("a", "d1"): frozenset(),
        ("a", "d2"): frozenset(),
        ("d1", "after"): frozenset(),
        ("d2", "after"): frozenset(),
        ("after", "z"): frozenset(),
    }


def test_deep_nesting_needs_no_recursion() -> None:
    flow: Any = t("bottom")
    for level in range(5000):
        flow = LinearFlow(f"l{level}").add(flow)
    plan = compile_flow(LinearFlow("top").add(t("first"), flow, t("last")))
    assert plan.atom_order() == {("first", "bottom"): frozenset(), ("bottom", "last"): frozenset()}


def test_graph_links_made_by_hand_and_inferred_are_both_kept() -> None:
    a, b, c = t("a", provides="v"), t("b", requires="v"), t("c")
    graph = GraphFlow("g").add(a, b, c)
    graph.link(c, a)  # by hand: order only
    assert compile_flow(graph).atom_order() == {
        ("c", "a"): frozenset(),
        ("a", "b"): frozenset({"v"}),
    }


def test_an_atom_with_no_neighbour_has_no_edge() -> None:
    assert compile_flow(UnorderedFlow("u").add(t("alone"))).atom_order() == {}
