"""The tideflow side of the benchmarks, imported only by workers measuring tideflow.

``WORKLOADS`` at the bottom is the table of what tideflow can run today: a
workload mapped to ``None`` prints "not available yet"; the step that brings
the capability (threads, asyncio, durable stores) fills its entry in.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import _common
from _common import Engine, Timings, Workload

import tideflow
from tideflow.persistence import connect


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


class FailFirst(tideflow.Task):
    """Fail on the first ``failures`` executions, then succeed."""

    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures = failures

    def execute(self) -> None:
        """Raise while failures are left."""
        if self.failures:
            self.failures -= 1
            raise RuntimeError("boom")


def _retried(n: int) -> tideflow.LinearFlow:
    """Build ``n`` no-op tasks under ``Times(5)``, the last failing its first 4 attempts."""
    tasks = [Noop(f"t{i}") for i in range(n - 1)]
    flow = tideflow.LinearFlow("lin", retry=tideflow.Times(_common.RETRY_ATTEMPTS, name="retry"))
    return flow.add(*tasks, FailFirst(f"t{n - 1}", _common.RETRY_FAILURES))


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


def _graph_tasks(n: int) -> list[tideflow.Task]:
    """Build the ``n`` tasks of the seeded random graph."""
    reqs = _common.graph_requirements(n)
    return [
        Consume(f"t{i}", provides=f"r{i}", requires=[f"r{j}" for j in r])
        for i, r in enumerate(reqs)
    ]


def _graph_flow(tasks: list[tideflow.Task]) -> tideflow.GraphFlow:
    """Add ``tasks`` to a graph flow (links inferred from requires/provides)."""
    return tideflow.GraphFlow("graph").add(*tasks)


class Many(tideflow.Task):
    """Return one value per name it provides."""

    def execute(self) -> tuple[int, ...]:
        """Return 0, 1, 2, ... one per provided name."""
        return tuple(range(len(self.provides)))


class One(tideflow.Task):
    """Return 1."""

    def execute(self) -> int:
        """Return 1."""
        return 1


def _provider(names: tuple[str, ...]) -> tideflow.LinearFlow:
    """A flow of one task whose result fills ``names``."""
    return tideflow.LinearFlow("values").add(Many("many", provides=names))


def _linear_values(n: int) -> tideflow.LinearFlow:
    """Build a linear flow of ``n`` tasks, each providing one value."""
    return tideflow.LinearFlow("lin").add(*[One(f"t{i}", provides=f"v{i}") for i in range(n)])


def _load(flow: tideflow.Flow, store: dict[str, Any]) -> Any:
    """Load ``flow`` into the serial engine with ``store``."""
    return tideflow.load(flow, store=store)


def _serial(flow: tideflow.Flow) -> Engine:
    """Load ``flow`` into the serial engine."""
    engine: Engine = tideflow.load(flow)
    return engine


def _parallel(flow: tideflow.Flow) -> Engine:
    """Load ``flow`` into the parallel engine on 8 threads."""
    engine: Engine = tideflow.load(flow, engine="parallel", max_workers=_common.SLEEP_WORKERS)
    return engine


SQLITE_FILE = "runs.db"


def durable_run(n: int, store: Any) -> tuple[Timings, str]:
    """Time a linear flow of ``n`` no-op tasks recorded in ``store``; return its run's uuid.

    The timed part is ``load() + compile() + run()``, as for every engine workload.
    """
    engines: list[Any] = []

    def load(flow: tideflow.Flow) -> Engine:
        engines.append(tideflow.load(flow, backend=store))
        engine: Engine = engines[-1]
        return engine

    timings = _common.build_then_time(lambda: _linear(n, False), load)
    return timings, engines[0].storage.flow_uuid


def succeeded(store: Any, flow_uuid: str) -> int:
    """Count the atoms of run ``flow_uuid`` that ``store`` holds as SUCCESS."""
    with store.get_connection() as conn:
        return sum(atom.state == "SUCCESS" for atom in conn.get_atoms_for_flow(flow_uuid))


def durable(
    url: Callable[[str], str], check: Callable[[str], None] | None = None, **options: Any
) -> Workload:
    """Return the workload: a durable run in a fresh store (``url(tmp_dir)``, ``options``).

    The store's schema is created untimed (as on the TaskFlow side). After the run,
    the store must hold every atom as SUCCESS, so a store that records nothing
    cannot pass for a fast one; ``check(tmp_dir)`` then inspects the closed store.
    """

    def measure(n: int) -> Timings:
        with tempfile.TemporaryDirectory(prefix="bench-tideflow-") as tmp:
            store = connect(url(tmp), **options)
            try:
                with store.get_connection() as conn:
                    conn.upgrade()
                timings, flow_uuid = durable_run(n, store)
                if (done := succeeded(store, flow_uuid)) != n:
                    raise AssertionError(f"the store holds {done} SUCCESS atoms, not {n}")
            finally:
                store.close()
            if check is not None:
                check(tmp)
        return timings

    return measure


def sqlite_url(tmp: str) -> str:
    """The SQLite store's URL for a file in ``tmp``."""
    return f"sqlite:///{os.path.join(tmp, SQLITE_FILE)}"


def wal_check(tmp: str) -> None:
    """Fail unless the SQLite store in ``tmp`` was left in WAL mode (what is measured)."""
    with contextlib.closing(sqlite3.connect(os.path.join(tmp, SQLITE_FILE))) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "wal":
        raise AssertionError(f"the SQLite store is in journal mode {mode!r}, not WAL")


def _sqlite(**options: Any) -> Workload | None:
    """The durable workload on the SQLite store, or ``None`` until that store exists."""
    try:
        import tideflow.persistence.sqlite  # noqa: F401  # only: is it there?
    except ImportError:
        return None
    return durable(sqlite_url, wal_check, **options)


WORKLOADS: dict[str, Workload | str | None] = {
    **_common.serial_workloads(
        _common.Side(
            linear=_linear,
            unordered=_unordered,
            graph_tasks=_graph_tasks,
            graph_flow=_graph_flow,
            serial=_serial,
            load=_load,
            run=tideflow.run,
            provider=_provider,
            linear_values=_linear_values,
        )
    ),
    "retry": lambda n: _common.build_then_time(lambda: _retried(n), _serial),
    "unordered_threads": lambda n: _common.build_then_time(lambda: _unordered(n), _parallel),
    "parallel_sleep": lambda n: _common.build_then_time(lambda: _unordered(n, Sleep), _parallel),
    "asyncio_sleep": None,  # asyncio engine: N concurrent 10 ms asyncio.sleep tasks
    # a linear flow of N no-op tasks recorded in a fresh SQLite file (schema untimed)
    "durable_linear": _sqlite(),  # WAL, synchronous=NORMAL: the store's default
    "durable_full": _sqlite(synchronous="FULL"),
    "durable_wal": "DBOS only: tideflow's durable_linear is already in WAL mode",
    "durable_memory": durable(lambda _tmp: "memory://"),  # the same run, in memory
}
"""Workload name -> measurement; ``None`` means "not available yet"."""
