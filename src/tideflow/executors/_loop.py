"""An event loop that atom coroutines run on, driven from the engine's or workers' threads.

A dispatcher that meets an ``async def`` atom asks :func:`loop_runner` for a runner.
Inside ``run_async()`` it is on the caller's running loop (``caller_loop()``, so atom
coroutines share it with the caller's other coroutines); otherwise on a loop of the
dispatcher's own in a daemon thread (``tideflow-loop``), started on the first coroutine
of the run and stopped by :meth:`LoopRunner.close` without waiting: one loop thread per
run that has async atoms, none for the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["LoopRunner", "loop_runner"]


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
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except BaseException:
            coroutine.close()  # never started (the loop is closed): not "never awaited"
            raise

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


def loop_runner(loop: asyncio.AbstractEventLoop | None) -> LoopRunner:
    """A runner on ``loop`` (the caller's, under ``run_async()``), or on a new loop thread."""
    return LoopRunner(loop)
