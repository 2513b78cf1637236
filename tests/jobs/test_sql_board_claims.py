"""The SQL board's claims: PostgreSQL's one-statement path and what every board shares.

On PostgreSQL (psycopg 3) ``claim_next`` and ``consume`` are single autocommit
statements on a connection the board holds per thread, without SQLAlchemy's pool and
its ping; the allow-list is tested in SQL. These tests pin what that path must keep:
a connection the server dropped while idle is replaced silently, a prefix is matched
literally (``_`` and ``%`` are not wildcards), and priority, age, attempts and the
fencing token behave as on the other boards.
"""

from __future__ import annotations

import threading
import time

import pytest
from board_support import FACTORY

from tideflow.errors import StoreError
from tideflow.jobs import JobState, LeaseLostError


def _sql(board, statement: str, *params):
    """Run ``statement`` on the board's own database (not through the board's API)."""
    import sqlalchemy as sa

    engine = sa.create_engine(board._db.engine.url)  # the test looks inside: a server URL
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(statement, params)
            return result.fetchall() if result.returns_rows else result.rowcount
    finally:
        engine.dispose()


@pytest.fixture
def pg(kind, make):
    if kind != "postgresql":
        pytest.skip("PostgreSQL's one-statement claim")
    return make(poll_interval=0.01)


def test_postgresql_claims_in_one_statement_on_a_connection_of_its_own(pg):
    assert pg._fast is not None  # psycopg 3: the fast path is on
    pg.post("a", FACTORY)
    job = pg.claim_next("w")
    assert job is not None
    assert (job.state, job.owner, job.token, job.attempts) == (JobState.CLAIMED, "w", 1, 0)
    # the claim committed at once: another connection sees it
    (row,) = _sql(pg, f"SELECT state, owner, token FROM {pg.table} WHERE uuid = %s", job.uuid)
    assert tuple(row) == ("CLAIMED", "w", 1)
    pg.consume(job, "w", job.token)
    assert _sql(pg, f"SELECT count(*) FROM {pg.table}")[0][0] == 0


def test_a_connection_the_server_closed_while_idle_is_replaced(pg):
    pg.post("a", FACTORY)
    pg.post("b", FACTORY)
    first = pg.claim_next("w")
    assert first is not None
    pid = pg._fast._conn().info.backend_pid
    assert _sql(pg, "SELECT pg_terminate_backend(%s)", pid)[0][0] is True
    pg.consume(first, "w", first.token)  # no StoreError: a new connection took over
    second = pg.claim_next("w")
    assert second is not None
    assert second.name == "b"
    assert pg._fast._conn().info.backend_pid != pid


def test_a_connection_lost_mid_statement_is_a_store_error_and_the_next_call_reconnects(pg):
    import psycopg

    pg.post("a", FACTORY)
    pid = pg._fast._conn().info.backend_pid
    dsn = pg._db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as locker:
        locker.execute(f"LOCK TABLE {pg.table} IN ACCESS EXCLUSIVE MODE")  # the claim blocks

        def kill_when_blocked() -> None:
            with psycopg.connect(dsn, autocommit=True) as side:
                while not side.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                    (pid,),
                ).fetchall():
                    time.sleep(0.01)
                side.execute("SELECT pg_terminate_backend(%s)", (pid,))

        killer = threading.Thread(target=kill_when_blocked)
        killer.start()
        with pytest.raises(StoreError, match="claiming the next job failed"):
            pg.claim_next("w")
        killer.join()
        locker.rollback()
    job = pg.claim_next("w")  # a new connection
    assert job is not None
    assert job.name == "a"
    assert pg._fast._conn().info.backend_pid != pid


def test_a_lost_consume_says_who_holds_the_job_now(pg):
    pg.post("a", FACTORY)
    job = pg.claim_next("w", lease=0.01)
    assert job is not None
    _sql(pg, f"UPDATE {pg.table} SET lease_expires = 0 WHERE uuid = %s", job.uuid)
    again = pg.claim_next("w2")
    assert again is not None
    assert (again.token, again.attempts) == (2, 1)
    with pytest.raises(LeaseLostError, match="w2"):
        pg.consume(job, "w", job.token)
    assert pg.get(job).owner == "w2"  # the refused consume deleted nothing


def _record_fast_statements(pg) -> list[str]:
    """From now on, what each statement ``pg`` sends on its fast path is doing, in order."""
    sent: list[str] = []
    run = pg._fast.run

    def counted(sql, params, doing):
        sent.append(doing)
        return run(sql, params, doing)

    pg._fast.run = counted
    return sent


def test_postgresql_consumes_and_claims_the_next_in_one_statement(pg):
    first, second = pg.post("a", FACTORY), pg.post("b", FACTORY)
    job = pg.claim_next("w")
    assert job is not None
    sent = _record_fast_statements(pg)
    nxt = pg.consume_and_claim_next(job, "w", job.token)
    assert sent == [f"consuming job {first.uuid} and claiming the next"]
    assert nxt is not None
    assert (nxt.uuid, nxt.owner, nxt.token) == (second.uuid, "w", 1)
    (row,) = _sql(pg, f"SELECT uuid, state, owner FROM {pg.table}")
    assert tuple(row) == (second.uuid, "CLAIMED", "w")  # committed: seen from elsewhere
    sent.clear()
    assert pg.consume_and_claim_next(nxt, "w", nxt.token) is None
    assert len(sent) == 1  # consumed, nothing free: still one statement
    assert _sql(pg, f"SELECT count(*) FROM {pg.table}")[0][0] == 0


def test_a_refused_consume_and_claim_says_who_holds_the_job_and_claims_nothing(pg):
    pg.post("a", FACTORY)
    job = pg.claim_next("w", lease=0.01)
    assert job is not None
    other = pg.post("b", FACTORY)
    _sql(pg, f"UPDATE {pg.table} SET lease_expires = 0 WHERE uuid = %s", job.uuid)
    again = pg.claim(job, "w2")
    with pytest.raises(LeaseLostError, match="w2"):
        pg.consume_and_claim_next(job, "w", job.token)
    assert pg.get(job).owner == "w2"
    assert pg.get(other).state == JobState.UNCLAIMED
    nxt = pg.consume_and_claim_next(job, "w2", again.token)
    assert nxt is not None
    assert nxt.uuid == other.uuid


def test_prefixes_are_matched_literally(make):
    """``_`` and ``%`` in a prefix are characters, not SQL wildcards, on every board."""
    poster = make(allowed=("myXapp", "my_app", "aZZb"))
    odd = poster.post("odd", "myXapp.flows:build")
    percent = poster.post("percent", "aZZb.flows:build")
    exact = poster.post("exact", "my_app.flows:build")
    under = make(allowed=("my_app", "a%b"))
    taken = under.claim_next("w")
    assert taken is not None
    assert taken.uuid == exact.uuid
    assert under.claim_next("w") is None
    assert {poster.get(odd).state, poster.get(percent).state} == {JobState.UNCLAIMED}


def test_a_prefix_is_a_whole_module_name(make):
    poster = make(allowed=("myapp", "myapplication"))
    poster.post("longer", "myapplication.flows:build", priority=5)
    poster.post("module", "myapp:build", priority=1)
    board = make(allowed=("myapp",))
    taken = board.claim_next("w")
    assert taken is not None
    assert taken.name == "module"  # 'myapplication' is not under 'myapp'
    assert board.claim_next("w") is None


def test_priority_then_age_over_many_rows(make):
    board = make()
    posted = [board.post(f"j{i}", FACTORY, priority=i % 3) for i in range(30)]
    order = []
    while (job := board.claim_next("w")) is not None:
        order.append(job.uuid)
        board.consume(job, "w", job.token)
    expected = sorted(posted, key=lambda j: (-j.priority, posted.index(j)))
    assert order == [j.uuid for j in expected]


def test_the_postgresql_jobs_table_leaves_room_for_claims_updated_in_place(pg):
    pg.upgrade()
    (options,) = _sql(pg, "SELECT reloptions FROM pg_class WHERE relname = %s", pg.table)[0]
    assert options == ["fillfactor=70"]


def test_consume_and_claim_in_a_transaction_is_both_or_neither(kind, make):
    """Off PostgreSQL's one-statement path the two run in one transaction: a claim that
    fails leaves the consumed job on the board, still claimed by its owner."""
    if kind == "redis":
        pytest.skip("the SQL board's transaction (Redis runs both in one script)")
    board = make()
    board._fast = None  # PostgreSQL too: the pooled transaction
    job = board.post("a", FACTORY)
    board.post("b", FACTORY)
    claimed = board.claim_next("w")
    assert claimed is not None
    assert claimed.uuid == job.uuid

    def broken(*_args):
        raise StoreError("the claim half failed")

    board._claim_in = broken
    with pytest.raises(StoreError, match="the claim half failed"):
        board.consume_and_claim_next(claimed, "w", claimed.token)
    left = board.get(job)
    assert (left.state, left.owner, left.token) == (JobState.CLAIMED, "w", claimed.token)
    del board._claim_in
    nxt = board.consume_and_claim_next(claimed, "w", claimed.token)
    assert nxt is not None
    assert nxt.name == "b"


def test_postgresql_consumes_a_batch_and_claims_the_next_in_one_statement(pg):
    for name in "abcde":
        pg.post(name, FACTORY)
    first, second = pg.claim_next("w"), pg.claim_next("w")
    sent = _record_fast_statements(pg)
    done = pg.consume_and_claim([(first, first.token), (second, second.token)], "w", limit=3)
    assert sent == ["consuming 2 jobs and claiming up to 3"]
    assert ([j.name for j in done.claimed], done.lost) == (["c", "d", "e"], [])
    rows = _sql(pg, f"SELECT name, state, owner FROM {pg.table} ORDER BY name")
    assert [tuple(r) for r in rows] == [(n, "CLAIMED", "w") for n in "cde"]  # committed
    sent.clear()
    assert pg.consume_and_claim([(j, j.token) for j in done.claimed], "w", limit=3) == ([], [])
    assert len(sent) == 1  # consumed, nothing free: still one statement
    assert _sql(pg, f"SELECT count(*) FROM {pg.table}")[0][0] == 0


def test_a_batch_in_a_transaction_is_all_or_nothing(kind, make):
    """Off PostgreSQL's one-statement path, consume_and_claim is one transaction: a claim
    that fails leaves every consumed job on the board, still claimed by its owner."""
    if kind == "redis":
        pytest.skip("the SQL board's transaction (Redis runs it all in one script)")
    board = make()
    board._fast = None  # PostgreSQL too: the pooled transaction
    for name in "abc":
        board.post(name, FACTORY)
    a, b = board.claim_next("w"), board.claim_next("w")

    def broken(*_args):
        raise StoreError("the claim half failed")

    board._claim_in = broken
    with pytest.raises(StoreError, match="the claim half failed"):
        board.consume_and_claim([(a, a.token), (b, b.token)], "w")
    assert {(j.name, j.state, j.owner) for j in board.iterjobs()} >= {
        ("a", JobState.CLAIMED, "w"),
        ("b", JobState.CLAIMED, "w"),
    }
    del board._claim_in
    done = board.consume_and_claim([(a, a.token), (b, b.token)], "w")
    assert ([j.name for j in done.claimed], done.lost) == (["c"], [])
