"""An event loop that atom coroutines run on, driven from the engine's or workers' threads.

A dispatcher that meets an ``async def`` atom asks :func:`loop_runner` for a runner.
Inside ``run_async()`` it is the caller's running loop (so atom coroutines share it with
the caller's other coroutines); otherwise it is a loop of the dispatcher's own in a
daemon thread (``tideflow-loop``), started then and stopped by :meth:`LoopRunner.close`
without waiting: one loop thread per run that has async atoms, none for the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["CALLER_LOOP", "LoopRunner", "loop_runner"]

#: The event loop ``run_async()`` was awaited on, set in the engine thread it starts.
CALLER_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "tideflow_caller_loop", default=None
)


class LoopRunner:
    """Runs coroutines on one event loop, from any other thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._owned = loop is None
        if loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=_serve, args=(loop,), name="tideflow-loop", daemon=True
            )
            thread.start()
        self.loop = loop

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> cf.Future[Any]:
        """Schedule ``coroutine`` on the loop; its future is done when it is."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` to its end on the loop, blocking this thread meanwhile."""
        return self.submit(coroutine).result()

    def close(self) -> None:
        """Stop a loop of our own (its thread closes it); a caller's loop is left alone."""
        if self._owned and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        # stopped: whatever an atom left behind (tasks it spawned) is cancelled
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def loop_runner() -> LoopRunner:
    """A runner on the caller's loop under ``run_async()``, else on a new loop thread.

    The caller's loop is not used from its own thread (an async atom that runs a flow
    synchronously would wait for itself): such a run gets a loop of its own.
    """
    loop = CALLER_LOOP.get()
    if loop is not None and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            return LoopRunner(loop)
    return LoopRunner()
