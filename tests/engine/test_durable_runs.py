"""Runs on durable stores: what the engine promises when its records leave the process.

Each test runs on every store that copies records (SQLite, SQLite through SQLAlchemy,
a directory): a result the store cannot keep fails its atom, a run resumed from a
fresh store object skips what was recorded SUCCESS, a changed flow is refused, one
engine at a time owns a run, and a store that fails mid-run stops the run with a
StoreError, after which the run can be resumed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import resumable_flows as rf

import tideflow
from tideflow import LinearFlow, Task
from tideflow.errors import (
    FlowChangedError,
    RunOwnedError,
    StoreError,
    UnstorableValueError,
)
from tideflow.persistence import LogBook
from tideflow.states import AtomState, FlowState

STORES = ("sqlite", "sqlalchemy-sqlite", "dir")


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a fresh durable store."""
    if request.param == "sqlalchemy-sqlite":
        pytest.importorskip("sqlalchemy", reason="pip install 'tideflow[postgres]' for it")
        return f"sqlite+pysqlite:///{tmp_path}/sa.db"
    if request.param == "dir":
        return f"dir://{tmp_path}/records"
    return f"sqlite:///{tmp_path}/runs.db"


@pytest.fixture(autouse=True)
def _fresh_steps() -> Any:
    rf.reset()
    yield
    rf.reset()


def reread(url: str, fd_uuid: str) -> Any:
    """The flow record as stored, read through a new store object."""
    backend = tideflow.connect(url)
    try:
        with backend.get_connection() as conn:
            return conn.get_flow_details(fd_uuid)
    finally:
        backend.close()


def states(flow_detail: Any) -> dict[str, AtomState]:
    return {d.name: d.state for d in flow_detail}


class Returns(Task):
    """Returns what it was given as ``value``; records execute and revert."""

    def __init__(self, name: str, value: Any, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.value = value
        self.calls: list[str] = []

    def execute(self) -> Any:
        self.calls.append("execute")
        return self.value

    def revert(self, **kwargs: Any) -> None:
        self.calls.append("revert")


class Unpicklable:
    """Not JSON, and nothing the JSON codec knows."""

    def __repr__(self) -> str:
        return "<Unpicklable>"


# -- values the store cannot keep ----------------------------------------------------


def test_a_result_the_store_cannot_keep_fails_its_atom_and_reverts(url: str) -> None:
    first = Returns("first", 1, provides="a")
    bad = Returns("bad", Unpicklable(), provides="b")
    after = Returns("after", 3)
    engine = tideflow.load(LinearFlow("f").add(first, bad, after), backend=url)
    with pytest.raises(UnstorableValueError, match=r"atom 'bad'.*Unpicklable") as info:
        engine.run()
    assert info.value.atom == "bad"
    assert first.calls == ["execute", "revert"]
    assert after.calls == []
    stored = reread(url, engine.storage.flow_uuid)
    assert stored.state == FlowState.REVERTED
    assert states(stored) == {
        "first": AtomState.REVERTED,
        "bad": AtomState.REVERTED,
        "after": AtomState.PENDING,
    }
    failure = stored.find_by_name("bad").failure
    assert failure is not None
    assert failure.check(UnstorableValueError) is not None
    assert "Unpicklable" in failure.exception_str


def test_the_pickle_codec_keeps_what_json_cannot(url: str) -> None:
    backend = tideflow.connect(url, codec="pickle")
    value = Unpicklable()
    engine = tideflow.load(
        LinearFlow("f").add(Returns("odd", value, provides="x")), backend=backend
    )
    engine.run()
    again = tideflow.connect(url, codec="pickle")
    with again.get_connection() as conn:
        stored = conn.get_flow_details(engine.storage.flow_uuid)
    assert type(stored.find_by_name("odd").results) is Unpicklable


def test_a_store_value_the_store_cannot_keep_is_refused_at_the_call(url: str) -> None:
    engine = tideflow.load(
        LinearFlow("f").add(Returns("a", 1)), store={"ok": 1, "bad": Unpicklable()}, backend=url
    )
    with pytest.raises(UnstorableValueError, match="store value 'bad'"):
        engine.storage  # the store values are recorded when storage is made
    engine2 = tideflow.load(LinearFlow("f").add(Returns("a", 1)), backend=url)
    with pytest.raises(UnstorableValueError, match="store value 'bad'"):
        engine2.storage.inject({"bad": Unpicklable()})
    engine2.storage.inject({"fine": Unpicklable()}, transient=True)  # kept in memory only
    engine2.run()


def test_everyday_types_round_trip_through_the_record(url: str) -> None:
    import datetime as dt
    from decimal import Decimal

    value = {
        "tuple": (1, "two"),
        3: "int key",
        "when": dt.datetime(2026, 12, 1, 3, 4, 5),
        "price": Decimal("9.99"),
        "raw": b"\x00\xff",
        "tags": {"a", "b"},
    }
    engine = tideflow.load(LinearFlow("f").add(Returns("r", value, provides="v")), backend=url)
    engine.run()
    stored = reread(url, engine.storage.flow_uuid)
    assert stored.find_by_name("r").results == value


# -- resuming ---------------------------------------------------------------------------


def test_a_suspended_run_resumes_from_a_new_store_object(url: str) -> None:
    engine = tideflow.load_from_factory(rf.make_flow, factory_args=[4], backend=url)
    rf.ENGINE, rf.SUSPEND_AT = engine, "t1"
    engine.run()
    fd_uuid = engine.storage.flow_uuid
    stored = reread(url, fd_uuid)
    assert stored.state == FlowState.SUSPENDED
    assert states(stored)["t0"] == AtomState.SUCCESS
    assert states(stored)["t1"] == AtomState.SUCCESS
    assert states(stored)["t2"] == AtomState.PENDING
    rf.EXECUTED.clear()
    values = tideflow.resume(fd_uuid, url)
    assert rf.EXECUTED == ["t2", "t3"]
    assert values["v0"] == "t0-done"
    assert values["v3"] == "t3-done"
    assert reread(url, fd_uuid).state == FlowState.SUCCESS
    rf.EXECUTED.clear()
    again = tideflow.resume(fd_uuid, url)  # a finished run: reported, nothing runs
    assert rf.EXECUTED == []
    assert again == values


def test_a_run_caught_reverting_goes_on_reverting_after_resume(url: str) -> None:
    engine = tideflow.load_from_factory(rf.make_flow, factory_args=[4], backend=url)
    rf.ENGINE, rf.FAIL_AT, rf.SUSPEND_REVERT_AT = engine, "t3", "t2"
    engine.run()  # t3 fails, t2's revert suspends the run midway
    fd_uuid = engine.storage.flow_uuid
    assert reread(url, fd_uuid).state == FlowState.SUSPENDED
    reverted_before = list(rf.REVERTED)
    rf.EXECUTED.clear()
    # the original exception object did not survive the store: its record is re-raised
    with pytest.raises(tideflow.WrappedFailure) as info:
        tideflow.resume(fd_uuid, url)
    (failure,) = list(info.value)
    assert failure.check(rf.StepFailed) is not None
    assert failure.exception_str == "t3 failed"
    assert rf.EXECUTED == []
    assert sorted({*reverted_before, *rf.REVERTED}) == ["t0", "t1", "t2", "t3"]
    stored = reread(url, fd_uuid)
    assert stored.state == FlowState.REVERTED
    assert set(states(stored).values()) == {AtomState.REVERTED}


def test_a_changed_flow_is_refused_once_the_run_made_progress(url: str) -> None:
    engine = tideflow.load_from_factory(rf.make_flow, factory_args=[3], backend=url)
    rf.ENGINE, rf.SUSPEND_AT = engine, "t0"
    engine.run()
    stored = reread(url, engine.storage.flow_uuid)
    bigger = rf.make_flow(3)
    bigger.add(rf.Step("extra"))
    with pytest.raises(FlowChangedError, match="atom 'extra' was added") as info:
        tideflow.load(bigger, backend=url, flow_detail=stored).run()
    assert info.value.differences == ["atom 'extra' was added"]
    renamed = rf.make_flow(3, prefix="s")
    with pytest.raises(FlowChangedError) as info:
        tideflow.load(renamed, backend=url, flow_detail=stored).run()
    assert "atom 's0' was added" in info.value.differences
    assert "atom 't0' was removed" in info.value.differences
    newer = rf.make_flow(3)
    for atom in newer:
        if atom.name == "t2":
            atom.version = (2, 0)
    with pytest.raises(FlowChangedError, match=r"'t2' changed version 1\.0 -> 2\.0"):
        tideflow.load(newer, backend=url, flow_detail=stored).run()
    # nothing of that was written: the original flow still resumes
    assert states(reread(url, stored.uuid))["t0"] == AtomState.SUCCESS
    rf.EXECUTED.clear()
    tideflow.load(rf.make_flow(3), backend=url, flow_detail=reread(url, stored.uuid)).run()
    assert rf.EXECUTED == ["t1", "t2"]


def test_a_minor_version_bump_is_adopted(url: str) -> None:
    engine = tideflow.load_from_factory(rf.make_flow, factory_args=[2], backend=url)
    rf.ENGINE, rf.SUSPEND_AT = engine, "t0"
    engine.run()
    stored = reread(url, engine.storage.flow_uuid)
    flow = rf.make_flow(2)
    for atom in flow:
        atom.version = (1, 7)
    tideflow.load(flow, backend=url, flow_detail=stored).run()
    after = reread(url, stored.uuid)
    assert after.state == FlowState.SUCCESS
    assert {d.version for d in after} == {(1, 7)}


def test_a_record_without_progress_takes_any_flow(url: str) -> None:
    backend = tideflow.connect(url)
    book = LogBook("b")
    fd = tideflow.persistence.FlowDetail("planned")
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    tideflow.load(rf.make_flow(2), backend=backend, flow_detail=fd).run()
    assert reread(url, fd.uuid).state == FlowState.SUCCESS


# -- one engine per run -------------------------------------------------------------------


class Blocks(Task):
    """Waits until released, so a second engine can try the same run meanwhile."""

    started = threading.Event()
    release = threading.Event()

    def execute(self) -> None:
        Blocks.started.set()
        assert Blocks.release.wait(30)


def test_a_second_engine_on_a_running_record_is_refused(url: str) -> None:
    Blocks.started.clear()
    Blocks.release.clear()
    backend = tideflow.connect(url)
    first = tideflow.load(LinearFlow("f").add(Blocks("block")), backend=backend)
    errors: list[BaseException] = []

    def run_first() -> None:
        try:
            first.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert Blocks.started.wait(30)
        stored = reread(url, first.storage.flow_uuid)
        second = tideflow.load(
            LinearFlow("f").add(Blocks("block")), backend=url, flow_detail=stored
        )
        with pytest.raises(RunOwnedError, match="process"):
            second.run()
    finally:
        Blocks.release.set()
        thread.join(30)
    assert errors == []
    assert reread(url, first.storage.flow_uuid).state == FlowState.SUCCESS
    # once the first engine is done, the record is free again
    tideflow.load(
        LinearFlow("f").add(Blocks("block")),
        backend=url,
        flow_detail=reread(url, first.storage.flow_uuid),
    ).run()


# -- a store that fails mid-run -----------------------------------------------------------


class FailingAfter:
    """Wraps a store: its ``save_round`` fails after ``allowed`` calls, like a full disk."""

    shares_records = False

    def __init__(self, backend: Any, allowed: int) -> None:
        self.backend = backend
        self.codec = backend.codec
        self.allowed = allowed

    def get_connection(self) -> Any:
        conn = self.backend.get_connection()
        outer = self

        class Conn:
            def __getattr__(self, name: str) -> Any:
                return getattr(conn, name)

            def save_round(self, *args: Any, **kwargs: Any) -> None:
                if outer.allowed <= 0:
                    raise StoreError("database or disk is full (injected)")
                outer.allowed -= 1
                conn.save_round(*args, **kwargs)

            def close(self) -> None:
                conn.close()

        return Conn()

    def close(self) -> None:
        self.backend.close()


def test_a_store_failing_mid_run_stops_it_and_the_run_resumes_after(url: str) -> None:
    engine = tideflow.load_from_factory(
        rf.make_flow, factory_args=[5], backend=FailingAfter(tideflow.connect(url), allowed=3)
    )
    with pytest.raises(StoreError, match="disk is full"):
        engine.run()
    fd_uuid = engine.storage.flow_uuid
    stored = reread(url, fd_uuid)
    done = [d.name for d in stored if d.state == AtomState.SUCCESS]
    assert done  # rounds committed before the failure are kept
    assert len(done) < 5
    ran_before = list(rf.EXECUTED)
    rf.EXECUTED.clear()
    values = tideflow.resume(fd_uuid, url)
    # nothing recorded SUCCESS runs again; what ran after the last commit runs again
    assert not set(done) & set(rf.EXECUTED)
    assert sorted({*done, *rf.EXECUTED}) == [f"t{i}" for i in range(5)]
    assert set(ran_before) >= set(done)
    assert values["v4"] == "t4-done"
    assert reread(url, fd_uuid).state == FlowState.SUCCESS


def test_retry_history_survives_a_resume(url: str) -> None:
    from tideflow.retry import Times

    class Flaky(Task):
        failures_left = 2

        def execute(self) -> str:
            if Flaky.failures_left:
                Flaky.failures_left -= 1
                raise RuntimeError("not yet")
            return "ok"

    flow = LinearFlow("f", retry=Times(5, name="again")).add(Flaky("flaky", provides="v"))
    engine = tideflow.load(flow, backend=url)
    engine.run()
    stored = reread(url, engine.storage.flow_uuid)
    history = stored.find_by_name("again").history
    assert len(history) == 3
    assert [sorted(failures) for _, failures in history[:2]] == [["flaky"], ["flaky"]]
    assert history[0][1]["flaky"].exception_str == "not yet"
