"""The DBOS Transact side of the durable benchmarks, imported only by workers in DBOS's venv.

A workload is one workflow of N steps, each a no-op ``@DBOS.step()``, recorded in a
SQLite system database. DBOS is a process-wide singleton: the first call of a
worker process creates the database in a temporary directory (in WAL mode first,
for ``durable_wal``: the journal mode is kept in the file, and DBOS has no option
for it), launches DBOS and registers the workflow, all untimed (the worker's
warm-up call); every later call times one new workflow. DBOS leaves
``synchronous`` at SQLite's default (FULL) in both modes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from _common import Timings, Workload
from dbos import DBOS, DBOSConfig, SetWorkflowID


def version() -> str:
    """Return the installed DBOS version."""
    return metadata.version("dbos")


@dataclass
class _Launched:
    """The one DBOS instance of this process: its database file, journal mode, workflow."""

    path: str
    journal: str
    workflow: Callable[[int], int]


_launched: _Launched | None = None


def _launch(journal: str) -> _Launched:
    """Create the system database (journal mode ``journal``) and launch DBOS, once."""
    global _launched  # DBOS itself is a process-wide singleton
    if _launched is not None:
        if _launched.journal != journal:
            raise RuntimeError(f"DBOS already launched in {_launched.journal} mode, not {journal}")
        return _launched
    tmp = tempfile.mkdtemp(prefix="bench-dbos-")
    atexit.register(shutil.rmtree, tmp, True)
    path = os.path.join(tmp, "dbos.sqlite")
    if journal == "wal":
        with contextlib.closing(sqlite3.connect(path)) as conn:  # kept in the file
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"could not put {path} in WAL mode (got {mode})")
    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": f"sqlite:///{path}",
        "run_admin_server": False,
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    def noop() -> None:
        """Do nothing (recorded as one step)."""

    @DBOS.workflow()
    def linear(n: int) -> int:
        """Run ``n`` no-op steps, one after another."""
        for _ in range(n):
            noop()
        return n

    DBOS.launch()
    atexit.register(DBOS.destroy)  # registered after rmtree, so it runs first
    logging.getLogger("dbos").setLevel(logging.WARNING)
    _launched = _Launched(path, journal, linear)
    return _launched


def _journal_mode(path: str) -> str:
    """Return the journal mode the database file is in."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def durable(journal: str) -> Workload:
    """Return the workload: one workflow of N no-op steps with the database in ``journal``."""

    def measure(n: int) -> Timings:
        launched = _launch(journal)
        workflow_id = str(uuid.uuid4())
        start = time.perf_counter()
        with SetWorkflowID(workflow_id):
            steps = launched.workflow(n)
        done = time.perf_counter()
        with contextlib.closing(sqlite3.connect(launched.path)) as conn:
            (recorded,) = conn.execute(
                "SELECT count(*) FROM operation_outputs WHERE workflow_uuid = ?", (workflow_id,)
            ).fetchone()
        if steps != n or recorded != n:
            raise AssertionError(f"the workflow recorded {recorded} steps, not {n}")
        mode = _journal_mode(launched.path)
        if (mode == "wal") != (journal == "wal"):
            raise AssertionError(f"the database is in {mode} mode, not {journal}")
        return {"run": done - start, "total": done - start}

    return measure


WORKLOADS: dict[str, Workload | str | None] = {
    "durable_linear": durable("default"),
    "durable_wal": durable("wal"),
}
"""Workload name -> measurement (DBOS runs only the durable workloads)."""
