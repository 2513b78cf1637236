"""The engine API: run_iter, suspend, reset, statistics, storage access (notes §2, §4, §6, §8)."""

from __future__ import annotations

import pytest

import tideflow
from tideflow import LinearFlow

ROUND = ["SCHEDULING", "WAITING", "ANALYZING"]


def interleaved(engine, it):
    """Drain ``it``, logging yields and notifications in one list; return (log, error)."""
    log = []
    engine.notifier.register("*", lambda s, details: log.append(("FLOW", details["old_state"], s)))
    engine.atom_notifier.register(
        "*", lambda s, details: log.append((details["task_name"], details["old_state"], s))
    )
    error = None
    try:
        for state in it:
            assert type(state) is str
            log.append(("YIELD", state))
    except Exception as exc:
        error = exc
    return log, error


# -- run_iter -------------------------------------------------------------------------


def test_run_iter_success_yields_taskflow_phases(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    it = engine.run_iter()
    assert type(it).__name__ == "generator"
    assert list(it) == ["RESUMING", *ROUND, *ROUND, "SUCCESS"]


def test_run_iter_interleaves_phases_and_notifications(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    log, error = interleaved(engine, engine.run_iter())
    assert error is None
    assert log == [
        ("FLOW", "PENDING", "RUNNING"),
        ("YIELD", "RESUMING"),
        ("YIELD", "SCHEDULING"),
        ("a", "PENDING", "RUNNING"),
        ("YIELD", "WAITING"),
        ("YIELD", "ANALYZING"),
        ("a", "RUNNING", "SUCCESS"),
        ("YIELD", "SCHEDULING"),
        ("b", "PENDING", "RUNNING"),
        ("YIELD", "WAITING"),
        ("YIELD", "ANALYZING"),
        ("b", "RUNNING", "SUCCESS"),
        ("YIELD", "SUCCESS"),
        ("FLOW", "RUNNING", "SUCCESS"),
    ]


def test_run_iter_failure_yields_revert_rounds_then_reverted_then_raises(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("c", fail=OSError("boom"))))
    log, error = interleaved(engine, engine.run_iter())
    assert isinstance(error, OSError)
    yields = [entry[1] for entry in log if entry[0] == "YIELD"]
    assert yields == ["RESUMING", *ROUND, *ROUND, *ROUND, *ROUND, "REVERTED"]
    assert log[-2:] == [("YIELD", "REVERTED"), ("FLOW", "RUNNING", "REVERTED")]


def test_run_iter_of_an_empty_flow(load):
    engine = load(LinearFlow("empty"))
    assert list(engine.run_iter()) == ["RESUMING", *ROUND, "SUCCESS"]
    assert engine.storage.get_flow_state() == "SUCCESS"


def test_running_a_successful_flow_again_runs_nothing(load, make, journal, watch):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    engine.run()
    notes = watch(engine)
    engine.run()
    assert journal.executed() == ["a", "b"]
    assert notes.compact() == [("FLOW", "SUCCESS", "RUNNING"), ("FLOW", "RUNNING", "SUCCESS")]


def test_run_iter_of_a_successful_flow_again(load, make, journal):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    engine.run()
    assert list(engine.run_iter()) == ["RESUMING", *ROUND, "SUCCESS"]
    assert journal.executed() == ["a", "b"]


def test_run_returns_none(load, make):
    assert load(LinearFlow("f").add(make("a"))).run() is None


def test_a_running_engine_refuses_a_second_run(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    it = engine.run_iter()
    next(it)
    next(it)
    with pytest.raises(tideflow.ExecutionError, match=r"engine for flow 'f' is already running"):
        engine.run()
    list(it)
    assert engine.storage.get_flow_state() == "SUCCESS"


# -- suspension -----------------------------------------------------------------------


def test_sending_true_suspends_before_anything_runs(load, make, journal, watch, states):
    engine = load(LinearFlow("f").add(make("a"), make("b"), make("c")))
    notes = watch(engine)
    it = engine.run_iter()
    assert next(it) == "RESUMING"
    assert next(it) == "SCHEDULING"
    rest = []
    with pytest.raises(StopIteration):  # noqa: PT012
        while True:
            rest.append(it.send(True))
    assert rest[-1] == "SUSPENDED"
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert states(engine, "abc") == {"a": "PENDING", "b": "PENDING", "c": "PENDING"}
    assert journal.executed() == []
    assert notes.flow_states() == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUSPENDING"),
        ("SUSPENDING", "SUSPENDED"),
    ]
    # and the run can be taken up again
    engine.run()
    assert journal.executed() == ["a", "b", "c"]
    assert engine.storage.get_flow_state() == "SUCCESS"


def test_sending_true_finishes_the_round_before_suspending(load, make):
    # TaskFlow: after send(True) at SCHEDULING the generator still yields WAITING and
    # ANALYZING, then SUSPENDED (notes §2)
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    it = engine.run_iter()
    next(it)
    next(it)
    rest = []
    with pytest.raises(StopIteration):  # noqa: PT012
        while True:
            rest.append(it.send(True))
    assert rest == ["WAITING", "ANALYZING", "SUSPENDED"]


@pytest.mark.local_only("the task calls suspend() on the engine object of this process")
def test_suspend_from_inside_a_task(load, make, journal, watch, states):
    holder = {}

    def suspend(task):
        if holder.get("engine") is not None:
            holder.pop("engine").suspend()  # only on the first run

    engine = load(LinearFlow("f").add(make("a"), make("b", on_execute=suspend), make("c")))
    holder["engine"] = engine
    notes = watch(engine)
    assert engine.run() is None  # no exception: a suspended run just stops
    assert notes.compact() == [
        ("FLOW", "PENDING", "RUNNING"),
        ("a", "PENDING", "RUNNING"),
        ("a", "RUNNING", "SUCCESS"),
        ("b", "PENDING", "RUNNING"),
        ("FLOW", "RUNNING", "SUSPENDING"),
        ("b", "RUNNING", "SUCCESS"),
        ("FLOW", "SUSPENDING", "SUSPENDED"),
    ]
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert states(engine, "abc") == {"a": "SUCCESS", "b": "SUCCESS", "c": "PENDING"}

    notes.clear()
    engine.run()  # the same engine resumes where it stopped
    assert notes.compact() == [
        ("FLOW", "SUSPENDED", "RUNNING"),
        ("c", "PENDING", "RUNNING"),
        ("c", "RUNNING", "SUCCESS"),
        ("FLOW", "RUNNING", "SUCCESS"),
    ]
    assert journal.executed() == ["a", "b", "c"]
    assert states(engine, "abc") == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}


def test_suspend_inside_a_parallel_branch_lets_running_siblings_finish(make, journal, states):
    import threading

    import tideflow as tf

    holder = {}
    both_running = threading.Barrier(2, timeout=5)

    def suspend(task):
        if holder.get("engine") is not None:
            both_running.wait()
            holder.pop("engine").suspend()  # only on the first run

    def wait(task):
        if holder.get("engine") is not None:
            both_running.wait()

    flow = LinearFlow("f").add(
        tf.UnorderedFlow("u").add(make("s", on_execute=suspend), make("w", on_execute=wait)),
        make("after"),
    )
    engine = tf.load(flow, engine="parallel", max_workers=2)
    holder["engine"] = engine
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert states(engine, ["s", "w", "after"]) == {
        "s": "SUCCESS",
        "w": "SUCCESS",
        "after": "PENDING",
    }
    engine.run()
    assert sorted(journal.executed()) == ["after", "s", "w"]
    assert journal.executed()[-1] == "after"


def test_closing_the_generator_suspends(load, make, journal, watch, states):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    notes = watch(engine)
    it = engine.run_iter()
    assert next(it) == "RESUMING"
    assert next(it) == "SCHEDULING"
    it.close()
    assert notes.compact() == [
        ("FLOW", "PENDING", "RUNNING"),
        ("FLOW", "RUNNING", "SUSPENDING"),
        ("FLOW", "SUSPENDING", "SUSPENDED"),
    ]
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert states(engine, "ab") == {"a": "PENDING", "b": "PENDING"}
    assert journal.executed() == []
    engine.run()
    assert journal.executed() == ["a", "b"]


def test_closing_after_the_final_yield_settles_the_flow(load, make, watch):
    engine = load(LinearFlow("f").add(make("a")))
    notes = watch(engine)
    it = engine.run_iter()
    for state in it:
        if state == "SUCCESS":
            break
    assert engine.storage.get_flow_state() == "RUNNING"
    it.close()
    assert engine.storage.get_flow_state() == "SUCCESS"
    # TaskFlow passes through SUSPENDING on close (notes §2)
    assert notes.flow_states() == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUSPENDING"),
        ("SUSPENDING", "SUCCESS"),
    ]


def test_throwing_into_the_generator_fails_the_flow(load, make, journal):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    it = engine.run_iter()
    next(it)
    next(it)
    with pytest.raises(KeyError, match="thrown"):
        it.throw(KeyError("thrown"))
    assert engine.storage.get_flow_state() == "FAILURE"
    assert engine.storage.get_atom_state("b") == "PENDING"
    assert journal.reverted() == []


# -- reset ----------------------------------------------------------------------------


def test_reset_after_success(load, make, journal, watch, states):
    flow = LinearFlow("f").add(make("a", provides="x"), make("b", provides="y"))
    engine = load(flow)
    engine.run()
    notes = watch(engine)
    assert engine.reset() is None
    assert notes.compact() == [
        ("a", "SUCCESS", "PENDING"),
        ("b", "SUCCESS", "PENDING"),
        ("FLOW", "SUCCESS", "PENDING"),
    ]
    assert all("result" not in details for _, _, details in notes.events)
    assert engine.storage.get_flow_state() == "PENDING"
    assert states(engine, "ab") == {"a": "PENDING", "b": "PENDING"}
    assert engine.storage.fetch_all() == {}
    with pytest.raises(
        tideflow.NotFoundError, match=r"the result of atom 'a' is not known: it is PENDING"
    ):
        engine.storage.get("a")
    engine.run()
    assert journal.executed() == ["a", "b", "a", "b"]
    assert engine.storage.fetch_all() == {"x": "a", "y": "b"}


def test_reset_after_revert_then_run_again(load, make, journal):
    engine = load(LinearFlow("f").add(make("a"), make("b", fail=OSError("b"))))
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    engine.reset()
    assert engine.storage.get_flow_state() == "PENDING"
    assert engine.storage.get_failures() == {}
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert journal.executed() == ["a", "b", "a", "b"]


def revert_failing_flow(make):
    """d fails; d and c revert with values, b's revert raises; a is never reverted."""
    return LinearFlow("f").add(
        make("a", revert_value="a undone"),
        tideflow.UnorderedFlow("u").add(
            make("b", revert_fail=ValueError("b revert broke")),
            make("c", revert_value="c undone"),
        ),
        make("d", fail=OSError("d failed"), revert_value="d undone"),
    )


def assert_forgotten(engine, names):
    """Every trace of the last run is gone from storage and from the atom records."""
    storage = engine.storage
    assert storage.get_revert_failures() == {}
    assert storage.get_failures() == {}
    assert storage.has_failures() is False
    for name in names:
        with pytest.raises(tideflow.NotFoundError, match=f"atom {name!r} has not been reverted"):
            storage.get_revert_result(name)
        with pytest.raises(tideflow.NotFoundError, match=f"result of atom {name!r} is not known"):
            storage.get_execute_result(name)
    records = {d.name: d for d in storage.flow_detail}
    for name in names:
        record = records[name]
        assert record.state == "PENDING", name
        assert record.intention == "EXECUTE", name
        assert record.results is None, name
        assert record.failure is None, name
        assert record.revert_results is None, name
        assert record.revert_failure is None, name


def test_reset_forgets_revert_results_and_revert_failures(load, make):
    engine = load(revert_failing_flow(make))
    with pytest.raises(ValueError, match="b revert broke"):
        engine.run()
    storage = engine.storage
    # what there is to forget
    assert storage.get_revert_result("d") == "d undone"
    assert storage.get_revert_result("c") == "c undone"
    assert str(storage.get_revert_result("b")) == "Failure: ValueError: b revert broke"
    assert list(storage.get_revert_failures()) == ["b"]
    assert list(storage.get_failures()) == ["d"]

    engine.reset()

    assert storage.get_flow_state() == "PENDING"
    assert_forgotten(engine, "abcd")


def test_reset_after_a_reverted_run_forgets_revert_results(load, make):
    engine = load(
        LinearFlow("f").add(
            make("a", revert_value="a undone"), make("b", fail=OSError("b"), revert_value=2)
        )
    )
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert engine.storage.get_revert_result("a") == "a undone"
    engine.reset()
    assert_forgotten(engine, "ab")


@pytest.mark.local_only("the task reads the engine's storage of this process while it runs")
def test_running_a_reverted_flow_again_starts_from_forgotten_records(load, make, journal):
    # run() after REVERTED resets by itself: the second run sees no trace of the first
    holder = {}
    seen = []

    def look(task):
        storage = holder["engine"].storage
        a = {d.name: d for d in storage.flow_detail}["a"]
        seen.append((storage.get_revert_failures(), storage.get_failures(), a.revert_results))

    flow = LinearFlow("f").add(
        make("a", revert_value="a undone"), make("b", fail=OSError("b"), on_execute=look)
    )
    engine = holder["engine"] = load(flow)
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert engine.storage.get_revert_result("a") == "a undone"
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert seen == [({}, {}, None), ({}, {}, None)]
    assert journal.executed() == ["a", "b", "a", "b"]


# -- statistics -----------------------------------------------------------------------

STAT_KEYS = {
    "seconds_per_state",
    "discarded_failures",
    "awaiting",
    "completed",
    "incomplete",
    "active_for",
}


def test_statistics(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("b")))
    assert engine.statistics == {}
    engine.run()
    stats = engine.statistics
    assert set(stats) >= STAT_KEYS
    assert set(stats["seconds_per_state"]) == {"analyzing", "resuming", "scheduling", "waiting"}
    assert all(isinstance(v, float) for v in stats["seconds_per_state"].values())
    assert stats["completed"] == 2
    assert stats["discarded_failures"] == 0
    assert stats["awaiting"] == 0
    assert stats["incomplete"] == 0
    assert isinstance(stats["active_for"], float)
    assert stats["active_for"] >= 0.0


def test_statistics_after_a_failure(load, make):
    engine = load(LinearFlow("f").add(make("a"), make("f", fail=OSError("f"))))
    with pytest.raises(OSError, match=r"^f$"):
        engine.run()
    stats = engine.statistics
    assert stats["discarded_failures"] == 1
    assert stats["completed"] == 4  # two executions and two reverts


# -- storage --------------------------------------------------------------------------


def test_storage_reads(load, make):
    flow = LinearFlow("f").add(
        make("one", value=(1, 2), provides=("x", "y")), make("two", value="v", provides="z")
    )
    engine = load(flow, store={"s": "store"})
    storage = engine.storage
    assert storage.fetch_all() == {"s": "store"}
    assert storage.get_flow_state() == "PENDING"
    with pytest.raises(
        tideflow.NotFoundError,
        match=r"no value named 'x' in flow 'f': 'one' has not produced it yet",
    ):
        storage.fetch("x")  # its provider has not run
    engine.run()
    assert storage.get_flow_state() == "SUCCESS"
    assert type(storage.get_flow_state()) is not int
    assert storage.get_atom_state("one") == "SUCCESS"
    assert storage.fetch("x") == 1
    assert storage.fetch("y") == 2
    assert storage.fetch("s") == "store"
    assert storage.fetch_all() == {"s": "store", "x": 1, "y": 2, "z": "v"}
    assert storage.get("one") == (1, 2)
    assert storage.get_execute_result("two") == "v"
    with pytest.raises(
        tideflow.NotFoundError, match=r"no value named 'one' in flow 'f': nothing provides it"
    ):
        storage.fetch("one")  # an atom name is not a value name
    with pytest.raises(tideflow.NotFoundError, match=r"no value named 'nothing' in flow 'f'"):
        storage.fetch("nothing")
    with pytest.raises(tideflow.NotFoundError, match=r"unknown atom 'nope' in flow 'f'"):
        storage.get_atom_state("nope")
    assert storage.get_failures() == {}
    assert storage.get_atoms_states(["one", "two"]) == {
        "one": ("SUCCESS", "EXECUTE"),
        "two": ("SUCCESS", "EXECUTE"),
    }


def test_storage_inject_adds_store_values(load, make, journal):
    engine = load(LinearFlow("f").add(make("a", requires=["late"])))
    engine.storage.inject({"late": 42})
    engine.run()
    assert journal.args_of("a") == {"late": 42}
    assert engine.storage.fetch("late") == 42
    assert engine.storage.fetch_all() == {"late": 42}


def test_storage_after_a_revert(load, make):
    flow = LinearFlow("f").add(
        make("a1", value="A-res", revert_value="A-revert-ret"), make("boom", fail=OSError("x"))
    )
    engine = load(flow)
    with pytest.raises(OSError, match=r"^x$"):
        engine.run()
    storage = engine.storage
    failure = storage.get_failures()["boom"]
    assert isinstance(failure, tideflow.Failure)
    assert set(storage.get_failures()) == {"boom"}
    assert storage.get_revert_result("a1") == "A-revert-ret"
    assert storage.get_revert_result("boom") is None
    assert storage.get_revert_failures() == {}
    with pytest.raises(
        tideflow.NotFoundError, match=r"the result of atom 'a1' is not known: it is REVERTED"
    ):
        storage.get("a1")  # REVERTED: the execute result is no longer readable
    assert storage.get_execute_result("boom") is failure
    assert storage.fetch_all() == {}  # reverted results are not values any more
    assert storage.get_atom_state("a1") == "REVERTED"
    assert storage.get_flow_state() == "REVERTED"


@pytest.mark.local_only("a revert calls suspend() on the engine object of this process")
def test_suspend_while_reverting_then_resume_finishes_reverting_and_raises(
    load, make, journal, watch, states
):
    holder = {}

    def suspend(task):
        if holder.get("engine") is not None:
            holder.pop("engine").suspend()  # only once

    flow = LinearFlow("f").add(
        make("a"), make("b", on_revert=suspend), make("c", fail=OSError("boom"))
    )
    engine = load(flow)
    holder["engine"] = engine
    notes = watch(engine)
    assert engine.run() is None  # suspended while reverting: nothing raised yet
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert states(engine, "abc") == {"a": "SUCCESS", "b": "REVERTED", "c": "REVERTED"}
    assert notes.flow_states()[-2:] == [("RUNNING", "SUSPENDING"), ("SUSPENDING", "SUSPENDED")]

    notes.clear()
    with pytest.raises(OSError, match="boom"):
        engine.run()
    assert notes.compact() == [
        ("FLOW", "SUSPENDED", "RUNNING"),
        ("a", "SUCCESS", "REVERTING"),
        ("a", "REVERTING", "REVERTED"),
        ("FLOW", "RUNNING", "REVERTED"),
    ]
    assert journal.reverted() == ["c", "b", "a"]
    assert journal.executed() == ["a", "b", "c"]


def test_parallel_engine_on_a_given_executor(make, journal):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="given") as pool:
        names = []
        flow = tideflow.UnorderedFlow("u").add(
            *(make(f"t{i}", on_execute=lambda task: names.append(_thread_name())) for i in range(4))
        )
        tideflow.load(flow, engine="parallel", executor=pool).run()
        assert sorted(journal.executed()) == ["t0", "t1", "t2", "t3"]
        assert all(name.startswith("given") for name in names)
        # the engine does not shut down an executor it was given
        assert pool.submit(lambda: 42).result() == 42


def _thread_name():
    import threading

    return threading.current_thread().name


def test_parallel_engine_runs_independent_tasks_at_once(make):
    import threading

    barrier = threading.Barrier(3, timeout=5)
    flow = tideflow.UnorderedFlow("u").add(
        *(make(f"t{i}", on_execute=lambda task: barrier.wait()) for i in range(3))
    )
    engine = tideflow.load(flow, engine="parallel", max_workers=3)
    engine.run()  # would time out (BrokenBarrierError) if they ran one by one
    assert engine.storage.get_flow_state() == "SUCCESS"
