"""PrintingListener: print every flow and task state change, TaskFlow's lines."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from tideflow.failure import Failure
from tideflow.listeners.base import DEFAULT_LISTEN_FOR, DumpingListener, ListenFor, failure_text

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["PrintingListener"]


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
