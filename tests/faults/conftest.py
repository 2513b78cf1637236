"""Shared fixtures of the fault tests: store URLs, the crash suite's fork server.

PostgreSQL and MariaDB tests read ``TIDEFLOW_TEST_POSTGRES_URL`` and
``TIDEFLOW_TEST_MYSQL_URL`` and skip, saying so, when they are not set. Other tests
share those databases (some clear them), so everything here uses log books and flow
records of its own, looks them up by uuid, and never calls ``clear_all`` there.
"""

from __future__ import annotations

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
from fault_support import StoreUrls  # noqa: E402


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[StoreUrls]:
    """A :class:`StoreUrls` for the test; its log books in shared databases go afterwards."""
    urls = StoreUrls(tmp_path)
    yield urls
    urls.clean_up()


@pytest.fixture
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[crash_harness.ForkServer]:
    """The crash driver's fork server, one per test: a server that stops answering fails
    only its own test's trials (shared by the session, one death once failed every
    later trial in CI)."""
    log = tmp_path_factory.mktemp("crash-driver") / "stderr.log"
    server = crash_harness.ForkServer(log)
    yield server
    server.close()
