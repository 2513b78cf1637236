"""Flow factories importable by name, for load_from_factory / load_from_detail tests.

Module-level state lets a test steer the tasks: ``reset()`` first, then set
``SUSPEND_AT`` and ``ENGINE`` to make the task of that name suspend the engine.
"""

from __future__ import annotations

import threading
from typing import Any

from tideflow import LinearFlow, Task

EXECUTED: list[str] = []
REVERTED: list[str] = []
SUSPEND_AT: str | None = None
SUSPEND_REVERT_AT: str | None = None
FAIL_AT: str | None = None
ENGINE: Any = None
_LOCK = threading.Lock()


def reset() -> None:
    """Forget what ran and stop suspending."""
    global SUSPEND_AT, SUSPEND_REVERT_AT, FAIL_AT, ENGINE
    EXECUTED.clear()
    REVERTED.clear()
    SUSPEND_AT = SUSPEND_REVERT_AT = FAIL_AT = None
    ENGINE = None


class StepFailed(Exception):
    """What the step named by ``FAIL_AT`` raises."""


class Step(Task):
    """Records that it ran; returns its name with a suffix; may fail or suspend the engine."""

    def execute(self) -> str:
        global SUSPEND_AT
        with _LOCK:
            EXECUTED.append(self.name)
        if self.name == SUSPEND_AT and ENGINE is not None:
            SUSPEND_AT = None
            ENGINE.suspend()
        if self.name == FAIL_AT:
            raise StepFailed(f"{self.name} failed")
        return f"{self.name}-done"

    def revert(self, **kwargs: Any) -> None:
        global SUSPEND_REVERT_AT
        with _LOCK:
            REVERTED.append(self.name)
        if self.name == SUSPEND_REVERT_AT and ENGINE is not None:
            SUSPEND_REVERT_AT = None
            ENGINE.suspend()


def make_flow(count: int, prefix: str = "t") -> LinearFlow:
    """A linear flow of ``count`` steps named ``<prefix>0`` ... ; step i provides ``v<i>``."""
    flow = LinearFlow("resumable")
    for i in range(count):
        flow.add(Step(f"{prefix}{i}", provides=f"v{i}"))
    return flow
