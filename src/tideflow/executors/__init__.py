"""Where atom code runs: inline on the engine thread, or on any ``submit()``-able executor.

The engine hands out :class:`Work` and collects :class:`Outcome`; workers only run
user code and return a value or a :class:`~tideflow.Failure`, never touching engine
state. Any object with ``submit(fn, *args)`` returning a ``concurrent.futures.Future``
(the standard library's pools, futurist's executors) can run atoms.
"""

from __future__ import annotations

from collections.abc import Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from tideflow._task import Atom
from tideflow.failure import Failure

if TYPE_CHECKING:
    import concurrent.futures as cf

__all__ = [
    "Dispatcher",
    "ExecutorDispatcher",
    "Outcome",
    "SerialDispatcher",
    "SubmitExecutor",
    "Work",
    "call_atom",
]


#: One atom call to make: ``(node, reverting, atom, kwargs)``. Plain tuples, not
#: named ones: one is made per atom call and named tuples cost several times more.
Work: TypeAlias = tuple[int, bool, Atom, dict[str, Any]]
#: What one atom call gave: ``(node, reverting, ok, value or Failure)``.
Outcome: TypeAlias = tuple[int, bool, bool, Any]


def _refuse_unfinished(atom: Atom, reverting: bool, value: Any) -> None:
    if hasattr(value, "close"):
        value.close()  # never awaited, on purpose: say so quietly, not with a warning
    method = "revert" if reverting else "execute"
    raise TypeError(
        f"atom {atom.name!r}: {method}() returned {type(value).__name__} object instead of "
        "a result; it is async, which this engine cannot await. Make it a plain function "
        "(run async code with asyncio.run() inside it)"
    )


def call_atom(node: int, reverting: bool, atom: Atom, kwargs: dict[str, Any]) -> Outcome:
    """Run one atom call with its pre/post hooks, turning an exception into a Failure."""
    try:
        if reverting:
            atom.pre_revert()
            try:
                value = atom.revert(**kwargs)
            finally:
                atom.post_revert()
        else:
            atom.pre_execute()
            try:
                value = atom.execute(**kwargs)
            finally:
                atom.post_execute()
        if value.__class__ is CoroutineType:
            # async after all (a plain function handing back a coroutine): refused, since
            # storing it would hide that the work never ran; async def methods are
            # refused before the run starts
            _refuse_unfinished(atom, reverting, value)
    except Exception as exc:
        return (node, reverting, False, Failure.from_exception(exc))
    return (node, reverting, True, value)


class Dispatcher(Protocol):
    """Runs work somewhere and hands back outcomes to the engine thread."""

    def start(self, work: Work) -> None:
        """Begin ``work`` (a serial dispatcher finishes it before returning)."""

    def finish(self, outcome: Outcome) -> None:
        """Hand back an outcome decided without running anything (nothing to undo)."""

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Outcomes finished since the last call; blocks for one if none is ready."""

    @property
    def in_flight(self) -> int:
        """How many started works have not been handed back yet."""

    def close(self) -> None:
        """Release what the dispatcher owns."""


class SerialDispatcher:
    """Runs each atom call on the engine thread, at once."""

    def __init__(self) -> None:
        #: Outcomes not handed back yet; the engine's serial fast path appends here too.
        self.done: list[Outcome] = []

    def start(self, work: Work) -> None:
        self.done.append(call_atom(*work))

    def finish(self, outcome: Outcome) -> None:
        self.done.append(outcome)

    def wait(self, timeout: float | None) -> list[Outcome]:
        done = self.done[:]
        self.done.clear()
        return done

    @property
    def in_flight(self) -> int:
        return len(self.done)

    def close(self) -> None:
        self.done.clear()


class SubmitExecutor(Protocol):
    """Anything with ``submit()`` returning a concurrent.futures Future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]: ...


class ExecutorDispatcher:
    """Runs atom calls on an executor (threads by default), several at once.

    Finished futures announce themselves on a queue (``add_done_callback``), so
    collecting outcomes costs O(1) per finished call however many are in flight
    (``concurrent.futures.wait`` would visit every pending future on each call).
    """

    def __init__(self, executor: SubmitExecutor | None = None, max_workers: int | None = None):
        # deferred: serial runs never need these
        import concurrent.futures as cf  # noqa: PLC0415
        import queue  # noqa: PLC0415

        self._owned = executor is None
        self._executor: Any = executor or cf.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="tideflow-worker"
        )
        self._finished: queue.SimpleQueue[cf.Future[Outcome]] = queue.SimpleQueue()
        self._empty = queue.Empty
        self._pending = 0

    def start(self, work: Work) -> None:
        try:
            future = self._executor.submit(call_atom, *work)
        except Exception as exc:
            # the executor refused the call (shut down, full): the atom fails with that
            # error like any failed call, and the engine reverts as usual
            self.finish((work[0], work[1], False, Failure.from_exception(exc)))
            return
        self._pending += 1
        future.add_done_callback(self._finished.put)

    def finish(self, outcome: Outcome) -> None:
        import concurrent.futures as cf  # noqa: PLC0415  # already loaded by __init__

        future: cf.Future[Outcome] = cf.Future()
        future.set_result(outcome)
        self._pending += 1
        self._finished.put(future)

    def wait(self, timeout: float | None) -> list[Outcome]:
        if not self._pending:
            return []
        finished = self._finished
        try:
            futures = [finished.get(timeout=timeout)]
        except self._empty:
            return []  # timed out: nothing finished yet
        while True:  # take whatever else is already done, without waiting
            try:
                futures.append(finished.get_nowait())
            except self._empty:
                break
        self._pending -= len(futures)
        return [future.result() for future in futures]

    @property
    def in_flight(self) -> int:
        return self._pending

    def close(self) -> None:
        if self._owned:
            self._executor.shutdown(wait=True)
