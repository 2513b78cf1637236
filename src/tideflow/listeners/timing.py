"""Timing listeners: how long atoms and flows took, or when each state was entered.

:class:`StopwatchListener` (typed events) keeps each execute, revert and run
with its duration in memory; :class:`Stopwatch` is the small part that turns
events into durations, shared with the logging and printing listeners.
:class:`DurationListener` and :class:`EventTimeListener` are TaskFlow's: they
write into the run's record (``meta``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from tideflow.errors import NotFoundError
from tideflow.events import AtomEvent, Event, FlowEvent
from tideflow.listeners.base import FINISH_STATES, EventListener, Listener
from tideflow.states import AtomState, FlowState

if TYPE_CHECKING:
    from tideflow._engine import Engine
    from tideflow._storage import Storage

__all__ = [
    "FINISHED_STATES",
    "STARTING_STATES",
    "WATCH_STATES",
    "DurationListener",
    "EventTimeListener",
    "PrintingDurationListener",
    "Stopwatch",
    "StopwatchListener",
    "Timing",
    "TimingListener",
]

LOG = logging.getLogger("tideflow.listeners.timing")

#: States that start a timer (executing, or reverting).
STARTING_STATES: Final = frozenset({"RUNNING", "REVERTING"})
#: States that stop it and record the duration.
FINISHED_STATES: Final = frozenset(FINISH_STATES)
#: Every state a duration listener hears (PENDING forgets a timer: the run was reset).
WATCH_STATES: Final = STARTING_STATES | FINISHED_STATES | {"PENDING"}
#: A suspended flow stops its timer too: its record then says how long that run went on.
_FLOW_WATCH_STATES: Final = WATCH_STATES | {"SUSPENDED"}
_FLOW_FINISHED_STATES: Final = FINISHED_STATES | {"SUSPENDED"}

_FLOW: Final = "flow"
_TASK: Final = "task"
_RETRY: Final = "retry"


#: Atom states that start a phase: executing, reverting.
_ATOM_STARTS: Final = {AtomState.RUNNING: "execute", AtomState.REVERTING: "revert"}
#: Atom states that end the phase they name.
_ATOM_ENDS: Final = {
    AtomState.SUCCESS: "execute",
    AtomState.FAILURE: "execute",
    AtomState.REVERTED: "revert",
    AtomState.REVERT_FAILURE: "revert",
}
#: Flow states that end a run (for now: a suspended run may be resumed later).
_RUN_ENDS: Final = frozenset(
    {FlowState.SUCCESS, FlowState.FAILURE, FlowState.REVERTED, FlowState.SUSPENDED}
)


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed phase: an atom's execute or revert, or a run (``phase='run'``).

    ``started`` is ``time.time()`` at its start, ``duration`` in seconds, ``state``
    the state it ended in, ``attempt`` the atom's attempt (1 for a run).
    """

    name: str
    phase: str
    started: float
    duration: float
    state: str
    attempt: int = 1


class Stopwatch:
    """Turn a run's events into :class:`Timing` records, from the events' own times.

    Feed it every event with :meth:`observe`; it returns a :class:`Timing` when the
    event ends an execute, a revert or a run, else None. An atom sent back to
    PENDING (a retry, a reset) forgets its start.
    """

    def __init__(self) -> None:
        self._atoms: dict[str, float] = {}
        self._run: float | None = None

    def observe(self, event: Event) -> Timing | None:
        """Note ``event``; return the phase it ends, if it ends one."""
        if isinstance(event, AtomEvent):
            return self._atom(event)
        return self._flow(event)

    def _atom(self, event: AtomEvent) -> Timing | None:
        state = event.state
        if state in _ATOM_STARTS:
            self._atoms[event.atom_name] = event.at
            return None
        phase = _ATOM_ENDS.get(state)
        if phase is None:
            if state is AtomState.PENDING:
                self._atoms.pop(event.atom_name, None)
            return None
        started = self._atoms.pop(event.atom_name, None)
        if started is None:
            return None
        return Timing(
            event.atom_name, phase, started, event.at - started, state.value, event.attempt
        )

    def _flow(self, event: FlowEvent) -> Timing | None:
        if event.state is FlowState.RUNNING:
            if self._run is None:
                self._run = event.at
            return None
        if event.state not in _RUN_ENDS or self._run is None:
            return None
        started, self._run = self._run, None
        return Timing(event.flow_name, "run", started, event.at - started, event.state.value)


class StopwatchListener(EventListener):
    """Keep how long each execute, revert and run took, in memory.

    ``timings`` lists every finished phase in the order they ended (each attempt of
    a retried atom is one entry); ``durations`` maps each atom to its last
    execute's duration; ``run_duration`` is the last run's. Nothing is written to
    the run's record (:class:`DurationListener` does that, TaskFlow's way).
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._stopwatch = Stopwatch()
        self.timings: list[Timing] = []

    def on_flow(self, event: FlowEvent) -> None:
        self._note(event)

    def on_atom(self, event: AtomEvent) -> None:
        self._note(event)

    def _note(self, event: Event) -> None:
        timing = self._stopwatch.observe(event)
        if timing is not None:
            self.timings.append(timing)

    @property
    def durations(self) -> dict[str, float]:
        """Each atom's last execute duration, in seconds."""
        return {t.name: t.duration for t in self.timings if t.phase == "execute"}

    @property
    def run_duration(self) -> float | None:
        """The last run's duration in seconds (None before a run ended)."""
        runs = [t.duration for t in self.timings if t.phase == "run"]
        return runs[-1] if runs else None


def _update_flow_meta(storage: Storage, update: Mapping[str, Any]) -> None:
    storage.update_flow_metadata(update)


def _update_atom_meta(
    storage: Storage, name: str, uuid: str | None, update: Mapping[str, Any]
) -> bool:
    """Merge ``update`` into an atom record's meta; say whether the record was found."""
    try:
        storage.update_atom_metadata(name, update)
    except NotFoundError:
        return False
    return True


class DurationListener(Listener):
    """Record in each atom's and the flow's record meta how long it took (``'duration'``, s).

    A timer starts when an atom starts executing or reverting (so a reverted atom's
    duration is that of its revert) and when the flow starts running; it stops at
    the matching finish state.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(
            engine,
            task_listen_for=WATCH_STATES,
            flow_listen_for=_FLOW_WATCH_STATES,
            retry_listen_for=WATCH_STATES,
        )
        self._timers: dict[tuple[str, str], float] = {}

    def deregister(self) -> None:
        super().deregister()
        if self._timers:
            # Everything started should have finished by the time a run returns.
            LOG.warning(
                "%d timer(s) never reached a finish state: %s",
                len(self._timers),
                sorted(f"{kind} {name!r}" for kind, name in self._timers),
            )
            self._timers.clear()

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._receive(_FLOW, details["flow_name"], None, state)

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._receive(_TASK, details["task_name"], details.get("task_uuid"), state)

    def _retry_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._receive(_RETRY, details["retry_name"], details.get("retry_uuid"), state)

    def _receive(self, kind: str, name: str, uuid: str | None, state: str) -> None:
        key = (kind, name)
        if state in STARTING_STATES:
            self._timers[key] = time.perf_counter()
        elif state in (_FLOW_FINISHED_STATES if kind == _FLOW else FINISHED_STATES):
            started = self._timers.pop(key, None)
            if started is not None:
                self._record_ending(kind, name, uuid, time.perf_counter() - started)
        elif state == "PENDING":
            self._timers.pop(key, None)

    def _record_ending(self, kind: str, name: str, uuid: str | None, elapsed: float) -> None:
        """Store ``elapsed`` seconds as the ``'duration'`` of a flow or atom."""
        update = {"duration": elapsed}
        storage = self._engine.storage
        if kind == _FLOW:
            _update_flow_meta(storage, update)
        elif not _update_atom_meta(storage, name, uuid, update):
            LOG.warning("no record of %s %r to store its duration %r in", kind, name, elapsed)


def _print(message: str) -> None:
    print(message)


class PrintingDurationListener(DurationListener):
    """Record durations like :class:`DurationListener`, and print starts and durations.

    ``printer`` receives each line (default: :func:`print`).
    """

    def __init__(self, engine: Engine, printer: Callable[[str], Any] | None = None) -> None:
        super().__init__(engine)
        self._printer = printer if printer is not None else _print

    def _receive(self, kind: str, name: str, uuid: str | None, state: str) -> None:
        super()._receive(kind, name, uuid, state)
        if state in STARTING_STATES:
            self._printer(f"'{name}' {kind} started.")

    def _record_ending(self, kind: str, name: str, uuid: str | None, elapsed: float) -> None:
        super()._record_ending(kind, name, uuid, elapsed)
        self._printer(f"It took {kind} '{name}' {elapsed:0.2f} seconds to finish.")


class EventTimeListener(Listener):
    """Record when each state was entered: ``'<STATE>-timestamp'`` (``time.time()``) in meta."""

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        _update_flow_meta(self._engine.storage, {f"{state}-timestamp": time.time()})

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._record(details["task_name"], details.get("task_uuid"), state)

    def _retry_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._record(details["retry_name"], details.get("retry_uuid"), state)

    def _record(self, name: str, uuid: str | None, state: str) -> None:
        update = {f"{state}-timestamp": time.time()}
        if not _update_atom_meta(self._engine.storage, name, uuid, update):
            LOG.warning("no record of atom %r to store %r in", name, update)


#: TaskFlow's older name for :class:`DurationListener`.
TimingListener = DurationListener
