"""TaskFlow's ``taskflow.task``: tasks, functor tasks and the progress event name."""

from __future__ import annotations

from typing import Final

from tideflow import FunctorTask, MapFunctorTask, ReduceFunctorTask, Task

__all__ = [
    "EVENT_UPDATE_PROGRESS",
    "REVERT_FLOW_FAILURES",
    "REVERT_RESULT",
    "FunctorTask",
    "MapFunctorTask",
    "ReduceFunctorTask",
    "Task",
]

#: The event a task reports progress with (``task.notifier`` / ``update_progress()``).
EVENT_UPDATE_PROGRESS: Final = "update_progress"
#: Keyword under which ``revert()`` receives what ``execute()`` returned (or its Failure).
REVERT_RESULT: Final = "result"
#: Keyword under which ``revert()`` receives every failure of the run so far.
REVERT_FLOW_FAILURES: Final = "flow_failures"
