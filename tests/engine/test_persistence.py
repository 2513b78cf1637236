"""Runs recorded in the memory store, and resumed from their record (notes §11)."""

from __future__ import annotations

import pytest
import resumable_flows

import tideflow
from tideflow import LinearFlow
from tideflow.persistence import FlowDetail, LogBook, fetch


@pytest.fixture
def backend():
    return fetch("memory://")


@pytest.fixture(autouse=True)
def _fresh_factory_state():
    resumable_flows.reset()
    yield
    resumable_flows.reset()


def test_memory_store_keeps_every_atom_record(load, make, backend):
    flow = LinearFlow("f").add(
        make("a", value=1, revert_value="A-rev", provides="x"),
        make("b", value=2),
        make("c", fail=OSError("c failed")),
    )
    book = LogBook("book")
    engine = load(flow, backend=backend, book=book)
    with pytest.raises(OSError, match=r"^c failed$"):
        engine.run()

    conn = backend.get_connection()
    stored = conn.get_logbook(book.uuid)
    assert stored.name == "book"
    details = list(stored)
    assert len(details) == 1
    flow_detail = details[0]
    assert flow_detail.name == "f"
    assert flow_detail.state == "REVERTED"
    assert conn.get_flow_details(flow_detail.uuid) is not None
    atoms = {ad.name: ad for ad in flow_detail}
    assert set(atoms) == {"a", "b", "c"}
    assert {ad.name for ad in conn.get_atoms_for_flow(flow_detail.uuid)} == {"a", "b", "c"}
    a, b, c = atoms["a"], atoms["b"], atoms["c"]
    assert (a.state, a.intention, a.results, a.failure, a.revert_results) == (
        "REVERTED",
        "REVERT",
        1,
        None,
        "A-rev",
    )
    assert (b.state, b.results, b.revert_results) == ("REVERTED", 2, None)
    assert c.state == "REVERTED"
    assert isinstance(c.failure, tideflow.Failure)
    assert c.failure.check(OSError) is OSError
    assert a.revert_failure is None
    assert conn.get_atom_details(a.uuid).name == "a"
    assert a.uuid == engine.storage.get_atom_uuid("a")


def test_memory_store_keeps_results_of_a_successful_run(load, make, backend):
    book = LogBook("book")
    engine = load(
        LinearFlow("f").add(make("a", value=1), make("b", value={"k": 2})),
        backend=backend,
        book=book,
    )
    engine.run()
    flow_detail = next(iter(backend.get_connection().get_logbook(book.uuid)))
    assert flow_detail.state == "SUCCESS"
    assert {ad.name: (ad.state, ad.intention, ad.results) for ad in flow_detail} == {
        "a": ("SUCCESS", "EXECUTE", 1),
        "b": ("SUCCESS", "EXECUTE", {"k": 2}),
    }


def test_memory_store_keeps_revert_failures(load, make, backend):
    book = LogBook("book")
    flow = LinearFlow("f").add(
        make("a", revert_fail=ValueError("cannot undo")), make("b", fail=OSError("b"))
    )
    engine = load(flow, backend=backend, book=book)
    with pytest.raises(ValueError, match="cannot undo"):
        engine.run()
    flow_detail = next(iter(backend.get_connection().get_logbook(book.uuid)))
    assert flow_detail.state == "FAILURE"
    atoms = {ad.name: ad for ad in flow_detail}
    assert atoms["a"].state == "REVERT_FAILURE"
    assert atoms["a"].revert_failure.check(ValueError) is ValueError


def test_load_without_a_book_saves_a_temporary_one(load, make, backend):
    engine = load(LinearFlow("flowname").add(make("a")), backend=backend)
    engine.run()
    books = backend.get_connection().get_logbooks()
    assert [book.name for book in books] == ["tmp"]
    assert [fd.name for fd in books[0]] == ["flowname"]
    assert next(iter(books[0])).state == "SUCCESS"


@pytest.mark.local_only(
    "resumable_flows steps log to module lists of this process and suspend its engine"
)
def test_load_from_factory_then_resume_from_detail(engine_kind, backend):
    engine = tideflow.load_from_factory(
        resumable_flows.make_flow,
        factory_args=[3],
        factory_kwargs={"prefix": "s"},
        backend=backend,
        engine=engine_kind,
    )
    resumable_flows.ENGINE = engine
    resumable_flows.SUSPEND_AT = "s1"
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert resumable_flows.EXECUTED == ["s0", "s1"]

    flow_detail = engine.storage.flow_detail
    assert flow_detail.meta["factory"] == {
        "name": "resumable_flows.make_flow",
        "args": [3],
        "kwargs": {"prefix": "s"},
    }
    stored = backend.get_connection().get_flow_details(flow_detail.uuid)
    assert stored.state == "SUSPENDED"
    assert {ad.name: ad.state for ad in stored} == {
        "s0": "SUCCESS",
        "s1": "SUCCESS",
        "s2": "PENDING",
    }

    resumed = tideflow.load_from_detail(stored, backend=backend, engine=engine_kind)
    assert resumed is not engine
    resumed.run()
    assert resumable_flows.EXECUTED == ["s0", "s1", "s2"]  # finished steps not run again
    assert resumed.storage.get_flow_state() == "SUCCESS"
    assert resumed.storage.fetch_all() == {"v0": "s0-done", "v1": "s1-done", "v2": "s2-done"}
    assert stored.state == "SUCCESS"


def test_flow_from_detail_rebuilds_the_flow(backend):
    engine = tideflow.load_from_factory(
        resumable_flows.make_flow, factory_args=[2], backend=backend
    )
    flow = tideflow.flow_from_detail(engine.storage.flow_detail)
    assert flow.name == "resumable"
    assert [t.name for t, _ in flow.iter_nodes()] == ["t0", "t1"]


@pytest.mark.local_only("resumable_flows steps log to module lists of this process")
def test_load_from_detail_of_a_finished_run(engine_kind, backend):
    engine = tideflow.load_from_factory(
        resumable_flows.make_flow, factory_args=[2], backend=backend, engine=engine_kind
    )
    engine.run()
    again = tideflow.load_from_detail(engine.storage.flow_detail, backend=backend)
    assert again.storage.get_flow_state() == "SUCCESS"
    again.run()
    assert resumable_flows.EXECUTED == ["t0", "t1"]


@pytest.mark.local_only("resumable_flows steps log to module lists of this process")
def test_atom_caught_running_runs_again(engine_kind, backend):
    engine = tideflow.load_from_factory(
        resumable_flows.make_flow, factory_args=[3], backend=backend, engine=engine_kind
    )
    resumable_flows.ENGINE = engine
    resumable_flows.SUSPEND_AT = "t0"
    engine.run()
    assert resumable_flows.EXECUTED == ["t0"]
    # as if the process died while t1 was running
    flow_detail = engine.storage.flow_detail
    flow_detail.find_by_name("t1").state = tideflow.AtomState.RUNNING
    resumed = tideflow.load_from_detail(flow_detail, backend=backend, engine=engine_kind)
    resumed.run()
    assert resumable_flows.EXECUTED == ["t0", "t1", "t2"]
    assert resumed.storage.get_flow_state() == "SUCCESS"


def test_factory_must_be_importable_by_name(backend):
    with pytest.raises(ValueError, match=r"is not importable by name"):
        tideflow.load_from_factory(lambda: LinearFlow("x"), backend=backend)


def test_flow_from_detail_without_factory():
    with pytest.raises(
        ValueError,
        match=r"cannot rebuild the flow of record 'no-factory' .*no factory was recorded",
    ):
        tideflow.flow_from_detail(FlowDetail("no-factory"))


@pytest.mark.local_only(
    "resumable_flows steps log to module lists of this process and suspend its engine"
)
def test_resuming_a_run_suspended_while_reverting(engine_kind, backend):
    engine = tideflow.load_from_factory(
        resumable_flows.make_flow, factory_args=[3], backend=backend, engine=engine_kind
    )
    resumable_flows.ENGINE = engine
    resumable_flows.FAIL_AT = "t2"
    resumable_flows.SUSPEND_REVERT_AT = "t1"
    engine.run()  # suspended part-way through reverting: nothing raised yet
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert resumable_flows.REVERTED == ["t2", "t1"]
    flow_detail = engine.storage.flow_detail
    assert {ad.name: ad.state for ad in flow_detail} == {
        "t0": "SUCCESS",
        "t1": "REVERTED",
        "t2": "REVERTED",
    }

    resumed = tideflow.load_from_detail(flow_detail, backend=backend, engine=engine_kind)
    # the run goes on reverting, and ends as a reverted run does: by raising the failure
    # (the memory store keeps the very Failure, so the original exception)
    with pytest.raises(resumable_flows.StepFailed, match=r"^t2 failed$"):
        resumed.run()
    assert resumable_flows.REVERTED == ["t2", "t1", "t0"]
    assert resumable_flows.EXECUTED == ["t0", "t1", "t2"]
    assert resumed.storage.get_flow_state() == "REVERTED"
