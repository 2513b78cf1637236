"""The tideflow side of the benchmarks, imported only by workers measuring tideflow.

``WORKLOADS`` at the bottom is the table of what tideflow can run today: a
workload mapped to ``None`` prints "not available yet"; the step that brings
the capability (threads, asyncio, durable stores) fills its entry in.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import multiprocessing
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
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


class AsyncSleep(tideflow.Task):
    """Await a 50 ms ``asyncio.sleep``."""

    async def execute(self) -> None:
        """Sleep without holding a thread."""
        await asyncio.sleep(_common.SLEEP_SECONDS)


class Burn(tideflow.Task):
    """CPU-bound pure-Python work; returns the process it ran in and the CPU time it took."""

    def __init__(self, name: str, loops: int = _common.CPU_LOOPS) -> None:
        super().__init__(name)
        self.loops = loops

    def execute(self) -> tuple[int, float]:
        """Burn about 0.25 s of CPU (at the default ``loops``)."""
        started = time.process_time()
        _common.burn(self.loops)
        return os.getpid(), time.process_time() - started


class Call(tideflow.Task):
    """Call ``_common.work(i)``: the Dask comparison's unit of work, as a task."""

    def __init__(self, i: int) -> None:
        super().__init__(f"t{i}", provides=f"r{i}")
        self.i = i

    def execute(self) -> int:
        """Return ``work(i)``."""
        return _common.work(self.i)


def _unordered(n: int, task: Callable[[str], tideflow.Task] = Noop) -> tideflow.UnorderedFlow:
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


# -- executors (issue 9): sleeps against the ideal, processes against serial, Dask direct --


def _on(**options: Any) -> Callable[[tideflow.Flow], Engine]:
    """Return a loader: the parallel engine with ``options`` (executor, max_workers)."""

    def load(flow: tideflow.Flow) -> Engine:
        engine: Engine = tideflow.load(flow, engine="parallel", **options)
        return engine

    return load


def sleeps(task: type[tideflow.Task], at_once: int | None, **options: Any) -> Workload:
    """Return the workload: N ``task`` sleeps in one unordered flow, against the ideal.

    ``at_once`` is how many sleep together (None: all N, coroutines on one loop).
    """

    def measure(n: int) -> Timings:
        timings = _common.build_then_time(lambda: _unordered(n, task), _on(**options))
        return _common.against_ideal(timings, n, at_once or n)

    return measure


def async_sleeps(n: int) -> Timings:
    """Time ``n`` async 50 ms sleeps in one unordered flow under ``await run_async()``.

    The event loop runs already (as in an application); timed: load + compile + run.
    """

    async def measure() -> Timings:
        start = time.perf_counter()
        flow = _unordered(n, AsyncSleep)
        built = time.perf_counter()
        engine = tideflow.load(flow, engine="parallel", executor="asyncio")
        engine.compile()
        compiled = time.perf_counter()
        await engine.run_async()
        done = time.perf_counter()
        timings = {
            "build": built - start,
            "compile": compiled - built,
            "run": done - compiled,
            "total": done - built,
        }
        return _common.against_ideal(timings, n, n)

    return asyncio.run(measure())


_TURN = itertools.count()  # which of a set of measurements goes first, call by call


def in_turns(*measures: Callable[[], Timings]) -> list[Timings]:
    """Take each measurement once, starting one further along on each call (so load hits
    each alike); return their timings in the order given."""
    count = len(measures)
    start = next(_TURN) % count
    taken: dict[int, Timings] = {}
    for step in range(count):
        which = (start + step) % count
        taken[which] = measures[which]()
    return [taken[which] for which in range(count)]


def _burn_timed(loops: int) -> tuple[int, float]:
    """Burn ``loops`` in a plain pool's worker: its pid and the CPU time it took."""
    started = time.process_time()
    _common.burn(loops)
    return os.getpid(), time.process_time() - started


def cpu_on_processes(n: int, loops: int = _common.CPU_LOOPS) -> Timings:
    """Time ``n`` CPU-bound tasks on the processes executor against the serial engine.

    ``baseline`` is the serial engine's load + compile + run of the same flow, measured
    in the same call (in turns); ``x`` = serial / processes, the speedup. For what the
    machine allows at that moment, ``pool_x`` is serial / the same work mapped on a
    plain ``ProcessPoolExecutor`` (fork server, as many workers, started in the timing
    as the executor's own pool is), measured in the same turns. How much CPU each run
    got, in CPUs (the tasks' CPU time over the run's wall time), is kept as
    ``serial_cpus`` and ``cpus``; ``task_cpu_x`` is the tasks' CPU time on processes over
    theirs in the serial run (above 1: the same work cost more CPU with both CPUs busy,
    as on a VM whose CPUs share a core). On a busy machine, these say why.
    """
    engines: dict[str, Any] = {}
    workers = os.cpu_count() or 1

    def run(kind: str, **options: Any) -> Timings:
        def load(flow: tideflow.Flow) -> Engine:
            engines[kind] = tideflow.load(flow, **options)
            engine: Engine = engines[kind]
            return engine

        return _common.build_then_time(lambda: _unordered(n, partial(Burn, loops=loops)), load)

    def plain_pool() -> Timings:
        start = time.perf_counter()
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = list(pool.map(_burn_timed, [loops] * n))
        done = time.perf_counter()
        if os.getpid() in {pid for pid, _ in results}:
            raise AssertionError("the plain pool ran work in this process")
        return {"total": done - start}

    def cpus(kind: str) -> tuple[set[int], float]:
        results = [engines[kind].storage.get_execute_result(f"t{i}") for i in range(n)]
        return {pid for pid, _ in results}, sum(cpu for _, cpu in results)

    base, ours, pool = in_turns(
        lambda: run("serial"),
        lambda: run("processes", engine="parallel", executor="processes", max_workers=workers),
        plain_pool,
    )
    serial_pids, serial_cpu = cpus("serial")
    pids, cpu = cpus("processes")
    if serial_pids != {os.getpid()} or os.getpid() in pids:
        raise AssertionError(f"tasks ran in processes {pids}, serially in {serial_pids}")
    return {
        **ours,
        "baseline": base["total"],
        "x": base["total"] / ours["total"],
        "pool_x": base["total"] / pool["total"],
        "serial_cpus": serial_cpu / base["total"],
        "cpus": cpu / ours["total"],
        "task_cpu_x": cpu / serial_cpu,
    }


_DASK: list[Any] = []  # the client of this worker process's LocalCluster, made once


def _dask_client() -> Any:
    """Start a LocalCluster (one single-threaded worker process per CPU) on first use."""
    if not _DASK:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise _common.Unavailable(f"needs tideflow[dask]: {exc}") from exc
        cluster = LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
        atexit.register(cluster.close)
        atexit.register(client.close)  # runs first
        _DASK.append(client)
    return _DASK[0]


def dask_unordered(n: int) -> Timings:
    """Time ``n`` tasks of an unordered flow on this process's LocalCluster (see below)."""
    return dask_vs_direct(_dask_client(), n)


def dask_vs_direct(client: Any, n: int) -> Timings:
    """Time ``n`` tasks of an unordered flow on a Dask cluster against Dask alone.

    ``baseline``: ``client.submit(work, i, pure=False)`` for each i, then
    ``client.gather``, on the same client in the same process, measured in turns with
    the flow; ``x`` = flow / direct, tideflow's overhead on top of Dask's own. The
    cluster is started before (the warm-up run starts it), outside every timing.
    ``cpu_x`` is the same ratio of this process's CPU time (client, engine, and a
    LocalCluster's scheduler), which waits on a busy machine do not inflate.
    """
    engines: list[Any] = []

    def on_dask(flow: tideflow.Flow) -> Engine:
        engines.append(tideflow.load(flow, engine="parallel", executor=client))
        engine: Engine = engines[-1]
        return engine

    def direct() -> Timings:
        cpu = time.process_time()
        start = time.perf_counter()
        futures = [client.submit(_common.work, i, pure=False) for i in range(n)]
        results = client.gather(futures)
        done = time.perf_counter()
        if results != list(range(n)):
            raise AssertionError("Dask returned other results")
        return {"total": done - start, "cpu": time.process_time() - cpu}

    def flow() -> Timings:
        cpu = time.process_time()
        timings = _common.build_then_time(
            lambda: tideflow.UnorderedFlow("un").add(*[Call(i) for i in range(n)]), on_dask
        )
        return {**timings, "cpu": time.process_time() - cpu}

    base, ours = in_turns(direct, flow)
    values = engines[0].storage.fetch_all()
    if values != {f"r{i}": i for i in range(n)}:
        raise AssertionError("the flow on Dask returned other results")
    return {
        **ours,
        "baseline": base["total"],
        "x": ours["total"] / base["total"],
        "cpu_x": ours["cpu"] / base["cpu"],
    }


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
    # executors: N sleeps of 50 ms on 8 threads; N async ones on the asyncio executor (its
    # max_workers sizes the pool for plain atoms only: all N coroutines sleep at once);
    # N plain ones on that pool; 1,000 async ones under run_async(); CPU-bound tasks on
    # processes against the serial engine; an unordered flow on Dask against Dask alone
    "parallel_sleep": sleeps(Sleep, _common.SLEEP_WORKERS, max_workers=_common.SLEEP_WORKERS),
    "asyncio_sleep32": sleeps(
        AsyncSleep, None, executor="asyncio", max_workers=_common.SLEEP_WORKERS
    ),
    "asyncio_pool_sleep": sleeps(
        Sleep, _common.SLEEP_WORKERS, executor="asyncio", max_workers=_common.SLEEP_WORKERS
    ),
    "asyncio_sleep": async_sleeps,
    "processes_cpu": cpu_on_processes,
    "dask_unordered": dask_unordered,
    # a linear flow of N no-op tasks recorded in a fresh SQLite file (schema untimed)
    "durable_linear": _sqlite(),  # WAL, synchronous=NORMAL: the store's default
    "durable_full": _sqlite(synchronous="FULL"),
    "durable_wal": "DBOS only: tideflow's durable_linear is already in WAL mode",
    "durable_memory": durable(lambda _tmp: "memory://"),  # the same run, in memory
}
"""Workload name -> measurement; ``None`` means "not available yet"."""
