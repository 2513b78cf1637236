"""``await engine.run_async()`` / ``await tideflow.run_async(...)`` inside a running loop.

The loop is never blocked (a ticker keeps ticking while 1,000 async tasks run), async
atoms run on the caller's loop, synchronous ones off it, failures and suspension read
as in ``run()``, and cancelling the awaiting task suspends the run cleanly so that a
later run finishes it without running again anything that had finished.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

import tideflow
from tideflow import LinearFlow, Task, UnorderedFlow


class Nap(Task):
    """Awaits ``delay`` seconds and counts its runs (in this process)."""

    def __init__(self, name: str, runs: dict[str, int], delay: float = 0.05, **kw: Any):
        super().__init__(name, **kw)
        self.runs = runs
        self.delay = delay

    async def execute(self) -> str:
        await asyncio.sleep(self.delay)
        self.runs[self.name] = self.runs.get(self.name, 0) + 1
        return self.name


def test_the_loop_keeps_ticking_while_1000_async_tasks_run() -> None:
    runs: dict[str, int] = {}
    flow = UnorderedFlow("many").add(*(Nap(f"t{i}", runs, provides=f"r{i}") for i in range(1000)))

    async def main() -> tuple[list[float], float]:
        ticks: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        began = time.perf_counter()
        values = await tideflow.run_async(flow)
        took = time.perf_counter() - began
        stop.set()
        await ticking
        assert len(values) == 1000
        return [t for t in ticks if t >= began and t <= began + took], took

    ticks, took = asyncio.run(main())
    # 1,000 sleeps of 50 ms side by side, not one after another (50 s). A quiet machine
    # takes ~0.09 s with ticks at most ~30 ms apart; the bounds leave room for a full
    # test run's load on 2 cores (1.0 s and 0.2 s failed there once)
    assert took < 5.0
    assert sorted(runs) == sorted(f"t{i}" for i in range(1000))
    assert set(runs.values()) == {1}
    # the ticker ran all along: ticks every 10 ms asked, no long silence
    assert len(ticks) >= max(2, int(took / 0.1))
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.5, max(gaps)


@pytest.mark.parametrize(
    "options",
    [
        {"engine": "serial"},
        {"engine": "parallel", "executor": "threads"},
        {"engine": "parallel", "executor": "asyncio"},
    ],
    ids=["serial", "threads", "asyncio"],
)
def test_async_atoms_run_on_the_callers_loop_and_plain_ones_off_it(
    options: dict[str, Any],
) -> None:
    seen: dict[str, Any] = {}

    class OnLoop(Task):
        async def execute(self) -> int:
            seen["loop"] = asyncio.get_running_loop()
            return 1

    class OffLoop(Task):
        def execute(self, x: int) -> int:
            seen["thread"] = threading.current_thread()
            return x + 1

    async def main() -> dict[str, Any]:
        seen["caller"] = asyncio.get_running_loop()
        seen["caller_thread"] = threading.current_thread()
        engine = tideflow.load(
            LinearFlow("f").add(OnLoop("a", provides="x"), OffLoop("b", provides="y")),
            **options,
        )
        await engine.run_async()
        return engine.storage.fetch_all()

    values = asyncio.run(main())
    assert values == {"x": 1, "y": 2}
    assert seen["loop"] is seen["caller"]
    assert seen["thread"] is not seen["caller_thread"]


def test_run_async_raises_what_failed_after_reverting() -> None:
    reverted: list[str] = []

    class Undo(Task):
        async def execute(self) -> None:
            await asyncio.sleep(0)

        async def revert(self, result: Any, **kwargs: Any) -> None:
            await asyncio.sleep(0)
            reverted.append(self.name)

    class Boom(Task):
        async def execute(self) -> None:
            await asyncio.sleep(0.01)
            raise KeyError("boom")

    async def main() -> tideflow.Engine:
        engine = tideflow.load(
            LinearFlow("f").add(Undo("a"), Undo("b"), Boom("c")),
            engine="parallel",
            executor="asyncio",
        )
        with pytest.raises(KeyError, match="boom"):
            await engine.run_async()
        return engine

    engine = asyncio.run(main())
    assert reverted == ["b", "a"]
    assert str(engine.storage.get_flow_state()) == "REVERTED"


def test_cancelling_the_awaiting_task_suspends_and_a_later_run_finishes() -> None:
    runs: dict[str, int] = {}
    names = [f"s{i}" for i in range(10)]
    flow = LinearFlow("steps").add(*(Nap(name, runs, delay=0.03) for name in names))
    engine = tideflow.load(flow, engine="parallel", executor="asyncio")

    async def first() -> None:
        running = asyncio.create_task(engine.run_async())
        while len(runs) < 3:
            await asyncio.sleep(0.005)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(first())
    storage = engine.storage
    assert str(storage.get_flow_state()) == "SUSPENDED"
    done = [n for n in names if str(storage.get_atom_state(n)) == "SUCCESS"]
    # what finished is recorded (the atom running at the cancel too), nothing after it
    assert done == names[: len(done)]
    assert 3 <= len(done) < len(names)
    assert sorted(runs) == done
    assert all(str(storage.get_atom_state(n)) == "PENDING" for n in names[len(done) :])
    # nothing was reverted, and nothing is marked for reverting
    assert not any(str(storage.get_atom_state(n)).startswith("REVERT") for n in names)

    async def second() -> None:
        await engine.run_async()

    asyncio.run(second())
    assert str(storage.get_flow_state()) == "SUCCESS"
    assert runs == dict.fromkeys(names, 1)  # nothing that had finished ran again


def test_a_cancelled_run_resumes_from_its_record() -> None:
    runs: dict[str, int] = {}
    names = [f"s{i}" for i in range(6)]
    backend = tideflow.connect("memory://")
    flow = LinearFlow("steps").add(*(Nap(name, runs, delay=0.03) for name in names))
    engine = tideflow.load(flow, engine="parallel", executor="asyncio", backend=backend)

    async def first() -> None:
        running = asyncio.create_task(engine.run_async())
        while len(runs) < 2:
            await asyncio.sleep(0.005)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(first())
    finished = dict(runs)
    # a second engine over the same record finishes the flow
    again = tideflow.load(
        LinearFlow("steps").add(*(Nap(name, runs, delay=0.0) for name in names)),
        engine="parallel",
        executor="asyncio",
        backend=backend,
        flow_detail=engine.storage._flow_detail,
    )

    async def second() -> None:
        await again.run_async()

    asyncio.run(second())
    assert str(again.storage.get_flow_state()) == "SUCCESS"
    assert runs == dict.fromkeys(names, 1)
    assert set(finished) <= set(names)


def test_suspend_from_inside_an_async_task_under_run_async() -> None:
    runs: dict[str, int] = {}
    holder: dict[str, tideflow.Engine] = {}

    class Stopper(Task):
        async def execute(self) -> None:
            holder["engine"].suspend()

    flow = LinearFlow("f").add(Nap("a", runs, 0.0), Stopper("stop"), Nap("c", runs, 0.0))
    engine = tideflow.load(flow, engine="parallel", executor="asyncio")
    holder["engine"] = engine

    async def main() -> list[str]:
        await engine.run_async()
        states = [str(engine.storage.get_flow_state())]
        await engine.run_async()
        states.append(str(engine.storage.get_flow_state()))
        return states

    assert asyncio.run(main()) == ["SUSPENDED", "SUCCESS"]
    assert runs == {"a": 1, "c": 1}


def test_run_async_defaults_to_the_asyncio_executor_and_honours_an_engine() -> None:
    runs: dict[str, int] = {}

    async def main() -> tuple[float, float]:
        flow = UnorderedFlow("u").add(*(Nap(f"p{i}", runs, 0.05) for i in range(10)))
        began = time.perf_counter()
        await tideflow.run_async(flow)
        side_by_side = time.perf_counter() - began
        flow = UnorderedFlow("v").add(*(Nap(f"q{i}", runs, 0.05) for i in range(10)))
        began = time.perf_counter()
        await tideflow.run_async(flow, engine="serial")
        one_by_one = time.perf_counter() - began
        return side_by_side, one_by_one

    side_by_side, one_by_one = asyncio.run(main())
    assert side_by_side < 0.3
    assert one_by_one >= 0.5


def test_a_flow_run_synchronously_inside_an_async_atom_does_not_wait_for_itself() -> None:
    class Nested(Task):
        async def execute(self) -> int:
            inner = LinearFlow("inner").add(tideflow.FunctorTask(_async_one, provides="one"))
            # blocks this loop for a moment (a synchronous run), but must not deadlock
            return int(tideflow.run(inner)["one"])

    async def main() -> dict[str, Any]:
        return await tideflow.run_async(Nested("n", provides="n"))

    assert asyncio.run(asyncio.wait_for(main(), timeout=10))["n"] == 1


async def _async_one() -> int:
    await asyncio.sleep(0)
    return 1


def test_a_run_cancelled_before_it_began_starts_suspended_and_runs_later() -> None:
    runs: dict[str, int] = {}
    names = [f"s{i}" for i in range(3)]
    engine = tideflow.load(
        LinearFlow("steps").add(*(Nap(name, runs, delay=0.0) for name in names)),
        engine="parallel",
        executor="asyncio",
    )

    async def cancelled_at_once() -> None:
        running = asyncio.create_task(engine.run_async())
        await asyncio.sleep(0)  # it starts its thread, then is cancelled
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(cancelled_at_once())
    # the run had not begun (PENDING), or began suspended, or the first atom was already
    # running (on this loop) when the cancel came: it finished, and nothing else ran
    state = str(engine.storage.get_flow_state())
    assert state in ("PENDING", "SUSPENDED")
    assert set(runs) <= {"s0"}
    if runs:
        assert state == "SUSPENDED"
        assert str(engine.storage.get_atom_state("s0")) == "SUCCESS"

    async def again() -> None:
        await engine.run_async()

    asyncio.run(again())
    assert str(engine.storage.get_flow_state()) == "SUCCESS"
    assert runs == dict.fromkeys(names, 1)
