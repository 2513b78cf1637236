"""TaskFlow's ``taskflow.jobs.base``: jobs and job boards, over tideflow's boards.

A :class:`JobBoard` (what :func:`taskflow.jobs.backends.fetch` returns) holds one of
tideflow's boards (:mod:`tideflow.jobs`: SQL or Redis) and offers TaskFlow's API on it:
``post(name, book=None, details=None, priority=...)``, ``iterjobs``, ``claim``,
``consume``, ``abandon``, ``trash``, ``wait``, ``job_count``, ``find_owner`` and a
``notifier`` reporting :data:`POSTED` and :data:`REMOVAL`.

How a TaskFlow job becomes a tideflow job: TaskFlow's job carries a logbook whose flow
detail holds the factory :func:`taskflow.engines.save_factory_details` saved. ``post``
takes that flow detail (``details['flow_uuid']``, else the book's only one) and posts
its factory (``'module:function'``, with its arguments) as the job's factory, the
flow detail's ``meta['store']`` updated with ``details['store']`` as the job's store,
and the details with ``flow_uuid``, ``book_uuid`` and ``book_name`` added, so that a
conductor resumes that very record from the store. A job without a flow (no book, a
book without a flow detail or without a saved factory) is posted for a program's own
workers; conductors trash it, as TaskFlow's do.

Claims are tideflow's leases with fencing tokens. TaskFlow's API has no token: the
board object remembers the token of each claim made through it, renews those leases
(every third of ``lease``) until the claim ends or the board is closed, and names the
token in ``consume``/``abandon``/``trash``. So a program that dies loses its claims
after a lease (TaskFlow's claims never expire), and only the board object that made a
claim can end it (TaskFlow would accept any caller giving the owner's name).

Errors keep TaskFlow's names: a claim refused is :class:`~taskflow.exceptions.UnclaimableJob`;
a job that is gone, or an owner call on an unclaimed job, :class:`~taskflow.exceptions.NotFound`;
an owner call by someone else, a board that cannot be reached or is not connected,
:class:`~taskflow.exceptions.JobFailure`. ``job.state`` reads the board each time:
``UNCLAIMED``, ``CLAIMED`` (a live lease), ``COMPLETE`` (consumed or trashed, as
TaskFlow's boards report a job that left their listings).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from taskflow import exceptions as exc
from taskflow import states
from tideflow import Notifier
from tideflow.errors import NotFoundError, StoreError
from tideflow.jobs import (
    DEFAULT_LEASE,
    FactoryNotAllowedError,
    JobClaimedError,
    JobState,
    LeaseLostError,
)
from tideflow.jobs import Board as TideflowBoard
from tideflow.jobs import Job as TideflowJob
from tideflow.persistence.models import FlowDetail, LogBook

__all__ = [
    "NO_FLOW_FACTORY",
    "POSTED",
    "REMOVAL",
    "Job",
    "JobBoard",
    "JobPriority",
    "NotifyingJobBoard",
]

#: Event: a job is on the board (TaskFlow's name).
POSTED: Final = "POSTED"
#: Event: a job left the board, consumed or trashed (TaskFlow's name).
REMOVAL: Final = "REMOVAL"
#: The factory of jobs posted without a flow (see :mod:`taskflow.jobs._no_flow`).
NO_FLOW_FACTORY: Final = "taskflow.jobs._no_flow:no_flow_to_run"
_NO_FLOW_MODULE: Final = NO_FLOW_FACTORY.partition(":")[0]
#: Keys ``post`` adds to a job's details.
_ADDED: Final = ("flow_uuid", "book_uuid", "book_name")

LOG: Final = logging.getLogger("taskflow.jobs")


class JobPriority(enum.Enum):
    """TaskFlow's job priorities; a higher one is claimed first (tideflow's 2 to -2)."""

    VERY_HIGH = "VERY_HIGH"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"
    VERY_LOW = "VERY_LOW"

    @classmethod
    def convert(cls, value: JobPriority | str) -> JobPriority:
        """``value`` as a priority (its name in any case), or ValueError naming them."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value.upper())  # type: ignore[union-attr]
        except (ValueError, AttributeError):
            valid = [p.value for p in cls]
            raise ValueError(
                f"'{value}' is not a valid priority, valid priorities are {valid}"
            ) from None

    @property
    def level(self) -> int:
        """The priority as tideflow's board keeps it (higher runs sooner)."""
        return _LEVELS[self]

    @classmethod
    def of_level(cls, level: int) -> JobPriority:
        """The priority of a tideflow job's ``priority`` (beyond 2 or -2: the extreme)."""
        return _BY_LEVEL[max(-2, min(2, level))]


_LEVELS: Final = {
    JobPriority.VERY_HIGH: 2,
    JobPriority.HIGH: 1,
    JobPriority.NORMAL: 0,
    JobPriority.LOW: -1,
    JobPriority.VERY_LOW: -2,
}
_BY_LEVEL: Final = {level: priority for priority, level in _LEVELS.items()}


def _utc(seconds: float) -> datetime.datetime:
    # TaskFlow's job times are naive datetimes in UTC (oslo's utcnow())
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(tzinfo=None)


class Job:
    """One job on a :class:`JobBoard`, as TaskFlow's jobs present it.

    ``name``, ``uuid``, ``details``, ``priority``, ``created_on`` and ``last_modified``
    are those read when this object was made; ``state`` reads the board each time;
    ``book`` is loaded from the board's persistence when first asked for.
    """

    def __init__(self, board: JobBoard, record: TideflowJob, book: LogBook | None = None) -> None:
        self._board = board
        self._record = record
        self._book = book

    @property
    def record(self) -> TideflowJob:
        """The tideflow job this one presents (a snapshot of when it was read)."""
        return self._record

    @property
    def board(self) -> JobBoard:
        """The board this job was read from."""
        return self._board

    @property
    def uuid(self) -> str:
        """The job's uuid."""
        return self._record.uuid

    @property
    def name(self) -> str:
        """The job's (not unique) name."""
        return self._record.name

    @property
    def details(self) -> dict[str, Any]:
        """The details it was posted with, plus ``flow_uuid``/``book_uuid``/``book_name``
        when it carries a logbook."""
        return dict(self._record.details)

    @property
    def priority(self) -> JobPriority:
        """Its priority."""
        return JobPriority.of_level(self._record.priority)

    @property
    def created_on(self) -> datetime.datetime:
        """When it was posted (naive, UTC, as TaskFlow's)."""
        return _utc(self._record.created_at)

    @property
    def last_modified(self) -> datetime.datetime:
        """When the board last changed it (naive, UTC)."""
        return _utc(self._record.updated_at or self._record.created_at)

    @property
    def book_uuid(self) -> str | None:
        """The uuid of its logbook (None if it was posted without one)."""
        if self._book is not None:
            return self._book.uuid
        value = self._record.details.get("book_uuid")
        return value if isinstance(value, str) else None

    @property
    def book_name(self) -> str | None:
        """The name of its logbook (None if it was posted without one)."""
        if self._book is not None:
            return self._book.name
        value = self._record.details.get("book_name")
        return value if isinstance(value, str) else None

    @property
    def book(self) -> LogBook | None:
        """Its logbook, read from the board's persistence (None without either)."""
        if self._book is None:
            self._book = self._board._load_book(self.book_uuid)
        return self._book

    @property
    def state(self) -> str:
        """``UNCLAIMED``, ``CLAIMED`` or ``COMPLETE``, as the board holds it now."""
        return self._board._state_of(self.uuid)

    def wait(
        self,
        timeout: float | None = None,
        delay: float = 0.01,
        delay_multiplier: float = 2.0,
        max_delay: float = 60.0,
        sleep_func: Callable[[float], Any] = time.sleep,
    ) -> bool:
        """Wait until the job is COMPLETE (True), or ``timeout`` seconds (False); the
        board is read after ``delay`` s, then ever less often up to ``max_delay``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state == states.COMPLETE:
                return True
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                delay = min(delay, left)
            sleep_func(delay)
            delay = min(delay * delay_multiplier, max_delay)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.uuid == self.uuid

    def __hash__(self) -> int:
        return hash(self.uuid)

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}: {self.name} (priority={self.priority}, uuid={self.uuid}, "
            f"details={self.details})"
        )

    __repr__ = __str__


class _Relay(Notifier):
    """The board's notifier: it hears the tideflow board's events only while someone is
    registered (so the tideflow board tracks no job while nobody listens)."""

    def __init__(self, changed: Callable[[], None]) -> None:
        super().__init__(known_events=lambda: (POSTED, REMOVAL))
        self._changed = changed

    def register(self, *args: Any, **kwargs: Any) -> None:
        super().register(*args, **kwargs)
        self._changed()

    def deregister(self, *args: Any, **kwargs: Any) -> bool:
        removed = super().deregister(*args, **kwargs)
        self._changed()
        return removed

    def deregister_event(self, event_type: str) -> int:
        removed = super().deregister_event(event_type)
        self._changed()
        return removed

    def reset(self) -> None:
        super().reset()
        self._changed()


class _Claims:
    """The claims made through one board object: their tokens, and a thread renewing
    their leases every third of ``lease`` until they end or the board is closed."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self._held: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.board: TideflowBoard | None = None

    def add(self, board: TideflowBoard, key: str, who: str, token: int) -> None:
        with self._lock:
            self.board = board
            self._held[key] = (who, token)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._renew, name="taskflow-job-claims", daemon=True
                )
                self._thread.start()

    def get(self, key: str) -> tuple[str, int] | None:
        with self._lock:
            return self._held.get(key)

    def drop(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._held.clear()
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._lock:
                held = list(self._held.items())
                board = self.board
            for key, (who, token) in held:
                if board is None or self._stop.is_set():
                    return
                try:
                    board.renew(key, who, token, self.lease)
                except (LeaseLostError, NotFoundError) as error:
                    LOG.warning("the claim of %r on job %s was lost: %s", who, key, error)
                    self.drop(key)
                except Exception as error:  # the board's trouble: try again next round
                    LOG.warning("renewing the claim of %r on job %s failed: %s", who, key, error)


def _check_who(who: object) -> str:
    if not isinstance(who, str):
        raise TypeError("Job applicant must be a string type")
    if not who:
        raise ValueError("Job applicant must be non-empty")
    return who


def _factory_path(dotted: str) -> str:
    """``'pkg.mod.func'`` (as a flow detail records it) as ``'pkg.mod:func'``: the
    longest prefix that is an imported module (the poster has usually imported it)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in sys.modules:
            return f"{module}:{'.'.join(parts[cut:])}"
    module, _, attr = dotted.rpartition(".")
    return f"{module}:{attr}"


def _flow_of(book: LogBook, details: Mapping[str, Any]) -> FlowDetail | None:
    """The flow detail a job runs: ``details['flow_uuid']``, else the book's only one."""
    flow_uuid = details.get("flow_uuid")
    if flow_uuid is not None:
        found = book.find(flow_uuid)
        if found is None:
            raise exc.NotFound(
                f"No matching flow detail found in jobs book {book.name!r} ({book.uuid}) for "
                f"flow detail with uuid {flow_uuid}"
            )
        return found
    flows = list(book)
    return flows[0] if len(flows) == 1 else None


class JobBoard:
    """TaskFlow's job board API over one of tideflow's boards (see the module docstring).

    Made by :func:`taskflow.jobs.backends.fetch`; ``connect()`` opens the tideflow board
    (``url`` with ``options``), and every other call needs it open, as in TaskFlow.
    ``allowed`` are the module prefixes whose flow factories jobs may name (and
    conductors over this board may run); ``lease`` is how long each claim holds unless
    renewed; ``persistence`` is where jobs' logbooks are read from.
    """

    def __init__(
        self,
        name: str,
        conf: Mapping[str, Any],
        *,
        url: str,
        options: Mapping[str, Any],
        allowed: Sequence[str],
        lease: float = DEFAULT_LEASE,
        persistence: Any = None,
    ) -> None:
        self._name = name
        self._conf = dict(conf)
        self.url = url
        self.options = dict(options)
        self.allowed: tuple[str, ...] = tuple(allowed)
        self.lease = float(lease)
        self.persistence = persistence
        self._board: TideflowBoard | None = None
        self._claims = _Claims(self.lease)
        self._relaying = False
        self._lock = threading.RLock()
        self.notifier: Notifier = _Relay(self._sync_relay)

    # -- connection -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The board's (not unique) name."""
        return self._name

    @property
    def conf(self) -> dict[str, Any]:
        """The configuration it was fetched with."""
        return dict(self._conf)

    @property
    def connected(self) -> bool:
        """Whether ``connect()`` was called (and not ``close()`` since)."""
        return self._board is not None

    def connect(self) -> None:
        """Open the tideflow board; JobFailure if it cannot be reached. Idempotent."""
        from tideflow import jobs  # noqa: PLC0415  # a registry of boards

        with self._lock:
            if self._board is not None:
                return
            board = jobs.connect(self.url, allowed=(*self.allowed, _NO_FLOW_MODULE), **self.options)
            try:
                board.current_token("taskflow-connect-check")
            except StoreError as error:
                board.close()
                raise exc.JobFailure(
                    f"Failed to connect to the job board {self.name!r} at {board.url}: {error}"
                ) from error
            self._board = board
            self._relaying = False
            self._sync_relay()

    def close(self) -> None:
        """Close the tideflow board; claims made through this object are no longer
        renewed (their leases run out). Idempotent; ``connect()`` opens it again."""
        with self._lock:
            board, self._board = self._board, None
            self._claims.stop()
        if board is not None:
            board.close()

    def __enter__(self) -> JobBoard:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def tideflow_board(self) -> TideflowBoard:
        """The open tideflow board (JobFailure if not connected)."""
        board = self._board
        if board is None:
            raise exc.JobFailure(
                f"the job board {self.name!r} is not connected: call connect() first (or "
                "use taskflow.jobs.backends.backend(...) as a context manager)"
            )
        return board

    def register_entity(self, entity: object) -> None:
        """Nothing to do: tideflow's boards keep no register of conductors (TaskFlow's
        Redis board does nothing either); a claim's owner name says who holds a job."""
        del entity

    # -- notifications ------------------------------------------------------------------

    def _sync_relay(self) -> None:
        with self._lock:
            board = self._board
            if board is None:
                return
            want = len(self.notifier) > 0
            if want and not self._relaying:
                board.notifier.register(Notifier.ANY, self._relay)
            elif not want and self._relaying:
                board.notifier.deregister(Notifier.ANY, self._relay)
            self._relaying = want

    def _relay(self, event: str, details: Mapping[str, Any]) -> None:
        record = details.get("job")
        if isinstance(record, TideflowJob):
            self.notifier.notify(event, {"job": Job(self, record)})

    # -- reading ----------------------------------------------------------------------

    def _load_book(self, book_uuid: str | None) -> LogBook | None:
        if self.persistence is None or book_uuid is None:
            return None
        with contextlib.closing(self.persistence.get_connection()) as conn:
            try:
                book: LogBook = conn.get_logbook(book_uuid)
            except NotFoundError:
                return None
            return book

    def _state_of(self, key: str) -> str:
        with self._translated(key, "read"):
            try:
                record = self.tideflow_board.get(key)
            except NotFoundError:
                return states.COMPLETE
        return _state(record)

    def iterjobs(self, only_unclaimed: bool = False, ensure_fresh: bool = False) -> Iterator[Job]:
        """The jobs on the board, highest priority first, then oldest first
        (``ensure_fresh`` is accepted: every listing reads the board)."""
        del ensure_fresh
        with self._translated(None, "list the jobs of"):
            records = list(self.tideflow_board.iterjobs(only_unclaimed=only_unclaimed))
        return iter([Job(self, record) for record in records])

    @property
    def job_count(self) -> int:
        """How many jobs are on the board (claimed or not)."""
        with self._translated(None, "count the jobs of"):
            return sum(1 for _ in self.tideflow_board.iterjobs())

    def find_owner(self, job: Job | str) -> str | None:
        """Who holds a live claim on ``job`` (None if nobody)."""
        key = _key(job)
        with self._translated(key, "read"):
            record = self.tideflow_board.get(key)
        return record.owner if _state(record) == states.CLAIMED else None

    def wait(self, timeout: float | None = None) -> Iterator[Job]:
        """Wait until an unclaimed job is on the board and return the board's jobs;
        NotFound after ``timeout`` seconds (as TaskFlow's boards)."""
        started = time.monotonic()
        with self._translated(None, "wait on"):
            found = self.tideflow_board.wait(timeout)
        if not found:
            raise exc.NotFound(
                f"Expired waiting for jobs to arrive; waited {time.monotonic() - started} seconds"
            )
        return self.iterjobs()

    # -- writing ----------------------------------------------------------------------

    def post(
        self,
        name: str,
        book: LogBook | None = None,
        details: Mapping[str, Any] | None = None,
        priority: JobPriority | str = JobPriority.NORMAL,
    ) -> Job:
        """Post a job running ``book``'s flow detail (see the module docstring)."""
        level = JobPriority.convert(priority).level
        given = dict(details or {})
        flow = None if book is None else _flow_of(book, given)
        factory_meta = None if flow is None else flow.meta.get("factory")
        store = dict(given.get("store") or {})
        kept = dict(given)
        if book is not None:
            kept.update(book_uuid=book.uuid, book_name=book.name)
        if flow is not None and isinstance(factory_meta, Mapping) and factory_meta.get("name"):
            factory = _factory_path(str(factory_meta["name"]))
            args = list(factory_meta.get("args") or ())
            kwargs = dict(factory_meta.get("kwargs") or {})
            store = {**dict(flow.meta.get("store") or {}), **store}
            kept["flow_uuid"] = flow.uuid
        else:
            factory, args, kwargs = NO_FLOW_FACTORY, [], {}
        board = self.tideflow_board
        try:
            with self._translated(None, "post to"):
                record = board.post(
                    name,
                    factory,
                    args=args,
                    kwargs=kwargs,
                    store=store,
                    priority=level,
                    details=kept,
                )
        except FactoryNotAllowedError as error:
            raise exc.JobFailure(
                f"job {name!r} runs the flow factory {factory!r}, outside the allow-list of "
                f"the job board {self.name!r} ({list(self.allowed)}): conductors run only "
                "the factories of the module prefixes given as 'allowed' in the board's conf "
                "(or in TIDEFLOW_ALLOWED, comma-separated): add its module, or a prefix of it"
            ) from error
        return Job(self, record, book)

    def claim(self, job: Job | str, who: str) -> None:
        """Claim ``job`` for ``who`` (UnclaimableJob if someone else holds it, NotFound if
        it is gone); the lease is renewed until it is consumed, abandoned or trashed."""
        key = _key(job)
        _check_who(who)
        board = self.tideflow_board
        with self._translated(key, "claim"):
            try:
                record = board.claim(key, who, self.lease)
            except FactoryNotAllowedError as error:
                raise exc.UnclaimableJob(
                    f"Job {key} cannot be claimed here: {error}. Add its factory's module "
                    "to the board's 'allowed' prefixes to claim it"
                ) from error
            except JobClaimedError as error:
                raise exc.UnclaimableJob(str(error)) from error
        self._claims.add(board, key, who, record.token)

    def consume(self, job: Job | str, who: str) -> None:
        """Remove the job ``who`` claimed through this board (it is done)."""
        key = _key(job)
        token = self._token(key, _check_who(who), "consume")
        with self._translated(key, "consume", who):
            self.tideflow_board.consume(key, who, token)
        self._claims.drop(key)

    def abandon(self, job: Job | str, who: str) -> None:
        """Give the job ``who`` claimed back for another claim (tideflow counts an
        attempt: the board's ``max_attempts``-th moves it to the trash)."""
        key = _key(job)
        token = self._token(key, _check_who(who), "abandon")
        with self._translated(key, "abandon", who):
            self.tideflow_board.abandon(key, who, token)
        self._claims.drop(key)

    def trash(self, job: Job | str, who: str) -> None:
        """Move the job ``who`` claimed to the trash: it is never claimed again."""
        key = _key(job)
        token = self._token(key, _check_who(who), "trash")
        with self._translated(key, "trash", who):
            self.tideflow_board.trash(key, who, token)
        self._claims.drop(key)

    def _token(self, key: str, who: str, doing: str) -> int:
        """The fencing token of ``who``'s claim made through this object; otherwise the
        error TaskFlow gives for the job's state."""
        held = self._claims.get(key)
        if held is not None and held[0] == who:
            return held[1]
        with self._translated(key, doing):
            record = self.tideflow_board.get(key)
        if _state(record) != states.CLAIMED:
            raise exc.NotFound(
                f"Can not {doing} job {key} which we can not determine the owner of (it is "
                "not claimed)"
            )
        if record.owner != who:
            raise exc.JobFailure(
                f"Can not {doing} job {key} which is not owned by {who} (it is actively "
                f"owned by {record.owner})"
            )
        raise exc.JobFailure(
            f"Can not {doing} job {key}: {who} claimed it through another board object "
            "(or process), which holds the claim's fencing token; only that one can "
            f"{doing} it"
        )

    @contextlib.contextmanager
    def _translated(self, key: str | None, doing: str, who: str | None = None) -> Iterator[None]:
        """tideflow's board errors as TaskFlow's (see the module docstring)."""
        try:
            yield
        except LeaseLostError as error:
            if key is not None:
                self._claims.drop(key)
                gone = self._state_of(key) == states.COMPLETE
                if gone:
                    raise exc.NotFound(
                        f"Job {key} not found (consumed or trashed), cannot {doing} it: {error}"
                    ) from error
            raise exc.JobFailure(
                f"Can not {doing} job {key} which is not owned by {who} any more: {error}"
            ) from error
        except (NotFoundError, JobClaimedError, FactoryNotAllowedError):
            raise
        except StoreError as error:
            where = "the job board" if key is None else f"job {key} on the job board"
            raise exc.JobFailure(f"Failed to {doing} {where} {self.name!r}: {error}") from error

    def __repr__(self) -> str:
        shown = self._board.url if self._board is not None else self.url.partition("://")[0]
        return f"<{type(self).__name__} {self.name!r} {shown}>"


#: TaskFlow checks ``isinstance(board, NotifyingJobBoard)``; every board here notifies.
NotifyingJobBoard = JobBoard


def _key(job: Job | TideflowJob | str) -> str:
    if isinstance(job, Job | TideflowJob):
        return job.uuid
    if isinstance(job, str) and job:
        return job
    raise TypeError(f"expected a job (or its uuid), got {job!r}")


def _state(record: TideflowJob) -> str:
    if record.state is JobState.TRASHED:
        return states.COMPLETE
    if record.state is JobState.CLAIMED and (
        record.lease_expires is None or record.lease_expires > time.time()
    ):
        return states.CLAIMED
    return states.UNCLAIMED
