"""What the fault tests share: where each store lives (a module of its own, not
conftest.py, because every test directory's conftest is a module named ``conftest``).

PostgreSQL and MariaDB tests read ``TIDEFLOW_TEST_POSTGRES_URL`` and
``TIDEFLOW_TEST_MYSQL_URL`` and skip, saying so, when they are not set.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

import tideflow

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
