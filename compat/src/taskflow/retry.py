"""TaskFlow's ``taskflow.retry``: controllers that guard a subflow, and their decisions."""

from __future__ import annotations

from tideflow.retry import (
    EXECUTE_REVERT_HISTORY,
    RETRY,
    REVERT,
    REVERT_ALL,
    REVERT_FLOW_FAILURES,
    AlwaysRevert,
    AlwaysRevertAll,
    Decision,
    ForEach,
    ForEachBase,
    History,
    ParameterizedForEach,
    Retry,
    Times,
)

__all__ = [
    "EXECUTE_REVERT_HISTORY",
    "RETRY",
    "REVERT",
    "REVERT_ALL",
    "REVERT_FLOW_FAILURES",
    "AlwaysRevert",
    "AlwaysRevertAll",
    "Decision",
    "ForEach",
    "ForEachBase",
    "History",
    "ParameterizedForEach",
    "Retry",
    "Times",
]
