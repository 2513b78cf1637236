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
statement raises the owner's StoreError, and the next call opens a new connection. A
forked child opens its own and never closes its parent's (libpq would end the parent's
session on the shared socket).

Connections are bounded as the owner's pool is: at most ``limit`` threads hold one at
a time (a thread's connection is closed once the thread has ended), and a thread
beyond that gets None from :meth:`PgDirect.run` and takes the owner's pooled path.
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

__all__ = ["PgDirect", "Stage", "direct_for", "first_line", "psycopg_at_least"]

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
        limit: int | None = None,
    ) -> None:
        self.psycopg: Any = importlib.import_module("psycopg")
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._cargs = tuple(cargs)
        self._cparams = {**cparams, **connect_args}
        self._error = error
        self._limit = limit
        self._local = threading.local()
        self._all: list[list[Any]] = []  # [holder thread, connection (None: opening)]
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _conn(self) -> Any:
        """This thread's connection (made if needed); None if ``limit`` threads hold one."""
        if self._pid != os.getpid():
            # a forked child: its parent's connections are not its own, and closing one
            # here would end the parent's session (libpq says goodbye on the shared
            # socket); start afresh, as the pool does
            self._local, self._all, self._lock = threading.local(), [], threading.Lock()
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if not conn.closed and not _readable(conn.fileno()):
                return conn
            self._forget(conn)
        self._local.conn = None
        slot: list[Any] = [threading.current_thread(), None]  # taken before connecting
        with self._lock:
            ended = [held for held in self._all if not held[0].is_alive()]
            self._all = [held for held in self._all if held[0].is_alive()]
            full = self._limit is not None and len(self._all) >= self._limit
            if not full:
                self._all.append(slot)
        for _, old in ended:
            if old is not None:
                with contextlib.suppress(Exception):
                    old.close()
        if full:
            return None
        try:
            conn = self.psycopg.connect(*self._cargs, **self._cparams, autocommit=True)
        except BaseException:
            with self._lock:
                self._all = [held for held in self._all if held is not slot]
            raise
        slot[1] = conn
        self._local.conn = conn
        return conn

    def _forget(self, conn: Any) -> None:
        with self._lock:
            self._all = [held for held in self._all if held[1] is not conn]
        with contextlib.suppress(Exception):
            conn.close()

    def run(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any], doing: str
    ) -> tuple[list[tuple[Any, ...]], int] | None:
        """Run one statement: the rows it returns (plain tuples; none if it returns
        none) and its row count. None if this thread may not hold a connection now
        (``limit`` others do): nothing was sent, use the pooled path."""
        stage: Stage = "connecting"
        try:
            conn = self._conn()
            if conn is None:
                return None
            stage = "refused"
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall() if cursor.pgresult.nfields else []
            return rows, cursor.rowcount
        except self.psycopg.Error as exc:
            conn = getattr(self._local, "conn", None)
            if conn is not None and (conn.closed or conn.broken):
                self._local.conn = None
                self._forget(conn)
                if stage == "refused":
                    stage = "lost"
            raise self._error(exc, stage, doing) from exc

    def held(self) -> int:
        """How many connections are open now (one per thread that used this one)."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        """Close every connection this object opened in this process (a later call opens
        new ones); in a forked child, forget the parent's without closing them."""
        if self._pid != os.getpid():
            self._local, self._all, self._lock = threading.local(), [], threading.Lock()
            self._pid = os.getpid()
            return
        with self._lock:
            held, self._all = self._all, []
            self._local = threading.local()
        for _, conn in held:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()


def direct_for(
    engine: Engine,
    connect_args: Mapping[str, Any],
    error: Callable[[Exception, Stage, str], StoreError],
    limit: int | None = None,
) -> PgDirect | None:
    """A :class:`PgDirect` for ``engine`` if it reaches PostgreSQL through psycopg 3.1+;
    None otherwise (the caller keeps SQLAlchemy for everything)."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return None
    if not psycopg_at_least((3, 1)):
        return None
    return PgDirect(engine, connect_args, error, limit)


def psycopg_at_least(version: tuple[int, int]) -> bool:
    """Whether psycopg (3) is installed at ``version`` (major, minor) or newer."""
    try:
        psycopg = importlib.import_module("psycopg")
    except ImportError:
        return False
    found = tuple(int(p) for p in re.findall(r"\d+", psycopg.__version__)[:2])
    return found >= version


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
