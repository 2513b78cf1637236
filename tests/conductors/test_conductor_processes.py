"""Conductor processes (``tideflow conductor``) sharing a board, killed, paused, stopped.

Leases are 1 s here so that a dead or paused conductor's job is free again quickly.
Every atom writes to a ledger file when it starts and when it returns, so the tests
count executions across processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from conductor_procs_support import (
    ALLOWED,
    Where,
    conductor_process,
    finished,
    go,
    started,
    steps_job,
    wait_for,
)

import tideflow
from tideflow.jobs import Board, JobState

STEPS = f"{ALLOWED}:steps"
LEASE = "1"

pytestmark = pytest.mark.slow


def record(store_url: str, flow_uuid: str) -> tideflow.persistence.models.FlowDetail:
    store = tideflow.connect(store_url)
    try:
        with store.get_connection() as conn:
            return conn.get_flow_details(flow_uuid)
    finally:
        store.close()


def lease_ran_out(board: Board, uuid: str) -> bool:
    job = board.get(uuid)
    return job.lease_expires is not None and job.lease_expires < time.time() - 0.1


def test_two_conductor_processes_share_the_jobs_and_run_each_once(where: Where, board: Board):
    names = [f"j{n}" for n in range(8)]
    for name in names:
        # every job waits in s1 until released: both conductors are then seen holding one
        board.post(name, STEPS, kwargs=steps_job(where.ledger, name, pause_at="s1"))
    with (
        # the default lease: 1 s could run out under a loaded machine's delays, and the
        # other conductor would then rightly run that job again (at least once)
        conductor_process(where, "--until-idle", "--name", "a") as a,
        conductor_process(where, "--until-idle", "--name", "b") as b,
    ):
        wait_for(
            "both conductors in s1",
            lambda: {p for n in names for p in started(where.ledger, n, "s1")} == {a.pid, b.pid},
            timeout=60,
            show=(a, b),
        )
        go(where.ledger)
        for proc in (a, b):
            code, err = proc.finish()
            assert code == 0, err
            assert "Traceback" not in err
    assert list(board.iterjobs()) == []
    for name in names:
        for atom in ("s1", "s2", "s3"):
            assert len(started(where.ledger, name, atom)) == 1, (name, atom)
            assert finished(where.ledger, name, atom) == 1


def test_a_killed_conductors_run_is_resumed_by_another_skipping_what_succeeded(
    where: Where, board: Board
):
    job = board.post("k", STEPS, kwargs=steps_job(where.ledger, "k", pause_at="s2"))
    with conductor_process(where, "--lease", LEASE, "--name", "doomed") as doomed:
        wait_for("s2 running", lambda: started(where.ledger, "k", "s2"), timeout=60)
        doomed.send_signal(signal.SIGKILL)  # mid-atom: no cleanup at all
        doomed.popen.wait(30)
    assert board.get(job.uuid).owner == "doomed"
    wait_for("the dead conductor's lease to run out", lambda: lease_ran_out(board, job.uuid))
    go(where.ledger)
    with conductor_process(where, "--lease", LEASE, "--max-jobs", "1", "--name", "heir") as heir:
        code, err = heir.finish()
    assert code == 0, err
    assert f"resuming run {job.uuid} from its record" in err
    assert "1 consumed" in err
    assert started(where.ledger, "k", "s1") == [doomed.pid]  # SUCCESS: not run again
    assert started(where.ledger, "k", "s2") == [doomed.pid, heir.pid]  # caught running
    assert started(where.ledger, "k", "s3") == [heir.pid]
    assert list(board.iterjobs()) == []
    done = record(where.store, job.uuid)
    assert done.state is tideflow.FlowState.SUCCESS
    assert {d.name: d.results for d in done} == {f"s{n}": f"s{n} of k" for n in (1, 2, 3)}


def test_a_conductor_paused_past_its_lease_cannot_commit_and_drops_the_job(
    where: Where, board: Board
):
    job = board.post("p", STEPS, kwargs=steps_job(where.ledger, "p", pause_at="s2"))
    with conductor_process(where, "--lease", LEASE, "--max-jobs", "1", "--name", "paused") as old:
        wait_for("s2 running", lambda: started(where.ledger, "p", "s2"), timeout=60)
        old.send_signal(signal.SIGSTOP)
        try:
            wait_for(
                "the paused conductor's lease to run out", lambda: lease_ran_out(board, job.uuid)
            )
            with conductor_process(
                where, "--lease", LEASE, "--max-jobs", "1", "--name", "new"
            ) as new:
                wait_for("s2 running again", lambda: len(started(where.ledger, "p", "s2")) == 2, 60)
                go(where.ledger)
                code, err = new.finish()
            assert code == 0, err
            assert "1 consumed" in err
            assert list(board.iterjobs()) == []
            assert record(where.store, job.uuid).state is tideflow.FlowState.SUCCESS
        finally:
            old.send_signal(signal.SIGCONT)
        code, err = old.finish()
    assert code == 0, err
    # it woke in s2, whose result it could not commit: it stopped there and let the job go
    assert finished(where.ledger, "p", "s2") == 2
    assert started(where.ledger, "p", "s3") == [new.pid]
    assert "(p) dropped, no longer ours: " in err
    assert "RunOwnedError" in err  # its write was refused: the record has a newer owner
    assert "1 dropped" in err
    assert "0 consumed, 0 abandoned" in err
    assert "Traceback" not in err
    assert record(where.store, job.uuid).state is tideflow.FlowState.SUCCESS


def test_sigterm_lets_the_running_job_finish_within_the_grace(where: Where, board: Board):
    job = board.post("t", STEPS, kwargs=steps_job(where.ledger, "t", pause_at="s1"))
    other = board.post("u", STEPS, kwargs=steps_job(where.ledger, "u"))
    with conductor_process(where, "--lease", LEASE, "--grace", "60", "--name", "t") as proc:
        wait_for("s1 running", lambda: started(where.ledger, "t", "s1"), timeout=60)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        go(where.ledger)
        code, err = proc.finish()
    assert code == 0, err
    assert "1 jobs dispatched, 1 consumed" in err
    assert [j.uuid for j in board.iterjobs()] == [other.uuid]  # no claim after SIGTERM
    assert record(where.store, job.uuid).state is tideflow.FlowState.SUCCESS


def test_sigterm_past_the_grace_suspends_and_abandons_cleanly(where: Where, board: Board):
    job = board.post("g", STEPS, kwargs=steps_job(where.ledger, "g", pause_at="s1"))
    with conductor_process(where, "--lease", LEASE, "--grace", "0.2", "--name", "g") as proc:
        wait_for("s1 running", lambda: started(where.ledger, "g", "s1"), timeout=60)
        proc.send_signal(signal.SIGTERM)
        wait_for("the grace to pass", lambda: "suspending the run of job" in proc.log)
        go(where.ledger)  # the running atom ends and is recorded; nothing new starts
        code, err = proc.finish()
    assert code == 0, err
    assert "1 abandoned" in err
    left = board.get(job.uuid)
    assert (left.state, left.owner, left.attempts) == (JobState.UNCLAIMED, None, 1)
    assert record(where.store, job.uuid).state is tideflow.FlowState.SUSPENDED
    assert started(where.ledger, "g", "s2") == []


def test_a_process_pool_command_logs_from_its_workers_and_stops_on_sigterm(
    where: Where, board: Board
):
    board.post("free", STEPS, kwargs=steps_job(where.ledger, "free"), priority=1)
    held = [
        board.post(n, STEPS, kwargs=steps_job(where.ledger, n, pause_at="s1")) for n in ("x", "y")
    ]
    args = ("--workers", "2", "--pool", "processes", "--lease", LEASE, "--grace", "0.2")
    with conductor_process(where, *args, "--name", "pool") as proc:
        wait_for(
            "both held jobs in s1",
            lambda: started(where.ledger, "x", "s1") and started(where.ledger, "y", "s1"),
            timeout=90,
        )
        proc.send_signal(signal.SIGTERM)
        wait_for("both runs suspending", lambda: proc.log.count("suspending the run of job") == 2)
        go(where.ledger)
        code, err = proc.finish(90)
    assert code == 0, err
    workers = {started(where.ledger, n, "s1")[0] for n in ("x", "y")}
    assert len(workers) == 2
    assert proc.pid not in workers
    assert "(free) consumed" in err  # an INFO line, logged by a worker process
    assert "3 jobs dispatched, 1 consumed, 2 abandoned" in err
    for job in held:
        left = board.get(job.uuid)
        assert (left.state, left.attempts) == (JobState.UNCLAIMED, 1)
    assert "Traceback" not in err


def _children(pid: int) -> list[int]:
    """PIDs of the live worker processes (multiprocessing's spawned children) of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                spawned = b"spawn_main" in (entry / "cmdline").read_bytes()
                if int(fields[1]) == pid and fields[0] != "Z" and spawned:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_process_pool_workers_stop_when_their_parent_is_killed(where: Where, board: Board):
    args = ("--workers", "2", "--pool", "processes", "--name", "orphaned")
    with conductor_process(where, *args) as proc:
        wait_for("two worker processes", lambda: len(_children(proc.pid)) >= 2, timeout=60)
        workers = [pid for pid in _children(proc.pid) if _alive(pid)]
        proc.send_signal(signal.SIGKILL)
        proc.popen.wait(30)
        wait_for(
            "the orphaned workers to stop",
            lambda: not any(_alive(pid) for pid in workers),
            timeout=30,
        )
    # a job posted now is left for a live conductor: nobody claimed it
    job = board.post("later", STEPS, kwargs=steps_job(where.ledger, "later"))
    time.sleep(0.5)
    assert board.get(job.uuid).state is JobState.UNCLAIMED


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_a_process_pool_starts_a_new_worker_in_place_of_one_that_was_killed(
    where: Where, board: Board
):
    board.post("held", STEPS, kwargs=steps_job(where.ledger, "held", pause_at="s1"))
    args = ("--workers", "2", "--pool", "processes", "--lease", LEASE, "--name", "pool")
    with conductor_process(where, *args) as proc:
        wait_for("the held job in s1", lambda: started(where.ledger, "held", "s1"), timeout=90)
        victim = started(where.ledger, "held", "s1")[0]
        first = set(_children(proc.pid))
        assert victim in first
        os.kill(victim, signal.SIGKILL)
        wait_for(
            "a new worker process in the killed one's place",
            lambda: len(_children(proc.pid)) == 2 and not set(_children(proc.pid)) <= first,
            timeout=60,
            show=(proc,),
        )
        go(where.ledger)
        # the killed worker's job: its lease runs out, a worker resumes it from s1
        wait_for("the held job resumed and finished", lambda: finished(where.ledger, "held", "s3"))
        board.post("later", STEPS, kwargs=steps_job(where.ledger, "later"))
        wait_for("a job posted later done", lambda: finished(where.ledger, "later", "s3"))
        wait_for("both jobs consumed", lambda: list(board.iterjobs()) == [])
        proc.send_signal(signal.SIGTERM)
        code, err = proc.finish(90)
    assert code == 0, err
    assert "ended with exit code -9; a new one starts in 0.5 s" in err
    assert len(started(where.ledger, "held", "s1")) == 2  # caught running: run again
    assert finished(where.ledger, "held", "s1") == 1
    assert "Traceback" not in err
