"""The Dask executor: atom calls on a Dask cluster, through the user's ``distributed.Client``.

``load(flow, engine='parallel', executor=client)`` sends each atom call to the cluster
with ``client.submit(..., pure=False)``. Dask is imported only here, and this module
only when a ``distributed.Client`` is passed (install ``tideflow[dask]``).

What it guarantees:

* **Nothing engine-side travels.** An atom is pickled without its event sink or
  notifier (``Atom.__getstate__``); Dask pickles it (falling back to cloudpickle, so a
  task made from a local function or lambda works). :meth:`DaskDispatcher.prepare`
  refuses, before anything runs, an atom or given value that cannot be pickled, naming
  it; an argument made during the run that cannot be sent fails its atom before any of
  its code runs.
* **Results and failures come back.** A failure keeps the worker's traceback text (and
  the exception itself where it unpickles here). A result that cannot be pickled fails
  the atom that returned it, saying so.
* **Events come back while the call runs, and before its outcome.** A task's
  ``update_progress`` and custom ``TASK_EVENTS`` go from the worker as Dask events
  (``Worker.log_event``) on one topic per client, ``tideflow-<client id>``, which
  this process subscribes to while a run uses it. The engine-side atom's own notifier
  listeners hear them, then the engine. A small outcome (pickled, up to
  :data:`INLINE_LIMIT` bytes) travels on the same topic right after the call's events,
  so it arrives after them, and nothing of it stays in the workers' memory; a larger
  one is the Dask task's result, fetched when the task finishes. An outcome that has
  not come 30 s after its task ended fails the atom: the engine never waits forever.
* **A lost worker is a Failure, never a silent second run.** Each call announces the
  worker it starts on. If the worker dies (killed, or closed) while running it, Dask
  either gives up on the task (``KilledWorker``, once the scheduler's
  ``distributed.scheduler.allowed-failures`` is used up) or starts it again on another
  worker. Both become a Failure of the atom naming the lost worker, so the engine
  reverts it (and a retry controller may retry it as a new call). A second start is
  seen only once it has begun, so its code does run, but its outcome is ignored and its
  Dask task cancelled. Set ``allowed-failures`` to 0 on the scheduler to stop Dask from
  starting it again at all when a worker is killed; a worker *closed* on purpose has
  its tasks started again by Dask whatever that setting, so keep such closes for idle
  workers. A worker that dies within the moment between starting a call and its
  announcement reaching the scheduler (a few milliseconds) is not known to have run
  it, and Dask's second start then goes unseen.
* **max_workers** caps how many calls are on the cluster at once (the rest wait in this
  process, in the order they were started); None, the default, sends every ready call
  at once and lets Dask's scheduler place them.
* **The client is the user's.** Closing the engine cancels its own unfinished Dask
  tasks and leaves the client and its cluster running.

Costs: each call pickles its atom and arguments on the engine thread (as Dask does for
any submitted function), and sends two small Dask events (its start and its outcome)
through the scheduler besides the task's own messages.
"""

from __future__ import annotations

import itertools
import pickle
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

from tideflow._notifier import RestrictedNotifier
from tideflow._task import Atom
from tideflow.errors import InvalidArgumentError
from tideflow.executors import EventSink, Outcome, Work, call_atom
from tideflow.executors._outcomes import load_outcome
from tideflow.failure import Failure

__all__ = ["INLINE_LIMIT", "DaskDispatcher", "WorkerLostError", "make_dispatcher"]

#: Largest pickled outcome sent back as a Dask event; larger ones stay the task's result.
INLINE_LIMIT: Final = 16 * 1024
_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
#: Seconds a finished call's outcome may lag behind its Dask task's end before it is lost.
_OVERDUE: Final = 30.0


class WorkerLostError(RuntimeError):
    """The Dask worker running an atom call was lost (killed, or closed) before it ended."""


# -- on the worker ---------------------------------------------------------------------


def _dump_details(details: Mapping[str, Any]) -> bytes:
    """An event's details as bytes (Dask events must be msgpack-able; details may not be)."""
    try:
        return pickle.dumps(dict(details), _PROTOCOL)
    except Exception:
        # kept readable rather than lost: a value that cannot travel arrives as its repr
        return pickle.dumps({key: _travels(value) for key, value in details.items()}, _PROTOCOL)


def _travels(value: Any) -> Any:
    try:
        pickle.dumps(value, _PROTOCOL)
    except Exception:
        return repr(value)
    return value


def run_on_worker(
    topic: str, route: str, call: int, node: int, reverting: bool, atom: Atom, kwargs: Any
) -> bytes | None:
    """Run one atom call on a Dask worker: what ``client.submit`` is given.

    Announces the start, relays the atom's events, then sends the outcome back as an
    event (returning None) or, when it is large, returns it pickled.
    """
    from distributed import get_worker  # noqa: PLC0415  # only ever on a worker

    worker = get_worker()
    log = worker.log_event
    log(topic, [route, "start", call, worker.address])

    def relay(_atom: Atom, event: str, details: Mapping[str, Any]) -> None:
        log(topic, [route, "event", call, event, _dump_details(details)])

    atom._event_sink = relay
    try:
        _, _, ok, value = call_atom(node, reverting, atom, kwargs)
    finally:
        atom._event_sink = None
    data = _pack(atom, reverting, ok, value)
    if len(data) > INLINE_LIMIT:
        return data
    log(topic, [route, "out", call, data])
    return None


def _pack(atom: Atom, reverting: bool, ok: bool, value: Any) -> bytes:
    """A call's outcome as bytes: ``(ok, value or Failure, the exception pickled or None)``.

    A failure's exception travels apart from it, so that one that cannot be pickled (or
    unpickled in the engine process) still leaves its Failure's names and message.
    """
    if ok:
        try:
            return _dumps((True, value, None))
        except Exception as exc:
            error = TypeError(
                f"atom {atom.name!r}: what its {'revert' if reverting else 'execute'}() "
                f"returned ({type(value).__name__}) cannot be sent back from the Dask worker: "
                f"it cannot be pickled ({exc}); its result is lost"
            )
            error.__cause__ = exc
            value = Failure.from_exception(error)
    exc_data = None
    if value.exception is not None:
        try:
            exc_data = _dumps(value.exception)
        except Exception:
            exc_data = None  # its type names and message travel in the Failure
    return _dumps((False, value, exc_data))


def _dumps(value: Any) -> bytes:
    """Pickle, or cloudpickle (as Dask does) what refers to classes or functions by value."""
    try:
        return pickle.dumps(value, _PROTOCOL)
    except Exception:
        import cloudpickle  # type: ignore[import-untyped]  # noqa: PLC0415  # distributed's dependency

        data: bytes = cloudpickle.dumps(value, _PROTOCOL)
        return data


# -- in the engine process ---------------------------------------------------------------


class _Relay:
    """One topic subscription per client, routing worker messages to their dispatcher."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.topic = f"tideflow-{client.id}"
        self.routes: dict[str, queue.SimpleQueue[list[Any]]] = {}
        client.subscribe_topic(self.topic, self._handle)

    def _handle(self, event: tuple[float, list[Any]]) -> None:
        # on the client's event loop thread: hand over and return at once
        message = event[1]
        routed = self.routes.get(message[0])
        if routed is not None:
            routed.put(message)


_RELAYS: dict[str, _Relay] = {}
_RELAYS_LOCK = threading.Lock()


def _join(client: Any, route: str, inbox: queue.SimpleQueue[list[Any]]) -> str:
    with _RELAYS_LOCK:
        relay = _RELAYS.get(client.id)
        if relay is None or relay.client is not client:
            relay = _RELAYS[client.id] = _Relay(client)
        relay.routes[route] = inbox
        return relay.topic


def _leave(client: Any, route: str) -> None:
    with _RELAYS_LOCK:
        relay = _RELAYS.get(client.id)
        if relay is None:
            return
        relay.routes.pop(route, None)
        if not relay.routes:
            del _RELAYS[client.id]
            if client.status == "running":
                client.unsubscribe_topic(relay.topic)


class _Call:
    """One atom call on the cluster, as the engine thread tracks it."""

    __slots__ = ("atom", "future", "node", "reverting", "worker")

    def __init__(self, node: int, reverting: bool, atom: Atom) -> None:
        self.node = node
        self.reverting = reverting
        self.atom = atom
        self.future: Any = None
        #: the worker it started on (from its announcement), None before that
        self.worker: str | None = None


class DaskDispatcher:
    """Runs atom calls on a Dask cluster through a ``distributed.Client`` (see the module)."""

    def __init__(self, executor: Any, *, max_workers: int | None, sink: EventSink) -> None:
        if executor is None:
            raise TypeError(
                "the Dask executor runs atoms through a distributed.Client: pass "
                "executor=distributed.Client(...) (a cluster's scheduler address or a "
                "LocalCluster), not the name"
            )
        if getattr(executor, "asynchronous", False):
            raise TypeError(
                "executor= got an asynchronous distributed.Client; the engine waits for "
                "the cluster from its own thread: pass a Client made without "
                "asynchronous=True"
            )
        self._client = executor
        self._sink = sink
        self._limit = max_workers
        self._route = uuid.uuid4().hex
        self._inbox: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self._topic = _join(executor, self._route, self._inbox)
        self._ids = itertools.count()
        #: call id -> the call, while it is on the cluster
        self._calls: dict[int, _Call] = {}
        #: calls started but held back by max_workers
        self._backlog: deque[Work] = deque()
        #: outcomes known and not handed back yet
        self._ready: list[Outcome] = []
        self._closed = False

    # -- before the run ------------------------------------------------------------------

    def prepare(
        self, atoms: Iterable[Atom | None], values: Mapping[str, Any] | None = None
    ) -> None:
        """Refuse, before anything runs, an atom (or a given value) Dask cannot send.

        Raises :class:`~tideflow.errors.InvalidArgumentError` naming it.
        """
        for atom in atoms:
            if atom is None:
                continue  # flow start/end nodes
            try:
                _dumps(atom)
            except Exception as exc:
                raise InvalidArgumentError(
                    f"atom {atom.name!r} cannot be sent to the Dask cluster: it cannot be "
                    f"pickled ({exc}). Keep such things out of the atom (make them in "
                    "execute()), or use executor='threads'"
                ) from exc
        for name, value in (values or {}).items():
            try:
                _dumps(value)
            except Exception as exc:
                raise InvalidArgumentError(
                    f"the value {name!r} ({type(value).__name__}) cannot be sent to the "
                    f"Dask cluster: it cannot be pickled ({exc})"
                ) from exc

    # -- the dispatcher seam ---------------------------------------------------------------

    def start(self, work: Work) -> None:
        if self._limit is not None and len(self._calls) >= self._limit:
            self._backlog.append(work)
            return
        self._submit(work)

    def _submit(self, work: Work) -> None:
        node, reverting, atom, kwargs = work
        call = next(self._ids)
        record = self._calls[call] = _Call(node, reverting, atom)
        try:
            future = self._client.submit(
                run_on_worker,
                self._topic,
                self._route,
                call,
                node,
                reverting,
                atom,
                kwargs,
                key=f"{atom.name}-{self._route[:8]}-{call}",
                pure=False,
                retries=0,
            )
        except Exception as exc:
            # nothing of it ran (it could not be pickled, the client is closed): it
            # fails like a call that raised, and the engine reverts as usual
            del self._calls[call]
            error = TypeError(f"atom {atom.name!r} could not be sent to the Dask cluster: {exc}")
            error.__cause__ = exc
            self._ready.append((node, reverting, False, Failure.from_exception(error)))
            return
        record.future = future
        inbox = self._inbox
        route = self._route
        future.add_done_callback(lambda f: inbox.put([route, "done", call, f]))

    def finish(self, outcome: Outcome) -> None:
        self._ready.append(outcome)

    def wait(self, timeout: float | None) -> list[Outcome]:
        ready = self._ready
        if not (ready or self._calls):
            return []
        inbox = self._inbox
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if ready:
                    message = inbox.get_nowait()  # take what is already here, then return
                elif deadline is None:
                    message = inbox.get()
                else:
                    message = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self._handle(message)
        self._ready = []
        while self._backlog and (self._limit is None or len(self._calls) < self._limit):
            self._submit(self._backlog.popleft())
        return ready

    @property
    def in_flight(self) -> int:
        return len(self._calls) + len(self._backlog) + len(self._ready)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._backlog.clear()
        unfinished = [call.future for call in self._calls.values() if call.future is not None]
        self._calls.clear()
        client = self._client
        if unfinished and client.status == "running":
            client.cancel(unfinished)
        _leave(client, self._route)

    # -- messages from the cluster -------------------------------------------------------

    def _handle(self, message: list[Any]) -> None:
        """One message from a worker (or a finished Dask task), on the engine thread."""
        kind, call = message[1], message[2]
        record = self._calls.get(call)
        if record is None:
            return  # its call is over (it ended, or its worker was lost): nobody to tell
        if kind == "event":
            self._deliver(record.atom, message[3], pickle.loads(message[4]))
        elif kind == "out":
            self._end(call, _load_outcome(message[3], record))
        elif kind == "start":
            if record.worker is None:
                record.worker = message[3]
            else:
                # Dask lost the worker running it and started it again elsewhere
                self._end(call, _lost(record, f"Dask started it again on {message[3]}"))
                record.future.cancel()
        elif kind == "done":  # the Dask task ended
            self._task_done(call, record, message[3])
        else:  # "overdue": its task ended long ago and its outcome never came
            error = RuntimeError(
                f"atom {record.atom.name!r}: its Dask task finished but the outcome it sent "
                f"did not arrive within {_OVERDUE} s (lost on the way); it failed"
            )
            self._end(call, (record.node, record.reverting, False, Failure.from_exception(error)))

    def _task_done(self, call: int, record: _Call, future: Any) -> None:
        status = future.status
        if status == "finished":
            data = future.result()
            if data is not None:  # a large outcome, kept as the task's result
                self._end(call, _load_outcome(data, record))
                return
            # Its outcome, sent as an event, comes just before the task's end as a rule,
            # and here just after: never wait for it forever.
            inbox, route = self._inbox, self._route
            timer = threading.Timer(_OVERDUE, inbox.put, ([route, "overdue", call],))
            timer.daemon = True
            timer.start()
            return
        if status == "error":
            exc = future.exception()
            if type(exc).__name__ == "KilledWorker":
                self._end(call, _lost(record, f"Dask gave up on it ({type(exc).__name__}: {exc})"))
                return
            error = RuntimeError(
                f"atom {record.atom.name!r}: its Dask task failed outside the atom's code "
                f"({type(exc).__name__}: {exc})"
            )
            error.__cause__ = exc
            self._end(call, (record.node, record.reverting, False, Failure.from_exception(error)))
            return
        # cancelled, by someone else than this dispatcher (close() forgets its calls first)
        error = RuntimeError(f"atom {record.atom.name!r}: its Dask task was cancelled ({status})")
        self._end(call, (record.node, record.reverting, False, Failure.from_exception(error)))

    def _end(self, call: int, outcome: Outcome) -> None:
        del self._calls[call]  # and with it the future: Dask forgets the task
        self._ready.append(outcome)

    def _deliver(self, atom: Atom, event: str, details: Mapping[str, Any]) -> None:
        notifier = atom._notifier
        if notifier is not None:
            # its own listeners alone: the engine hears it just below, once
            RestrictedNotifier.notify(notifier, event, details)
        self._sink(atom, event, details)


def _lost(record: _Call, what: str) -> Outcome:
    where = f"the Dask worker running it ({record.worker})" if record.worker else "its Dask worker"
    error = WorkerLostError(
        f"atom {record.atom.name!r}: {where} was lost before the call ended; {what}. "
        "Its outcome is unknown, so it failed (and is reverted)"
    )
    return (record.node, record.reverting, False, Failure.from_exception(error))


def make_dispatcher(executor: Any, *, max_workers: int | None, sink: EventSink) -> DaskDispatcher:
    """The registry's factory for a ``distributed.Client``: a :class:`DaskDispatcher`."""
    return DaskDispatcher(executor, max_workers=max_workers, sink=sink)


def _load_outcome(data: bytes, record: _Call) -> Outcome:
    """The outcome a Dask worker sent for ``record``'s call."""
    return load_outcome(data, record.node, record.reverting, record.atom, "its Dask worker")
