"""taskflow.conductors through the compat package: TaskFlow-style programs post jobs
with logbooks and run them with 'blocking' and 'nonblocking' conductors over tideflow's
SQLite and Redis boards."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobs_compat_support as support
import pytest
from jobs_compat_support import board_conf, fetch_board, post_flow_job, sqlite_persistence

from taskflow import exceptions as exc
from taskflow import states
from taskflow.conductors import backends as conductor_backends
from taskflow.conductors.base import Conductor
from taskflow.jobs.base import Job


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def conf(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A board configuration: SQLite always; PostgreSQL and Redis when their
    TIDEFLOW_TEST_*_URL is set."""
    yield from board_conf(request.param, tmp_path)


@pytest.fixture
def persistence(tmp_path: Path) -> Iterator[Any]:
    backend = sqlite_persistence(tmp_path)
    yield backend
    backend.close()


@pytest.fixture(autouse=True)
def _fresh_ledger() -> Iterator[None]:
    support.RAN.clear()
    support.GATE.clear()
    support.AT_GATE.clear()
    yield
    support.GATE.set()  # never leave a gated atom waiting


def _events(conductor: Conductor) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    conductor.notifier.register(
        conductor.notifier.ANY, lambda event, details: seen.append((event, details))
    )
    return seen


def _record(persistence: Any, flow_uuid: str) -> Any:
    with contextlib.closing(persistence.get_connection()) as conn:
        return conn.get_flow_details(flow_uuid)


def test_a_taskflow_program_posts_a_job_and_a_blocking_conductor_runs_it(conf, persistence) -> None:
    board = fetch_board(conf, persistence)
    job, _, flow_detail = post_flow_job(board, persistence, "p", store={"x": 2, "y": 3})
    conductor = conductor_backends.fetch("blocking", "cond-1", board, persistence=persistence)
    events = _events(conductor)
    conductor.connect()
    assert not conductor.dispatching
    conductor.run(max_dispatches=1)
    assert conductor.wait(timeout=5)
    # the flow ran, in the record the program posted, and the job was consumed
    assert support.RAN == ["add-p", "double-p"]
    record = _record(persistence, flow_detail.uuid)
    assert record.state == states.SUCCESS
    assert {atom.name: atom.results for atom in record} == {"add-p": 5, "double-p": 10}
    assert job.state == states.COMPLETE
    assert board.job_count == 0
    names = [event for event, _ in events]
    assert names == [
        "compilation_start",
        "compilation_end",
        "preparation_start",
        "preparation_end",
        "validation_start",
        "validation_end",
        "running_start",
        "running_end",
        "job_consumed",
    ]
    consumed = events[-1][1]
    assert isinstance(consumed["job"], Job)
    assert consumed["job"].uuid == job.uuid
    assert consumed["conductor"] is conductor
    assert consumed["persistence"] is persistence
    assert "engine" in events[0][1]
    conductor.close()
    assert not board.connected


def test_a_nonblocking_conductor_runs_several_jobs_on_a_parallel_engine(conf, persistence) -> None:
    board = fetch_board(conf, persistence)
    posted = [post_flow_job(board, persistence, tag)[0] for tag in ("n1", "n2", "n3")]
    conductor = conductor_backends.fetch(
        "nonblocking",
        "cond-n",
        board,
        persistence=persistence,
        engine="parallel",
        engine_options={"max_workers": 2},
        max_simultaneous_jobs=2,
        wait_timeout=0.05,
    )
    try:
        conductor.run(max_dispatches=3)
        assert sorted(support.RAN) == sorted(
            f"{step}-{tag}" for tag in ("n1", "n2", "n3") for step in ("add", "double")
        )
        assert [job.state for job in posted] == [states.COMPLETE] * 3
    finally:
        conductor.close()


def test_a_job_posted_without_a_flow_is_trashed_and_never_imported(conf, persistence) -> None:
    board = fetch_board(conf, persistence)
    plain = board.post("plain", details={"note": "for a worker of the program's own"})
    conductor = conductor_backends.fetch("blocking", "cond-t", board, persistence=persistence)
    events = _events(conductor)
    try:
        conductor.run(max_dispatches=1)
        assert [(event, details["job"].name) for event, details in events] == [
            ("job_trashed", "plain")
        ]
        assert plain.state == states.COMPLETE
        assert board.job_count == 0
    finally:
        conductor.close()


def test_stop_abandons_the_job_and_another_conductor_resumes_its_record(conf, persistence) -> None:
    board = fetch_board(conf, persistence)
    job, _, flow_detail = post_flow_job(board, persistence, "g", factory=support.make_gated_flow)
    conductor = conductor_backends.fetch("blocking", "cond-s", board, persistence=persistence)
    events = _events(conductor)
    runner = threading.Thread(target=conductor.run)
    runner.start()
    try:
        assert support.AT_GATE.wait(30)
        assert conductor.dispatching
        conductor.stop()
        engine = next(d["engine"] for event, d in events if event == "running_start")
        deadline = time.monotonic() + 30
        while engine.storage.get_flow_state() != states.SUSPENDING:
            assert time.monotonic() < deadline, "stop() never suspended the engine"
            time.sleep(0.01)
        support.GATE.set()  # the running atom finishes; nothing after it starts
        assert conductor.wait(timeout=30)
        runner.join(30)
        assert not runner.is_alive()
        assert [event for event, _ in events][-1] == "job_abandoned"
        assert job.state == states.UNCLAIMED
        assert support.RAN == ["gate-g"]
        assert _record(persistence, flow_detail.uuid).state == states.SUSPENDED
    finally:
        support.GATE.set()
        conductor.close()
    board = fetch_board(conf, persistence)
    second = conductor_backends.fetch("blocking", "cond-s2", board, persistence=persistence)
    try:
        second.run(max_dispatches=1)
        # the gate's SUCCESS was recorded: only the atom after it runs
        assert support.RAN == ["gate-g", "add-g"]
        record = _record(persistence, flow_detail.uuid)
        assert record.state == states.SUCCESS
        assert board.job_count == 0
    finally:
        second.close()


def test_without_any_persistence_the_runs_are_kept_in_memory(conf) -> None:
    board = fetch_board(conf)  # no persistence: the job's book is not stored anywhere
    from taskflow.persistence import backends as persistence_backends

    scratch = persistence_backends.fetch("memory://")
    job, _, _ = post_flow_job(board, scratch, "m")
    conductor = conductor_backends.fetch("blocking", "cond-m", board)
    try:
        conductor.run(max_dispatches=1)
        assert support.RAN == ["add-m", "double-m"]
        assert job.state == states.COMPLETE
    finally:
        conductor.close()


def test_unknown_kinds_name_the_two_that_exist(tmp_path: Path) -> None:
    board = fetch_board(next(board_conf("sqlite", tmp_path)))
    try:
        with pytest.raises(exc.NotFound, match=r"conductor fancy: .*'blocking'.*'nonblocking'"):
            conductor_backends.fetch("fancy", "c", board)
    finally:
        board.close()


def test_conductor_options_are_checked_when_it_is_made(tmp_path: Path, monkeypatch) -> None:
    conf = next(board_conf("sqlite", tmp_path))
    board = fetch_board(conf)
    try:
        with pytest.raises(ValueError, match="'executor_factory' must be callable"):
            conductor_backends.fetch("nonblocking", "c", board, executor_factory=5)
        with pytest.warns(UserWarning, match="executor_factory is not used"):
            conductor_backends.fetch("nonblocking", "c", board, executor_factory=lambda: None)
        with pytest.raises(TypeError, match="executor_factory= is for the 'nonblocking'"):
            conductor_backends.fetch("blocking", "c", board, executor_factory=lambda: None)
        with pytest.raises(exc.NotFound, match="Could not find engine 'worker-based'"):
            conductor_backends.fetch("blocking", "c", board, engine="worker-based")
        with pytest.raises(ValueError, match="wait_timeout takes a number of seconds"):
            conductor_backends.fetch("blocking", "c", board, wait_timeout=0)
        with pytest.raises(TypeError, match=r"takes a job board from taskflow\.jobs\.backends"):
            conductor_backends.fetch("blocking", "c", "sqlite:///jobs.db")
    finally:
        board.close()
    monkeypatch.delenv("TIDEFLOW_ALLOWED", raising=False)
    bare = fetch_board({"board": conf["board"]})
    try:
        with pytest.raises(ValueError, match=r"may run no flow factory: .*'allowed'"):
            conductor_backends.fetch("blocking", "c", bare)
    finally:
        bare.close()


def test_a_job_claimed_elsewhere_is_left_to_its_owner(conf, persistence) -> None:
    board = fetch_board(conf, persistence)
    job, _, _ = post_flow_job(board, persistence, "o")
    board.claim(job, "someone-else")
    conductor = conductor_backends.fetch(
        "blocking", "cond-o", board, persistence=persistence, wait_timeout=0.05
    )
    stopper = threading.Timer(1.0, conductor.stop)
    stopper.start()
    try:
        conductor.run()  # nothing it may claim until stopped
        assert support.RAN == []
        assert board.find_owner(job) == "someone-else"
    finally:
        stopper.cancel()
        conductor.close()
