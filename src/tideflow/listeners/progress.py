"""ProgressListener: how far a run is (atoms done of total, which are running now).

Built for live views such as the ``tideflow`` command's: it keeps a few counters
up to date from the typed events, in constant time per event, and hands a frozen
:class:`Progress` snapshot to an ``on_change`` callback after each change. Its
attributes may be read from another thread (a view refreshing on a timer) while
the run goes on: a lock keeps each snapshot consistent.

An atom is *done* when it rests in a state that ends its current direction:
SUCCESS, FAILURE or IGNORE going forward, REVERTED or REVERT_FAILURE going back.
So while a run reverts, an atom that had succeeded leaves ``done`` as it starts
reverting and comes back when its revert ends; a retried atom leaves it when its
controller sends it back to PENDING. On a resumed run, atoms the record already
shows done count from the start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tideflow.events import AtomEvent, FlowEvent
from tideflow.listeners.base import LOG, EventListener
from tideflow.states import AtomState, FlowState

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["DONE_STATES", "Progress", "ProgressListener"]

#: Atom states counted as done (see the module docstring).
DONE_STATES: Final = frozenset(
    {
        AtomState.SUCCESS,
        AtomState.FAILURE,
        AtomState.IGNORE,
        AtomState.REVERTED,
        AtomState.REVERT_FAILURE,
    }
)
#: Atom states counted as running: their execute or revert is under way.
_BUSY: Final = frozenset({AtomState.RUNNING, AtomState.REVERTING})
_FAILED: Final = frozenset({AtomState.FAILURE, AtomState.REVERT_FAILURE})


@dataclass(frozen=True, slots=True)
class Progress:
    """A run's progress at one moment.

    ``running`` names the atoms executing or reverting now, in the order they
    started; ``failed`` counts atoms in FAILURE or REVERT_FAILURE, ``reverted``
    those in REVERTED; ``state`` is the flow's state (None before the run starts);
    ``elapsed`` the seconds since the run started (0.0 before).
    """

    done: int
    total: int
    running: tuple[str, ...]
    failed: int
    reverted: int
    state: str | None
    elapsed: float

    @property
    def fraction(self) -> float:
        """``done / total`` (1.0 for a flow without atoms)."""
        return self.done / self.total if self.total else 1.0


class ProgressListener(EventListener):
    """Count a run's atoms done of total, and know which are running now.

    ``ProgressListener(engine, on_change=callback)`` calls ``callback(progress)``
    with a :class:`Progress` after every change, on the engine's thread (keep it
    quick: the run waits for it; a callback that raises is logged, never fatal).
    Read ``done``, ``total``, ``running``, ``state`` or ``snapshot()`` any time,
    from any thread.
    """

    def __init__(
        self, engine: Engine, *, on_change: Callable[[Progress], object] | None = None
    ) -> None:
        super().__init__(engine)
        self._on_change = on_change
        self._lock = threading.Lock()
        self._states: dict[str, AtomState] | None = None
        self._running: dict[str, None] = {}  # insertion-ordered set
        self._done = self._failed = self._reverted = 0
        self._flow_state: FlowState | None = None
        self._started: float | None = None  # time.monotonic() of the run's start

    # -- reading --------------------------------------------------------------------

    @property
    def total(self) -> int:
        """How many atoms the run has (tasks and retry controllers)."""
        return len(self._atom_states())

    @property
    def done(self) -> int:
        """How many atoms are done (see the module docstring)."""
        self._atom_states()
        return self._done

    @property
    def running(self) -> tuple[str, ...]:
        """The atoms executing or reverting now, in the order they started."""
        with self._lock:
            return tuple(self._running)

    @property
    def state(self) -> str | None:
        """The flow's state, or None before the run starts."""
        flow_state = self._flow_state
        return None if flow_state is None else flow_state.value

    def snapshot(self) -> Progress:
        """Everything above, taken at one moment."""
        states = self._atom_states()
        with self._lock:
            started = self._started
            return Progress(
                done=self._done,
                total=len(states),
                running=tuple(self._running),
                failed=self._failed,
                reverted=self._reverted,
                state=self.state,
                elapsed=0.0 if started is None else time.monotonic() - started,
            )

    # -- hearing --------------------------------------------------------------------

    def on_flow(self, event: FlowEvent) -> None:
        if event.state is FlowState.RUNNING:
            # the record's states, once a run starts: a resumed run starts part-way
            self._reload()
            with self._lock:
                if self._started is None:
                    self._started = time.monotonic()
        self._flow_state = event.state
        self._changed()

    def on_atom(self, event: AtomEvent) -> None:
        states = self._atom_states()
        with self._lock:
            name = event.atom_name
            self._leave(states.get(name, event.old_state))
            states[name] = event.state
            self._enter(event.state)
            if event.state in _BUSY:
                self._running[name] = None
            else:
                self._running.pop(name, None)
        self._changed()

    # -- counting -------------------------------------------------------------------

    def _enter(self, state: AtomState) -> None:
        if state in DONE_STATES:
            self._done += 1
        if state in _FAILED:
            self._failed += 1
        elif state is AtomState.REVERTED:
            self._reverted += 1

    def _leave(self, state: AtomState) -> None:
        if state in DONE_STATES:
            self._done -= 1
        if state in _FAILED:
            self._failed -= 1
        elif state is AtomState.REVERTED:
            self._reverted -= 1

    def _atom_states(self) -> dict[str, AtomState]:
        states = self._states
        return states if states is not None else self._reload()

    def _reload(self) -> dict[str, AtomState]:
        engine = self._engine
        names = [atom.name for atom in engine.compilation.atoms if atom is not None]
        try:
            recorded = engine.storage.get_atoms_states(names)
        except Exception:
            # no records yet (the run has not been prepared): every atom is pending
            LOG.debug("no atom records to read progress from yet", exc_info=True)
            recorded = {}
        states = {
            name: recorded[name][0] if name in recorded else AtomState.PENDING for name in names
        }
        with self._lock:
            self._states = states
            self._done = self._failed = self._reverted = 0
            # an atom the record shows busy was caught by a stop: it runs again when told
            self._running = {}
            for state in states.values():
                self._enter(state)
        return states

    def _changed(self) -> None:
        callback = self._on_change
        if callback is not None:
            callback(self.snapshot())
