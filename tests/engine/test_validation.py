"""Definition errors are reported before any task runs (notes §3)."""

from __future__ import annotations

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, UnorderedFlow


@pytest.mark.parametrize("pattern", [LinearFlow, UnorderedFlow, GraphFlow])
def test_duplicate_names_fail_at_compile_not_at_add(load, make, journal, pattern, watch):
    flow = pattern("f").add(make("a"), make("a"))
    assert len(flow) == 2
    engine = load(flow)
    notes = watch(engine)
    with pytest.raises(tideflow.DuplicateAtomError, match="'a'"):
        engine.compile()
    with pytest.raises(tideflow.DuplicateAtomError, match=r"two atoms are named 'a'"):
        engine.run()
    assert journal.executed() == []
    assert notes.events == []


def test_duplicate_names_across_nested_subflows(load, make, journal):
    flow = LinearFlow("outer").add(
        make("a"), UnorderedFlow("u").add(make("b"), LinearFlow("deep").add(make("a")))
    )
    engine = load(flow)
    with pytest.raises(tideflow.DuplicateAtomError, match="'a'"):
        engine.run()
    assert journal.executed() == []


def test_duplicate_names_via_run_helper(engine_kind, make, journal):
    with pytest.raises(tideflow.DuplicateAtomError, match=r"two atoms are named 'a'"):
        tideflow.run(LinearFlow("f").add(make("a"), make("a")), engine=engine_kind)
    assert journal.executed() == []


def test_a_task_and_a_subflow_may_share_a_name(load, make, journal):
    flow = LinearFlow("f").add(make("x"), LinearFlow("x").add(make("y")))
    load(flow).run()
    assert journal.executed() == ["x", "y"]


def test_same_atom_object_in_parent_and_subflow(load, make, journal):
    shared = make("a")
    flow = LinearFlow("outer").add(shared, LinearFlow("inner").add(shared, make("b")))
    engine = load(flow)
    with pytest.raises(
        tideflow.DuplicateAtomError, match=r"atom 'a' appears more than once in flow 'outer'"
    ):
        engine.compile()
    with pytest.raises(
        tideflow.DuplicateAtomError, match=r"atom 'a' appears more than once in flow 'outer'"
    ):
        engine.run()
    assert journal.executed() == []


def test_same_atom_object_in_two_sibling_subflows(load, make, journal):
    shared = make("a")
    flow = UnorderedFlow("outer").add(
        LinearFlow("one").add(shared, make("b")), LinearFlow("two").add(make("c"), shared)
    )
    with pytest.raises(
        tideflow.DuplicateAtomError, match=r"atom 'a' appears more than once in flow 'outer'"
    ):
        load(flow).run()
    assert journal.executed() == []


def test_cycle_by_links_is_refused_at_link(make):
    a, b = make("a"), make("b")
    graph = GraphFlow("g").add(a, b)
    graph.link(a, b)
    with pytest.raises(tideflow.CycleError, match=r"linking 'b' -> 'a' would create a cycle"):
        graph.link(b, a)
    with pytest.raises(tideflow.CycleError, match=r"cannot link 'a' to itself"):
        graph.link(a, a)
    assert [(u.name, v.name) for u, v, _ in graph.iter_links()] == [("a", "b")]


def test_cycle_through_a_longer_path_is_refused(make):
    a, b, c = make("a"), make("b"), make("c")
    graph = GraphFlow("g").add(a, b, c)
    graph.link(a, b).link(b, c)
    with pytest.raises(tideflow.CycleError, match=r"linking 'c' -> 'a' would create a cycle"):
        graph.link(c, a)


def test_cycle_by_provides_and_requires_is_refused_at_add(make):
    graph = GraphFlow("g")
    with pytest.raises(tideflow.CycleError, match=r"adding atom 'b' would create a cycle"):
        graph.add(make("a", provides="x", requires=["y"]), make("b", provides="y", requires=["x"]))
    assert len(graph) == 0
    graph.add(make("a2", provides="x", requires=["y"]))
    with pytest.raises(tideflow.CycleError, match=r"adding atom 'b2' would create a cycle"):
        graph.add(make("b2", provides="y", requires=["x"]))
    assert len(graph) == 1
    assert list(graph.iter_links()) == []


def test_cycle_between_nested_subflows_is_refused_at_add(make):
    graph = GraphFlow("g").add(LinearFlow("s1").add(make("a", provides="x", requires=["y"])))
    with pytest.raises(tideflow.CycleError, match=r"adding flow 's2' would create a cycle"):
        graph.add(LinearFlow("s2").add(make("b", provides="y", requires=["x"])))
    assert len(graph) == 1


def test_ambiguous_provider_is_refused_at_add(make):
    graph = GraphFlow("g").add(make("a", provides="x"), make("b", provides="x"))
    assert len(graph) == 2  # two providers without a consumer are fine
    with pytest.raises(
        tideflow.AmbiguousProviderError,
        match=r"atom 'c' requires 'x', which several nodes provide: \['a', 'b'\]",
    ) as raised:
        graph.add(make("c", requires=["x"]))
    message = str(raised.value)
    assert "'c'" in message
    assert "'x'" in message
    assert "'a'" in message
    assert "'b'" in message
    assert len(graph) == 2


def test_ambiguous_provider_in_one_add(make):
    graph = GraphFlow("g")
    with pytest.raises(
        tideflow.AmbiguousProviderError,
        match=r"atom 'c' requires 'x', which several nodes provide: \['a', 'b'\]",
    ):
        graph.add(make("a", provides="x"), make("b", provides="x"), make("c", requires=["x"]))
    assert len(graph) == 0


def test_missing_requirement_is_reported_at_run_naming_atom_symbol_and_flow(
    load, make, journal, watch, states
):
    flow = LinearFlow("lin").add(make("a", requires=["m1"]), make("b", requires=["m2"]))
    engine = load(flow)
    notes = watch(engine)
    engine.compile()
    engine.prepare()
    with pytest.raises(
        tideflow.MissingRequirementError,
        match=r"atom 'a' \(in flow 'lin'\) requires 'm1'; atom 'b' \(in flow 'lin'\) requires 'm2'",
    ) as raised:
        engine.run()
    error = raised.value
    message = str(error)
    for word in ("'a'", "'b'", "'m1'", "'m2'", "'lin'"):
        assert word in message
    assert error.missing == ("m1", "m2")
    assert error.atom == "a"
    assert error.flow == "lin"
    assert isinstance(error, tideflow.DefinitionError)
    assert journal.executed() == []
    assert notes.events == []  # nothing moved, not even the flow
    assert engine.storage.get_flow_state() == "PENDING"
    assert states(engine, "ab") == {"a": "PENDING", "b": "PENDING"}
    # the same engine runs once the values are there
    engine.storage.inject({"m1": 1, "m2": 2})
    engine.run()
    assert journal.executed() == ["a", "b"]
    assert engine.storage.get_flow_state() == "SUCCESS"


def test_missing_requirement_surfaces_on_first_next_of_run_iter(load, make, journal):
    engine = load(LinearFlow("f").add(make("a", requires=["nope"])))
    it = engine.run_iter()
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'a' \(in flow 'f'\) requires 'nope'"
    ):
        next(it)
    assert journal.executed() == []


def test_later_sibling_does_not_satisfy_an_earlier_one(load, make, journal):
    flow = LinearFlow("f").add(make("t1"), make("t2", requires=["z"]), make("t3", provides="z"))
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 't2' \(in flow 'f'\) requires 'z'"
    ) as raised:
        load(flow).run()
    assert raised.value.missing == ("z",)
    assert journal.executed() == []
    load(flow, store={"z": 0}).run()
    assert journal.executed() == ["t1", "t2", "t3"]


@pytest.mark.parametrize("pattern", [LinearFlow, GraphFlow])
def test_task_requiring_what_it_provides_is_missing(load, make, journal, pattern):
    flow = pattern("f").add(make("self-fed", provides="x", requires=["x"]))
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'self-fed' \(in flow 'f'\) requires 'x'"
    ):
        load(flow).run()
    assert journal.executed() == []


def test_link_to_a_node_not_in_the_flow(make):
    a, c = make("a"), make("c")
    graph = GraphFlow("g").add(a)
    with pytest.raises(
        tideflow.NotFoundError,
        match=r"graph flow 'g': <.*c==1\.0.*> is not in this flow; add\(\) it before linking it",
    ):
        graph.link(a, c)


def test_unknown_engine_kind(make):
    with pytest.raises(tideflow.NotFoundError, match=r"unknown engine 'bogus'"):
        tideflow.load(LinearFlow("f").add(make("a")), engine="bogus")


def test_missing_requirement_in_a_nested_flow_names_that_flow(load, make, journal):
    flow = LinearFlow("outer").add(
        make("fine"),
        UnorderedFlow("middle").add(LinearFlow("inner").add(make("needy", requires=["gone"]))),
    )
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'needy' \(in flow 'inner'\) requires 'gone'"
    ) as raised:
        load(flow).run()
    message = str(raised.value)
    assert "'needy'" in message
    assert "'gone'" in message
    assert "'inner'" in message
    assert raised.value.atom == "needy"
    assert journal.executed() == []


def test_store_and_inject_take_mappings():
    import tideflow
    from tideflow import LinearFlow

    flow = LinearFlow("f")
    with pytest.raises(TypeError, match="store= takes a mapping"):
        tideflow.load(flow, store=[("a", 1)])
    engine = tideflow.load(flow)
    with pytest.raises(TypeError, match="inject\\(\\) takes a mapping"):
        engine.storage.inject([("a", 1)])
