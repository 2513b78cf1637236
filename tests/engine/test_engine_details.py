"""The engine's finer points: statistics, progress events, validation by atom arguments,
intentions in the record, resuming from odd records, warnings and log lines.

(Written where mutation testing found the engine unchecked: see docs/testing.md.)
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow
from tideflow.persistence import FlowDetail, LogBook, TaskDetail, fetch
from tideflow.states import AtomState, FlowState, Intention

# -- statistics ------------------------------------------------------------------------


def _sleeper(make, name, seconds):
    return make(name, on_execute=lambda task: time.sleep(seconds))


def test_serial_statistics_add_up_each_round():
    # on the serial engine atoms run while scheduling: three rounds of 20 ms each
    from engine_support import Journal, Recorder

    journal = Journal()
    flow = LinearFlow("f").add(
        *(Recorder(n, journal, on_execute=lambda t: time.sleep(0.02)) for n in "abc")
    )
    engine = tideflow.load(flow, engine="serial")
    engine.run()
    stats = engine.statistics
    phases = stats["seconds_per_state"]
    assert set(phases) == {"resuming", "scheduling", "waiting", "analyzing"}
    assert phases["scheduling"] >= 0.055
    assert all(0.0 <= seconds <= stats["active_for"] for seconds in phases.values())
    assert sum(phases.values()) <= stats["active_for"]
    assert stats["active_for"] < 30
    assert stats["completed"] == 3
    assert stats["discarded_failures"] == 0
    assert 0.0 <= stats["compile_time"] < 30


def test_parallel_statistics_count_waiting_and_analyzing_each_round(make):
    flow = LinearFlow("f").add(*(_sleeper(make, n, 0.02) for n in "abc"))
    engine = tideflow.load(flow, engine="parallel", max_workers=2)
    # listeners run while analyzing: 10 ms for each of three successes
    engine.atom_notifier.register("SUCCESS", lambda state, details: time.sleep(0.01))
    engine.run()
    stats = engine.statistics
    phases = stats["seconds_per_state"]
    assert phases["waiting"] >= 0.04
    assert phases["analyzing"] >= 0.025
    assert all(0.0 <= seconds <= stats["active_for"] for seconds in phases.values())
    assert sum(phases.values()) <= stats["active_for"]


def test_discarded_failures_count_both_failure_kinds(load, make):
    flow = LinearFlow("f").add(
        make("a", revert_fail=ValueError("a revert")), make("b", fail=OSError("b"))
    )
    engine = load(flow)
    with pytest.raises(ValueError, match="a revert"):
        engine.run()
    assert engine.statistics["discarded_failures"] == 2


# -- workers -------------------------------------------------------------------------


def test_max_workers_bounds_how_many_atoms_run_at_once(make):
    lock = threading.Lock()
    running = [0]
    most = [0]

    def busy(task):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    flow = UnorderedFlow("u").add(*(make(f"t{i}", on_execute=busy) for i in range(4)))
    tideflow.load(flow, engine="parallel", max_workers=1).run()
    assert most[0] == 1


def test_the_engine_class_defaults_to_serial_and_names_an_unknown_kind():
    engine = tideflow.Engine(LinearFlow("f"))
    assert engine.kind == "serial"
    engine.run()
    with pytest.raises(
        ValueError, match=r"unknown engine 'bogus'; choose one of \['serial', 'parallel'\]"
    ):
        tideflow.Engine(LinearFlow("f"), kind="bogus")


# -- progress events -----------------------------------------------------------------


class Reporting(Task):
    """Reports 0.5 progress and looks at what storage says right then."""

    engine: tideflow.Engine
    seen: list[float]

    def execute(self):
        self.update_progress(0.5)
        self.seen.append(self.engine.storage.get_task_progress(self.name))
        return 1


@pytest.mark.parametrize("listening", [False, True], ids=["quiet", "listened"])
def test_a_serial_task_sees_its_progress_recorded_at_once(listening):
    task = Reporting("r")
    task.seen = []
    engine = task.engine = tideflow.load(LinearFlow("f").add(task), engine="serial")
    heard = []
    if listening:
        engine.atom_notifier.register(
            "update_progress", lambda event, details: heard.append(details["progress"])
        )
    engine.run()
    assert task.seen == [0.5]
    assert engine.storage.get_task_progress("r") == 1.0
    if listening:
        assert heard == [0.5]


def test_progress_from_a_worker_is_recorded_and_told_on_the_engine_thread():
    task = Reporting("r")
    task.seen = []
    engine = task.engine = tideflow.load(LinearFlow("f").add(task), engine="parallel")
    heard = []

    def on_progress(event, details):
        heard.append(
            (details["progress"], engine.storage.get_task_progress("r"), threading.get_ident())
        )

    engine.atom_notifier.register("update_progress", on_progress)
    engine.run()
    assert (0.5, 0.5, threading.get_ident()) in heard


# -- validation by atom arguments ------------------------------------------------------


def test_symbols_every_user_has_as_its_own_argument_need_no_provider():
    flow = LinearFlow("f").add(Task_("a", ["s", "z"]), Task_("b", ["z"]))
    engine = tideflow.load(flow, store={"s": 1})
    engine.prepare()
    engine.storage.inject_atom_args("a", {"z": "za"})
    engine.storage.inject_atom_args("b", {"z": "zb"})
    engine.run()
    assert engine.storage.get("a") == {"s": 1, "z": "za"}
    assert engine.storage.get("b") == {"z": "zb"}


def test_a_symbol_only_some_users_have_is_still_missing():
    engine = tideflow.load(LinearFlow("f").add(Task_("a", ["z"]), Task_("b", ["z"])))
    engine.prepare()
    engine.storage.inject_atom_args("a", {"z": 1})
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'b' \(in flow 'f'\) requires 'z'"
    ):
        engine.run()


class Task_(Task):  # a task taking the named keyword arguments
    def __init__(self, name, requires):
        super().__init__(name, requires=requires)

    def execute(self, **kwargs):
        return kwargs


# -- intentions in the record ----------------------------------------------------------


def test_intentions_after_a_failed_revert(load, make):
    # c fails, b's revert fails, a ran but is never reverted, d never ran
    flow = LinearFlow("f").add(
        make("a"),
        make("b", revert_fail=ValueError("b revert")),
        make("c", fail=OSError("c")),
        make("d"),
    )
    engine = load(flow)
    with pytest.raises(ValueError, match="b revert"):
        engine.run()
    intentions = {n: engine.storage.get_atom_intention(n) for n in "abcd"}
    assert intentions == {
        "a": Intention.REVERT,  # marked to revert when reverting began
        "b": Intention.REVERT,
        "c": Intention.REVERT,
        "d": Intention.EXECUTE,  # never ran: nothing to undo
    }


def test_a_retried_revert_keeps_the_revert_intention(make):
    broken = [True]

    def maybe(task):
        if broken[0]:
            raise ValueError("b revert")

    flow = LinearFlow("f").add(make("a"), make("b", on_revert=maybe), make("c", fail=OSError("c")))
    engine = tideflow.load(flow)
    with pytest.raises(ValueError, match="b revert"):
        engine.run()
    broken[0] = False
    with pytest.raises(OSError, match=r"^c$"):
        engine.run()
    assert {n: engine.storage.get_atom_intention(n) for n in "abc"} == dict.fromkeys(
        "abc", Intention.REVERT
    )


# -- resuming from records a crash left ------------------------------------------------


class Logged(Task):
    log: list[str] = []

    def execute(self):
        Logged.log.append(f"execute {self.name}")
        return self.name

    def revert(self, **kwargs):
        Logged.log.append(f"revert {self.name}")


def _record(states, intention=Intention.EXECUTE):
    detail = FlowDetail("u")
    detail.state = FlowState.RUNNING
    for name, state in states.items():
        atom = TaskDetail(name)
        atom.state = state
        atom.intention = intention if state is AtomState.FAILURE else Intention.EXECUTE
        if state is AtomState.SUCCESS:
            atom.results = name
        if state is AtomState.FAILURE:
            atom.failure = tideflow.Failure.from_dict(
                {"exc_type_names": ["OSError", "Exception"], "exception_str": f"{name} broke"}
            )
        detail.add(atom)
    book = LogBook("book")
    book.add(detail)
    backend = fetch("memory://")
    backend.get_connection().save_logbook(book)
    return backend, book, detail


@pytest.mark.parametrize("intention", [Intention.EXECUTE, Intention.REVERT])
def test_a_record_with_a_failure_after_a_pending_atom_resumes_reverting(intention):
    # a crash after b's failure was recorded, before (or after) reverting was marked
    Logged.log = []
    backend, book, detail = _record(
        {"a": AtomState.PENDING, "b": AtomState.FAILURE, "c": AtomState.SUCCESS}, intention
    )
    flow = UnorderedFlow("u").add(Logged("a"), Logged("b"), Logged("c"))
    engine = tideflow.load(flow, backend=backend, book=book, flow_detail=detail)
    with pytest.raises(tideflow.WrappedFailure, match="OSError: b broke"):
        engine.run()
    assert sorted(Logged.log) == ["revert b", "revert c"]
    assert engine.storage.get_flow_state() == "REVERTED"
    assert engine.storage.get_atom_state("a") == "PENDING"


# -- warnings and log lines ------------------------------------------------------------


def test_a_result_missing_what_provides_names_is_warned_about(load, make, caplog):
    big = list(range(100))
    flow = LinearFlow("f").add(
        make("pair", provides=("x", "y"), value=(1,)),
        make("keys", provides={"k"}, value=big),
    )
    with caplog.at_level(logging.WARNING, logger="tideflow.storage"):
        load(flow).run()
    messages = [r.getMessage() for r in caplog.records if r.name == "tideflow.storage"]
    assert (
        "atom 'pair' provides 'y' at index 1 of its result, but it returned (1,), which has "
        "no index 1"
    ) in messages
    shown = repr(big)[:197] + "..."
    assert (
        f"atom 'keys' provides 'k' at key 'k' of its result, but it returned {shown}, which "
        "has no key 'k'"
    ) in messages
    assert len(messages) == 2


def test_a_result_repr_of_200_characters_is_shown_whole(load, make, caplog):
    value = ["x" * 196]  # repr is exactly 200 characters
    assert len(repr(value)) == 200
    flow = LinearFlow("f").add(make("pair", provides=("x", "y"), value=value))
    with caplog.at_level(logging.WARNING, logger="tideflow.storage"):
        load(flow).run()
    (record,) = [r for r in caplog.records if r.name == "tideflow.storage"]
    assert f"returned {value!r}, which has no index 1" in record.getMessage()


def test_a_failing_subscriber_is_logged_and_the_run_goes_on(make, caplog):
    def broken(event):
        raise RuntimeError("subscriber broke")

    engine = tideflow.load(LinearFlow("f").add(make("a")))
    engine.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="tideflow.engine"):
        engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    records = [r for r in caplog.records if r.name == "tideflow.engine"]
    assert records
    assert all(r.exc_info is not None for r in records)
    assert records[0].getMessage().startswith(f"subscriber {broken!r} failed on ")
    assert records[0].getMessage().endswith("; the run goes on")


# -- a decider's IGNORE reaches a copying store ----------------------------------------


def test_an_ignored_atom_is_written_to_a_copying_store(load, make):
    from test_store_write_through import CopyingStore, assert_store_holds_the_records

    store = CopyingStore(batch=False)
    a, b = make("a"), make("b")
    g = GraphFlow("g").add(a, b)
    g.link(a, b, decider=lambda history: False)
    engine = load(g, backend=store)
    engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.atoms["b"]["state"] == "IGNORE"


# -- a suspend that comes too late to stop anything ------------------------------------


@pytest.mark.local_only("the task calls suspend() on the engine object of this process")
def test_suspended_in_the_last_atom_the_flow_still_succeeds(load, make, watch):
    holder = {}
    flow = LinearFlow("f").add(make("a"), make("b", on_execute=lambda t: holder["e"].suspend()))
    engine = holder["e"] = load(flow)
    notes = watch(engine)
    engine.run()
    assert notes.flow_states() == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUSPENDING"),
        ("SUSPENDING", "SUCCESS"),
    ]
    assert engine.storage.get_flow_state() == "SUCCESS"


@pytest.mark.local_only("a revert calls suspend() on the engine object of this process")
def test_suspended_in_the_last_revert_the_flow_is_still_reverted(load, make, watch):
    holder = {}
    flow = LinearFlow("f").add(
        make("a", on_revert=lambda t: holder["e"].suspend()), make("b", fail=OSError("b"))
    )
    engine = holder["e"] = load(flow)
    notes = watch(engine)
    with pytest.raises(OSError, match=r"^b$"):
        engine.run()
    assert notes.flow_states()[-2:] == [("RUNNING", "SUSPENDING"), ("SUSPENDING", "REVERTED")]
    assert engine.storage.get_flow_state() == "REVERTED"


@pytest.mark.local_only("the task calls suspend() on the engine object of this process")
def test_suspended_midway_the_flow_is_suspended_and_resumes(load, make, watch):
    holder = {}
    flow = LinearFlow("f").add(
        make("a", on_execute=lambda t: holder["e"].suspend()), make("b"), make("c")
    )
    engine = holder["e"] = load(flow)
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert engine.storage.get_atom_state("b") == "PENDING"
    engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"


def test_suspend_outside_a_run_changes_nothing(load, make, watch):
    engine = load(LinearFlow("f").add(make("a")))
    engine.suspend()  # not running yet
    assert engine.storage.get_flow_state() == "PENDING"
    engine.run()
    notes = watch(engine)
    engine.suspend()  # finished
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert notes.flow_states() == []
