"""Stopping a conductor cleanly on SIGTERM and Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Protocol

from tideflow.conductors._work import DEFAULT_GRACE

__all__ = ["stop_on_signals"]


class _Stoppable(Protocol):
    def stop(self, grace: float = ...) -> None: ...


@contextlib.contextmanager
def stop_on_signals(
    conductor: _Stoppable,
    grace: float = DEFAULT_GRACE,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Iterator[None]:
    """While the block runs, the first of ``signals`` calls ``conductor.stop(grace)``
    (stop claiming, let running jobs finish within ``grace`` s, then suspend and abandon
    them) and any later one ``conductor.stop(0)``; the previous handlers come back at
    the end. Call it from the main thread (Python runs signal handlers there only)::

        with Conductor(...) as conductor, stop_on_signals(conductor):
            conductor.run()
    """
    received = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        conductor.stop(grace if received == 1 else 0.0)

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
