"""TaskFlow's ``taskflow.listeners.timing``: record how long atoms and flows take."""

from __future__ import annotations

from typing import Final

from taskflow import states
from tideflow.listeners.timing import DurationListener, EventTimeListener, PrintingDurationListener

__all__ = [
    "FINISHED_STATES",
    "STARTING_STATES",
    "WATCH_STATES",
    "DurationListener",
    "EventTimeListener",
    "PrintingDurationListener",
]

#: States in which an atom's (or flow's) timed work begins.
STARTING_STATES: Final = frozenset({states.RUNNING, states.REVERTING})
#: States in which it ends.
FINISHED_STATES: Final = frozenset(
    {states.SUCCESS, states.FAILURE, states.REVERTED, states.REVERT_FAILURE}
)
#: Every state the timing listeners look at.
WATCH_STATES: Final = STARTING_STATES | FINISHED_STATES | {states.PENDING}
