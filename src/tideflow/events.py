"""Typed state-change events: what ``Engine.subscribe()`` callbacks receive.

Each state change of a run is one small immutable record carrying everything a
progress bar, a log line or a tracing span needs: the run (flow uuid), the atom,
the old and new state, when it happened, the attempt, and the result or failure.
These records are the one channel observers read: the listeners in
:mod:`tideflow.listeners` are built on them, and the TaskFlow-style
``(state, details)`` notifications are built from them at the edge, where the
TaskFlow-style notifiers live (``tideflow._notifier.flow_details`` and
``atom_details``). This module knows nothing of the engine that makes them.
Records are made only when someone subscribes or listens. (Step 8 of a run in
``docs/architecture.md``.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tideflow.failure import Failure
from tideflow.states import AtomState, FlowState

__all__ = ["AtomEvent", "Event", "FlowEvent"]


class FlowEvent(NamedTuple):
    """The flow of a run moved from ``old_state`` to ``state`` at ``at`` (``time.time()``)."""

    flow_name: str
    flow_uuid: str
    state: FlowState
    old_state: FlowState
    at: float

    @property
    def run_id(self) -> str:
        """The run's id: its flow record's uuid, as ``tideflow.resume()`` takes it."""
        return self.flow_uuid


class AtomEvent(NamedTuple):
    """An atom of a run moved from ``old_state`` to ``state`` at ``at`` (``time.time()``).

    ``result`` is what ``execute`` returned (SUCCESS) or ``revert`` returned
    (REVERTED); ``failure`` is the Failure of a FAILURE or REVERT_FAILURE. ``attempt``
    is the attempt of the innermost retry controller guarding the atom (1 without
    one; for a controller, its own). ``delay`` is set on a controller's RETRYING when
    it has a back-off: the seconds it waits before ``attempt`` starts.
    """

    flow_name: str
    flow_uuid: str
    atom_name: str
    atom_uuid: str
    kind: str  # "task" or "retry"
    state: AtomState
    old_state: AtomState
    at: float
    result: Any = None
    failure: Failure | None = None
    attempt: int = 1
    delay: float | None = None

    @property
    def run_id(self) -> str:
        """The run's id: its flow record's uuid, as ``tideflow.resume()`` takes it."""
        return self.flow_uuid


#: Either kind of event.
Event = FlowEvent | AtomEvent
