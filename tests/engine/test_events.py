"""Typed events from Engine.subscribe(): every state change, as records, on any engine."""

import logging

import pytest

from tideflow import AtomEvent, Failure, FlowEvent, LinearFlow, Task
from tideflow._notifier import atom_details


class Ok(Task):
    def execute(self):
        return f"{self.name}-result"


class Boom(Task):
    def execute(self):
        raise OSError("boom")


def test_a_successful_run_as_typed_events(load):
    engine = load(LinearFlow("f").add(Ok("a"), Ok("b")))
    events = []
    engine.subscribe(events.append)
    engine.run()
    assert [type(e).__name__ for e in events] == [
        "FlowEvent",
        "AtomEvent",
        "AtomEvent",
        "AtomEvent",
        "AtomEvent",
        "FlowEvent",
    ]
    flow_uuid = engine.storage.flow_uuid
    assert all(e.flow_name == "f" and e.flow_uuid == flow_uuid for e in events)
    assert [(e.state, e.old_state) for e in events if isinstance(e, FlowEvent)] == [
        ("RUNNING", "PENDING"),
        ("SUCCESS", "RUNNING"),
    ]
    atoms = [e for e in events if isinstance(e, AtomEvent)]
    assert [(e.atom_name, e.state, e.result) for e in atoms] == [
        ("a", "RUNNING", None),
        ("a", "SUCCESS", "a-result"),
        ("b", "RUNNING", None),
        ("b", "SUCCESS", "b-result"),
    ]
    assert {e.kind for e in atoms} == {"task"}
    assert atoms[0].atom_uuid == engine.storage.get_atom_uuid("a")
    stamps = [e.at for e in events]
    assert stamps == sorted(stamps)


def test_failures_travel_as_failures_and_details_match_taskflow(load):
    engine = load(LinearFlow("f").add(Ok("a"), Boom("c")))
    events = []
    notified = []
    engine.subscribe(events.append)
    engine.atom_notifier.register("*", lambda state, details: notified.append((state, details)))
    with pytest.raises(OSError, match="boom"):
        engine.run()
    failed = next(e for e in events if isinstance(e, AtomEvent) and e.state == "FAILURE")
    assert isinstance(failed.failure, Failure)
    assert failed.result is None
    assert failed.failure.check(OSError)
    atom_events = [e for e in events if isinstance(e, AtomEvent)]
    assert [(e.state, atom_details(e)) for e in atom_events] == notified
    assert events[-1].state == "REVERTED"


def test_unsubscribe_and_a_raising_subscriber(load, caplog):
    engine = load(LinearFlow("f").add(Ok("a")))
    seen = []

    def bad(event):
        raise RuntimeError("subscriber bug")

    engine.subscribe(bad)
    stop = engine.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="tideflow.engine"):
        engine.run()
    assert len(seen) == 4
    assert "subscriber bug" in caplog.text
    stop()
    stop()  # idempotent
    engine.reset()
    engine.run()
    assert len(seen) == 4


def test_subscribe_takes_a_callable(load):
    engine = load(LinearFlow("f"))
    with pytest.raises(TypeError, match="takes a callable"):
        engine.subscribe("nope")  # type: ignore[arg-type]
