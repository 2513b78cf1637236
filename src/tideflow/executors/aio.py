"""The asyncio executor, and how a flow runs inside a running event loop.

``executor='asyncio'`` (alias ``'async'``): an atom whose ``execute``/``revert`` is an
``async def`` runs as a task on an event loop, as many at once as are ready (no thread
is held while it awaits); every other atom runs on a thread pool of ``max_workers``
threads, so a blocking call never stalls the loop. Which loop: under
``run_async()`` the caller's own, the one it was awaited on; under a plain ``run()``
a loop the dispatcher owns, in a thread of its own for the length of the run.

How ``run_async()`` drives a flow (``Engine.run_async``): the round loop is the same
``_drive()`` a plain ``run()`` goes through, run unchanged in a thread of the engine's
(``tideflow-engine``). That thread owns all run state, as it always does; it blocks
while it waits for outcomes, so the event loop never does. The awaiting coroutine only
waits for that thread to end. Async atoms are handed to the caller's loop
(``asyncio.run_coroutine_threadsafe``), and their outcomes come back to the engine thread
on the dispatcher's queue, like a thread pool's. Keeping one round loop, rather than a
second one written with ``await``, is what keeps the two ways of running identical; the
price is one thread per ``run_async()`` in progress and two thread hops per async atom
call (a few tens of microseconds).

Cancelling the task that awaits ``run_async()`` suspends the run: nothing new starts,
running atoms are left to finish (async ones keep running on the loop) and are
recorded, then ``CancelledError`` propagates. The run is SUSPENDED, nothing is
reverted, and running it again finishes it. A cancellation that arrives while the
suspension is under way does not cut it short (the record would be left mid-round). If
the loop is shutting down and cancels an async atom's task, that atom fails with the
``CancelledError`` like any failed call.

Events an async atom reports (``update_progress``, its own ``TASK_EVENTS``) arrive on
the loop thread and are delivered on the engine thread, as events from worker threads
are; engine listeners are called on the engine thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
from types import CoroutineType
from typing import Any

from tideflow._task import Atom, is_async_method
from tideflow.executors import EventSink, Outcome, SubmitExecutor, Work
from tideflow.executors._loop import LoopRunner, loop_runner
from tideflow.executors.threads import ThreadDispatcher
from tideflow.failure import Failure

__all__ = ["AsyncioDispatcher", "call_atom_async", "make_dispatcher"]


async def call_atom_async(
    node: int, reverting: bool, atom: Atom, kwargs: dict[str, Any]
) -> Outcome:
    """Run one ``async def`` atom call on the running loop, hooks around its await.

    The async twin of :func:`~tideflow.executors.call_atom`: an exception (the task
    being cancelled too) becomes a Failure.
    """
    try:
        if reverting:
            atom.pre_revert()
            try:
                value = atom.revert(**kwargs)
                if value.__class__ is CoroutineType:
                    value = await value
            finally:
                atom.post_revert()
        else:
            atom.pre_execute()
            try:
                value = atom.execute(**kwargs)
                if value.__class__ is CoroutineType:
                    value = await value
            finally:
                atom.post_execute()
    except (Exception, asyncio.CancelledError) as exc:
        # a cancelled call (the loop shutting down) is a failed one: the engine is told,
        # rather than left waiting for an outcome that never comes
        return (node, reverting, False, Failure.from_exception(exc))
    return (node, reverting, True, value)


class AsyncioDispatcher(ThreadDispatcher):
    """Runs async atom calls as tasks on an event loop, the others on a thread pool."""

    def __init__(self, executor: SubmitExecutor | None = None, max_workers: int | None = None):
        super().__init__(executor, max_workers)
        # the loop (a thread of its own unless run_async lends the caller's) starts with
        # the first async atom: a run of plain atoms never starts one
        self._loop: LoopRunner | None = None
        self._async_kinds: dict[tuple[int, bool], bool] = {}
        self._batch: list[Work] = []  # async calls started this round, not launched yet
        self._tasks: set[asyncio.Task[Outcome]] = set()

    def start(self, work: Work) -> None:
        node, reverting, atom, _ = work
        key = (node, reverting)
        is_async = self._async_kinds.get(key)
        if is_async is None:
            method = "revert" if reverting else "execute"
            is_async = self._async_kinds[key] = is_async_method(atom, method)
        if not is_async:
            super().start(work)
            return
        # launched with the round's other async calls at wait(): one wake-up of the loop
        # for all of them, so they begin together (one by one, each costs a wake-up, and
        # the last of 32 began a couple of milliseconds after the first)
        self._batch.append(work)
        self._pending += 1

    def wait(self, timeout: float | None) -> list[Outcome]:
        if self._batch:
            self._launch()
        return super().wait(timeout)

    def _launch(self) -> None:
        batch, self._batch = self._batch, []
        with self._loop_lock:  # workers' run_coroutine() may start it too
            if self._loop is None:
                self._loop = loop_runner(self._caller_loop)
            loop = self._loop.loop
        try:
            loop.call_soon_threadsafe(self._start_all, batch)
        except RuntimeError as exc:
            # the loop is closed: each atom fails with that error, the engine reverts
            for node, reverting, _, _ in batch:
                self._pending -= 1
                self.finish((node, reverting, False, Failure.from_exception(exc)))

    def _start_all(self, batch: list[Work]) -> None:
        """On the loop: a task for each call; its outcome goes to the engine's queue."""
        loop = asyncio.get_running_loop()
        for node, reverting, atom, kwargs in batch:
            task = loop.create_task(call_atom_async(node, reverting, atom, kwargs))
            self._tasks.add(task)  # the loop keeps tasks weakly: they must not vanish
            task.add_done_callback(functools.partial(self._settled, node, reverting))

    def _settled(self, node: int, reverting: bool, task: asyncio.Task[Outcome]) -> None:
        self._tasks.discard(task)
        done: cf.Future[Outcome] = cf.Future()
        if task.cancelled():  # cancelled before it began: a failed call all the same
            error = asyncio.CancelledError(f"the call of node {node} was cancelled")
            done.set_result((node, reverting, False, Failure.from_exception(error)))
        else:
            done.set_result(task.result())
        self._finished.put(done)


def make_dispatcher(
    executor: SubmitExecutor | None, *, max_workers: int | None, sink: EventSink
) -> AsyncioDispatcher:
    """The asyncio executor's factory (``executor``: a pool for plain atoms, or None)."""
    return AsyncioDispatcher(executor, max_workers)
