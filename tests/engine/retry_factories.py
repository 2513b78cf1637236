"""A flow factory with a retry controller, importable by name for load_from_detail tests.

The task counts its executions in module-level state (``RUNS``); the test that suspends
sets ``ENGINE`` so the task suspends the run on the execution named by ``SUSPEND_ON``.
"""

from __future__ import annotations

from typing import Any

from tideflow import LinearFlow, Task, Times

RUNS: list[int] = []
ENGINE: Any = None
SUSPEND_ON = 2


class Shaky(Task):
    """Fails its first three executions; suspends the engine on the ``SUSPEND_ON``-th."""

    def execute(self, attempt: int) -> int:
        RUNS.append(attempt)
        if len(RUNS) == SUSPEND_ON and ENGINE is not None:
            ENGINE.suspend()
        if len(RUNS) <= 3:
            raise OSError(f"shaky run {len(RUNS)}")
        return attempt


def guarded() -> LinearFlow:
    """``Times(5)`` providing ``attempt`` to a task that fails three times."""
    return LinearFlow("guarded", retry=Times(5, name="times", provides="attempt")).add(
        Shaky("shaky")
    )
