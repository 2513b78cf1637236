"""The processes executor: atoms run in worker processes, and everything comes back.

Tasks here are defined at the top level of this module, which the workers import by
name (a worker process unpickles each atom it runs).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tideflow
from tideflow import LinearFlow, Task, UnorderedFlow, WrappedFailure
from tideflow.errors import InvalidArgumentError
from tideflow.executors.processes import ProcessDispatcher


def load(flow: Any, store: dict[str, Any] | None = None, **options: Any) -> tideflow.Engine:
    options.setdefault("max_workers", 2)
    return tideflow.load(flow, store=store, engine="parallel", executor="processes", **options)


class Add(Task):
    def execute(self, x: int) -> int:
        return x + 1


class Pid(Task):
    """Says which process ran it, and which process undid it."""

    def execute(self) -> int:
        return os.getpid()

    def revert(self, **kwargs: Any) -> int:
        return os.getpid()


class Raises(Task):
    def execute(self) -> None:
        raise_here()


def raise_here() -> None:
    raise ValueError("bad value", 42)


class Unpicklable(Exception):
    """An exception whose arguments cannot cross a process boundary."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class RaisesUnpicklable(Task):
    def execute(self) -> None:
        raise Unpicklable("held a lock")


class Progress(Task):
    TASK_EVENTS = (*Task.TASK_EVENTS, "custom")

    def execute(self) -> str:
        self.update_progress(0.5)
        self.update_progress(1.7)  # clamped to 1.0 in the worker
        self.notifier.notify("custom", {"k": "v", "pid": os.getpid()})
        return "ok"


class ReturnsLock(Task):
    def execute(self) -> Any:
        return threading.Lock()

    def revert(self, result: Any, **kwargs: Any) -> str:
        return f"undone after {result.exc_type_names[0]}"


class Uses(Task):
    def execute(self, thing: Any) -> str:
        return "never"


class HoldsLock(Task):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.guard = threading.Lock()

    def execute(self) -> None:
        return None


class Interval(Task):
    """Writes when it started and ended; waits until ``others`` have started too (or not)."""

    def __init__(self, name: str, wait_for: tuple[str, ...] = (), hold: float = 0.0) -> None:
        super().__init__(name, provides=name)
        self.wait_for = wait_for
        self.hold = hold

    def execute(self, where: str) -> tuple[int, float, float, bool]:
        folder = Path(where)
        began = time.monotonic()
        (folder / f"{self.name}.started").write_text(str(os.getpid()))
        met = all(self._seen(folder / f"{other}.started") for other in self.wait_for)
        time.sleep(self.hold)
        return os.getpid(), began, time.monotonic(), met

    @staticmethod
    def _seen(path: Path) -> bool:
        deadline = time.monotonic() + 20.0
        while not path.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


def test_results_come_back_from_another_process() -> None:
    flow = LinearFlow("f").add(
        Add("a", provides="y"), Add("b", rebind={"x": "y"}, provides="z"), Pid("p", provides="pid")
    )
    engine = load(flow, {"x": 1})
    engine.run()
    assert engine.storage.fetch("z") == 3
    assert engine.storage.fetch("pid") != os.getpid()


def test_failure_brings_the_remote_traceback_and_the_original_type() -> None:
    engine = load(LinearFlow("f").add(Pid("p"), Raises("r")))
    with pytest.raises(ValueError, match="bad value") as caught:
        engine.run()
    assert caught.value.args == ("bad value", 42)
    failure = engine.storage.get_execute_failures()["r"]
    assert failure.check(ValueError)
    # the worker's frames, down to the line that raised
    assert "raise_here()" in failure.traceback_str
    assert 'raise ValueError("bad value", 42)' in failure.traceback_str
    assert __file__ in failure.traceback_str
    # the earlier atom was undone in a worker too
    assert engine.storage.get_atom_state("p") == tideflow.AtomState.REVERTED
    assert engine.storage.get_revert_result("p") not in (None, os.getpid())


def test_an_exception_that_cannot_come_back_arrives_as_names_and_message() -> None:
    engine = load(LinearFlow("f").add(RaisesUnpicklable("r")))
    with pytest.raises(WrappedFailure) as caught:
        engine.run()
    (failure,) = list(caught.value)
    assert failure.exc_type_names[0].endswith("Unpicklable")
    assert failure.exception_str == "held a lock"
    assert "RaisesUnpicklable" not in failure.exception_str
    assert 'raise Unpicklable("held a lock")' in failure.traceback_str
    assert failure.exception is None  # nothing of the worker's object is pretended


def test_progress_and_custom_events_reach_engine_listeners() -> None:
    task = Progress("p")
    engine = load(LinearFlow("f").add(task))
    log: list[tuple[str, str, Any]] = []
    lock = threading.Lock()

    def listener(label: str) -> Any:
        def callback(event: str, details: dict[str, Any]) -> None:
            with lock:
                log.append((label, event, details))

        return callback

    engine.atom_notifier.register("*", listener("ATOM"))
    engine.atom_notifier.register("custom", listener("ENGINE"))
    engine.atom_notifier.register("update_progress", listener("ENGINE"))
    task.notifier.register("*", listener("TASK"))
    engine.run()
    task_events = [(event, details) for label, event, details in log if label == "TASK"]
    assert [event for event, _ in task_events] == [
        "update_progress",
        "update_progress",
        "update_progress",
        "custom",
        "update_progress",
    ]
    assert [d.get("progress") for _, d in task_events] == [0.0, 0.5, 1.0, None, 1.0]
    custom = task_events[3][1]
    assert custom["k"] == "v"
    assert custom["pid"] != os.getpid()  # raised in the worker
    engine_events = [(event, details) for label, event, details in log if label == "ENGINE"]
    assert ("custom", "p") in [(e, d["task_name"]) for e, d in engine_events]
    # the engine's own 0.0 and 1.0 marks go to the task's listeners; the worker's to both
    assert [d["progress"] for e, d in engine_events if e == "update_progress"] == [0.5, 1.0]
    # the relayed events came before the atom's SUCCESS
    order = [event for label, event, _ in log if label in ("ATOM", "ENGINE")]
    assert order.index("custom") < order.index("SUCCESS")
    assert engine.storage.get_task_progress("p") == 1.0


def test_events_of_a_revert_come_back() -> None:
    heard: list[float] = []
    task = Progress("p")
    engine = load(LinearFlow("f").add(task, Raises("r")))
    task.notifier.register(
        "update_progress", lambda event, details: heard.append(details["progress"])
    )
    with pytest.raises(ValueError, match="bad value"):
        engine.run()
    assert 0.5 in heard
    assert engine.storage.get_task_progress("p") == 1.0


def test_a_result_that_cannot_be_pickled_fails_its_own_atom() -> None:
    engine = load(LinearFlow("f").add(Pid("before"), ReturnsLock("lock")))
    with pytest.raises(TypeError, match="atom 'lock' returned lock, which cannot be pickled"):
        engine.run()
    failure = engine.storage.get_execute_failures()["lock"]
    assert "its result is lost" in failure.exception_str
    # reverted like any failed atom, told why
    assert engine.storage.get_revert_result("lock") == "undone after TypeError"
    assert engine.storage.get_atom_state("before") == tideflow.AtomState.REVERTED


def test_a_given_value_that_cannot_be_pickled_fails_the_atom_needing_it() -> None:
    engine = load(LinearFlow("f").add(Pid("before"), Uses("uses")), {"thing": threading.Lock()})
    with pytest.raises(TypeError) as caught:
        engine.run()
    message = str(caught.value)
    assert "argument 'thing' (lock) of atom 'uses'" in message
    assert "cannot be pickled" in message
    assert engine.storage.get_atom_state("before") == tideflow.AtomState.REVERTED


def test_an_atom_that_cannot_be_pickled_is_named_before_anything_runs() -> None:
    dispatcher = ProcessDispatcher(None, max_workers=1, sink=lambda *args: None)
    try:
        with pytest.raises(InvalidArgumentError, match=r"atom 'held'.*'guard' \(lock\)"):
            dispatcher.prepare([None, Pid("fine"), HoldsLock("held")])
        functor = tideflow.FunctorTask(lambda: 1, name="lambda")
        with pytest.raises(InvalidArgumentError, match=r"atom 'lambda'.*'_execute' \(function\)"):
            dispatcher.prepare([functor])
        with pytest.raises(InvalidArgumentError, match=r"value 'lock' \(lock\)"):
            dispatcher.prepare([Pid("fine")], {"lock": threading.Lock(), "n": 1})
        dispatcher.prepare([Pid("fine")], {"n": 1})  # fine
    finally:
        dispatcher.close()


def test_a_local_class_is_named_as_the_culprit() -> None:
    class Local(Task):
        def execute(self) -> None:
            return None

    dispatcher = ProcessDispatcher(None, max_workers=1, sink=lambda *args: None)
    try:
        with pytest.raises(InvalidArgumentError, match=r"its class .*Local \(a class must be"):
            dispatcher.prepare([Local("local")])
    finally:
        dispatcher.close()


def test_max_workers_is_respected(tmp_path: Path) -> None:
    flow = UnorderedFlow("f").add(*(Interval(f"t{i}", hold=0.1) for i in range(6)))
    engine = load(flow, {"where": str(tmp_path)}, max_workers=2)
    engine.run()
    spans = [engine.storage.fetch(f"t{i}") for i in range(6)]
    assert len({pid for pid, *_ in spans}) <= 2
    for _, began, _, _ in spans:
        running = sum(1 for _, b, e, _ in spans if b <= began < e)
        assert running <= 2


def test_two_workers_run_at_the_same_time(tmp_path: Path) -> None:
    # each waits until the other has started: only true concurrency lets both see it
    flow = UnorderedFlow("f").add(Interval("a", wait_for=("b",)), Interval("b", wait_for=("a",)))
    engine = load(flow, {"where": str(tmp_path)}, max_workers=2)
    engine.run()
    pid_a, _, _, met_a = engine.storage.fetch("a")
    pid_b, _, _, met_b = engine.storage.fetch("b")
    assert met_a, "a never saw b start"
    assert met_b, "b never saw a start"
    assert pid_a != pid_b


def test_a_user_pool_is_used_as_given_and_left_open() -> None:
    import multiprocessing

    pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        engine = tideflow.load(
            LinearFlow("f").add(Pid("p", provides="pid")), engine="parallel", executor=pool
        )
        engine.run()
        first = engine.storage.fetch("pid")
        engine.run()
        assert engine.storage.fetch("pid") == first  # the same warm worker
        assert pool.submit(os.getpid).result(timeout=30) == first  # not shut down
    finally:
        pool.shutdown()


class FailsFirst(Task):
    """Fails the first time it runs (a marker file remembers), then succeeds."""

    def execute(self, where: str) -> str:
        marker = Path(where) / f"{self.name}.failed"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            raise RuntimeError("first attempt")
        return "second attempt"


def test_a_retry_controller_retries_work_done_in_workers(tmp_path: Path) -> None:
    flow = LinearFlow("f", retry=tideflow.retry.Times(3)).add(
        Pid("before"), FailsFirst("flaky", provides="result")
    )
    engine = load(flow, {"where": str(tmp_path)})
    engine.run()
    assert engine.storage.fetch("result") == "second attempt"
    assert int((tmp_path / "flaky.failed").read_text()) != os.getpid()
    history = engine.storage.get_retry_history(flow.retry.name)
    assert len(history) == 2  # the failed attempt, then the one that succeeded
    ((name, failure),) = history.outcomes_iter(0)
    assert name == "flaky"
    assert failure.check(RuntimeError)
