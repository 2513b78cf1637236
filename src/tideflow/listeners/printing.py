"""Printing listeners: one short line per state change (ConsoleListener), or TaskFlow's lines.

:class:`ConsoleListener` reads the typed events and prints what a person follows
in a terminal::

    run 'trip' (9f0c...) RUNNING
      reserve RUNNING
      reserve SUCCESS in 0.002s
      charge FAILURE in 0.001s: RuntimeError: card 0000 declined
      charge REVERTING
    ...
    run 'trip' REVERTED in 0.020s

:class:`PrintingListener` prints TaskFlow's sentences, for TaskFlow programs.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from tideflow.events import AtomEvent, FlowEvent
from tideflow.failure import Failure
from tideflow.listeners.base import (
    DEFAULT_LISTEN_FOR,
    DumpingListener,
    EventListener,
    ListenFor,
    failure_line,
    failure_text,
)
from tideflow.listeners.timing import Stopwatch
from tideflow.states import AtomState, FlowState

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["ConsoleListener", "PrintingListener"]


class ConsoleListener(EventListener):
    """Print one line per flow and atom state change, with durations and failures.

    ``stream`` is where lines go (default: ``sys.stdout`` as it is at each line, so
    redirections are honoured); ``results=True`` adds each SUCCESS's result;
    ``tracebacks=True`` prints a failure's traceback text under its line. An
    attempt after the first is named (``(attempt 2)``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        stream: TextIO | None = None,
        results: bool = False,
        tracebacks: bool = False,
    ) -> None:
        super().__init__(engine)
        self._out = stream
        self._results = results
        self._tracebacks = tracebacks
        self._stopwatch = Stopwatch()

    def _print(self, line: str) -> None:
        print(line, file=self._out if self._out is not None else sys.stdout)

    def on_flow(self, event: FlowEvent) -> None:
        timing = self._stopwatch.observe(event)
        if event.state is FlowState.RUNNING:
            self._print(f"run {event.flow_name!r} ({event.run_id}) RUNNING")
        elif timing is not None:
            self._print(f"run {event.flow_name!r} {event.state.value} in {timing.duration:.3f}s")
        else:
            self._print(f"run {event.flow_name!r} {event.state.value}")

    def on_atom(self, event: AtomEvent) -> None:
        timing = self._stopwatch.observe(event)
        line = f"  {event.atom_name} {event.state.value}"
        if event.state is AtomState.RETRYING:
            wait = f" after {event.delay:.3g}s" if event.delay else ""
            line += f": attempt {event.attempt}{wait}"
        elif event.attempt > 1:
            line += f" (attempt {event.attempt})"
        if timing is not None:
            line += f" in {timing.duration:.3f}s"
        if event.failure is not None:
            line += f": {failure_line(event.failure)}"
        elif self._results and event.state is AtomState.SUCCESS:
            line += f" -> {event.result!r}"
        self._print(line)
        if self._tracebacks and event.failure is not None:
            text = failure_text(event.failure)
            self._print("\n".join(f"    {part}" for part in text.splitlines()))


class PrintingListener(DumpingListener):
    """Print each state change to stdout (or stderr), with a failed task's traceback."""

    def __init__(
        self,
        engine: Engine,
        task_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        flow_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        retry_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        stderr: bool = False,
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._stderr = stderr

    def _stream(self) -> TextIO:
        # Looked up on each line, not at construction, so redirected streams are honoured.
        return sys.stderr if self._stderr else sys.stdout

    def _dump(self, message: str, *args: Any, **kwargs: Any) -> None:
        stream = self._stream()
        print(message % args if args else message, file=stream)
        exc_info = kwargs.get("exc_info")
        if isinstance(exc_info, tuple):
            traceback.print_exception(*exc_info, file=stream)

    def _dump_failure(self, failure: Failure, message: str, *args: Any) -> None:
        # The recorded traceback text, not the live exception: a failure that came back
        # from another process, or from a store, prints the same way.
        print(message % args, failure_text(failure), sep="\n", file=self._stream())
