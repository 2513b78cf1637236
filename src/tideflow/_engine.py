"""The engine: drives the scheduler, hands atom calls to a dispatcher, records through storage.

One engine thread owns all run state. A run moves through rounds: SCHEDULING starts
every ready atom, WAITING collects what finished, ANALYZING records outcomes and asks
the scheduler what became ready; the round's changes are then committed together.
When an atom fails, nothing new starts; once running atoms are in, everything that
ran is reverted, each atom only after every atom that depends on it has been
reverted. A retry controller guarding the atom may decide otherwise: its flow alone is
reverted, and run again or given up (``_retries.py``, ``docs/failure-resolution.md``).
``run_iter()`` yields those phases (TaskFlow's names) and the final flow state. Every
state change becomes a typed event for subscribers and listeners. (Step 5 of a run in
``docs/architecture.md``, which follows one run through every module.)
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, cast

from tideflow._compiler import RETRY, START, Binding, Decision, Plan, compile_flow, ignore_set
from tideflow._compiler import _entry_atoms as entry_atoms
from tideflow._flow import Flow
from tideflow._log import logger
from tideflow._notifier import Notifier, atom_details, flow_details
from tideflow._options import check_options, check_timeout, short_repr
from tideflow._retries import TO_REVERT as _RETRY_TO_REVERT
from tideflow._retries import RetryScopes, attempt_of
from tideflow._scheduler import Scheduler
from tideflow._storage import Storage
from tideflow._task import REVERT_FLOW_FAILURES, REVERT_RESULT, Atom, refuse_undrivable
from tideflow.errors import (
    ExecutionError,
    InternalError,
    InvalidStateError,
    StoreError,
    TideflowError,
)
from tideflow.events import AtomEvent, Event, FlowEvent
from tideflow.executors import (
    CALLER_LOOP,
    Awaiter,
    Dispatcher,
    DispatcherFactory,
    Outcome,
    SerialDispatcher,
    SubmitExecutor,
    call_atom,
    factory_for,
    resolve_executor,
)
from tideflow.failure import Failure
from tideflow.persistence._owners import check_fence
from tideflow.persistence.memory import MemoryBackend
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook
from tideflow.states import (
    RETRY_TRANSITIONS,
    TASK_TRANSITIONS,
    AtomState,
    EngineState,
    FlowState,
    Intention,
    check_flow_transition,
)

__all__ = ["Engine"]

_LOGGER = "tideflow.engine"


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk build of acyclic objects.

    Compiling and preparing a 100,000-atom flow allocates a few objects per atom and
    frees none; each full collection the allocations trigger walks every live object,
    which made large plans cost up to twice as much per atom. Nothing built here forms
    a cycle, so there is nothing for the collector to find meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_PENDING: Final = AtomState.PENDING
_RUNNING: Final = AtomState.RUNNING
_SUCCESS: Final = AtomState.SUCCESS
_EXECUTE: Final = Intention.EXECUTE
_REVERT: Final = Intention.REVERT
_REVERTING: Final = AtomState.REVERTING
_REVERTED: Final = AtomState.REVERTED
_RESUMING: Final = EngineState.RESUMING.value
_SCHEDULING: Final = EngineState.SCHEDULING.value
_WAITING: Final = EngineState.WAITING.value
_ANALYZING: Final = EngineState.ANALYZING.value

_A = AtomState
_F = FlowState
#: Atom states that mean "this atom's work may need undoing" (a failed revert is retried).
_TO_REVERT: Final = frozenset({_A.SUCCESS, _A.FAILURE, _A.REVERTING, _A.RUNNING, _A.REVERT_FAILURE})
#: Atom states of a run that was reverting when it stopped.
_REVERTING_MARKS: Final = frozenset({_A.FAILURE, _A.REVERTING, _A.REVERTED, _A.REVERT_FAILURE})
ENGINE_KINDS: Final = ("serial", "parallel")


def _check_shape(atom: Atom, result: Any) -> None:
    """Warn when a result lacks an item its ``provides`` names (a tuple index, a set key).

    The value is still recorded as returned; whoever needs the missing item then
    fails with an error naming it. Said here, where the result was produced.
    """
    for name, index in atom.save_as.items():
        if index is None:
            continue
        try:
            result[index]
        except (LookupError, TypeError):
            where = f"index {index}" if isinstance(index, int) else f"key {index!r}"
            logger("tideflow.storage").warning(
                "atom %r provides %r at %s of its result, but it returned %s, which has no %s",
                atom.name,
                name,
                where,
                short_repr(result, 200),
                where,
            )


_STATE_NAMES: Final = frozenset(state.value for state in (*AtomState, *FlowState))


def _event_names(flow: Flow) -> frozenset[str]:
    """Every event an engine's notifiers can report: flow and atom states, tasks' own events.

    One set for both, as TaskFlow's listeners register the same names on each.
    """
    names = set(_STATE_NAMES)
    flows = [flow]
    while flows:  # no recursion: flows nest as deep as memory allows
        for node in flows.pop():
            if isinstance(node, Flow):
                flows.append(node)
            else:
                names.update(getattr(node, "TASK_EVENTS", ()))
    return frozenset(names)


def _call_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


class Engine:
    """Runs one flow: ``run()``, or step by step with ``run_iter()``.

    Build it with :func:`tideflow.load`. ``notifier`` reports flow states,
    ``atom_notifier`` atom states; ``storage`` holds the run's values and records.
    """

    def __init__(
        self,
        flow: Flow,
        *,
        store: Mapping[str, Any] | None = None,
        backend: Any | None = None,
        book: LogBook | None = None,
        flow_detail: FlowDetail | None = None,
        kind: str = "serial",
        executor: SubmitExecutor | str | None = None,
        max_workers: int | None = None,
        defer_reverts: bool = False,
        never_resolve: bool = False,
        fence: tuple[str, int] | None = None,
    ) -> None:
        if kind not in ENGINE_KINDS:
            raise ValueError(f"unknown engine {kind!r}; choose one of {list(ENGINE_KINDS)}")
        check_options(
            flow,
            store=store,
            backend=backend,
            book=book,
            flow_detail=flow_detail,
            kind=kind,
            executor=executor,
            max_workers=max_workers,
        )
        for option, value in (("defer_reverts", defer_reverts), ("never_resolve", never_resolve)):
            if not isinstance(value, bool):
                raise TypeError(f"{option}= takes True or False, got {value!r}")
        if fence is not None:
            fence = check_fence(fence)
            if backend is None:
                raise ValueError(
                    "fence= guards a run's records in a store shared with other workers; "
                    "give that store as backend= (a run without one has nothing to fence)"
                )
        #: The job claim the run works under (see Storage.fence)
        self._fence = fence
        self._flow = flow
        self.kind = kind
        #: Where atom calls run: the serial engine's own thread, or a registered executor
        #: (its factory found now, so a name whose module is missing fails at load time)
        self._dispatcher_factory: DispatcherFactory | None = None
        self._executor: Any = None
        if kind != "serial":
            name, self._executor = resolve_executor(executor)
            self._dispatcher_factory = factory_for(name)
        self._max_workers = max_workers
        #: REVERT always defers to the enclosing controller (none: the whole run reverts)
        self._defer_reverts = defer_reverts
        #: A failure is not resolved at all: the run stops, FAILURE, nothing reverted
        self._never_resolve = never_resolve
        #: The run's retry state, while a flow with retry controllers runs
        self._scopes: RetryScopes | None = None
        # a name neither notifier ever reports (a typo) is refused at register()
        # (a function of the flow, not a bound method: a reference back to the engine
        # would make every engine cyclic garbage, which costs a collection per run)
        known = functools.partial(_event_names, flow)
        self.notifier = Notifier(known_events=known)
        self.atom_notifier = Notifier(known_events=known)
        self._backend = backend
        self._book = book
        self._flow_detail = flow_detail
        self._initial_store = dict(store or {})
        self._storage: Storage | None = None
        self._plan: Plan | None = None
        self._lock = threading.Lock()
        self._flow_lock = threading.RLock()
        self._suspend_requested = False
        #: run_async() was cancelled before its run began: that run stops at once
        self._cancelled_early = False
        self._thread_id: int | None = None
        self._events: deque[tuple[Atom, str, Mapping[str, Any]]] = deque()
        self._stats: dict[str, Any] = {}
        self._ignored = bytearray()
        self._subscribers: list[Callable[[Event], object]] = []
        self._compile_time = 0.0
        # the run's failures, shared by the round loop and the helpers that find some
        self._failures: list[Failure] = []
        self._revert_failures: list[Failure] = []
        self._flow_failures: dict[str, Failure] = {}
        #: Atoms that failed before their execute was called: nothing of theirs to undo.
        self._unstarted: set[int] = set()

    # -- set-up ---------------------------------------------------------------------

    @property
    def flow(self) -> Flow:
        """The flow this engine runs."""
        return self._flow

    @property
    def storage(self) -> Storage:
        """The run's values and records (created on first use)."""
        if self._storage is None:
            self._storage = self._make_storage()
        return self._storage

    def _make_storage(self) -> Storage:
        private = self._backend is None
        if private:
            # as in TaskFlow, a run without a store still has one: in memory, so its
            # records can be inspected the same way (it shares them: no copying)
            self._backend = MemoryBackend()
        flow_detail = self._flow_detail
        if flow_detail is None:
            flow_detail = FlowDetail(self._flow.name)
            book = self._book if self._book is not None else LogBook("tmp")
            book.add(flow_detail)
            self._book = book
            if self._backend is not None:
                conn = self._backend.get_connection()
                try:
                    conn.save_logbook(book)
                finally:
                    conn.close()
            self._flow_detail = flow_detail
        # weakly: storage must not keep its engine alive (no cycle, no collection per run)
        prepare = weakref.WeakMethod(self._prepare_quietly)
        storage = Storage(flow_detail, self._backend, prepare=lambda: _call_alive(prepare))
        if private:
            storage.private = True  # no other engine can reach this store: nothing to claim
        storage.fence = self._fence
        if self._initial_store:
            storage.inject(self._initial_store)
        return storage

    @property
    def compilation(self) -> Plan:
        """The compiled plan (compiling on first use)."""
        self.compile()
        assert self._plan is not None
        return self._plan

    def compile(self) -> None:
        """Compile the flow into a plan, checking names and structure (once)."""
        if self._plan is None:
            began = time.perf_counter()
            with _collector_paused():
                plan = compile_flow(self._flow)
            refuse_undrivable(plan.atoms)
            self._plan = plan
            self._compile_time = time.perf_counter() - began

    def prepare(self) -> None:
        """Make sure every atom has a record in storage."""
        self.compile()
        assert self._plan is not None
        with _collector_paused():
            self.storage.ensure_plan(self._plan)

    def _prepare_quietly(self) -> None:
        """prepare(), for storage questions asked before the run (errors wait for the run)."""
        if self._storage is not None:
            self.prepare()

    def validate(self) -> None:
        """Check that every requirement will be satisfied, before anything runs."""
        self.prepare()
        assert self._plan is not None
        storage = self.storage
        available = storage.store_keys()
        plan = self._plan
        if plan.external:
            for symbol, users in plan.external.items():
                if symbol in available:
                    continue
                if all(symbol in storage.injected_atom_args(atom) for atom, _ in users):
                    available.add(symbol)
        plan.check_requirements(available)

    def reset(self) -> None:
        """Put every atom and the flow back to PENDING, forgetting results."""
        self.prepare()
        self._reset_atoms()
        self._flow_state(_F.PENDING)
        self.storage.all_new = True  # as good as new: nothing recorded is left
        self.storage.commit()

    def _reset_atoms(self) -> None:
        """Every atom back to PENDING (notified where it was not), results forgotten."""
        plan = self._plan
        assert plan is not None
        storage = self.storage
        self._unstarted.clear()
        nodes: Iterable[int] = plan.atom_nodes
        if plan.retries:
            # TaskFlow's order: tasks in plan order, then controllers, innermost first
            nodes = [*(n for n in nodes if plan.kinds[n] != RETRY), *reversed(plan.retries)]
        for node in nodes:
            detail = storage.details[node]
            assert detail is not None
            if detail.state != _A.PENDING:
                self._atom_state(detail, _A.PENDING)
            detail.reset(_A.PENDING)
            storage.changed(detail)

    def suspend(self) -> None:
        """Ask a running engine to stop starting atoms; running ones finish, then it stops.

        Safe from any thread (a task on a worker, a signal handler, another thread):
        the flow moves to SUSPENDING at once, as in TaskFlow; flow state changes are
        serialised by a lock, so this cannot race the engine's own.
        """
        self._suspend_requested = True
        self._flow_state(_F.SUSPENDING, only_from=_F.RUNNING)
        scopes = self._scopes
        if scopes is not None:
            scopes.wake()  # a back-off being waited out ends now

    @property
    def statistics(self) -> dict[str, Any]:
        """Counts and timings of the last run (empty before any)."""
        return dict(self._stats)

    # -- notifications ---------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], object]) -> Callable[[], None]:
        """Call ``callback(event)`` with a typed event for every flow and atom state change.

        Events are :class:`~tideflow.events.FlowEvent` and
        :class:`~tideflow.events.AtomEvent` records. Returns a function that ends the
        subscription. A callback that raises is logged and never breaks the run.
        """
        if not callable(callback):
            raise TypeError(f"subscribe() takes a callable, got {callback!r}")
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                logger(_LOGGER).exception(
                    "subscriber %r failed on %s; the run goes on", callback, event
                )

    def _flow_state(self, new: FlowState, only_from: FlowState | None = None) -> None:
        storage = self.storage
        # re-entrant: a flow listener may itself call suspend()
        with self._flow_lock:
            old = storage.get_flow_state()
            if only_from is not None and old is not only_from:
                return
            if not check_flow_transition(old, new):
                return
            storage.set_flow_state(new)
            listening = self.notifier.wants(new)
            if listening or self._subscribers:
                event = FlowEvent(storage.flow_name, storage.flow_uuid, new, old, time.time())
                self._emit(event)
                if listening:
                    self.notifier.notify(new.value, flow_details(event, self))

    def _atom_state(
        self, detail: AtomDetail, new: AtomState, result: Any = None, delay: float | None = None
    ) -> None:
        old = detail.state
        if (old, new) not in TASK_TRANSITIONS and not (
            detail.kind == "retry" and (old, new) in RETRY_TRANSITIONS
        ):
            if old is new:
                return
            # the same error the state table's own check raises, naming the atom too
            raise InvalidStateError(
                f"atom {detail.name!r} cannot go from {old} to {new}: this is an engine bug"
            )
        detail.state = new
        notifier = self.atom_notifier
        listening = bool(notifier._topics) and notifier.wants(new)
        if listening or self._subscribers:
            failed = isinstance(result, Failure)
            storage = self.storage
            plan = self._plan
            assert plan is not None
            event = AtomEvent(
                storage.flow_name,
                storage.flow_uuid,
                detail.name,
                detail.uuid,
                "retry" if detail.kind == "retry" else "task",
                new,
                old,
                time.time(),
                None if failed else result,
                result if failed else None,
                attempt_of(plan, storage.details, plan.index[detail.name]),
                delay,
            )
            self._emit(event)
            if listening:
                notifier.notify(new.value, atom_details(event))

    def _task_event(self, atom: Atom, event: str, details: Mapping[str, Any]) -> None:
        """A task reported an event: record progress, tell atom listeners of that event."""
        if threading.get_ident() != self._thread_id:
            self._events.append((atom, event, details))
            return
        self._deliver_event(atom, event, details)

    def _deliver_event(self, atom: Atom, event: str, details: Mapping[str, Any]) -> None:
        storage = self.storage
        if event == "update_progress":
            progress = details.get("progress", 0.0)
            if isinstance(progress, int | float) and not isinstance(progress, bool):
                storage.set_task_progress(atom.name, float(progress))
            else:
                # notified by hand with something that is not a number: not recorded, and
                # never an error in the engine thread (update_progress() refuses it itself)
                logger(_LOGGER).warning(
                    "task %r notified update_progress with progress=%r, not a number; "
                    "it is not recorded",
                    atom.name,
                    progress,
                )
        # Only listeners that asked for this event by name hear it: '*' atom listeners see
        # state changes alone, as in TaskFlow.
        notifier = self.atom_notifier
        if notifier.wants_by_name(event):
            payload = {
                "task_name": atom.name,
                "task_uuid": storage.get_atom_uuid(atom.name),
                **details,
            }
            notifier.notify(event, payload, include_any=False)

    def _drain_events(self) -> None:
        while self._events:
            self._deliver_event(*self._events.popleft())

    # -- running --------------------------------------------------------------------

    def run(self, timeout: float | None = None) -> None:
        """Run the flow to its end; re-raise what failed, after reverting."""
        check_timeout(timeout)
        # Nobody watches the phases here, so rounds follow each other without yielding.
        for _ in self._iterate(timeout, phases=False):
            pass

    async def run_async(self, timeout: float | None = None) -> None:
        """Run the flow from a coroutine, without blocking the event loop; as :meth:`run`.

        The same rounds as :meth:`run`, driven from a thread of the engine's while the
        caller awaits; async atoms run on the caller's loop, other atoms on the
        executor's threads (or, on the serial engine, the engine's thread). Cancelling
        the awaiting task suspends the run: running atoms finish and are recorded, then
        ``CancelledError`` propagates, and a later run finishes the flow. See
        ``tideflow/executors/aio.py``.
        """
        import asyncio  # noqa: PLC0415  # only for async callers

        check_timeout(timeout)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(error: BaseException | None) -> None:  # on the loop's thread
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def drive() -> None:  # the engine thread: a context of its own, so the loop is
            CALLER_LOOP.set(loop)  # seen by this run's dispatchers alone
            error: BaseException | None = None
            try:
                self.run(timeout)
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(report, error)

        threading.Thread(target=drive, name="tideflow-engine", daemon=True).start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            if done.done():
                done.exception()  # the run ended as the cancel came: the cancel is said
                raise
            # the awaiting task was cancelled: stop starting atoms, let the running ones
            # finish and be recorded, then say it was cancelled. A run whose rounds have
            # not begun (its thread sets _thread_id first, then reads the flag) begins
            # suspended; its storage may not exist yet, so suspend() is not called then.
            self._cancelled_early = True
            if self._thread_id is not None:
                self.suspend()
            try:
                while not done.done():
                    try:
                        await asyncio.shield(done)
                    except asyncio.CancelledError:
                        continue  # a suspension under way is not cut short
                    except BaseException:
                        break  # the run itself failed while stopping: cancelled still wins
            finally:
                self._cancelled_early = False  # the run is over: the next one starts afresh
            raise

    def run_iter(self, timeout: float | None = None) -> Generator[str, Any, None]:
        """Run step by step, yielding each engine phase and then the final flow state.

        Send a true value into the generator (or close it) to suspend the run.
        """
        check_timeout(timeout)
        return self._iterate(timeout, phases=True)

    def _iterate(self, timeout: float | None, *, phases: bool) -> Generator[str, Any, None]:
        if not self._lock.acquire(blocking=False):
            raise ExecutionError(
                f"engine for flow {self._flow.name!r} is already running; wait for it to finish"
            )
        claimed = False
        try:
            self.validate()
            self.storage.claim()  # one engine at a time per flow record, in any process
            claimed = True
            yield from self._drive(timeout, phases)
        finally:
            self._thread_id = None
            if claimed:
                self.storage.release()
            self._lock.release()

    def _make_dispatcher(self, sink: Callable[[Atom, str, Mapping[str, Any]], None]) -> Dispatcher:
        """The dispatcher of one run: the engine thread itself, or the chosen executor's."""
        factory = self._dispatcher_factory
        if factory is None:
            return SerialDispatcher()
        return factory(self._executor, max_workers=self._max_workers, sink=sink)

    def _begin(self) -> bool:
        """Move the flow (and, for a fresh start, its atoms) into RUNNING.

        Returns whether the run starts fresh (every atom PENDING, nothing to resume).
        """
        storage = self.storage
        plan = self._plan
        assert plan is not None
        state = storage.get_flow_state()
        # fresh: no atom can be anything but PENDING, so there is nothing to scan for
        fresh = state is _F.REVERTED or (state is _F.PENDING and storage.all_new)
        if state is _F.REVERTED:
            self._reset_atoms()
            self._flow_state(_F.PENDING)
        elif state is _F.SUSPENDING or state is _F.RESUMING:
            # the record says a previous run stopped midway: it is suspended
            self._flow_state(_F.SUSPENDED)
        self._flow_state(_F.RUNNING)
        storage.commit()
        return fresh

    def _drive(self, timeout: float | None, phases: bool) -> Generator[str, Any, None]:  # noqa: PLR0915
        # One function on purpose: the round loop is the hot path, and locals are fast.
        plan = self._plan
        assert plan is not None
        storage = self.storage
        # start/end nodes have no atom and no record, and the loop never looks them up
        atoms = cast(list[Atom], plan.atoms)
        details = cast(list[AtomDetail], storage.details)
        args = plan.args
        kinds = plan.kinds
        decisions = plan.decisions
        # atoms with priority= (found once per plan): ready work starts highest first
        prioritized = plan.prioritized
        self._thread_id = threading.get_ident()
        self._suspend_requested = self._cancelled_early
        clock = time.perf_counter
        began = clock()
        resuming = scheduling = waiting = analyzing = 0.0
        completed = 0
        sink = self._task_event
        dispatcher = self._make_dispatcher(sink)
        try:
            check = getattr(dispatcher, "prepare", None)
            if check is not None:
                # atoms sent elsewhere (processes, a cluster) are refused before anything runs
                check(plan.atoms)
            fresh = self._begin()
            if self._suspend_requested:
                # asked before the flow was RUNNING (so suspend() could not say it)
                self._flow_state(_F.SUSPENDING, only_from=_F.RUNNING)
        except BaseException:
            dispatcher.close()  # its pool, its threads: nothing will run on them
            raise
        # serial runs call atoms right here and keep outcomes in the dispatcher's list
        ran: list[Outcome] | None = None
        run_coroutine: Awaiter | None = None
        if isinstance(dispatcher, SerialDispatcher):
            ran, run_coroutine = dispatcher.done, dispatcher.run_coroutine
        start = dispatcher.start
        scheduler = Scheduler(plan)
        self._ignored = ignored = bytearray(plan.size)
        # a store that shares the engine's record objects needs no write-back
        track = not storage.shares_records
        # with nobody listening to atoms, plain atoms take a short path
        quiet = not self.atom_notifier._topics and not self._subscribers and not track
        # shared with the helpers that record a failure found in the engine thread itself
        failures: list[Failure] = []
        revert_failures: list[Failure] = []
        flow_failures: dict[str, Failure] = {}
        self._failures = failures
        self._revert_failures = revert_failures
        self._flow_failures = flow_failures
        # retry controllers: the decisions about their flows, back-offs (None: no retries)
        self._scopes = scopes = (
            RetryScopes(self, plan, scheduler, dispatcher, defer_reverts=self._defer_reverts)
            if plan.retries
            else None
        )
        if scopes is not None and ran is not None and track:
            scopes.one_at_a_time = True  # serial on a durable store: a revert per round
        reverting = False
        mark = clock()
        try:
            if phases and (yield _RESUMING):
                self.suspend()
            if fresh:
                reverting, ready = False, deque(scheduler.start())
            else:
                reverting, ready = self._resume_point(scheduler, flow_failures)
            if reverting:
                # a run resumed while reverting ends by raising what made it revert
                failures.extend(flow_failures.values())
            ready = self._settle(ready, scheduler, reverting)
            now = clock()
            resuming += now - mark
            mark = now
            while True:
                # One round: start what is ready, collect what finished, record it.
                if phases and (yield _SCHEDULING):
                    self.suspend()
                if not (self._suspend_requested or revert_failures or (failures and not reverting)):
                    if prioritized and len(ready) > 1:
                        # stable: equal priorities keep the order they became ready in
                        ready = deque(sorted(ready, key=lambda n: -atoms[n].priority))
                    while ready:
                        node = ready.popleft()
                        atom = atoms[node]
                        detail = details[node]
                        if reverting:
                            self._start_revert(dispatcher, node, atom, detail)
                            if revert_failures:
                                break  # its arguments could not be bound: stop reverting
                        elif (
                            quiet
                            and detail.state is _PENDING
                            and not args[node]
                            and atom._notifier is None
                            and detail._meta is None
                            and detail.intention is _EXECUTE
                        ):
                            detail.state = _RUNNING
                            atom._event_sink = sink
                            if ran is not None:
                                ran.append(call_atom(node, False, atom, {}, run_coroutine))
                            else:
                                start((node, False, atom, {}))
                        else:
                            self._start_execute(dispatcher, storage, args[node], node, atom, detail)
                            if failures:
                                break  # its arguments could not be bound: start no more
                        if ran is not None and track:
                            # serial on a durable store: one atom per round, so each
                            # outcome is committed before the next atom starts
                            break
                now = clock()
                scheduling += now - mark
                mark = now
                if phases and (yield _WAITING):
                    self.suspend()
                if ran is not None:
                    # serial: everything started has already run; nothing to wait for
                    outcomes = ran[:]
                    ran.clear()
                else:
                    wait = timeout if scopes is None else scopes.wait_time(timeout)
                    outcomes = dispatcher.wait(wait) if dispatcher.in_flight else []
                    now = clock()
                    waiting += now - mark
                    mark = now
                if scopes is not None and not outcomes and not ready:
                    scopes.wait_out()  # nothing else to do: wait out a back-off, if any
                if phases and (yield _ANALYZING):
                    self.suspend()
                if self._events:
                    self._drain_events()
                settled: list[int] = []
                quiet = not self.atom_notifier._topics and not self._subscribers and not track
                for node, reverted, succeeded, result in outcomes:
                    ok, value = succeeded, result
                    atom = atoms[node]
                    detail = details[node]
                    atom._event_sink = None
                    completed += 1
                    if track and ok and value is not None:
                        # a result the store cannot keep fails its atom here, not the run
                        unstorable = storage.unstorable(detail, value, reverted)
                        if unstorable is not None:
                            ok, value = False, Failure.from_exception(unstorable)
                    if reverted:
                        if ok:
                            if value is not None:
                                detail.revert_results = value
                            if quiet and detail.state is _REVERTING:
                                detail.state = _REVERTED
                            else:
                                self._atom_state(detail, _A.REVERTED, value)
                            if atom._notifier is not None or detail._meta is not None:
                                self._progress(atom, detail, 1.0)
                            if not reverting:
                                # a retry controller's flow is being reverted
                                scopes.back.extend(scheduler.reverted(node))  # type: ignore[union-attr]
                            else:
                                for n in scheduler.reverted(node):
                                    # tasks to undo go straight to the ready queue; the rest settle
                                    if not kinds[n] and details[n].state in _TO_REVERT:
                                        ready.append(n)
                                    else:
                                        settled.append(n)
                        else:
                            detail.revert_failure = value
                            revert_failures.append(value)
                            self._atom_state(detail, _A.REVERT_FAILURE, value)
                    elif ok:
                        detail.results = value
                        if atom._indexed_provides:
                            _check_shape(atom, value)
                        if quiet and detail.state is _RUNNING:
                            detail.state = _SUCCESS
                        else:
                            self._atom_state(detail, _A.SUCCESS, value)
                        if atom._notifier is not None or detail._meta is not None:
                            self._progress(atom, detail, 1.0)
                        for n in scheduler.complete(node):
                            # plain tasks go straight to the ready queue; the rest settle
                            if not kinds[n] and not ignored[n] and n not in decisions:
                                ready.append(n)
                            else:
                                settled.append(n)
                    else:
                        detail.failure = value
                        flow_failures[detail.name] = value
                        self._atom_state(detail, _A.FAILURE, value)
                        if scopes is None or self._never_resolve or not scopes.resolve(node, value):
                            failures.append(value)
                    if track:
                        storage.changed(detail)
                if settled:
                    ready.extend(self._settle(deque(settled), scheduler, reverting))
                if scopes is not None and scopes.active and not reverting:
                    if track:
                        # a decision's reverts start in step(): what led to them first
                        storage.commit()
                    ready = scopes.step(ready, [outcome[0] for outcome in outcomes])
                if failures and not reverting and not dispatcher.in_flight:
                    if self._never_resolve:
                        break  # nothing is resolved: the run ends FAILURE as it stands
                    # Everything running is in: undo what ran, latest first.
                    reverting = True
                    if scopes is not None:
                        # wider than any controller's decision: what they were about goes too
                        failures.extend(scopes.clear())
                    self._mark_reverting(plan.atom_nodes, details)
                    ready = self._settle(deque(scheduler.start_revert()), scheduler, True)
                halted = self._suspend_requested or bool(revert_failures)
                idle = not ready and (scopes is None or not scopes.active)
                last = not dispatcher.in_flight and (halted or idle)
                if track and not last:
                    # the last round is written with the run's final state, in one
                    # transaction (nothing runs in between, so nothing is lost by it)
                    storage.commit()
                now = clock()
                analyzing += now - mark
                mark = now
                if last:
                    break
            final = self._final_state(reverting, revert_failures, ready, scheduler)
        except GeneratorExit:
            self._flow_state(_F.SUSPENDING)
            self._flow_state(_F.SUSPENDED)
            storage.commit()
            dispatcher.close()
            raise
        except StoreError:
            # The store cannot take writes: stop here. What it committed is the record a
            # resumed run starts from; atoms running now run again then (at least once).
            dispatcher.close()
            raise
        except BaseException as exc:
            # Only a bug in tideflow or an interrupt (KeyboardInterrupt, SystemExit) gets
            # here: every failure of user code became an atom's Failure and a normal
            # revert. The run stops where it is, and its record says why. A bug ends the
            # run FAILURE; an interrupt leaves it in its state, as a crash would, so it
            # is resumed like one (atoms caught running run again).
            dispatcher.close()
            storage.update_flow_metadata(
                {"stopped_by": {"type": type(exc).__name__, "message": str(exc)}}
            )
            if isinstance(exc, Exception):
                self._flow_state(_F.FAILURE)
            storage.commit()
            raise
        dispatcher.close()
        self._stats = {
            "seconds_per_state": {
                "resuming": resuming,
                "scheduling": scheduling,
                "waiting": waiting,
                "analyzing": analyzing,
            },
            "discarded_failures": len(failures) + len(revert_failures),
            "awaiting": 0,
            "completed": completed,
            "incomplete": 0,
            "active_for": clock() - began,
            "compile_time": self._compile_time,
        }
        try:
            yield final.value
        except GeneratorExit:
            # closed before asking for the end: say so, as TaskFlow does, then settle
            self._flow_state(_F.SUSPENDING)
            raise
        finally:
            self._flow_state(final)
            storage.commit(release=True)  # the run's last write: released with it
        if final == _F.FAILURE:
            Failure.reraise_if_any(revert_failures or failures)
        if final == _F.REVERTED:
            Failure.reraise_if_any(failures if scopes is None else [*failures, *scopes.given_up])

    def _settle(self, ready: deque[int], scheduler: Scheduler, reverting: bool) -> deque[int]:
        """Pass through nodes that need no work; return the atoms to start.

        Flow start/end nodes complete at once, and so, when reverting, do atoms
        that never ran; each node is looked at once.
        """
        plan = self._plan
        assert plan is not None
        kinds = plan.kinds
        details = self.storage.details
        decisions = plan.decisions
        ignored = self._ignored
        scopes = self._scopes
        out: deque[int] = deque()
        while ready:
            node = ready.popleft()
            if scopes is not None and not reverting and scopes.frozen[node]:
                continue  # a decision about its flow is under way: it must not start
            if not reverting and node in decisions and not self._decide(decisions[node]):
                continue  # a decider raised: its target failed, the run reverts
            kind = kinds[node]
            if kind >= START:
                ready.extend(scheduler.reverted(node) if reverting else scheduler.complete(node))
            elif reverting:
                state = details[node].state  # type: ignore[union-attr]
                if kind == RETRY and state in _RETRY_TO_REVERT:
                    # controllers run here, on the engine thread; a failed revert halts
                    if scopes.revert_retry(node):  # type: ignore[union-attr]
                        ready.extend(scheduler.reverted(node))
                elif state in _TO_REVERT:
                    out.append(node)
                else:
                    ready.extend(scheduler.reverted(node))
            elif ignored[node]:
                detail = details[node]
                assert detail is not None
                self._atom_state(detail, _A.IGNORE)
                self.storage.changed(detail)
                ready.extend(scheduler.complete(node))
            elif kind == RETRY:
                if self._suspend_requested or self._failures or self._revert_failures:
                    continue  # not started: the run stops or reverts (it stays ready)
                if scopes.run_retry(node):  # type: ignore[union-attr]
                    ready.extend(scheduler.complete(node))
            else:
                out.append(node)
        return out

    def _decide(self, decisions: list[Decision]) -> bool:
        """Ask the deciders on links into a target; on a no, mark what it IGNOREs.

        A decider that raises fails the target (its first atoms, if it is a subflow)
        as if that atom had raised, and the run reverts; returns False then.
        """
        plan = self._plan
        assert plan is not None
        details = self.storage.details
        first = decisions[0]
        history = {}
        for node in first.history:
            detail = details[node]
            assert detail is not None
            if detail.state is _A.SUCCESS:
                history[detail.name] = detail.results
        for decision in decisions:
            try:
                accepted = decision.decider(dict(history))
            except Exception as exc:
                target = entry_atoms(plan, decision.target_entry, decision.target_stop)
                if not target:
                    raise  # an empty target cannot fail: the compiler refuses empty flows
                detail = details[target[0]]
                assert detail is not None
                self._fail_unstarted(target[0], detail, exc)
                return False
            if not accepted:
                for node in ignore_set(plan, decision):
                    self._ignored[node] = 1
        return True

    def _resume_point(
        self, scheduler: Scheduler, flow_failures: dict[str, Failure]
    ) -> tuple[bool, deque[int]]:
        """Read recorded atom states: what is done, and whether the run was reverting.

        Finished atoms are done; atoms caught RUNNING run again (at least once); a run
        caught reverting keeps reverting.
        """
        plan = self._plan
        assert plan is not None
        details = self.storage.details
        done = [False] * plan.size
        reverting = False
        # flows whose controller's decision was being carried out: it is carried on
        scopes = self._scopes
        deciding = set(scopes.resume()) if scopes is not None else ()
        for node in plan.atom_nodes:
            detail = details[node]
            assert detail is not None
            state = detail.state
            if state is _A.PENDING:
                continue
            if detail.failure is not None:
                flow_failures[detail.name] = detail.failure
            if state is _A.SUCCESS or state is _A.IGNORE:
                done[node] = True
            if node in deciding:
                continue
            if state in _REVERTING_MARKS or detail.intention is Intention.REVERT:
                reverting = True
        if reverting:
            if scopes is not None:
                scopes.clear()
            return True, deque(scheduler.start_revert())
        for node in plan.atom_nodes:
            detail = details[node]
            assert detail is not None
            if detail.state is _A.RUNNING and node not in deciding:
                self._atom_state(detail, _A.PENDING)
        return False, deque(scheduler.start(done))

    def _final_state(
        self,
        reverting: bool,
        revert_failures: list[Failure],
        ready: deque[int],
        scheduler: Scheduler,
    ) -> FlowState:
        if revert_failures or (self._never_resolve and self._failures and not reverting):
            return _F.FAILURE
        scopes = self._scopes
        if scopes is not None and not reverting and scopes.given_up:
            # a controller gave its flow up: done once nothing else could run
            if self._suspend_requested and (ready or scopes.active):
                return _F.SUSPENDED
            return _F.REVERTED
        if self._suspend_requested and (ready or not self._all_settled(reverting)):
            return _F.SUSPENDED
        if reverting:
            return _F.REVERTED
        if not scheduler.all_done():
            raise InternalError(
                f"flow {self._flow.name!r} stopped with atoms neither done nor failed"
            )
        return _F.SUCCESS

    def _all_settled(self, reverting: bool) -> bool:
        plan = self._plan
        assert plan is not None
        details = self.storage.details
        wanted = (
            (_A.REVERTED, _A.PENDING, _A.IGNORE, _A.REVERT_FAILURE)
            if reverting
            else (_A.SUCCESS, _A.IGNORE)
        )
        return all(
            details[n].state in wanted  # type: ignore[union-attr]
            for n in plan.atom_nodes
        )

    def _mark_reverting(self, nodes: Iterable[int], details: Sequence[AtomDetail | None]) -> None:
        storage = self.storage
        for node in nodes:
            detail = details[node]
            assert detail is not None
            if detail.state in (_A.SUCCESS, _A.FAILURE):
                detail.intention = Intention.REVERT
                storage.changed(detail)

    def _progress(self, atom: Atom, detail: AtomDetail, progress: float) -> None:
        """The engine's own progress marks: 0.0 as work starts, 1.0 as it ends.

        Recorded only where a task reported progress itself (otherwise the record's
        state says it: see Storage.get_task_progress), told to the task's own listeners.
        """
        meta = detail._meta
        if meta is not None and "progress" in meta:
            meta["progress"] = progress
        notifier = atom._notifier
        if notifier is not None and len(notifier):
            notifier.notify("update_progress", {"progress": progress})

    def _start_execute(
        self,
        dispatcher: Dispatcher,
        storage: Storage,
        bindings: tuple[Binding, ...],
        node: int,
        atom: Atom,
        detail: AtomDetail,
    ) -> None:
        try:
            kwargs = storage.bind(node, atom.inject, bindings) if bindings else {}
        except TideflowError as exc:
            # the atom cannot be called: it fails like an atom whose execute raised,
            # and the run reverts what already ran
            self._fail_unstarted(node, detail, exc)
            return
        self._atom_state(detail, _A.RUNNING)
        if detail.intention is not Intention.EXECUTE:
            detail.intention = Intention.EXECUTE
        if not storage.shares_records:
            storage.changed(detail)
        if atom._notifier is not None or detail._meta is not None:
            self._progress(atom, detail, 0.0)
        atom._event_sink = self._task_event
        dispatcher.start((node, False, atom, kwargs))

    def _fail_unstarted(self, node: int, detail: AtomDetail, exc: Exception) -> None:
        """Record that ``node`` failed before its execute could be called.

        It moves RUNNING -> FAILURE like any failed atom, so listeners and the record
        read the same; its ``revert`` is not called later, since nothing ran to undo.
        """
        failure = Failure.from_exception(exc)
        self._atom_state(detail, _A.RUNNING)
        detail.intention = Intention.EXECUTE
        detail.failure = failure
        self._failures.append(failure)
        self._flow_failures[detail.name] = failure
        self._unstarted.add(node)
        self._atom_state(detail, _A.FAILURE, failure)
        self.storage.changed(detail)

    def _start_revert(
        self,
        dispatcher: Dispatcher,
        node: int,
        atom: Atom,
        detail: AtomDetail,
    ) -> None:
        assert self._plan is not None
        storage = self.storage
        if detail.revert_failure is not None:
            detail.revert_failure = None  # a failed revert being retried
        self._atom_state(detail, _A.REVERTING)
        if detail.intention is not _REVERT:
            detail.intention = _REVERT
        if not storage.shares_records:
            storage.changed(detail)
        if node in self._unstarted:
            # its execute was never called: nothing to undo, so revert() is not called
            dispatcher.finish((node, True, True, None))
            return
        bindings = self._plan.revert_args[node]
        try:
            kwargs = storage.bind(node, atom.inject, bindings) if bindings else {}
        except TideflowError as exc:
            # revert() cannot be called: the atom's revert failed
            failure = Failure.from_exception(exc)
            detail.revert_failure = failure
            self._revert_failures.append(failure)
            self._atom_state(detail, _A.REVERT_FAILURE, failure)
            storage.changed(detail)
            return
        kwargs[REVERT_RESULT] = detail.failure if detail.failure is not None else detail.results
        kwargs[REVERT_FLOW_FAILURES] = dict(self._flow_failures)
        if atom._notifier is not None or detail._meta is not None:
            self._progress(atom, detail, 0.0)
        atom._event_sink = self._task_event
        dispatcher.start((node, True, atom, kwargs))

    def __repr__(self) -> str:
        return f"<tideflow.Engine {self.kind} flow={self._flow.name!r}>"
