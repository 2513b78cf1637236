"""TaskFlow's conductors (``blocking``, ``nonblocking``) over tideflow's conductors.

A :class:`Conductor` (what :func:`taskflow.conductors.backends.fetch` returns) holds a
:class:`tideflow.conductors.Conductor` (``'blocking'``: one job at a time) or a
:class:`tideflow.conductors.PooledConductor` on threads (``'nonblocking'``: up to
``max_simultaneous_jobs`` at once), made at ``connect()`` or ``run()`` over the open
tideflow board of a :class:`taskflow.jobs.base.JobBoard`. So each claim is a lease the
conductor renews while the job runs, the run's writes are fenced by the claim's token,
a job whose conductor died is resumed elsewhere from its record, and only the flow
factories of the board's ``allowed`` prefixes are run.

What stays TaskFlow's: the events (``compilation_start`` ... ``job_consumed``,
``job_abandoned``, plus ``job_trashed``) with ``job`` (a :class:`taskflow.jobs.base.Job`),
``conductor`` (this object), ``engine`` or ``persistence`` in their details; a run
that ends SUCCESS, REVERTED or FAILURE consumes its job; ``stop()`` suspends running
engines (atoms running finish) and abandons their jobs. Where it differs:
``run(max_dispatches=N)`` returns after N jobs (TaskFlow 6.5 returns when it claims
the N+1-th, which it also runs); a job that cannot run (no flow, factory not allowed or
not importable) is trashed at once; ``executor_factory`` is checked but not used (the
pool is tideflow's, of ``max_simultaneous_jobs`` threads; a UserWarning says so).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from taskflow.engines.helpers import _engine_keywords, _extract_engine
from taskflow.jobs.base import Job, JobBoard
from taskflow.utils.threading_utils import get_optimal_thread_count
from tideflow import RestrictedNotifier, conductors
from tideflow.jobs import DEFAULT_LEASE
from tideflow.jobs import Board as TideflowBoard
from tideflow.jobs import Job as TideflowJob

__all__ = ["KINDS", "Conductor"]

#: The conductor kinds, as TaskFlow names them.
KINDS: Final = ("blocking", "nonblocking")
#: TaskFlow's default seconds between looks at the board.
WAIT_TIMEOUT: Final = 0.5


class _Allowing:
    """The tideflow board as the conductor sees it: the same board, allowing only the
    factories the TaskFlow board was configured with (never the no-flow placeholder
    its jobs posted without a flow name, so such jobs are trashed, not imported)."""

    def __init__(self, board: TideflowBoard, allowed: tuple[str, ...]) -> None:
        self._board = board
        self.allowed = allowed
        self.url = board.url
        self.max_attempts = board.max_attempts
        self.notifier = board.notifier

    def post(
        self,
        name: str,
        factory: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        store: Mapping[str, Any] | None = None,
        priority: int = 0,
        details: Mapping[str, Any] | None = None,
    ) -> TideflowJob:
        return self._board.post(name, factory, args, kwargs, store, priority, details)

    def get(self, job: TideflowJob | str) -> TideflowJob:
        return self._board.get(job)

    def iterjobs(self, only_unclaimed: bool = False) -> Iterator[TideflowJob]:
        return self._board.iterjobs(only_unclaimed)

    def claim(self, job: TideflowJob | str, who: str, lease: float = DEFAULT_LEASE) -> TideflowJob:
        return self._board.claim(job, who, lease)

    def claim_next(self, who: str, lease: float = DEFAULT_LEASE) -> TideflowJob | None:
        return self._board.claim_next(who, lease)

    def renew(
        self, job: TideflowJob | str, who: str, token: int, lease: float = DEFAULT_LEASE
    ) -> TideflowJob:
        return self._board.renew(job, who, token, lease)

    def consume(self, job: TideflowJob | str, who: str, token: int) -> None:
        self._board.consume(job, who, token)

    def abandon(self, job: TideflowJob | str, who: str, token: int) -> TideflowJob:
        return self._board.abandon(job, who, token)

    def trash(self, job: TideflowJob | str, who: str, token: int) -> TideflowJob:
        return self._board.trash(job, who, token)

    def current_token(self, job: TideflowJob | str) -> int | None:
        return self._board.current_token(job)

    def wait(self, timeout: float | None = None) -> bool:
        return self._board.wait(timeout)

    def close(self) -> None:
        """The board belongs to the TaskFlow board object, which closes it."""


class Conductor:
    """A TaskFlow conductor running jobs of ``jobboard`` with a tideflow conductor.

    ``persistence`` holds the jobs' run records (default: the board's; without either
    the runs are kept in memory, as TaskFlow's are); ``engine`` and ``engine_options``
    are TaskFlow's (``'serial'``/``'parallel'``, ``executor``, ``max_workers``);
    ``wait_timeout`` the seconds between looks at an empty board.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        jobboard: JobBoard,
        persistence: Any = None,
        engine: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
        wait_timeout: float | None = None,
        log: Any = None,
        max_simultaneous_jobs: int | None = None,
        executor_factory: Any = None,
    ) -> None:
        del log  # tideflow's conductors log to 'tideflow.conductors'
        if kind not in KINDS:
            raise ValueError(f"a conductor's kind is one of {list(KINDS)}, got {kind!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"a conductor's name is a non-empty str, got {name!r}")
        if not isinstance(jobboard, JobBoard):
            raise TypeError(
                "a conductor takes a job board from taskflow.jobs.backends.fetch(...), got "
                f"{jobboard!r}"
            )
        if not jobboard.allowed:
            raise ValueError(
                f"the conductor {name!r} may run no flow factory: tideflow's conductors run "
                "only the factories of the module prefixes the board allows; add "
                f"'allowed': ['myapp.flows'] to the job board {jobboard.name!r}'s conf (or "
                "set TIDEFLOW_ALLOWED=myapp.flows)"
            )
        if executor_factory is not None:
            if not callable(executor_factory):
                raise ValueError("Provided keyword argument 'executor_factory' must be callable")
            warnings.warn(
                "executor_factory is not used: tideflow's pooled conductor runs jobs on a "
                "pool of its own of max_simultaneous_jobs threads",
                UserWarning,
                stacklevel=3,
            )
        kind_name, options = _extract_engine(engine, dict(engine_options or {}))
        keywords = _engine_keywords(kind_name, options)
        self._engine = str(keywords.pop("engine"))
        self._engine_options = keywords
        self._kind = kind
        self._name = name
        self._jobboard = jobboard
        self._persistence = persistence if persistence is not None else jobboard.persistence
        self._wait_timeout = _wait_timeout(wait_timeout)
        self._workers = _workers(kind, max_simultaneous_jobs)
        self._notifier = RestrictedNotifier(conductors.EVENTS)
        self._inner: conductors.Conductor | conductors.PooledConductor | None = None
        self._lock = threading.Lock()

    # -- what TaskFlow's conductors offer -----------------------------------------------

    @property
    def name(self) -> str:
        """The owner name its claims are made under."""
        return self._name

    @property
    def notifier(self) -> RestrictedNotifier:
        """The conductor's events (see the module docstring)."""
        return self._notifier

    @property
    def dispatching(self) -> bool:
        """Whether ``run()`` is claiming jobs now."""
        inner = self._inner
        return inner is not None and inner.dispatching

    @property
    def tideflow_conductor(self) -> conductors.Conductor | conductors.PooledConductor:
        """The tideflow conductor doing the work (made and connected when first needed)."""
        self.connect()
        inner = self._inner
        if inner is None:  # closed by another thread meanwhile
            raise RuntimeError(f"the conductor {self._name!r} was closed")
        return inner

    def connect(self) -> None:
        """Connect the job board (if it is not) and make the tideflow conductor."""
        with self._lock:
            if self._inner is not None:
                return
            if not self._jobboard.connected:
                self._jobboard.connect()
            board = _Allowing(self._jobboard.tideflow_board, self._jobboard.allowed)
            store: Any = self._persistence if self._persistence is not None else "memory://"
            common: dict[str, Any] = {
                "lease": self._jobboard.lease,
                "engine": self._engine,
                "engine_options": self._engine_options,
                "wait_timeout": self._wait_timeout,
            }
            inner: conductors.Conductor | conductors.PooledConductor
            if self._kind == "blocking":
                inner = conductors.Conductor(self._name, board, store, **common)
            else:
                inner = conductors.PooledConductor(
                    self._name, board, store, workers=self._workers, pool="threads", **common
                )
            inner.notifier.register(inner.notifier.ANY, self._relay)
            self._inner = inner

    def run(self, max_dispatches: int | None = None) -> None:
        """Claim and run jobs until ``stop()``, or until ``max_dispatches`` jobs have been
        dispatched."""
        self.tideflow_conductor.run(max_jobs=max_dispatches)

    def stop(self) -> None:
        """Stop claiming; running engines are suspended (atoms running finish) and their
        jobs abandoned, for another conductor to resume. Returns at once."""
        inner = self._inner
        if inner is not None:
            inner.stop(0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until ``run()`` has returned (True), or ``timeout`` seconds (False)."""
        inner = self._inner
        return True if inner is None else inner.wait(timeout)

    def close(self) -> None:
        """Stop (if running), then close the job board, as TaskFlow's conductors do."""
        with self._lock:
            inner, self._inner = self._inner, None
        if inner is not None:
            inner.close()
        self._jobboard.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._kind} {self._name!r} {self._jobboard!r}>"

    # -- events ---------------------------------------------------------------------------

    def _relay(self, event: str, details: Mapping[str, Any]) -> None:
        shown = dict(details)
        record = shown.get("job")
        if isinstance(record, TideflowJob):
            shown["job"] = Job(self._jobboard, record)
        shown["conductor"] = self
        if "persistence" in shown:
            shown["persistence"] = self._persistence
        self._notifier.notify(event, shown)


def _wait_timeout(value: Any) -> float:
    if value is None:
        return WAIT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"wait_timeout takes a number of seconds, more than 0, got {value!r}")
    return float(value)


def _workers(kind: str, max_simultaneous_jobs: Any) -> int:
    if kind == "blocking":
        return 1  # TaskFlow's blocking conductor runs one job at a time whatever is asked
    if max_simultaneous_jobs is None:
        return get_optimal_thread_count()
    count = int(max_simultaneous_jobs)
    return count if count > 0 else get_optimal_thread_count()
