"""The serial engine's dispatcher: every atom call runs on the engine thread, at once.

Guarantees: an atom call has finished (and its outcome is queued) when ``start()``
returns, so a run is the calling thread alone, in the order the engine starts work.
An ``async def`` atom is run to its end on an event loop the dispatcher owns (one loop
thread per run, started on the first coroutine, stopped by ``close()``); under
``run_async()`` it runs on the caller's event loop instead (see ``executors/aio.py``).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from tideflow.executors import Outcome, Work, call_atom, caller_loop

if TYPE_CHECKING:
    from tideflow.executors._loop import LoopRunner

__all__ = ["SerialDispatcher"]


class SerialDispatcher:
    """Runs each atom call on the engine thread, at once."""

    def __init__(self) -> None:
        #: Outcomes not handed back yet; the engine's serial fast path appends here too.
        self.done: list[Outcome] = []
        self._loop: LoopRunner | None = None
        #: read here, on the engine thread: workers do not see the engine's context
        self._caller_loop = caller_loop()

    def start(self, work: Work) -> None:
        self.done.append(call_atom(*work, self.run_coroutine))

    def run_coroutine(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run an async atom's coroutine to its end on the run's event loop."""
        if self._loop is None:
            from tideflow.executors._loop import loop_runner  # noqa: PLC0415  # async atoms only

            self._loop = loop_runner(self._caller_loop)
        return self._loop.run(coroutine)

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
        if self._loop is not None:
            self._loop.close()
            self._loop = None
