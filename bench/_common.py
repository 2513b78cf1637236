"""Side-neutral helpers and the serial workloads, defined once for both sides.

``side_tideflow`` and ``side_taskflow`` import this module; it never imports
either library, so a worker process holds only the side it measures.
"""

from __future__ import annotations

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
    graph: Callable[[int], Any]
    serial: Callable[[Any], Engine]


def graph_requirements(n: int) -> list[list[int]]:
    """Return, for each of ``n`` tasks, up to 3 distinct earlier task indexes (seed 42)."""
    rng = random.Random(42)
    return [sorted(rng.sample(range(i), rng.randint(0, min(3, i)))) for i in range(n)]


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
    }
