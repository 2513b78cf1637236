"""Whatever fails after atoms ran, the run reverts every one of them, once (issue 6, item 1).

Each way of failing is tried in a linear flow and in a graph flow with a parallel
branch, on the serial and the parallel engine: a task's exception, an argument that
cannot be bound (a result shorter than its ``provides``, a missing key, ``None``,
something that cannot be indexed), a decider that raises, a coroutine handed back,
a misuse of the task API inside execute, a hook that raises. Each run ends REVERTED,
with every atom whose execute was called reverted exactly once, after everything
that depended on it, and ``run()`` raising the original error. Running the flow
again behaves the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from engine_support import Journal, Recorder

import tideflow
from tideflow import GraphFlow, LinearFlow, UnorderedFlow


class Way(NamedTuple):
    """One way to fail: a failing atom's options, the error and the message run() raises."""

    id: str
    producer_value: Any  # what 'producer' returns (it provides ('a', 'b'))
    failing: dict[str, Any]  # options of the 'failing' Recorder
    error: type[BaseException]
    match: str
    failing_executes: bool  # whether failing's execute is called at all


async def _later() -> int:
    return 1


def _bad_progress(task: Recorder) -> None:
    task.update_progress("half")


WAYS = [
    Way("task-raises", (1, 2), {"fail": RuntimeError("boom")}, RuntimeError, "boom", True),
    Way("tuple-too-short", (1,), {"requires": ["b"]}, tideflow.NotFoundError,
        r"'failing' needs 'b', expected at index 1 of the result of 'producer'", False),
    Way("not-indexable", 5, {"requires": ["b"]}, tideflow.NotFoundError,
        r"'failing' needs 'b'.*but that result is 5", False),
    Way("none-result", None, {"requires": ["a"]}, tideflow.NotFoundError,
        r"'failing' needs 'a'.*but that result is None", False),
    Way("coroutine-returned", (1, 2), {"compute": lambda **kw: _later()}, TypeError,
        r"atom 'failing': execute\(\) returned coroutine object", True),
    Way("bad-progress", (1, 2), {"on_execute": _bad_progress}, TypeError,
        r"task 'failing': update_progress\(\) takes a number", True),
]  # fmt: skip


def _linear(make: Callable[..., Recorder], way: Way) -> tideflow.Flow:
    return LinearFlow("linear").add(
        make("first"),
        make("producer", value=way.producer_value, provides=("a", "b")),
        make("failing", **way.failing),
        make("never"),
    )


def _graph(make: Callable[..., Recorder], way: Way) -> tideflow.Flow:
    # first -> producer -> failing -> never, and a side branch first -> side that runs
    # beside them; everything that ran must be undone, side included
    flow = GraphFlow("graph")
    first = make("first", provides="f")
    producer = make("producer", value=way.producer_value, provides=("a", "b"), requires=["f"])
    failing = make("failing", **way.failing)
    side = make("side", requires=["f"], provides="s")
    never = make("never", requires=["s"])
    flow.add(first, producer, failing, side, never)
    flow.link(producer, failing)
    flow.link(failing, never)
    return flow


def _check_reverted(engine: tideflow.Engine, journal: Journal, way: Way) -> None:
    storage = engine.storage
    assert storage.get_flow_state() == "REVERTED"
    ran = journal.executed()
    undone = journal.reverted()
    # every atom whose execute was called is reverted, exactly once
    expected = [n for n in ran if n != "failing" or way.failing_executes]
    assert sorted(undone) == sorted(expected)
    assert len(undone) == len(set(undone))
    assert "never" not in ran
    for detail in storage.flow_detail:
        assert detail.state in ("REVERTED", "PENDING"), (detail.name, detail.state)
    assert storage.get_atom_state("failing") == "REVERTED"
    # an atom is reverted only after what depended on it
    assert undone.index("producer") < undone.index("first")
    failure = storage.get_execute_failures()["failing"]
    assert failure.check(way.error)


@pytest.mark.parametrize("way", WAYS, ids=[w.id for w in WAYS])
def test_linear_flow_reverts_everything_that_ran(load, make, journal, way: Way) -> None:
    engine = load(_linear(make, way))
    with pytest.raises(way.error, match=way.match):
        engine.run()
    _check_reverted(engine, journal, way)
    assert journal.executed()[:2] == ["first", "producer"]


@pytest.mark.parametrize("way", WAYS, ids=[w.id for w in WAYS])
def test_graph_flow_reverts_every_branch_that_ran(load, make, journal, way: Way) -> None:
    engine = load(_graph(make, way))
    with pytest.raises(way.error):
        engine.run()
    storage = engine.storage
    assert storage.get_flow_state() == "REVERTED"
    undone = journal.reverted()
    ran = journal.executed()
    expected = [n for n in ran if n != "failing" or way.failing_executes]
    assert sorted(undone) == sorted(expected)
    assert len(undone) == len(set(undone))
    assert undone[-1] == "first"  # everything depends on it: it is undone last
    for detail in storage.flow_detail:
        assert detail.state in ("REVERTED", "PENDING"), (detail.name, detail.state)


@pytest.mark.parametrize("way", WAYS, ids=[w.id for w in WAYS])
def test_running_again_reverts_again(load, make, journal, way: Way) -> None:
    engine = load(_linear(make, way))
    for attempt in (1, 2):
        with pytest.raises(way.error, match=way.match):
            engine.run()
        assert engine.storage.get_flow_state() == "REVERTED"
        assert journal.reverted().count("first") == attempt
        assert journal.executed().count("producer") == attempt


def test_the_atom_that_could_not_be_called_goes_through_failure_to_reverted(
    load, make, watch
) -> None:
    flow = LinearFlow("f").add(
        make("producer", value=(1,), provides=("a", "b")), make("failing", requires=["b"])
    )
    engine = load(flow)
    notes = watch(engine)
    with pytest.raises(tideflow.NotFoundError):
        engine.run()
    assert notes.for_atom("failing") == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "FAILURE"),
        ("FAILURE", "REVERTING"),
        ("REVERTING", "REVERTED"),
    ]
    assert notes.flow_states()[-1] == ("RUNNING", "REVERTED")


def test_a_short_result_is_reported_when_it_is_produced(load, make, caplog) -> None:
    flow = LinearFlow("f").add(make("producer", value=[7], provides=("a", "b")))
    engine = load(flow)
    engine.run()  # nobody needs 'b': the run succeeds, and the warning says what happened
    assert engine.storage.get_flow_state() == "SUCCESS"
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1
    message = warned[0].getMessage()
    assert "'producer'" in message
    assert "'b'" in message
    assert "index 1" in message
    assert "[7]" in message
    with pytest.raises(tideflow.NotFoundError, match=r"'producer' returned \[7\]"):
        engine.storage.fetch("b")


def test_a_missing_key_is_reported_when_it_is_produced(load, make, caplog) -> None:
    flow = LinearFlow("f").add(make("producer", value={"a": 1}, provides={"a", "b"}))
    load(flow).run()
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(messages) == 1
    assert "key 'b'" in messages[0]
    assert "{'a': 1}" in messages[0]


def test_a_decider_that_raises_fails_its_target_and_the_run_reverts(load, make, journal) -> None:
    def decider(history: dict[str, Any]) -> bool:
        raise LookupError("decider broke")

    flow = GraphFlow("g")
    first, target, after = make("first"), make("target"), make("after")
    flow.add(first, target, after)
    flow.link(first, target, decider=decider)
    flow.link(target, after)
    engine = load(flow)
    with pytest.raises(LookupError, match="decider broke"):
        engine.run()
    assert engine.storage.get_flow_state() == "REVERTED"
    assert journal.executed() == ["first"]
    assert journal.reverted() == ["first"]
    assert engine.storage.get_execute_failures()["target"].check(LookupError)
    assert engine.storage.get_atom_state("after") == "PENDING"


def test_a_decider_that_raises_on_a_subflow_fails_its_first_atom(load, make, journal) -> None:
    def decider(history: dict[str, Any]) -> bool:
        raise LookupError("no")

    inner = LinearFlow("inner").add(make("inner1"), make("inner2"))
    flow = GraphFlow("g")
    first = make("first")
    flow.add(first, inner)
    flow.link(first, inner, decider=decider)
    engine = load(flow)
    with pytest.raises(LookupError):
        engine.run()
    assert engine.storage.get_flow_state() == "REVERTED"
    assert engine.storage.get_execute_failures().keys() == {"inner1"}
    assert journal.executed() == ["first"]
    assert journal.reverted() == ["first"]


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_a_revert_that_cannot_be_given_its_arguments_is_a_revert_failure(load, journal) -> None:
    class NeedsB(tideflow.Task):
        def execute(self, a: int) -> None:
            journal.add("execute", self.name, {})

        def revert(self, b: int, **kwargs: Any) -> None:
            journal.add("revert", self.name, {})

    class Fails(tideflow.Task):
        def execute(self) -> None:
            raise RuntimeError("late")

    producer = tideflow.FunctorTask(lambda: [1], name="producer", provides=("a", "b"))
    engine = load(LinearFlow("f").add(producer, NeedsB("needs_b"), Fails("fails")))
    with pytest.raises(tideflow.NotFoundError, match=r"'needs_b' needs 'b'"):
        engine.run()
    assert engine.storage.get_flow_state() == "FAILURE"
    assert engine.storage.get_atom_state("needs_b") == "REVERT_FAILURE"
    assert engine.storage.get_atom_state("fails") == "REVERTED"
    assert journal.reverted() == []  # needs_b's revert could not be called
    assert engine.storage.get_revert_failures()["needs_b"].check(tideflow.NotFoundError)


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_a_failing_pre_execute_hook_fails_the_atom_and_reverts(load, make, journal) -> None:
    class Hooked(tideflow.Task):
        def pre_execute(self) -> None:
            raise OSError("hook failed")

        def execute(self) -> None:
            journal.add("execute", self.name, {})

    engine = load(LinearFlow("f").add(make("first"), Hooked("hooked")))
    with pytest.raises(OSError, match="hook failed"):
        engine.run()
    assert engine.storage.get_flow_state() == "REVERTED"
    assert journal.reverted() == ["first"]


def test_unordered_siblings_all_revert_when_one_cannot_be_bound(load, make, journal) -> None:
    flow = LinearFlow("f").add(
        make("producer", value=(1,), provides=("a", "b")),
        UnorderedFlow("fan").add(make("ok1"), make("bad", requires=["b"]), make("ok2")),
    )
    engine = load(flow)
    with pytest.raises(tideflow.NotFoundError):
        engine.run()
    assert engine.storage.get_flow_state() == "REVERTED"
    ran = set(journal.executed())
    assert "bad" not in ran
    assert set(journal.reverted()) == ran
    assert journal.reverted()[-1] == "producer"


def test_an_engine_bug_is_written_to_the_flow_record(load, make, monkeypatch) -> None:
    from tideflow import _scheduler

    def broken(self: Any, node: int) -> list[int]:
        raise tideflow.InternalError("scheduler invariant broke")

    monkeypatch.setattr(_scheduler.Scheduler, "complete", broken)
    engine = load(LinearFlow("f").add(make("only")))
    with pytest.raises(tideflow.InternalError, match="scheduler invariant broke"):
        engine.run()
    assert engine.storage.get_flow_state() == "FAILURE"
    assert engine.storage.flow_meta["stopped_by"] == {
        "type": "InternalError",
        "message": "scheduler invariant broke",
    }


def test_an_executor_that_refuses_work_fails_the_atom_without_stopping_the_engine(make) -> None:
    import concurrent.futures

    executor = concurrent.futures.ThreadPoolExecutor(2)
    executor.shutdown()
    engine = tideflow.load(
        LinearFlow("f").add(make("a"), make("b")), engine="parallel", executor=executor
    )
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        engine.run()
    # nothing could run, and nothing could be undone on it: the record says so
    assert engine.storage.get_flow_state() == "FAILURE"
    assert engine.storage.get_atom_state("a") == "REVERT_FAILURE"
    assert engine.storage.get_atom_state("b") == "PENDING"
    assert "stopped_by" not in engine.storage.flow_meta  # handled, not an engine bug


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_a_progress_notified_by_hand_that_is_not_a_number_is_ignored(load, caplog) -> None:
    class Odd(tideflow.Task):
        def execute(self) -> int:
            self.notifier.notify("update_progress", {"progress": "half"})
            return 1

    engine = load(LinearFlow("f").add(Odd("odd")))
    engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert engine.storage.get_task_progress("odd") == 1.0
    assert "progress='half', not a number" in caplog.text
