"""OpenTelemetryListener: a run as OpenTelemetry spans (extra ``tideflow[otel]``).

One span per run of a flow (``run <flow>``), and under it one span per atom
execute (``execute <atom>``) and per revert (``revert <atom>``), each timed by the
events' own timestamps. A retried atom runs again in a new span: every attempt
is one span with its ``tideflow.attempt``. A failure sets the span's status to
ERROR and adds an ``exception`` event (OpenTelemetry's semantic conventions:
``exception.type``, ``exception.message``, ``exception.stacktrace``); a run that
failed or was reverted ends ERROR too, naming the failure that ended it (the
first since the last retry). A retry
controller's decision to try again and a decider's IGNORE are events on the run
span. A suspended run's span ends with ``tideflow.state = 'SUSPENDED'``; a
resumed run starts a new one (``tideflow.resumed = True``) with the same
``tideflow.run_id``.

The run span is a child of whatever span is current when the flow starts running
(the caller's, usually), so a run drops into an application's own trace.

This is the only module of tideflow that imports :mod:`opentelemetry`; import it
explicitly (``from tideflow.listeners.otel import OpenTelemetryListener``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider

from tideflow.events import AtomEvent, FlowEvent
from tideflow.failure import Failure
from tideflow.listeners.base import EventListener, failure_line
from tideflow.states import AtomState, FlowState

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["OpenTelemetryListener"]

#: The instrumentation scope name spans are created under.
TRACER_NAME: Final = "tideflow"

_STARTS: Final = {AtomState.RUNNING: "execute", AtomState.REVERTING: "revert"}
_OK: Final = frozenset({AtomState.SUCCESS, AtomState.REVERTED})
_FAILED: Final = frozenset({AtomState.FAILURE, AtomState.REVERT_FAILURE})
_RUN_ENDS: Final = frozenset(
    {FlowState.SUCCESS, FlowState.FAILURE, FlowState.REVERTED, FlowState.SUSPENDED}
)


def _ns(at: float) -> int:
    """An event's ``time.time()`` as OpenTelemetry's nanoseconds."""
    return int(at * 1e9)


def _record_failure(span: Span, failure: Failure, at: float) -> None:
    """Mark ``span`` failed by ``failure``: status ERROR and an ``exception`` event."""
    name = failure.exc_type_names[0] if failure.exc_type_names else "Exception"
    span.add_event(
        "exception",
        {
            "exception.type": name,
            "exception.message": failure.exception_str,
            "exception.stacktrace": failure.traceback_str,
        },
        timestamp=_ns(at),
    )
    span.set_status(Status(StatusCode.ERROR, failure_line(failure)))


class OpenTelemetryListener(EventListener):
    """Emit a span per flow run and per atom execute and revert.

    ``tracer_provider`` defaults to the global one (``trace.get_tracer_provider()``);
    pass ``tracer=`` to use a tracer of your own. Span attributes:
    ``tideflow.run_id``, ``tideflow.flow`` on every span; ``tideflow.atom``,
    ``tideflow.atom.kind`` (``task``/``retry``), ``tideflow.attempt`` and
    ``tideflow.state`` (the state it ended in) on atom spans; ``tideflow.state``
    and ``tideflow.resumed`` on the run span.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        tracer_provider: TracerProvider | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        super().__init__(engine)
        if tracer is None:
            tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._tracer = tracer
        self._run: Span | None = None
        self._atoms: dict[str, Span] = {}
        self._first_failure: Failure | None = None

    def on_flow(self, event: FlowEvent) -> None:
        if event.state is FlowState.RUNNING:
            if self._run is None:
                self._start_run(event)
        elif event.state in _RUN_ENDS:
            self._end_run(event)

    def on_atom(self, event: AtomEvent) -> None:
        state = event.state
        phase = _STARTS.get(state)
        if phase is not None:
            self._start_atom(event, phase)
            return
        if state in _OK or state in _FAILED:
            self._end_atom(event)
            return
        run = self._run
        if run is None:
            return
        if state is AtomState.RETRYING:
            # what failed before is being dealt with: a later failure is the run's reason
            self._first_failure = None
            attributes: dict[str, str | int | float] = {
                "tideflow.atom": event.atom_name,
                "tideflow.attempt": event.attempt,
            }
            if event.delay is not None:
                attributes["tideflow.delay"] = event.delay
            run.add_event("retry", attributes, timestamp=_ns(event.at))
        elif state is AtomState.IGNORE:
            run.add_event("ignored", {"tideflow.atom": event.atom_name}, timestamp=_ns(event.at))

    # -- runs -----------------------------------------------------------------------

    def _start_run(self, event: FlowEvent) -> None:
        self._first_failure = None
        # RUNNING from PENDING is a fresh run; from anything else, a resumed or rerun one
        resumed = event.old_state is not FlowState.PENDING
        self._run = self._tracer.start_span(
            f"run {event.flow_name}",
            start_time=_ns(event.at),
            attributes={
                "tideflow.run_id": event.flow_uuid,
                "tideflow.flow": event.flow_name,
                "tideflow.resumed": resumed,
            },
        )

    def _end_run(self, event: FlowEvent) -> None:
        run, self._run = self._run, None
        end = _ns(event.at)
        # atoms still open were caught by a suspension: their spans end with the run's
        for span in self._atoms.values():
            span.set_attribute("tideflow.state", "INTERRUPTED")
            span.end(end_time=end)
        self._atoms.clear()
        if run is None:
            return
        run.set_attribute("tideflow.state", event.state.value)
        if event.state is FlowState.SUCCESS:
            run.set_status(Status(StatusCode.OK))
        elif event.state is not FlowState.SUSPENDED:
            first = self._first_failure
            reason = failure_line(first) if first is not None else "the run failed"
            run.set_status(Status(StatusCode.ERROR, f"{event.state.value}: {reason}"))
        run.end(end_time=end)

    # -- atoms ----------------------------------------------------------------------

    def _start_atom(self, event: AtomEvent, phase: str) -> None:
        stale = self._atoms.pop(event.atom_name, None)
        if stale is not None:  # never expected: a start without an end before it
            stale.end(end_time=_ns(event.at))
        context = trace.set_span_in_context(self._run) if self._run is not None else None
        self._atoms[event.atom_name] = self._tracer.start_span(
            f"{phase} {event.atom_name}",
            context=context,
            start_time=_ns(event.at),
            attributes={
                "tideflow.run_id": event.flow_uuid,
                "tideflow.flow": event.flow_name,
                "tideflow.atom": event.atom_name,
                "tideflow.atom.kind": event.kind,
                "tideflow.attempt": event.attempt,
            },
        )

    def _end_atom(self, event: AtomEvent) -> None:
        span = self._atoms.pop(event.atom_name, None)
        if span is None:
            return
        span.set_attribute("tideflow.state", event.state.value)
        failure = event.failure
        if failure is not None:
            if self._first_failure is None:
                self._first_failure = failure
            _record_failure(span, failure, event.at)
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=_ns(event.at))

    def deregister(self) -> None:
        """Stop listening; spans still open (a run never finished) are ended now."""
        super().deregister()
        for span in self._atoms.values():
            span.end()
        self._atoms.clear()
        run, self._run = self._run, None
        if run is not None:
            run.end()
