"""Shared fixtures of the fault tests: store URLs, the crash suite's fork server.

PostgreSQL and MariaDB tests read ``TIDEFLOW_TEST_POSTGRES_URL`` and
``TIDEFLOW_TEST_MYSQL_URL`` and skip, saying so, when they are not set. Other tests
share those databases (some clear them), so everything here uses log books and flow
records of its own, looks them up by uuid, and never calls ``clear_all`` there.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The flow factories, harness and driver live beside this file and must be importable
# by name: ``tideflow.resume`` re-imports the factory recorded as ``crash_flows.<name>``.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import crash_harness  # noqa: E402

import tideflow  # noqa: E402

#: store kind -> the environment variable holding its URL (None: a file made here)
SERVER_STORES = {
    "postgresql": "TIDEFLOW_TEST_POSTGRES_URL",
    "mysql": "TIDEFLOW_TEST_MYSQL_URL",
}


def server_url(kind: str) -> str:
    """The URL of the PostgreSQL or MariaDB database to test, or skip saying how to set it."""
    variable = SERVER_STORES[kind]
    url = os.environ.get(variable)
    if not url:
        example = (
            "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            if kind == "postgresql"
            else "mysql+pymysql://root@127.0.0.1:3306/test"
        )
        pytest.skip(f"{kind} fault tests need {variable} (for example {variable}={example})")
    return url


class StoreUrls:
    """``store_url(kind)``: a URL for ``kind`` (sqlite, dir, postgresql, mysql).

    Log books listed in ``books`` are destroyed at the end of the test in the shared
    databases, by uuid (nothing else there is touched).
    """

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self.books: list[str] = []
        self._servers: list[str] = []

    def __call__(self, kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self._tmp_path}/runs.db"
        if kind == "dir":
            return f"dir://{self._tmp_path}/runs"
        url = server_url(kind)
        self._servers.append(url)
        return url

    def clean_up(self) -> None:
        """Destroy the listed log books in the shared databases used."""
        for url in dict.fromkeys(self._servers):
            backend = tideflow.connect(url)
            try:
                with backend.get_connection() as conn:
                    for book_uuid in self.books:
                        with contextlib.suppress(tideflow.NotFoundError):
                            conn.destroy_logbook(book_uuid)
            finally:
                backend.close()


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[StoreUrls]:
    """A :class:`StoreUrls` for the test; its log books in shared databases go afterwards."""
    urls = StoreUrls(tmp_path)
    yield urls
    urls.clean_up()


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[crash_harness.ForkServer]:
    """The crash driver's fork server, shared by the session's crash trials."""
    log = tmp_path_factory.mktemp("crash-driver") / "stderr.log"
    server = crash_harness.ForkServer(log)
    yield server
    server.close()
