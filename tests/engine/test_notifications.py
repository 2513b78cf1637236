"""Exact flow and atom notification sequences (TaskFlow 6.5, notes §1 and §5)."""

from __future__ import annotations

import logging

import pytest

import tideflow
from tideflow import LinearFlow, UnorderedFlow

FLOW_KEYS = {"engine", "flow_name", "flow_uuid", "old_state"}
ATOM_KEYS = {"task_name", "task_uuid", "old_state"}
RESULT_STATES = {"SUCCESS", "FAILURE", "REVERTED", "REVERT_FAILURE"}


def check_details(engine, events):
    """Every event carries exactly the keys TaskFlow gives, with plain str states."""
    for kind, state, details in events:
        assert type(state) is str
        assert type(details["old_state"]) is str
        if kind == "flow":
            assert set(details) == FLOW_KEYS, (state, details)
            assert details["engine"] is engine
            assert details["flow_name"] == engine.storage.flow_name
            assert details["flow_uuid"] == engine.storage.flow_uuid
            assert isinstance(details["flow_uuid"], str)
        else:
            expected = ATOM_KEYS | ({"result"} if state in RESULT_STATES else set())
            assert set(details) == expected, (state, details)
            assert details["task_uuid"] == engine.storage.get_atom_uuid(details["task_name"])
            assert isinstance(details["task_uuid"], str)


def results_of(notes, state):
    """``{atom: result}`` of the atom notifications for ``state``."""
    return {
        d["task_name"]: d["result"] for kind, s, d in notes.events if kind == "atom" and s == state
    }


def test_two_task_linear_success(load, make, watch):
    flow = LinearFlow("f").add(
        make("t1", value=1, provides="x"),
        make("t2", requires=["x"], compute=lambda x: x + 1),
    )
    engine = load(flow)
    notes = watch(engine)
    assert engine.run() is None
    assert notes.compact() == [
        ("FLOW", "PENDING", "RUNNING"),
        ("t1", "PENDING", "RUNNING"),
        ("t1", "RUNNING", "SUCCESS"),
        ("t2", "PENDING", "RUNNING"),
        ("t2", "RUNNING", "SUCCESS"),
        ("FLOW", "RUNNING", "SUCCESS"),
    ]
    check_details(engine, notes.events)
    assert results_of(notes, "SUCCESS") == {"t1": 1, "t2": 2}
    assert engine.storage.get_flow_state() == "SUCCESS"


FAILED_RUN = [
    ("FLOW", "PENDING", "RUNNING"),
    ("a", "PENDING", "RUNNING"),
    ("a", "RUNNING", "SUCCESS"),
    ("b", "PENDING", "RUNNING"),
    ("b", "RUNNING", "SUCCESS"),
    ("c", "PENDING", "RUNNING"),
    ("c", "RUNNING", "FAILURE"),
    ("c", "FAILURE", "REVERTING"),
    ("c", "REVERTING", "REVERTED"),
    ("b", "SUCCESS", "REVERTING"),
    ("b", "REVERTING", "REVERTED"),
    ("a", "SUCCESS", "REVERTING"),
    ("a", "REVERTING", "REVERTED"),
    ("FLOW", "RUNNING", "REVERTED"),
]


def _abc(make):
    return LinearFlow("f").add(
        make("a", revert_value="A-revert-ret"),
        make("b"),
        make("c", fail=OSError("boom")),
    )


@pytest.mark.local_only(
    "asserts the revert was given the very Failure object the engine holds (a worker gets a copy)"
)
def test_failure_reverts_failed_task_first_then_earlier_ones(load, make, watch, journal):
    engine = load(_abc(make))
    notes = watch(engine)
    with pytest.raises(OSError, match="boom") as raised:
        engine.run()
    assert type(raised.value) is OSError
    assert notes.compact() == FAILED_RUN
    check_details(engine, notes.events)
    failure = results_of(notes, "FAILURE")["c"]
    assert isinstance(failure, tideflow.Failure)
    assert failure.check(OSError) is OSError
    assert str(failure) == "Failure: OSError: boom"
    # c's revert receives the very Failure the FAILURE notification carried
    c_revert = journal.args_of("c", "revert")
    assert c_revert["result"] is failure
    assert set(c_revert["flow_failures"]) == {"c"}
    assert c_revert["flow_failures"]["c"] is failure
    assert journal.args_of("b", "revert")["result"] == "b"
    # REVERTED carries what revert() returned
    assert results_of(notes, "REVERTED") == {"a": "A-revert-ret", "b": None, "c": None}
    assert journal.calls() == [
        ("execute", "a"),
        ("execute", "b"),
        ("execute", "c"),
        ("revert", "c"),
        ("revert", "b"),
        ("revert", "a"),
    ]
    assert engine.storage.get_flow_state() == "REVERTED"


def test_rerun_after_revert_resets_every_atom_then_runs_again(load, make, watch, journal):
    engine = load(_abc(make))
    notes = watch(engine)
    with pytest.raises(OSError, match=r"^boom$"):
        engine.run()
    first_failure = results_of(notes, "FAILURE")["c"]
    uuids = {name: engine.storage.get_atom_uuid(name) for name in "abc"}
    flow_uuid = engine.storage.flow_uuid
    notes.clear()
    with pytest.raises(OSError, match="boom"):
        engine.run()
    assert notes.compact() == [
        ("a", "REVERTED", "PENDING"),
        ("b", "REVERTED", "PENDING"),
        ("c", "REVERTED", "PENDING"),
        ("FLOW", "REVERTED", "PENDING"),
        *FAILED_RUN,
    ]
    check_details(engine, notes.events)
    assert {name: engine.storage.get_atom_uuid(name) for name in "abc"} == uuids
    assert engine.storage.flow_uuid == flow_uuid
    assert results_of(notes, "FAILURE")["c"] is not first_failure
    assert journal.executed() == ["a", "b", "c", "a", "b", "c"]
    assert journal.reverted() == ["c", "b", "a", "c", "b", "a"]
    assert engine.storage.get_flow_state() == "REVERTED"


def test_revert_that_raises_stops_reverting_and_fails_the_flow(load, make, watch, journal):
    flow = LinearFlow("f").add(
        make("a"),
        make("b", value=1, revert_fail=ValueError("revert-boom")),
        make("c", fail=OSError("boom")),
    )
    engine = load(flow)
    notes = watch(engine)
    with pytest.raises(ValueError, match="revert-boom") as raised:
        engine.run()
    assert type(raised.value) is ValueError
    assert notes.compact() == [
        ("FLOW", "PENDING", "RUNNING"),
        ("a", "PENDING", "RUNNING"),
        ("a", "RUNNING", "SUCCESS"),
        ("b", "PENDING", "RUNNING"),
        ("b", "RUNNING", "SUCCESS"),
        ("c", "PENDING", "RUNNING"),
        ("c", "RUNNING", "FAILURE"),
        ("c", "FAILURE", "REVERTING"),
        ("c", "REVERTING", "REVERTED"),
        ("b", "SUCCESS", "REVERTING"),
        ("b", "REVERTING", "REVERT_FAILURE"),
        ("FLOW", "RUNNING", "FAILURE"),
    ]
    check_details(engine, notes.events)
    revert_failure = results_of(notes, "REVERT_FAILURE")["b"]
    assert isinstance(revert_failure, tideflow.Failure)
    assert revert_failure.check(ValueError) is ValueError
    assert journal.reverted() == ["c", "b"]  # a's revert never runs
    storage = engine.storage
    assert storage.get_flow_state() == "FAILURE"
    assert {n: str(storage.get_atom_state(n)) for n in "abc"} == {
        "a": "SUCCESS",
        "b": "REVERT_FAILURE",
        "c": "REVERTED",
    }
    assert storage.get_revert_failures().keys() == {"b"}
    assert storage.get_revert_result("b") is revert_failure


def test_listener_that_raises_is_logged_and_the_run_goes_on(load, make, caplog):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    seen = []

    def broken(state, details):
        raise RuntimeError("listener broke")

    def good(state, details):
        seen.append(state)

    engine.notifier.register("*", broken)
    engine.atom_notifier.register("*", broken)
    engine.atom_notifier.register("*", good)
    with caplog.at_level(logging.WARNING):
        engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert seen == ["RUNNING", "SUCCESS", "RUNNING", "SUCCESS"]
    assert any("listener broke" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_callback_gets_details_by_keyword(load, make):
    engine = load(LinearFlow("f").add(make("a")))
    engine.notifier.register("*", lambda state, *, details: None)
    got = []
    engine.atom_notifier.register("SUCCESS", lambda state, *, details: got.append(details))
    engine.run()
    assert [d["task_name"] for d in got] == ["a"]


def test_specific_state_listener_hears_only_that_state(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    got = []
    engine.atom_notifier.register("RUNNING", lambda state, details: got.append((state, details)))
    engine.run()
    assert [(s, d["task_name"]) for s, d in got] == [("RUNNING", "a"), ("RUNNING", "b")]
    assert all("result" not in d for _, d in got)


def test_each_callback_gets_its_own_copy_of_the_details(load, make):
    engine = load(LinearFlow("f").add(make("a")))
    seen = []

    def vandal(state, details):
        details["task_name"] = "vandalised"
        details.pop("old_state", None)

    def reader(state, details):
        seen.append(dict(details))

    def flow_vandal(state, details):
        details.clear()

    def flow_reader(state, details):
        seen.append(dict(details))

    engine.atom_notifier.register("*", vandal)
    engine.atom_notifier.register("*", reader)
    engine.notifier.register("*", flow_vandal)
    engine.notifier.register("*", flow_reader)
    engine.run()
    assert [d.get("task_name", "FLOW") for d in seen] == ["FLOW", "a", "a", "FLOW"]
    assert all("old_state" in d for d in seen)


def test_serial_unordered_flow_runs_its_ready_atoms_as_one_batch(make, journal):
    # TaskFlow's serial engine (notes §1e): RUNNING + execute for each ready atom, then the
    # completions together; on failure every sibling still runs, then REVERTING + revert
    # for each, then the REVERTED notifications together
    flow = UnorderedFlow("u").add(make("a", fail=OSError("boom")), make("b"), make("c"))
    engine = tideflow.load(flow, engine="serial")
    engine.atom_notifier.register(
        "*", lambda state, details: journal.add(state, details["task_name"], {})
    )
    with pytest.raises(OSError, match=r"^boom$"):
        engine.run()
    calls = journal.calls()
    assert len(calls) == 18
    for i in range(0, 6, 2):
        assert calls[i][0] == "RUNNING"
        assert calls[i + 1] == ("execute", calls[i][1])
    assert sorted(what for what, _ in calls[6:9]) == ["FAILURE", "SUCCESS", "SUCCESS"]
    for i in range(9, 15, 2):
        assert calls[i][0] == "REVERTING"
        assert calls[i + 1] == ("revert", calls[i][1])
    assert [what for what, _ in calls[15:]] == ["REVERTED"] * 3
    assert {name for _, name in calls[15:]} == {"a", "b", "c"}
