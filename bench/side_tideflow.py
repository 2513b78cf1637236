"""The tideflow side of the benchmarks, imported only by workers measuring tideflow.

``WORKLOADS`` at the bottom is the table of what tideflow can run today: a
workload mapped to ``None`` prints "not available yet"; the step that brings
the capability (threads, asyncio, durable stores) fills its entry in.
"""

from __future__ import annotations

import time
from importlib import metadata

import _common
from _common import Engine, Workload

import tideflow


def version() -> str:
    """Return the installed tideflow version."""
    return metadata.version("tideflow")


class Noop(tideflow.Task):
    """Do nothing."""

    def execute(self) -> None:
        """Do nothing."""


class Fail(tideflow.Task):
    """Always fail."""

    def execute(self) -> None:
        """Raise."""
        raise RuntimeError("boom")


class Consume(tideflow.Task):
    """A graph task: its requirements arrive as keyword arguments."""

    def execute(self, **kwargs: object) -> int:
        """Return how many values arrived."""
        return len(kwargs)


def _linear(n: int, fail_last: bool) -> tideflow.LinearFlow:
    """Build a linear flow of ``n`` no-op tasks, the last one failing if asked."""
    tasks = [Noop(f"t{i}") for i in range(n - 1)]
    return tideflow.LinearFlow("lin").add(*tasks, (Fail if fail_last else Noop)(f"t{n - 1}"))


class Sleep(tideflow.Task):
    """Sleep for 50 ms."""

    def execute(self) -> None:
        """Sleep."""
        time.sleep(_common.SLEEP_SECONDS)


def _unordered(n: int, task: type[tideflow.Task] = Noop) -> tideflow.UnorderedFlow:
    """Build an unordered flow of ``n`` tasks (no-ops unless told otherwise)."""
    return tideflow.UnorderedFlow("un").add(*[task(f"t{i}") for i in range(n)])


def _graph(n: int) -> tideflow.GraphFlow:
    """Build the seeded random graph flow of ``n`` tasks."""
    reqs = _common.graph_requirements(n)
    tasks = [
        Consume(f"t{i}", provides=f"r{i}", requires=[f"r{j}" for j in r])
        for i, r in enumerate(reqs)
    ]
    return tideflow.GraphFlow("graph").add(*tasks)


def _serial(flow: tideflow.Flow) -> Engine:
    """Load ``flow`` into the serial engine."""
    engine: Engine = tideflow.load(flow)
    return engine


def _parallel(flow: tideflow.Flow) -> Engine:
    """Load ``flow`` into the parallel engine on 8 threads."""
    engine: Engine = tideflow.load(flow, engine="parallel", max_workers=_common.SLEEP_WORKERS)
    return engine


WORKLOADS: dict[str, Workload | str | None] = {
    **_common.serial_workloads(_common.Side(_linear, _unordered, _graph, _serial)),
    "unordered_threads": lambda n: _common.build_then_time(lambda: _unordered(n), _parallel),
    "parallel_sleep": lambda n: _common.build_then_time(lambda: _unordered(n, Sleep), _parallel),
    "asyncio_sleep": None,  # asyncio engine: N concurrent 10 ms asyncio.sleep tasks
    "durable_sqlite": None,  # SQLite store: linear flow of N tasks recorded in a fresh database
}
"""Workload name -> measurement; ``None`` means "not available yet"."""
