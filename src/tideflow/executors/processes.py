"""The processes executor: atom calls in worker processes, events relayed back as they happen.

What it guarantees:

* **Start method.** Pools it makes use ``'forkserver'`` (``'spawn'`` where the platform
  has no fork server), never ``'fork'``: the engine process has threads (the pool's
  manager, this module's event relay, the user's own) and a forked child would inherit
  their locks in whatever state they were in.
* **Nothing engine-side travels.** An atom is pickled without its event sink or
  notifier (``Atom.__getstate__``). :meth:`ProcessDispatcher.prepare` pickles every
  atom of the flow before the first call: one that cannot be pickled raises
  :class:`~tideflow.errors.InvalidArgumentError` naming the atom and the attribute, and
  nothing runs. An argument computed during the run (or given in ``store=``) that cannot
  be pickled fails the atom that needs it, before any of its code runs, with a Failure
  naming the argument; the run reverts as usual.
* **Results and failures come back.** A result that cannot be pickled fails the atom
  that returned it (its work ran, its result is lost): it is reverted with that Failure.
  A failure keeps the worker's traceback text; the exception itself comes back too when
  it survives pickling both ways (so ``run()`` raises the task's own exception type, as
  on threads), and otherwise the Failure still carries its type names and message.
* **Events come back while the call runs.** ``update_progress`` and custom
  ``TASK_EVENTS`` are sent from the worker over a Unix socket (in a private directory)
  to a thread of the engine process, which tells the engine-side atom's own notifier
  listeners and then the engine. A call's outcome reaches the engine only after every
  event it sent did.
* **A dead worker is a Failure, never a hang.** A worker killed by a signal, a
  segfault or ``os._exit`` breaks its ``ProcessPoolExecutor``, which then stops all its
  workers: every call in flight on that pool fails with ``BrokenProcessPool`` naming
  its atom (the Failure says whether it was the only call in flight, or which others
  were lost with it). A fresh pool of the same size runs the rest of the run.
* **Pools.** One the dispatcher makes is shut down at ``close()`` without waiting.
  A ``ProcessPoolExecutor`` the user passed is used as given and never shut down; if
  it breaks, a pool of the dispatcher's own replaces it for the rest of the run (a
  broken pool cannot run anything; the user's object is left as it is).

Costs: a pool this dispatcher makes lives for one run, so each run pays for starting
its workers: a fork from the fork server, which imports tideflow once when it starts
(~20 ms a run once it is up; ~0.2 s where workers are spawned and import everything
themselves), plus importing the tasks' modules. Pass ``executor=ProcessPoolExecutor(...)``
to keep warm workers across runs. Each call pickles its atom and arguments on the engine
thread. On a warm pool a call costs the engine process ~90-160 µs of CPU (all its
threads), of which ``concurrent.futures``' own round trip is ~80-130 µs: worth it
for calls of a few milliseconds or more of CPU.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import os
import pickle
import queue
import selectors
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Final

from tideflow._log import logger
from tideflow._notifier import RestrictedNotifier
from tideflow._task import Atom
from tideflow.errors import InvalidArgumentError
from tideflow.executors import EventSink, Outcome, Work, call_atom
from tideflow.executors._outcomes import load_outcome
from tideflow.failure import Failure

__all__ = ["ProcessDispatcher", "make_dispatcher"]

_LOGGER: Final = "tideflow.executors.processes"
#: How long an outcome waits for the events its call sent (they are already in the
#: socket when the call returns, so this is only a guard against a stuck listener).
_EVENT_GRACE: Final = 10.0
_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL


def _context() -> Any:
    """The multiprocessing context of the pools this module makes (never 'fork')."""
    import multiprocessing  # noqa: PLC0415  # only when a pool is made

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    _preload(context)
    return context


def _preload(context: Any) -> None:
    """Have the fork server import tideflow once, so the workers it forks start warm.

    A run's pool then starts in ~20 ms rather than ~0.2 s (each worker would import
    tideflow itself). Only before the fork server starts, and keeping the modules it
    was already told to preload; where Python's internals differ, nothing is done.
    """
    from multiprocessing import forkserver  # noqa: PLC0415  # only when a pool is made

    server = getattr(forkserver, "_forkserver", None)
    modules = getattr(server, "_preload_modules", None)
    started = getattr(server, "_forkserver_pid", True) is not None
    if not started and isinstance(modules, list) and __name__ not in modules:
        context.set_forkserver_preload([*modules, __name__])


class _Call:
    """What one call in flight carries, engine-side: enough to name it if its worker dies."""

    __slots__ = ("atom", "delivered", "node", "pool", "reverting")

    def __init__(self, node: int, reverting: bool, atom: Atom, pool: cf.ProcessPoolExecutor):
        self.node = node
        self.reverting = reverting
        self.atom = atom
        self.pool = pool
        #: events of this call handed to the engine so far (written by the relay thread)
        self.delivered = 0


class ProcessDispatcher:
    """Runs atom calls on a pool of worker processes, several at once."""

    def __init__(
        self,
        executor: cf.ProcessPoolExecutor | None = None,
        *,
        max_workers: int | None = None,
        sink: EventSink,
    ) -> None:
        if executor is not None and not isinstance(executor, cf.ProcessPoolExecutor):
            raise TypeError(
                "the processes executor runs on a concurrent.futures.ProcessPoolExecutor "
                f"(or one it makes itself), got {type(executor).__name__}"
            )
        self._max_workers = max_workers
        self._owned = executor is None
        self._pool: cf.ProcessPoolExecutor = executor or self._new_pool()
        self._sink = sink
        #: (call id, its future) when a call finishes; (None, outcome) from finish()
        self._finished: queue.SimpleQueue[tuple[int | None, Any]] = queue.SimpleQueue()
        self._pending = 0
        self._calls: dict[int, _Call] = {}
        #: pool that broke -> the atoms of the calls it lost
        self._lost: dict[cf.ProcessPoolExecutor, list[str]] = {}
        self._ids = itertools.count()
        self._delivered = threading.Condition()
        self._relay = _EventServer(self._deliver)

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self._max_workers, mp_context=_context())

    # -- before the run ------------------------------------------------------------------

    def prepare(
        self, atoms: Iterable[Atom | None], values: Mapping[str, Any] | None = None
    ) -> None:
        """Refuse, before anything runs, an atom (or a given value) that cannot be pickled.

        Raises :class:`~tideflow.errors.InvalidArgumentError` naming the atom and the
        attribute (or the value's name) that cannot be pickled.
        """
        for atom in atoms:
            if atom is None:
                continue  # flow start/end nodes
            try:
                pickle.dumps(atom, _PROTOCOL)
            except Exception as exc:
                raise InvalidArgumentError(
                    f"atom {atom.name!r} cannot be sent to a worker process: "
                    f"{_culprit(atom)} cannot be pickled ({exc}). Keep such things out of "
                    "the atom (make them in execute()), or use executor='threads'"
                ) from exc
        for name, value in (values or {}).items():
            try:
                pickle.dumps(value, _PROTOCOL)
            except Exception as exc:
                raise InvalidArgumentError(
                    f"the value {name!r} ({type(value).__name__}) cannot be sent to a "
                    f"worker process: it cannot be pickled ({exc})"
                ) from exc

    # -- the dispatcher seam ---------------------------------------------------------------

    def start(self, work: Work) -> None:
        node, reverting, atom, kwargs = work
        try:
            payload = pickle.dumps((atom, kwargs), _PROTOCOL)
        except Exception as exc:
            # nothing of the atom ran: it fails like one whose call raised
            self.finish((node, reverting, False, _unsendable(atom, kwargs, exc)))
            return
        call = next(self._ids)
        # known before it is sent: its first event may arrive before submit() returns
        record = self._calls[call] = _Call(node, reverting, atom, self._pool)
        try:
            try:
                future = self._submit(call, record, payload)
            except BrokenProcessPool:
                # broken before we heard of it (a worker died just now): a new pool
                self._replace(record.pool)
                record.pool = self._pool
                future = self._submit(call, record, payload)
        except Exception as exc:
            # the pool refused the call (shut down): the atom fails, the run reverts
            del self._calls[call]
            self.finish((node, reverting, False, Failure.from_exception(exc)))
            return
        self._pending += 1
        future.add_done_callback(partial(_put_call, self._finished, call))

    def _submit(self, call: int, record: _Call, payload: bytes) -> cf.Future[tuple[bytes, int]]:
        pool = record.pool
        workers = getattr(pool, "_processes", None) or {}
        count = len(workers)
        future = pool.submit(
            _run_call,
            self._relay.address,
            call,
            record.node,
            record.reverting,
            record.atom.name,
            payload,
        )
        if len(workers) != count:
            # submit() wakes the pool's manager thread *before* it starts a new worker
            # (CPython 3.11), so the manager may go back to waiting without watching
            # that worker: its death would go unnoticed, and the run would hang. Wake
            # the manager again now that the worker exists.
            wakeup = getattr(pool, "_executor_manager_thread_wakeup", None)
            if wakeup is not None:
                wakeup.wakeup()
        return future

    def finish(self, outcome: Outcome) -> None:
        self._pending += 1
        self._finished.put((None, outcome))

    def wait(self, timeout: float | None) -> list[Outcome]:
        if not self._pending:
            return []
        finished = self._finished
        try:
            items = [finished.get(timeout=timeout)]
        except queue.Empty:
            return []  # timed out: nothing finished yet
        while True:  # take whatever else is already done, without waiting
            try:
                items.append(finished.get_nowait())
            except queue.Empty:
                break
        self._pending -= len(items)
        return [item if call is None else self._outcome(call, item) for call, item in items]

    @property
    def in_flight(self) -> int:
        return self._pending

    def close(self) -> None:
        self._relay.close()
        if self._owned:
            # the engine waited for every call: workers exit once told, not waited for
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- outcomes ------------------------------------------------------------------------

    def _outcome(self, call: int, future: cf.Future[tuple[bytes, int]]) -> Outcome:
        record = self._calls[call]
        node, reverting, atom = record.node, record.reverting, record.atom
        try:
            data, sent = future.result()
        except BrokenProcessPool as exc:
            lost = self._lost.get(record.pool)
            if lost is None:  # the first call heard of from this pool: name them all
                lost = [r.atom.name for r in self._calls.values() if r.pool is record.pool]
                self._lost[record.pool] = lost
            del self._calls[call]
            self._replace(record.pool)
            return (node, reverting, False, _died(atom, lost, exc))
        except Exception as exc:  # cancelled, or the pool's own error
            del self._calls[call]
            return (node, reverting, False, Failure.from_exception(exc))
        if sent > record.delivered:
            # events it sent are in the socket: let the relay hand them over first
            with self._delivered:
                if not self._delivered.wait_for(
                    lambda: record.delivered >= sent, timeout=_EVENT_GRACE
                ):
                    logger(_LOGGER).warning(
                        "atom %r: %d of its %d events did not arrive in time; going on",
                        atom.name,
                        sent - record.delivered,
                        sent,
                    )
        del self._calls[call]
        return load_outcome(data, node, reverting, atom, "its worker process")

    def _replace(self, broken: cf.ProcessPoolExecutor) -> None:
        """Put a fresh pool in place of ``broken`` (once, however many calls it lost)."""
        if self._pool is not broken:
            return
        if self._owned:
            broken.shutdown(wait=False, cancel_futures=True)
        else:
            # the user's pool is broken for good; ours of the same size runs the rest
            self._max_workers = self._max_workers or getattr(broken, "_max_workers", None)
        self._pool = self._new_pool()
        self._owned = True

    def _deliver(self, frame: bytes) -> None:
        """Hand one relayed event to the atom's listeners and the engine (relay thread)."""
        call, event, details = pickle.loads(frame)
        record = self._calls.get(call)
        if record is None:
            return  # its call is over (lost with its worker): nobody to tell
        atom = record.atom
        try:
            notifier = atom._notifier
            if notifier is not None:
                # the listeners alone: the engine hears it just below, once
                RestrictedNotifier.notify(notifier, event, details)
            self._sink(atom, event, details)
        finally:
            with self._delivered:
                record.delivered += 1
                self._delivered.notify_all()


def _put_call(finished: queue.SimpleQueue[tuple[int | None, Any]], call: int, future: Any) -> None:
    finished.put((call, future))


def make_dispatcher(
    executor: cf.ProcessPoolExecutor | None, *, max_workers: int | None, sink: EventSink
) -> ProcessDispatcher:
    """The processes executor's factory (``executor`` is the user's pool, or None)."""
    return ProcessDispatcher(executor, max_workers=max_workers, sink=sink)


# -- what the engine says about a call that went wrong -----------------------------------


def _culprit(atom: Atom) -> str:
    """Name what in ``atom`` cannot be pickled: an attribute, an item of one, or the class."""
    state = atom.__getstate__()
    if isinstance(state, tuple):
        state = {**(state[0] or {}), **state[1]}
    assert isinstance(state, dict)
    for key, value in state.items():
        try:
            pickle.dumps(value, _PROTOCOL)
        except Exception:
            if isinstance(value, Mapping):
                for item, inner in value.items():
                    try:
                        pickle.dumps(inner, _PROTOCOL)
                    except Exception:
                        return f"{key}[{item!r}] ({type(inner).__name__})"
            return f"its attribute {key!r} ({type(value).__name__})"
    cls = type(atom)
    return (
        f"its class {cls.__module__}.{cls.__qualname__} (a class must be importable by name: "
        "defined at the top level of a module, not inside a function)"
    )


def _unsendable(atom: Atom, kwargs: Mapping[str, Any], exc: Exception) -> Failure:
    """The failure of a call whose atom or arguments cannot be pickled (it never started)."""
    for name, value in kwargs.items():
        try:
            pickle.dumps(value, _PROTOCOL)
        except Exception:
            what = f"argument {name!r} ({type(value).__name__}) of atom {atom.name!r}"
            break
    else:
        what = f"atom {atom.name!r}: {_culprit(atom)}"
    error = TypeError(f"{what} cannot be sent to a worker process: it cannot be pickled ({exc})")
    error.__cause__ = exc
    return Failure.from_exception(error)


def _died(atom: Atom, lost: list[str], exc: BrokenProcessPool) -> Failure:
    if len(lost) <= 1:
        where = "the worker process running it died (killed, crashed or exited)"
    else:
        where = (
            "a worker process of its pool died (its own or another's: a process pool stops "
            f"every worker when one dies); calls lost with it: {sorted(lost)}"
        )
    error = BrokenProcessPool(f"atom {atom.name!r}: {where}")
    error.__cause__ = exc
    return Failure.from_exception(error)


# -- the engine side of the event channel -------------------------------------------------


class _EventServer:
    """A Unix socket in a private directory, read by one thread that hands frames over."""

    def __init__(self, deliver: Any) -> None:
        self._dir = tempfile.mkdtemp(prefix="tideflow-events-")  # 0700: this user only
        self.address = os.path.join(self._dir, "events")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(64)
        self._wake_read, self._wake_write = socket.socketpair()
        self._deliver = deliver
        threading.Thread(target=self._serve, name="tideflow-process-events", daemon=True).start()

    def close(self) -> None:
        # the path goes now, not when the thread gets to it: the process may be exiting
        shutil.rmtree(self._dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # closed already
            self._wake_write.send(b"x")

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._server, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        buffers: dict[socket.socket, bytearray] = {}
        try:
            while True:
                for key, _ in selector.select():
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    if sock is self._wake_read:
                        return
                    if sock is self._server:
                        conn, _ = sock.accept()
                        buffers[conn] = bytearray()
                        selector.register(conn, selectors.EVENT_READ)
                        continue
                    try:
                        chunk = sock.recv(1 << 16)
                    except OSError:
                        chunk = b""
                    if not chunk:  # its worker closed it (or died)
                        selector.unregister(sock)
                        sock.close()
                        del buffers[sock]
                        continue
                    buffer = buffers[sock]
                    buffer += chunk
                    self._frames(buffer)
        finally:
            selector.close()
            for conn in buffers:
                conn.close()
            for own in (self._server, self._wake_read, self._wake_write):
                own.close()

    def _frames(self, buffer: bytearray) -> None:
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                return
            frame = bytes(buffer[4 : 4 + size])
            del buffer[: 4 + size]
            try:
                self._deliver(frame)
            except Exception:
                logger(_LOGGER).exception("a task event relayed from a worker was lost")


# -- the worker side: kept small on purpose -----------------------------------------------

#: This worker's connection to the engine that sent its latest call: (address, socket).
_channel: list[Any] = [None, None]


class _Relay:
    """A worker's event sink for one call: sends each event to the engine's socket."""

    __slots__ = ("address", "call", "sent")

    def __init__(self, address: str, call: int) -> None:
        self.address = address
        self.call = call
        self.sent = 0

    def __call__(self, atom: Atom, event: str, details: Mapping[str, Any]) -> None:
        try:
            frame = pickle.dumps((self.call, event, dict(details)), _PROTOCOL)
        except Exception:
            # details that cannot be pickled travel as their repr, not at all
            frame = pickle.dumps(
                (self.call, event, {k: repr(v) for k, v in details.items()}), _PROTOCOL
            )
        address, sock = _channel
        try:
            if address != self.address:
                if sock is not None:
                    sock.close()  # the engine of an earlier run: it is gone
                _channel[:] = [self.address, None]
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.address)
                _channel[1] = sock
            if sock is None:
                return  # could not connect to this engine: events go nowhere
            sock.sendall(len(frame).to_bytes(4, "big") + frame)
        except OSError:
            return  # the engine is gone (its run was stopped): nobody to tell
        self.sent += 1


def _run_call(
    address: str, call: int, node: int, reverting: bool, name: str, payload: bytes
) -> tuple[bytes, int]:
    """Run one atom call in a worker: ``(pickled (ok, value, exception), events sent)``."""
    try:
        atom, kwargs = pickle.loads(payload)
    except Exception as exc:
        error = TypeError(f"atom {name!r} cannot be unpickled in its worker process ({exc})")
        return pickle.dumps((False, Failure.from_exception(error), None), _PROTOCOL), 0
    relay = _Relay(address, call)
    atom._event_sink = relay
    _, _, ok, value = call_atom(node, reverting, atom, kwargs)
    if ok:
        try:
            return pickle.dumps((True, value, None), _PROTOCOL), relay.sent
        except Exception as exc:
            error = TypeError(
                f"atom {name!r} returned {type(value).__name__}, which cannot be pickled "
                f"to send back from its worker process ({exc}); its result is lost"
            )
            value = Failure.from_exception(error)
    exc_data = None
    if value.exception is not None:
        try:
            exc_data = pickle.dumps(value.exception, _PROTOCOL)
        except Exception:
            exc_data = None  # its type names and message travel in the Failure
    return pickle.dumps((False, value, exc_data), _PROTOCOL), relay.sent
