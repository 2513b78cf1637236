"""Typed events are plain records that know nothing of the engine; TaskFlow's details are
built from them beside the notifiers; the Stopwatch turns them into durations."""

from __future__ import annotations

import ast
from pathlib import Path

import tideflow.events as events_module
from tideflow import AtomEvent, Failure, FlowEvent
from tideflow._notifier import atom_details, flow_details
from tideflow.listeners.timing import Stopwatch, Timing
from tideflow.states import AtomState, FlowState


def atom(state, old, at=0.0, kind="task", **more):
    return AtomEvent(
        "f", "run-1", "a", "atom-1", kind, AtomState(state), AtomState(old), at, **more
    )


def flow(state, old, at=0.0):
    return FlowEvent("f", "run-1", FlowState(state), FlowState(old), at)


def test_events_module_imports_nothing_of_the_engine():
    tree = ast.parse(Path(events_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert imported <= {"__future__", "typing", "tideflow.failure", "tideflow.states"}
    assert not hasattr(FlowEvent, "details")
    assert not hasattr(AtomEvent, "details")


def test_events_are_immutable_records_with_a_run_id():
    event = atom("RUNNING", "PENDING", at=1.5)
    assert event.run_id == "run-1"
    assert flow("RUNNING", "PENDING").run_id == "run-1"
    assert (event.attempt, event.delay, event.result, event.failure) == (1, None, None, None)
    try:
        event.state = AtomState.SUCCESS  # type: ignore[misc]
    except AttributeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("events must be immutable")


def test_flow_details_are_taskflows():
    engine = object()
    assert flow_details(flow("RUNNING", "PENDING"), engine) == {
        "engine": engine,
        "flow_name": "f",
        "flow_uuid": "run-1",
        "old_state": "PENDING",
    }
    assert list(flow_details(flow("SUCCESS", "RUNNING"), engine)) == [
        "engine",
        "flow_name",
        "flow_uuid",
        "old_state",
    ]


def test_atom_details_by_kind_and_state():
    assert atom_details(atom("RUNNING", "PENDING")) == {
        "task_name": "a",
        "task_uuid": "atom-1",
        "old_state": "PENDING",
    }
    assert atom_details(atom("SUCCESS", "RUNNING", result=3)) == {
        "task_name": "a",
        "task_uuid": "atom-1",
        "old_state": "RUNNING",
        "result": 3,
    }
    failure = Failure.from_exception(ValueError("no"))
    details = atom_details(atom("FAILURE", "RUNNING", failure=failure))
    assert details["result"] is failure
    retrying = atom_details(atom("RETRYING", "SUCCESS", kind="retry", attempt=2, delay=0.5))
    assert retrying == {
        "retry_name": "a",
        "retry_uuid": "atom-1",
        "old_state": "SUCCESS",
        "attempt": 2,
        "delay": 0.5,
    }
    # without a back-off, a controller's details are TaskFlow's keys alone
    assert "attempt" not in atom_details(atom("RETRYING", "SUCCESS", kind="retry", attempt=2))


def test_stopwatch_times_execute_revert_and_run_from_event_times():
    watch = Stopwatch()
    assert watch.observe(flow("RUNNING", "PENDING", at=10.0)) is None
    assert watch.observe(atom("RUNNING", "PENDING", at=10.5)) is None
    assert watch.observe(atom("FAILURE", "RUNNING", at=11.0)) == Timing(
        "a", "execute", 10.5, 0.5, "FAILURE", 1
    )
    assert watch.observe(atom("REVERTING", "FAILURE", at=11.0)) is None
    assert watch.observe(atom("REVERTED", "REVERTING", at=11.25)) == Timing(
        "a", "revert", 11.0, 0.25, "REVERTED", 1
    )
    assert watch.observe(flow("REVERTED", "RUNNING", at=12.0)) == Timing(
        "f", "run", 10.0, 2.0, "REVERTED", 1
    )


def test_stopwatch_forgets_an_atom_sent_back_to_pending_and_ends_without_a_start():
    watch = Stopwatch()
    watch.observe(atom("RUNNING", "PENDING", at=1.0))
    watch.observe(atom("PENDING", "RUNNING", at=2.0))
    assert watch.observe(atom("SUCCESS", "RUNNING", at=3.0)) is None
    # a run's end seen without its start (a listener registered mid-run): no timing
    assert watch.observe(flow("SUCCESS", "RUNNING", at=4.0)) is None
    # an attempt number is carried into the timing
    watch.observe(atom("RUNNING", "PENDING", at=5.0, attempt=3))
    assert watch.observe(atom("SUCCESS", "RUNNING", at=6.0, attempt=3)).attempt == 3


def test_importing_tideflow_and_its_listeners_never_imports_opentelemetry():
    import subprocess
    import sys

    code = (
        "import sys, tideflow, tideflow.listeners; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
