"""The threads executor: atom calls on a thread pool, or on any object with ``submit()``.

Guarantees: up to ``max_workers`` calls run at once on a pool the dispatcher makes
(``tideflow-worker-N`` threads), or on the executor the user passed (used as given,
never shut down). Finished calls announce themselves on a queue
(``add_done_callback``), so collecting outcomes costs O(1) per finished call however
many are in flight. ``close()`` never makes the run wait: its own pool is shut down
without joining (idle threads exit by themselves). An ``async def`` atom holds its
worker while its coroutine runs on an event loop the dispatcher owns (one loop thread
per run, started on the first coroutine), or on the caller's loop under
``run_async()``; ``executor='asyncio'`` runs coroutines without holding a thread. A
user's executor that is not a ``ThreadPoolExecutor`` may send calls elsewhere, so its
calls carry nothing of the dispatcher: an async atom there runs on a loop of its own.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from tideflow.executors import EventSink, Outcome, SubmitExecutor, Work, call_atom, caller_loop
from tideflow.failure import Failure

if TYPE_CHECKING:
    from tideflow.executors._loop import LoopRunner

__all__ = ["ThreadDispatcher", "make_dispatcher"]


class ThreadDispatcher:
    """Runs atom calls on an executor (a thread pool by default), several at once."""

    def __init__(self, executor: SubmitExecutor | None = None, max_workers: int | None = None):
        self._owned = executor is None
        self._executor: Any = executor or cf.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="tideflow-worker"
        )
        self._finished: queue.SimpleQueue[cf.Future[Outcome]] = queue.SimpleQueue()
        self._pending = 0
        self._loop: LoopRunner | None = None
        #: read here, on the engine thread: workers do not see the engine's context
        self._caller_loop = caller_loop()
        self._loop_lock = threading.Lock()
        # Coroutines go to the run's loop from threads of this process; an executor of
        # another kind (it may pickle the call to elsewhere) gets no reference to this
        # dispatcher, and its workers run an async atom on a loop of their own.
        in_process = self._owned or isinstance(executor, cf.ThreadPoolExecutor)
        self._awaiter = self.run_coroutine if in_process else None

    def start(self, work: Work) -> None:
        try:
            future = self._executor.submit(call_atom, *work, self._awaiter)
        except Exception as exc:
            # the executor refused the call (shut down, full): the atom fails with that
            # error like any failed call, and the engine reverts as usual
            self.finish((work[0], work[1], False, Failure.from_exception(exc)))
            return
        self._pending += 1
        future.add_done_callback(self._finished.put)

    def run_coroutine(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run an async atom's coroutine to its end on the run's loop (from a worker)."""
        with self._loop_lock:  # workers may ask at once: one loop per dispatcher
            if self._loop is None:
                from tideflow.executors._loop import loop_runner  # noqa: PLC0415  # async atoms only

                self._loop = loop_runner(self._caller_loop)
            loop = self._loop
        return loop.run(coroutine)

    def finish(self, outcome: Outcome) -> None:
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
        except queue.Empty:
            return []  # timed out: nothing finished yet
        while True:  # take whatever else is already done, without waiting
            try:
                futures.append(finished.get_nowait())
            except queue.Empty:
                break
        self._pending -= len(futures)
        return [future.result() for future in futures]

    @property
    def in_flight(self) -> int:
        return self._pending

    def close(self) -> None:
        if self._owned:
            # nothing is running (the engine waited for every call): idle workers exit
            # on their own, and the run does not wait for them
            self._executor.shutdown(wait=False)
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def make_dispatcher(
    executor: SubmitExecutor | None, *, max_workers: int | None, sink: EventSink
) -> ThreadDispatcher:
    """The threads executor's factory (``executor`` is the user's, or None for a pool)."""
    return ThreadDispatcher(executor, max_workers)
