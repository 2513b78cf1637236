"""tideflow's typed listeners, on every engine kind: console, structured logging, stopwatch,
recording, progress and OpenTelemetry spans (a run with a failure, a revert and a retry)."""

from __future__ import annotations

import io
import itertools
import logging
import re
import threading

import pytest

import tideflow
from tideflow import LinearFlow, Task, UnorderedFlow
from tideflow.listeners import (
    ConsoleListener,
    EventListener,
    Progress,
    ProgressListener,
    RecordingListener,
    StopwatchListener,
    StructuredLoggingListener,
)


class Step(Task):
    """Succeeds with its name; revert does nothing."""

    def execute(self):
        return f"{self.name} done"

    def revert(self, **kwargs):
        return None


class Fails(Task):
    def execute(self):
        raise RuntimeError(f"{self.name} broke")


class FailsOnce(Task):
    """Fails on the attempt its retry controller numbers 1, succeeds after (no shared state:
    the attempt comes from the store the controller's value is in)."""

    def execute(self, attempt):
        if attempt == 1:
            raise ValueError("first try fails")
        return attempt


class BadRevert(Step):
    def revert(self, **kwargs):
        raise OSError("cannot undo")


def saga() -> LinearFlow:
    """a; a flow under Times(3) whose task fails once and is retried; then a failing task."""
    guarded = LinearFlow("guarded", retry=tideflow.Times(3, name="again", provides="attempt"))
    guarded.add(FailsOnce("flaky"))
    return LinearFlow("saga").add(Step("a"), guarded, Fails("boom"))


def run_failing(engine: tideflow.Engine) -> None:
    with pytest.raises(RuntimeError, match="boom broke"):
        engine.run()


# -- EventListener -------------------------------------------------------------------------


def test_event_listener_hooks_and_registration(load):
    heard: list[str] = []

    class Names(EventListener):
        def on_flow(self, event):
            heard.append(f"flow {event.state}")

        def on_atom(self, event):
            heard.append(f"{event.atom_name} {event.state}")

    engine = load(LinearFlow("f").add(Step("a")))
    listener = Names(engine)
    assert "not registered" in repr(listener)
    with listener:
        listener.register()  # idempotent: still one subscription
        engine.run()
    assert heard == [
        "flow RUNNING",
        "a RUNNING",
        "a SUCCESS",
        "flow SUCCESS",
    ]
    listener.deregister()  # idempotent
    engine.reset()
    engine.run()
    assert len(heard) == 4  # nothing heard once deregistered


# -- ConsoleListener ----------------------------------------------------------------------


def test_console_listener_prints_one_line_per_change(load):
    engine = load(saga())
    out = io.StringIO()
    with ConsoleListener(engine, stream=out, results=True):
        run_failing(engine)
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"run 'saga' \([0-9a-f-]{36}\) RUNNING", lines[0])
    assert re.fullmatch(r"  a SUCCESS in \d+\.\d{3}s -> 'a done'", lines[2])
    assert re.fullmatch(
        r"  flaky FAILURE in \d+\.\d{3}s: ValueError: first try fails",
        lines[lines.index(next(line for line in lines if line.startswith("  flaky FAILURE")))],
    )
    assert "  again RETRYING: attempt 2" in lines
    assert any(re.fullmatch(r"  flaky SUCCESS \(attempt 2\) in \d+\.\d{3}s -> 2", x) for x in lines)
    assert any(
        re.fullmatch(r"  boom FAILURE in \d+\.\d{3}s: RuntimeError: boom broke", x) for x in lines
    )
    assert re.fullmatch(r"run 'saga' REVERTED in \d+\.\d{3}s", lines[-1])


def test_console_listener_prints_tracebacks_when_asked(load):
    engine = load(LinearFlow("f").add(Fails("boom")))
    out = io.StringIO()
    with ConsoleListener(engine, stream=out, tracebacks=True):
        run_failing(engine)
    text = out.getvalue()
    assert "    Traceback (most recent call last):" in text
    assert "    RuntimeError: boom broke" in text


# -- StructuredLoggingListener ------------------------------------------------------------


def test_structured_logging_listener_puts_the_facts_in_extra_fields(load, caplog):
    engine = load(saga())
    with caplog.at_level(logging.INFO, logger="tideflow.events"), StructuredLoggingListener(engine):
        run_failing(engine)
    records = [r for r in caplog.records if r.name == "tideflow.events"]
    run_id = engine.storage.flow_uuid
    assert {r.run_id for r in records} == {run_id}
    assert {r.flow for r in records} == {"saga"}

    first = records[0]
    assert (first.kind, first.atom, first.old_state, first.state, first.duration) == (
        "flow",
        None,
        "PENDING",
        "RUNNING",
        None,
    )
    succeeded = next(r for r in records if r.atom == "flaky" and r.state == "SUCCESS")
    assert succeeded.attempt == 2
    assert succeeded.kind == "task"
    assert succeeded.duration >= 0
    assert succeeded.levelno == logging.INFO

    failed = next(r for r in records if r.atom == "boom" and r.state == "FAILURE")
    assert failed.levelno == logging.WARNING
    assert failed.error == "RuntimeError: boom broke"
    assert failed.exc_info is not None or "RuntimeError: boom broke" in failed.getMessage()

    retrying = next(r for r in records if r.state == "RETRYING")
    assert (retrying.atom, retrying.kind, retrying.attempt) == ("again", "retry", 2)

    last = records[-1]
    assert (last.kind, last.state, last.levelno) == ("flow", "REVERTED", logging.WARNING)
    assert last.duration > 0


def test_structured_logging_listener_takes_a_logger_and_levels(load, caplog):
    engine = load(LinearFlow("f").add(Step("a")))
    mine = logging.getLogger("my.app.flows")
    with (
        caplog.at_level(logging.DEBUG, logger="my.app.flows"),
        StructuredLoggingListener(engine, logger=mine, level=logging.DEBUG),
    ):
        engine.run()
    records = [r for r in caplog.records if r.name == "my.app.flows"]
    assert [r.levelno for r in records] == [logging.DEBUG] * 4
    assert records[2].getMessage() == "task 'a' RUNNING -> SUCCESS (attempt 1)"


# -- StopwatchListener --------------------------------------------------------------------


def test_stopwatch_listener_times_every_attempt_and_revert(load):
    engine = load(saga())
    with StopwatchListener(engine) as stopwatch:
        run_failing(engine)
    phases = [(t.name, t.phase, t.state, t.attempt) for t in stopwatch.timings]
    assert ("flaky", "execute", "FAILURE", 1) in phases
    assert ("flaky", "revert", "REVERTED", 1) in phases
    assert ("flaky", "execute", "SUCCESS", 2) in phases
    assert ("flaky", "revert", "REVERTED", 2) in phases
    assert ("boom", "execute", "FAILURE", 1) in phases
    assert phases[-1] == ("saga", "run", "REVERTED", 1)
    assert all(t.duration >= 0 for t in stopwatch.timings)
    assert set(stopwatch.durations) == {"a", "again", "flaky", "boom"}
    assert stopwatch.run_duration is not None
    assert stopwatch.run_duration >= max(stopwatch.durations.values())


# -- RecordingListener --------------------------------------------------------------------


def test_recording_listener_keeps_the_events(load):
    engine = load(saga())
    with RecordingListener(engine) as recorder:
        run_failing(engine)
    assert recorder.states() == ["RUNNING", "REVERTED"]
    assert recorder.states("flaky") == [
        "RUNNING",
        "FAILURE",
        "REVERTING",
        "REVERTED",
        "PENDING",
        "RUNNING",
        "SUCCESS",
        "REVERTING",
        "REVERTED",
    ]
    failures = recorder.failures()
    assert set(failures) == {"flaky", "boom"}
    assert failures["boom"].check(RuntimeError)


# -- ProgressListener ---------------------------------------------------------------------


def test_progress_counts_done_of_total_and_calls_on_change(load):
    seen: list[Progress] = []
    engine = load(UnorderedFlow("many").add(*(Step(f"s{i}") for i in range(5))))
    progress = ProgressListener(engine, on_change=seen.append)
    assert (progress.total, progress.done, progress.running, progress.state) == (5, 0, (), None)
    with progress:
        engine.run()
    assert (progress.done, progress.total, progress.running, progress.state) == (
        5,
        5,
        (),
        "SUCCESS",
    )
    assert seen[0].state == "RUNNING"
    assert seen[0].done == 0
    assert [p.done for p in seen] == sorted(p.done for p in seen)  # only ever goes up here
    assert any(p.running for p in seen)
    assert seen[-1].fraction == 1.0
    assert seen[-1].elapsed > 0
    snap = progress.snapshot()
    assert (snap.done, snap.total, snap.failed, snap.reverted) == (5, 5, 0, 0)


def test_progress_through_a_retry_and_a_revert(load):
    seen: list[Progress] = []
    engine = load(saga())
    with ProgressListener(engine, on_change=seen.append) as progress:
        run_failing(engine)
    assert progress.total == 4  # a, the controller, flaky, boom
    # the retried attempt leaves `done` when flaky goes back to PENDING
    dips = [b.done < a.done for a, b in itertools.pairwise(seen)]
    assert any(dips)
    assert max(p.failed for p in seen) >= 1
    end = progress.snapshot()
    # every atom reverted at the end
    assert (end.done, end.reverted, end.failed, end.state) == (4, 4, 0, "REVERTED")


def test_progress_running_names_the_atoms_in_flight(engine_kind):
    if engine_kind == "serial":
        pytest.skip("two atoms in flight at once need a parallel engine")
    if engine_kind.kind in ("processes", "dask", "asyncio"):
        pytest.skip("the gate is a threading object: the tasks must run in threads of this process")
    gate = threading.Event()
    both = threading.Barrier(3, timeout=10)

    class Held(Task):
        def execute(self):
            both.wait()
            gate.wait(10)

    running_seen: list[tuple[str, ...]] = []
    engine = tideflow.load(
        UnorderedFlow("pair").add(Held("x"), Held("y")), engine="parallel", max_workers=2
    )
    progress = ProgressListener(engine)
    with progress:
        worker = threading.Thread(target=engine.run)
        worker.start()
        both.wait()  # both tasks are inside execute
        # RUNNING events were delivered before the calls were handed out
        running_seen.append(progress.running)
        gate.set()
        worker.join(10)
    assert sorted(running_seen[0]) == ["x", "y"]
    assert progress.running == ()
    assert progress.done == 2


def test_progress_of_a_resumed_run_counts_what_the_record_shows_done(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    stop_after_first: list[tideflow.Engine] = []

    class Stop(Task):
        def execute(self):
            stop_after_first[0].suspend()

    flow = LinearFlow("f").add(Step("a"), Stop("b"), Step("c"))
    engine = tideflow.load(flow, backend=url)
    stop_after_first.append(engine)
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    run_id = engine.storage.flow_uuid

    again = tideflow.load(
        LinearFlow("f").add(Step("a"), Stop("b"), Step("c")),
        backend=url,
        flow_detail=engine.storage.flow_detail,
    )
    seen: list[Progress] = []
    with ProgressListener(again, on_change=seen.append) as progress:
        again.run()
    assert seen[0].done == 2  # a and b were recorded SUCCESS before the resume
    assert (progress.done, progress.total) == (3, 3)
    assert again.storage.flow_uuid == run_id


def test_a_raising_on_change_never_breaks_the_run(load, caplog):
    def broken(progress):
        raise ValueError("view crashed")

    engine = load(LinearFlow("f").add(Step("a")))
    with ProgressListener(engine, on_change=broken):
        engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert "view crashed" in caplog.text


# -- OpenTelemetryListener ----------------------------------------------------------------


@pytest.fixture
def spans_of():
    """``spans_of(engine_run)``: run it under an OpenTelemetryListener, return finished spans."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tideflow.listeners.otel import OpenTelemetryListener

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def run(engine, body):
        with OpenTelemetryListener(engine, tracer_provider=provider):
            body()
        return list(exporter.get_finished_spans())

    yield run
    provider.shutdown()


def test_otel_span_tree_of_a_run_with_a_failure_a_revert_and_a_retry(load, spans_of):
    from opentelemetry.trace import StatusCode

    engine = load(saga())
    spans = spans_of(engine, lambda: run_failing(engine))
    run_id = engine.storage.flow_uuid

    runs = [s for s in spans if s.name == "run saga"]
    assert len(runs) == 1
    run = runs[0]
    assert run.parent is None
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "REVERTED: RuntimeError: boom broke"
    assert dict(run.attributes) == {
        "tideflow.run_id": run_id,
        "tideflow.flow": "saga",
        "tideflow.resumed": False,
        "tideflow.state": "REVERTED",
    }
    retry_events = [e for e in run.events if e.name == "retry"]
    assert [dict(e.attributes) for e in retry_events] == [
        {"tideflow.atom": "again", "tideflow.attempt": 2}
    ]

    atoms = [s for s in spans if s is not run]
    # every atom span is a child of the run span, in the run's trace
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in atoms)
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}

    def one(name, attempt):
        (found,) = [
            s for s in atoms if s.name == name and s.attributes["tideflow.attempt"] == attempt
        ]
        return found

    first = one("execute flaky", 1)
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "ValueError: first try fails"
    (exc,) = first.events
    assert exc.name == "exception"
    assert exc.attributes["exception.type"] == "ValueError"
    assert exc.attributes["exception.message"] == "first try fails"
    assert "raise ValueError" in exc.attributes["exception.stacktrace"]
    assert first.attributes["tideflow.state"] == "FAILURE"

    second = one("execute flaky", 2)
    assert second.status.status_code is StatusCode.OK
    assert second.attributes["tideflow.state"] == "SUCCESS"
    assert first.end_time <= second.start_time  # the attempts follow each other

    assert one("revert flaky", 1).attributes["tideflow.state"] == "REVERTED"
    assert one("revert flaky", 2).status.status_code is StatusCode.OK

    boom = one("execute boom", 1)
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes["tideflow.atom.kind"] == "task"
    assert one("revert boom", 1).attributes["tideflow.state"] == "REVERTED"

    controller = one("execute again", 2)
    assert controller.attributes["tideflow.atom.kind"] == "retry"

    names = sorted(s.name for s in atoms)
    assert names == sorted(
        [
            "execute a",
            "revert a",
            "execute again",
            "execute again",
            "revert again",
            "execute flaky",
            "execute flaky",
            "revert flaky",
            "revert flaky",
            "execute boom",
            "revert boom",
        ]
    )
    for span in atoms:
        assert span.attributes["tideflow.run_id"] == run_id
        assert span.start_time <= span.end_time
        assert run.start_time <= span.start_time
        assert span.end_time <= run.end_time


def test_otel_run_span_is_a_child_of_the_callers_span(load, spans_of):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import StatusCode

    engine = load(LinearFlow("ok").add(Step("a")))
    outer_tracer = TracerProvider().get_tracer("app")

    def body():
        with outer_tracer.start_as_current_span("request") as outer:
            engine.run()
            body.outer = outer

    spans = spans_of(engine, body)
    run = next(s for s in spans if s.name == "run ok")
    assert run.parent.span_id == body.outer.get_span_context().span_id
    assert run.status.status_code is StatusCode.OK
    assert run.attributes["tideflow.state"] == "SUCCESS"


def test_otel_a_failed_revert_ends_the_run_failure(load, spans_of):
    from opentelemetry.trace import StatusCode

    engine = load(LinearFlow("f").add(BadRevert("undo"), Fails("boom")))

    def body():
        with pytest.raises(OSError, match="cannot undo"):  # a failed revert is raised first
            engine.run()

    spans = spans_of(engine, body)
    run = next(s for s in spans if s.name == "run f")
    assert run.attributes["tideflow.state"] == "FAILURE"
    assert run.status.status_code is StatusCode.ERROR
    revert = next(s for s in spans if s.name == "revert undo")
    assert revert.status.status_code is StatusCode.ERROR
    assert revert.attributes["tideflow.state"] == "REVERT_FAILURE"
    assert revert.events[0].attributes["exception.type"] == "OSError"
