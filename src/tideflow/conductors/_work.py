"""What a conductor does with one claimed job, and the thread that keeps its leases.

:class:`Worker` holds what every conductor shares (its name, board, store, lease,
engine options, notifier, the jobs it holds) and runs one job from claim to its end:

1. the run record's uuid is ``job.details['flow_uuid']`` (default: the job's uuid);
2. the record is taken over under the claim's fence (a placeholder owner carrying
   ``(job.uuid, job.token)``) before it is read, so no stale owner writes to it after;
   a record the store holds is a run a previous owner began: it is resumed with
   :func:`tideflow.load_from_detail` (SUCCESS atoms are not run again; a record
   already finished is not run at all, only consumed); otherwise the factory is
   checked against the board's allow-list again, imported and called, and a new
   record with that uuid is created under the claim before the run starts;
3. the engine is loaded with ``fence=(job.uuid, job.token)``: its own claim at run()
   replaces the placeholder (same token); once a newer claim of the job has taken the
   record over, this engine's next write fails and it stops;
4. how it ends decides what happens to the job::

       run recorded SUCCESS / REVERTED / FAILURE    consume (the outcome is in the record)
       factory refused, unimportable, not a flow, requirements missing     trash
       store error, engine suspended, conductor stopping, anything else    abandon
       the lease was lost (another claim replaced it)                      drop

   *Drop* means doing nothing to the job: it is not ours any more. An abandon or
   consume refused because the claim was lost is a drop too.

:class:`LeaseKeeper` is one thread per conductor renewing every held job's lease each
``lease / 3`` seconds. A renewal refused with LeaseLostError marks the job lost and
suspends its engine; a board that cannot be reached for longer than the lease has the
same effect (the lease may be gone), so a partitioned conductor stops by itself.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import tideflow
import tideflow._helpers as tideflow_helpers
from tideflow._log import logger
from tideflow._notifier import RestrictedNotifier
from tideflow.errors import DefinitionError, NotFoundError, RunOwnedError, StoreError
from tideflow.jobs.base import (
    Board,
    FactoryNotAllowedError,
    Job,
    LeaseLostError,
    allows_module,
    import_factory,
)
from tideflow.persistence._owners import new_owner, retire_owner
from tideflow.persistence.models import FlowDetail, LogBook
from tideflow.states import FlowState

__all__ = [
    "CLAIM_AHEAD_WINDOW",
    "DEFAULT_CLAIM_AHEAD",
    "DEFAULT_GRACE",
    "DEFAULT_WAIT_TIMEOUT",
    "EVENTS",
    "Batch",
    "BatchWatch",
    "Follow",
    "Held",
    "JobOutcome",
    "LeaseKeeper",
    "Statistics",
    "Worker",
]

#: Seconds ``run()`` waits for a job before looking again (TaskFlow's WAIT_TIMEOUT).
DEFAULT_WAIT_TIMEOUT: Final = 0.5
#: Seconds ``stop()`` lets running jobs finish before suspending and abandoning them.
DEFAULT_GRACE: Final = 30.0

#: What ``conductor.notifier`` reports: TaskFlow's conductor events, plus
#: ``job_trashed`` (tideflow's: TaskFlow's conductors never trash a job).
EVENTS: Final = (
    "compilation_start",
    "compilation_end",
    "preparation_start",
    "preparation_end",
    "validation_start",
    "validation_end",
    "running_start",
    "running_end",
    "job_consumed",
    "job_abandoned",
    "job_trashed",
)

LOG: Final = "tideflow.conductors"
_FINISHED: Final = frozenset({FlowState.SUCCESS, FlowState.REVERTED, FlowState.FAILURE})
#: Engine options the conductor sets itself.
_RESERVED: Final = frozenset({"store", "backend", "book", "flow_detail", "fence", "engine"})


class JobOutcome(enum.StrEnum):
    """What a conductor did with a job it claimed."""

    CONSUMED = "CONSUMED"
    ABANDONED = "ABANDONED"
    TRASHED = "TRASHED"
    DROPPED = "DROPPED"  # the claim was lost: left to its new owner


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Counts of one conductor's jobs since it was made."""

    dispatched: int = 0
    consumed: int = 0
    abandoned: int = 0
    trashed: int = 0
    dropped: int = 0


class _Unrunnable(Exception):
    """The job can never run as posted: it is trashed, with this reason."""


class Follow:
    """What a serving loop lets a finished job's consume do: claim the loop's next job
    in the same call to the board (``consume_and_claim_next``: one statement and one
    commit between two jobs on PostgreSQL, not two). ``may_claim()`` is asked at that
    moment (the loop is not stopping, its budget allows one more job, and so on); the
    job so claimed is left in :attr:`job` for the loop to run next. ``unused()`` is
    called when a call that ``may_claim()`` allowed failed before it could claim."""

    def __init__(self, may_claim: Callable[[], bool], unused: Callable[[], None]) -> None:
        self.may_claim = may_claim
        self.unused = unused
        #: the last consume claimed along (then :attr:`job` is what it claimed, or None)
        self.asked = False
        self.job: Job | None = None

    def failed(self) -> None:
        """The call that was to claim along failed: nothing was claimed."""
        if self.asked:
            self.asked = False
            self.unused()

    def take(self) -> Job | None:
        """The job the last consume claimed (None if none was free), and forget it."""
        job, self.job, self.asked = self.job, None, False
        return job


#: The most jobs a blocking conductor claims in one call to the board (``claim_ahead``).
DEFAULT_CLAIM_AHEAD: Final = 10
#: A conductor claims ahead as many jobs as it expects to start within this many
#: seconds (by how long its recent jobs took), up to its ``claim_ahead``.
CLAIM_AHEAD_WINDOW: Final = 0.05


class Batch:
    """A blocking conductor's jobs between two calls to the board's ``consume_and_claim``:
    those claimed ahead and not started yet (its queue), and those whose run finished and
    whose consume waits for the next call (its done list). Both are held (their leases
    renewed) until that call, or until they are given back. Safe to share between the
    conductor's loop and its :class:`BatchWatch`."""

    def __init__(self, limit: int) -> None:
        #: the most jobs one call claims (``claim_ahead``)
        self.limit = limit
        self._queue: collections.deque[Held] = collections.deque()
        self._done: list[tuple[Held, FlowState | None]] = []
        self._lock = threading.Lock()
        #: monotonic time the oldest finished job waiting for its consume finished
        self.done_since = 0.0
        #: seconds a job took, recent ones weighing most (None: no job ran yet)
        self.took: float | None = None
        #: jobs started so far; when the one running now started (None: none runs)
        self.started = 0
        self.since: float | None = None
        #: set when a job is queued or waits for its consume (the watch then looks)
        self.pending = threading.Event()

    def want(self) -> int:
        """How many jobs the next call claims: as many as should start within
        :data:`CLAIM_AHEAD_WINDOW`, one while nothing is known yet."""
        if self.took is None or self.limit <= 1:
            return 1
        return max(1, min(self.limit, int(CLAIM_AHEAD_WINDOW / max(self.took, 1e-6))))

    def add(self, held: Sequence[Held]) -> None:
        """Queue jobs just claimed, in claim order."""
        with self._lock:
            self._queue.extend(held)
        self.pending.set()

    def next(self) -> Held | None:
        """The next queued job (None: none is queued)."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def take_queue(self) -> list[Held]:
        """Every queued job, taken out of the queue."""
        with self._lock:
            queued, self._queue = list(self._queue), collections.deque()
        return queued

    def start(self) -> None:
        """A queued job starts."""
        self.since = time.monotonic()
        self.started += 1

    def end(self) -> None:
        """The job that started last ended."""
        if self.since is not None:
            took = time.monotonic() - self.since
            self.took = took if self.took is None else 0.7 * self.took + 0.3 * took
        self.since = None

    def finished(self, held: Held, state: FlowState | None) -> None:
        """``held``'s run finished: it is consumed by the next call."""
        with self._lock:
            if not self._done:
                self.done_since = time.monotonic()
            self._done.append((held, state))
        self.pending.set()

    def take_done(self) -> list[tuple[Held, FlowState | None]]:
        """The finished jobs, taken out: the caller consumes them."""
        with self._lock:
            done, self._done = self._done, []
        return done

    @property
    def has_done(self) -> bool:
        return bool(self._done)

    @property
    def busy(self) -> bool:
        """Whether a job is queued or waits for its consume."""
        return bool(self._queue or self._done)


class BatchWatch:
    """A thread that, while one job runs longer than :data:`CLAIM_AHEAD_WINDOW`, gives
    back the jobs claimed ahead behind it (another conductor may start them now instead
    of waiting) and consumes the jobs that finished before it. It sleeps while nothing is
    queued or waiting to be consumed. ``unused(n)``: n queued jobs were given back."""

    def __init__(self, worker: Worker, batch: Batch, unused: Callable[[int], None]) -> None:
        self.worker = worker
        self.batch = batch
        self.unused = unused
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"tideflow-batch-{worker.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.batch.pending.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        batch = self.batch
        handled = 0  # the job (by batch.started) whose overdue batch was dealt with
        while not self._stop.is_set():
            if not batch.busy:
                batch.pending.clear()
                if not batch.busy:
                    batch.pending.wait()
                continue
            since, started = batch.since, batch.started
            if since is None or started == handled:
                self._stop.wait(CLAIM_AHEAD_WINDOW / 2)
                continue
            late = since + CLAIM_AHEAD_WINDOW - time.monotonic()
            if late > 0:
                self._stop.wait(late)
                continue
            if batch.started != started:
                continue  # that job ended meanwhile
            handled = started
            try:
                self._overdue()
            except Exception:  # a bug of ours: the loop gives back and settles at its end
                logger(LOG).exception(
                    "conductor %r: settling jobs behind a long one failed", self.worker.name
                )

    def _overdue(self) -> None:
        why = "the job before it runs longer than expected"
        released = self.worker.release_queued(self.batch, why)
        if released:
            self.unused(released)
        if self.batch.has_done:
            self.worker.settle(self.batch, 0)


class Held:
    """One claimed job while its conductor works on it."""

    def __init__(self, job: Job, follow: Follow | Batch | None = None) -> None:
        self.job = job
        #: how its consume may claim the next job (None: it only consumes); with a
        #: Batch, its consume waits for the batch's next call to the board
        self.follow = follow
        #: its consume was left to the batch: still held until then
        self.deferred = False
        self.engine: tideflow.Engine | None = None
        #: another claim replaced ours: nothing more may be done to the job
        self.lost = False
        #: the conductor is stopping (or lost the board): suspend the run, give the job back
        self.stopping = False
        self.reason = ""
        #: the run is over and the job being settled: no more renewals
        self.settling = False
        #: the owner token the run record is taken over with before the engine runs
        self.placeholder: str | None = None
        #: the engine claimed the record, ran and recorded how it ended (it released it)
        self.recorded = False
        #: what stopped the run, if it raised (said again if the job is dropped)
        self.failure: BaseException | None = None
        self.renewed = time.monotonic()
        self._lock = threading.Lock()

    def attach(self, engine: tideflow.Engine) -> None:
        with self._lock:
            self.engine = engine

    def halt(self, reason: str, *, lost: bool = False) -> None:
        """Ask the job's run to stop (its engine suspends once running atoms finish)."""
        with self._lock:
            if lost:
                self.lost = True
            else:
                self.stopping = True
            self.reason = self.reason or reason
            engine = self.engine
        if engine is not None:
            engine.suspend()

    @property
    def must_stop(self) -> bool:
        return self.lost or self.stopping


def _import_factory(factory: str, allowed: Sequence[str], where: str) -> Callable[..., Any]:
    """The job's factory, imported only if it is defined under the allow-list."""
    try:
        found: Callable[..., Any] = import_factory(factory, allowed, where)
    except (FactoryNotAllowedError, TypeError, ValueError) as exc:
        raise _Unrunnable(str(exc)) from exc
    except AttributeError as exc:
        module_name, _, attrs = factory.partition(":")
        raise _Unrunnable(
            f"its flow factory {factory!r} does not exist: {module_name} has no {attrs!r}"
        ) from exc
    except Exception as exc:  # any error while importing: the job cannot run here
        raise _Unrunnable(
            f"its flow factory {factory!r} cannot be imported ({type(exc).__name__}: {exc}); "
            "is its module installed on this conductor's machine?"
        ) from exc
    return found


def _check_recorded_factory(name: str, allowed: Sequence[str], flow_uuid: str) -> None:
    """A run record keeps 'pkg.mod.func': it must be under a prefix as a module path, and
    what it names must be defined under one (not merely imported into an allowed
    module), so a forged record cannot reach beyond the list either."""
    if not allows_module(allowed, name):
        raise _Unrunnable(
            f"its run record {flow_uuid} names the flow factory {name!r}, outside the "
            f"board's allow-list {list(allowed)}"
        )
    private = _Unrunnable(
        f"its run record {flow_uuid} names the flow factory {name!r}: a path through "
        "private or special names is never run"
    )
    if any(part.startswith("__") for part in name.split(".")):
        raise private  # before anything is imported
    try:
        found, through = tideflow_helpers._resolve_factory(name)
    except Exception as exc:  # the record cannot be resumed here
        raise _Unrunnable(
            f"its run record's flow factory {name!r} cannot be imported "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    # the attributes below the module it was found in (exactly as it is resumed) are
    # public names only, as after a job factory's colon; a private module ('app._flows',
    # which a job's 'app._flows:make' may name) is fine
    if any(part.startswith("_") for part in through):
        raise private
    defined_in = getattr(found, "__module__", None)
    if not isinstance(defined_in, str) or not allows_module(allowed, defined_in):
        raise _Unrunnable(
            f"its run record {flow_uuid} names the flow factory {name!r}, defined in "
            f"{defined_in!r}, outside the board's allow-list {list(allowed)}"
        )


class Worker:
    """The state and per-job logic every conductor shares (see the module docstring)."""

    def __init__(
        self,
        name: str,
        board: Board,
        store: Any,
        *,
        lease: float,
        engine: str,
        engine_options: Mapping[str, Any] | None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a conductor's name is a non-empty str, got {name!r}")
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise ValueError(f"lease= takes a number of seconds, more than 0, got {lease!r}")
        options = dict(engine_options or {})
        clash = sorted(_RESERVED.intersection(options))
        if clash:
            raise ValueError(
                f"engine_options= cannot set {clash}: the conductor sets them for each job "
                "(the engine kind is engine=)"
            )
        # a wrong engine or option is refused now, not once per job (which would
        # abandon every job on the board into the trash)
        tideflow.load(tideflow.LinearFlow(f"conductor {name} check"), engine=engine, **options)
        self.name = name
        self.board = board
        self.store = store
        self.lease = float(lease)
        self.engine_kind = engine
        self.engine_options = options
        self.notifier = RestrictedNotifier(EVENTS)
        #: what events name as their ``conductor`` (the conductor this worker serves)
        self.conductor: object = self
        self._held: set[Held] = set()
        self._held_lock = threading.Lock()
        #: monotonic time of the last job given back for a store error (0: never)
        self.store_trouble = 0.0
        self._counts = dict.fromkeys(("dispatched", *(o.lower() for o in JobOutcome)), 0)

    # -- bookkeeping --------------------------------------------------------------------

    def held(self) -> list[Held]:
        """The jobs being worked on now."""
        with self._held_lock:
            return list(self._held)

    def statistics(self) -> Statistics:
        """How many jobs this conductor dispatched, and what became of them."""
        with self._held_lock:
            return Statistics(**self._counts)

    @contextlib.contextmanager
    def _holding(
        self, job: Job, follow: Follow | Batch | None = None, held: Held | None = None
    ) -> Iterator[Held]:
        if held is None:
            held = Held(job, follow)
        else:
            held.follow = follow
        with self._held_lock:
            self._held.add(held)
            self._counts["dispatched"] += 1
        try:
            yield held
        finally:
            if not held.deferred:
                self.forget(held)

    def hold(self, job: Job) -> Held:
        """Hold a job claimed ahead (its lease is renewed from now on) until it runs."""
        held = Held(job)
        with self._held_lock:
            self._held.add(held)
        return held

    def forget(self, held: Held) -> None:
        """Stop holding a job (its lease is no longer renewed)."""
        with self._held_lock:
            self._held.discard(held)

    def _notify(self, event: str, details: Mapping[str, Any]) -> None:
        self.notifier.notify(event, details)

    # -- one job ------------------------------------------------------------------------

    def work(
        self, job: Job, follow: Follow | Batch | None = None, ahead: Held | None = None
    ) -> JobOutcome | None:
        """Run a claimed job to its end and settle it on the board; never raises but
        for KeyboardInterrupt/SystemExit (after giving the job back). With ``follow``,
        consuming it may claim the next job too (see :class:`Follow`); with a
        :class:`Batch`, a finished run's consume is left to the batch's next call (then
        None is returned: :meth:`settle` counts it). ``ahead``: the job, held already
        (claimed ahead)."""
        with self._holding(job, follow, ahead) as held:
            try:
                outcome = self._work(held)
            except Exception as exc:  # a bug of ours or a board's: the loop goes on
                logger(LOG).exception("conductor %r: job %s failed", self.name, job.uuid)
                outcome = self._give_back(held, f"{type(exc).__name__}: {exc}")
            except BaseException:
                self._give_back(held, "the conductor was interrupted")
                raise
            finally:
                self._let_go(held)
        if outcome is not None:
            self.count(outcome)
        return outcome

    def _let_go(self, held: Held) -> None:
        """Release the placeholder owner of the run record, unless the engine has run and
        released the record itself (the store then keeps the fence's tombstone)."""
        placeholder, held.placeholder = held.placeholder, None
        if placeholder is None:
            return
        retire_owner(placeholder)
        if held.recorded:
            return
        flow_uuid = str(held.job.details.get("flow_uuid") or held.job.uuid)
        try:
            with contextlib.closing(self.store.get_connection()) as conn:
                conn.release_run(flow_uuid, placeholder)
        except Exception as exc:  # the next claim's higher token takes it over anyway
            logger(LOG).warning(
                "conductor %r: could not release run %s (%s)", self.name, flow_uuid, exc
            )

    def count(self, outcome: JobOutcome) -> None:
        """Count a job's outcome in :meth:`statistics`."""
        with self._held_lock:
            self._counts[outcome.lower()] += 1

    def _work(self, held: Held) -> JobOutcome | None:
        job = held.job
        try:
            engine = self._engine_for(held)
        except _Unrunnable as exc:
            return self._trash(held, str(exc))
        except StoreError as exc:
            if not isinstance(exc, RunOwnedError | LeaseLostError):
                self.store_trouble = time.monotonic()
            return self._give_back(held, f"the store failed while loading its run: {exc}")
        except Exception as exc:
            logger(LOG).exception("conductor %r: loading job %s failed", self.name, job.uuid)
            return self._give_back(held, f"loading its run failed ({type(exc).__name__}: {exc})")
        if engine is None:  # its run had finished: a previous owner died before consuming
            return self._consume(held, None)
        held.attach(engine)
        details = {"job": job, "engine": engine, "conductor": self.conductor}
        failure: BaseException | None = None
        try:
            for stage, call in (
                ("compilation", engine.compile),
                ("preparation", engine.prepare),
                ("validation", engine.validate),
                ("running", engine.run),
            ):
                if held.must_stop:
                    break
                self._notify(f"{stage}_start", details)
                call()
                self._notify(f"{stage}_end", details)
        except Exception as exc:  # the flow's own failure, or the store's; sorted below
            failure = held.failure = exc
        if failure is None:
            # run() returned: its final state was committed (else it would have raised)
            state = _flow_state(engine)
            held.recorded = state in _FINISHED
        else:
            # the in-memory state may be ahead of the record (its commit failed): only
            # what the store holds may decide that the job is done
            state = self._recorded_state(held, engine)
        if state in _FINISHED:
            return self._consume(held, state)
        if isinstance(failure, DefinitionError):
            return self._trash(held, f"its flow cannot run: {failure}")
        if isinstance(failure, StoreError):
            if not isinstance(failure, RunOwnedError | LeaseLostError):
                self.store_trouble = time.monotonic()
            return self._give_back(held, f"its run could not write its record: {failure}")
        if failure is not None:
            logger(LOG).error(
                "conductor %r: job %s stopped (%s: %s)",
                self.name,
                job.uuid,
                type(failure).__name__,
                failure,
                exc_info=failure,
            )
            return self._give_back(held, f"{type(failure).__name__}: {failure}")
        why = held.reason if held.stopping else f"its run ended {state}"
        return self._give_back(held, why)

    def _recorded_state(self, held: Held, engine: tideflow.Engine) -> FlowState | None:
        """The flow state the store holds for the job's run (None if it cannot say)."""
        try:
            flow_uuid = engine.storage.flow_uuid
            with contextlib.closing(self.store.get_connection()) as conn:
                state: FlowState = conn.get_flow_details(flow_uuid).state
        except NotFoundError:
            return None  # its first round was never written: the run made no record
        except Exception as exc:
            logger(LOG).warning(
                "conductor %r: job %s: could not read how its run ended (%s)",
                self.name,
                held.job.uuid,
                exc,
            )
            return None
        return state

    def _engine_for(self, held: Held) -> tideflow.Engine | None:
        """The engine that runs the job's flow (None: its run record has finished)."""
        job = held.job
        flow_uuid = str(job.details.get("flow_uuid") or job.uuid)
        options: dict[str, Any] = {
            "engine": self.engine_kind,
            **self.engine_options,
            "fence": (job.uuid, job.token),
        }
        # The record is taken over under this claim's fence *before* it is read: from
        # then on a stale owner's engine (a lower token) cannot write to it, so what is
        # read is what this run starts from. The engine's own claim, at run(), holds the
        # same token and takes over from this placeholder owner.
        held.placeholder = new_owner((job.uuid, job.token))
        record: FlowDetail | None = None
        if job.token > 1 or "flow_uuid" in job.details:
            # only an earlier claim (or the poster, naming a record) can have made one:
            # the first claim of a job skips the lookup
            with contextlib.closing(self.store.get_connection()) as conn:
                try:
                    conn.claim_run(flow_uuid, held.placeholder)
                    record = conn.get_flow_details(flow_uuid)
                except NotFoundError:
                    record = None
        if record is not None:
            if record.state in _FINISHED:
                logger(LOG).info(
                    "conductor %r: job %s: its run %s had already finished %s; consuming it",
                    self.name,
                    job.uuid,
                    flow_uuid,
                    record.state,
                )
                return None
            factory = record.meta.get("factory")
            recorded = factory.get("name") if isinstance(factory, Mapping) else None
            if not isinstance(recorded, str) or not recorded:
                raise _Unrunnable(f"its run record {flow_uuid} holds no flow factory to resume")
            _check_recorded_factory(recorded, self.board.allowed, flow_uuid)
            logger(LOG).info(
                "conductor %r: job %s: resuming run %s from its record (%s)",
                self.name,
                job.uuid,
                flow_uuid,
                record.state,
            )
            try:
                engine = tideflow.load_from_detail(record, dict(job.store), self.store, **options)
            except NotFoundError as exc:
                raise _Unrunnable(str(exc)) from exc
            engine.storage.adopt_claim(held.placeholder)  # no second claim at run()
            return engine
        make = _import_factory(job.factory, self.board.allowed, f"conductor {self.name!r}")
        flow = make(*job.args, **job.kwargs)
        if not isinstance(flow, tideflow.Flow | tideflow.Atom):
            raise _Unrunnable(
                f"its flow factory {job.factory!r} returned {type(flow).__name__}, not a flow"
            )
        record = FlowDetail(flow.name, uuid=flow_uuid)
        tideflow.save_factory_details(record, make, job.args, job.kwargs)
        book = LogBook(f"job {job.name}")
        book.add(record)
        with contextlib.closing(self.store.get_connection()) as conn:
            if job.token == 1 and getattr(conn, "creates_in_round", False):
                # a job's first claim: no record can exist yet, and none is read. The
                # run's first round creates it under the claim, in its own transaction
                # (one commit less); a stale owner creating it too cannot overwrite it
                engine = tideflow.load(
                    flow,
                    dict(job.store),
                    backend=self.store,
                    book=book,
                    flow_detail=record,
                    **options,
                )
                engine.storage.adopt_claim(held.placeholder, create=book)
                return engine
            # created under the claim: a stale owner creating it too cannot overwrite it
            conn.claim_run(flow_uuid, held.placeholder, book)
            if job.token > 1:
                # an earlier claim (paused past its lease) may have made the record
                # after the lookup above; its atoms are then the ones to resume
                stored = conn.get_flow_details(flow_uuid)
                if len(stored):
                    record = stored
        engine = tideflow.load(
            flow, dict(job.store), backend=self.store, book=book, flow_detail=record, **options
        )
        engine.storage.adopt_claim(held.placeholder)  # no second claim at run()
        return engine

    # -- settling a job -----------------------------------------------------------------

    def _settled(self, event: str, job: Job) -> None:
        self._notify(event, {"job": job, "conductor": self.conductor, "persistence": self.store})

    def _consume(self, held: Held, state: FlowState | None) -> JobOutcome | None:
        job = held.job
        if held.lost:
            held.settling = True
            return self._drop(held, "its claim was lost while it ran")
        follow = held.follow
        if isinstance(follow, Batch):
            held.deferred = True  # still held (renewed) until the batch's next call
            follow.finished(held, state)
            return None
        held.settling = True
        along = None if follow is None else getattr(self.board, "consume_and_claim_next", None)
        try:
            if along is not None and follow is not None and follow.may_claim():
                follow.asked = True
                follow.job = along(job, self.name, job.token, self.lease)
            else:
                self.board.consume(job, self.name, job.token)
        except LeaseLostError as exc:
            if follow is not None:
                follow.failed()  # nothing was claimed: the loop claims as usual
            return self._drop(held, str(exc))
        except Exception as exc:
            if follow is not None:
                follow.failed()
            # the run has finished: whoever claims the job next finds it so and consumes
            return self._drop(held, f"consuming it failed ({exc!r})")
        return self._consumed(held, state)

    def _consumed(self, held: Held, state: FlowState | None) -> JobOutcome:
        """Say that ``held`` was consumed (its run ended ``state``)."""
        job = held.job
        if state in (FlowState.REVERTED, FlowState.FAILURE):
            logger(LOG).warning(
                "conductor %r: job %s (%s) consumed: its run ended %s (see its record)",
                self.name,
                job.uuid,
                job.name,
                state,
            )
        else:
            logger(LOG).info("conductor %r: job %s (%s) consumed", self.name, job.uuid, job.name)
        self._settled("job_consumed", job)
        return JobOutcome.CONSUMED

    def settle(self, batch: Batch, limit: int) -> list[Job] | None:
        """One call to the board's ``consume_and_claim``: consume the batch's finished
        jobs and claim up to ``limit`` more (held from now on, in claim order). None
        if the board failed: nothing was claimed, and the finished jobs are left to
        whoever claims them next (their runs are recorded as finished)."""
        done = batch.take_done()
        for held, _ in done:
            held.settling = True  # no more renewals: they are being consumed
        pairs = [(held.job, held.job.token) for held, _ in done]
        try:
            settled = self.board.consume_and_claim(pairs, self.name, self.lease, limit)  # type: ignore[attr-defined]
        except Exception as exc:
            if not isinstance(exc, StoreError):
                logger(LOG).exception("conductor %r: consuming and claiming failed", self.name)
            else:
                logger(LOG).warning("conductor %r: claiming failed: %s", self.name, exc)
            for held, _ in done:
                self._settle_one(held, self._drop(held, f"consuming it failed ({exc!r})"))
            return None
        lost = set(settled.lost)
        for held, state in done:
            if held.job.uuid in lost:
                outcome = self._drop(held, "its claim was lost before it was consumed")
            else:
                outcome = self._consumed(held, state)
            self._settle_one(held, outcome)
        return list(settled.claimed)

    def _settle_one(self, held: Held, outcome: JobOutcome) -> None:
        self.forget(held)
        self.count(outcome)

    def release_queued(self, batch: Batch, why: str) -> int:
        """Give back every job queued in ``batch`` (claimed ahead, unstarted); how many."""
        queued = batch.take_queue()
        for held in queued:
            self.release(held, why)
        return len(queued)

    def release(self, held: Held, why: str) -> None:
        """Give back a job claimed ahead that never started: no attempt is counted (a
        board without ``release`` abandons it, which counts one)."""
        job = held.job
        held.settling = True
        try:
            if held.lost:
                logger(LOG).info(
                    "conductor %r: job %s (%s), claimed ahead, was lost before it started",
                    self.name,
                    job.uuid,
                    job.name,
                )
                return
            release = getattr(self.board, "release", None)
            if release is None:
                self.board.abandon(job, self.name, job.token)
            else:
                release(job, self.name, job.token)
            logger(LOG).info(
                "conductor %r: job %s (%s), claimed ahead, given back unstarted: %s",
                self.name,
                job.uuid,
                job.name,
                why,
            )
        except Exception as exc:  # lost, or the board's trouble: its lease runs out
            logger(LOG).warning(
                "conductor %r: could not give back job %s (%s), claimed ahead and "
                "unstarted (%s); its lease will run out",
                self.name,
                job.uuid,
                job.name,
                exc,
            )
        finally:
            self.forget(held)

    def give_back(self, job: Job, why: str) -> JobOutcome:
        """Abandon a claimed job this conductor will not run (it is stopping)."""
        with self._holding(job) as held:
            outcome = self._give_back(held, why)
        self.count(outcome)
        return outcome

    def _give_back(self, held: Held, why: str) -> JobOutcome:
        job = held.job
        held.settling = True
        if held.lost:
            return self._drop(held, why)
        try:
            left = self.board.abandon(job, self.name, job.token)
        except LeaseLostError as exc:
            return self._drop(held, f"{why}; then: {exc}")
        except Exception as exc:  # the board's trouble: the lease runs out, someone retries
            return self._drop(held, f"abandoning it failed ({exc!r}); its lease will run out")
        logger(LOG).warning(
            "conductor %r: job %s (%s) abandoned (attempt %d; now %s): %s",
            self.name,
            job.uuid,
            job.name,
            left.attempts,
            left.state,
            why,
        )
        self._settled("job_abandoned", left)
        return JobOutcome.ABANDONED

    def _trash(self, held: Held, why: str) -> JobOutcome:
        job = held.job
        held.settling = True
        if held.lost:
            return self._drop(held, why)
        try:
            left = self.board.trash(job, self.name, job.token)
        except LeaseLostError as exc:
            return self._drop(held, str(exc))
        except Exception as exc:
            return self._drop(held, f"trashing it failed ({exc!r}); its lease will run out")
        logger(LOG).error(
            "conductor %r: job %s (%s) trashed: %s", self.name, job.uuid, job.name, why
        )
        self._settled("job_trashed", left)
        return JobOutcome.TRASHED

    def _drop(self, held: Held, why: str) -> JobOutcome:
        failure = held.failure
        if failure is not None and type(failure).__name__ not in why:
            why += f" (its run had stopped on {type(failure).__name__}: {failure})"
        logger(LOG).warning(
            "conductor %r: job %s (%s) dropped, no longer ours: %s",
            self.name,
            held.job.uuid,
            held.job.name,
            why,
        )
        return JobOutcome.DROPPED


def _flow_state(engine: tideflow.Engine) -> FlowState | None:
    try:
        return engine.storage.get_flow_state()
    except Exception:  # a storage that never came to be: the run did not start
        return None


class LeaseKeeper:
    """A thread renewing the leases of a worker's held jobs every ``lease / 3`` s."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.period = worker.lease / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"tideflow-leases-{self.worker.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            for held in self.worker.held():
                self.renew(held)

    def renew(self, held: Held) -> None:
        """Renew one job's lease; on a lost claim (or a board out of reach past the
        lease) suspend its run."""
        worker = self.worker
        if held.lost or held.settling:
            return
        job = held.job
        try:
            worker.board.renew(job, worker.name, job.token, worker.lease)
        except LeaseLostError as exc:
            if held.settling:
                return  # consumed (or given back) while the renewal was on its way
            logger(LOG).warning(
                "conductor %r: lost job %s (%s); suspending its run: %s",
                worker.name,
                job.uuid,
                job.name,
                exc,
            )
            held.halt("its claim was lost", lost=True)
            return
        except Exception as exc:
            late = time.monotonic() - held.renewed
            logger(LOG).warning(
                "conductor %r: could not renew the lease of job %s (%.1f s since the last "
                "renewal; lease %.1f s): %s",
                worker.name,
                job.uuid,
                late,
                worker.lease,
                exc,
            )
            if late >= worker.lease and not held.stopping:
                # the lease may be gone: stop before another owner starts
                held.halt(f"the board could not be reached for {late:.1f} s")
            return
        held.renewed = time.monotonic()
