"""Fixtures of the conductor tests: where the board and the store live.

``where`` gives a board URL and a store URL: SQLite files in the test's temporary
directory; with TIDEFLOW_TEST_POSTGRES_URL set, both in a PostgreSQL database of the
test's own (created beside the one named, dropped at the end); with
TIDEFLOW_TEST_REDIS_URL set, a Redis board under a namespace of the test's own (its
keys deleted at the end) and a SQLite store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # conductor_flows_support, imported by name by conductors

from conductor_procs_support import ALLOWED, Where  # noqa: E402

import tideflow  # noqa: E402
from tideflow import jobs  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Where]:
    """A board URL and a store URL (both SQLite files, or one PostgreSQL database)."""
    if request.param == "sqlite":
        # two files: a SQLite store refuses a file holding another program's tables
        jobs_db, runs_db = tmp_path / "jobs.db", tmp_path / "runs.db"
        yield Where("sqlite", f"sqlite:///{jobs_db}", f"sqlite:///{runs_db}", tmp_path)
        return
    if request.param == "redis":
        yield from _redis(tmp_path)
        return
    given = os.environ.get("TIDEFLOW_TEST_POSTGRES_URL")
    if not given:
        pytest.skip("PostgreSQL tests need TIDEFLOW_TEST_POSTGRES_URL (see .ci/services)")
    sa = pytest.importorskip("sqlalchemy")
    base = sa.make_url(given)
    name = f"tideflow_condtest_{os.getpid()}_{os.urandom(3).hex()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield Where("postgresql", url, url, tmp_path)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def board(where: Where) -> Iterator[jobs.Board]:
    """The test's own handle on the board (allowing the test flows)."""
    opened = jobs.connect(
        where.board, allowed=(ALLOWED,), poll_interval=0.02, **where.board_options
    )
    yield opened
    opened.close()


@pytest.fixture
def store(where: Where) -> Iterator[object]:
    """The store the conductors record runs in."""
    opened = tideflow.connect(where.store)
    yield opened
    opened.close()


def _redis(tmp_path: Path) -> Iterator[Where]:
    url = os.environ.get("TIDEFLOW_TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis tests need TIDEFLOW_TEST_REDIS_URL (see .ci/services)")
    redis = pytest.importorskip("redis")
    namespace = f"tideflow-condtest-{os.getpid()}-{os.urandom(3).hex()}"
    runs_db = tmp_path / "runs.db"
    try:
        yield Where("redis", url, f"sqlite:///{runs_db}", tmp_path, {"namespace": namespace})
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
