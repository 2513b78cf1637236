"""The flows the job-board benchmark posts as jobs (imported as ``bench.jobs_flows``).

``noop``: one task that does nothing. ``three``: three no-op tasks in a row.
``stamped``: three in a row whose first appends ``"<seq> <time.monotonic()>"`` to the
file ``mark`` as it starts (the post-to-start latency row reads it).
"""

from __future__ import annotations

import os
import time

import tideflow


class Noop(tideflow.Task):
    """Do nothing."""

    def execute(self) -> None:
        """Do nothing."""


class Stamp(tideflow.Task):
    """Append this job's ``seq`` and the time it started to the file ``mark``."""

    def __init__(self, name: str, mark: str, seq: int) -> None:
        super().__init__(name)
        self.mark = mark
        self.seq = seq

    def execute(self) -> None:
        """Write one line at once (O_APPEND: lines of several processes never mix)."""
        line = f"{self.seq} {time.monotonic()!r}\n".encode()
        fd = os.open(self.mark, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def noop() -> tideflow.LinearFlow:
    """One no-op task."""
    return tideflow.LinearFlow("noop").add(Noop("a"))


def three() -> tideflow.LinearFlow:
    """Three no-op tasks in a row."""
    return tideflow.LinearFlow("three").add(Noop("a"), Noop("b"), Noop("c"))


def stamped(mark: str, seq: int) -> tideflow.LinearFlow:
    """Three tasks in a row, the first writing when it starts."""
    return tideflow.LinearFlow("stamped").add(Stamp("a", mark, seq), Noop("b"), Noop("c"))
