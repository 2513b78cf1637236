"""``async def`` tasks under a plain ``run()``: the serial engine, threads and asyncio.

Each test runs on the three ways a coroutine atom is driven in a synchronous run: the
serial engine (on its run's loop thread), the threads executor (a worker waits while
the run's loop runs it) and the asyncio executor (a task on the run's loop, no thread
held). Results, failures with async reverts, progress and custom events, retries with
back-off, suspend() from inside an async task, and no coroutine ever left unawaited.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import warnings
from typing import Any

import pytest

import tideflow
from tideflow import LinearFlow, Task, UnorderedFlow, retry

KINDS: dict[str, dict[str, Any]] = {
    "serial": {"engine": "serial"},
    "threads": {"engine": "parallel", "executor": "threads", "max_workers": 4},
    "asyncio": {"engine": "parallel", "executor": "asyncio", "max_workers": 4},
}


@pytest.fixture(params=sorted(KINDS))
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The load() options of one way of running coroutine atoms."""
    return dict(KINDS[request.param])


class Log:
    """A thread-safe list of what tasks did, and on which thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []
        self.threads: dict[str, str] = {}

    def add(self, what: str, name: str) -> None:
        with self._lock:
            self.entries.append((what, name))
            self.threads[f"{what}:{name}"] = threading.current_thread().name

    def names(self, what: str) -> list[str]:
        return [name for w, name in self.entries if w == what]


class Sleeper(Task):
    """Awaits a sleep, then returns its input plus one; reverts by awaiting too."""

    def __init__(self, name: str, log: Log, delay: float = 0.0, fail: bool = False, **kw: Any):
        super().__init__(name, **kw)
        self.log = log
        self.delay = delay
        self.fail = fail

    async def execute(self, x: int = 0) -> int:
        await asyncio.sleep(self.delay)
        asyncio.get_running_loop()  # a real loop is running this
        self.log.add("execute", self.name)
        if self.fail:
            raise ValueError(f"{self.name} failed")
        return x + 1

    async def revert(self, result: Any, **kwargs: Any) -> str:
        await asyncio.sleep(0)
        self.log.add("revert", self.name)
        return f"undone {self.name}"


class Plain(Task):
    def __init__(self, name: str, log: Log, **kw: Any):
        super().__init__(name, **kw)
        self.log = log

    def execute(self, x: int = 0) -> int:
        self.log.add("execute", self.name)
        return x * 10

    def revert(self, result: Any, **kwargs: Any) -> None:
        self.log.add("revert", self.name)


def test_results_of_async_tasks_feed_later_tasks(options: dict[str, Any]) -> None:
    log = Log()
    flow = LinearFlow("f").add(
        Sleeper("a", log, provides="y"),
        Sleeper("b", log, provides="z", rebind={"x": "y"}),
        Plain("c", log, provides="w", rebind={"x": "z"}),
    )
    values = tideflow.run(flow, store={"x": 1}, **options)
    assert (values["y"], values["z"], values["w"]) == (2, 3, 30)
    assert log.names("execute") == ["a", "b", "c"]
    # coroutines ran on an event loop's thread, never on the engine (main) thread
    assert log.threads["execute:a"] != threading.main_thread().name
    assert log.threads["execute:c"] != "tideflow-loop"  # plain atoms never on the loop


def test_async_tasks_run_at_once_on_asyncio(options: dict[str, Any]) -> None:
    log = Log()
    flow = UnorderedFlow("u").add(*(Sleeper(f"t{i}", log, delay=0.1) for i in range(8)))
    began = time.perf_counter()
    tideflow.run(flow, **options)
    took = time.perf_counter() - began
    assert sorted(log.names("execute")) == [f"t{i}" for i in range(8)]
    if options["engine"] == "serial":
        assert took >= 0.8  # one at a time
    else:
        assert took < 0.6  # side by side (4 workers: two waves on threads)


def test_failure_reverts_with_async_revert(options: dict[str, Any]) -> None:
    log = Log()
    flow = LinearFlow("f").add(
        Sleeper("a", log, delay=0.01),
        Plain("p", log),
        Sleeper("b", log, fail=True),
        Sleeper("never", log),
    )
    engine = tideflow.load(flow, **options)
    with pytest.raises(ValueError, match=r"^b failed$"):
        engine.run()
    assert log.names("execute") == ["a", "p", "b"]
    assert log.names("revert") == ["b", "p", "a"]
    states = {n: str(engine.storage.get_atom_state(n)) for n in ("a", "p", "b", "never")}
    assert states == {"a": "REVERTED", "p": "REVERTED", "b": "REVERTED", "never": "PENDING"}
    assert engine.storage.get_revert_result("a") == "undone a"
    assert str(engine.storage.get_flow_state()) == "REVERTED"


def test_several_async_failures_are_wrapped_and_siblings_reverted(
    options: dict[str, Any],
) -> None:
    if options["engine"] == "serial":
        pytest.skip("the serial engine stops at the first failure")
    log = Log()
    flow = UnorderedFlow("u").add(
        Sleeper("bad1", log, delay=0.05, fail=True),
        Sleeper("bad2", log, delay=0.05, fail=True),
        Sleeper("good", log, delay=0.01),
    )
    with pytest.raises(tideflow.WrappedFailure) as caught:
        tideflow.run(flow, **options)
    assert sorted(str(f.exception) for f in caught.value) == ["bad1 failed", "bad2 failed"]
    assert sorted(log.names("revert")) == ["bad1", "bad2", "good"]


class Reporter(Task):
    TASK_EVENTS = (*Task.TASK_EVENTS, "halfway")

    async def execute(self) -> str:
        await asyncio.sleep(0)
        self.update_progress(0.5)
        self.notifier.notify("halfway", {"where": "loop"})
        await asyncio.sleep(0)
        return "ok"


def test_progress_and_events_from_async_tasks(options: dict[str, Any]) -> None:
    task = Reporter("r")
    engine = tideflow.load(LinearFlow("f").add(task), **options)
    heard: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def listener(event: str, details: Any) -> None:
        with lock:
            heard.append((event, details.get("progress", details.get("where"))))

    engine.atom_notifier.register("halfway", listener)
    engine.atom_notifier.register("update_progress", listener)
    own: list[tuple[str, Any]] = []
    task.notifier.register("halfway", lambda event, details: own.append((event, details)))
    engine.run()
    assert ("update_progress", 0.5) in heard
    assert ("halfway", "loop") in heard
    assert own == [("halfway", {"where": "loop"})]
    assert engine.storage.get_task_progress("r") == 1.0


class Flaky(Task):
    """Fails its first ``failures`` attempts, awaiting before each."""

    def __init__(self, name: str, failures: int, log: Log):
        super().__init__(name, provides="n")
        self.failures = failures
        self.log = log
        self.times: list[float] = []

    async def execute(self) -> int:
        await asyncio.sleep(0)
        self.times.append(time.monotonic())
        self.log.add("execute", self.name)
        if len(self.times) <= self.failures:
            raise ConnectionError(f"attempt {len(self.times)}")
        return len(self.times)

    async def revert(self, result: Any, **kwargs: Any) -> None:
        self.log.add("revert", self.name)


def test_retries_with_backoff(options: dict[str, Any]) -> None:
    log = Log()
    flaky = Flaky("flaky", 2, log)
    controller = retry.Times(4, name="r", backoff=retry.FixedBackoff(0.1))
    flow = LinearFlow("f", retry=controller).add(flaky)
    values = tideflow.run(flow, **options)
    assert values["n"] == 3
    assert log.names("execute") == ["flaky"] * 3
    assert log.names("revert") == ["flaky"] * 2  # each failed attempt undone
    gaps = [b - a for a, b in itertools.pairwise(flaky.times)]
    assert all(gap >= 0.09 for gap in gaps), gaps


def test_suspend_from_inside_an_async_task(options: dict[str, Any]) -> None:
    log = Log()
    holder: dict[str, tideflow.Engine] = {}

    class Stopper(Task):
        async def execute(self) -> None:
            await asyncio.sleep(0)
            holder["engine"].suspend()
            log.add("execute", self.name)

    flow = LinearFlow("f").add(Sleeper("a", log), Stopper("stop"), Sleeper("c", log))
    engine = tideflow.load(flow, **options)
    holder["engine"] = engine
    engine.run()
    assert str(engine.storage.get_flow_state()) == "SUSPENDED"
    assert log.names("execute") == ["a", "stop"]
    assert str(engine.storage.get_atom_state("stop")) == "SUCCESS"
    engine.run()
    assert str(engine.storage.get_flow_state()) == "SUCCESS"
    assert log.names("execute") == ["a", "stop", "c"]


def test_async_functor_task(options: dict[str, Any]) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    flow = LinearFlow("f").add(tideflow.FunctorTask(double, name="d", provides="y"))
    assert tideflow.run(flow, store={"x": 21}, **options)["y"] == 42


def test_hooks_run_around_the_await(options: dict[str, Any]) -> None:
    order: list[str] = []

    class Hooked(Task):
        def pre_execute(self) -> None:
            order.append("pre")

        async def execute(self) -> None:
            order.append("start")
            await asyncio.sleep(0.01)
            order.append("end")

        def post_execute(self) -> None:
            order.append("post")

    tideflow.run(Hooked("h"), **options)
    assert order == ["pre", "start", "end", "post"]


def test_no_coroutine_is_left_unawaited(options: dict[str, Any]) -> None:
    log = Log()
    flow = LinearFlow("f").add(Sleeper("a", log), Sleeper("b", log, fail=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="b failed"):
            tideflow.run(flow, **options)
        gc.collect()  # an unawaited coroutine would warn as it is collected


def test_generators_are_still_refused(options: dict[str, Any]) -> None:
    class AsyncGen(Task):
        async def execute(self) -> Any:
            yield 1

    with pytest.raises(tideflow.CompilationError, match=r"an async generator function"):
        tideflow.load(AsyncGen("g"), **options).run()


def test_plain_function_returning_a_coroutine_is_refused(options: dict[str, Any]) -> None:
    async def later() -> int:
        return 1

    def forgot() -> Any:  # a plain def that hands back a coroutine: a forgotten await
        return later()

    task = tideflow.FunctorTask(forgot, name="forgot")
    with pytest.raises(TypeError, match=r"returned coroutine object.*not an async def"):
        tideflow.run(task, **options)


def test_each_run_loop_thread_is_stopped(options: dict[str, Any]) -> None:
    log = Log()
    before = {t.ident for t in threading.enumerate() if t.name == "tideflow-loop"}
    for _ in range(3):
        tideflow.run(LinearFlow("f").add(Sleeper("a", log)), **options)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        alive = {t.ident for t in threading.enumerate() if t.name == "tideflow-loop"} - before
        if not alive:
            break
        time.sleep(0.01)
    assert not alive


class PicklingExecutor:
    """Anything with submit() that sends the call elsewhere: here, a pickle round trip."""

    def submit(self, fn: Any, *args: Any) -> Any:
        import concurrent.futures as cf
        import pickle

        fn, args = pickle.loads(pickle.dumps((fn, args)))
        future: cf.Future[Any] = cf.Future()
        future.set_result(fn(*args))
        return future


class Doubler(Task):
    async def execute(self, x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x


def test_an_executor_that_pickles_its_calls_gets_nothing_of_the_dispatcher() -> None:
    flow = LinearFlow("f").add(Doubler("d", provides="y"))
    values = tideflow.run(flow, store={"x": 4}, engine="parallel", executor=PicklingExecutor())
    assert values["y"] == 8
