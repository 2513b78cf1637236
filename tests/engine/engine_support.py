"""What engine behaviour tests share: engine kinds, a recording task, a notification log.

A module of its own (not conftest.py) so tests import it by a name no other test
directory uses: every directory's conftest is a module named ``conftest``.
"""

from __future__ import annotations

import enum
import os
import pickle
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

import tideflow

#: The kinds every engine behaviour test runs on: the serial engine, and the parallel
#: engine on each executor (see conftest.py for how a kind is chosen and skipped).
ENGINE_KINDS = ("serial", "threads", "processes", "asyncio", "dask")
#: Kinds whose atom calls run in another process: atoms, their arguments and results are
#: pickled there and back, and nothing a task does to this process's objects is seen.
REMOTE_KINDS = frozenset({"processes", "dask"})
#: The kinds the Hypothesis property tests run on.
PROPERTY_KINDS = ("serial", "threads", "asyncio")


class _Unset(enum.Enum):
    """The "no value given" marker, the same after pickling (an object() would not be)."""

    UNSET = "unset"


_UNSET: Any = _Unset.UNSET


class EngineKind(str):
    """One kind under test, equal to the ``engine=`` name it loads: serial or parallel.

    Tests pass it as ``engine=engine_kind`` and compare it with ``"parallel"``;
    ``kind`` is the matrix name (``"processes"``, ...) and ``remote`` says whether atom
    calls leave this process.
    """

    kind: str
    #: what ``executor=`` the parallel engine of this kind gets (set by the fixture)
    executor: Any = None

    def __new__(cls, kind: str) -> EngineKind:
        if kind not in ENGINE_KINDS:
            raise ValueError(f"not an engine kind under test: {kind!r}")
        self = super().__new__(cls, "serial" if kind == "serial" else "parallel")
        self.kind = kind
        return self

    @property
    def remote(self) -> bool:
        """Whether atom calls run in another process."""
        return self.kind in REMOTE_KINDS

    def __repr__(self) -> str:
        return f"EngineKind({self.kind!r})"


class Unpicklable:
    """Stands in the journal for a value a worker process could not pickle back."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Unpicklable({self.text})"


def _dumps(entry: tuple[str, str, dict[str, Any]]) -> bytes:
    try:
        return pickle.dumps(entry, pickle.HIGHEST_PROTOCOL)
    except Exception:  # try harder, then keep a description
        pass
    try:
        import cloudpickle  # Dask's pickler, when installed

        return bytes(cloudpickle.dumps(entry, pickle.HIGHEST_PROTOCOL))
    except Exception:
        what, name, details = entry
        kept = {key: Unpicklable(repr(value)) for key, value in details.items()}
        return pickle.dumps((what, name, kept), pickle.HIGHEST_PROTOCOL)


_HEADER = struct.Struct("!I")


class Journal:
    """A thread-safe log of what tasks did: ``("execute" | "revert", name, details)``.

    ``Journal()`` keeps the log in this process's memory (tasks running on threads).
    ``Journal(path)`` keeps it in a file every process appends to, so tasks that run
    in worker processes (which get a pickled copy: only the path travels) write to the
    same log: each record is one ``O_APPEND`` write, so the file's order is the order of
    the calls, whichever process made them. A memory journal refuses to be pickled
    rather than let a copy record calls nobody reads.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.path = None if path is None else os.fspath(path)
        self._entries: list[tuple[str, str, dict[str, Any]]] = []
        if self.path is not None:
            with open(self.path, "wb"):
                pass  # a fresh, empty log

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            raise TypeError(
                "this Journal keeps its log in memory and cannot follow a task to another "
                "process; use the journal fixture (a file on remote kinds) or Journal(path)"
            )
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self.path = state["path"]
        self._entries = []

    def add(self, what: str, name: str, details: Mapping[str, Any]) -> None:
        """Record one call."""
        entry = (what, name, dict(details))
        if self.path is None:
            with self._lock:
                self._entries.append(entry)
            return
        data = _dumps(entry)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, _HEADER.pack(len(data)) + data)
        finally:
            os.close(fd)

    @property
    def entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every recorded call, in order."""
        if self.path is None:
            with self._lock:
                return list(self._entries)
        with open(self.path, "rb") as file:
            data = file.read()
        found = []
        at = 0
        while at + _HEADER.size <= len(data):
            (size,) = _HEADER.unpack_from(data, at)
            if at + _HEADER.size + size > len(data):
                break  # a record still being written
            found.append(pickle.loads(data[at + _HEADER.size : at + _HEADER.size + size]))
            at += _HEADER.size + size
        return found

    def calls(self) -> list[tuple[str, str]]:
        """``(what, name)`` for every call, in order."""
        return [(what, name) for what, name, _ in self.entries]

    def executed(self) -> list[str]:
        """Names of the atoms whose execute ran, in order."""
        return [name for what, name, _ in self.entries if what == "execute"]

    def reverted(self) -> list[str]:
        """Names of the atoms whose revert ran, in order."""
        return [name for what, name, _ in self.entries if what == "revert"]

    def args_of(self, name: str, what: str = "execute") -> dict[str, Any]:
        """The keyword arguments the (only) ``what`` call of ``name`` received."""
        found = [details for w, n, details in self.entries if w == what and n == name]
        assert len(found) == 1, f"{name} {what} was called {len(found)} times"
        return found[0]

    def position(self, what: str, name: str) -> int:
        """Where in the log the ``what`` call of ``name`` is."""
        return self.calls().index((what, name))


class _Portable:
    """A callable a Recorder carries, sent to worker processes by value where it must be.

    The standard pickle a process pool uses sends functions by name, so the lambdas tests
    give ``compute=``/``on_execute=`` could not travel; cloudpickle (installed with
    Dask) sends them by value: a lambda computing from its arguments behaves the same in a
    worker. One that touches this process's objects (a list, an Event) cannot: it either
    fails to pickle or changes a copy, and its test is ``local_only``.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        try:
            import cloudpickle  # only when sent to another process
        except ImportError:
            return (_Portable, (self.fn,))
        return (_portable_from, (cloudpickle.dumps(self.fn, pickle.HIGHEST_PROTOCOL),))


def _portable_from(data: bytes) -> _Portable:
    return _Portable(pickle.loads(data))


def _portable(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    return None if fn is None else _Portable(fn)


class Recorder(tideflow.Task):
    """A task that records its execute/revert calls in a Journal.

    ``value`` is what execute returns (default: its name, or ``compute(**kwargs)`` when
    given); ``fail`` is an exception execute raises; ``revert_fail`` one revert raises;
    ``revert_value`` what revert returns; ``on_execute``/``on_revert`` are called with the
    task at the start of execute/revert. Requirements are declared with ``requires=``
    (execute takes ``**kwargs``).

    It runs in worker processes too: the class pickles by name (this module is
    importable there), its journal by path, and its callables by value (``_Portable``).
    """

    def __init__(
        self,
        name: str,
        journal: Journal,
        *,
        value: Any = _UNSET,
        compute: Callable[..., Any] | None = None,
        fail: BaseException | None = None,
        revert_fail: BaseException | None = None,
        revert_value: Any = None,
        on_execute: Callable[[Recorder], None] | None = None,
        on_revert: Callable[[Recorder], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.journal = journal
        self.value = value
        self.compute = _portable(compute)
        self.fail = fail
        self.revert_fail = revert_fail
        self.revert_value = revert_value
        self.on_execute = _portable(on_execute)
        self.on_revert = _portable(on_revert)

    def execute(self, **kwargs: Any) -> Any:
        self.journal.add("execute", self.name, kwargs)
        if self.on_execute is not None:
            self.on_execute(self)
        if self.fail is not None:
            raise self.fail
        if self.compute is not None:
            return self.compute(**kwargs)
        return self.name if self.value is _UNSET else self.value

    def revert(self, result: Any, flow_failures: Mapping[str, Any], **kwargs: Any) -> Any:
        self.journal.add(
            "revert", self.name, {"result": result, "flow_failures": flow_failures, **kwargs}
        )
        if self.on_revert is not None:
            self.on_revert(self)
        if self.revert_fail is not None:
            raise self.revert_fail
        return self.revert_value


class Notifications:
    """Records every flow and atom notification of an engine, with its details."""

    def __init__(self, engine: tideflow.Engine) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        engine.notifier.register("*", self._on_flow)
        engine.atom_notifier.register("*", self._on_atom)

    def _on_flow(self, state: str, details: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append(("flow", state, dict(details)))

    def _on_atom(self, state: str, details: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append(("atom", state, dict(details)))

    def compact(self) -> list[tuple[str, str, str]]:
        """``(flow name or atom name, old state, new state)`` for each event, in order."""
        out = []
        for kind, state, details in self.events:
            who = "FLOW" if kind == "flow" else details["task_name"]
            out.append((who, str(details["old_state"]), str(state)))
        return out

    def for_atom(self, name: str) -> list[tuple[str, str]]:
        """``(old, new)`` transitions of one atom."""
        return [(old, new) for who, old, new in self.compact() if who == name]

    def flow_states(self) -> list[tuple[str, str]]:
        """``(old, new)`` transitions of the flow."""
        return [(old, new) for who, old, new in self.compact() if who == "FLOW"]

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self.events.clear()
