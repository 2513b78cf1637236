"""The job board contract, on every board: SQLite always; PostgreSQL, MariaDB and Redis
when their variables are set (see conftest.py; without them those tests skip, saying
which variable to set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from board_support import ALLOWED, FACTORY, SRC

from tideflow.errors import NotFoundError, StoreError
from tideflow.jobs import (
    Board,
    FactoryNotAllowedError,
    Job,
    JobClaimedError,
    JobState,
    LeaseLostError,
    RedisBoard,
    SqlBoard,
    connect,
)


def test_post_then_read_back_every_field(board):
    assert isinstance(board, Board)
    job = board.post(
        "order-1",
        FACTORY,
        args=(1, (2, "x")),
        kwargs={"n": 3},
        store={"amount": 1.5, "items": [1, 2]},
        priority=2,
        details={"by": "tests"},
    )
    assert isinstance(job, Job)
    assert (job.name, job.factory, job.args, job.kwargs) == (
        "order-1",
        FACTORY,
        (1, (2, "x")),
        {"n": 3},
    )
    assert (job.store, job.priority, job.details) == (
        {"amount": 1.5, "items": [1, 2]},
        2,
        {"by": "tests"},
    )
    assert (job.state, job.owner, job.lease_expires, job.token, job.attempts) == (
        JobState.UNCLAIMED,
        None,
        None,
        0,
        0,
    )
    assert abs(job.created_at - time.time()) < 5
    assert board.get(job.uuid) == job
    with pytest.raises(NotFoundError, match="'nope'"):
        board.get("nope")


def test_iterjobs_orders_by_priority_then_age(board):
    names = ["low-old", "high-old", "low-new", "high-new", "mid"]
    prios = [0, 5, 0, 5, 1]
    for name, prio in zip(names, prios, strict=True):
        board.post(name, FACTORY, priority=prio)
    assert [j.name for j in board.iterjobs()] == [
        "high-old",
        "high-new",
        "mid",
        "low-old",
        "low-new",
    ]
    first = board.claim_next("w")
    assert first is not None
    assert first.name == "high-old"
    assert [j.name for j in board.iterjobs(only_unclaimed=True)] == [
        "high-new",
        "mid",
        "low-old",
        "low-new",
    ]
    assert next(j.name for j in board.iterjobs()) == "high-old"


def test_claim_gives_a_lease_and_a_growing_token(board):
    job = board.post("j", FACTORY)
    claimed = board.claim(job, "w1", lease=5)
    assert (claimed.state, claimed.owner, claimed.token) == (JobState.CLAIMED, "w1", 1)
    assert 4 < claimed.lease_expires - claimed.updated_at <= 5.01
    with pytest.raises(JobClaimedError, match=r"claimed by 'w1' \(token 1\)"):
        board.claim(job, "w2")
    renewed = board.renew(job, "w1", claimed.token, lease=20)
    assert renewed.lease_expires > claimed.lease_expires + 10
    assert renewed.token == 1
    board.consume(job, "w1", 1)
    with pytest.raises(NotFoundError):
        board.get(job)
    with pytest.raises(NotFoundError):
        board.claim(job, "w2")


def test_expired_lease_is_taken_over_and_fences_the_old_owner(board):
    job = board.post("j", FACTORY)
    old = board.claim(job, "w1", lease=0.2)
    time.sleep(0.35)
    assert [j.uuid for j in board.iterjobs(only_unclaimed=True)] == [job.uuid]
    assert board.wait(0)
    new = board.claim(job, "w2", lease=30)
    assert new.token == old.token + 1
    assert new.owner == "w2"
    assert new.attempts == 1  # the first owner's run failed: it died or hung
    for call in (
        lambda: board.renew(job, "w1", old.token),
        lambda: board.consume(job, "w1", old.token),
        lambda: board.abandon(job, "w1", old.token),
        lambda: board.trash(job, "w1", old.token),
    ):
        with pytest.raises(LeaseLostError, match=r"claimed by 'w2' with token 2") as caught:
            call()
        assert isinstance(caught.value, StoreError)
    # the right owner with a stale token is refused as well
    with pytest.raises(LeaseLostError):
        board.renew(job, "w2", old.token)
    assert board.get(job).owner == "w2"
    board.consume(job, "w2", new.token)


def test_abandon_gives_back_until_max_attempts_then_trashes(make):
    board = make(max_attempts=3)
    job = board.post("flaky", FACTORY)
    for attempt in (1, 2):
        claimed = board.claim(job, "w")
        left = board.abandon(job, "w", claimed.token)
        assert (left.state, left.attempts, left.owner) == (JobState.UNCLAIMED, attempt, None)
    claimed = board.claim(job, "w")
    assert claimed.token == 3
    left = board.abandon(job, "w", claimed.token)
    assert (left.state, left.attempts) == (JobState.TRASHED, 3)
    assert list(board.iterjobs()) == []
    with pytest.raises(JobClaimedError, match="trashed"):
        board.claim(job, "w")
    assert board.claim_next("w") is None
    assert not board.wait(0.05)


def test_trash_keeps_the_job_out_of_reach(board):
    job = board.post("bad", FACTORY)
    claimed = board.claim(job, "w")
    assert board.trash(job, "w", claimed.token).state == JobState.TRASHED
    assert board.get(job).state == JobState.TRASHED
    with pytest.raises(LeaseLostError, match="TRASHED"):
        board.consume(job, "w", claimed.token)


def test_allow_list_refuses_posts_and_claims(make, board):
    for factory in ("os:system", "myapp.flowsx:f", "myapp:f"):
        with pytest.raises(FactoryNotAllowedError, match=r"not on the board's allow-list"):
            board.post("evil", factory)
    with pytest.raises(ValueError, match=r"package\.module:function"):
        board.post("x", "myapp.flows.orders")
    # a row written by a board with a wider allow-list is refused by a narrower one
    wide = make(allowed=("myapp", "os"))
    narrow = make(allowed=("myapp.flows.orders",))
    closed = make(allowed=())
    evil = wide.post("evil", "os:system", args=("rm -rf /",), priority=9)
    near = wide.post("near", "myapp.flows.ordersx:build", priority=8)
    good = wide.post("good", FACTORY)
    with pytest.raises(FactoryNotAllowedError, match="'os:system'"):
        narrow.claim(evil, "w")
    assert board.get(evil) == evil  # the refusal wrote nothing
    taken = narrow.claim_next("w")  # skips the jobs it may not run
    assert taken is not None
    assert taken.uuid == good.uuid
    assert board.get(near).state == JobState.UNCLAIMED
    with pytest.raises(FactoryNotAllowedError, match="allows no factory"):
        closed.claim_next("w")
    with pytest.raises(FactoryNotAllowedError, match="allows no factory"):
        closed.post("x", FACTORY)


def test_wait_wakes_when_a_job_is_posted(make, board):
    assert not board.wait(0.05)
    poster = make()
    timer = threading.Timer(0.2, lambda: poster.post("late", FACTORY))
    started = time.monotonic()
    timer.start()
    try:
        assert board.wait(10)
        waited = time.monotonic() - started
        assert 0.15 < waited < 5
    finally:
        timer.join()


def test_wait_is_woken_by_a_post_without_polling(kind, make):
    """PostgreSQL (LISTEN/NOTIFY) and Redis (pub/sub) wake a waiter when a job is posted:
    with an hour between looks, this wait returns only if the post woke it."""
    if kind in ("sqlite", "mysql"):
        pytest.skip(f"the {kind} board polls")
    board = make(poll_interval=3600)
    assert not board.wait(0)
    poster = make()
    timer = threading.Timer(0.3, lambda: poster.post("late", FACTORY))
    timer.start()
    try:
        assert board.wait()
    finally:
        timer.join()
    taken = poster.claim_next("w", lease=3600)
    assert taken is not None
    assert not board.wait(0)
    timer = threading.Timer(0.3, lambda: poster.abandon(taken, "w", taken.token))
    timer.start()
    try:
        assert board.wait()  # an abandon frees the job: it wakes waiters too
    finally:
        timer.join()


def test_wait_outlives_its_listening_connection(kind, url, make):
    """A LISTEN connection that dies (server restart, a killed backend) makes that wait
    poll; the next one listens anew."""
    if kind != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    import sqlalchemy as sa

    board = make(poll_interval=0.05)
    poster = make()
    assert not board.wait(0)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE 'LISTEN%'"
            )
        ).all()
    engine.dispose()
    assert killed == [(True,)]
    timer = threading.Timer(0.3, lambda: poster.post("late", FACTORY))
    timer.start()
    try:
        assert board.wait(30)
    finally:
        timer.join()
    taken = board.claim_next("w")
    assert taken is not None
    board.consume(taken, "w", taken.token)
    board.poll_interval = 3600  # from here on only a notification can wake it
    timer = threading.Timer(0.3, lambda: poster.post("later", FACTORY))
    timer.start()
    try:
        assert board.wait()
    finally:
        timer.join()


def test_wait_wakes_when_a_lease_runs_out(board):
    job = board.post("j", FACTORY)
    board.claim(job, "w", lease=0.3)
    assert not board.wait(0)
    assert board.wait(10)
    assert board.claim(job, "w2").token == 2


def test_current_token_follows_the_claims(board):
    job = board.post("j", FACTORY)
    assert board.current_token(job) is None
    first = board.claim(job, "w1", lease=0.2)
    assert board.current_token(job.uuid) == first.token == 1
    time.sleep(0.3)
    assert board.current_token(job) == 1  # run out, but not replaced yet
    second = board.claim(job, "w2")
    assert board.current_token(job) == second.token == 2
    assert board.abandon(job, "w2", 2).state == JobState.UNCLAIMED
    assert board.current_token(job) is None
    third = board.claim(job, "w3")
    board.consume(job, "w3", third.token)
    assert board.current_token(job) is None


def test_fence_check_inside_a_transaction(kind, url, board):
    if kind == "redis":
        pytest.skip("check_fence runs inside a SQL transaction; Redis has current_token")
    job = board.post("j", FACTORY)
    claimed = board.claim(job, "w1", lease=0.2)
    if kind == "sqlite":
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        board.check_fence(job.uuid, claimed.token, db)
        db.execute("COMMIT")
        run = lambda: board.check_fence(job.uuid, claimed.token, db)  # noqa: E731
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        conn = engine.connect()
        with conn.begin():
            board.check_fence(job.uuid, claimed.token, conn)
        run = lambda: board.check_fence(job.uuid, claimed.token, conn)  # noqa: E731
    time.sleep(0.3)
    board.claim(job, "w2")
    with pytest.raises(LeaseLostError, match="token 1 is no longer current"):
        run()
    if kind != "sqlite":
        conn.rollback()
        conn.close()
        engine.dispose()


def test_options_are_checked(kind, url, place):
    cls = RedisBoard if kind == "redis" else SqlBoard
    with pytest.raises(TypeError, match=r"'alowed'.*did you mean 'allowed'"):
        cls.from_config({"connection": url, "alowed": ["x"]})
    with pytest.raises(ValueError, match="as 'connection'"):
        cls.from_config({"allowed": ["x"]})
    with pytest.raises(TypeError, match="module prefixes"):
        connect(url, allowed="myapp")
    with pytest.raises(ValueError, match="max_attempts"):
        connect(url, max_attempts=0)
    with pytest.raises(ValueError, match="poll_interval="):
        connect(url, poll_interval=0)
    with pytest.raises(ValueError, match=r"no job board for 'zookeeper'.*redis://"):
        connect("zookeeper://host")
    board = cls.from_config({"connection": url, "allowed": ["myapp"], **place})
    assert isinstance(board, Board)
    try:
        with pytest.raises(ValueError, match="lease="):
            board.claim("x", "w", lease=0)
        with pytest.raises(TypeError, match="who="):
            board.claim("x", "")
        with pytest.raises(ValueError, match="from -2147483648 to 2147483647"):
            board.post("x", "myapp.f:g", priority=2**31)
        with pytest.raises(TypeError, match="a Job or a job's uuid"):
            board.get(42)
    finally:
        board.close()


def test_sql_options_are_checked(kind, url):
    if kind == "redis":
        pytest.skip("SQL boards' own options")
    with pytest.raises(ValueError, match="table="):
        SqlBoard(url, table="jobs; DROP TABLE x")
    with pytest.raises(ValueError, match="in memory"):
        SqlBoard("sqlite://")


_RACER = textwrap.dedent(
    """
    import json, sys, time
    from tideflow.jobs import JobClaimedError, connect
    url, options, start = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
    board = connect(url, **options)
    uuids = [j.uuid for j in board.iterjobs()]
    while time.time() < start:
        time.sleep(0.001)
    for uuid in uuids:
        try:
            job = board.claim(uuid, sys.argv[4])
            print("won", uuid, job.token, flush=True)
        except JobClaimedError:
            print("lost", uuid, flush=True)
    board.close()
    """
)


def test_processes_racing_for_jobs_one_wins_each(url, place, board):
    uuids = {board.post(f"j{i}", FACTORY).uuid for i in range(15)}
    env = {**os.environ, "PYTHONPATH": SRC}
    options = json.dumps({"allowed": ALLOWED, **place})
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, url, options, str(start), f"racer-{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(3)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.split("\n"))
    winners: dict[str, list[str]] = {u: [] for u in uuids}
    for n, lines in enumerate(outputs):
        said = [line.split() for line in lines if line]
        assert {words[1] for words in said} == uuids
        for words in said:
            if words[0] == "won":
                assert words[2] == "1"
                winners[words[1]].append(f"racer-{n}")
    assert all(len(w) == 1 for w in winners.values()), winners
    for job in board.iterjobs():
        assert (job.owner, job.token) == (winners[job.uuid][0], 1)


def test_an_owner_past_its_lease_keeps_the_job_until_someone_claims_it(board):
    """A run-out lease makes the job free, yet its owner may still renew (or trash) it
    as long as no other claim came: then it is no longer free."""
    kept = board.post("kept", FACTORY)
    dropped = board.post("dropped", FACTORY)
    first = board.claim(kept, "w", lease=0.1)
    second = board.claim(dropped, "w", lease=0.1)
    time.sleep(0.2)
    assert [j.name for j in board.iterjobs(only_unclaimed=True)] == ["kept", "dropped"]
    assert board.renew(kept, "w", first.token, lease=30).owner == "w"
    assert board.trash(dropped, "w", second.token).state == JobState.TRASHED
    assert list(board.iterjobs(only_unclaimed=True)) == []
    assert not board.wait(0)
    assert board.claim_next("w2") is None
    with pytest.raises(JobClaimedError, match="claimed by 'w'"):
        board.claim(kept, "w2")
    assert [j.name for j in board.iterjobs()] == ["kept"]
    left = board.abandon(kept, "w", first.token)
    assert (left.state, left.attempts) == (JobState.UNCLAIMED, 1)
    assert [j.name for j in board.iterjobs(only_unclaimed=True)] == ["kept"]


def test_threads_sharing_one_board_claim_each_job_once(board):
    uuids = {board.post(f"j{i}", FACTORY).uuid for i in range(24)}
    taken: list[list[str]] = [[] for _ in range(4)]

    def work(n):
        while (job := board.claim_next(f"t{n}", lease=60)) is not None:
            taken[n].append(job.uuid)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = [uuid for mine in taken for uuid in mine]
    assert sorted(claimed) == sorted(uuids)  # each once, none left
    assert {job.token for job in board.iterjobs()} == {1}


def test_consume_and_claim_next_consumes_then_claims_in_order(board):
    first = board.post("first", FACTORY, priority=1)
    board.post("low", FACTORY)
    second = board.post("second", FACTORY, priority=1)
    claimed = board.claim_next("w", lease=30)
    assert claimed.uuid == first.uuid
    nxt = board.consume_and_claim_next(claimed, "w", claimed.token, lease=7)
    with pytest.raises(NotFoundError):
        board.get(first)
    assert (nxt.uuid, nxt.state, nxt.owner, nxt.token) == (
        second.uuid,
        JobState.CLAIMED,
        "w",
        1,
    )
    assert 6 < nxt.lease_expires - nxt.updated_at <= 7.01
    assert board.get(nxt) == nxt
    last = board.consume_and_claim_next(nxt.uuid, "w", nxt.token)
    assert last.name == "low"
    assert board.consume_and_claim_next(last, "w", last.token) is None  # none left
    assert list(board.iterjobs()) == []


def test_consume_and_claim_next_with_a_lost_claim_claims_nothing(board):
    job = board.post("j", FACTORY)
    other = board.post("other", FACTORY)
    old = board.claim(job, "w1", lease=0.2)
    time.sleep(0.3)
    board.claim(job, "w2", lease=30)
    with pytest.raises(LeaseLostError, match=r"claimed by 'w2' with token 2"):
        board.consume_and_claim_next(job, "w1", old.token)
    assert board.get(job).owner == "w2"
    assert board.get(other).state == JobState.UNCLAIMED  # nothing claimed for w1
    with pytest.raises(LeaseLostError):
        board.consume_and_claim_next(job, "w2", 1)  # the right owner, a stale token
    with pytest.raises(LeaseLostError, match="consumed"):
        board.consume_and_claim_next("gone", "w2", 1)
    assert board.get(other).state == JobState.UNCLAIMED


def test_consume_and_claim_next_never_takes_back_the_job_it_consumes(board):
    """A job whose lease ran out is free to a claim, yet its owner may consume it: the
    claim that follows the consume takes the next job, not that one."""
    job = board.post("j", FACTORY)
    claimed = board.claim(job, "w", lease=0.1)
    time.sleep(0.2)
    assert [j.uuid for j in board.iterjobs(only_unclaimed=True)] == [job.uuid]
    assert board.consume_and_claim_next(job, "w", claimed.token) is None
    assert list(board.iterjobs()) == []
    again = board.post("again", FACTORY)
    claimed = board.claim(again, "w", lease=0.1)
    later = board.post("later", FACTORY)
    time.sleep(0.2)
    assert board.consume_and_claim_next(again, "w", claimed.token).uuid == later.uuid
    with pytest.raises(NotFoundError):
        board.get(again)


def test_consume_and_claim_next_trashes_a_last_try_and_claims_past_it(make):
    board = make(max_attempts=1, poll_interval=0.01)
    done = board.post("done", FACTORY, priority=9)
    tired = board.post("tired", FACTORY, priority=5)
    fresh = board.post("fresh", FACTORY)
    board.claim(tired, "x", lease=0.1)
    time.sleep(0.2)  # tired's lease ran out: the next claim is its last attempt
    claimed = board.claim(done, "w", lease=30)
    nxt = board.consume_and_claim_next(done, "w", claimed.token)
    assert nxt.uuid == fresh.uuid
    assert board.get(tired).state == JobState.TRASHED


def test_consume_and_claim_next_honours_the_allow_list(make):
    mine = make(poll_interval=0.01)
    job = mine.post("mine", FACTORY)
    wide = make(allowed=["tests", "elsewhere"])
    wide.post("theirs", "elsewhere.flows:make")
    claimed = mine.claim_next("w")
    assert claimed.uuid == job.uuid
    assert mine.consume_and_claim_next(claimed, "w", claimed.token) is None
    assert [j.name for j in wide.iterjobs(only_unclaimed=True)] == ["theirs"]


def test_consume_and_claim_consumes_a_batch_and_claims_the_next_in_order(board):
    posted = {
        name: board.post(name, FACTORY, priority=prio)
        for name, prio in [("a", 9), ("b", 9), ("low", 0), ("c", 5), ("d", 5)]
    }
    first = board.claim_next("w", lease=30)
    second = board.claim_next("w", lease=30)
    assert [first.name, second.name] == ["a", "b"]
    done = board.consume_and_claim([(first, first.token), (second.uuid, second.token)], "w", 7, 2)
    assert done.lost == []
    assert [(j.name, j.state, j.owner, j.token) for j in done.claimed] == [
        ("c", JobState.CLAIMED, "w", 1),
        ("d", JobState.CLAIMED, "w", 1),
    ]
    assert all(6 < j.lease_expires - j.updated_at <= 7.01 for j in done.claimed)
    assert [board.get(j) for j in done.claimed] == done.claimed
    for gone in ("a", "b"):
        with pytest.raises(NotFoundError):
            board.get(posted[gone])
    c, d = done.claimed
    rest = board.consume_and_claim([(c, c.token)], "w", limit=5)  # only one is left
    assert ([j.name for j in rest.claimed], rest.lost) == (["low"], [])
    (low,) = rest.claimed
    last = board.consume_and_claim([(d, d.token), (low, low.token)], "w", limit=0)
    assert last == ([], [])
    assert list(board.iterjobs()) == []


def test_consume_and_claim_consumes_what_is_still_ours_and_names_the_rest(board):
    mine = board.post("mine", FACTORY)
    taken = board.post("taken", FACTORY)
    free = board.post("free", FACTORY)
    held = board.claim(mine, "w1", lease=30)
    old = board.claim(taken, "w1", lease=0.2)
    time.sleep(0.3)
    board.claim(taken, "w2", lease=30)
    done = board.consume_and_claim(
        [(held, held.token), (taken, old.token), ("gone", 1)], "w1", limit=3
    )
    assert sorted(done.lost) == sorted([taken.uuid, "gone"])
    assert [j.uuid for j in done.claimed] == [free.uuid]
    with pytest.raises(NotFoundError):
        board.get(mine)
    assert board.get(taken).owner == "w2"  # left to its new owner
    with pytest.raises(LeaseLostError):
        board.consume(taken, "w1", old.token)


def test_consume_and_claim_never_takes_back_a_job_it_consumes(board):
    job = board.post("j", FACTORY)
    claimed = board.claim(job, "w", lease=0.1)
    later = board.post("later", FACTORY)
    time.sleep(0.2)  # j's lease ran out: free to a claim, yet still its owner's to consume
    done = board.consume_and_claim([(job, claimed.token)], "w", limit=2)
    assert ([j.uuid for j in done.claimed], done.lost) == ([later.uuid], [])
    with pytest.raises(NotFoundError):
        board.get(job)


def test_consume_and_claim_trashes_last_tries_and_claims_past_them(make):
    board = make(max_attempts=1, poll_interval=0.01)
    tired = board.post("tired", FACTORY, priority=5)
    fresh = board.post("fresh", FACTORY)
    board.claim(tired, "x", lease=0.1)
    time.sleep(0.2)  # tired's lease ran out: the next claim is its last attempt
    done = board.consume_and_claim([], "w", limit=1)
    assert [j.uuid for j in done.claimed] == [fresh.uuid]
    assert board.get(tired).state == JobState.TRASHED


def test_consume_and_claim_honours_the_allow_list(make):
    mine = make(poll_interval=0.01)
    job = mine.post("mine", FACTORY)
    wide = make(allowed=["tests", "elsewhere"])
    wide.post("theirs", "elsewhere.flows:make")
    done = mine.consume_and_claim((), "w", limit=5)
    assert [j.uuid for j in done.claimed] == [job.uuid]
    assert [j.name for j in wide.iterjobs(only_unclaimed=True)] == ["theirs"]


def test_consume_and_claim_checks_its_arguments(board):
    job = board.post("j", FACTORY)
    with pytest.raises(ValueError, match="limit="):
        board.consume_and_claim([], "w", limit=-1)
    with pytest.raises(ValueError, match="limit="):
        board.consume_and_claim([], "w", limit=True)
    with pytest.raises(TypeError, match="pairs"):
        board.consume_and_claim("abc", "w")
    with pytest.raises(TypeError, match="pairs"):
        board.consume_and_claim([job], "w")
    with pytest.raises(TypeError, match="token"):
        board.consume_and_claim([(job, "1")], "w")
    with pytest.raises(TypeError, match="who="):
        board.consume_and_claim([], "")
    assert board.get(job).state == JobState.UNCLAIMED  # nothing was done


def test_release_gives_an_unstarted_job_back_without_counting_an_attempt(board):
    job = board.post("j", FACTORY)
    claimed = board.claim_next("w", lease=30)
    left = board.release(claimed, "w", claimed.token)
    assert (left.state, left.owner, left.lease_expires, left.token, left.attempts) == (
        JobState.UNCLAIMED,
        None,
        None,
        1,
        0,
    )
    assert board.get(job) == left
    assert board.wait(0)  # free again at once
    again = board.claim_next("w2", lease=30)
    assert (again.uuid, again.token, again.attempts) == (job.uuid, 2, 0)
    with pytest.raises(LeaseLostError, match="w2"):
        board.release(job, "w", claimed.token)  # a stale claim changes nothing
    assert board.get(job).owner == "w2"
