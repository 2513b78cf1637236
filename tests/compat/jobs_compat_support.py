"""Helpers of the TaskFlow job board and conductor tests: flows, boards, a posting program.

The flows' factories live here (the boards allow this module's name); each atom
appends its name to :data:`RAN` when it runs, so a test sees what ran in this process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskflow import engines, task
from taskflow.jobs import backends as job_backends
from taskflow.patterns import linear_flow
from taskflow.persistence import backends as persistence_backends
from taskflow.persistence import models

ALLOWED = ["jobs_compat_support"]
RAN: list[str] = []
#: Set by a test to let a Gate atom finish.
GATE = threading.Event()
#: Set by a Gate atom once it started.
AT_GATE = threading.Event()


class Add(task.Task):  # type: ignore[misc]
    """Adds its two arguments."""

    def execute(self, x: int, y: int) -> int:
        RAN.append(self.name)
        return x + y


class Double(task.Task):  # type: ignore[misc]
    """Doubles its argument."""

    def execute(self, z: int) -> int:
        RAN.append(self.name)
        return 2 * z


class Gate(task.Task):  # type: ignore[misc]
    """Waits for GATE (at most 30 s)."""

    def execute(self) -> None:
        RAN.append(self.name)
        AT_GATE.set()
        GATE.wait(30)


def make_flow(tag: str) -> Any:
    """x + y -> z, then 2 * z -> w."""
    return linear_flow.Flow(tag).add(
        Add(f"add-{tag}", provides="z"), Double(f"double-{tag}", provides="w")
    )


def make_gated_flow(tag: str) -> Any:
    """An atom that waits for GATE, then x + y -> z."""
    return linear_flow.Flow(tag).add(Gate(f"gate-{tag}"), Add(f"add-{tag}", provides="z"))


def post_flow_job(
    board: Any, persistence: Any, tag: str, store: dict[str, Any] | None = None, factory: Any = None
) -> tuple[Any, Any, Any]:
    """What a TaskFlow program does to post a job: a logbook with one flow detail saved
    in the persistence backend, the flow factory saved in it, the job posted with the
    book; returns (job, book, flow detail)."""
    book = models.LogBook(f"book-{tag}")
    flow_detail = models.FlowDetail(f"flow-{tag}", uuid=uuid.uuid4().hex)
    book.add(flow_detail)
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.save_logbook(book)
    engines.save_factory_details(flow_detail, factory or make_flow, [tag], {}, backend=persistence)
    job = board.post(f"job-{tag}", book=book, details={"store": store or {"x": 1, "y": 2}})
    return job, book, flow_detail


def redis_url() -> str:
    """TIDEFLOW_TEST_REDIS_URL, or skip the test saying so."""
    url = os.environ.get("TIDEFLOW_TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis board tests need TIDEFLOW_TEST_REDIS_URL (see .ci/services)")
    pytest.importorskip("redis")
    return url


def board_conf(kind: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A board configuration TaskFlow-style: SQLite by URL, or Redis by host and port
    under a namespace of the test's own (its keys deleted at the end)."""
    if kind == "sqlite":
        yield {"board": f"sqlite:///{tmp_path / 'jobs.db'}", "allowed": ALLOWED}
        return
    if kind == "postgresql":
        yield from _postgresql_conf()
        return
    url = redis_url()
    import redis

    parts = redis.connection.parse_url(url)
    namespace = f"taskflow-compat-{os.getpid()}-{os.urandom(3).hex()}"
    try:
        yield {
            "board": "redis",
            "host": parts.get("host", "127.0.0.1"),
            "port": parts.get("port", 6379),
            "db": parts.get("db", 0),
            "namespace": namespace,
            "allowed": ALLOWED,
        }
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def _postgresql_conf() -> Iterator[dict[str, Any]]:
    """A SQL board in the test database, in a table of the test's own (dropped after)."""
    url = os.environ.get("TIDEFLOW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL board tests need TIDEFLOW_TEST_POSTGRES_URL (see .ci/services)")
    sa = pytest.importorskip("sqlalchemy")
    table = f"tf_compat_{os.getpid()}_{os.urandom(3).hex()}"
    try:
        yield {"board": "sql", "url": url, "table": table, "allowed": ALLOWED}
    finally:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
        finally:
            engine.dispose()


def sqlite_persistence(tmp_path: Path) -> Any:
    """A TaskFlow persistence backend in a SQLite file, its schema made."""
    backend = persistence_backends.fetch(f"sqlite:///{tmp_path / 'runs.db'}")
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def fetch_board(conf: dict[str, Any], persistence: Any = None, **kwargs: Any) -> Any:
    """A connected board."""
    board = job_backends.fetch("test-board", conf, persistence=persistence, **kwargs)
    board.connect()
    return board
