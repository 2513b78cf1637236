"""Flow factories for the crash suite and the fault tests, importable by name
(``crash_flows.<factory>``).

Every task appends to a *ledger* file, one line per event, each line written with
``O_APPEND`` and fsynced before the task goes on, so the ledger keeps every line
written before a SIGKILL::

    exec-start NAME [NOTE]
    exec-end NAME [NOTE]
    revert-start NAME
    revert-end NAME

Tasks sleep a little (a few milliseconds, drawn from the trial's seed, the atom's
name and how many times it ran in this process) between start and end, so kills land
in the middle of steps as well as between them. The factories take the ledger path
and the seed as keyword arguments: ``load_from_factory`` records them, and
``tideflow.resume`` rebuilds the very same flow from the record.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

from tideflow import GraphFlow, LinearFlow, Task, Times, UnorderedFlow

__all__ = [
    "FAIL_FIRST",
    "FLOWS",
    "Boom",
    "Flaky",
    "cut_midway",
    "failing",
    "gated",
    "graph",
    "linear",
    "padded",
    "parallel",
    "retrying",
    "write_event",
]

#: How many attempts of the flaky task fail before one succeeds.
FAIL_FIRST = 2
#: Longest pause inside a step, in seconds.
MAX_PAUSE = 0.008

_COUNTS: dict[tuple[str, str], int] = {}
_COUNT_LOCK = threading.Lock()


def write_event(ledger: str, line: str) -> None:
    """Append one line to the ledger and make it durable before returning."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Boom(Exception):
    """What the last task of the failing flow raises."""


class Flaky(Exception):
    """What the flaky task raises on its first FAIL_FIRST attempts."""


class Step(Task):
    """Writes its execute and revert to the ledger, pausing in between.

    Its result is its name applied to what it required, e.g. ``"t2(t1(t0))"``, so the
    final values show that each task saw what its predecessors returned.
    """

    def __init__(
        self,
        name: str,
        ledger: str,
        seed: int,
        requires: list[str] | None = None,
        provides: str | None = None,
    ) -> None:
        super().__init__(name, provides=provides or name, requires=requires)
        self.ledger = ledger
        self.seed = seed

    def _pause(self, step: str) -> None:
        with _COUNT_LOCK:
            key = (self.name, step)
            count = _COUNTS[key] = _COUNTS.get(key, 0) + 1
        rng = random.Random(f"{self.seed}:{self.name}:{step}:{count}")
        time.sleep(rng.uniform(0.0, MAX_PAUSE))

    def _value(self, kwargs: dict[str, Any]) -> str:
        inner = ",".join(str(kwargs[k]) for k in sorted(kwargs))
        return f"{self.name}({inner})" if inner else self.name

    def execute(self, **kwargs: Any) -> Any:
        write_event(self.ledger, f"exec-start {self.name}")
        self._pause("execute")
        value = self._value(kwargs)
        write_event(self.ledger, f"exec-end {self.name}")
        return value

    def revert(self, *args: Any, **kwargs: Any) -> None:
        write_event(self.ledger, f"revert-start {self.name}")
        self._pause("revert")
        write_event(self.ledger, f"revert-end {self.name}")


class BoomStep(Step):
    """Fails after its pause: the failing flow's last task."""

    def execute(self, **kwargs: Any) -> Any:
        write_event(self.ledger, f"exec-start {self.name}")
        self._pause("execute")
        write_event(self.ledger, f"exec-end {self.name} failed")
        raise Boom(f"{self.name} failed at the end")


class FlakyStep(Step):
    """Fails its first FAIL_FIRST attempts (the attempt number comes from the controller)."""

    def execute(self, **kwargs: Any) -> Any:
        attempt = kwargs["attempt"]
        write_event(self.ledger, f"exec-start {self.name} {attempt}")
        self._pause("execute")
        if attempt <= FAIL_FIRST:
            write_event(self.ledger, f"exec-end {self.name} {attempt} failed")
            raise Flaky(f"{self.name} failed attempt {attempt}")
        write_event(self.ledger, f"exec-end {self.name} {attempt}")
        return f"{self.name}@{attempt}"


def linear(ledger: str, seed: int) -> LinearFlow:
    """Six tasks in a chain; each requires the previous one's result."""
    flow = LinearFlow("faults-linear")
    for i in range(6):
        flow.add(Step(f"t{i}", ledger, seed, requires=[f"t{i - 1}"] if i else None))
    return flow


def graph(ledger: str, seed: int) -> GraphFlow:
    """A root, three branches (two of two tasks, one of one) and a join of all of them."""
    flow = GraphFlow("faults-graph")
    flow.add(
        Step("root", ledger, seed),
        Step("a1", ledger, seed, requires=["root"]),
        Step("a2", ledger, seed, requires=["a1"]),
        Step("b1", ledger, seed, requires=["root"]),
        Step("b2", ledger, seed, requires=["b1"]),
        Step("c1", ledger, seed, requires=["root"]),
        Step("join", ledger, seed, requires=["a2", "b2", "c1"]),
    )
    return flow


def parallel(ledger: str, seed: int) -> UnorderedFlow:
    """Eight independent tasks (run on the parallel engine, on threads)."""
    flow = UnorderedFlow("faults-parallel")
    for i in range(8):
        flow.add(Step(f"p{i}", ledger, seed))
    return flow


def retrying(ledger: str, seed: int) -> LinearFlow:
    """A task, a subflow under Times(4) whose middle task fails twice, and a last task."""
    attempts = LinearFlow("faults-attempts", retry=Times(4, name="times", provides="attempt"))
    attempts.add(
        Step("before", ledger, seed, requires=["first"]),
        FlakyStep("flaky", ledger, seed, requires=["attempt", "before"]),
        Step("after", ledger, seed, requires=["flaky"]),
    )
    flow = LinearFlow("faults-retry")
    flow.add(Step("first", ledger, seed), attempts, Step("last", ledger, seed, requires=["after"]))
    return flow


def failing(ledger: str, seed: int) -> LinearFlow:
    """Five tasks in a chain, then one that raises Boom: the run reverts all six."""
    flow = LinearFlow("faults-failing")
    for i in range(5):
        flow.add(Step(f"f{i}", ledger, seed, requires=[f"f{i - 1}"] if i else None))
    flow.add(BoomStep("boom", ledger, seed, requires=["f4"]))
    return flow


class Gate(Step):
    """Waits, inside its execute, until the file ``<ledger>.go`` exists (at most 60 s)."""

    def execute(self, **kwargs: Any) -> Any:
        write_event(self.ledger, f"exec-start {self.name}")
        deadline = time.monotonic() + 60.0
        while not os.path.exists(self.ledger + ".go") and time.monotonic() < deadline:
            time.sleep(0.005)
        value = self._value(kwargs)
        write_event(self.ledger, f"exec-end {self.name}")
        return value


def gated(ledger: str, seed: int) -> LinearFlow:
    """A task, a Gate that waits for ``<ledger>.go``, a task after it."""
    flow = LinearFlow("faults-gated")
    flow.add(
        Step("g0", ledger, seed),
        Gate("gate", ledger, seed, requires=["g0"]),
        Step("g2", ledger, seed, requires=["gate"]),
    )
    return flow


class Padded(Step):
    """Returns its name padded to ``size`` characters: results that make a store grow."""

    size = 3000

    def execute(self, **kwargs: Any) -> Any:
        super().execute(**kwargs)
        return self.name.ljust(self.size, ".")


def padded(ledger: str, seed: int) -> LinearFlow:
    """Eight tasks in a chain, each returning 3,000 characters."""
    flow = LinearFlow("faults-padded")
    for i in range(8):
        flow.add(Padded(f"d{i}", ledger, seed, requires=[f"d{i - 1}"] if i else None))
    return flow


class Cut(Step):
    """On its first execution, calls ``cut()`` (which drops the store's connections),
    then pauses 0.3 s (the engine's next commit meets the dropped connection)."""

    def __init__(self, name: str, ledger: str, seed: int, cut: str, **kwargs: Any) -> None:
        super().__init__(name, ledger, seed, **kwargs)
        self.cut = cut

    def execute(self, **kwargs: Any) -> Any:
        write_event(self.ledger, f"exec-start {self.name}")
        marker = self.ledger + ".cut"
        if not os.path.exists(marker):
            write_event(marker, "cut")
            module, _, function = self.cut.rpartition(".")
            getattr(__import__(module), function)(self.ledger)
        time.sleep(0.3)
        value = self._value(kwargs)
        write_event(self.ledger, f"exec-end {self.name}")
        return value


def cut_midway(ledger: str, seed: int, cut: str) -> LinearFlow:
    """Two tasks, a Cut calling the function named ``cut`` ("module.function"), two more."""
    flow = LinearFlow("faults-cut")
    flow.add(
        Step("c0", ledger, seed),
        Step("c1", ledger, seed, requires=["c0"]),
        Cut("cut", ledger, seed, cut, requires=["c1"]),
        Step("c3", ledger, seed, requires=["cut"]),
        Step("c4", ledger, seed, requires=["c3"]),
    )
    return flow


#: flow kind -> (factory, engine options)
FLOWS: dict[str, tuple[Any, dict[str, Any]]] = {
    "linear": (linear, {}),
    "graph": (graph, {"engine": "parallel", "max_workers": 3}),
    "parallel": (parallel, {"engine": "parallel", "max_workers": 4}),
    "retry": (retrying, {}),
    "failing": (failing, {}),
}
