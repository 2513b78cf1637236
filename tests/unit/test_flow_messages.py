"""Mistakes made while building flows: refused at ``add()``, named once, flow unchanged.

Issue 6, item 4: a flow added to itself or to a flow nested in it, the same object
added twice (all AtomReusedError, a ValueError as TaskFlow's compile raises), two
atoms with one name (DuplicateAtomError at compile, as in TaskFlow).
"""

from __future__ import annotations

import re

import pytest

import tideflow
from tideflow import (
    AmbiguousProviderError,
    AtomReusedError,
    DuplicateAtomError,
    GraphFlow,
    LinearFlow,
    TargetedFlow,
    Task,
    UnorderedFlow,
)
from tideflow._compiler import compile_flow

PATTERNS = [LinearFlow, UnorderedFlow, GraphFlow, TargetedFlow]


class T(Task):
    def execute(self, **kwargs: object) -> int:
        return 1


def snapshot(flow: tideflow.Flow) -> tuple[int, list[object], list[tuple[str, str]]]:
    """What a refused add() must leave as it was: length, children, links."""
    links = [(u.name, v.name) for u, v, _ in flow.iter_links()]
    return len(flow), list(flow), links


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_flow_cannot_contain_itself(pattern: type[tideflow.Flow]) -> None:
    flow = pattern("f").add(T("a"))
    before = snapshot(flow)
    with pytest.raises(AtomReusedError, match=r"^flow 'f' cannot contain itself"):
        flow.add(flow)
    assert snapshot(flow) == before


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_refused_batch_adds_nothing_not_even_the_items_before_the_bad_one(
    pattern: type[tideflow.Flow],
) -> None:
    flow = pattern("f").add(T("a"))
    before = snapshot(flow)
    fine = T("b")
    with pytest.raises(AtomReusedError, match="cannot contain itself"):
        flow.add(fine, flow)
    assert snapshot(flow) == before
    flow.add(fine)  # the good item was not half-added
    assert list(flow)[-1] is fine


@pytest.mark.parametrize("outer_pattern", PATTERNS)
@pytest.mark.parametrize("inner_pattern", PATTERNS)
def test_a_flow_cannot_contain_a_flow_it_is_nested_in(
    outer_pattern: type[tideflow.Flow], inner_pattern: type[tideflow.Flow]
) -> None:
    a = outer_pattern("a")
    b = inner_pattern("b").add(T("x"))
    a.add(b)
    before = snapshot(b)
    with pytest.raises(AtomReusedError) as info:
        b.add(a)
    assert str(info.value) == (
        "flow 'b' cannot contain flow 'a': 'a' already contains 'b', so adding it would "
        "create a cycle of flows"
    )
    assert snapshot(b) == before
    assert len(a) == 1
    assert tideflow.run(a) == {}


def test_an_indirect_ancestor_is_refused_too() -> None:
    a, b, c = LinearFlow("a"), UnorderedFlow("b"), GraphFlow("c")
    a.add(b)
    b.add(c)
    with pytest.raises(
        AtomReusedError, match=r"'c' cannot contain flow 'a': 'a' already contains 'c'"
    ):
        c.add(a)
    assert len(c) == 0


def test_a_flow_added_to_two_flows_is_not_a_cycle() -> None:
    shared = LinearFlow("shared").add(T("s"))
    one, two = LinearFlow("one").add(shared), LinearFlow("two").add(shared)
    # neither holds the other: both adds are fine
    one.add(two.__class__("three"))
    two.add(LinearFlow("four"))
    assert len(one) == 2
    assert len(two) == 2
    # but the shared flow may not take either of them
    for holder in (one, two):
        with pytest.raises(AtomReusedError, match="cycle of flows"):
            shared.add(holder)


def test_a_graph_flow_refused_for_a_cycle_of_flows_keeps_its_links() -> None:
    outer = GraphFlow("outer")
    inner = GraphFlow("inner").add(T("p", provides="x"), T("q", requires=["x"]))
    outer.add(inner)
    before = snapshot(inner)
    with pytest.raises(AtomReusedError, match="cycle of flows"):
        inner.add(T("r", requires=["x"]), outer)
    assert snapshot(inner) == before
    assert before[2] == [("p", "q")]


def test_a_flow_refused_by_a_graph_flow_is_not_recorded_as_nested_in_it() -> None:
    graph = GraphFlow("g").add(T("p1", provides="x"), T("p2", provides="x"))
    sub = LinearFlow("sub").add(T("needs", requires=["x"]))
    with pytest.raises(AmbiguousProviderError):
        graph.add(sub)
    assert len(graph) == 2
    # had the refused add left "sub is in g" behind, this would look like a cycle
    sub.add(graph)
    assert list(sub)[-1] is graph


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_same_atom_twice_in_one_call_is_refused_and_nothing_is_added(
    pattern: type[tideflow.Flow],
) -> None:
    flow = pattern("f")
    a = T("a")
    with pytest.raises(AtomReusedError, match=r"^flow 'f': atom 'a' was added twice"):
        flow.add(a, a)
    assert len(flow) == 0
    flow.add(a)  # the first copy was not half-added
    assert list(flow) == [a]


def test_the_same_subflow_twice_says_flow() -> None:
    sub = LinearFlow("sub")
    flow = LinearFlow("f").add(sub)
    with pytest.raises(
        AtomReusedError,
        match=r"^flow 'f': flow 'sub' was added twice; each flow object can appear once",
    ):
        flow.add(sub)
    assert list(flow) == [sub]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_two_atoms_with_one_name_in_one_flow_name_that_flow_once(
    pattern: type[tideflow.Flow],
) -> None:
    flow = pattern("orders").add(T("a"), T("a"))
    # refused at compile, as in TaskFlow (which accepts the add())
    assert len(flow) == 2
    with pytest.raises(DuplicateAtomError) as info:
        compile_flow(flow)
    assert not isinstance(info.value, AtomReusedError)  # two objects, one name
    message = str(info.value)
    assert message.startswith("two atoms are named 'a' (in flow 'orders');")
    assert message.count("orders") == 1


def test_two_atoms_with_one_name_in_two_flows_name_both() -> None:
    flow = LinearFlow("outer").add(T("a"), LinearFlow("inner").add(T("a")))
    with pytest.raises(
        DuplicateAtomError,
        match=re.escape("two atoms are named 'a' (in flows 'outer' and 'inner')"),
    ):
        compile_flow(flow)


def test_two_flows_with_one_name_holding_atoms_with_one_name_name_both() -> None:
    # distinct flows that happen to share a name are still two flows
    flow = LinearFlow("f").add(LinearFlow("x").add(T("a")), LinearFlow("x").add(T("a")))
    with pytest.raises(
        DuplicateAtomError, match=re.escape("two atoms are named 'a' (in flows 'x' and 'x')")
    ):
        compile_flow(flow)


def test_one_atom_object_in_a_flow_and_its_subflow_names_both_flows() -> None:
    shared = T("a")
    flow = LinearFlow("outer").add(shared, LinearFlow("inner").add(shared))
    with pytest.raises(
        AtomReusedError,
        match=re.escape(
            "atom 'a' appears more than once in flow 'outer' (in flows 'outer' and 'inner')"
        ),
    ):
        compile_flow(flow)


def test_one_flow_object_in_two_sibling_flows_names_both() -> None:
    shared = LinearFlow("shared").add(T("a"))
    flow = UnorderedFlow("root").add(
        LinearFlow("one").add(shared), LinearFlow("two").add(T("b"), shared)
    )
    with pytest.raises(
        AtomReusedError,
        match=re.escape(
            "flow 'shared' appears more than once in flow 'root' (in flows 'one' and 'two')"
        ),
    ):
        compile_flow(flow)


def test_a_cycle_of_flows_is_a_value_error_as_in_taskflow() -> None:
    flow = LinearFlow("f")
    with pytest.raises(ValueError, match="cannot contain itself"):
        flow.add(flow)
