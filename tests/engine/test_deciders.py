"""Graph link deciders: a "no" IGNOREs the target and, by depth, what follows it."""

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, Task


class T(Task):
    def execute(self, **kwargs):
        return self.name


def states(engine, names):
    return {n: str(engine.storage.get_atom_state(n)) for n in names}


def nested(depth, answer=False, seen=None):
    a = T("a", provides="x")
    sub = LinearFlow("sub").add(T("s1"), T("s2"))
    graph = GraphFlow("g").add(a, sub)

    def decider(history):
        if seen is not None:
            seen.append(history)
        return answer

    graph.link(a, sub, decider=decider, decider_depth=depth)
    return LinearFlow("outer").add(graph, T("after"))


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (None, {"s1": "IGNORE", "s2": "IGNORE", "after": "IGNORE"}),
        ("ALL", {"s1": "IGNORE", "s2": "IGNORE", "after": "IGNORE"}),
        ("FLOW", {"s1": "IGNORE", "s2": "IGNORE", "after": "SUCCESS"}),
        ("neighbors", {"s1": "IGNORE", "s2": "IGNORE", "after": "SUCCESS"}),
        ("ATOM", {"s1": "IGNORE", "s2": "SUCCESS", "after": "SUCCESS"}),
    ],
)
def test_depth_decides_how_far_a_no_reaches(depth, expected):
    seen = []
    engine = tideflow.load(nested(depth, seen=seen))
    engine.run()
    assert states(engine, ["a", *expected]) == {"a": "SUCCESS", **expected}
    assert str(engine.storage.get_flow_state()) == "SUCCESS"
    # a link from a subflow shows no history; from an atom, that atom's result
    assert seen == [{"a": "a"}]


def test_a_yes_runs_everything():
    engine = tideflow.load(nested(None, answer=True))
    engine.run()
    assert set(states(engine, ["a", "s1", "s2", "after"]).values()) == {"SUCCESS"}


def test_ignored_atoms_are_notified_and_skipped_by_revert():
    a, b, c = T("a", provides="x"), T("b", provides="y"), T("c")

    class Boom(Task):
        def execute(self, x):
            raise RuntimeError("late failure")

    graph = GraphFlow("g").add(a, b, c, Boom("boom"))
    graph.link(a, b, decider=lambda history: False)
    graph.link(b, c)
    engine = tideflow.load(graph)
    seen = []
    engine.atom_notifier.register(
        "*",
        lambda state, details: seen.append((details["task_name"], state, details.get("old_state"))),
    )
    with pytest.raises(RuntimeError, match="late failure"):
        engine.run()
    assert ("b", "IGNORE", "PENDING") in seen
    assert ("c", "IGNORE", "PENDING") in seen
    assert not [s for s in seen if s[0] in ("b", "c") and s[1] in ("REVERTING", "REVERTED")]
    assert states(engine, ["a", "b", "c", "boom"]) == {
        "a": "REVERTED",
        "b": "IGNORE",
        "c": "IGNORE",
        "boom": "REVERTED",
    }


def test_every_decider_into_a_target_sees_all_its_atom_predecessors():
    b, c, d = T("b"), T("c"), T("d")
    histories = []
    graph = GraphFlow("g").add(b, c, d)
    graph.link(b, d, decider=lambda h: histories.append(h) or True)
    graph.link(c, d, decider=lambda h: histories.append(h) or False)
    engine = tideflow.load(graph)
    engine.run()
    assert histories == [{"b": "b", "c": "c"}, {"b": "b", "c": "c"}]
    assert states(engine, ["d"]) == {"d": "IGNORE"}


def test_depth_without_decider_and_unknown_depth_are_refused():
    a, b = T("a"), T("b")
    graph = GraphFlow("g").add(a, b)
    with pytest.raises(ValueError, match="needs a decider"):
        graph.link(a, b, decider_depth="ATOM")
    with pytest.raises(ValueError, match="unknown decider depth"):
        graph.link(a, b, decider=lambda h: True, decider_depth="bogus")


def test_rerun_resets_ignored_atoms():
    answers = iter([False, True])
    a, b = T("a"), T("b")
    graph = GraphFlow("g").add(a, b)
    graph.link(a, b, decider=lambda h: next(answers))
    engine = tideflow.load(graph)
    engine.run()
    assert states(engine, ["b"]) == {"b": "IGNORE"}
    engine.reset()
    engine.run()
    assert states(engine, ["b"]) == {"b": "SUCCESS"}
