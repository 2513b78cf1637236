"""The exception tree of tideflow.

Every error tideflow raises on purpose derives from :class:`TideflowError`::

    TideflowError
    ├── DefinitionError            a flow or atom is defined wrongly; raised before anything runs
    │   ├── DuplicateAtomError     two atoms share a name
    │   │   └── AtomReusedError    one atom or flow object used twice, or a flow put inside itself
    │   ├── DependencyError        what the atoms require and provide cannot be put in order
    │   │   ├── CycleError           a graph flow's links would form a cycle
    │   │   ├── AmbiguousProviderError  two atoms of one graph flow provide what a third requires
    │   │   └── MissingRequirementError  nothing can satisfy an atom's requirement
    │   ├── InvalidArgumentError   an argument of the wrong kind (not an atom, not callable, ...)
    │   └── CompilationError       the flow cannot be turned into a plan (bad target, retries)
    ├── ExecutionError             running went wrong outside user code
    │   └── InvalidStateError      an illegal state transition (an engine bug)
    ├── NotFoundError              a named atom, result, record or plugin does not exist
    │   └── NotInFlowError         link() or set_target() named something not in the flow
    ├── StoreError                 the store could not read or write a record
    │   ├── StoreVersionError      the store was written by a newer tideflow, or is no store
    │   ├── RunOwnedError          another engine owns the run (or took it over)
    │   └── UnstorableValueError   a value the store's codec cannot keep (also a TypeError)
    ├── FlowChangedError           a recorded run does not match the flow loaded to resume it
    ├── RecordFormatError          a record does not have the shape it must (a ValueError)
    └── InternalError              an invariant of tideflow itself broke: please report it

Four of them also derive from the builtin exception that TaskFlow raises in the same
case, so a program's ``except ValueError`` (or ``except TypeError``) written against
TaskFlow still catches them: :class:`AtomReusedError`, :class:`NotInFlowError` and
:class:`RecordFormatError` are ``ValueError`` s, :class:`InvalidArgumentError` is both
a ``TypeError`` and a ``ValueError``. The rest derive from ``Exception`` only, as
TaskFlow's own do, so an ``except ValueError`` around ``Engine.run()`` meant for a
task's error never swallows a definition error by accident.

A task's own exception is never wrapped in this tree: ``Engine.run()`` re-raises it as
it was raised; several at once arrive together as :class:`tideflow.WrappedFailure`.
The TaskFlow names (``DependencyFailure``, ``MissingDependencies``, ...) are aliases
defined by the ``taskflow.exceptions`` compatibility module.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AmbiguousProviderError",
    "AtomReusedError",
    "CompilationError",
    "CycleError",
    "DefinitionError",
    "DependencyError",
    "DuplicateAtomError",
    "ExecutionError",
    "FlowChangedError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "MissingRequirementError",
    "NotFoundError",
    "NotInFlowError",
    "RecordFormatError",
    "RunOwnedError",
    "StoreError",
    "StoreVersionError",
    "TideflowError",
    "UnstorableValueError",
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
    """Two atoms share a name (subclass: one atom object was used twice)."""


class AtomReusedError(DuplicateAtomError, ValueError):
    """The same atom or flow object is used twice in one flow tree, or a flow inside itself.

    A ``ValueError`` too: TaskFlow raises ``ValueError`` when it compiles such a flow.
    """


class DependencyError(DefinitionError):
    """What the atoms require and provide cannot be satisfied or put in order."""


class CycleError(DependencyError):
    """Links between a graph flow's nodes would form a cycle."""


class AmbiguousProviderError(DependencyError):
    """More than one atom of a graph flow provides a name another atom requires."""


class MissingRequirementError(DependencyError):
    """An atom requires a name that no store value and no preceding atom provides.

    Raised by tideflow as ``MissingRequirementError(message, atom=..., missing=...,
    flow=...)``. TaskFlow programs build it as ``MissingDependencies(who, requirements,
    cause=None, method=None)``; that form is accepted too, and writes its own message
    naming ``who`` (and ``method``) and the sorted requirements.
    """

    def __init__(
        self,
        message: str,
        requirements: Iterable[str] | None = None,
        cause: BaseException | None = None,
        method: str | None = None,
        *,
        atom: str | None = None,
        missing: Iterable[str] = (),
        flow: str | None = None,
    ) -> None:
        if requirements is not None:
            missing = tuple(requirements)
            who = f"{method!r} of {message!r}" if method else repr(message)
            atom = atom if atom is not None else message
            message = f"{who} requires {sorted(missing)}, which nothing provides"
        super().__init__(message, cause)
        self.atom = atom
        self.missing = tuple(missing)
        self.flow = flow
        self.method = method

    @property
    def missing_requirements(self) -> list[str]:
        """The missing names, sorted (TaskFlow's attribute)."""
        return sorted(self.missing)


class InvalidArgumentError(DefinitionError, TypeError, ValueError):
    """An atom, flow or link was given an argument of the wrong kind.

    For example something that is not an atom or flow given to ``add()``, a decider or
    functor that is not callable, a map functor that does not take exactly one argument.
    Both a ``TypeError`` (what Python code expects for a wrong kind of argument) and a
    ``ValueError`` (what TaskFlow raises in most of these cases).
    """


class CompilationError(DefinitionError):
    """The flow cannot be compiled into a plan."""


class ExecutionError(TideflowError):
    """Running failed outside user code."""


class InvalidStateError(ExecutionError):
    """An illegal state transition was asked for; this is an engine bug."""


class NotFoundError(TideflowError):
    """A named atom, value, record or plugin does not exist."""


class NotInFlowError(NotFoundError, ValueError):
    """``link()`` or ``set_target()`` named an atom or flow that was not added to the flow.

    A ``ValueError`` too, as TaskFlow raises in that case.
    """


class StoreError(TideflowError):
    """The store could not read or write a record.

    What was committed before the error stays committed: a run stopped by a store
    error can be resumed from its record once the store is back.
    """


class StoreVersionError(StoreError):
    """The store's schema is newer than this tideflow, or the file or database is no store.

    Nothing was changed: upgrade tideflow, or point at the right store.
    """


class RunOwnedError(StoreError):
    """Another engine owns the run: it is running it now, or took it over from this one."""


class UnstorableValueError(StoreError, TypeError):
    """A value the store's codec cannot keep (a TypeError too, as ``json.dumps`` raises).

    ``atom`` names the atom whose result (or the store key whose value) it was, when known.
    """

    def __init__(
        self, message: str, *, atom: str | None = None, cause: BaseException | None = None
    ) -> None:
        super().__init__(message, cause)
        self.atom = atom


class FlowChangedError(TideflowError):
    """A recorded run does not match the flow given to resume it (atoms added, removed,
    renamed or of another major version), and it has already made progress.

    ``differences`` lists each difference as a line of text.
    """

    def __init__(self, message: str, differences: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.differences = list(differences)


class RecordFormatError(TideflowError, ValueError):
    """A record (a stored failure, atom or flow detail) does not have the shape it must.

    A ``ValueError`` too: the data given is of the right type but wrong.
    """


class InternalError(TideflowError):
    """An invariant of tideflow broke. This is a bug in tideflow: please report it."""
