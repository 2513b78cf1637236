"""Fixtures for the job board tests: each test runs on every board.

SQLite always; PostgreSQL, MariaDB and Redis when TIDEFLOW_TEST_POSTGRES_URL,
TIDEFLOW_TEST_MYSQL_URL and TIDEFLOW_TEST_REDIS_URL name a server (``eval "$(bash
.ci/services)"`` sets them). A SQL server gets a database of the module's own (dropped at
the end) and each test a table of its own; on Redis each test gets a namespace of its
own, whose keys are deleted after it.
"""

from __future__ import annotations

import itertools
import os

import pytest
from board_support import ALLOWED, ENV, KINDS, skip_reason

from tideflow.jobs import connect

_names = itertools.count()


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    reason = skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture(scope="module")
def server_url(kind):
    """The server to use (a database of this module's own on a SQL one), None for SQLite."""
    if kind == "sqlite":
        yield None
        return
    if kind == "redis":
        yield os.environ[ENV[kind][0]]
        return
    import sqlalchemy as sa

    given = sa.make_url(os.environ[ENV[kind][0]])
    name = f"tideflow_jobtest_{os.getpid()}_{os.urandom(3).hex()}"
    admin = sa.create_engine(given, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield given.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")
        with admin.connect() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()


@pytest.fixture
def url(server_url, tmp_path):
    return server_url or f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def place(kind, url):
    """The options that give a test a board of its own: a table, or a Redis namespace."""
    n = next(_names)
    if kind != "redis":
        yield {"table": f"jobs_{n}"}
        return
    namespace = f"tideflow-test-{os.getpid()}-{n}"
    yield {"namespace": namespace}
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=namespace + ":*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def make(url, place):
    """Open a board on this test's place: ``make(**options)`` (allowed=ALLOWED unless
    given); every board opened is closed at the end."""
    opened = []

    def make(**options):
        board = connect(url, **{"allowed": ALLOWED, **place, **options})
        opened.append(board)
        return board

    yield make
    for board in opened:
        board.close()


@pytest.fixture
def board(make):
    return make(poll_interval=0.01)
