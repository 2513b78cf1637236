"""The Dask executor: atoms run on a Dask cluster, and everything comes back.

One ``LocalCluster`` of two single-threaded worker processes serves the module (it takes
seconds to start). Tasks are defined at the top level of this module, which the
workers import by name (a worker unpickles each atom it runs).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

import tideflow  # noqa: E402
from tideflow import LinearFlow, Task, UnorderedFlow, WrappedFailure  # noqa: E402
from tideflow.errors import InvalidArgumentError  # noqa: E402
from tideflow.executors import resolve_executor  # noqa: E402
from tideflow.executors.dask import INLINE_LIMIT, DaskDispatcher  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A client of a two-worker LocalCluster (worker processes, one thread each)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


def load(flow: Any, client: Any, store: dict[str, Any] | None = None, **options: Any) -> Any:
    return tideflow.load(flow, store=store, engine="parallel", executor=client, **options)


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
        self.notifier.notify("custom", {"k": "v", "pid": os.getpid(), "lock": threading.Lock()})
        return "ok"


class ReturnsLock(Task):
    def execute(self) -> Any:
        return threading.Lock()

    def revert(self, result: Any, **kwargs: Any) -> str:
        return f"undone after {result.exc_type_names[0]}"


class Big(Task):
    def execute(self) -> bytes:
        return b"x" * (4 * INLINE_LIMIT)


class HoldsLock(Task):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.guard = threading.Lock()

    def execute(self) -> None:
        return None


class Sleeps(Task):
    """Returns when it ran (wall clock: the workers are processes of this machine)."""

    def __init__(self, name: str, hold: float) -> None:
        super().__init__(name, provides=name)
        self.hold = hold

    def execute(self) -> tuple[float, float]:
        began = time.time()
        time.sleep(self.hold)
        return began, time.time()


class Waits(Task):
    """Runs until its file appears (or 60 s pass)."""

    def execute(self, where: str) -> str:
        folder = Path(where)
        (folder / "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60.0
        while not (folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "done"


class AsyncAdd(Task):
    async def execute(self, x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 10


def test_a_client_selects_the_dask_executor(client: Any) -> None:
    assert resolve_executor(client) == ("dask", client)


def test_results_come_back_from_the_cluster(client: Any) -> None:
    flow = LinearFlow("f").add(
        Add("a", provides="y"), Add("b", rebind={"x": "y"}, provides="z"), Pid("p", provides="pid")
    )
    engine = load(flow, client, {"x": 1})
    engine.run()
    assert engine.storage.fetch("z") == 3
    assert engine.storage.fetch("pid") != os.getpid()


def test_failure_brings_the_remote_traceback_and_reverts_on_the_cluster(client: Any) -> None:
    engine = load(LinearFlow("f").add(Pid("p"), Raises("r")), client)
    with pytest.raises(ValueError, match="bad value") as caught:
        engine.run()
    assert caught.value.args == ("bad value", 42)
    failure = engine.storage.get_execute_failures()["r"]
    assert failure.check(ValueError)
    assert "raise_here()" in failure.traceback_str  # the worker's frames
    assert 'raise ValueError("bad value", 42)' in failure.traceback_str
    assert engine.storage.get_atom_state("p") == tideflow.AtomState.REVERTED
    assert engine.storage.get_revert_result("p") not in (None, os.getpid())


def test_an_exception_that_cannot_come_back_arrives_as_names_and_message(client: Any) -> None:
    engine = load(LinearFlow("f").add(RaisesUnpicklable("r")), client)
    with pytest.raises(WrappedFailure) as caught:
        engine.run()
    (failure,) = list(caught.value)
    assert failure.exc_type_names[0].endswith("Unpicklable")
    assert failure.exception_str == "held a lock"
    assert 'raise Unpicklable("held a lock")' in failure.traceback_str
    assert failure.exception is None


def test_several_failures_at_once_are_all_reported_and_siblings_reverted(client: Any) -> None:
    flow = UnorderedFlow("f").add(Pid("ok"), Raises("r1"), Raises("r2"))
    engine = load(flow, client)
    with pytest.raises(WrappedFailure) as caught:
        engine.run()
    assert sorted(f.exception_str for f in caught.value) == ["('bad value', 42)"] * 2
    states = {name: engine.storage.get_atom_state(name) for name in ("ok", "r1", "r2")}
    assert set(states.values()) == {tideflow.AtomState.REVERTED}


def test_progress_and_custom_events_are_relayed_before_the_outcome(client: Any) -> None:
    task = Progress("p")
    engine = load(LinearFlow("f").add(task), client)
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
    assert [(e, d.get("progress")) for e, d in task_events] == [
        ("update_progress", 0.0),
        ("update_progress", 0.5),
        ("update_progress", 1.0),
        ("custom", None),
        ("update_progress", 1.0),
    ]
    custom = task_events[3][1]
    assert custom["k"] == "v"
    assert custom["pid"] != os.getpid()  # raised on a worker
    assert custom["lock"].startswith("<unlocked _thread.lock")  # could not travel: its repr
    engine_events = [(event, details) for label, event, details in log if label == "ENGINE"]
    assert ("custom", "p") in [(e, d["task_name"]) for e, d in engine_events]
    assert [d["progress"] for e, d in engine_events if e == "update_progress"] == [0.5, 1.0]
    order = [event for label, event, _ in log if label in ("ATOM", "ENGINE")]
    assert order.index("custom") < order.index("SUCCESS")
    assert engine.storage.get_task_progress("p") == 1.0


def test_a_result_that_cannot_come_back_fails_its_atom(client: Any) -> None:
    engine = load(LinearFlow("f").add(ReturnsLock("lock")), client)
    with pytest.raises(TypeError, match="cannot be sent back from the Dask worker"):
        engine.run()
    assert engine.storage.get_atom_state("lock") == tideflow.AtomState.REVERTED
    assert engine.storage.get_revert_result("lock") == "undone after TypeError"


def test_a_large_result_comes_back_as_the_task_result(client: Any) -> None:
    engine = load(
        LinearFlow("f").add(Big("big", provides="data"), Pid("p", provides="pid")), client
    )
    engine.run()
    assert engine.storage.fetch("data") == b"x" * (4 * INLINE_LIMIT)


def test_an_async_task_is_awaited_on_the_worker(client: Any) -> None:
    # through the dispatcher itself: the engines refuse async def tasks at compile time
    # until the asyncio work lands
    dispatcher = DaskDispatcher(client, max_workers=None, sink=lambda *args: None)
    try:
        dispatcher.start((7, False, AsyncAdd("a"), {"x": 1}))
        outcomes = []
        while dispatcher.in_flight:
            outcomes += dispatcher.wait(30)
    finally:
        dispatcher.close()
    assert outcomes == [(7, False, True, 11)]


def test_an_atom_that_cannot_be_pickled_is_refused_before_anything_runs(client: Any) -> None:
    dispatcher = DaskDispatcher(client, max_workers=None, sink=lambda *args: None)
    try:
        with pytest.raises(InvalidArgumentError, match="atom 'held'"):
            dispatcher.prepare([None, Pid("fine"), HoldsLock("held")])
        with pytest.raises(InvalidArgumentError, match="the value 'guard'"):
            dispatcher.prepare([], {"guard": threading.Lock()})
    finally:
        dispatcher.close()


def test_an_atom_that_cannot_be_sent_is_refused_by_the_run(client: Any) -> None:
    engine = load(LinearFlow("f").add(Pid("p"), HoldsLock("held")), client)
    with pytest.raises(InvalidArgumentError, match="atom 'held' cannot be sent to the Dask"):
        engine.run()
    assert engine.storage.get_atom_state("p") == tideflow.AtomState.PENDING


def test_work_that_cannot_be_sent_fails_its_atom(client: Any) -> None:
    dispatcher = DaskDispatcher(client, max_workers=None, sink=lambda *args: None)
    try:
        dispatcher.start((3, False, Pid("p"), {"thing": threading.Lock()}))
        (outcome,) = dispatcher.wait(30)
    finally:
        dispatcher.close()
    node, reverting, ok, failure = outcome
    assert (node, reverting, ok) == (3, False, False)
    assert failure.check(TypeError)
    assert "atom 'p' could not be sent to the Dask cluster" in failure.exception_str


def test_max_workers_caps_the_calls_on_the_cluster(client: Any) -> None:
    names = [f"s{i}" for i in range(3)]
    engine = load(UnorderedFlow("f").add(*(Sleeps(n, 0.2) for n in names)), client, max_workers=1)
    engine.run()
    spans = sorted(engine.storage.fetch(n) for n in names)
    for (_, end), (began, _) in itertools.pairwise(spans):
        assert began >= end  # one at a time, though two workers are idle


def test_two_engines_share_one_client(client: Any) -> None:
    outcomes: dict[str, Any] = {}

    def run_and_fetch(label: str) -> None:
        flow = UnorderedFlow(label).add(*(Add(f"{label}{i}", provides=f"r{i}") for i in range(20)))
        engine = load(flow, client, {"x": ord(label)})
        engine.run()
        outcomes[label] = engine.storage.fetch_all()

    threads = [threading.Thread(target=run_and_fetch, args=(label,)) for label in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for label in "ab":
        assert {outcomes[label][f"r{i}"] for i in range(20)} == {ord(label) + 1}


def test_closing_leaves_the_client_running_and_cancels_unfinished_calls(
    client: Any, tmp_path: Path
) -> None:
    engine = load(LinearFlow("f").add(Pid("p")), client)
    engine.run()
    assert client.status == "running"
    assert client.submit(sum, [1, 2], pure=False).result(timeout=30) == 3
    # a dispatcher closed with a call in flight cancels that Dask task, not the client
    dispatcher = DaskDispatcher(client, max_workers=None, sink=lambda *args: None)
    dispatcher.start((0, False, Waits("w"), {"where": str(tmp_path)}))
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dispatcher.in_flight == 1
    dispatcher.close()
    assert dispatcher.in_flight == 0
    (tmp_path / "go").write_text("")
    assert client.status == "running"
    assert client.submit(sum, [3, 4], pure=False).result(timeout=30) == 7


def test_the_name_without_a_client_is_refused(client: Any) -> None:
    with pytest.raises(TypeError, match=r"pass executor=distributed\.Client"):
        DaskDispatcher(None, max_workers=None, sink=lambda *args: None)


def test_dask_is_imported_only_when_a_client_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tideflow, tideflow.executors.dask\n"
        "tideflow.run(tideflow.LinearFlow('f'), engine='parallel')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.strip() == "[]"


def test_an_outcome_lost_on_the_way_fails_its_atom_instead_of_hanging(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tideflow.executors import dask as dask_executor

    monkeypatch.setattr(dask_executor, "_OVERDUE", 0.2)
    dispatcher = DaskDispatcher(client, max_workers=None, sink=lambda *args: None)
    handle = dispatcher._handle

    def drop_outcomes(message: list[Any]) -> None:
        if message[1] != "out":
            handle(message)

    monkeypatch.setattr(dispatcher, "_handle", drop_outcomes)
    try:
        dispatcher.start((5, False, Pid("p"), {}))
        outcomes: list[Any] = []
        while dispatcher.in_flight:
            outcomes += dispatcher.wait(30)
    finally:
        dispatcher.close()
    ((node, reverting, ok, failure),) = outcomes
    assert (node, reverting, ok) == (5, False, False)
    assert "the outcome it sent did not arrive within 0.2 s" in failure.exception_str
