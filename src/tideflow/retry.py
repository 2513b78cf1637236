"""Retry controllers: atoms that guard a subflow and decide what a failure inside it means.

A controller is attached with ``Flow(name, retry=controller)``. It runs first in its
flow (its ``execute`` may provide a value the flow's atoms use, such as the attempt's
parameter) and, when an atom inside the flow fails, the engine asks its
``on_failure(history, ...)`` for a :class:`Decision`:

- ``RETRY``: revert the flow's atoms (each after everything that depends on it) and
  run the flow again, starting with the controller's ``execute``;
- ``REVERT``: revert the flow, controller included, and let the enclosing controller
  (if any) decide about the flow as a whole;
- ``REVERT_ALL``: revert the whole run, whatever encloses the flow.

The :class:`History` it is shown holds one entry per attempt: the value its
``execute`` returned and the failures (atom name -> :class:`~tideflow.Failure`) that
attempt met. ``docs/failure-resolution.md`` follows a failure through nested controllers.

Two things TaskFlow's controllers never had, kept apart from deciding (as tenacity
keeps its wait and stop policies apart): a **back-off** (``backoff=FixedBackoff(0.5)``,
``ExponentialBackoff(...)``, or their sum), which the engine waits out between the
revert and the next attempt without holding a worker; and ``retry_on=`` exception
types, so a failure of any other type gives up at once instead of being retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, ClassVar, Final, TypeAlias

from tideflow._task import Atom, Provides, Rebind, Requires
from tideflow.errors import NotFoundError
from tideflow.failure import Failure

__all__ = [
    "EXECUTE_REVERT_HISTORY",
    "RETRY",
    "REVERT",
    "REVERT_ALL",
    "REVERT_FLOW_FAILURES",
    "AlwaysRevert",
    "AlwaysRevertAll",
    "Backoff",
    "Decision",
    "ExponentialBackoff",
    "FixedBackoff",
    "ForEach",
    "ForEachBase",
    "History",
    "ParameterizedForEach",
    "Retry",
    "Times",
]

#: Keyword under which a controller's ``execute``, ``revert`` and ``on_failure`` get
#: the :class:`History`.
EXECUTE_REVERT_HISTORY: Final = "history"
#: Keyword under which a controller's ``revert`` gets every failure of the run so far.
REVERT_FLOW_FAILURES: Final = "flow_failures"

ExceptionTypes: TypeAlias = type[BaseException] | tuple[type[BaseException], ...]
#: One attempt as recorded: what the controller's execute returned, and the failures met.
Attempt: TypeAlias = tuple[Any, dict[str, Failure]]


class Decision(StrEnum):
    """What to do about a failure inside a controller's flow (TaskFlow's values)."""

    #: Revert the flow (controller included) and let the enclosing controller decide.
    REVERT = "REVERT"
    #: Revert the whole run, whatever encloses the flow.
    REVERT_ALL = "REVERT_ALL"
    #: Revert the flow's atoms and run the flow again.
    RETRY = "RETRY"


RETRY: Final = Decision.RETRY
REVERT: Final = Decision.REVERT
REVERT_ALL: Final = Decision.REVERT_ALL


class History:
    """A controller's attempts so far: ``(provided value, {atom name: Failure})`` each.

    ``len()`` is the number of attempts made (the current one included), iteration
    gives the entries oldest first, and ``failure`` is the controller's own failure
    when its ``execute`` raised.
    """

    __slots__ = ("_contents", "_failure")

    def __init__(self, contents: Sequence[Attempt], failure: Failure | None = None) -> None:
        self._contents = contents
        self._failure = failure

    @property
    def failure(self) -> Failure | None:
        """The controller's own failure (its ``execute`` raised), or None."""
        return self._failure

    def outcomes_iter(self, index: int | None = None) -> Iterator[tuple[str, Failure]]:
        """``(atom name, Failure)`` for every failure met, or for attempt ``index`` only.

        The controller's own failure is not among them: see :attr:`failure`.
        """
        entries = self._contents if index is None else [self._contents[index]]
        for _, failures in entries:
            yield from failures.items()

    def provided_iter(self) -> Iterator[Any]:
        """The values the controller's ``execute`` returned, one per attempt, in order."""
        for provided, _ in self._contents:
            yield provided

    def caused_by(
        self,
        exception_cls: type[BaseException] | str,
        index: int | None = None,
        include_retry: bool = False,
    ) -> bool:
        """Say whether a failure met (in attempt ``index``, or in any) is an ``exception_cls``.

        With ``include_retry``, the controller's own failure counts too.
        """
        for _, failure in self.outcomes_iter(index):
            if failure.check(exception_cls):
                return True
        return bool(include_retry and self._failure and self._failure.check(exception_cls))

    def __len__(self) -> int:
        return len(self._contents)

    def __getitem__(self, index: int) -> Attempt:
        return self._contents[index]

    def __iter__(self) -> Iterator[Attempt]:
        return iter(self._contents)

    def __repr__(self) -> str:
        return f"History({list(self._contents)!r}, failure={self._failure!r})"


# -- back-off policies -------------------------------------------------------------------


class Backoff:
    """How long to wait before an attempt: small objects, summed with ``+``.

    Subclasses define :meth:`delay`. The engine asks once per retry and waits out the
    delay between the revert and the next attempt, holding no worker thread.
    """

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (the first retry is attempt 2)."""
        raise NotImplementedError(f"{type(self).__name__} must implement delay()")

    def __add__(self, other: Backoff) -> Backoff:
        if not isinstance(other, Backoff):
            return NotImplemented
        return _SumBackoff(self, other)


class _SumBackoff(Backoff):
    """Two back-offs added: a fixed floor plus an exponential part, for instance."""

    def __init__(self, first: Backoff, second: Backoff) -> None:
        self.parts = (first, second)

    def delay(self, attempt: int) -> float:
        return sum(part.delay(attempt) for part in self.parts)

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.parts))


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class FixedBackoff(Backoff):
    """The same wait before every retry."""

    def __init__(self, seconds: float) -> None:
        self.seconds = _seconds(seconds, "FixedBackoff(seconds)")

    def delay(self, attempt: int) -> float:
        return self.seconds

    def __repr__(self) -> str:
        return f"FixedBackoff({self.seconds!r})"


class ExponentialBackoff(Backoff):
    """``initial * multiplier ** (retry - 1)`` seconds, at most ``cap``, with optional jitter.

    ``jitter`` is the fraction of each delay drawn at random (``1.0``: anywhere between
    0 and the delay, AWS's "full jitter"; ``0.0``: none). ``random`` returns floats in
    [0, 1); pass a seeded one (``random.Random(7).random``) for repeatable delays.
    """

    def __init__(
        self,
        initial: float = 1.0,
        multiplier: float = 2.0,
        cap: float = 60.0,
        jitter: float = 0.0,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.initial = _seconds(initial, "ExponentialBackoff(initial)")
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
            raise TypeError(f"ExponentialBackoff(multiplier) must be a number, got {multiplier!r}")
        if not multiplier >= 1:
            raise ValueError(f"ExponentialBackoff(multiplier) must be >= 1, got {multiplier!r}")
        self.multiplier = float(multiplier)
        self.cap = _seconds(cap, "ExponentialBackoff(cap)")
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ValueError(f"ExponentialBackoff(jitter) must be between 0 and 1, got {jitter!r}")
        self.jitter = float(jitter)
        if random is None:
            import random as _random  # noqa: PLC0415  # deferred: most runs never back off

            random = _random.random
        self._random = random

    def delay(self, attempt: int) -> float:
        retries = max(attempt - 1, 1)
        try:
            wait = min(self.cap, self.initial * self.multiplier ** (retries - 1))
        except OverflowError:
            wait = self.cap
        if self.jitter:
            wait -= wait * self.jitter * self._random()
        return wait

    def __repr__(self) -> str:
        return (
            f"ExponentialBackoff(initial={self.initial!r}, multiplier={self.multiplier!r}, "
            f"cap={self.cap!r}, jitter={self.jitter!r})"
        )


# -- controllers -------------------------------------------------------------------------


def _exception_types(value: ExceptionTypes | None, owner: str) -> tuple[type[BaseException], ...]:
    if value is None:
        return ()
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"{owner}: retry_on= takes exception classes (one or a tuple), got {item!r}"
            )
    if not types:
        raise ValueError(f"{owner}: retry_on= is empty; leave it out to retry on any failure")
    return types


class Retry(Atom):
    """A controller that guards a flow: subclass it and define ``execute`` and ``on_failure``.

    ``execute(history, ...)`` runs before each attempt of the flow; what it returns is
    provided under ``provides`` and recorded in the history. ``on_failure(history, ...)``
    gets the same arguments and returns a :class:`Decision`. ``revert(history, ...,
    flow_failures)`` runs when the controller itself is reverted (it gave up, or an
    enclosing decision reverts it). All three run on the engine's own thread.

    ``backoff`` waits between a revert and the next attempt; with ``retry_on``, only
    failures of those exception types are put to ``on_failure``: any other gives up at
    once (``REVERT``, or ``REVERT_ALL`` for a controller made with ``revert_all=True``).
    """

    _is_retry: ClassVar[bool] = True
    #: What giving up means for this controller (``revert_all=True`` makes it REVERT_ALL).
    _give_up: Decision = Decision.REVERT
    backoff: Backoff | None = None
    retry_on: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        name: str | None = None,
        provides: Provides = None,
        requires: Requires = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        *,
        backoff: Backoff | None = None,
        retry_on: ExceptionTypes | None = None,
    ) -> None:
        cls = type(self)
        if cls.on_failure is Retry.on_failure:
            raise TypeError(
                f"{cls.__qualname__} has no on_failure(): a retry controller says what a "
                "failure in its flow means by defining on_failure(history, ...) returning a "
                "tideflow.retry.Decision"
            )
        if cls.execute is Retry.execute:
            raise TypeError(
                f"{cls.__qualname__} has no execute(): a retry controller defines "
                "execute(history, ...), run before each attempt of its flow (return None "
                "when it provides nothing)"
            )
        super().__init__(
            name=name,
            provides=provides,
            requires=requires,
            auto_extract=auto_extract,
            rebind=rebind,
            ignore_list=[EXECUTE_REVERT_HISTORY],
        )
        if backoff is not None:
            if not isinstance(backoff, Backoff):
                raise TypeError(
                    f"retry {self.name!r}: backoff= takes a tideflow.retry.Backoff "
                    f"(FixedBackoff, ExponentialBackoff, or a sum of them), got {backoff!r}"
                )
            self.backoff = backoff
        if retry_on is not None:
            self.retry_on = _exception_types(retry_on, f"retry {self.name!r}")

    def execute(self, history: History, *args: Any, **kwargs: Any) -> Any:
        """Run before each attempt; the value returned is provided to the flow's atoms."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    def revert(self, history: History, *args: Any, **kwargs: Any) -> Any:
        """Undo what ``execute`` did (the default does nothing)."""
        return None

    def on_failure(self, history: History, *args: Any, **kwargs: Any) -> Decision:
        """Decide what a failure in the flow means: RETRY, REVERT or REVERT_ALL."""
        raise NotImplementedError(f"{type(self).__name__} must implement on_failure()")

    def decide(self, history: History, failure: Failure, kwargs: Mapping[str, Any]) -> Decision:
        """The decision the engine carries out for ``failure`` (the latest in ``history``).

        Applies ``retry_on`` first, then asks :meth:`on_failure`; a value that is not a
        :class:`Decision` (or its string) raises ValueError.
        """
        if self.retry_on and not failure.check(*self.retry_on):
            return self._give_up
        decision = self.on_failure(history=history, **kwargs)
        try:
            return Decision(decision)
        except ValueError:
            raise ValueError(
                f"retry {self.name!r}: on_failure() returned {decision!r}; it must return "
                "tideflow.retry.RETRY, REVERT or REVERT_ALL"
            ) from None

    def delay(self, attempt: int) -> float:
        """Seconds the engine waits before attempt ``attempt`` (0 without a back-off)."""
        backoff = self.backoff
        return backoff.delay(attempt) if backoff is not None else 0.0


class AlwaysRevert(Retry):
    """Never retries: a failure reverts the flow and the enclosing controller decides."""

    def execute(self, history: History) -> None:
        return None

    def on_failure(self, history: History) -> Decision:
        return Decision.REVERT


class AlwaysRevertAll(Retry):
    """Never retries: a failure in the flow reverts the whole run."""

    _give_up = Decision.REVERT_ALL

    def execute(self, history: History) -> None:
        return None

    def on_failure(self, history: History) -> Decision:
        return Decision.REVERT_ALL


class Times(Retry):
    """Runs the flow up to ``attempts`` times; provides the attempt number (1, 2, ...).

    When the attempts are used up it gives up: ``REVERT``, or ``REVERT_ALL`` with
    ``revert_all=True``.
    """

    def __init__(
        self,
        attempts: int = 1,
        name: str | None = None,
        provides: Provides = None,
        requires: Requires = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        revert_all: bool = False,
        *,
        backoff: Backoff | None = None,
        retry_on: ExceptionTypes | None = None,
    ) -> None:
        super().__init__(
            name,
            provides,
            requires,
            auto_extract,
            rebind,
            backoff=backoff,
            retry_on=retry_on,
        )
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise TypeError(f"retry {self.name!r}: attempts must be an int, got {attempts!r}")
        self.attempts = attempts
        if revert_all:
            self._give_up = Decision.REVERT_ALL

    def execute(self, history: History) -> int:
        return len(history) + 1

    def on_failure(self, history: History) -> Decision:
        return Decision.RETRY if len(history) < self.attempts else self._give_up


def _next_value(values: Iterable[Any], history: History, name: str) -> Any:
    """The first of ``values`` not yet tried (each tried value used up once: repeats count)."""
    remaining = list(values)
    for tried in history.provided_iter():
        for i, value in enumerate(remaining):
            if value == tried:
                del remaining[i]
                break
    if not remaining:
        raise NotFoundError(f"retry {name!r} has no values left to try")
    return remaining[0]


class ForEachBase(Retry):
    """A controller that tries the values of a collection one after the other."""

    def __init__(
        self,
        name: str | None = None,
        provides: Provides = None,
        requires: Requires = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        revert_all: bool = False,
        *,
        backoff: Backoff | None = None,
        retry_on: ExceptionTypes | None = None,
    ) -> None:
        super().__init__(
            name,
            provides,
            requires,
            auto_extract,
            rebind,
            backoff=backoff,
            retry_on=retry_on,
        )
        if revert_all:
            self._give_up = Decision.REVERT_ALL

    def _get_next_value(self, values: Iterable[Any], history: History) -> Any:
        return _next_value(values, history, self.name)

    def _on_failure(self, values: Iterable[Any], history: History) -> Decision:
        try:
            _next_value(values, history, self.name)
        except NotFoundError:
            return self._give_up
        return Decision.RETRY


class ForEach(ForEachBase):
    """Tries each of ``values`` in turn, providing the one being tried."""

    def __init__(
        self,
        values: Iterable[Any],
        name: str | None = None,
        provides: Provides = None,
        requires: Requires = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        revert_all: bool = False,
        *,
        backoff: Backoff | None = None,
        retry_on: ExceptionTypes | None = None,
    ) -> None:
        super().__init__(
            name,
            provides,
            requires,
            auto_extract,
            rebind,
            revert_all,
            backoff=backoff,
            retry_on=retry_on,
        )
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise TypeError(
                f"retry {self.name!r}: values must be a collection of values to try, got {values!r}"
            )
        self.values = list(values)

    def execute(self, history: History) -> Any:
        return _next_value(self.values, history, self.name)

    def on_failure(self, history: History) -> Decision:
        return self._on_failure(self.values, history)


class ParameterizedForEach(ForEachBase):
    """Like :class:`ForEach`, with the values taken from the run (``values``, or ``rebind``)."""

    def execute(self, values: Iterable[Any], history: History) -> Any:  # type: ignore[override]
        return _next_value(values, history, self.name)

    def on_failure(self, values: Iterable[Any], history: History) -> Decision:  # type: ignore[override]
        return self._on_failure(values, history)
