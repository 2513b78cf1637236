"""What a job board is: the Job record, its states, the Board protocol and its errors.

A *job* is a flow to run: the import path of a factory that builds it (``'pkg.mod:func'``),
the arguments to call it with, the values to put in the run's store, a priority and
free-form details. A *board* keeps jobs where many processes (conductors) can see them.

A conductor *claims* a job before running it. A claim is a **lease**: it holds for
``lease`` seconds and the owner renews it while the run goes on; a lease that ran out
is free for anyone to claim, so a dead conductor's job is picked up again without a
reaper. Each claim of a job increments the job's **fencing token** and hands it to the
new owner; every later call of that owner (``renew``, ``consume``, ``abandon``,
``trash``) and every write its run makes names that token, and is refused with
:class:`LeaseLostError` once another claim has replaced it (a SQL board checks a write
inside the write's own transaction with ``SqlBoard.check_fence``; on any board
:meth:`Board.current_token` tells whether a token is still current). An owner paused
past its lease (SIGSTOP, a long GC pause) therefore wakes up unable to commit anything.

Job states::

    UNCLAIMED --claim--> CLAIMED --consume--> (removed from the board)
        ^                   |  \\--trash----> TRASHED
        |                   |
        +----abandon--------+   (an attempt; the max_attempts-th moves it to TRASHED)
        +----lease runs out-+   (nothing is written until a claim takes it over,
                                 counting an attempt; the owner may renew until then)

**Attempts.** A job's ``attempts`` counts the claims that ended without the job being
consumed or trashed by its owner: each :meth:`Board.abandon`, and each claim that takes
over a lease that ran out (its previous owner died or hung, so that run failed too).
When the count reaches the board's ``max_attempts`` the job moves to TRASHED instead of
back to UNCLAIMED, or instead of being claimed: the claim that would have taken over the
lease trashes the job and is refused with :class:`JobClaimedError` (``claim_next``
moves on to the next job). So a job that crashes its worker every time stops cycling
after ``max_attempts`` runs, the same as one that fails cleanly every time.

**Notifications.** ``board.notifier`` (a :class:`~tideflow._notifier.Notifier`; its
callbacks are called as ``callback(event, details=details)``) reports, with details
``{'job': Job}``:

- :data:`POSTED` when *this board object* first meets a job: it posts it, or it reads
  it (``get``, ``iterjobs``, ``claim``, ``claim_next``, ``renew``, and ``wait`` while
  anyone listens: it then lists the board each time it looks) and had not announced it
  before. The Job is the snapshot that call read.
- :data:`REMOVAL` when a job it announced leaves the board: this board consumes it,
  trashes it (``trash``, the last ``abandon``, a claim over the last attempt), or reads
  it as TRASHED, or finds it gone (``get`` or an owner call finding no job, or a full
  ``iterjobs()`` listing, or ``wait``'s, not containing it). The Job is the last
  snapshot this board read (as trashed, when it was trashed).

So every REMOVAL follows a POSTED of the same job on the same board object, and each is
sent at most once per job while listeners stay registered. A board reports only what
its own calls read: jobs posted and consumed elsewhere between two of its readings are
never announced. Events are sent after the board's write has been made, in the calling
thread. Nothing is tracked while nobody is registered (a listener registered later
hears POSTED for the jobs the board reads from then on, including those already there).

Errors (all under :class:`~tideflow.errors.TideflowError`)::

    StoreError
    └── LeaseLostError          the caller's claim was replaced (or the job is gone)
    JobClaimedError             claim refused: another owner holds a live lease, or the
                                job is trashed (or was, by this claim: see Attempts)
    FactoryNotAllowedError      the factory's module is outside the board's allow-list
    NotFoundError               no job with that uuid
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

from tideflow._notifier import Notifier
from tideflow.errors import StoreError, TideflowError

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "EVENTS",
    "POSTED",
    "REMOVAL",
    "Board",
    "FactoryNotAllowedError",
    "Job",
    "JobClaimedError",
    "JobState",
    "LeaseLostError",
    "Settled",
    "allows_module",
    "check_factory",
    "import_factory",
]

#: Seconds a claim holds unless renewed.
DEFAULT_LEASE: Final = 10.0
#: Attempts (abandons and taken-over leases) after which a job moves to TRASHED.
DEFAULT_MAX_ATTEMPTS: Final = 5
#: Event: a job this board object had not seen is on the board (TaskFlow's name).
POSTED: Final = "POSTED"
#: Event: a job this board object had announced is consumed or trashed (TaskFlow's name).
REMOVAL: Final = "REMOVAL"
#: The events ``board.notifier`` reports.
EVENTS: Final = (POSTED, REMOVAL)


class LeaseLostError(StoreError):
    """The caller's claim on a job is no longer current: another claim replaced it, or the
    job was consumed, trashed or abandoned. Nothing of the refused call was written; the
    caller must stop working on the job."""


class JobClaimedError(TideflowError):
    """A claim was refused: another owner holds a live lease on the job, or the job is
    trashed (TaskFlow's ``UnclaimableJob``)."""


class FactoryNotAllowedError(TideflowError):
    """A job names a flow factory outside the board's allow-list of module prefixes."""


class JobState(enum.StrEnum):
    """Where a job is in its life on the board."""

    UNCLAIMED = "UNCLAIMED"
    CLAIMED = "CLAIMED"
    TRASHED = "TRASHED"


@dataclasses.dataclass(frozen=True)
class Job:
    """One job as the board held it when it was read (a snapshot: read it again to see
    later changes).

    ``factory`` is ``'package.module:function'``; the run is built by calling it with
    ``args`` and ``kwargs``, and ``store`` holds the values the run's atoms may require.
    Higher ``priority`` runs sooner; jobs of equal priority run oldest first. ``token``
    is the fencing token of the latest claim (0 if never claimed); ``attempts`` counts
    abandons and taken-over leases. Times are seconds since the epoch on the board's
    clock (the database or Redis server's, so that machines with skewed clocks agree on
    when a lease ends).
    """

    uuid: str
    name: str
    factory: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    store: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 0
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    state: JobState = JobState.UNCLAIMED
    owner: str | None = None
    lease_expires: float | None = None
    token: int = 0
    attempts: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


class Settled(NamedTuple):
    """What ``consume_and_claim`` did: the jobs it claimed (in claim order: highest
    priority, then oldest) and the uuids of the finished jobs it could not consume
    because their claims were lost (replaced by another claim, or the job is gone)."""

    claimed: list[Job]
    lost: list[str]


@runtime_checkable
class Board(Protocol):
    """The operations every job board offers (:class:`~tideflow.jobs.sql.SqlBoard`,
    :class:`~tideflow.jobs.redis.RedisBoard`)."""

    url: str
    allowed: tuple[str, ...]
    max_attempts: int
    #: Reports POSTED and REMOVAL (see the module docstring for exactly when).
    notifier: Notifier

    def post(
        self,
        name: str,
        factory: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        store: Mapping[str, Any] | None = None,
        priority: int = 0,
        details: Mapping[str, Any] | None = None,
    ) -> Job:
        """Add a job (FactoryNotAllowedError if ``factory`` is outside the allow-list)."""
        ...

    def get(self, job: Job | str) -> Job:
        """The job as the board holds it now (NotFoundError if it is gone)."""
        ...

    def iterjobs(self, only_unclaimed: bool = False) -> Iterator[Job]:
        """Jobs not trashed, highest priority first, then oldest first. A job whose lease
        ran out counts as unclaimed."""
        ...

    def claim(self, job: Job | str, who: str, lease: float = DEFAULT_LEASE) -> Job:
        """Make ``who`` the job's owner for ``lease`` seconds; the returned Job carries
        the new fencing token. Of processes racing for one job exactly one wins; the
        others get JobClaimedError (so does a claim that trashed the job because taking
        over its lease was its last attempt)."""
        ...

    def claim_next(self, who: str, lease: float = DEFAULT_LEASE) -> Job | None:
        """Claim the first free job in iterjobs order, or None if there is none."""
        ...

    def renew(self, job: Job | str, who: str, token: int, lease: float = DEFAULT_LEASE) -> Job:
        """Extend the lease to ``lease`` seconds from now (LeaseLostError if ``token`` is
        no longer the job's current claim)."""
        ...

    def consume(self, job: Job | str, who: str, token: int) -> None:
        """Remove a finished job from the board (LeaseLostError if the claim was lost)."""
        ...

    def abandon(self, job: Job | str, who: str, token: int) -> Job:
        """Give the job back for another claim, counting an attempt; the
        ``max_attempts``-th attempt moves it to TRASHED instead."""
        ...

    def trash(self, job: Job | str, who: str, token: int) -> Job:
        """Move the job to TRASHED: it stays on the board but is never claimed again."""
        ...

    def current_token(self, job: Job | str) -> int | None:
        """The fencing token of the job's claim while it is CLAIMED (its lease may have
        run out, as long as no other claim replaced it); None if it is unclaimed,
        trashed or gone. An owner holding ``token`` may still write iff this equals it."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Return True as soon as an unclaimed job exists, False after ``timeout`` s."""
        ...

    def close(self) -> None:
        """Release the board's connections (idempotent)."""
        ...


_NAME: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_PUBLIC: Final = r"[A-Za-z][A-Za-z0-9_]*"
# after the colon, public names only: a path through ``__globals__``, ``__self__`` or a
# module the factory's module imported (``myapp.flows:os.system``) would leave the list
_FACTORY: Final = re.compile(rf"({_NAME}(?:\.{_NAME})*):({_PUBLIC}(?:\.{_PUBLIC})*)")


def allows_module(allowed: Sequence[str], module: str) -> bool:
    """Whether ``module`` is one of the ``allowed`` prefixes or lies under one."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


def import_factory(factory: str, allowed: Sequence[str], where: str) -> Any:
    """The callable ``factory`` names, imported, if it passes :func:`check_factory` and
    was *defined* in a module under ``allowed`` (so a name the module merely imported,
    ``myapp.flows:shutil``-style re-exports included, is refused); else ImportError,
    AttributeError, TypeError or FactoryNotAllowedError saying why."""
    import importlib  # noqa: PLC0415  # only where jobs run

    check_factory(factory, allowed, where)
    module_name, _, path = factory.partition(":")
    found: Any = importlib.import_module(module_name)
    for name in path.split("."):
        found = getattr(found, name)
    defined_in = getattr(found, "__module__", None)
    if not isinstance(defined_in, str) or not allows_module(allowed, defined_in):
        raise FactoryNotAllowedError(
            f"{where} refuses the flow factory {factory!r}: it is "
            + (f"defined in {defined_in!r}" if isinstance(defined_in, str) else "not a function")
            + f", outside the board's allow-list {list(allowed)} (a factory must be defined in "
            "an allowed module, not only imported into one)"
        )
    if not callable(found):
        raise TypeError(f"the flow factory {factory!r} is not callable ({type(found).__name__})")
    return found


def check_factory(factory: object, allowed: Sequence[str], where: str) -> str:
    """``factory`` if it is ``'module:function'`` with a module under one of the
    ``allowed`` prefixes; else TypeError/ValueError/FactoryNotAllowedError saying why.
    The part after the colon is public names only (no ``_`` at the start of any)."""
    if not isinstance(factory, str):
        raise TypeError(
            f"a job's factory is the import path of a function, 'package.module:function', "
            f"got {factory!r} ({type(factory).__name__})"
        )
    match = _FACTORY.fullmatch(factory)
    if match is None:
        raise ValueError(
            f"a job's factory is the import path of a public function, "
            f"'package.module:function' (no name after the colon starts with '_'), "
            f"got {factory!r}"
        )
    module = match.group(1)
    if not allows_module(allowed, module):
        if not allowed:
            hint = "the board allows no factory: open it with allowed=('yourapp.flows',)"
        else:
            hint = f"it allows modules under {list(allowed)}; add a prefix to allowed= to run it"
        raise FactoryNotAllowedError(
            f"{where} refuses the flow factory {factory!r}: its module {module!r} is not on "
            f"the board's allow-list ({hint}). The allow-list keeps a row written to a shared "
            "database from making a worker import arbitrary code"
        )
    return factory
