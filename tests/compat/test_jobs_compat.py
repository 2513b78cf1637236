"""taskflow.jobs through the compat package: fetch's configurations, TaskFlow's JobBoard
and Job API over tideflow's SQLite and Redis boards, and TaskFlow's error names."""

from __future__ import annotations

import datetime
import importlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_compat_support import (
    ALLOWED,
    board_conf,
    fetch_board,
    post_flow_job,
    sqlite_persistence,
)

from taskflow import exceptions as exc
from taskflow import states
from taskflow.jobs import backends
from taskflow.jobs.base import POSTED, REMOVAL, JobBoard, JobPriority, NotifyingJobBoard


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


@pytest.fixture
def board(conf: dict[str, Any], persistence: Any) -> Iterator[Any]:
    opened = fetch_board(conf, persistence)
    yield opened
    opened.close()


def _sorted_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)

    def key(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[0].isupper() else 2, n)

    assert exported == sorted(exported, key=key)
    for n in exported:
        assert hasattr(module, n), n


@pytest.mark.parametrize(
    "name",
    [
        "taskflow.jobs.base",
        "taskflow.jobs.backends",
        "taskflow.conductors.base",
        "taskflow.conductors.backends",
    ],
)
def test_modules_export_sorted_names_that_exist(name: str) -> None:
    _sorted_all(name)


# -- posting and reading -----------------------------------------------------------------


def test_post_maps_the_logbook_to_a_job_a_conductor_can_resume(board, persistence) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    job, book, flow_detail = post_flow_job(board, persistence, "a", store={"x": 3, "y": 4})
    assert isinstance(board, JobBoard)
    assert isinstance(board, NotifyingJobBoard)
    assert job.name == "job-a"
    assert job.details["store"] == {"x": 3, "y": 4}
    assert job.details["flow_uuid"] == flow_detail.uuid
    assert (job.book_uuid, job.book_name) == (book.uuid, "book-a")
    assert job.priority is JobPriority.NORMAL
    assert job.state == states.UNCLAIMED
    assert job.created_on.tzinfo is None
    assert job.created_on >= before - datetime.timedelta(seconds=5)
    # the tideflow job carries the flow detail's factory, its arguments and the store
    assert job.record.factory == "jobs_compat_support:make_flow"
    assert job.record.args == ("a",)
    assert dict(job.record.store) == {"x": 3, "y": 4}
    # read back by another board object: the book comes from the persistence backend
    other = fetch_board(board.conf, persistence)
    try:
        (seen,) = list(other.iterjobs())
        assert seen == job
        assert seen.book.uuid == book.uuid
        assert seen.book.find(flow_detail.uuid) is not None
        assert str(seen).startswith("Job: job-a (priority=JobPriority.NORMAL, uuid=")
    finally:
        other.close()


def test_store_merges_the_flow_details_meta_store_under_the_jobs(board, persistence) -> None:
    from taskflow.persistence import models

    book = models.LogBook("b")
    flow_detail = models.FlowDetail("f", uuid="fd-merge")
    flow_detail.meta["store"] = {"x": 1, "y": 1}
    book.add(flow_detail)
    from jobs_compat_support import make_flow

    from taskflow import engines

    engines.save_factory_details(flow_detail, make_flow, ["m"], {})
    job = board.post("j", book=book, details={"store": {"y": 5}})
    assert dict(job.record.store) == {"x": 1, "y": 5}


def test_a_job_without_a_book_is_posted_for_the_programs_own_workers(board) -> None:
    job = board.post("plain", details={"color": "red"})
    assert job.book is None
    assert job.book_uuid is None
    assert job.details == {"color": "red"}
    board.claim(job, "worker")
    assert job.state == states.CLAIMED
    board.consume(job, "worker")
    assert job.state == states.COMPLETE


def test_a_book_with_several_flows_needs_a_flow_uuid_or_posts_no_flow(board) -> None:
    from taskflow.persistence import models

    book = models.LogBook("two")
    book.add(models.FlowDetail("f1", uuid="fd-1"))
    book.add(models.FlowDetail("f2", uuid="fd-2"))
    with pytest.raises(exc.NotFound, match=r"No matching flow detail .* fd-3"):
        board.post("j", book=book, details={"flow_uuid": "fd-3"})
    job = board.post("j", book=book)
    assert "flow_uuid" not in job.details
    assert job.record.factory == "taskflow.jobs._no_flow:no_flow_to_run"


def test_priorities_order_the_jobs_and_bad_ones_are_refused(board) -> None:
    board.post("low", priority="low")
    board.post("normal")
    board.post("very high", priority=JobPriority.VERY_HIGH)
    board.post("high", priority="HIGH")
    assert [j.name for j in board.iterjobs()] == ["very high", "high", "normal", "low"]
    assert [j.priority for j in board.iterjobs()][-1] is JobPriority.LOW
    with pytest.raises(ValueError, match="'urgent' is not a valid priority"):
        board.post("x", priority="urgent")


# -- claims --------------------------------------------------------------------------------


def test_claims_consume_abandon_and_trash_with_taskflows_errors(board, persistence) -> None:
    job, _, _ = post_flow_job(board, persistence, "c")
    assert board.claim(job, "alice") is None
    assert job.state == states.CLAIMED
    assert board.find_owner(job) == "alice"
    assert list(board.iterjobs(only_unclaimed=True)) == []
    with pytest.raises(exc.UnclaimableJob, match="claimed by 'alice'"):
        board.claim(job, "bob")
    for call in (board.consume, board.abandon, board.trash):
        with pytest.raises(exc.JobFailure, match=r"not owned by bob .*owned by alice"):
            call(job, "bob")
    board.abandon(job, "alice")
    assert job.state == states.UNCLAIMED
    assert board.find_owner(job) is None
    for call in (board.consume, board.abandon, board.trash):
        with pytest.raises(exc.NotFound, match="can not determine the owner"):
            call(job, "alice")
    board.claim(job, "alice")
    board.consume(job, "alice")
    assert job.state == states.COMPLETE
    assert board.job_count == 0
    with pytest.raises(exc.NotFound, match="no job with uuid"):
        board.claim(job, "alice")
    with pytest.raises(exc.NotFound, match="no job with uuid"):
        board.consume(job, "alice")


def test_job_wait_returns_once_the_job_is_complete(board) -> None:
    job = board.post("waited")
    naps: list[float] = []
    assert job.wait(timeout=0.05, delay=0.01, sleep_func=naps.append) is False
    assert naps  # it looked, slept, and gave up when the time was out
    assert all(nap <= 0.05 for nap in naps)
    board.claim(job, "a")
    board.consume(job, "a")
    assert job.wait(timeout=0) is True


def test_a_trashed_job_is_complete_and_off_the_listing(board) -> None:
    job = board.post("t")
    kept = board.post("kept")
    board.claim(job, "a")
    board.trash(job, "a")
    assert job.state == states.COMPLETE
    assert [j.name for j in board.iterjobs()] == ["kept"]
    assert board.job_count == 1
    assert kept.state == states.UNCLAIMED


def test_who_must_be_a_non_empty_string(board) -> None:
    job = board.post("w")
    with pytest.raises(TypeError, match="must be a string type"):
        board.claim(job, 5)
    with pytest.raises(ValueError, match="must be non-empty"):
        board.consume(job, "")


def test_only_the_board_object_that_claimed_holds_the_fencing_token(conf, board) -> None:
    job = board.post("f")
    board.claim(job, "alice")
    other = fetch_board(conf)
    try:
        with pytest.raises(exc.JobFailure, match="through another board object"):
            other.consume(job.uuid, "alice")
        board.consume(job, "alice")
        assert other.job_count == 0
    finally:
        other.close()


def test_a_claim_is_renewed_past_its_lease_while_the_board_is_open(conf) -> None:
    board = fetch_board({**conf, "lease": 1.5})
    other = fetch_board(conf)
    try:
        job = board.post("long")
        board.claim(job, "alice")
        time.sleep(3.5)  # over two leases: only renewals keep the claim
        with pytest.raises(exc.UnclaimableJob, match="claimed by 'alice'"):
            other.claim(job, "bob")
        board.consume(job, "alice")
        assert other.job_count == 0
    finally:
        other.close()
        board.close()


def test_a_closed_boards_claims_run_out_and_another_takes_the_job(conf) -> None:
    board = fetch_board({**conf, "lease": 0.5})
    other = fetch_board(conf)
    try:
        job = board.post("dropped")
        board.claim(job, "alice")
        board.close()
        deadline = time.monotonic() + 30
        while job.uuid not in [j.uuid for j in other.iterjobs(only_unclaimed=True)]:
            assert time.monotonic() < deadline, "the lease never ran out"
            time.sleep(0.1)
        other.claim(job.uuid, "bob")
        assert other.find_owner(job.uuid) == "bob"
        other.consume(job.uuid, "bob")
    finally:
        other.close()


def test_a_claim_taken_over_after_its_lease_is_a_job_failure_then_not_found(
    conf, monkeypatch
) -> None:
    board = fetch_board({**conf, "lease": 0.5})
    other = fetch_board(conf)
    try:
        job = board.post("lost")
        board.claim(job, "alice")
        # alice's board stops renewing (a process paused past its lease)
        monkeypatch.setattr(board.tideflow_board, "renew", lambda *a, **k: None)
        deadline = time.monotonic() + 30
        while job.uuid not in [j.uuid for j in other.iterjobs(only_unclaimed=True)]:
            assert time.monotonic() < deadline, "the lease never ran out"
            time.sleep(0.1)
        other.claim(job.uuid, "bob")
        with pytest.raises(exc.JobFailure, match=r"not owned by alice any more: .*'bob'"):
            board.consume(job, "alice")
        # the refused call forgot alice's token: she is told who owns it now
        with pytest.raises(exc.JobFailure, match=r"not owned by alice .*owned by bob"):
            board.abandon(job, "alice")
        other.consume(job.uuid, "bob")
        with pytest.raises(exc.NotFound, match="no job with uuid"):
            board.trash(job, "alice")
    finally:
        other.close()
        board.close()


# -- waiting, notifications, connection ------------------------------------------------


def test_wait_returns_the_jobs_or_raises_not_found_when_none_came(board) -> None:
    with pytest.raises(exc.NotFound, match="Expired waiting for jobs to arrive"):
        board.wait(timeout=0.2)
    board.post("w1")
    assert [j.name for j in board.wait(timeout=5)] == ["w1"]


def test_notifier_reports_posted_and_removal_with_taskflow_jobs(board) -> None:
    seen: list[tuple[str, str, str]] = []
    board.notifier.register(
        board.notifier.ANY,
        lambda event, details: seen.append(
            (event, details["job"].name, type(details["job"]).__name__)
        ),
    )
    job = board.post("n")
    board.claim(job, "a")
    board.consume(job, "a")
    assert seen == [(POSTED, "n", "Job"), (REMOVAL, "n", "Job")]
    with pytest.raises(ValueError, match="POSTED"):
        board.notifier.register("POSTD", lambda event, details: None)


def test_the_tideflow_board_tracks_nothing_while_nobody_listens(board) -> None:
    def listener(event: str, details: Any) -> None:
        del event, details

    inner = board.tideflow_board
    assert len(inner.notifier) == 0
    board.notifier.register(POSTED, listener)
    assert len(inner.notifier) == 1
    board.notifier.deregister(POSTED, listener)
    assert len(inner.notifier) == 0


def test_calls_before_connect_and_after_close_are_job_failures(conf) -> None:
    board = backends.fetch("b", conf)
    assert not board.connected
    with pytest.raises(exc.JobFailure, match="not connected: call connect"):
        board.post("x")
    board.connect()
    assert board.connected
    board.close()
    with pytest.raises(exc.JobFailure, match="not connected"):
        _ = board.job_count
    with backends.backend("b", conf) as again:
        assert again.connected
        assert again.job_count == 0
    assert not again.connected


def test_posting_a_flow_needs_an_allow_list(conf, persistence, monkeypatch) -> None:
    monkeypatch.delenv("TIDEFLOW_ALLOWED", raising=False)
    bare = {k: v for k, v in conf.items() if k != "allowed"}
    board = fetch_board(bare, persistence)
    try:
        with pytest.raises(exc.JobFailure, match=r"outside the allow-list .*TIDEFLOW_ALLOWED"):
            post_flow_job(board, persistence, "na")
        assert board.post("no flow").name == "no flow"  # a job without a flow needs none
    finally:
        board.close()
    monkeypatch.setenv("TIDEFLOW_ALLOWED", " other.flows , jobs_compat_support ")
    board = fetch_board(bare, persistence)
    try:
        assert board.allowed == ("other.flows", "jobs_compat_support")
        job, _, _ = post_flow_job(board, persistence, "env")
        assert job.state == states.UNCLAIMED
    finally:
        board.close()


# -- configurations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "what"),
    [
        ({"board": "zookeeper", "hosts": "127.0.0.1:2181"}, "ZooKeeper"),
        ({"board": "zake"}, "ZooKeeper fake"),
        ({"board": "etcd", "host": "127.0.0.1"}, "etcd"),
        ("zookeeper://127.0.0.1:2181/?path=/taskflow", "ZooKeeper"),
        ({"board": "blackboard"}, "'blackboard'"),
    ],
)
def test_boards_that_do_not_exist_name_those_that_do(conf: Any, what: str) -> None:
    with pytest.raises(exc.NotFound, match=f"{what}.* not provided by tideflow; .*'redis'.*sql"):
        backends.fetch("b", conf)


def test_redis_keys_make_a_url_and_options() -> None:
    board = backends.fetch(
        "b",
        {
            "board": "redis",
            "host": "redis.example",
            "port": "6380",
            "db": 2,
            "username": "me",
            "password": "p@ss:w/rd",
            "ssl": "true",
            "namespace": "ns",
            "socket_timeout": "2.5",
            "encoding": "utf-8",
            "allowed": "a.flows, b.flows",
            "lease": 4,
            "max_attempts": "3",
        },
    )
    assert board.url == "rediss://me:p%40ss%3Aw%2Frd@redis.example:6380/2"
    assert board.options == {"namespace": "ns", "socket_timeout": 2.5, "max_attempts": 3}
    assert board.allowed == ("a.flows", "b.flows")
    assert board.lease == 4.0
    defaults = backends.fetch("b", {"board": "redis"})
    assert defaults.url == "redis://localhost:6379/0"
    assert defaults.options == {"namespace": "taskflow"}


def test_sql_boards_by_url_in_three_spellings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    for conf in ({"board": "sql", "url": url, "table": "jobs"}, {"board": url}, url):
        board = backends.fetch("b", conf, allowed=ALLOWED)
        assert board.url == url
        assert board.allowed == tuple(ALLOWED)
    from_query = backends.fetch("b", url + "?max_attempts=2&poll_interval=0.5")
    assert from_query.url == url
    assert from_query.options == {"max_attempts": 2, "poll_interval": 0.5}
    with pytest.raises(ValueError, match="takes the database's URL as 'url'"):
        backends.fetch("b", {"board": "sql"})


@pytest.mark.parametrize(
    ("conf", "kwargs", "error", "match"),
    [
        (
            {"board": "redis", "namespce": "x"},
            {},
            TypeError,
            "unknown option 'namespce'.*namespace",
        ),
        ({"board": "redis", "sentinel": "h:26379"}, {}, TypeError, "Redis Sentinel"),
        ({"board": "redis"}, {"client": object()}, TypeError, "client= is not supported"),
        ({"board": "redis"}, {"colour": 1}, TypeError, "unexpected keyword arguments"),
        ({"board": "redis", "lease": 0}, {}, ValueError, "'lease' takes a number of seconds"),
        ({"board": "redis", "allowed": 5}, {}, TypeError, "'allowed' takes module prefixes"),
        ({"board": "sqlite:///x.db", "tabel": "t"}, {}, TypeError, "'tabel'.*table"),
        ({"hosts": "x"}, {}, ValueError, "names its board"),
    ],
)
def test_configuration_mistakes_are_refused(conf, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        backends.fetch("b", conf, **kwargs)


def test_an_unreachable_redis_is_a_job_failure_at_connect() -> None:
    pytest.importorskip("redis")
    board = backends.fetch(
        "b", {"board": "redis", "host": "127.0.0.1", "port": 1, "socket_connect_timeout": 2}
    )
    with pytest.raises(exc.JobFailure, match="Failed to connect to the job board 'b'"):
        board.connect()
    assert not board.connected


def test_a_store_error_of_the_board_is_a_job_failure(board, monkeypatch) -> None:
    from tideflow.errors import StoreError

    def down(*args: object, **kwargs: object) -> None:
        raise StoreError("the database is gone")

    monkeypatch.setattr(board.tideflow_board, "iterjobs", down)
    with pytest.raises(exc.JobFailure, match=r"Failed to list the jobs of the job board .*gone"):
        list(board.iterjobs())
    with pytest.raises(exc.JobFailure, match="Failed to count the jobs of"):
        _ = board.job_count
