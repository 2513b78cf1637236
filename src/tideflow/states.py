"""States of flows, atoms and the engine, and the one table of allowed transitions.

States are string enums whose values are TaskFlow's names, so ``state == "SUCCESS"``
holds, and a state reads exactly as TaskFlow's plain string does: ``str()`` and
formatting give ``SUCCESS``, ``repr()`` gives ``'SUCCESS'`` (so a list of states prints
as ``['SUCCESS']``, as it does under TaskFlow). They stay enums for typed code:
``AtomState.SUCCESS.name``, iteration, ``isinstance`` all work. Every transition the
engine makes is checked against the tables below; an illegal one is an engine bug and raises
:class:`~tideflow.errors.InvalidStateError`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from tideflow.errors import InvalidStateError

__all__ = [
    "ANALYZING",
    "EXECUTE",
    "FAILURE",
    "GAME_OVER",
    "IGNORE",
    "PENDING",
    "RESUMING",
    "RETRY",
    "RETRYING",
    "REVERT",
    "REVERTED",
    "REVERTING",
    "REVERT_FAILURE",
    "RUNNING",
    "SCHEDULING",
    "SUCCESS",
    "SUSPENDED",
    "SUSPENDING",
    "UNDEFINED",
    "WAITING",
    "AtomState",
    "EngineState",
    "FlowState",
    "Intention",
    "check_atom_transition",
    "check_flow_transition",
]


class _State(StrEnum):
    """A string enum whose ``repr()`` is that of its plain string value."""

    def __repr__(self) -> str:
        return repr(self._value_)


class FlowState(_State):
    """The state of a whole flow run."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVERTED = "REVERTED"
    SUSPENDING = "SUSPENDING"
    SUSPENDED = "SUSPENDED"
    RESUMING = "RESUMING"


class AtomState(_State):
    """The state of one atom (task or retry) in a run."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVERTING = "REVERTING"
    REVERTED = "REVERTED"
    REVERT_FAILURE = "REVERT_FAILURE"
    IGNORE = "IGNORE"
    RETRYING = "RETRYING"


class EngineState(_State):
    """The phases ``Engine.run_iter()`` moves through (before the final flow state)."""

    UNDEFINED = "UNDEFINED"
    RESUMING = "RESUMING"
    SCHEDULING = "SCHEDULING"
    WAITING = "WAITING"
    ANALYZING = "ANALYZING"
    GAME_OVER = "GAME_OVER"


class Intention(_State):
    """What the engine means to do with an atom next."""

    EXECUTE = "EXECUTE"
    REVERT = "REVERT"
    RETRY = "RETRY"
    IGNORE = "IGNORE"


# TaskFlow-style module constants: the same strings, usable wherever a state is taken.
PENDING: Final = AtomState.PENDING
RUNNING: Final = AtomState.RUNNING
SUCCESS: Final = AtomState.SUCCESS
FAILURE: Final = AtomState.FAILURE
REVERTING: Final = AtomState.REVERTING
REVERTED: Final = AtomState.REVERTED
REVERT_FAILURE: Final = AtomState.REVERT_FAILURE
IGNORE: Final = AtomState.IGNORE
RETRYING: Final = AtomState.RETRYING
SUSPENDING: Final = FlowState.SUSPENDING
SUSPENDED: Final = FlowState.SUSPENDED
RESUMING: Final = FlowState.RESUMING
UNDEFINED: Final = EngineState.UNDEFINED
SCHEDULING: Final = EngineState.SCHEDULING
WAITING: Final = EngineState.WAITING
ANALYZING: Final = EngineState.ANALYZING
GAME_OVER: Final = EngineState.GAME_OVER
EXECUTE: Final = Intention.EXECUTE
REVERT: Final = Intention.REVERT
RETRY: Final = Intention.RETRY

_F = FlowState
_A = AtomState

#: Allowed flow transitions (old, new). Same-state "transitions" are no-ops, not errors.
#: TaskFlow's table, plus: any settled state back to PENDING (``reset()``), a run that
#: crashed while suspending resumed through SUSPENDED.
FLOW_TRANSITIONS: Final[frozenset[tuple[FlowState, FlowState]]] = frozenset(
    {
        (_F.PENDING, _F.RUNNING),
        (_F.RUNNING, _F.SUCCESS),
        (_F.RUNNING, _F.FAILURE),
        (_F.RUNNING, _F.REVERTED),
        (_F.RUNNING, _F.SUSPENDING),
        (_F.RUNNING, _F.RESUMING),
        (_F.SUCCESS, _F.RUNNING),  # run a finished flow again: nothing left to do
        (_F.FAILURE, _F.RUNNING),  # run again after a failed revert: the revert is retried
        (_F.SUSPENDING, _F.SUSPENDED),
        (_F.SUSPENDING, _F.SUCCESS),  # everything finished while suspending
        (_F.SUSPENDING, _F.FAILURE),
        (_F.SUSPENDING, _F.REVERTED),
        (_F.SUSPENDED, _F.RUNNING),
        (_F.RESUMING, _F.SUSPENDED),
        # reset() and running a REVERTED flow again
        (_F.SUCCESS, _F.PENDING),
        (_F.FAILURE, _F.PENDING),
        (_F.REVERTED, _F.PENDING),
        (_F.SUSPENDED, _F.PENDING),
    }
)

#: Allowed task transitions (old, new). TaskFlow's table, plus what reset() and resuming
#: a recorded run need; each addition says why.
TASK_TRANSITIONS: Final[frozenset[tuple[AtomState, AtomState]]] = frozenset(
    {
        (_A.PENDING, _A.RUNNING),
        (_A.PENDING, _A.IGNORE),
        (_A.RUNNING, _A.SUCCESS),
        (_A.RUNNING, _A.FAILURE),
        (_A.FAILURE, _A.REVERTING),
        (_A.SUCCESS, _A.REVERTING),
        (_A.REVERTING, _A.REVERTED),
        (_A.REVERTING, _A.REVERT_FAILURE),
        (_A.REVERTED, _A.PENDING),
        (_A.IGNORE, _A.PENDING),
        (_A.RUNNING, _A.PENDING),  # resumed: an atom caught running runs again
        (_A.RUNNING, _A.REVERTING),  # resumed while reverting: an atom caught running is undone
        (_A.REVERT_FAILURE, _A.REVERTING),  # running a FAILURE flow again retries the revert
        # reset()
        (_A.SUCCESS, _A.PENDING),
        (_A.FAILURE, _A.PENDING),
        (_A.REVERTING, _A.PENDING),
        (_A.REVERT_FAILURE, _A.PENDING),
    }
)

#: Retries add RETRYING on top of the task table.
RETRY_TRANSITIONS: Final[frozenset[tuple[AtomState, AtomState]]] = TASK_TRANSITIONS | frozenset(
    {
        (_A.SUCCESS, _A.RETRYING),
        (_A.RETRYING, _A.RUNNING),
        # tideflow: the whole run reverts while the controller waits out its back-off,
        # or a run suspended then is reset
        (_A.RETRYING, _A.REVERTING),
        (_A.RETRYING, _A.PENDING),
    }
)


def check_flow_transition(old: FlowState, new: FlowState) -> bool:
    """Say whether the flow moves from ``old`` to ``new``: False for a no-op, raise if illegal."""
    if old == new:
        return False
    if (old, new) in FLOW_TRANSITIONS:
        return True
    raise InvalidStateError(f"flow cannot go from {old} to {new}: this is an engine bug")


def check_atom_transition(old: AtomState, new: AtomState, *, retry: bool = False) -> bool:
    """Say whether an atom moves from ``old`` to ``new``: False for a no-op, raise if illegal."""
    if old == new:
        return False
    table = RETRY_TRANSITIONS if retry else TASK_TRANSITIONS
    if (old, new) in table:
        return True
    kind = "retry" if retry else "task"
    raise InvalidStateError(f"{kind} cannot go from {old} to {new}: this is an engine bug")
