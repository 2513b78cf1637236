"""The TaskFlow 6.5 side of the benchmarks, imported only by workers in TaskFlow's venv."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from importlib import metadata
from typing import Any

import _common
from _common import Engine, Timings, Workload

from taskflow import engines, retry, task
from taskflow.patterns import graph_flow, linear_flow, unordered_flow


def version() -> str:
    """Return the installed TaskFlow version (fails for a compatibility shim)."""
    return metadata.version("taskflow")


class Noop(task.Task):  # type: ignore[misc]
    """Do nothing."""

    def execute(self) -> None:
        """Do nothing."""


class Fail(task.Task):  # type: ignore[misc]
    """Always fail."""

    def execute(self) -> None:
        """Raise."""
        raise RuntimeError("boom")


class Consume(task.Task):  # type: ignore[misc]
    """A graph task: its requirements arrive as keyword arguments."""

    def execute(self, **kwargs: object) -> int:
        """Return how many values arrived."""
        return len(kwargs)


class Sleep(task.Task):  # type: ignore[misc]
    """Sleep for 50 ms."""

    def execute(self) -> None:
        """Sleep."""
        time.sleep(_common.SLEEP_SECONDS)


class FailFirst(task.Task):  # type: ignore[misc]
    """Fail on the first ``failures`` executions, then succeed."""

    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures = failures

    def execute(self) -> None:
        """Raise while failures are left."""
        if self.failures:
            self.failures -= 1
            raise RuntimeError("boom")


def _retried(n: int) -> Any:
    """Build ``n`` no-op tasks under ``Times(5)``, the last failing its first 4 attempts."""
    tasks = [Noop(f"t{i}") for i in range(n - 1)]
    flow = linear_flow.Flow("lin", retry=retry.Times(_common.RETRY_ATTEMPTS, name="retry"))
    return flow.add(*tasks, FailFirst(f"t{n - 1}", _common.RETRY_FAILURES))


def _linear(n: int, fail_last: bool) -> Any:
    """Build a linear flow of ``n`` no-op tasks, the last one failing if asked."""
    tasks = [Noop(f"t{i}") for i in range(n - 1)]
    return linear_flow.Flow("lin").add(*tasks, (Fail if fail_last else Noop)(f"t{n - 1}"))


def _unordered(n: int, kind: type[Any] = Noop) -> Any:
    """Build an unordered flow of ``n`` tasks of ``kind``."""
    return unordered_flow.Flow("un").add(*[kind(f"t{i}") for i in range(n)])


def _graph_tasks(n: int) -> list[Any]:
    """Build the ``n`` tasks of the seeded random graph."""
    reqs = _common.graph_requirements(n)
    return [
        Consume(f"t{i}", provides=f"r{i}", requires=[f"r{j}" for j in r])
        for i, r in enumerate(reqs)
    ]


def _graph_flow(tasks: list[Any]) -> Any:
    """Add ``tasks`` to a graph flow (links inferred from requires/provides)."""
    return graph_flow.Flow("graph").add(*tasks)


class Many(task.Task):  # type: ignore[misc]
    """Return one value per name it provides."""

    def execute(self) -> tuple[int, ...]:
        """Return 0, 1, 2, ... one per provided name."""
        return tuple(range(len(self.provides)))


class One(task.Task):  # type: ignore[misc]
    """Return 1."""

    def execute(self) -> int:
        """Return 1."""
        return 1


def _provider(names: tuple[str, ...]) -> Any:
    """A flow of one task whose result fills ``names``."""
    return linear_flow.Flow("values").add(Many("many", provides=names))


def _linear_values(n: int) -> Any:
    """Build a linear flow of ``n`` tasks, each providing one value."""
    return linear_flow.Flow("lin").add(*[One(f"t{i}", provides=f"v{i}") for i in range(n)])


def _load(flow: Any, store: dict[str, Any]) -> Any:
    """Load ``flow`` into the serial engine with ``store``."""
    return engines.load(flow, store=store, engine="serial")


def _run(flow: Any) -> dict[str, Any]:
    """TaskFlow's ``engines.run``: load, run, and return ``storage.fetch_all()``."""
    return engines.run(flow, engine="serial")  # type: ignore[no-any-return]


def _serial(flow: Any) -> Engine:
    """Load ``flow`` into the serial engine."""
    return engines.load(flow, engine="serial")  # type: ignore[no-any-return]


def _parallel(flow: Any) -> Engine:
    """Load ``flow`` into the parallel engine with 8 worker threads."""
    return engines.load(flow, engine="parallel", max_workers=_common.SLEEP_WORKERS)  # type: ignore[no-any-return]


def sleeps(n: int) -> Timings:
    """Time ``n`` 50 ms sleeps on the parallel engine's 8 threads, against the ideal."""
    timings = _common.build_then_time(lambda: _unordered(n, Sleep), _parallel)
    return _common.against_ideal(timings, n, _common.SLEEP_WORKERS)


def durable_linear(n: int) -> Timings:
    """Run a linear flow of ``n`` tasks recorded in a fresh SQLite database (schema untimed)."""
    try:
        from taskflow.persistence import backends
        from taskflow.utils import persistence_utils

        with tempfile.TemporaryDirectory() as tmp:
            backend = backends.fetch({"connection": f"sqlite:///{os.path.join(tmp, 'tf.db')}"})
            with contextlib.closing(backend.get_connection()) as conn:
                conn.upgrade()
            with contextlib.closing(backend):

                def load(flow: Any) -> Engine:
                    book, detail = persistence_utils.temporary_flow_detail(backend)
                    return engines.load(flow, backend=backend, book=book, flow_detail=detail)  # type: ignore[no-any-return]

                return _common.build_then_time(lambda: _linear(n, False), load)
    except ImportError as exc:  # SQLAlchemy is missing from this environment
        raise _common.Unavailable(f"TaskFlow's SQL backend needs SQLAlchemy: {exc}") from exc


WORKLOADS: dict[str, Workload | str | None] = {
    **_common.serial_workloads(
        _common.Side(
            linear=_linear,
            unordered=_unordered,
            graph_tasks=_graph_tasks,
            graph_flow=_graph_flow,
            serial=_serial,
            load=_load,
            run=_run,
            provider=_provider,
            linear_values=_linear_values,
        )
    ),
    "retry": lambda n: _common.build_then_time(lambda: _retried(n), _serial),
    "unordered_threads": lambda n: _common.build_then_time(lambda: _unordered(n), _parallel),
    # executors: only threads; the async sleeps row gets the same sleeps as plain tasks
    "parallel_sleep": sleeps,
    "asyncio_sleep32": sleeps,
    "asyncio_pool_sleep": "TaskFlow has no asyncio executor",
    "asyncio_sleep": "TaskFlow has no asyncio engine (an async def execute is never awaited)",
    "processes_cpu": "TaskFlow 6 removed its process executor",
    "dask_unordered": "TaskFlow has no Dask executor",
    "durable_linear": durable_linear,
}
"""Workload name -> measurement, or a string saying why it does not apply."""
