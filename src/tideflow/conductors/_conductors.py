"""The conductors: a claim loop around :class:`~tideflow.conductors._work.Worker`.

- :class:`Conductor` runs one job at a time, on the thread that called ``run()``.
- :class:`PooledConductor` runs up to ``workers`` jobs at once: on a pool of threads
  (``pool='threads'``: one claim loop, jobs on the pool's threads), or in worker
  processes (``pool='processes'``, for CPU-bound flows: each process is a
  :class:`Conductor` of its own, named ``NAME.1``, ``NAME.2``..., started with the
  ``spawn`` method, opening the board and store from their URLs; the parent only
  starts them (again, in place of one that died), shares ``max_jobs`` between them,
  relays their events and tells them to stop).

Stopping (:meth:`stop`, safe from any thread or a signal handler): no new claim is
made; running jobs get ``grace`` seconds to finish, then their engines are suspended
(atoms already running finish and are recorded) and the jobs abandoned, so another
conductor resumes them at once instead of waiting for the lease to run out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Literal, Self, cast

from tideflow._log import logger
from tideflow.conductors._work import (
    CLAIM_AHEAD_WINDOW,
    DEFAULT_CLAIM_AHEAD,
    DEFAULT_GRACE,
    DEFAULT_WAIT_TIMEOUT,
    LOG,
    Batch,
    BatchWatch,
    Follow,
    JobOutcome,
    LeaseKeeper,
    Statistics,
    Worker,
)
from tideflow.errors import StoreError
from tideflow.jobs.base import DEFAULT_LEASE, Board, Job

__all__ = ["Conductor", "PooledConductor"]

_BUDGET_ALL: Final = -1


#: A board wait() that returns within this many seconds found a job already free (one
#: this conductor could not claim), rather than being woken by a new one.
_WOKEN_AT_ONCE: Final = 0.002


class _Budget:
    """How many more jobs ``run()`` may dispatch (``max_jobs``), shared by its loops."""

    def __init__(self, limit: int | None) -> None:
        self._left = _BUDGET_ALL if limit is None else limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left == 0:
                return False
            if self._left > 0:
                self._left -= 1
            return True

    def give_back(self, jobs: int = 1) -> None:
        with self._lock:
            if self._left >= 0:
                self._left += jobs

    def take_up_to(self, jobs: int) -> int:
        """Take as many of ``jobs`` as the budget allows; how many were taken."""
        taken = 0
        while taken < jobs and self.take():
            taken += 1
        return taken


class _SharedBudget(_Budget):
    """A budget shared by worker processes: a ``multiprocessing`` semaphore counting the
    jobs left (None: no limit). Unlike a lock, it is never held: a process killed at any
    moment leaves it usable by the others."""

    def __init__(self, left: Any) -> None:  # a multiprocessing Semaphore, or None
        self._sem = left

    def take(self) -> bool:
        return self._sem is None or bool(self._sem.acquire(False))

    def give_back(self, jobs: int = 1) -> None:
        if self._sem is not None:
            for _ in range(jobs):
                self._sem.release()


def _check_max_jobs(max_jobs: object) -> None:
    if max_jobs is not None and (
        isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 0
    ):
        raise ValueError(f"max_jobs= takes a whole number, 0 or more (or None), got {max_jobs!r}")


def _check_seconds(option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{option}= takes a number of seconds, 0 or more, got {value!r}")
    return float(value)


def _open_board(
    board: Board | str, allowed: tuple[str, ...] | None, options: Mapping[str, Any] | None
) -> tuple[Board, bool]:
    if isinstance(board, str):
        from tideflow import jobs  # noqa: PLC0415  # a registry of boards, when asked for

        if allowed is None:
            raise ValueError(
                f"a conductor opening the board {board!r} needs allowed=('yourapp.flows',): "
                "the module prefixes whose flow factories it may run"
            )
        return jobs.connect(board, allowed=allowed, **dict(options or {})), True
    if not isinstance(board, Board):
        raise TypeError(f"board= takes a job board or its URL, got {board!r}")
    if allowed is not None or options:
        raise ValueError(
            "allowed= and board_options= are for a board given by URL; this board was "
            f"opened already ({board!r}): set them where it was opened"
        )
    return board, False


def _open_store(store: Any) -> tuple[Any, bool]:  # any store backend
    """The store, checked now: a conductor given a wrong one would otherwise abandon
    every job it claims (and so trash them all after max_attempts)."""
    own = isinstance(store, str)
    if own:
        import tideflow  # noqa: PLC0415

        store = tideflow.connect(store)
    elif not callable(getattr(store, "get_connection", None)):
        raise TypeError(f"store= takes a store (backend) or its URL, got {store!r}")
    try:
        with contextlib.closing(store.get_connection()) as conn:
            conn.validate()
    except BaseException:
        if own:
            store.close()
        raise
    return store, own


class _Base:
    """What both conductors share: the worker, the lease keeper, stop/wait/close."""

    def __init__(
        self,
        name: str,
        board: Board | str,
        store: Any,  # a store backend, or a URL
        *,
        lease: float = DEFAULT_LEASE,
        engine: str = "serial",
        engine_options: Mapping[str, Any] | None = None,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        allowed: tuple[str, ...] | list[str] | None = None,
        board_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.wait_timeout = _check_seconds("wait_timeout", wait_timeout)
        if not self.wait_timeout > 0:
            raise ValueError(
                f"wait_timeout= takes a number of seconds, more than 0, got {wait_timeout!r}"
            )
        opened_board, self._own_board = _open_board(
            board, None if allowed is None else tuple(allowed), board_options
        )
        try:
            if not opened_board.allowed:
                raise ValueError(
                    f"the board {opened_board.url} allows no flow factory: open it with "
                    "allowed=('yourapp.flows',) so the conductor has jobs it may run"
                )
            opened_store, self._own_store = _open_store(store)
        except BaseException:
            if self._own_board:
                opened_board.close()
            raise
        self.worker = Worker(
            name,
            opened_board,
            opened_store,
            lease=lease,
            engine=engine,
            engine_options=engine_options,
        )
        self.worker.conductor = self
        self._keeper = LeaseKeeper(self.worker)
        # stop() from a signal handler only sets this flag and starts a thread; the
        # events below are set from that thread (a handler must not take their locks)
        self._stop_flag = False
        self._grace_asked = DEFAULT_GRACE
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._deadline_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._running = threading.Lock()
        self._closed = False

    # -- the public face ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The owner name this conductor claims jobs under."""
        return self.worker.name

    @property
    def board(self) -> Board:
        """The job board it claims from."""
        return self.worker.board

    @property
    def store(self) -> Any:  # any store backend
        """The store its runs are recorded in."""
        return self.worker.store

    @property
    def lease(self) -> float:
        """Seconds each claim holds unless renewed (renewed every third of it)."""
        return self.worker.lease

    @property
    def notifier(self) -> Any:  # a RestrictedNotifier
        """Conductor events (:data:`tideflow.conductors.EVENTS`); details hold ``job``
        and ``conductor``, plus ``engine`` (stages) or ``persistence`` (job_*)."""
        return self.worker.notifier

    @property
    def dispatching(self) -> bool:
        """Whether ``run()`` is claiming jobs now."""
        return not self._idle.is_set() and not self._stop_flag

    def statistics(self) -> Statistics:
        """How many jobs were dispatched, consumed, abandoned, trashed and dropped."""
        return self.worker.statistics()

    def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop claiming; give running jobs ``grace`` seconds to finish, then suspend
        their runs and abandon them. Returns at once (``wait()`` waits for the end);
        safe from any thread and from a signal handler; a later call may shorten the
        grace."""
        grace = _check_seconds("grace", grace)
        self._grace_asked = grace
        self._stop_flag = True
        threading.Thread(
            target=self._shutdown, args=(grace,), name=f"tideflow-stop-{self.name}", daemon=True
        ).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until ``run()`` has returned (True), or ``timeout`` seconds (False)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop at once if running (grace 0), then close the board and store this
        conductor opened from URLs. Idempotent."""
        if self._closed:
            return
        if not self._idle.is_set():
            self.stop(0)
            self._idle.wait()
        self._closed = True
        self._keeper.stop()
        if self._own_board:
            self.worker.board.close()
        if self._own_store:
            self.worker.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} board={self.board.url}>"

    # -- the loop -------------------------------------------------------------------------

    def run(self, max_jobs: int | None = None, until_idle: bool = False) -> int:
        """Claim and run jobs until stopped, ``max_jobs`` have been dispatched, or (with
        ``until_idle``) no job is left to claim; return how many were dispatched."""
        _check_max_jobs(max_jobs)
        return self._run(_Budget(max_jobs), until_idle)

    def _run(self, budget: _Budget, until_idle: bool) -> int:
        if self._closed:
            raise RuntimeError(f"conductor {self.name!r} is closed; make a new one")
        if not self._running.acquire(blocking=False):
            raise RuntimeError(
                f"conductor {self.name!r} is running already (run() is not re-entrant)"
            )
        try:
            # a stop() that came before run() is kept: run() then returns at once
            self._idle.clear()
            self._keeper.start()
            return self._serve(budget, until_idle)
        finally:
            self._keeper.stop()
            self._stop_flag = False
            self._stopping.clear()
            self._deadline = None
            self._idle.set()
            self._running.release()

    def _serve(self, budget: _Budget, until_idle: bool) -> int:
        raise NotImplementedError

    def _stopped(self) -> bool:
        return self._stop_flag

    def _back_off(self) -> None:
        """After a job was given back for a store error, wait out up to one lease before
        the next claim: a store that is down would otherwise burn through every job's
        attempts (and trash them) in a few seconds."""
        left = self.worker.store_trouble + self.lease - time.monotonic()
        if left > 0:
            logger(LOG).warning(
                "conductor %r: the store failed; claiming again in %.1f s", self.name, left
            )
            self._stopping.wait(left)

    def _claim(self) -> Job | Literal[False] | None:
        """The next job claimed, None if none is free, False if the board failed."""
        try:
            return self.worker.board.claim_next(self.name, self.lease)
        except StoreError as exc:
            logger(LOG).warning("conductor %r: claiming failed: %s", self.name, exc)
            return False

    def _pause(self, found_nothing: bool) -> None:
        """Wait for a job to appear (at most ``wait_timeout``), or a while after an error."""
        if found_nothing:
            try:
                began = time.monotonic()
                if self.worker.board.wait(self.wait_timeout) and (
                    time.monotonic() - began < _WOKEN_AT_ONCE
                ):
                    # something was free already, yet claim_next found nothing for us
                    # (another conductor's factories, or a race): do not spin on it. A
                    # wait that blocked and was woken by a post claims at once.
                    self._stopping.wait(min(self.wait_timeout, 0.05))
                return
            except StoreError as exc:
                logger(LOG).warning("conductor %r: waiting for jobs failed: %s", self.name, exc)
        self._stopping.wait(self.wait_timeout)

    def _shutdown(self, grace: float) -> None:
        """Stop claiming; after ``grace`` seconds suspend what still runs (it is then
        abandoned by the thread running it)."""
        self._stopping.set()
        with self._deadline_lock:
            deadline = time.monotonic() + grace
            if self._deadline is not None and self._deadline <= deadline:
                return  # an earlier stop() is already counting down to an earlier end
            self._deadline = deadline
        while self.worker.held() and not self._idle.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._idle.wait(min(left, 0.05))
            if self._deadline is not None and self._deadline < deadline:
                return  # a later stop() shortened the grace: it takes over
        for held in self.worker.held():
            if not held.stopping and not held.settling:  # settling: its run is over
                logger(LOG).warning(
                    "conductor %r stopping: suspending the run of job %s (%s)",
                    self.name,
                    held.job.uuid,
                    held.job.name,
                )
                held.halt("the conductor stopped and its grace ran out")


class Conductor(_Base):
    """Claims jobs from ``board`` and runs them one at a time, recording in ``store``.

    ``board`` is a job board or its URL (then ``allowed=`` gives the module prefixes
    whose factories may run, ``board_options=`` the board's other options); ``store``
    a store or its URL. ``lease`` is how long each claim holds unless renewed (it is
    renewed every ``lease / 3`` s while the job runs); ``engine`` and
    ``engine_options`` are how each job's flow is loaded (``tideflow.load``);
    ``wait_timeout`` how long ``run()`` waits for a job before looking again.

    Events are in :attr:`notifier`; :meth:`statistics` counts the jobs. Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        name: str,
        board: Board | str,
        store: Any,  # a store backend, or a URL
        *,
        lease: float = DEFAULT_LEASE,
        engine: str = "serial",
        engine_options: Mapping[str, Any] | None = None,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        allowed: tuple[str, ...] | list[str] | None = None,
        board_options: Mapping[str, Any] | None = None,
        claim_ahead: int = DEFAULT_CLAIM_AHEAD,
    ) -> None:
        if isinstance(claim_ahead, bool) or not isinstance(claim_ahead, int) or claim_ahead < 1:
            raise ValueError(
                f"claim_ahead= takes the most jobs claimed at once, 1 or more, got {claim_ahead!r}"
            )
        super().__init__(
            name,
            board,
            store,
            lease=lease,
            engine=engine,
            engine_options=engine_options,
            wait_timeout=wait_timeout,
            allowed=allowed,
            board_options=board_options,
        )
        self.claim_ahead = claim_ahead

    def _serve(self, budget: _Budget, until_idle: bool) -> int:
        if callable(getattr(self.worker.board, "consume_and_claim", None)):
            return self._serve_batches(budget, until_idle)
        return self._serve_follow(budget, until_idle)

    def _serve_batches(self, budget: _Budget, until_idle: bool) -> int:
        """The loop on a board with ``consume_and_claim``: one call consumes the jobs
        finished since the last and claims the next ones (see :class:`Batch`)."""
        worker = self.worker
        batch = Batch(self.claim_ahead)
        watch = BatchWatch(worker, batch, budget.give_back)
        watch.start()
        dispatched = 0
        try:
            while not self._stopped():
                held = batch.next()
                if held is None:
                    if not self._refill(batch, budget, until_idle):
                        break
                    continue  # a stop() during the call is seen before a job starts
                if held.lost or time.monotonic() - held.renewed > self.lease / 2:
                    # its lease was lost while it waited, or not renewed for half a lease
                    # (this process was paused, or the board out of reach): it may be
                    # another conductor's by now, so it is not started but given back
                    worker.release(held, "its claim was lost, or may have run out")
                    budget.give_back()
                    continue
                if held.job.attempts:
                    # an earlier claim of it ended badly (its conductor may have died on
                    # it): it runs with nothing queued behind it, so that if it kills this
                    # conductor too, no job that never ran is charged an attempt with it
                    why = f"job {held.job.uuid} runs alone (attempt {held.job.attempts + 1})"
                    budget.give_back(worker.release_queued(batch, why))
                if batch.has_done and time.monotonic() - batch.done_since > CLAIM_AHEAD_WINDOW:
                    worker.settle(batch, 0)  # finished jobs are not kept unconsumed for long
                dispatched += 1
                batch.start()
                try:
                    worker.work(held.job, batch, held)
                finally:
                    batch.end()
        finally:
            watch.stop()
            if batch.has_done:
                worker.settle(batch, 0)
            why = "the conductor stopped before running it"
            budget.give_back(worker.release_queued(batch, why))
        return dispatched

    def _refill(self, batch: Batch, budget: _Budget, until_idle: bool) -> bool:
        """Consume the batch's finished jobs and claim its next ones (or wait for some
        to be posted); False when the loop is to end (max_jobs dispatched, or nothing
        left to claim with ``until_idle``)."""
        worker = self.worker
        if worker.store_trouble + self.lease > time.monotonic():
            if batch.has_done:
                worker.settle(batch, 0)  # consume what finished, then wait
            self._back_off()
            return True
        want = budget.take_up_to(batch.want())
        if want == 0 and not batch.has_done:
            return False  # max_jobs dispatched
        claimed = worker.settle(batch, want)
        budget.give_back(want - len(claimed or ()))
        if claimed:
            batch.add([worker.hold(job) for job in claimed])
            return True
        if want == 0 or (until_idle and claimed is not None):
            return False
        if not self._stopped():
            self._pause(found_nothing=claimed is not None)
        return True

    def _serve_follow(self, budget: _Budget, until_idle: bool) -> int:
        """The loop on a board without ``consume_and_claim``: each consume claims the
        next job in the same call when the board has ``consume_and_claim_next``."""
        dispatched = 0
        # each consume claims the next job in the same call when it may (one commit
        # between two jobs, not two): not stopping, within budget, no store trouble
        follow = Follow(lambda: self._may_claim_along(budget), budget.give_back)
        try:
            while not self._stopped() or follow.job is not None:
                job: Job | Literal[False] | None
                if follow.asked:
                    job = follow.take()
                    if job is None:
                        budget.give_back()
                    elif self._stopped():  # claimed as it stopped: not to be started
                        self.worker.give_back(job, "the conductor stopped before running it")
                        continue
                else:
                    if not budget.take():
                        break
                    self._back_off()
                    job = None if self._stopped() else self._claim()
                    if not job:
                        budget.give_back()
                if not job:
                    if (until_idle and job is None) or self._stopped():
                        break
                    self._pause(found_nothing=job is None)
                    continue
                dispatched += 1
                self.worker.work(job, follow)
        finally:
            left = follow.take()
            if left is not None:  # work() raised (KeyboardInterrupt, SystemExit)
                self.worker.give_back(left, "the conductor was interrupted")
        return dispatched

    def _may_claim_along(self, budget: _Budget) -> bool:
        """Whether a consume may claim the next job now (taking it from ``budget``)."""
        if self._stopped():
            return False
        if self.worker.store_trouble + self.lease > time.monotonic():
            return False  # the loop backs off before claiming again
        return budget.take()


class PooledConductor(_Base):
    """As :class:`Conductor`, running up to ``workers`` jobs at once.

    ``pool='threads'`` runs them on threads of this process (flows that wait on I/O);
    ``pool='processes'`` in ``workers`` processes (CPU-bound flows): each is a
    :class:`Conductor` named ``NAME.N`` that opens the board and the store itself, so
    both must then be given as URLs. Their events reach :attr:`notifier` with the
    ``job`` and this ``conductor`` only (an engine cannot cross processes).
    """

    def __init__(
        self,
        name: str,
        board: Board | str,
        store: Any,  # a store backend, or a URL
        *,
        workers: int = 2,
        pool: Literal["threads", "processes"] = "threads",
        lease: float = DEFAULT_LEASE,
        engine: str = "serial",
        engine_options: Mapping[str, Any] | None = None,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        allowed: tuple[str, ...] | list[str] | None = None,
        board_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers= takes a whole number, 1 or more, got {workers!r}")
        if pool not in ("threads", "processes"):
            raise ValueError(f"pool= is 'threads' or 'processes', got {pool!r}")
        if pool == "processes":
            if not isinstance(board, str) or not isinstance(store, str):
                raise TypeError(
                    "pool='processes' opens the board and the store in each worker process: "
                    f"give both as URLs (got board={board!r}, store={store!r})"
                )
            self._child = _ChildConfig(
                name=name,
                board=board,
                store=store,
                allowed=tuple(allowed or ()),
                board_options=dict(board_options or {}),
                lease=lease,
                engine=engine,
                engine_options=dict(engine_options or {}),
                wait_timeout=wait_timeout,
            )
        super().__init__(
            name,
            board,
            store,
            lease=lease,
            engine=engine,
            engine_options=engine_options,
            wait_timeout=wait_timeout,
            allowed=allowed,
            board_options=board_options,
        )
        self.workers = workers
        self.pool = pool
        self._mp_slots: _Slots | None = None

    def _serve(self, budget: _Budget, until_idle: bool) -> int:
        if self.pool == "processes":
            return self._serve_processes(budget, until_idle)
        return self._serve_threads(budget, until_idle)

    # -- threads ----------------------------------------------------------------------

    def _serve_threads(self, budget: _Budget, until_idle: bool) -> int:
        slots = threading.BoundedSemaphore(self.workers)
        inflight: set[Future[JobOutcome | None]] = set()
        lock = threading.Lock()
        dispatched = 0

        def done(future: Future[JobOutcome | None]) -> None:
            with lock:
                inflight.discard(future)
            slots.release()

        pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"tideflow-{self.name}")
        try:
            while not self._stopped():
                if not slots.acquire(timeout=self.wait_timeout):
                    continue
                if not budget.take():
                    slots.release()
                    break
                self._back_off()
                job = None if self._stopped() else self._claim()
                if not job:
                    slots.release()
                    budget.give_back()
                    with lock:
                        busy = bool(inflight)
                    if until_idle and job is None and not busy:
                        break
                    self._pause(found_nothing=job is None)
                    continue
                dispatched += 1
                future = pool.submit(self.worker.work, job)
                with lock:
                    inflight.add(future)
                future.add_done_callback(done)
        except BaseException:
            # Ctrl-C (or the like) without a handler: suspend what runs, give it back
            self._stop_flag = True
            self._shutdown(0)
            raise
        finally:
            pool.shutdown(wait=True)
        return dispatched

    # -- processes ----------------------------------------------------------------------

    def _serve_processes(self, budget: _Budget, until_idle: bool) -> int:
        # Nothing shared with the workers is ever held by one of them (no lock, no
        # multiprocessing Event or Queue): a worker killed at any moment (the OOM killer,
        # kill -9) cannot leave the others or this process waiting on it for good
        ctx = multiprocessing.get_context("spawn")
        limit = budget._left  # the parent's budget seeds the shared one
        left = None if limit < 0 else ctx.Semaphore(limit)
        counts = ctx.Array("q", self.workers, lock=False)  # one writer per slot
        relay = _Relay(self)
        slots = _Slots(self.workers, until_idle, ctx)
        self._mp_slots = slots

        def start(n: int) -> None:
            reader, writer = ctx.Pipe(duplex=False)
            child = ctx.Process(
                target=_child_main,
                args=(
                    dataclasses.replace(
                        self._child,
                        name=f"{self.name}.{n + 1}",
                        log_level=logger(LOG).getEffectiveLevel(),
                    ),
                    n,
                    until_idle,
                    left,
                    counts,
                    writer,
                    slots.stopping,
                    slots.grace,
                ),
                name=f"tideflow-{self.name}.{n + 1}",
                daemon=False,
            )
            slots.started(n, child)
            writer.close()  # the child holds the only writer: its end is the pipe's EOF
            relay.add(reader)

        relay.start()
        try:
            for n in range(self.workers):
                start(n)
            while slots.busy():
                if self._stopped() and not slots.stopping.value:
                    self._tell_children(self._grace_asked)
                slots.wait(0.1)
                stopping = self._stopped() or bool(slots.stopping.value)
                for n, child in slots.ended():
                    if child.exitcode:
                        slots.crashed(n, child, self.name, restart=not stopping)
                for n in slots.due(cancel=stopping):
                    start(n)
        except BaseException:
            self._tell_children(0.0)
            slots.join_all()
            raise
        finally:
            relay.finish()
        return sum(int(n) for n in counts[:])

    def _tell_children(self, grace: float | None = None) -> None:
        slots = self._mp_slots
        if slots is not None:
            slots.stop(self._grace_asked if grace is None else grace)

    def _shutdown(self, grace: float) -> None:
        if self.pool == "processes":
            self._stopping.set()
            self._tell_children(grace)
            return
        super()._shutdown(grace)


#: How long a process pool's parent reads its ended workers' last events, at most.
RELAY_DRAIN: Final = 10.0


class _Relay:
    """A thread of a process pool's parent that reads its workers' job events, each from
    the worker's own pipe, and tells the parent's listeners. A worker that died mid-write
    loses only its own pipe."""

    def __init__(self, owner: PooledConductor) -> None:
        self.owner = owner
        self._readers: list[Any] = []  # multiprocessing Connections
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, reader: Any) -> None:
        with self._lock:
            self._readers.append(reader)

    def finish(self) -> None:
        """Read what the (ended) workers left in their pipes, then stop."""
        self._done.set()
        self._thread.join(RELAY_DRAIN)

    def _loop(self) -> None:
        while True:
            with self._lock:
                readers = list(self._readers)
            if not readers and self._done.is_set():
                return
            ready = multiprocessing.connection.wait(readers, 0.1) if readers else []
            for reader in cast(list[Any], ready):
                try:
                    item = reader.recv()
                except Exception:  # EOF: the worker ended (or died mid-write)
                    with self._lock:
                        self._readers.remove(reader)
                    reader.close()
                    continue
                try:
                    self._tell(*item)
                except Exception:  # a bug of ours: the pipes must still be read
                    logger(LOG).exception("conductor %r: relaying %r failed", self.owner.name, item)
            if not readers:
                self._done.wait(0.1)

    def _tell(self, event: str, job: Job) -> None:
        owner = self.owner
        owner.worker.count(JobOutcome(event.removeprefix("job_").upper()))
        details = {"job": job, "conductor": owner, "persistence": owner._child.store}
        owner.worker.notifier.notify(event, details)


#: A worker process of a process pool that dies (a signal, a non-zero exit: the OOM
#: killer, a crash in native code) is replaced, after RESTART_FIRST s, doubled for each
#: death in a row of one that lived less than RESTART_STABLE s, up to RESTART_MAX s.
#: Its job's lease runs out and a conductor (maybe its replacement) resumes the run.
RESTART_FIRST: Final = 0.5
RESTART_MAX: Final = 30.0
RESTART_STABLE: Final = 60.0
#: With ``until_idle``, a slot whose processes died this many times in a row, each
#: within RESTART_STABLE s, is given up (run() would otherwise never return).
RESTART_GIVE_UP: Final = 5


class _Slots:
    """The worker processes of a process pool, by slot: live ones, restarts due; and
    how they are told to stop (``stopping`` and ``grace``, shared values no lock guards,
    then SIGTERM, whose handler in the worker reads them)."""

    def __init__(self, workers: int, until_idle: bool, ctx: Any) -> None:
        self.live: dict[int, Any] = {}  # slot -> multiprocessing Process
        self.since: dict[int, float] = {}  # slot -> when its process started
        self.streak = [0] * workers  # deaths in a row, each soon after its start
        self.restart_at: dict[int, float] = {}
        self.until_idle = until_idle
        self.stopping = ctx.RawValue("b", 0)
        self.grace = ctx.RawValue("d", 0.0)
        self._lock = threading.Lock()  # live: the run's thread and a stop's

    def started(self, n: int, child: Any) -> None:
        with self._lock:
            if self.stopping.value:
                return  # told to stop meanwhile: not started
            child.start()
            self.live[n] = child
            self.since[n] = time.monotonic()

    def stop(self, grace: float) -> None:
        """Tell every worker to stop, with ``grace`` (again: a shorter one)."""
        with self._lock:
            self.grace.value = grace
            self.stopping.value = 1
            for child in self.live.values():
                with contextlib.suppress(OSError):  # it has just ended
                    os.kill(child.pid, signal.SIGTERM)

    def busy(self) -> bool:
        return bool(self.live or self.restart_at)

    def wait(self, timeout: float) -> None:
        with self._lock:
            sentinels = [child.sentinel for child in self.live.values()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout)
        else:
            time.sleep(min(timeout, max(0.0, min(self.restart_at.values()) - time.monotonic())))

    def ended(self) -> list[tuple[int, Any]]:
        """The slots whose process has ended since the last call (each joined)."""
        with self._lock:
            gone = [(n, child) for n, child in self.live.items() if not child.is_alive()]
            for n, _ in gone:
                del self.live[n]
        for _, child in gone:
            child.join()
        return gone

    def crashed(self, n: int, child: Any, name: str, restart: bool) -> None:
        if not restart:  # the pool is stopping
            if child.exitcode != -signal.SIGTERM:  # else stopped before its handler was set
                logger(LOG).warning(
                    "conductor %r: worker process %s ended with exit code %s; its job's "
                    "lease runs out and another conductor resumes it",
                    name,
                    child.name,
                    child.exitcode,
                )
            return
        lived = time.monotonic() - self.since[n]
        self.streak[n] = self.streak[n] + 1 if lived < RESTART_STABLE else 1
        if self.until_idle and self.streak[n] >= RESTART_GIVE_UP:
            logger(LOG).error(
                "conductor %r: worker process %s ended with exit code %s; %d of its "
                "processes in a row died within %.0f s of starting: not started again",
                name,
                child.name,
                child.exitcode,
                self.streak[n],
                RESTART_STABLE,
            )
            return
        delay = min(RESTART_MAX, RESTART_FIRST * 2 ** (self.streak[n] - 1))
        logger(LOG).warning(
            "conductor %r: worker process %s ended with exit code %s; a new one starts in "
            "%.1f s (its job's lease runs out and a conductor resumes the run)",
            name,
            child.name,
            child.exitcode,
            delay,
        )
        self.restart_at[n] = time.monotonic() + delay

    def due(self, cancel: bool) -> list[int]:
        """The slots whose restart is due now (all dropped instead if ``cancel``)."""
        if cancel:
            self.restart_at.clear()
            return []
        now = time.monotonic()
        ready = [n for n, when in self.restart_at.items() if when <= now]
        for n in ready:
            del self.restart_at[n]
        return ready

    def join_all(self) -> None:
        with self._lock:
            children = list(self.live.values())
        for child in children:
            child.join()


@dataclasses.dataclass(frozen=True)
class _ChildConfig:
    name: str
    board: str
    store: str
    allowed: tuple[str, ...]
    board_options: dict[str, Any]
    lease: float
    engine: str
    engine_options: dict[str, Any]
    wait_timeout: float
    #: the parent's level for the conductors' logger (a spawned process starts with
    #: no logging set up: its log lines would be lost)
    log_level: int = 0


def _child_main(
    config: _ChildConfig,
    index: int,
    until_idle: bool,
    left: Any,  # shared with the parent: see _serve_processes and _Slots
    counts: Any,
    events: Any,  # the writing end of this worker's pipe to the parent
    stopping: Any,
    grace: Any,
) -> None:
    """A worker process of a process-pooled conductor: a Conductor of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which tells us
    made: list[Conductor] = []

    def told_to_stop(signum: int, frame: object) -> None:  # the parent's SIGTERM
        if made:
            made[0].stop(float(grace.value))  # again: a shorter grace

    signal.signal(signal.SIGTERM, told_to_stop)
    log = logger(LOG)
    if config.log_level and not log.hasHandlers():
        import logging  # noqa: PLC0415  # only in worker processes

        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(config.log_level)
    conductor = Conductor(
        config.name,
        config.board,
        config.store,
        allowed=config.allowed,
        board_options=config.board_options,
        lease=config.lease,
        engine=config.engine,
        engine_options=config.engine_options,
        wait_timeout=config.wait_timeout,
    )
    sending = threading.Lock()  # events come from the run's thread and the conductor's

    def forward(event: str, details: Mapping[str, Any]) -> None:
        if event.startswith("job_"):
            with sending, contextlib.suppress(Exception):  # the parent is gone
                events.send((event, details["job"]))

    conductor.notifier.register(conductor.notifier.ANY, forward)
    made.append(conductor)
    if stopping.value:  # told before the handler could reach the conductor
        conductor.stop(float(grace.value))
    ended = threading.Event()

    def orphaned() -> None:
        # a parent that died without telling (SIGKILL) stops its workers too, rather than
        # leave them claiming jobs nobody watches: its end of a pipe closes
        parent = multiprocessing.parent_process()
        if parent is None:
            return
        multiprocessing.connection.wait([parent.sentinel])
        if not ended.is_set():
            log.warning("conductor %r: its parent process is gone; stopping", config.name)
            conductor.stop(DEFAULT_GRACE)

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        done = conductor._run(_SharedBudget(left), until_idle)
        counts[index] += done  # this slot's processes, one after another: one writer
    finally:
        ended.set()
        conductor.close()
        with sending:
            events.close()
