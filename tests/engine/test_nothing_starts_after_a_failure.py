"""Once the engine has seen a failure, it starts nothing new: no execute after a failed
execute, no revert after a failed revert. What is already running finishes.

The parallel cases pin down the moment the engine sees the failure: a task waits, on a
worker, until the engine has recorded the failure (an atom listener runs on the engine
thread), and another keeps the run going past that point, so work that became ready
afterwards is there to be (wrongly) started. Nothing depends on timing.
"""

from __future__ import annotations

import threading

import pytest

import tideflow
from tideflow import LinearFlow, UnorderedFlow

WAIT = 5  # seconds; a wait that times out fails its task, and so the test


class RevertBroke(Exception):
    pass


def set_when_recorded(engine, atom, state, event):
    """Set ``event`` once the engine has recorded ``atom`` entering ``state``."""

    def listener(new_state, details):
        if details["task_name"] == atom:
            event.set()

    engine.atom_notifier.register(state, listener)


def waits_for(event):
    def hook(task):
        assert event.wait(WAIT), f"{task.name} waited in vain"

    return hook


def atom_log(engine):
    """``(state, atom)`` for every atom state change, in the order the engine made them."""
    seen: list[tuple[str, str]] = []
    engine.atom_notifier.register(
        "*", lambda state, details: seen.append((state, details["task_name"]))
    )
    return seen


def started_after(seen, state, atom, started):
    """Atoms that entered ``started`` after ``atom`` entered ``state``."""
    first = seen.index((state, atom))
    return [name for s, name in seen[first:] if s == started]


# -- no revert starts after a revert failed ------------------------------------------


def three_branches_then_boom(make, **hooks):
    """Branches P, Q, R of two tasks each, then ``boom`` fails; q2's revert raises."""
    return LinearFlow("f").add(
        UnorderedFlow("u").add(
            LinearFlow("P").add(make("p1"), make("p2", **hooks.get("p2", {}))),
            LinearFlow("Q").add(make("q1"), make("q2", revert_fail=RevertBroke("q2 revert"))),
            LinearFlow("R").add(make("r1"), make("r2", **hooks.get("r2", {}))),
        ),
        make("boom", fail=OSError("boom")),
    )


def test_parallel_no_revert_starts_after_a_revert_failed(make, journal, states):
    # boom's revert, then p2, q2 and r2 together. q2's revert fails. p2's revert waits
    # until the engine has recorded that failure, so p1 becomes revertible afterwards;
    # r2's revert waits until p2's is recorded, so the engine goes round again with p1
    # ready. It must not start it: after a failed revert, only running reverts finish.
    q2_failed = threading.Event()
    p2_done = threading.Event()
    flow = three_branches_then_boom(
        make,
        p2={"on_revert": waits_for(q2_failed)},
        r2={"on_revert": waits_for(p2_done)},
    )
    engine = tideflow.load(flow, engine="parallel", max_workers=4)
    set_when_recorded(engine, "q2", "REVERT_FAILURE", q2_failed)
    set_when_recorded(engine, "p2", "REVERTED", p2_done)
    seen = atom_log(engine)

    with pytest.raises(RevertBroke, match="q2 revert"):
        engine.run()

    assert journal.reverted()[0] == "boom"
    assert sorted(journal.reverted()) == ["boom", "p2", "q2", "r2"]
    assert started_after(seen, "REVERT_FAILURE", "q2", "REVERTING") == []
    assert states(engine, ["p1", "p2", "q1", "q2", "r1", "r2", "boom"]) == {
        "p1": "SUCCESS",
        "p2": "REVERTED",  # was running when q2's revert failed: it finishes
        "q1": "SUCCESS",
        "q2": "REVERT_FAILURE",
        "r1": "SUCCESS",
        "r2": "REVERTED",
        "boom": "REVERTED",
    }
    assert engine.storage.get_flow_state() == "FAILURE"
    assert list(engine.storage.get_revert_failures()) == ["q2"]


def test_parallel_reverts_ready_with_the_failed_one_are_not_started(make, journal, states):
    # r2's revert is held until q2's failure is recorded, so r1 is still waiting and
    # p1 (readied by p2, which finished at once) sits ready in the same round as the
    # failure; neither p1 nor r1 may start.
    q2_failed = threading.Event()
    flow = three_branches_then_boom(make, r2={"on_revert": waits_for(q2_failed)})
    engine = tideflow.load(flow, engine="parallel", max_workers=4)
    set_when_recorded(engine, "q2", "REVERT_FAILURE", q2_failed)
    seen = atom_log(engine)
    with pytest.raises(RevertBroke, match="q2 revert"):
        engine.run()
    reverted = set(journal.reverted())
    assert {"boom", "q2", "r2"} <= reverted
    assert "r1" not in reverted
    assert "q1" not in reverted
    # p2 may have finished (and p1 started) before q2's failure was seen: only then
    late = started_after(seen, "REVERT_FAILURE", "q2", "REVERTING")
    assert late == []
    assert states(engine, ["q1", "r1"]) == {"q1": "SUCCESS", "r1": "SUCCESS"}


def test_serial_reverts_of_one_round_finish_but_no_later_round_starts(make, journal, states):
    # the serial engine starts a round's reverts one after another on its own thread:
    # p2, q2 and r2 are one round, so all three run; p1 and r1, the next round, do not
    engine = tideflow.load(three_branches_then_boom(make), engine="serial")
    seen = atom_log(engine)
    with pytest.raises(RevertBroke, match="q2 revert"):
        engine.run()
    assert journal.reverted()[0] == "boom"
    assert sorted(journal.reverted()) == ["boom", "p2", "q2", "r2"]
    assert started_after(seen, "REVERT_FAILURE", "q2", "REVERTING") == []
    assert states(engine, ["p1", "q1", "r1"]) == dict.fromkeys(["p1", "q1", "r1"], "SUCCESS")
    assert engine.storage.get_flow_state() == "FAILURE"


# -- no execute starts after an execute failed ---------------------------------------


def test_parallel_nothing_starts_after_a_failure_while_others_run(make, journal, states):
    # bad fails at once. b1 finishes only after the engine has recorded that, making b2
    # ready; slow finishes only after b1 is recorded, so the engine goes round again
    # with b2 ready and slow still running. b2 must not start.
    bad_failed = threading.Event()
    b1_done = threading.Event()
    flow = UnorderedFlow("u").add(
        make("bad", fail=OSError("bad")),
        LinearFlow("B").add(make("b1", on_execute=waits_for(bad_failed)), make("b2")),
        make("slow", on_execute=waits_for(b1_done)),
    )
    engine = tideflow.load(flow, engine="parallel", max_workers=4)
    set_when_recorded(engine, "bad", "FAILURE", bad_failed)
    set_when_recorded(engine, "b1", "SUCCESS", b1_done)
    seen = atom_log(engine)

    with pytest.raises(OSError, match="bad"):
        engine.run()

    assert sorted(journal.executed()) == ["b1", "bad", "slow"]
    assert started_after(seen, "FAILURE", "bad", "RUNNING") == []
    assert sorted(journal.reverted()) == ["b1", "bad", "slow"]
    assert states(engine, ["bad", "b1", "b2", "slow"]) == {
        "bad": "REVERTED",
        "b1": "REVERTED",
        "b2": "PENDING",
        "slow": "REVERTED",
    }
    assert engine.storage.get_flow_state() == "REVERTED"


def test_parallel_successors_of_what_finished_with_the_failure_never_start(make, journal, states):
    # bad fails once b1 has started; b1 and c1 finish only once the engine has recorded
    # that failure, so b2 (after b1) and c2, c3 (after c1) become ready too late to start
    b1_started = threading.Event()
    bad_failed = threading.Event()

    def start_b1(task):
        b1_started.set()
        assert bad_failed.wait(WAIT)

    flow = UnorderedFlow("u").add(
        make("bad", fail=OSError("bad"), on_execute=waits_for(b1_started)),
        LinearFlow("B").add(make("b1", on_execute=start_b1), make("b2")),
        LinearFlow("C").add(make("c1", on_execute=waits_for(bad_failed)), make("c2"), make("c3")),
    )
    engine = tideflow.load(flow, engine="parallel", max_workers=4)
    set_when_recorded(engine, "bad", "FAILURE", bad_failed)
    seen = atom_log(engine)
    with pytest.raises(OSError, match="bad"):
        engine.run()
    assert started_after(seen, "FAILURE", "bad", "RUNNING") == []
    assert sorted(journal.executed()) == ["b1", "bad", "c1"]
    assert sorted(journal.reverted()) == ["b1", "bad", "c1"]
    assert states(engine, ["b2", "c2", "c3"]) == dict.fromkeys(["b2", "c2", "c3"], "PENDING")


@pytest.mark.parametrize("engine_kind", ["serial", "parallel"])
def test_independent_branches_stop_at_the_failure(engine_kind, make, journal, states):
    # the first round runs bad, b1 and c1; b2 and c2 become ready only with or after the
    # failure, and never run (parallel: b1 and c1 finish once bad's failure is recorded)
    bad_failed = threading.Event()

    def hold(task):
        if engine_kind == "parallel":
            assert bad_failed.wait(WAIT)

    flow = UnorderedFlow("u").add(
        make("bad", fail=OSError("bad")),
        LinearFlow("B").add(make("b1", on_execute=hold), make("b2")),
        LinearFlow("C").add(make("c1", on_execute=hold), make("c2")),
    )
    workers = 4 if engine_kind == "parallel" else None
    engine = tideflow.load(flow, engine=engine_kind, max_workers=workers)
    set_when_recorded(engine, "bad", "FAILURE", bad_failed)
    seen = atom_log(engine)
    with pytest.raises(OSError, match="bad"):
        engine.run()
    assert sorted(journal.executed()) == ["b1", "bad", "c1"]
    assert started_after(seen, "FAILURE", "bad", "RUNNING") == []
    assert sorted(journal.reverted()) == ["b1", "bad", "c1"]
    assert states(engine, ["b2", "c2"]) == {"b2": "PENDING", "c2": "PENDING"}


def test_serial_linear_failure_stops_the_chain(make, journal, states):
    flow = UnorderedFlow("u").add(
        LinearFlow("A").add(make("a1"), make("bad", fail=OSError("bad")), make("a3")),
        LinearFlow("B").add(make("b1"), make("b2"), make("b3"), make("b4")),
    )
    engine = tideflow.load(flow, engine="serial")
    seen = atom_log(engine)
    with pytest.raises(OSError, match="bad"):
        engine.run()
    # round 1: a1, b1; round 2: bad, b2; the failure is seen at the end of round 2
    assert sorted(journal.executed()) == ["a1", "b1", "b2", "bad"]
    assert started_after(seen, "FAILURE", "bad", "RUNNING") == []
    assert states(engine, ["a3", "b3", "b4"]) == dict.fromkeys(["a3", "b3", "b4"], "PENDING")
