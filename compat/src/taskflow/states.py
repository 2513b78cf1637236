"""TaskFlow's ``taskflow.states``: state names as plain strings, and its transition checks.

The names equal tideflow's state enums (``states.SUCCESS == tideflow.states.SUCCESS``),
but are plain ``str`` as TaskFlow's are. The ``check_*_transition`` functions answer
as TaskFlow's do: True for a transition it makes, False for one it ignores, and
:class:`taskflow.exceptions.InvalidState` for one it forbids (tasks and retries never
raise: anything not allowed is ignored).
"""

from __future__ import annotations

from typing import Final

from tideflow.errors import InvalidStateError
from tideflow.states import AtomState, EngineState, FlowState, Intention

__all__ = [
    "ANALYZING",
    "CLAIMED",
    "COMPLETE",
    "EXECUTE",
    "FAILURE",
    "IGNORE",
    "INTENTIONS",
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
    "UNCLAIMED",
    "WAITING",
    "check_flow_transition",
    "check_job_transition",
    "check_retry_transition",
    "check_task_transition",
]

# Job states (jobboards).
CLAIMED: Final = "CLAIMED"
COMPLETE: Final = "COMPLETE"
UNCLAIMED: Final = "UNCLAIMED"

# Flow and atom states.
PENDING: Final[str] = AtomState.PENDING.value
RUNNING: Final[str] = AtomState.RUNNING.value
SUCCESS: Final[str] = AtomState.SUCCESS.value
FAILURE: Final[str] = AtomState.FAILURE.value
REVERTING: Final[str] = AtomState.REVERTING.value
REVERTED: Final[str] = AtomState.REVERTED.value
REVERT_FAILURE: Final[str] = AtomState.REVERT_FAILURE.value
IGNORE: Final[str] = AtomState.IGNORE.value
RETRYING: Final[str] = AtomState.RETRYING.value
SUSPENDING: Final[str] = FlowState.SUSPENDING.value
SUSPENDED: Final[str] = FlowState.SUSPENDED.value
RESUMING: Final[str] = FlowState.RESUMING.value

# Atom intentions.
EXECUTE: Final[str] = Intention.EXECUTE.value
REVERT: Final[str] = Intention.REVERT.value
RETRY: Final[str] = Intention.RETRY.value
INTENTIONS: Final = (EXECUTE, IGNORE, REVERT, RETRY)

# Engine phases yielded by ``engine.run_iter()``.
SCHEDULING: Final[str] = EngineState.SCHEDULING.value
WAITING: Final[str] = EngineState.WAITING.value
ANALYZING: Final[str] = EngineState.ANALYZING.value

_JOB_ALLOWED: Final = frozenset({(UNCLAIMED, CLAIMED), (CLAIMED, UNCLAIMED), (CLAIMED, COMPLETE)})

_FLOW_ALLOWED: Final = frozenset(
    {
        (PENDING, RUNNING),
        (RUNNING, SUCCESS),
        (RUNNING, FAILURE),
        (RUNNING, REVERTED),
        (RUNNING, SUSPENDING),
        (RUNNING, RESUMING),
        (SUCCESS, PENDING),
        (SUCCESS, RUNNING),
        (FAILURE, RUNNING),
        (REVERTED, PENDING),
        (SUSPENDING, SUCCESS),
        (SUSPENDING, FAILURE),
        (SUSPENDING, REVERTED),
        (SUSPENDING, SUSPENDED),
        (SUSPENDING, RESUMING),
        (SUSPENDED, RUNNING),
        (RESUMING, SUSPENDED),
    }
)

# Suspending a flow that is not running is a no-op, not an error.
_FLOW_IGNORED: Final = frozenset(
    {
        *(
            (old, new)
            for old in (PENDING, SUCCESS, FAILURE, REVERTED)
            for new in (SUSPENDING, SUSPENDED, RESUMING)
        ),
        (SUSPENDED, SUSPENDING),
        (SUSPENDED, RESUMING),
    }
)

_TASK_ALLOWED: Final = frozenset(
    {
        (PENDING, RUNNING),
        (PENDING, IGNORE),
        (RUNNING, SUCCESS),
        (RUNNING, FAILURE),
        (SUCCESS, REVERTING),
        (FAILURE, REVERTING),
        (REVERTING, REVERTED),
        (REVERTING, REVERT_FAILURE),
        (REVERTED, PENDING),
        (IGNORE, PENDING),
    }
)

_RETRY_ALLOWED: Final = _TASK_ALLOWED | {(SUCCESS, RETRYING), (RETRYING, RUNNING)}


def check_job_transition(old_state: str, new_state: str) -> bool:
    """Say whether a job moves from ``old_state`` to ``new_state``; raise if it may not."""
    if old_state == new_state:
        return False
    if (old_state, new_state) in _JOB_ALLOWED:
        return True
    raise InvalidStateError(f"Job transition from '{old_state}' to '{new_state}' is not allowed")


def check_flow_transition(old_state: str, new_state: str) -> bool:
    """Say whether a flow moves from ``old_state`` to ``new_state``; raise if it may not."""
    if old_state == new_state:
        return False
    pair = (old_state, new_state)
    if pair in _FLOW_ALLOWED:
        return True
    if pair in _FLOW_IGNORED:
        return False
    raise InvalidStateError(f"Flow transition from '{old_state}' to '{new_state}' is not allowed")


def check_task_transition(old_state: str, new_state: str) -> bool:
    """Say whether a task moves from ``old_state`` to ``new_state`` (never raises)."""
    return (old_state, new_state) in _TASK_ALLOWED


def check_retry_transition(old_state: str, new_state: str) -> bool:
    """Say whether a retry moves from ``old_state`` to ``new_state`` (never raises)."""
    return (old_state, new_state) in _RETRY_ALLOWED
