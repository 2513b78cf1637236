"""Side-neutral helpers and the serial workloads, defined once for both sides.

``side_tideflow`` and ``side_taskflow`` import this module; it never imports
either library, so a worker process holds only the side it measures.
"""

from __future__ import annotations

import math
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

Timings = dict[str, float]  # named durations in seconds, or byte counts for memory
Workload = Callable[[int], Timings]  # one measurement at size N

SLEEP_SECONDS = 0.05
SLEEP_WORKERS = 8
#: The processes workload: pure-Python work of about 0.25 s of CPU per task on this
#: machine's cores (Python 3.11, ~57 ns per loop); workers = the CPUs it has.
CPU_LOOPS = 4_400_000
#: The retry workload: attempts its controller allows, and how many its last task fails.
RETRY_ATTEMPTS = 5
RETRY_FAILURES = 4


class Unavailable(Exception):
    """Raised by a workload that cannot run in this environment (reported as n/a)."""


class Engine(Protocol):
    """What both libraries' engines offer the benchmarks."""

    def compile(self) -> None:
        """Compile the flow."""

    def run(self) -> object:
        """Run the flow."""


@dataclass(frozen=True)
class Side:
    """How one library builds the benchmark flows and loads them into its serial engine."""

    linear: Callable[[int, bool], Any]  # (N, last task fails) -> flow
    unordered: Callable[[int], Any]
    graph_tasks: Callable[[int], list[Any]]  # the seeded random graph's N tasks
    graph_flow: Callable[[list[Any]], Any]  # a graph flow of those tasks (add() infers links)
    serial: Callable[[Any], Engine]
    load: Callable[[Any, dict[str, Any]], Any]  # (flow, store) -> serial engine
    run: Callable[[Any], dict[str, Any]]  # the library's run(flow): runs, returns fetch_all()
    provider: Callable[[tuple[str, ...]], Any]  # one task whose result fills those names
    linear_values: Callable[[int], Any]  # N tasks in a row, each providing one value

    def graph(self, n: int) -> Any:
        """Build the seeded random graph flow of ``n`` tasks."""
        return self.graph_flow(self.graph_tasks(n))


def graph_requirements(n: int) -> list[list[int]]:
    """Return, for each of ``n`` tasks, up to 3 distinct earlier task indexes (seed 42)."""
    rng = random.Random(42)
    return [sorted(rng.sample(range(i), rng.randint(0, min(3, i)))) for i in range(n)]


def ideal_sleeps(n: int, at_once: int) -> float:
    """Return the ideal time of ``n`` 50 ms sleeps, ``at_once`` of them at a time."""
    return math.ceil(n / at_once) * SLEEP_SECONDS


def against_ideal(timings: Timings, n: int, at_once: int) -> Timings:
    """Add the ideal (``baseline``) and ``total`` / ideal (``x``) to a sleeps run's timings."""
    ideal = ideal_sleeps(n, at_once)
    return {**timings, "baseline": ideal, "x": timings["total"] / ideal}


def burn(loops: int = CPU_LOOPS) -> int:
    """Do pure-Python CPU work (holding the GIL throughout); return its checksum."""
    total = 0
    for i in range(loops):
        total += i * i
    return total


def work(i: int) -> int:
    """The unit of work of the Dask comparison: as small as a call can be."""
    return i


def noop() -> None:
    """Do nothing; the unit of work of the plain-loop floor."""


def floor(n: int) -> Timings:
    """Time a plain Python loop calling ``n`` no-op functions."""
    calls = [noop] * n
    start = time.perf_counter()
    for call in calls:
        call()
    return {"run": time.perf_counter() - start}


def build_then_time(
    build: Callable[[], Any], load: Callable[[Any], Engine], expect: type[Exception] | None = None
) -> Timings:
    """Time building a flow, ``load() + compile()`` and ``run()``; ``total`` = the last two.

    With ``expect`` set, ``run()`` must raise that type (after reverting).
    """
    start = time.perf_counter()
    flow = build()
    built = time.perf_counter()
    engine = load(flow)
    engine.compile()
    compiled = time.perf_counter()
    try:
        engine.run()
    except Exception as exc:
        if expect is None or not isinstance(exc, expect):
            raise
    else:
        if expect is not None:
            raise AssertionError(f"run() did not raise {expect.__name__}")
    done = time.perf_counter()
    return {
        "build": built - start,
        "compile": compiled - built,
        "run": done - compiled,
        "total": done - built,
    }


def peak_memory(n: int, build_and_run: Callable[[], object]) -> Timings:
    """Return the tracemalloc peak of building and running ``n`` atoms, per atom."""
    tracemalloc.start()
    try:
        build_and_run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"bytes_per_atom": peak / n, "peak_bytes": float(peak)}


def fetch_all(side: Side, n: int) -> Timings:
    """Time ``storage.fetch_all()`` returning ``n`` values: half stored, half results."""
    start = time.perf_counter()
    stored = n // 2
    names = tuple(f"v{i}" for i in range(stored, n))
    engine = side.load(side.provider(names), {f"v{i}": i for i in range(stored)})
    engine.run()
    ran = time.perf_counter()
    values = engine.storage.fetch_all()
    done = time.perf_counter()
    if len(values) != n:
        raise AssertionError(f"fetch_all() returned {len(values)} values, not {n}")
    return {"build": ran - start, "total": done - ran}


def run_values(side: Side, n: int) -> Timings:
    """Time the library's ``run(flow)`` of ``n`` tasks that each provide a value."""
    start = time.perf_counter()
    flow = side.linear_values(n)
    built = time.perf_counter()
    values = side.run(flow)
    done = time.perf_counter()
    if len(values) != n:
        raise AssertionError(f"run() returned {len(values)} values, not {n}")
    return {"build": built - start, "total": done - built}


def graph_build(side: Side, n: int) -> Timings:
    """Time building the seeded random graph: its tasks (requires=), then ``add()``."""
    start = time.perf_counter()
    tasks = side.graph_tasks(n)
    made = time.perf_counter()
    flow = side.graph_flow(tasks)
    done = time.perf_counter()
    if len(flow) != n:
        raise AssertionError(f"the graph flow holds {len(flow)} nodes, not {n}")
    return {"tasks": made - start, "add": done - made, "total": done - start}


def serial_workloads(side: Side) -> dict[str, Workload]:
    """Return the serial-engine workloads, so both sides measure exactly the same thing."""

    def run(build: Callable[[], Any], expect: type[Exception] | None = None) -> Timings:
        return build_then_time(build, side.serial, expect)

    return {
        "floor": floor,
        "linear": lambda n: run(lambda: side.linear(n, False)),
        "revert": lambda n: run(lambda: side.linear(n, True), RuntimeError),
        "unordered": lambda n: run(lambda: side.unordered(n)),
        "graph": lambda n: run(lambda: side.graph(n)),
        "memory": lambda n: peak_memory(n, lambda: side.serial(side.linear(n, False)).run()),
        "fetch_all": lambda n: fetch_all(side, n),
        "run_values": lambda n: run_values(side, n),
        "graph_build": lambda n: graph_build(side, n),
    }
