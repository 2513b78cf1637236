"""What is measured: the workloads, the modes, and the cells that hold results."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

SIDES = ("tideflow", "taskflow", "dbos")
TINY_CAP = 10


@dataclass(frozen=True)
class Spec:
    """One workload: its label, what it reports, and the sizes each side runs.

    ``tideflow``, ``taskflow`` and ``dbos`` are the full-mode sizes (DBOS runs only
    the durable workloads). Quick mode caps TaskFlow's and DBOS's sizes at
    ``quick_cap`` (TaskFlow's engine is quadratic; both write slowly) and tiny mode
    caps every size at ``TINY_CAP``. tideflow also runs every size TaskFlow runs, so
    each TaskFlow/tideflow ratio compares equal N; DBOS is compared per step.
    """

    name: str
    label: str
    tideflow: tuple[int, ...]
    taskflow: tuple[int, ...]
    quick_cap: int = 200
    kind: str = "time"  # "time" (seconds, per-task overhead) or "memory" (bytes per atom)
    once: bool = False  # one measurement per N (deterministic metrics)
    compare: bool = True  # False for the floor: the same loop on both sides, a reference only
    #: "engine": a flow's load + compile + run (the targets judge these); "calls": one
    #: public call a user makes around each run, timed alone (N = values or nodes);
    #: "durable": a run recorded in a store, compared per task (see ``STORES``);
    #: "executors": a run on one executor against its ``baseline`` (see ``BASELINES``)
    group: str = "engine"
    dbos: tuple[int, ...] = ()
    #: executors: what the run is set against; each sample holds it as ``baseline`` and
    #: the run's figure as ``x`` (total / baseline, or baseline / total when ``faster``)
    baseline: str = ""
    faster: bool = False
    #: runs inside each process (0: the runner's default) and the time they may take
    #: (at least the mode's budget; inf: all of them): short runs get more of them, and
    #: paired measurements several pairs for their median. Tiny mode runs each once.
    runs: int = 0
    budget_s: float = 0.0

    def sizes(self, mode: str, side: str) -> tuple[int, ...]:
        """Return the sizes this side runs in ``mode``."""
        cap = {"full": None, "quick": self.quick_cap, "tiny": TINY_CAP}[mode]
        theirs = {n if cap is None else min(n, cap) for n in self.taskflow}
        if side == "taskflow":
            return tuple(sorted(theirs))
        if side == "dbos":
            return tuple(sorted({n if cap is None else min(n, cap) for n in self.dbos}))
        ours = {min(n, TINY_CAP) if mode == "tiny" else n for n in self.tideflow}
        return tuple(sorted(ours | theirs))


SPECS = [
    Spec("floor", "plain-loop floor", (1000,), (1000,), 1000, compare=False),
    Spec("import", "import", (1,), (1,)),
    Spec("linear", "linear", (10, 100, 1000, 10_000, 100_000), (10, 100, 1000)),
    Spec("unordered", "unordered serial", (1000,), (1000,)),
    Spec("graph", "graph (3 random reqs)", (1000, 10_000), (1000,)),
    Spec("revert", "revert linear", (1000,), (1000,)),
    # a linear flow under Times(5) whose last task fails its first 4 attempts
    Spec("retry", "retry linear, 4 fails", (100, 1000), (100,), 100),
    Spec("memory", "memory linear", (100_000,), (1000,), 100, kind="memory", once=True),
    Spec("unordered_threads", "unordered 8 threads", (1000,), (1000,)),
    # executors (issue 9), each against its baseline: N 50 ms sleeps against the ideal
    # (8 at a time on threads, all at once as coroutines), CPU-bound tasks on processes
    # against the serial engine, an unordered flow on Dask against Dask alone
    Spec(
        "parallel_sleep",
        "50ms sleeps, 8 threads",
        (32,),
        (32,),
        group="executors",
        baseline="ideal",
        runs=15,
        budget_s=1.0,
    ),
    Spec(
        "asyncio_sleep32",
        "async 50ms sleeps, asyncio",
        (32,),
        (32,),
        group="executors",
        baseline="ideal",
        runs=15,
        budget_s=1.0,
    ),
    Spec(
        "asyncio_pool_sleep",
        "50ms sleeps, asyncio pool",
        (32,),
        (32,),
        group="executors",
        baseline="ideal",
        runs=15,
        budget_s=1.0,
    ),
    Spec(
        "asyncio_sleep",
        "async 50ms, run_async()",
        (1000,),
        (1000,),
        1000,
        group="executors",
        baseline="ideal",
        runs=15,
        budget_s=1.0,
    ),
    Spec(
        "processes_cpu",
        "CPU-bound, processes",
        (8,),
        (8,),
        group="executors",
        baseline="serial",
        faster=True,
        runs=3,
        budget_s=math.inf,
    ),
    Spec(
        "dask_unordered",
        "unordered on Dask",
        (200,),
        (200,),
        group="executors",
        baseline="Dask alone",
        runs=7,
        budget_s=math.inf,
    ),
    # calls users make per run, each timed alone
    Spec(
        "fetch_all",
        "storage.fetch_all()",
        (1000, 10_000, 100_000),
        (1000, 10_000, 100_000),
        10_000,
        group="calls",
    ),
    Spec("run_values", "run() -> values, linear", (100, 1000, 10_000), (100, 1000), group="calls"),
    Spec(
        "graph_build",
        "build GraphFlow (3 reqs)",
        (1000, 10_000, 100_000),
        (1000, 10_000),
        1000,
        group="calls",
    ),
    # durable runs: a linear flow of N no-op tasks (DBOS: one workflow of N no-op steps)
    # whose every state change is recorded in a fresh SQLite file; STORES says how each
    # side is set up. TaskFlow takes about a minute for 1,000 tasks: it runs 100.
    Spec("durable_linear", "durable, defaults", (1000,), (100,), 50, group="durable", dbos=(1000,)),
    Spec("durable_full", "durable, FULL", (1000,), (), group="durable"),
    Spec("durable_wal", "durable, WAL", (), (), 50, group="durable", dbos=(1000,)),
    Spec("durable_memory", "durable, in memory", (1000,), (), group="durable"),
]

#: How each side records a durable workload: (workload, side) -> the store it uses.
STORES = {
    ("durable_linear", "tideflow"): "SQLite WAL, synchronous=NORMAL (default)",
    ("durable_full", "tideflow"): "SQLite WAL, synchronous=FULL",
    ("durable_memory", "tideflow"): "memory:// (the same run, not durable)",
    ("durable_linear", "taskflow"): "SQLAlchemy on SQLite (its defaults)",
    ("durable_linear", "dbos"): "SQLite, its default journal (delete)",
    ("durable_wal", "dbos"): "SQLite, journal_mode=WAL",
}


#: How each side runs an executors workload: (workload, side) -> what is measured.
HOW = {
    ("parallel_sleep", "tideflow"): "executor='threads', max_workers=8",
    ("parallel_sleep", "taskflow"): "parallel engine, max_workers=8",
    ("asyncio_sleep32", "tideflow"): (
        "async def tasks, executor='asyncio', max_workers=8: max_workers sizes the thread "
        "pool of plain atoms only, so all N coroutines sleep at once (ideal 50 ms)"
    ),
    ("asyncio_sleep32", "taskflow"): "plain sleeps on its parallel engine, 8 threads (no asyncio)",
    ("asyncio_pool_sleep", "tideflow"): "plain tasks, executor='asyncio', max_workers=8 threads",
    ("asyncio_sleep", "tideflow"): (
        "async def tasks, one unordered flow, await engine.run_async() in a running loop"
    ),
    ("processes_cpu", "tideflow"): (
        "N tasks of ~0.25 s pure-Python CPU, executor='processes' (its own pool, "
        "max_workers = CPUs) vs the serial engine, in turns in one process with the same "
        "work on a plain ProcessPoolExecutor (the machine's limit: see the target's note)"
    ),
    ("dask_unordered", "tideflow"): (
        "LocalCluster, one 1-thread worker process per CPU, started untimed; the flow vs "
        "client.submit() of the same N functions + gather(), in turns in one process"
    ),
}


@dataclass(frozen=True)
class Mode:
    """How hard to measure: repetitions, budgets and timeouts."""

    name: str
    reps: int  # processes per (workload, N, side)
    min_reps: int  # even when one process is slow
    job_budget_s: float  # cut repetitions so one (workload, N, side) stays near this
    inner_budget_s: float  # time a worker may spend repeating the workload
    timeout_s: float


MODES = {
    "full": Mode("full", 5, 3, 60.0, 1.0, 1800.0),
    "quick": Mode("quick", 3, 1, 4.0, 0.3, 300.0),
    "tiny": Mode("tiny", 1, 1, 0.0, 0.0, 300.0),
}


@dataclass
class Cell:
    """The measurements of one workload at one N on one side."""

    status: str = "ok"
    samples: list[dict[str, float]] = field(default_factory=list)
    note: str = ""
    wall_s: list[float] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        """Return the median of ``key`` over the processes, if measured."""
        values = [s[key] for s in self.samples if key in s]
        return statistics.median(values) if values else None


Results = dict[str, dict[int, dict[str, Cell]]]  # workload -> N -> side -> cell


def headline(spec: Spec, cell: Cell) -> float | None:
    """Return the figure a cell is judged by: seconds, or bytes per atom."""
    key = {"floor": "run", "memory": "bytes_per_atom"}.get(spec.name, "total")
    return cell.median(key) if cell.status == "ok" else None


def per_task_us(spec: Spec, cell: Cell | None, n: int) -> float | None:
    """Return the per-task overhead in µs, for time workloads over tasks."""
    if cell is None or spec.kind != "time" or spec.name == "import":
        return None
    value = headline(spec, cell)
    return None if value is None else value / n * 1e6


def ratio(spec: Spec, cells: dict[str, Cell]) -> float | None:
    """Return TaskFlow / tideflow at this N, when both sides measured it."""
    if not spec.compare or not all(side in cells for side in ("tideflow", "taskflow")):
        return None
    ours, theirs = headline(spec, cells["tideflow"]), headline(spec, cells["taskflow"])
    return theirs / ours if ours and theirs else None
