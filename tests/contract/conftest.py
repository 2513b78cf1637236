"""Every store, one fixture: the contract suite runs each test against all of them.

Stores: memory, a directory, SQLite through the standard library, SQLite through
SQLAlchemy, PostgreSQL and MariaDB. The last two need a running server and are named
by environment variables (``TIDEFLOW_TEST_POSTGRES_URL``, ``TIDEFLOW_TEST_MYSQL_URL``);
without them their tests skip, saying which variable to set. A server store is emptied
with ``clear_all()`` before each test, since its database outlives the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tideflow import persistence

#: store id -> (how to build its URL from a fresh temporary directory, the environment
#: variable naming a server, or None)
_STORES: dict[str, tuple[Callable[[Path], str] | None, str | None]] = {
    "memory": (lambda tmp: "memory://", None),
    "directory": (lambda tmp: f"dir://{tmp}/store", None),
    "sqlite": (lambda tmp: f"sqlite:///{tmp}/runs.db", None),
    "sqlalchemy-sqlite": (lambda tmp: f"sqlite+pysqlite:///{tmp}/sa.db", None),
    "postgresql": (None, "TIDEFLOW_TEST_POSTGRES_URL"),
    "mariadb": (None, "TIDEFLOW_TEST_MYSQL_URL"),
}

#: Stores that keep records in a server shared by every test (and test run).
SERVER_STORES = frozenset({"postgresql", "mariadb"})


def _url(store_id: str, tmp_path: Path) -> str:
    build, variable = _STORES[store_id]
    if variable is not None:
        url = os.environ.get(variable)
        if not url:
            pytest.skip(
                f"{store_id} store tests need a server: set {variable} (e.g. "
                + (
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test"
                    if store_id == "postgresql"
                    else "mysql+pymysql://root@127.0.0.1:3306/test"
                )
                + ") to run them"
            )
        return url
    assert build is not None
    return build(tmp_path)


@pytest.fixture(params=list(_STORES))
def store_id(request: pytest.FixtureRequest) -> str:
    """Which store this run of the test uses."""
    return str(request.param)


@pytest.fixture
def store_url(store_id: str, tmp_path: Path) -> str:
    """The URL of an empty store of the kind ``store_id`` names."""
    return _url(store_id, tmp_path)


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., Any]]:
    """Open another backend object on the test's store (with options), closed at the end.

    The memory store lives in its backend object: "another" one is the same one.
    """
    opened: list[Any] = []
    first: list[Any] = []

    def open_(**options: Any) -> Any:
        if store_url == "memory://" and first:
            return first[0]
        backend = persistence.connect(store_url, **options)
        opened.append(backend)
        if not first:
            first.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def backend(store_id: str, open_store: Callable[..., Any]) -> Any:
    """The test's store, empty."""
    store = open_store()
    if store_id in SERVER_STORES:
        with store.get_connection() as conn:
            conn.clear_all()
    return store


@pytest.fixture
def conn(backend: Any) -> Iterator[Any]:
    """A connection to the test's store."""
    connection = backend.get_connection()
    yield connection
    connection.close()


@pytest.fixture
def reopen(open_store: Callable[..., Any], backend: Any) -> Callable[..., Any]:
    """A connection through a NEW backend object on the same store (for memory, the same
    store), so reads cannot come from anything the first backend kept."""

    def reopen_(**options: Any) -> Any:
        return open_store(**options).get_connection()

    return reopen_


@pytest.fixture
def copies(backend: Any) -> None:
    """Skip a test of what only copying stores guarantee (memory hands out its objects)."""
    if backend.shares_records:
        pytest.skip("the memory store shares its record objects: reads are not copies")


@pytest.fixture
def store_location(store_id: str, store_url: str) -> Path:
    """The file or directory of a store kept in one (skips memory and server stores: a
    server's database is shared by every test run, so it is not damaged on purpose here)."""
    if store_id == "memory" or store_id in SERVER_STORES:
        pytest.skip(f"the {store_id} store has no file of its own to damage here")
    return Path("/" + store_url.split("://", 1)[1].lstrip("/"))
