"""Conductors in the test's own process, over SQLite (and PostgreSQL when enabled)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conductor_procs_support import (
    ALLOWED,
    Where,
    finished,
    go,
    started,
    steps_job,
    wait_for,
)

import tideflow
from tideflow.conductors import (
    EVENTS,
    Conductor,
    PooledConductor,
    Statistics,
    stop_on_signals,
)
from tideflow.conductors._work import CLAIM_AHEAD_WINDOW
from tideflow.jobs import Board, Job, JobState, LeaseLostError
from tideflow.persistence.models import FlowDetail, LogBook

STEPS = f"{ALLOWED}:steps"


def conductor(where: Where, board: Board, store: Any, **options: Any) -> Conductor:
    options.setdefault("wait_timeout", 0.05)
    return Conductor("c-test", board, store, **options)


def record(store: Any, flow_uuid: str) -> FlowDetail:
    with store.get_connection() as conn:
        return conn.get_flow_details(flow_uuid)  # type: ignore[no-any-return]


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


# -- running jobs to their end ------------------------------------------------------------


def test_posted_jobs_run_once_and_are_consumed_with_results_in_the_store(where, board, store):
    posted = [board.post(f"j{n}", STEPS, kwargs=steps_job(where.ledger, f"j{n}")) for n in (0, 1)]
    named = board.post(
        "j2", STEPS, kwargs=steps_job(where.ledger, "j2"), details={"flow_uuid": "run-of-j2"}
    )
    with conductor(where, board, store) as c:
        assert c.run(until_idle=True) == 3
        assert c.statistics() == Statistics(dispatched=3, consumed=3)
    assert list(board.iterjobs()) == []
    for job, flow_uuid in [
        (posted[0], posted[0].uuid),
        (posted[1], posted[1].uuid),
        (named, "run-of-j2"),
    ]:
        done = record(store, flow_uuid)
        assert done.state is tideflow.FlowState.SUCCESS
        assert {d.name: d.results for d in done} == {
            f"s{n}": f"s{n} of {job.name}" for n in (1, 2, 3)
        }
        assert done.meta["factory"]["name"] == "conductor_flows_support.steps"
        for atom in ("s1", "s2", "s3"):
            assert started(where.ledger, job.name, atom) == [os.getpid()]


def test_a_reverted_run_is_consumed_and_logged(where, board, store, caplog):
    job = board.post("f", f"{ALLOWED}:failing", kwargs={"job": "f", "ledger": where.ledger})
    with caplog.at_level(logging.INFO, "tideflow.conductors"), conductor(where, board, store) as c:
        assert c.run(until_idle=True) == 1
        assert c.statistics().consumed == 1
    assert list(board.iterjobs()) == []
    assert record(store, job.uuid).state is tideflow.FlowState.REVERTED
    assert f"job {job.uuid} (f) consumed: its run ended REVERTED" in caplog.text


def test_a_stop_from_a_job_consumed_listener_suspends_nothing(where, board, store, caplog):
    # the consumed job is still being settled when its event is sent: stop(0) there must
    # not log that run as suspended; the job queued behind it is given back untried
    board.post("a", STEPS, kwargs=steps_job(where.ledger, "a"), priority=1)
    second = board.post("b", STEPS, kwargs=steps_job(where.ledger, "b"))
    with caplog.at_level(logging.INFO, "tideflow.conductors"), conductor(where, board, store) as c:
        c.notifier.register("job_consumed", lambda event, details: c.stop(0))
        c.run()
        assert c.statistics().consumed == 1
    assert "suspending the run" not in caplog.text
    assert [job.uuid for job in board.iterjobs()] == [second.uuid]  # the first consumed
    left = board.get(second.uuid)
    assert (left.state, left.attempts) == (JobState.UNCLAIMED, 0)
    assert finished(where.ledger, "a", "s3") == 1
    assert started(where.ledger, "b", "s1") == []


@pytest.mark.parametrize(
    ("factory", "kwargs", "why"),
    [
        (f"{ALLOWED}:not_a_flow", {}, "returned str, not a flow"),
        (f"{ALLOWED}:nowhere", {}, "does not exist: conductor_flows_support has no 'nowhere'"),
        (f"{ALLOWED}.missing:make", {}, "cannot be imported (ModuleNotFoundError"),
        (f"{ALLOWED}:needs_value", {}, "its flow cannot run: nothing provides"),
    ],
)
def test_a_job_that_can_never_run_is_trashed_saying_why(
    where, board, store, caplog, factory, kwargs, why
):
    job = board.post("bad", factory, kwargs=kwargs)
    seen: list[tuple[str, Job]] = []
    with caplog.at_level(logging.INFO, "tideflow.conductors"), conductor(where, board, store) as c:
        c.notifier.register(
            "job_trashed", lambda event, details: seen.append((event, details["job"]))
        )
        assert c.run(until_idle=True) == 1
        assert c.statistics() == Statistics(dispatched=1, trashed=1)
    assert board.get(job.uuid).state is JobState.TRASHED
    assert [(e, j.uuid, j.state) for e, j in seen] == [("job_trashed", job.uuid, JobState.TRASHED)]
    assert f"job {job.uuid} (bad) trashed: " in caplog.text
    assert why in caplog.text


def test_a_record_naming_a_factory_outside_the_allow_list_is_trashed(where, board, store, caplog):
    planted = FlowDetail("planted", uuid="planted-run")
    planted.meta["factory"] = {"name": "os.system", "args": ["echo owned"], "kwargs": {}}
    book = LogBook("planted")
    book.add(planted)
    with store.get_connection() as conn:
        conn.save_logbook(book)
    job = board.post(
        "sly", STEPS, kwargs=steps_job(where.ledger, "sly"), details={"flow_uuid": "planted-run"}
    )
    with caplog.at_level(logging.INFO, "tideflow.conductors"), conductor(where, board, store) as c:
        c.run(until_idle=True)
    assert board.get(job.uuid).state is JobState.TRASHED
    assert "names the flow factory 'os.system', outside the board's allow-list" in caplog.text
    assert not Path(where.ledger).exists()


def test_a_job_whose_run_had_finished_is_consumed_without_running_again(where, board, store):
    engine = tideflow.load_from_factory(
        __import__("conductor_flows_support").steps,
        factory_kwargs=steps_job(where.ledger, "once"),
        backend=store,
    )
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    assert len(started(where.ledger, "once", "s1")) == 1
    job = board.post(
        "again", STEPS, kwargs=steps_job(where.ledger, "once"), details={"flow_uuid": flow_uuid}
    )
    with conductor(where, board, store) as c:
        assert c.run(until_idle=True) == 1
        assert c.statistics().consumed == 1
    assert list(board.iterjobs()) == []
    assert job.uuid not in {j.uuid for j in board.iterjobs()}
    assert len(started(where.ledger, "once", "s1")) == 1  # not run again


def test_a_failing_factory_is_abandoned_until_the_board_trashes_it(where, store):
    from tideflow import jobs

    board = jobs.connect(where.board, allowed=(ALLOWED,), max_attempts=2, **where.board_options)
    try:
        job = board.post("flaky", f"{ALLOWED}:raising")
        with conductor(where, board, store) as c:
            assert c.run(until_idle=True) == 2
            assert c.statistics() == Statistics(dispatched=2, abandoned=2)
        left = board.get(job.uuid)
        assert (left.state, left.attempts) == (JobState.TRASHED, 2)
    finally:
        board.close()


def test_max_jobs_bounds_what_run_dispatches(where, board, store):
    for n in range(3):
        board.post(f"m{n}", STEPS, kwargs=steps_job(where.ledger, f"m{n}", atoms=1))
    with conductor(where, board, store) as c:
        assert c.run(max_jobs=2) == 2
        assert c.run(max_jobs=0) == 0
    assert [j.name for j in board.iterjobs()] == ["m2"]


# -- events ---------------------------------------------------------------------------------


def test_events_follow_taskflows_names_with_the_job_in_their_details(where, board, store):
    job = board.post("e", STEPS, kwargs=steps_job(where.ledger, "e", atoms=1))
    seen: list[tuple[str, dict[str, Any]]] = []
    with conductor(where, board, store) as c:
        c.notifier.register("*", lambda event, details: seen.append((event, details)))
        with pytest.raises(ValueError, match="'job_finished' is not one this notifier reports"):
            c.notifier.register("job_finished", print)
        c.run(until_idle=True)
    assert [event for event, _ in seen] == [
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
    assert set(EVENTS) >= {event for event, _ in seen}
    for event, details in seen:
        assert details["job"].uuid == job.uuid
        assert details["conductor"] is c
        if event.startswith("job_"):
            assert details["persistence"] is c.store
        else:
            assert isinstance(details["engine"], tideflow.Engine)


# -- pools ------------------------------------------------------------------------------------


def test_a_thread_pool_runs_several_jobs_at_once(where, board, store):
    for n in range(3):
        board.post(f"t{n}", STEPS, kwargs=steps_job(where.ledger, f"t{n}", pause_at="s1"))
    with PooledConductor("pool", board, store, workers=3, wait_timeout=0.05) as c:
        thread, out = in_thread(lambda: c.run(until_idle=True))
        # all three wait in s1 at once: only a pool of three can get them there
        wait_for(
            "three jobs in s1", lambda: all(started(where.ledger, f"t{n}", "s1") for n in range(3))
        )
        go(where.ledger)
        thread.join(60)
        assert out == [3]
        assert c.statistics().consumed == 3
    assert list(board.iterjobs()) == []


def test_a_process_pool_runs_jobs_in_worker_processes(where, board):
    for n in range(4):
        board.post(f"p{n}", STEPS, kwargs=steps_job(where.ledger, f"p{n}", pause_at="s1"))
    seen: list[str] = []
    c = PooledConductor(
        "procs",
        where.board,
        where.store,
        workers=2,
        pool="processes",
        allowed=(ALLOWED,),
        board_options=where.board_options,
        wait_timeout=0.05,
    )
    with c:
        c.notifier.register("job_consumed", lambda event, details: seen.append(details["job"].name))
        thread, out = in_thread(lambda: c.run(until_idle=True))
        wait_for(
            "two worker processes in s1",
            lambda: len({p for n in range(4) for p in started(where.ledger, f"p{n}", "s1")}) == 2,
            timeout=60,
        )
        go(where.ledger)
        thread.join(90)
        assert out == [4]
    pids = {p for n in range(4) for p in started(where.ledger, f"p{n}", "s1")}
    assert os.getpid() not in pids
    assert sorted(seen) == ["p0", "p1", "p2", "p3"]
    assert c.statistics().consumed == 4
    assert list(board.iterjobs()) == []


# -- stopping --------------------------------------------------------------------------------


def test_stop_lets_a_running_job_finish_within_the_grace_and_claims_no_more(where, board, store):
    board.post("first", STEPS, kwargs=steps_job(where.ledger, "first", pause_at="s1"))
    with conductor(where, board, store) as c:
        thread, out = in_thread(c.run)
        wait_for("s1 of the first job", lambda: started(where.ledger, "first", "s1"))
        board.post("second", STEPS, kwargs=steps_job(where.ledger, "second"))
        c.stop(grace=60)
        go(where.ledger)
        thread.join(60)
        assert c.wait(1)
        assert out == [1]
        assert c.statistics().consumed == 1
    assert [j.name for j in board.iterjobs()] == ["second"]


def test_stop_past_the_grace_suspends_the_run_and_abandons_the_job(where, board, store):
    job = board.post("slow", STEPS, kwargs=steps_job(where.ledger, "slow", pause_at="s1"))
    abandoned: list[Job] = []
    with conductor(where, board, store) as c:
        c.notifier.register(
            "job_abandoned", lambda event, details: abandoned.append(details["job"])
        )
        thread, out = in_thread(c.run)
        wait_for("s1", lambda: started(where.ledger, "slow", "s1"))
        c.stop(grace=0)
        wait_for("the run suspending", lambda: any(h.stopping for h in c.worker.held()))
        go(where.ledger)  # the running atom finishes and is recorded; nothing new starts
        thread.join(60)
        assert out == [1]
    left = board.get(job.uuid)
    assert (left.state, left.attempts, left.owner) == (JobState.UNCLAIMED, 1, None)
    assert [j.attempts for j in abandoned] == [1]
    assert record(store, job.uuid).state is tideflow.FlowState.SUSPENDED
    assert started(where.ledger, "slow", "s2") == []
    # another conductor resumes it from its record: s1 is not run again
    with conductor(where, board, store) as again:
        assert again.run(until_idle=True) == 1
    assert len(started(where.ledger, "slow", "s1")) == 1
    assert finished(where.ledger, "slow", "s3") == 1
    assert record(store, job.uuid).state is tideflow.FlowState.SUCCESS


def test_stop_on_signals_stops_on_sigterm_and_restores_the_handler(where, board, store):
    board.post("sig", STEPS, kwargs=steps_job(where.ledger, "sig", pause_at="s1"))
    before = signal.getsignal(signal.SIGTERM)
    with conductor(where, board, store) as c:
        with stop_on_signals(c, grace=60):
            thread, out = in_thread(c.run)
            wait_for("s1", lambda: started(where.ledger, "sig", "s1"))
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for("stopping", lambda: not c.dispatching)
            go(where.ledger)
            thread.join(60)
        assert out == [1]
        assert c.statistics().consumed == 1
    assert signal.getsignal(signal.SIGTERM) is before


class _LosingBoard:
    """A board whose renewals report the claim lost once ``lose`` is set."""

    def __init__(self, board: Board) -> None:
        self._board = board
        self.lose = threading.Event()
        self.down = threading.Event()
        self.settled: list[str] = []
        self.url, self.allowed, self.max_attempts = board.url, board.allowed, board.max_attempts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._board, name)

    def renew(self, job: Job, who: str, token: int, lease: float = 10.0) -> Job:
        if self.lose.is_set():
            raise LeaseLostError(f"test: job {job.uuid} was claimed by another")
        if self.down.is_set():
            raise tideflow.StoreError("test: the board is down")
        return self._board.renew(job, who, token, lease)

    def consume(self, job: Job, who: str, token: int) -> None:
        self.settled.append("consume")
        self._board.consume(job, who, token)

    def abandon(self, job: Job, who: str, token: int) -> Job:
        self.settled.append("abandon")
        return self._board.abandon(job, who, token)


def test_a_lost_lease_suspends_the_run_and_drops_the_job(where, board, store, caplog):
    job = board.post("lost", STEPS, kwargs=steps_job(where.ledger, "lost", pause_at="s1"))
    losing = _LosingBoard(board)
    made = Conductor("c-lose", losing, store, lease=0.3, wait_timeout=0.05)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, "tideflow.conductors"), made as c:
        thread, out = in_thread(lambda: c.run(max_jobs=1))
        wait_for("s1", lambda: started(where.ledger, "lost", "s1"))
        losing.lose.set()
        wait_for("the run suspending", lambda: any(h.lost for h in c.worker.held()))
        go(where.ledger)
        thread.join(60)
        assert out == [1]
        assert c.statistics() == Statistics(dispatched=1, dropped=1)
    assert losing.settled == []  # not ours any more: neither consumed nor abandoned
    assert started(where.ledger, "lost", "s2") == []
    assert f"lost job {job.uuid} (lost); suspending its run" in caplog.text
    assert f"job {job.uuid} (lost) dropped, no longer ours" in caplog.text


# -- mistakes ---------------------------------------------------------------------------------


def test_mistakes_in_making_a_conductor_are_refused_saying_what_to_do(where, board, store):
    with pytest.raises(ValueError, match=r"needs allowed=\('yourapp.flows',\)"):
        Conductor("c", where.board, store)
    with pytest.raises(
        ValueError, match="allowed= and board_options= are for a board given by URL"
    ):
        Conductor("c", board, store, allowed=("x",))
    from tideflow import jobs

    empty = jobs.connect(where.board)
    try:
        with pytest.raises(ValueError, match="allows no flow factory"):
            Conductor("c", empty, store)
    finally:
        empty.close()
    with pytest.raises(ValueError, match=r"engine_options= cannot set \['backend'\]"):
        Conductor("c", board, store, engine_options={"backend": "memory://"})
    with pytest.raises(tideflow.NotFoundError, match="unknown engine 'warp'"):
        Conductor("c", board, store, engine="warp")
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_wrkers'"):
        Conductor("c", board, store, engine_options={"max_wrkers": 2})
    with pytest.raises(ValueError, match="wait_timeout= takes a number of seconds, more than 0"):
        Conductor("c", board, store, wait_timeout=0)
    with pytest.raises(ValueError, match="lease= takes a number of seconds, more than 0"):
        Conductor("c", board, store, lease=0)
    with pytest.raises(TypeError, match="store= takes a store"):
        Conductor("c", board, 42)
    with pytest.raises(ValueError, match="workers= takes a whole number, 1 or more"):
        PooledConductor("c", board, store, workers=0)
    with pytest.raises(ValueError, match="pool= is 'threads' or 'processes'"):
        PooledConductor("c", board, store, pool="fibers")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give both as URLs"):
        PooledConductor("c", board, store, pool="processes")
    with (
        conductor(where, board, store) as c,
        pytest.raises(ValueError, match="max_jobs= takes a whole number"),
    ):
        c.run(max_jobs=-1)
    with pytest.raises(RuntimeError, match="is closed; make a new one"):
        c.run()


def test_a_stop_before_run_makes_run_return_at_once(where, board, store):
    board.post("idle", STEPS, kwargs=steps_job(where.ledger, "idle"))
    with conductor(where, board, store) as c:
        c.stop()
        assert c.run() == 0
        assert c.run(until_idle=True) == 1  # the stop was spent by the first run()


def test_the_conductors_public_names_are_sorted_and_exist():
    from tideflow import conductors

    assert conductors.__all__ == sorted(
        conductors.__all__, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    for name in conductors.__all__:
        assert hasattr(conductors, name), name


def test_a_board_out_of_reach_past_the_lease_suspends_the_run(where, board, store, caplog):
    job = board.post("cut", STEPS, kwargs=steps_job(where.ledger, "cut", pause_at="s1"))
    cut = _LosingBoard(board)
    made = Conductor("c-cut", cut, store, lease=0.3, wait_timeout=0.05)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, "tideflow.conductors"), made as c:
        thread, out = in_thread(lambda: c.run(max_jobs=1))
        wait_for("s1", lambda: started(where.ledger, "cut", "s1"))
        cut.down.set()
        wait_for("the run suspending", lambda: any(h.stopping for h in c.worker.held()))
        cut.down.clear()  # the board answers again: the job is given back
        go(where.ledger)
        thread.join(60)
        assert out == [1]
    assert cut.settled == ["abandon"]
    assert started(where.ledger, "cut", "s2") == []
    assert "could not renew the lease of job" in caplog.text
    assert (
        f"job {job.uuid} (cut) abandoned (attempt 1; now UNCLAIMED): the board could not"
        in caplog.text
    )


def test_a_claimed_job_outside_the_conductors_allow_list_is_trashed(where, board, store, caplog):
    # the board would hand the job out; the conductor checks the factory again itself
    job = board.post("wide", STEPS, kwargs=steps_job(where.ledger, "wide"))
    narrow = _LosingBoard(board)
    narrow.allowed = ("somewhere_else",)
    made = Conductor("c-narrow", narrow, store, wait_timeout=0.05)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, "tideflow.conductors"), made as c:
        assert c.run(max_jobs=1) == 1
        assert c.statistics().trashed == 1
    assert board.get(job.uuid).state is JobState.TRASHED
    assert "conductor 'c-narrow' refuses the flow factory 'conductor_flows_support:steps'" in (
        caplog.text
    )
    assert not Path(where.ledger).exists()


class _FinishFails:
    """A store whose commit of a run's SUCCESS fails once (a connection lost then)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_connection(self) -> Any:
        return _FinishFailsConnection(self, self.real.get_connection())


class _FinishFailsConnection:
    def __init__(self, store: _FinishFails, real: Any) -> None:
        self._store = store
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def save_round(self, flow_detail: Any, details: Any, **options: Any) -> Any:
        if flow_detail.state is tideflow.FlowState.SUCCESS and not self._store.failed:
            self._store.failed = True
            raise tideflow.StoreError("test: the connection was lost at the last commit")
        return self._real.save_round(flow_detail, details, **options)


def test_a_run_whose_finish_was_not_recorded_is_given_back_not_consumed(where, board, store):
    job = board.post("fin", STEPS, kwargs=steps_job(where.ledger, "fin"))
    flaky = _FinishFails(store)
    with Conductor("c-fin", board, flaky, lease=5, wait_timeout=0.05) as c:
        assert c.run(max_jobs=1) == 1
        assert c.statistics() == Statistics(dispatched=1, abandoned=1)
    assert flaky.failed
    assert board.get(job.uuid).attempts == 1
    assert record(store, job.uuid).state is not tideflow.FlowState.SUCCESS
    # the last atom's result was to be written with the run's end, in the commit that
    # failed: the next claim finds s1 and s2 SUCCESS and runs s3 again (at least once)
    with conductor(where, board, store) as again:
        assert again.run(until_idle=True) == 1
        assert again.statistics().consumed == 1
    assert record(store, job.uuid).state is tideflow.FlowState.SUCCESS
    assert [len(started(where.ledger, "fin", f"s{n}")) for n in (1, 2, 3)] == [1, 1, 2]


def _rewrite_factory(where: Where, board: Board, job: Job, factory: str) -> None:
    """Change the job's factory in the board's own storage, as a forged row would."""
    if where.kind == "redis":
        import redis

        client = redis.Redis.from_url(where.board)
        try:
            keys = [k for k in client.scan_iter(match=f"*{job.uuid}*") if client.type(k) == b"hash"]
            assert len(keys) == 1, keys
            assert client.hset(keys[0], "factory", factory) == 0  # the field existed
        finally:
            client.close()
        return
    import sqlalchemy as sa

    engine = sa.create_engine(where.board)
    try:
        with engine.begin() as conn:
            table = board.table  # type: ignore[attr-defined]
            changed = conn.execute(
                sa.text(f"UPDATE {table} SET factory = :f WHERE uuid = :u"),
                {"f": factory, "u": job.uuid},
            ).rowcount
        assert changed == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("factory", "why"),
    [
        (f"{ALLOWED}:_steps", "no name after the colon starts with '_'"),
        (f"{ALLOWED}.flows", "'package.module:function'"),
    ],
)
def test_a_forged_row_whose_factory_is_no_import_path_is_claimed_and_trashed(
    where, board, store, caplog, factory, why
):
    # post() refuses such a factory; a row changed behind the board's back still names an
    # allowed module, so claim_next hands it out and the conductor refuses to import it
    job = board.post("forged", STEPS, kwargs=steps_job(where.ledger, "forged"))
    _rewrite_factory(where, board, job, factory)
    with caplog.at_level(logging.INFO, "tideflow.conductors"), conductor(where, board, store) as c:
        assert c.run(until_idle=True) == 1
        assert c.statistics() == Statistics(dispatched=1, trashed=1)
    assert board.get(job.uuid).state is JobState.TRASHED
    assert f"job {job.uuid} (forged) trashed: " in caplog.text
    assert why in caplog.text
    assert not Path(where.ledger).exists()


# -- one call to the board between two jobs -------------------------------------------------


class _Spy:
    """A board that counts the calls made to it; it may lack consume_and_claim (then the
    conductor moves one job at a time), and consume_and_claim_next too."""

    COUNTED = ("claim_next", "consume", "consume_and_claim_next", "consume_and_claim", "release")

    def __init__(self, board: Board, *, combined: bool = True, batch: bool = False) -> None:
        self._board = board
        self._combined = combined
        self._batch = batch
        self.calls: list[str] = []
        #: (consumed, limit) of each consume_and_claim call, and the jobs it claimed
        self.batches: list[tuple[list[str], int, list[str]]] = []
        self.during_combined: Callable[[], None] = lambda: None

    def __getattr__(self, name: str) -> Any:
        if (name == "consume_and_claim_next" and not self._combined) or (
            name in ("consume_and_claim", "release") and not self._batch
        ):
            raise AttributeError(name)
        found = getattr(self._board, name)
        if name not in self.COUNTED:
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name in ("consume_and_claim_next", "consume_and_claim"):
                self.during_combined()
            out = found(*args, **kwargs)
            if name == "consume_and_claim":
                limit = args[3] if len(args) > 3 else kwargs.get("limit", 1)
                consumed = [job.name for job, _ in args[0]]
                self.batches.append((consumed, limit, [j.name for j in out.claimed]))
            return out

        return counted


def test_each_consume_claims_the_next_job_in_the_same_call(where, board, store):
    for n in range(4):
        board.post(f"f{n}", STEPS, kwargs=steps_job(where.ledger, f"f{n}", atoms=1))
    spy = _Spy(board)
    with conductor(where, spy, store) as c:
        assert c.run(until_idle=True) == 4
        assert c.statistics() == Statistics(dispatched=4, consumed=4)
    # one claim to start, then each consume claims the next (the last finds none)
    assert spy.calls == ["claim_next"] + ["consume_and_claim_next"] * 4
    assert list(board.iterjobs()) == []
    for n in range(4):
        assert finished(where.ledger, f"f{n}", "s1") == 1


def test_a_consume_claims_along_only_within_max_jobs(where, board, store):
    for n in range(3):
        board.post(f"m{n}", STEPS, kwargs=steps_job(where.ledger, f"m{n}", atoms=1))
    spy = _Spy(board)
    with conductor(where, spy, store) as c:
        assert c.run(max_jobs=2) == 2
    assert spy.calls == ["claim_next", "consume_and_claim_next", "consume"]
    left = list(board.iterjobs())
    assert [(j.name, j.state, j.attempts) for j in left] == [("m2", JobState.UNCLAIMED, 0)]


def test_a_board_without_the_combined_call_consumes_then_claims(where, board, store):
    for n in range(2):
        board.post(f"p{n}", STEPS, kwargs=steps_job(where.ledger, f"p{n}", atoms=1))
    spy = _Spy(board, combined=False)
    with conductor(where, spy, store) as c:
        assert c.run(until_idle=True) == 2
        assert c.statistics() == Statistics(dispatched=2, consumed=2)
    assert spy.calls == ["claim_next", "consume", "claim_next", "consume", "claim_next"]


def test_a_job_claimed_along_as_the_conductor_stops_is_given_back_unrun(where, board, store):
    board.post("first", STEPS, kwargs=steps_job(where.ledger, "first", atoms=1))
    second = board.post("second", STEPS, kwargs=steps_job(where.ledger, "second", atoms=1))
    spy = _Spy(board)
    with conductor(where, spy, store) as c:
        spy.during_combined = lambda: c.stop(grace=60)  # stop() lands mid-call
        assert c.run() == 1
        assert c.statistics() == Statistics(dispatched=2, consumed=1, abandoned=1)
    left = board.get(second.uuid)
    assert (left.state, left.attempts, left.owner) == (JobState.UNCLAIMED, 1, None)
    assert started(where.ledger, "second", "s1") == []


def test_a_lost_claim_at_consume_claims_nothing_along_and_the_loop_goes_on(where, board, store):
    first = board.post("first", STEPS, kwargs=steps_job(where.ledger, "first", atoms=1))
    board.post("second", STEPS, kwargs=steps_job(where.ledger, "second", atoms=1))
    spy = _Spy(board)

    def steal() -> None:  # another owner takes the first job over just before its consume
        if spy.calls.count("consume_and_claim_next") == 1:
            board.abandon(first.uuid, "c-test", board.current_token(first.uuid) or 0)
            board.claim(first.uuid, "thief", lease=60)

    spy.during_combined = steal
    with conductor(where, spy, store) as c:
        assert c.run(until_idle=True) == 2
        assert c.statistics() == Statistics(dispatched=2, consumed=1, dropped=1)
    # the refused consume claimed nothing: the loop claims the second job on its own
    assert spy.calls == ["claim_next", "consume_and_claim_next"] * 2
    assert [(j.name, j.owner) for j in board.iterjobs()] == [("first", "thief")]


# -- claiming ahead: one call to the board for a batch of jobs ------------------------------


def test_a_conductor_claims_ahead_and_consumes_in_batches(where, board, store):
    names = [f"b{n:02}" for n in range(16)]
    for name in names:
        board.post(name, STEPS, kwargs=steps_job(where.ledger, name, atoms=1))
    spy = _Spy(board, batch=True)
    with conductor(where, spy, store) as c:
        assert c.run(until_idle=True) == 16
        assert c.statistics() == Statistics(dispatched=16, consumed=16)
    assert set(spy.calls) == {"consume_and_claim"}
    # the first call claims one (nothing is known of the jobs yet); quick jobs are then
    # claimed several at a time, and their consumes wait for the next call
    assert spy.batches[0] == ([], 1, [names[0]])
    assert max(limit for _, limit, _ in spy.batches) > 1
    assert max(len(consumed) for consumed, _, _ in spy.batches) > 1
    assert len(spy.calls) < len(names)
    claimed = [name for _, _, got in spy.batches for name in got]
    consumed = [name for done, _, _ in spy.batches for name in done]
    assert claimed == names  # in order, each once
    assert sorted(consumed) == names
    assert list(board.iterjobs()) == []
    for name in names:
        assert (started(where.ledger, name, "s1"), finished(where.ledger, name, "s1")) == (
            [os.getpid()],
            1,
        )


def test_claim_ahead_1_claims_one_job_at_a_time(where, board, store):
    for n in range(4):
        board.post(f"o{n}", STEPS, kwargs=steps_job(where.ledger, f"o{n}", atoms=1))
    spy = _Spy(board, batch=True)
    with conductor(where, spy, store, claim_ahead=1) as c:
        assert c.run(until_idle=True) == 4
    assert [(len(done), limit) for done, limit, _ in spy.batches] == [(0, 1)] + [(1, 1)] * 4


def test_slow_jobs_are_claimed_one_at_a_time(where, board, store):
    """Claiming ahead holds jobs another conductor could start: a conductor claims only as
    many as it expects to start within CLAIM_AHEAD_WINDOW, so slow jobs come one by one."""
    for n in range(3):
        job = steps_job(where.ledger, f"s{n}", atoms=1, delay=2 * CLAIM_AHEAD_WINDOW)
        board.post(f"s{n}", STEPS, kwargs=job)
    spy = _Spy(board, batch=True)
    with conductor(where, spy, store) as c:
        assert c.run(until_idle=True) == 3
    assert [limit for _, limit, _ in spy.batches] == [1, 1, 1, 1]


def test_a_max_jobs_budget_bounds_the_jobs_claimed_ahead(where, board, store):
    for n in range(8):
        board.post(f"m{n}", STEPS, kwargs=steps_job(where.ledger, f"m{n}", atoms=1))
    spy = _Spy(board, batch=True)
    with conductor(where, spy, store) as c:
        assert c.run(max_jobs=3) == 3
        assert c.statistics() == Statistics(dispatched=3, consumed=3)
    assert sum(len(got) for _, _, got in spy.batches) == 3
    left = list(board.iterjobs())
    assert [(j.name, j.state, j.attempts) for j in left] == [
        (f"m{n}", JobState.UNCLAIMED, 0) for n in range(3, 8)
    ]


def test_jobs_claimed_ahead_are_given_back_unstarted_when_it_stops(where, board, store):
    names = [f"a{n}" for n in range(6)]
    for name in names:
        board.post(name, STEPS, kwargs=steps_job(where.ledger, name, atoms=1))
    spy = _Spy(board, batch=True)
    with conductor(where, spy, store) as c:

        def stop_on_the_second_call() -> None:
            if spy.calls.count("consume_and_claim") == 2:
                c.stop(grace=60)  # lands while the call claims the next batch

        spy.during_combined = stop_on_the_second_call
        assert c.run() == 1
        assert c.statistics() == Statistics(dispatched=1, consumed=1)
    (_, limit, claimed) = spy.batches[1]
    assert limit > 1
    assert claimed == names[1 : 1 + min(limit, 5)]  # as many as asked for, or all that were left
    assert spy.calls.count("release") == len(claimed)
    # given back at once, no attempt counted, never started
    assert [(j.name, j.state, j.owner, j.attempts) for j in board.iterjobs()] == [
        (name, JobState.UNCLAIMED, None, 0) for name in names[1:]
    ]
    for name in names[1:]:
        assert started(where.ledger, name, "s1") == []


def test_a_job_claimed_ahead_and_taken_over_is_left_to_its_new_owner(where, board, store):
    """Its old owner may still run it (the store fences it once the new owner takes its
    record over), but never consumes it: the consume names it lost, and it is dropped."""
    names = [f"t{n}" for n in range(6)]
    for name in names:
        board.post(name, STEPS, kwargs=steps_job(where.ledger, name, atoms=1))
    spy = _Spy(board, batch=True)
    stolen: list[str] = []
    with conductor(where, spy, store) as c:

        def steal(_event: str, details: dict[str, Any]) -> None:
            # as the second job starts, another owner takes the last one claimed ahead
            if details["job"].name == names[1] and not stolen:
                victim = spy.batches[-1][2][-1]
                (job,) = [j for j in board.iterjobs() if j.name == victim]
                board.abandon(job, "c-test", job.token)
                board.claim(job, "thief", lease=60)
                stolen.append(victim)

        c.notifier.register("running_start", steal)
        c.run(until_idle=True)
        stats = c.statistics()
    (victim,) = stolen
    assert victim != names[1]
    assert (stats.dropped, stats.consumed) == (1, len(names) - 1)
    assert [victim] == [lost for done, _, _ in spy.batches for lost in done if lost == victim]
    assert [(j.name, j.owner) for j in board.iterjobs()] == [(victim, "thief")]


def test_jobs_claimed_ahead_behind_a_long_one_are_given_back_for_others(
    where, board, store, monkeypatch
):
    """A job that runs past the window does not hold the jobs claimed ahead behind it:
    they are given back (no attempt counted) for another conductor, and the jobs that
    finished before it are consumed meanwhile."""
    from tideflow.conductors import _conductors, _work

    window = 0.5  # wide enough that the quick job surely fits (the batch is then claimed)
    monkeypatch.setattr(_work, "CLAIM_AHEAD_WINDOW", window)
    monkeypatch.setattr(_conductors, "CLAIM_AHEAD_WINDOW", window)
    board.post("quick", STEPS, kwargs=steps_job(where.ledger, "quick", atoms=1), priority=9)
    board.post("quick2", STEPS, kwargs=steps_job(where.ledger, "quick2", atoms=1), priority=8)
    board.post("slow", STEPS, kwargs=steps_job(where.ledger, "slow", atoms=1, pause_at="s1"))
    behind = [
        board.post(n, STEPS, kwargs=steps_job(where.ledger, n, atoms=1)) for n in ("b1", "b2")
    ]
    spy = _Spy(board, batch=True)
    with conductor(where, spy, store) as first:
        thread, _ = in_thread(lambda: first.run(until_idle=True))
        try:
            wait_for("the slow job to start", lambda: started(where.ledger, "slow", "s1"))
            assert spy.batches[1][2] == ["quick2", "slow", "b1", "b2"]  # claimed ahead
            wait_for("two jobs given back", lambda: spy.calls.count("release") == 2)
            wait_for("quick2 consumed", lambda: "quick2" not in [j.name for j in board.iterjobs()])
            assert spy.batches[2] == (["quick2"], 0, [])  # consumed while the slow one runs
            left = {j.name: j for j in board.iterjobs()}
            assert [(left[n].state, left[n].attempts) for n in ("b1", "b2")] == [
                (JobState.UNCLAIMED, 0)
            ] * 2
            with Conductor("other", board, store, wait_timeout=0.05) as other:
                assert other.run(until_idle=True) == 2
            for job in behind:
                assert started(where.ledger, job.name, "s1") == [os.getpid()]
        finally:
            go(where.ledger)
            thread.join(30)
        assert first.statistics() == Statistics(dispatched=3, consumed=3)
    assert list(board.iterjobs()) == []


def test_a_job_tried_before_runs_with_nothing_claimed_behind_it(where, board, store, monkeypatch):
    """A job whose earlier claim ended badly may kill its conductor again: the jobs
    claimed ahead behind it are given back before it starts (no attempt counted), so
    they are not charged an attempt if it does."""
    from tideflow.conductors import _conductors, _work

    monkeypatch.setattr(_work, "CLAIM_AHEAD_WINDOW", 0.5)
    monkeypatch.setattr(_conductors, "CLAIM_AHEAD_WINDOW", 0.5)
    board.post("first", STEPS, kwargs=steps_job(where.ledger, "first", atoms=1), priority=9)
    tried = board.post("tried", STEPS, kwargs=steps_job(where.ledger, "tried", atoms=1), priority=5)
    for name in ("y1", "y2"):
        board.post(name, STEPS, kwargs=steps_job(where.ledger, name, atoms=1))
    board.claim(tried, "ghost", lease=0.1)  # a conductor that died holding it
    wait_for("the ghost's lease to run out", lambda: board.wait(0) and _lease_over(board, tried))
    spy = _Spy(board, batch=True)
    seen: dict[str, Any] = {}

    def look(_event: str, details: dict[str, Any]) -> None:
        if details["job"].name == "tried":
            seen["job"] = details["job"]
            seen["others"] = {j.name: (j.state, j.attempts) for j in board.iterjobs()}
            seen["released"] = spy.calls.count("release")

    with conductor(where, spy, store) as c:
        c.notifier.register("running_start", look)
        assert c.run(until_idle=True) == 4
        assert c.statistics() == Statistics(dispatched=4, consumed=4)
    assert spy.batches[1][2] == ["tried", "y1", "y2"]
    assert seen["job"].attempts == 1
    assert seen["released"] == 2
    assert seen["others"]["y1"] == seen["others"]["y2"] == (JobState.UNCLAIMED, 0)
    assert list(board.iterjobs()) == []


def _lease_over(board: Board, job: Job) -> bool:
    expires = board.get(job.uuid).lease_expires
    return expires is not None and expires < time.time()


def test_jobs_claimed_ahead_whose_leases_went_unrenewed_are_given_back_not_run(
    where, board, store, monkeypatch
):
    """A conductor paused (or cut off from the board) past half a lease may have lost the
    jobs it claimed ahead to another conductor: it gives them back instead of starting
    them, and runs them again only under a new claim."""
    from tideflow.conductors import _conductors, _work

    monkeypatch.setattr(_work, "CLAIM_AHEAD_WINDOW", 5.0)  # the whole batch is claimed
    monkeypatch.setattr(_conductors, "CLAIM_AHEAD_WINDOW", 5.0)
    monkeypatch.setattr(_work.LeaseKeeper, "renew", lambda self, held: None)  # "paused"
    names = ["p0", "p1", "p2", "p3"]
    for name in names:
        board.post(name, STEPS, kwargs=steps_job(where.ledger, name, atoms=1))
    spy = _Spy(board, batch=True)

    def pause(_event: str, details: dict[str, Any]) -> None:
        if details["job"].name == "p1" and spy.calls.count("release") == 0:
            time.sleep(0.7)  # more than half of the 1 s lease, none renewed meanwhile

    with conductor(where, spy, store, lease=1.0) as c:
        c.notifier.register("running_end", pause)
        assert c.run(until_idle=True) == 4
        assert c.statistics() == Statistics(dispatched=4, consumed=4)
    assert spy.batches[1][2] == ["p1", "p2", "p3"]
    assert spy.calls.count("release") == 2  # p2 and p3: given back, not started
    claimed = [name for _, _, got in spy.batches for name in got]
    assert sorted(claimed) == sorted([*names, "p2", "p3"])  # claimed again, then run
    for name in names:
        assert (len(started(where.ledger, name, "s1")), finished(where.ledger, name, "s1")) == (
            1,
            1,
        )
    assert list(board.iterjobs()) == []
