"""TaskFlow's exception names as aliases of tideflow's error tree, plus the few it lacks.

``except taskflow.exceptions.NotFound`` catches what tideflow raises as
:class:`tideflow.errors.NotFoundError`, and so on for every alias below. The aliases
keep TaskFlow's shape where a program could tell the difference: ``DependencyFailure``
catches cycles, ambiguous providers and missing requirements but not ``Duplicate`` or
``CompilationFailure``, so ``except`` clauses ordered for TaskFlow pick the same branch
here. Where TaskFlow raises a builtin (``ValueError``, ``TypeError``), tideflow's error
for that case derives from the same builtin (see :mod:`tideflow.errors`). Names
tideflow has no counterpart for are small subclasses of the matching tideflow base.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any, NoReturn

from tideflow.errors import (
    AmbiguousProviderError,
    CompilationError,
    DependencyError,
    DuplicateAtomError,
    ExecutionError,
    InvalidStateError,
    MissingRequirementError,
    NotFoundError,
    RecordFormatError,
    StoreError,
    TideflowError,
)
from tideflow.failure import WrappedFailure

__all__ = [
    "AmbiguousDependency",
    "CompilationFailure",
    "ConductorFailure",
    "DependencyFailure",
    "DisallowedAccess",
    "Duplicate",
    "Empty",
    "ExecutionFailure",
    "IncompatibleVersion",
    "InvalidFormat",
    "InvalidState",
    "JobFailure",
    "MissingDependencies",
    "MultipleChoices",
    "NotFound",
    "NotImplementedError",
    "RequestTimeout",
    "StorageFailure",
    "TaskFlowException",
    "UnclaimableJob",
    "WrappedFailure",
    "raise_with_cause",
]

TaskFlowException = TideflowError
DependencyFailure = DependencyError
MissingDependencies = MissingRequirementError
AmbiguousDependency = AmbiguousProviderError
Duplicate = DuplicateAtomError
CompilationFailure = CompilationError
ExecutionFailure = ExecutionError
InvalidState = InvalidStateError
NotFound = NotFoundError
StorageFailure = StoreError


class Empty(TideflowError):
    """Something expected to hold items held none."""


class MultipleChoices(TideflowError):
    """Several things matched where exactly one was expected."""


InvalidFormat = RecordFormatError


class DisallowedAccess(TideflowError):
    """Access was refused because of the state the target is in (``state``)."""

    def __init__(
        self, message: str, cause: BaseException | None = None, state: str | None = None
    ) -> None:
        super().__init__(message, cause)
        self.state = state


class JobFailure(TideflowError):
    """A job could not be posted, claimed or completed."""


class UnclaimableJob(JobFailure):
    """A job could not be claimed (another owner holds it, or it is gone)."""


class ConductorFailure(TideflowError):
    """A conductor failed while dispatching a job."""


class IncompatibleVersion(TideflowError):
    """A record or peer uses a version this code cannot work with."""


class RequestTimeout(ExecutionError):
    """A request to a worker was not answered in time."""


class NotImplementedError(builtins.NotImplementedError):  # TaskFlow's own name
    """A backend or component does not implement this operation."""


def raise_with_cause(exc_cls: type[Exception], message: str, *args: Any, **kwargs: Any) -> NoReturn:
    """Raise ``exc_cls(message, ...)`` with the exception being handled as its cause."""
    cause = kwargs.get("cause", sys.exception())
    exc = exc_cls(message, *args, **kwargs)
    if isinstance(exc, TideflowError) and exc.cause is None:
        exc.cause = cause
    raise exc from cause
