"""The job-board benchmark's workers that run in this interpreter: the floor and tideflow.

Usage (run as a script by ``bench/jobs.py``; see ``_jobs_common`` for the protocol)::

    python bench/jobs_worker.py setup KIND URL N     # make the queue, post N no-op jobs
    python bench/jobs_worker.py work KIND URL WHO    # one worker process: drain the queue

KIND is one of:

``floor``
    The bare claim loop: one autocommit statement claims,
    ``UPDATE ... WHERE id = (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``,
    and one autocommit ``DELETE`` completes. Two statements, two commits per job:
    what any PostgreSQL queue with a commit per claim and per completion pays at least.
``board``
    tideflow's SQL job board: ``board.claim_next(who)`` then ``board.consume(job, who,
    token)`` on ``tideflow.jobs.connect(url)``, the jobs posted through ``board.post()``
    (the first one; the rest are copies of its row made by one ``INSERT ... SELECT``,
    with fresh uuids, so that setting up 10,000 jobs takes no time).

``conductor``
    tideflow's conductors: each worker process is one ``tideflow.conductors.Conductor``
    running ``run(until_idle=True)`` on the board; the jobs are ``bench.jobs_flows:noop``
    (one no-op task) and the runs are recorded in a ``memory://`` store of the process.
``conductor3``
    The same with ``bench.jobs_flows:three`` (three no-op tasks) and full run records in
    a PostgreSQL store, the bench database itself (``tideflow.connect(url)``).
``idle``
    A conductor that runs (``run()``) until the runner writes a second line: the
    latency row's conductors, which wait for jobs posted one at a time (the runner
    posts them; their first task stamps the time it starts).

With ``BENCH_JOBS_COUNT=1`` a board worker also counts, through SQLAlchemy's events,
what its board sends: statements, transactions (commits), and connection checkouts
(each one a ``SELECT 1`` round trip, as the board's pool pings on checkout).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from _jobs_common import finish, libpq_url, ready_then_wait

#: The job every board row names (never imported by the board benchmark: claims do not
#: build flows; the conductor rows import it).
NOOP_FACTORY = "bench.jobs_flows:noop"
ALLOWED = ("bench.jobs_flows",)

FLOOR_DDL = """
CREATE TABLE bench_floor (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    payload TEXT NOT NULL,
    owner TEXT,
    claimed_at TIMESTAMPTZ
);
CREATE INDEX bench_floor_ready ON bench_floor (priority DESC, id) WHERE state = 'ready'
"""
FLOOR_CLAIM = """
UPDATE bench_floor SET state = 'claimed', owner = %s, claimed_at = now()
WHERE id = (
    SELECT id FROM bench_floor WHERE state = 'ready'
    ORDER BY priority DESC, id FOR UPDATE SKIP LOCKED LIMIT 1
)
RETURNING id, payload
"""
FLOOR_DONE = "DELETE FROM bench_floor WHERE id = %s AND owner = %s"


def setup_floor(url: str, n: int) -> None:
    """Create the floor's table and ``n`` ready jobs."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for statement in FLOOR_DDL.split(";"):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO bench_floor (state, priority, payload) "
            "SELECT 'ready', 0, '{}' FROM generate_series(1, %s)",
            (n,),
        )
        conn.execute("ANALYZE bench_floor")


def work_floor(url: str, who: str) -> None:
    """Claim and complete jobs, one autocommit statement each, until none is left."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT 1")
        done = 0
        ready_then_wait()
        end = time.monotonic()
        while (row := conn.execute(FLOOR_CLAIM, (who,)).fetchone()) is not None:
            conn.execute(FLOOR_DONE, (row[0], who))
            end = time.monotonic()
            done += 1
        finish(done, end)


def _board(url: str) -> Any:
    """Open tideflow's job board at ``url`` (imported here: the floor never loads tideflow)."""
    import tideflow.jobs

    return tideflow.jobs.connect(url, allowed=ALLOWED)


def setup_board(url: str, n: int) -> None:
    """Post one no-op job through the board, then copy its row ``n - 1`` times."""
    board = _board(url)
    try:
        board.post("noop", NOOP_FACTORY)
    finally:
        board.close()
    copy_rows(url, board.table, n - 1)


def copy_rows(url: str, table: str, copies: int) -> None:
    """Copy the one job row of ``table`` ``copies`` times, each with a fresh uuid."""
    columns = (
        "name, factory, args, kwargs, store, details, priority, state, token, attempts, "
        "created_at, updated_at"
    )
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {table} (uuid, {columns}) "  # our own table name
            f"SELECT gen_random_uuid()::text, {columns} FROM {table}, generate_series(1, %s)",
            (copies,),
        )
        conn.execute(f"ANALYZE {table}")


def _counters(board: Any) -> dict[str, int]:
    """Count what the board sends from now on (SQLAlchemy events on its engine)."""
    from sqlalchemy import event

    counts = {"statements": 0, "commits": 0, "checkouts": 0}
    engine = board._db.engine  # the benchmark looks inside: a count, not an API

    def bump(key: str) -> Callable[..., None]:
        def count(*_args: object, **_kwargs: object) -> None:
            counts[key] += 1

        return count

    event.listen(engine, "before_cursor_execute", bump("statements"))
    event.listen(engine, "commit", bump("commits"))
    event.listen(engine.pool, "checkout", bump("checkouts"))
    fast = board._fast  # PostgreSQL's hot path: one autocommit statement per call
    if fast is not None:
        execute = fast.run

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts["statements"] += 1
            counts["commits"] += 1
            return execute(*args, **kwargs)

        fast.run = counted
    return counts


def work_board(url: str, who: str) -> None:
    """Claim the next job and consume it, until ``claim_next`` finds none."""
    board = _board(url)
    try:
        board.wait(0)  # connects and checks the schema before the clock starts
        counts = _counters(board) if os.environ.get("BENCH_JOBS_COUNT") == "1" else None
        done = 0
        ready_then_wait()
        end = time.monotonic()
        while (job := board.claim_next(who)) is not None:
            board.consume(job, who, job.token)
            end = time.monotonic()
            done += 1
        finish(done, end, **(counts or {}))
    finally:
        board.close()


FACTORIES = {"conductor": NOOP_FACTORY, "conductor3": "bench.jobs_flows:three"}
STORES = {"conductor": "memory://", "conductor3": ""}  # "": the bench database


def _store_url(kind: str, url: str) -> str:
    return STORES[kind] or url


def setup_conductor(kind: str, url: str, n: int) -> None:
    """Post one job of the kind's flow through the board, copy it; make the store's schema."""
    import tideflow

    board = _board(url)
    try:
        if n:
            board.post(kind, FACTORIES.get(kind, NOOP_FACTORY))
        else:
            board.wait(0)  # the latency row posts its own jobs: only the table is made
    finally:
        board.close()
    if n > 1:
        copy_rows(url, board.table, n - 1)
    store = tideflow.connect(_store_url(kind, url))
    try:
        with contextlib.closing(store.get_connection()) as conn:
            conn.upgrade()  # creates the schema before the workers race for it
    finally:
        store.close()


def _conductor(kind: str, url: str, who: str) -> Any:
    import bench.jobs_flows  # noqa: F401  # imported before the clock starts
    from tideflow.conductors import Conductor

    conductor = Conductor(who, url, _store_url(kind, url), allowed=ALLOWED)
    conductor.board.wait(0)
    with contextlib.closing(conductor.store.get_connection()) as conn:
        conn.validate()  # checks the schema before the clock starts
    return conductor


def work_conductor(kind: str, url: str, who: str) -> None:
    """One conductor: run jobs until none is left to claim."""
    with _conductor(kind, url, who) as conductor:
        ready_then_wait()
        conductor.run(until_idle=True)
        end = time.monotonic()
        stats = conductor.statistics()
        finish(stats.consumed, end, dispatched=stats.dispatched)


def work_idle(url: str, who: str) -> None:
    """One conductor waiting for jobs, until the runner writes a second line."""
    with _conductor("conductor3", url, who) as conductor:
        ready_then_wait()

        def stop_when_told() -> None:
            sys.stdin.readline()
            conductor.stop(5.0)

        threading.Thread(target=stop_when_told, daemon=True).start()
        conductor.run()
        end = time.monotonic()
        stats = conductor.statistics()
        finish(stats.consumed, end, dispatched=stats.dispatched)


SETUPS: dict[str, Callable[[str, int], None]] = {
    "floor": setup_floor,
    "board": setup_board,
    "conductor": functools.partial(setup_conductor, "conductor"),
    "conductor3": functools.partial(setup_conductor, "conductor3"),
    "idle": functools.partial(setup_conductor, "conductor3"),
}
WORKERS: dict[str, Callable[[str, str], None]] = {
    "floor": work_floor,
    "board": work_board,
    "conductor": functools.partial(work_conductor, "conductor"),
    "conductor3": functools.partial(work_conductor, "conductor3"),
    "idle": work_idle,
}


def main(argv: list[str]) -> None:
    """Dispatch ``setup KIND URL N`` or ``work KIND URL WHO``."""
    command, kind, url, arg = argv
    if command == "setup":
        SETUPS[kind](url, int(arg))
    elif command == "work":
        WORKERS[kind](url, arg)
    else:
        raise SystemExit(f"unknown command {command!r}: setup or work")


if __name__ == "__main__":
    main(sys.argv[1:])
