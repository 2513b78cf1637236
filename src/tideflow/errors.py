"""The exception tree of tideflow.

Every error tideflow raises on purpose derives from :class:`TideflowError`::

    TideflowError
    ├── DefinitionError            a flow or atom is defined wrongly; raised before anything runs
    │   ├── DuplicateAtomError     two atoms share a name, or one atom object is added twice
    │   ├── CycleError             a graph flow's links would form a cycle
    │   ├── AmbiguousProviderError two atoms of one graph flow provide what a third requires
    │   ├── MissingRequirementError  nothing can satisfy an atom's requirement
    │   └── CompilationError       the flow cannot be turned into a plan (empty flow, bad target)
    ├── ExecutionError             running went wrong outside user code
    │   └── InvalidStateError      an illegal state transition (an engine bug)
    ├── NotFoundError              a named atom, result or record does not exist
    ├── StoreError                 the store could not read or write a record
    └── InternalError              an invariant of tideflow itself broke: please report it

A task's own exception is never wrapped in this tree: ``Engine.run()`` re-raises it as
it was raised; several at once arrive together as :class:`tideflow.WrappedFailure`.
The TaskFlow names (``DependencyFailure``, ``MissingDependencies``, ...) are aliases
defined by the ``taskflow.exceptions`` compatibility module.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AmbiguousProviderError",
    "CompilationError",
    "CycleError",
    "DefinitionError",
    "DuplicateAtomError",
    "ExecutionError",
    "InternalError",
    "InvalidStateError",
    "MissingRequirementError",
    "NotFoundError",
    "StoreError",
    "TideflowError",
]


class TideflowError(Exception):
    """Base of every error tideflow raises on purpose.

    ``cause`` keeps the lower-level exception that led here, if any (it is also
    chained as ``__cause__`` when raised with ``raise ... from``).
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause

    @property
    def message(self) -> str:
        """The error's message."""
        return str(self.args[0]) if self.args else ""

    def pformat(self, indent: int = 2) -> str:
        """The message, then each cause in the chain on its own line, indented further."""
        lines = [self.message]
        cause = self.cause
        depth = indent
        while cause is not None:
            lines.append(f"{' ' * depth}{type(cause).__name__}: {cause}")
            cause = getattr(cause, "cause", None)
            depth += indent
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.pformat()


class DefinitionError(TideflowError):
    """A flow or atom is defined wrongly; nothing has run."""


class DuplicateAtomError(DefinitionError):
    """Two atoms share a name, or the same atom object was added twice."""


class CycleError(DefinitionError):
    """Links between a graph flow's nodes would form a cycle."""


class AmbiguousProviderError(DefinitionError):
    """More than one atom of a graph flow provides a name another atom requires."""


class MissingRequirementError(DefinitionError):
    """An atom requires a name that no store value and no preceding atom provides."""

    def __init__(
        self,
        message: str,
        *,
        atom: str | None = None,
        missing: Iterable[str] = (),
        flow: str | None = None,
    ) -> None:
        super().__init__(message)
        self.atom = atom
        self.missing = tuple(missing)
        self.flow = flow

    @property
    def missing_requirements(self) -> list[str]:
        """The missing names, sorted (TaskFlow's attribute)."""
        return sorted(self.missing)


class CompilationError(DefinitionError):
    """The flow cannot be compiled into a plan."""


class ExecutionError(TideflowError):
    """Running failed outside user code."""


class InvalidStateError(ExecutionError):
    """An illegal state transition was asked for; this is an engine bug."""


class NotFoundError(TideflowError):
    """A named atom, value or record does not exist."""


class StoreError(TideflowError):
    """The store could not read or write a record."""


class InternalError(TideflowError):
    """An invariant of tideflow broke. This is a bug in tideflow: please report it."""
