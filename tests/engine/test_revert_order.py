"""Revert order: each atom is reverted only after everything that depends on it was reverted."""

from __future__ import annotations

import threading

import pytest

from tideflow import GraphFlow, LinearFlow, UnorderedFlow


def closure(deps):
    """``{atom: every atom it (transitively) depends on}``."""
    out = {}

    def walk(name):
        if name not in out:
            out[name] = set()
            for d in deps.get(name, ()):
                out[name] |= {d, *walk(d)}
        return out[name]

    for name in deps:
        walk(name)
    return out


def check_order(journal, deps, engine, states):
    """Execution follows ``deps``; reverts mirror it; what never ran is untouched."""
    ancestors = closure(deps)
    executed = journal.executed()
    reverted = journal.reverted()
    assert len(executed) == len(set(executed))
    assert sorted(reverted) == sorted(executed), "every executed atom is reverted exactly once"
    calls = journal.calls()
    for name in executed:
        for before in ancestors[name]:
            assert before in executed, f"{name} ran but its predecessor {before} did not"
            assert calls.index(("execute", before)) < calls.index(("execute", name))
            # ``name`` depends on ``before``: undo ``name`` first
            assert calls.index(("revert", name)) < calls.index(("revert", before)), (
                f"{before} was reverted before {name}, which depends on it"
            )
    got = states(engine, deps)
    for name in deps:
        if name in executed:
            assert got[name] == "REVERTED", name
        else:
            assert got[name] == "PENDING", name
    assert engine.storage.get_flow_state() == "REVERTED"


def test_linear_flow(load, make, journal, states):
    flow = LinearFlow("f").add(make("a"), make("b"), make("c", fail=OSError("x")), make("d"))
    engine = load(flow)
    with pytest.raises(OSError, match=r"^x$"):
        engine.run()
    assert journal.reverted() == ["c", "b", "a"]
    check_order(journal, {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}, engine, states)


def test_mixed_nesting(load, make, journal, states):
    graph = GraphFlow("g").add(make("d", provides="dv"), make("e", requires=["dv"]))
    flow = LinearFlow("top").add(
        make("a"),
        UnorderedFlow("u").add(make("b"), make("c")),
        graph,
        make("f", fail=OSError("f failed")),
        make("g"),
    )
    engine = load(flow)
    with pytest.raises(OSError, match="f failed"):
        engine.run()
    deps = {
        "a": [],
        "b": ["a"],
        "c": ["a"],
        "d": ["b", "c"],
        "e": ["d"],
        "f": ["e"],
        "g": ["f"],
    }
    check_order(journal, deps, engine, states)
    assert "g" not in journal.executed()
    assert journal.reverted()[0] == "f"
    assert journal.reverted()[-1] == "a"


def test_graph_flow_with_manual_and_inferred_links(load, make, journal, states):
    a = make("a", provides="x")
    b = make("b", requires=["x"], provides="y")
    c = make("c", requires=["x"])
    d = make("d", requires=["y"], fail=OSError("d failed"))
    e = make("e", requires=["y"])
    graph = GraphFlow("g").add(a, b, c, d, e)
    graph.link(c, e)
    engine = load(graph)
    with pytest.raises(OSError, match="d failed"):
        engine.run()
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": ["b", "c"]}
    check_order(journal, deps, engine, states)


def test_nested_unordered_of_linears(load, make, journal, states):
    flow = LinearFlow("top").add(
        make("first"),
        UnorderedFlow("u").add(
            LinearFlow("l1").add(make("a1"), make("a2"), make("a3")),
            LinearFlow("l2").add(make("b1"), make("b2", fail=KeyError("b2"))),
        ),
        make("last"),
    )
    engine = load(flow)
    with pytest.raises(KeyError, match=r"b2"):
        engine.run()
    deps = {
        "first": [],
        "a1": ["first"],
        "a2": ["a1"],
        "a3": ["a2"],
        "b1": ["first"],
        "b2": ["b1"],
        "last": ["a3", "b2"],
    }
    check_order(journal, deps, engine, states)
    assert "last" not in journal.executed()


def test_unordered_failure_reverts_every_sibling_that_ran(load, make, journal, states):
    flow = UnorderedFlow("u").add(make("a"), make("b", fail=OSError("b")), make("c"))
    engine = load(flow)
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert sorted(journal.executed()) == ["a", "b", "c"]
    check_order(journal, {"a": [], "b": [], "c": []}, engine, states)


def test_parallel_sibling_still_running_at_failure_finishes_then_is_reverted(make, journal, states):
    import tideflow

    started = threading.Event()

    def wait_for_sibling(task):
        assert started.wait(5)

    def fail_after_start(task):
        started.set()

    flow = UnorderedFlow("u").add(
        make("slow", on_execute=wait_for_sibling),
        make("bad", on_execute=fail_after_start, fail=OSError("bad")),
    )
    engine = tideflow.load(flow, engine="parallel", max_workers=2)
    with pytest.raises(OSError, match=r"^bad$"):
        engine.run()
    assert sorted(journal.executed()) == ["bad", "slow"]
    assert sorted(journal.reverted()) == ["bad", "slow"]
    assert states(engine, ["slow", "bad"]) == {"slow": "REVERTED", "bad": "REVERTED"}


def test_nothing_new_starts_after_a_failure(load, make, journal, states):
    # b fails; c and d follow it and must never run, nor be reverted
    flow = LinearFlow("f").add(
        make("a"), make("b", fail=OSError("b")), UnorderedFlow("u").add(make("c"), make("d"))
    )
    engine = load(flow)
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert journal.executed() == ["a", "b"]
    assert journal.reverted() == ["b", "a"]
    assert states(engine, "cd") == {"c": "PENDING", "d": "PENDING"}
