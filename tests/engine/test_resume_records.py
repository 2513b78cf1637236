"""Starting from recorded states: what a crash left behind, and reset from any end state."""

import contextlib

import pytest

import tideflow
from tideflow import Failure, LinearFlow, Task, WrappedFailure
from tideflow.persistence import FlowDetail, LogBook, TaskDetail, fetch
from tideflow.states import AtomState, FlowState, Intention


class Recorder(Task):
    log: list[str] = []

    def execute(self):
        Recorder.log.append(f"execute {self.name}")
        return self.name

    def revert(self, **kwargs):
        Recorder.log.append(f"revert {self.name}")


def crashed_record(states, flow_state=FlowState.RUNNING, intention=Intention.EXECUTE):
    """A flow record as a crash would leave it: some atoms done, one caught mid-way."""
    detail = FlowDetail("f")
    detail.state = flow_state
    for name, state in states.items():
        atom = TaskDetail(name)
        atom.state = state
        atom.intention = intention
        if state is AtomState.SUCCESS:
            atom.results = name
        detail.add(atom)
    book = LogBook("book")
    book.add(detail)
    backend = fetch("memory://")
    backend.get_connection().save_logbook(book)
    return backend, book, detail


def flow():
    return LinearFlow("f").add(Recorder("a"), Recorder("b"), Recorder("c"))


def test_atoms_caught_running_run_again_and_finished_ones_do_not():
    Recorder.log = []
    backend, book, detail = crashed_record(
        {"a": AtomState.SUCCESS, "b": AtomState.RUNNING, "c": AtomState.PENDING}
    )
    engine = tideflow.load(flow(), backend=backend, book=book, flow_detail=detail)
    seen = []
    engine.atom_notifier.register("*", lambda s, details: seen.append((details["task_name"], s)))
    engine.run()
    assert Recorder.log == ["execute b", "execute c"]
    assert seen[0] == ("b", "PENDING")  # back from RUNNING before it runs again
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert engine.storage.fetch_all() == {}
    assert engine.storage.get("a") == "a"


def test_a_run_caught_reverting_keeps_reverting_and_raises_what_failed():
    Recorder.log = []
    backend, book, detail = crashed_record(
        {"a": AtomState.SUCCESS, "b": AtomState.RUNNING, "c": AtomState.FAILURE},
        intention=Intention.REVERT,
    )
    detail.find_by_name("c").failure = Failure.from_dict(
        {"exc_type_names": ["OSError", "Exception"], "exception_str": "disk gone"}
    )
    engine = tideflow.load(flow(), backend=backend, book=book, flow_detail=detail)
    with pytest.raises(WrappedFailure, match="OSError: disk gone"):
        engine.run()
    # c failed, b was caught running while reverting: both undone, newest first, then a
    assert Recorder.log == ["revert c", "revert b", "revert a"]
    assert engine.storage.get_flow_state() == "REVERTED"


def test_a_run_caught_suspending_resumes():
    Recorder.log = []
    backend, book, detail = crashed_record(
        {"a": AtomState.SUCCESS, "b": AtomState.PENDING, "c": AtomState.PENDING},
        flow_state=FlowState.SUSPENDING,
    )
    engine = tideflow.load(flow(), backend=backend, book=book, flow_detail=detail)
    flow_states = []
    engine.notifier.register("*", lambda s, details: flow_states.append(s))
    engine.run()
    assert Recorder.log == ["execute b", "execute c"]
    assert flow_states == ["SUSPENDED", "RUNNING", "SUCCESS"]


@pytest.mark.parametrize("ending", ["FAILURE", "SUSPENDED", "REVERTED", "SUCCESS"])
def test_reset_works_from_every_end_state(ending):
    class Bad(Task):
        def execute(self):
            if ending == "SUSPENDED":
                engine.suspend()
            elif ending != "SUCCESS":
                raise OSError("x")

        def revert(self, **kwargs):
            if ending == "FAILURE":
                raise ValueError("revert broke")

    engine = tideflow.load(LinearFlow("f").add(Recorder("a"), Bad("bad"), Recorder("z")))
    with contextlib.suppress(OSError, ValueError):
        engine.run()
    assert engine.storage.get_flow_state() == ending
    engine.reset()
    assert engine.storage.get_flow_state() == "PENDING"
    assert {engine.storage.get_atom_state(n) for n in ("a", "bad", "z")} == {"PENDING"}


def test_a_pending_flow_record_with_finished_atoms_resumes_them():
    # a record written by hand (or by another tool) may say PENDING for the flow while
    # its atoms already finished: they must not run again
    Recorder.log = []
    backend, book, detail = crashed_record(
        {"a": AtomState.SUCCESS, "b": AtomState.PENDING, "c": AtomState.PENDING},
        flow_state=FlowState.PENDING,
    )
    engine = tideflow.load(flow(), backend=backend, book=book, flow_detail=detail)
    engine.run()
    assert Recorder.log == ["execute b", "execute c"]
