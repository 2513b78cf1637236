"""Typed state-change events: what ``Engine.subscribe()`` callbacks receive.

Each state change of a run is one small immutable record carrying everything a
progress bar, a log line or a tracing span needs: the run (flow uuid), the atom,
the old and new state, when it happened, and the result or failure. The
TaskFlow-style ``(state, details)`` notifications are built from these records at
the edge (:meth:`FlowEvent.details`, :meth:`AtomEvent.details`). Records are made
only when someone subscribes or listens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from tideflow.failure import Failure
from tideflow.states import AtomState, FlowState

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["AtomEvent", "Event", "FlowEvent"]

#: Atom states whose TaskFlow-style details carry a ``result`` key.
_RESULT_STATES = frozenset(
    {AtomState.SUCCESS, AtomState.FAILURE, AtomState.REVERTED, AtomState.REVERT_FAILURE}
)


class FlowEvent(NamedTuple):
    """The flow of a run moved from ``old_state`` to ``state`` at ``at`` (``time.time()``)."""

    flow_name: str
    flow_uuid: str
    state: FlowState
    old_state: FlowState
    at: float

    def details(self, engine: Engine) -> dict[str, Any]:
        """The TaskFlow-style details of this change (keys in TaskFlow's order)."""
        return {
            "engine": engine,
            "flow_name": self.flow_name,
            "flow_uuid": self.flow_uuid,
            "old_state": self.old_state.value,
        }


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

    def details(self) -> dict[str, Any]:
        """The TaskFlow-style details of this change.

        A controller with a back-off adds ``attempt`` and ``delay`` to its RETRYING
        details (TaskFlow's controllers have none, so its programs see its keys only).
        """
        prefix = self.kind
        details: dict[str, Any] = {
            f"{prefix}_name": self.atom_name,
            f"{prefix}_uuid": self.atom_uuid,
            "old_state": self.old_state.value,
        }
        if self.state in _RESULT_STATES:
            details["result"] = self.failure if self.failure is not None else self.result
        if self.delay is not None:
            details["attempt"] = self.attempt
            details["delay"] = self.delay
        return details


#: Either kind of event.
Event = FlowEvent | AtomEvent
