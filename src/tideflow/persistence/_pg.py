"""Single statements on PostgreSQL straight through psycopg 3, for the hot paths.

The SQL store and the SQL job board send most statements through SQLAlchemy Core, on
pooled connections tested before each use. For the few statements a run or a claim
sends per job (a round of records, a release; a claim and a consume), that costs more
client CPU than the statement itself, and a transaction's ``BEGIN`` and ``COMMIT`` cost
two more round trips. :class:`PgDirect` sends each such statement alone, in autocommit,
on a connection the owner holds per thread (and per process), with psycopg's own
statement preparation.

A connection the server closed while it sat idle (a restart, ``pg_terminate_backend``,
an idle timeout) has a readable socket: nothing else arrives on an idle connection
that does not LISTEN. It is replaced before use, with no round trip. One lost during a
statement raises the owner's StoreError, and the next call opens a new connection.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import select
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tideflow.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["PgDirect", "Stage", "direct_for"]

#: Where a call failed: "connecting" (nothing was sent), "lost" (the connection died
#: during the statement: it may or may not have run) or "refused" (the server answered
#: with an error: nothing of the statement was committed).
Stage = str


class PgDirect:
    """Autocommit statements on one psycopg connection per thread.

    ``error(exc, stage, doing)`` makes the StoreError a failure raises (see :data:`Stage`).
    """

    def __init__(
        self,
        engine: Engine,
        connect_args: Mapping[str, Any],
        error: Callable[[Exception, Stage, str], StoreError],
    ) -> None:
        self.psycopg: Any = importlib.import_module("psycopg")
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._cargs = tuple(cargs)
        self._cparams = {**cparams, **connect_args}
        self._error = error
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            if not conn.closed and not _readable(conn.fileno()):
                return conn
            with contextlib.suppress(Exception):
                conn.close()
        self._local.conn = None
        conn = self.psycopg.connect(*self._cargs, **self._cparams, autocommit=True)
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._all.append(conn)
        return conn

    def run(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any], doing: str
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement: the rows it returns (plain tuples; none if it returns
        none) and its row count."""
        stage: Stage = "connecting"
        try:
            conn = self._conn()
            stage = "refused"
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall() if cursor.pgresult.nfields else []
            return rows, cursor.rowcount
        except self.psycopg.Error as exc:
            conn = getattr(self._local, "conn", None)
            if conn is not None and (conn.closed or conn.broken):
                self._local.conn = None
                if stage == "refused":
                    stage = "lost"
            raise self._error(exc, stage, doing) from exc

    def close(self) -> None:
        """Close every connection this object opened (a later call opens new ones)."""
        with self._lock:
            conns, self._all = self._all, []
            self._local = threading.local()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def direct_for(
    engine: Engine,
    connect_args: Mapping[str, Any],
    error: Callable[[Exception, Stage, str], StoreError],
) -> PgDirect | None:
    """A :class:`PgDirect` for ``engine`` if it reaches PostgreSQL through psycopg 3.1+;
    None otherwise (the caller keeps SQLAlchemy for everything)."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return None
    try:
        psycopg = importlib.import_module("psycopg")
    except ImportError:
        return None
    version = tuple(int(p) for p in re.findall(r"\d+", psycopg.__version__)[:2])
    if version < (3, 1):
        return None
    return PgDirect(engine, connect_args, error)


def first_line(exc: Exception) -> str:
    """The first line of what the driver said (its type if it said nothing)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _readable(fd: int) -> bool:
    """Whether an idle connection's socket has something to read: with no LISTEN and no
    statement in flight, only the server closing it (or its goodbye) does."""
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True
