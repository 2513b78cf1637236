"""The SQL job board: one table in SQLite (stdlib ``sqlite3``), PostgreSQL or MariaDB.

``SqlBoard("sqlite:///jobs.db", allowed=("myapp.flows",))`` keeps each job as one row
of ``tideflow_jobs`` (``table=`` names another)::

    seq           auto-increment primary key: the posting order ("age")
    uuid          unique; name, factory, args, kwargs, store, details (codec text)
    priority      higher first; index (priority, seq)
    state         UNCLAIMED | CLAIMED | TRASHED (a consumed job's row is deleted)
    owner, lease_expires, token, attempts, created_at, updated_at

Every statement is written once, as text with ``:name`` parameters, and runs on either
driver: ``sqlite3`` directly, or SQLAlchemy Core's ``text()`` for the servers (imported
only when such a board is opened). What differs per database is small: the clock, the
column types of the DDL, and the row locks.

- **The clock** is the database's (``clock_timestamp()``, ``NOW(6)`` in UTC, SQLite's
  ``julianday('now')``), so conductors on machines with skewed clocks agree on when a
  lease ends.
- **A claim** is one transaction: find the row if it is free (UNCLAIMED, or CLAIMED
  with its lease run out), then set owner, lease and ``token = token + 1``. On the
  servers the find is ``SELECT ... FOR UPDATE SKIP LOCKED``, so of racing claimers one
  locks the row and the others skip it at once instead of queueing behind it; SQLite
  takes the file's write lock first (``BEGIN IMMEDIATE``), which serialises claimers.
  On PostgreSQL with psycopg 3, ``claim_next`` is a single autocommit statement
  (``UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``, the
  allow-list tested in SQL) and ``consume`` a single autocommit ``DELETE``, sent on a
  connection per thread without SQLAlchemy (:mod:`tideflow.persistence._pg`).
  ``claim_next`` picks by module prefix only, on every board; a factory that is not a
  valid import path is claimed like any other and refused by the conductor, which
  trashes the job.
- **Owner calls** (renew, consume, abandon, trash) are single statements whose
  ``WHERE`` names uuid, owner, token and ``state = 'CLAIMED'``; a row count of 0 means
  the claim was lost, and :class:`~tideflow.jobs.base.LeaseLostError` says what
  happened instead.
- **Fencing a run's writes**: :meth:`SqlBoard.check_fence` reads the job's token inside
  the caller's own transaction, under a shared row lock on the servers (a claim then
  skips the row until that write commits) and under SQLite's write lock, so a write
  either commits while its claim is current or not at all. It needs the jobs table in
  the same database as the run records.

- **Attempts**: a claim whose row is CLAIMED (its lease ran out) counts an attempt in
  the same ``UPDATE`` that takes it; when that attempt is the ``max_attempts``-th the
  row is set TRASHED instead, that transaction commits, and the claim is refused.

``wait()`` on PostgreSQL (driver psycopg 3) is woken through LISTEN/NOTIFY: a post, and
an abandon, run ``pg_notify`` on the channel named like the table in their transaction,
and a waiting board holds one connection of its own per waiting thread that LISTENs on
it; it also wakes when the earliest lease runs out and, in case a notification was lost
with a connection, after ``poll_interval`` seconds or 1 s, whichever is longer. Elsewhere
it polls every ``poll_interval`` seconds. POSTED and REMOVAL are sent as
:mod:`tideflow.jobs.base` says, after the transaction that read or wrote the job.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sqlite3
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from tideflow.errors import NotFoundError, StoreError
from tideflow.jobs._common import (
    Sightings,
    check_allowed,
    check_claim_next,
    check_consumed,
    check_max_attempts,
    check_seconds,
    check_who,
    config_options,
    encode_post,
    exhausted_error,
    held_error,
    lost_error,
    missing_error,
    new_notifier,
    trashed_error,
    uuid_of,
)
from tideflow.jobs.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    Job,
    JobClaimedError,
    JobState,
    LeaseLostError,
    Settled,
    allows_module,
    check_factory,
)
from tideflow.persistence._pg import PgDirect, direct_for, first_line, psycopg_at_least
from tideflow.persistence.codec import Codec, codec_named

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as SaConnection
    from sqlalchemy.engine import Engine

__all__ = ["SqlBoard"]

#: Keyword options of :class:`SqlBoard` (besides ``connection``, the URL).
OPTIONS: Final = (
    "allowed",
    "busy_timeout",
    "codec",
    "connect_timeout",
    "max_attempts",
    "poll_interval",
    "pool_size",
    "table",
)

_COLUMNS: Final = (
    "seq, uuid, name, factory, args, kwargs, store, details, priority, state, owner, "
    "lease_expires, token, attempts, created_at, updated_at"
)
_COLUMN_NAMES: Final = tuple(name.strip() for name in _COLUMNS.split(","))
_NOW: Final = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",  # the session's time zone is UTC (see _ServerDb)
}
_ID: Final = {
    "sqlite": "seq INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "mysql": "seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
}
_TEXT: Final = {"sqlite": "TEXT", "postgresql": "TEXT", "mysql": "LONGTEXT"}
_FLOAT: Final = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION", "mysql": "DOUBLE"}
_TABLE_OPTIONS: Final = {
    "sqlite": "",
    # room on each page for a claim's new row version next to the old one: a claim
    # changes no indexed column, so PostgreSQL then updates it in place (HOT), without
    # touching the three indexes
    "postgresql": " WITH (fillfactor = 70)",
    "mysql": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
}
#: Row locks: a claim's (skip what another holds) and a fence check's (shared).
_LOCK_CLAIM: Final = {
    "sqlite": "",
    "postgresql": " FOR UPDATE SKIP LOCKED",
    "mysql": " FOR UPDATE SKIP LOCKED",
}
_LOCK_FENCE: Final = {"sqlite": "", "postgresql": " FOR SHARE", "mysql": " LOCK IN SHARE MODE"}
_PG_LOCK_KEY: Final = 0x7469_6465_6A6F_6273 >> 1  # "tidejobs", as a positive bigint
#: With LISTEN, the shortest pause between wait()'s looks when nothing wakes it.
_LISTEN_FALLBACK: Final = 1.0
_CLAIM_BATCH: Final = 8  # rows claim_next locks at once, in case some are not allowed here
_TABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,50}")


class _Tx(Protocol):
    """One open transaction: statements with ``:name`` parameters."""

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]: ...

    def run(self, sql: str, params: Mapping[str, Any]) -> int: ...


class _Db(Protocol):
    dialect: str

    def transaction(self, doing: str, *, write: bool) -> contextlib.AbstractContextManager[_Tx]: ...

    def close(self) -> None: ...


# -- SQLite through sqlite3 ----------------------------------------------------------------


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, dict(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def run(self, sql: str, params: Mapping[str, Any]) -> int:
        return self.db.execute(sql, dict(params)).rowcount


class _SqliteDb:
    """One ``sqlite3`` connection per thread (and per process: a forked child opens its own)."""

    dialect = "sqlite"

    def __init__(self, path: str, busy_timeout: float, shown: str) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.shown = shown
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            return db
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode = WAL")
        self._local.db, self._local.pid = db, os.getpid()
        with self._lock:
            self._all.append(db)
        return db

    @contextlib.contextmanager
    def transaction(self, doing: str, *, write: bool) -> Iterator[_Tx]:
        from tideflow.persistence.sqlite import _rollback, _store_error  # noqa: PLC0415

        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteTx(db)
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        except sqlite3.Error as exc:
            raise _store_error(exc, self.shown, doing, self.busy_timeout) from exc
        except OSError as exc:
            raise StoreError(f"{self.shown}: {doing} failed ({exc})", cause=exc) from exc

    def close(self) -> None:
        with self._lock:
            dbs, self._all = self._all, []
            self._local = threading.local()
        for db in dbs:
            with contextlib.suppress(sqlite3.Error):
                db.close()


# -- PostgreSQL and MariaDB through SQLAlchemy Core ----------------------------------------


class _ServerTx:
    def __init__(self, conn: SaConnection, text: Any) -> None:
        self.conn = conn
        self.text = text

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        result = self.conn.execute(self.text(sql), dict(params))
        return [dict(row) for row in result.mappings().all()]

    def run(self, sql: str, params: Mapping[str, Any]) -> int:
        return int(self.conn.execute(self.text(sql), dict(params)).rowcount)


class _ServerDb:
    def __init__(self, url: str, *, pool_size: int, connect_timeout: float) -> None:
        from tideflow.persistence import sql as store_sql  # noqa: PLC0415  # lazy: SQLAlchemy

        scheme = url.partition("://")[0].partition("+")[0]
        install = store_sql._INSTALL.get(scheme, store_sql._INSTALL_ANY)
        store_sql._require_sqlalchemy(install)
        sa = importlib.import_module("sqlalchemy")
        self._sa = sa
        try:
            parsed = store_sql._with_driver(sa.make_url(url), install)
        except sa.exc.ArgumentError as exc:
            shown = store_sql._hide_password(url)
            raise ValueError(f"{shown!r} is not a database URL: {exc}") from exc
        self.shown = parsed.render_as_string(hide_password=True)
        backend = parsed.get_backend_name()
        self.dialect = "mysql" if backend in ("mysql", "mariadb") else backend
        if self.dialect not in _NOW:
            raise ValueError(
                f"job boards run on PostgreSQL, MariaDB/MySQL and SQLite, not {backend!r} "
                f"({self.shown})"
            )
        self.driver = parsed.get_driver_name()
        connect_args = store_sql._connect_timeout_args(self.driver, connect_timeout)
        self.connect_args = dict(connect_args)
        if self.dialect == "mysql":
            connect_args["init_command"] = "SET time_zone = '+00:00'"
        try:
            self.engine: Engine = sa.create_engine(
                parsed, pool_pre_ping=True, pool_size=pool_size, connect_args=connect_args
            )
        except ImportError as exc:
            raise ImportError(
                f"the job board {self.shown} needs the driver {parsed.get_driver_name()!r}, "
                f"which is not installed ({exc}): {install}"
            ) from exc

    @contextlib.contextmanager
    def transaction(self, doing: str, *, write: bool) -> Iterator[_Tx]:
        sa = self._sa
        stage = "connecting to"
        try:
            with self.engine.connect() as conn:
                stage = "using"
                with conn.begin():
                    yield _ServerTx(conn, sa.text)
        except sa.exc.SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            said = detail[0] if detail else type(exc).__name__
            raise StoreError(
                f"job board {self.shown}: {stage} the database while {doing} failed: {said}; "
                "nothing of this call was committed: check that the server is running and "
                "reachable, then retry",
                cause=exc,
            ) from exc

    def close(self) -> None:
        self.engine.dispose()


class _PgListener:
    """A psycopg 3 connection of its own, in autocommit, LISTENing on one channel."""

    def __init__(self, server: _ServerDb, channel: str) -> None:
        psycopg = importlib.import_module("psycopg")
        cargs, cparams = server.engine.dialect.create_connect_args(server.engine.url)
        self.error: type[Exception] = psycopg.Error
        self.pid = os.getpid()
        self.conn = psycopg.connect(*cargs, **{**cparams, **server.connect_args}, autocommit=True)
        self.conn.execute(f'LISTEN "{channel}"')

    def sleep(self, seconds: float) -> None:
        """Return at the first notification, or after ``seconds``."""
        for _ in self.conn.notifies(timeout=seconds, stop_after=1):
            pass

    def drain(self) -> None:
        """Read the notifications already there, without waiting."""
        for _ in self.conn.notifies(timeout=0):
            pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# -- the board -----------------------------------------------------------------------------


class SqlBoard:
    """A job board in a SQL database: ``sqlite:///path``, ``postgresql://...``, ``mysql://...``.

    Options (keyword-only): ``allowed``, the module prefixes whose flow factories may be
    posted and claimed (a factory ``'myapp.flows.orders:build'`` needs ``'myapp'``,
    ``'myapp.flows'`` or ``'myapp.flows.orders'``; nothing is allowed by default);
    ``max_attempts`` (attempts before a job is trashed, default 5); ``table`` (default
    ``tideflow_jobs``); ``poll_interval`` (seconds between checks in :meth:`wait`);
    ``codec`` (how args, kwargs, store values and details are kept: 'json' or 'pickle');
    SQLite's ``busy_timeout``; the servers' ``pool_size`` and ``connect_timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        allowed: Sequence[str] = (),
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        table: str = "tideflow_jobs",
        poll_interval: float = 0.05,
        codec: str | Codec = "json",
        busy_timeout: float = 30.0,
        pool_size: int = 5,
        connect_timeout: float = 10.0,
    ) -> None:
        allowed = check_allowed(allowed)
        check_max_attempts(max_attempts)
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ValueError(
                f"table= takes a plain SQL name (letters, digits, _; at most 51), got {table!r}"
            )
        check_seconds("poll_interval", poll_interval, positive=True)
        self.url = url
        self.allowed: tuple[str, ...] = tuple(allowed)
        self._allowed_seen: tuple[tuple[str, ...], str] = ((), "[]")
        self.max_attempts = max_attempts
        self.table = table
        self.poll_interval = float(poll_interval)
        self.codec: Codec = codec_named(codec)
        #: POSTED and REMOVAL, as :mod:`tideflow.jobs.base` says.
        self.notifier = new_notifier()
        self._sightings = Sightings(self.notifier)
        scheme = url.partition("://")[0] if isinstance(url, str) else ""
        self._db: _Db
        if scheme.partition("+")[0] == "sqlite":
            from tideflow.persistence.sqlite import _path_of  # noqa: PLC0415

            path = _path_of("sqlite://" + url.partition("://")[2])
            if path is None:
                raise ValueError(
                    f"{url!r}: a job board is shared between processes, so it needs a file "
                    "('sqlite:///jobs.db'), not a database in memory"
                )
            self.shown = f"sqlite:///{path}"
            self._db = _SqliteDb(path, float(busy_timeout), f"job board {self.shown}")
        else:
            server = _ServerDb(url, pool_size=pool_size, connect_timeout=connect_timeout)
            self.shown = server.shown
            self._db = server
        self.dialect = self._db.dialect
        self._sql = _statements(self.dialect, table)
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        # LISTEN connections, one per waiting thread (PostgreSQL with psycopg 3 only)
        self._listens = self.dialect == "postgresql" and _has_notifies(self._db)
        self._listeners: dict[int, _PgListener] = {}
        # claim_next and consume as one autocommit statement each (PostgreSQL, psycopg 3)
        self._fast: PgDirect | None = None
        if self._listens:
            assert isinstance(self._db, _ServerDb)
            self._fast = direct_for(
                self._db.engine, self._db.connect_args, self._fast_error, limit=pool_size
            )
            self._fast_sql = _pg_fast_statements(table)

    def _fast_error(self, exc: Exception, stage: str, doing: str) -> StoreError:
        """The StoreError of a failed statement on the PostgreSQL fast path."""
        said = first_line(exc)
        if stage == "connecting":
            outcome = "nothing was sent"
        elif stage == "lost":
            outcome = "the connection was lost during the statement, which may have run"
        else:
            outcome = "nothing of this call was committed"
        return StoreError(
            f"job board {self.shown}: {doing} failed: {said}; {outcome}: check that the "
            "server is running and reachable, then retry",
            cause=exc,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SqlBoard:
        """The board ``config["connection"]`` names, with the other keys as options."""
        url, options = config_options(config, "SQL", "postgresql://user@host/db", OPTIONS)
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<SqlBoard {self.shown} table={self.table}>"

    def close(self) -> None:
        """Close the board's database connections (a later call opens new ones)."""
        with self._schema_lock:
            listeners, self._listeners = list(self._listeners.values()), {}
        for listener in listeners:
            listener.close()
        if self._fast is not None:
            self._fast.close()
        self._db.close()

    # -- schema ------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the jobs table and its index if missing; idempotent, safe from many
        processes at once."""
        with self._schema_lock:
            with self._db.transaction("creating the jobs table", write=True) as tx:
                if self.dialect == "postgresql":
                    tx.rows("SELECT pg_advisory_xact_lock(:key)", {"key": _PG_LOCK_KEY})
                for statement in self._sql["ddl"].split(";\n"):
                    tx.run(statement, {})
            self._schema_ready = True

    @contextlib.contextmanager
    def _tx(self, doing: str, *, write: bool = True) -> Iterator[_Tx]:
        if not self._schema_ready:
            self.upgrade()
        with self._db.transaction(doing, write=write) as tx:
            yield tx

    # -- posting and reading -----------------------------------------------------------

    def post(
        self,
        name: str,
        factory: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        store: Mapping[str, Any] | None = None,
        priority: int = 0,
        details: Mapping[str, Any] | None = None,
    ) -> Job:
        """Add a job; returns it as stored (FactoryNotAllowedError if ``factory`` is
        outside the allow-list)."""
        params = encode_post(
            self.codec,
            self.allowed,
            f"the job board {self.shown}",
            name,
            factory,
            args,
            kwargs,
            store,
            priority,
            details,
        )
        params["uuid"] = str(uuidlib.uuid4())
        with self._tx(f"posting job {name!r}") as tx:
            tx.run(self._sql["insert"], params)
            if self._listens:
                tx.rows(self._sql["notify"], params)
            posted = self._job(tx.rows(self._sql["get"], params)[0])
        self._sightings.saw((posted,))
        return posted

    def get(self, job: Job | str) -> Job:
        """The job as the board holds it now (NotFoundError if it was consumed or never
        posted)."""
        key = uuid_of(job)
        with self._tx(f"reading job {key}", write=False) as tx:
            rows = tx.rows(self._sql["get"], {"uuid": key})
        if not rows:
            self._sightings.gone(key)
            raise self._missing(key)
        found = self._job(rows[0])
        self._sightings.saw((found,))
        return found

    def iterjobs(self, only_unclaimed: bool = False) -> Iterator[Job]:
        """Jobs not trashed, highest priority first, then in posting order. With
        ``only_unclaimed``, only those a claim would take now (lease run out included)."""
        yield from self._listing(only_unclaimed)

    def _listing(self, only_unclaimed: bool) -> list[Job]:
        statement = self._sql["free" if only_unclaimed else "listing"]
        with self._tx("listing jobs", write=False) as tx:
            rows = tx.rows(statement, {})
        jobs = [self._job(row) for row in rows]
        self._sightings.saw(jobs, complete=not only_unclaimed)
        return jobs

    def wait(self, timeout: float | None = None) -> bool:
        """Return True as soon as a job could be claimed, False after ``timeout`` seconds
        (None: wait as long as it takes)."""
        if timeout is not None:
            check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        listener = self._listener()  # before the first look: a post after it wakes us
        while True:
            if listener is not None:
                try:
                    listener.drain()  # what came before this look is seen by it
                except listener.error:
                    self._drop_listener(listener)
                    listener = None
            # while someone listens each look reads the whole board, to report what came
            # and went since the last one
            listing = self._sightings.listening()
            with self._tx("waiting for jobs", write=False) as tx:
                free = bool(tx.rows(self._sql["any_free"], {}))
                rows = tx.rows(self._sql["listing"], {}) if listing else []
                ends = tx.rows(self._sql["next_end"], {})[0]["left"] if listener else None
            if listing:
                self._sightings.saw([self._job(row) for row in rows], complete=True)
            if free:
                return True
            pause = self.poll_interval
            if listener is not None:
                pause = max(pause, _LISTEN_FALLBACK)
                if ends is not None:
                    pause = min(pause, ends + 0.001)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pause = min(pause, left)
            if listener is None:
                time.sleep(pause)
                continue
            try:
                listener.sleep(max(pause, 0.0))
            except listener.error:
                self._drop_listener(listener)  # this look polls; the next wait listens anew
                listener = None

    def _listener(self) -> _PgListener | None:
        """This thread's LISTEN connection (opened on first use), None if the board polls."""
        if not self._listens:
            return None
        if not self._schema_ready:
            self.upgrade()
        me = threading.get_ident()
        listener = self._listeners.get(me)
        if listener is not None and listener.pid == os.getpid():
            return listener
        assert isinstance(self._db, _ServerDb)
        try:
            listener = _PgListener(self._db, self.table)
        except Exception as exc:  # any failure: poll instead, and say why
            from tideflow._log import logger  # noqa: PLC0415

            logger("tideflow.jobs").warning(
                "job board %s: cannot LISTEN for new jobs (%s); wait() polls instead",
                self.shown,
                exc,
            )
            return None
        with self._schema_lock:
            self._listeners[me] = listener
        return listener

    def _drop_listener(self, listener: _PgListener) -> None:
        with self._schema_lock:
            for key, held in list(self._listeners.items()):
                if held is listener:
                    del self._listeners[key]
        listener.close()

    # -- claims --------------------------------------------------------------------------

    def claim(self, job: Job | str, who: str, lease: float = DEFAULT_LEASE) -> Job:
        """Make ``who`` the owner for ``lease`` seconds; the Job returned holds the new
        fencing token. JobClaimedError if another owner's lease is live, if the job is
        trashed, or if taking over its run-out lease was its last attempt (the job is
        then trashed); FactoryNotAllowedError if its factory is outside the allow-list."""
        key = uuid_of(job)
        check_who(who)
        check_seconds("lease", lease, positive=True)
        with self._tx(f"claiming job {key}") as tx:
            rows = tx.rows(self._sql["lock_one"], {"uuid": key})
            if rows:
                check_factory(rows[0]["factory"], self.allowed, f"the job board {self.shown}")
                taken = self._take(tx, key, rows[0], who, lease)
            else:
                refused = self._unclaimable(tx, key)
        if not rows:
            if isinstance(refused, NotFoundError):
                self._sightings.gone(key)  # after the transaction, as every event
            raise refused
        self._sightings.saw((taken,))
        if taken.state is JobState.TRASHED:
            raise exhausted_error(self.shown, taken, self.max_attempts)
        return taken

    def claim_next(self, who: str, lease: float = DEFAULT_LEASE) -> Job | None:
        """Claim the first job a claim can take (highest priority, then oldest) whose
        factory this board allows; None if there is none. A job whose run-out lease was
        its last attempt is trashed on the way (see :mod:`tideflow.jobs.base`)."""
        check_claim_next(who, lease, self.allowed, self.shown)
        if self._fast is not None:
            return self._claim_next_fast(who, lease)
        return self._claim_next_pooled(who, lease)

    def _claim_next_pooled(self, who: str, lease: float) -> Job | None:
        """claim_next in a transaction of the pool: lock a batch, claim the first allowed."""
        seen: list[Job] = []
        try:
            with self._tx("claiming the next job") as tx:
                return self._claim_in(tx, who, lease, seen)
        finally:
            self._sightings.saw(seen)

    def _claim_in(self, tx: _Tx, who: str, lease: float, seen: list[Job]) -> Job | None:
        """Claim the next free allowed job in ``tx``; every job claimed or trashed on the
        way is added to ``seen``."""
        trashed = True
        while trashed:  # a batch that trashed some may hide more
            trashed = False
            for row in tx.rows(self._sql["lock_next"], {"n": _CLAIM_BATCH}):
                if not allows_module(self.allowed, str(row["factory"]).partition(":")[0]):
                    continue  # another conductor's job: leave it to them
                job = self._take(tx, row["uuid"], row, who, lease)
                seen.append(job)
                if job.state is JobState.CLAIMED:
                    return job
                trashed = True
        return None

    def _claim_next_fast(self, who: str, lease: float) -> Job | None:
        """claim_next as one autocommit statement: the row is picked (the allow-list tested in
        SQL), locked, claimed or trashed (a run-out lease's last attempt) and returned."""
        assert self._fast is not None
        if not self._schema_ready:
            self.upgrade()
        params = self._fast_claim_params(who, lease)
        seen: list[Job] = []
        taken: Job | None = None
        try:
            while taken is None:
                done = self._fast.run(self._fast_sql["claim_next"], params, "claiming the next job")
                if done is None:  # pool_size other threads hold the fast connections
                    return self._claim_next_pooled(who, lease)
                rows = done[0]
                if not rows:
                    break
                job = self._job(dict(zip(_COLUMN_NAMES, rows[0], strict=True)))
                seen.append(job)
                if job.state is JobState.CLAIMED:
                    taken = job
        finally:
            self._sightings.saw(seen)
        return taken

    @property
    def _allowed_json(self) -> str:
        """The allow-list as the fast path's claims take it: one JSON text parameter
        (a str is sent as it is, where a list is adapted to an array on every call)."""
        seen, text = self._allowed_seen
        if seen is not self.allowed:
            text = json.dumps(list(self.allowed))
            self._allowed_seen = (self.allowed, text)
        return text

    def _fast_claim_params(self, who: str, lease: float) -> dict[str, Any]:
        """The parameters of a claim on the PostgreSQL fast path."""
        return {
            "who": who,
            "lease": float(lease),
            "max": self.max_attempts,
            "allowed": self._allowed_json,
        }

    def _take(self, tx: _Tx, key: str, row: Mapping[str, Any], who: str, lease: float) -> Job:
        """Claim the free row ``row`` (locked), or trash it if its run-out lease was the
        last attempt; the job as left."""
        if row["state"] == JobState.CLAIMED and int(row["attempts"]) + 1 >= self.max_attempts:
            tx.run(self._sql["exhaust"], {"uuid": key})
        else:
            extra = 1 if row["state"] == JobState.CLAIMED else 0
            params = {"uuid": key, "who": who, "lease": float(lease), "extra": extra}
            tx.run(self._sql["take"], params)
        return self._job(tx.rows(self._sql["get"], {"uuid": key})[0])

    def renew(self, job: Job | str, who: str, token: int, lease: float = DEFAULT_LEASE) -> Job:
        """Extend the lease to ``lease`` seconds from now, if ``token`` is still the job's
        current claim (LeaseLostError otherwise: stop working on the job)."""
        check_seconds("lease", lease, positive=True)
        found = self._owner_call(
            "renew", job, who, token, ("renewing the lease of", "renew the lease of"), lease
        )
        assert found is not None  # only consume returns None
        return found

    def consume(self, job: Job | str, who: str, token: int) -> None:
        """Remove a finished job from the board (LeaseLostError if the claim was lost)."""
        if self._fast is not None and self._schema_ready:
            key = uuid_of(job)
            params = {"uuid": key, "who": who, "token": token}
            doing = f"consuming job {key}"
            done = self._fast.run(self._fast_sql["consume"], params, doing)
            if done is not None and done[1] == 1:
                self._sightings.gone(key)
                return
            # lost: the generic call finds it lost too, and says what the job is now
        self._owner_call("consume", job, who, token, ("consuming", "consume"))

    def consume_and_claim_next(
        self, job: Job | str, who: str, token: int, lease: float = DEFAULT_LEASE
    ) -> Job | None:
        """:meth:`consume` the finished ``job``, then :meth:`claim_next` for ``who``: the
        next job claimed, or None if none is free. On PostgreSQL both are one statement
        (one commit, one round trip: what a conductor pays between two jobs), elsewhere
        one transaction: both happen or neither does. LeaseLostError (and nothing
        claimed) if the claim on ``job`` was lost."""
        check_claim_next(who, lease, self.allowed, self.shown)
        if self._fast is None or not self._schema_ready:
            return self._consume_and_claim_pooled(job, who, token, lease)
        key = uuid_of(job)
        params = {**self._fast_claim_params(who, lease), "uuid": key, "token": token}
        doing = f"consuming job {key} and claiming the next"
        done = self._fast.run(self._fast_sql["consume_and_claim_next"], params, doing)
        if done is None or not done[0][0][0]:
            # no fast connection free, or the consume was refused (nothing was claimed):
            # the transaction says what the job is now, or does both
            return self._consume_and_claim_pooled(job, who, token, lease)
        self._sightings.gone(key)
        row = done[0][0]
        if row[1] is None:  # consumed; no job was free
            return None
        taken = self._job(dict(zip(_COLUMN_NAMES, row[1:], strict=True)))
        self._sightings.saw((taken,))
        if taken.state is JobState.CLAIMED:
            return taken
        return self.claim_next(who, lease)  # its run-out lease was its last try: trashed

    def _consume_and_claim_pooled(
        self, job: Job | str, who: str, token: int, lease: float
    ) -> Job | None:
        """consume_and_claim_next in one transaction of the pool: both, or neither."""
        key = uuid_of(job)
        params = {"uuid": key, "who": who, "token": token}
        seen: list[Job] = []
        lost: tuple[Exception, str | None] | None = None
        taken: Job | None = None
        try:
            with self._tx(f"consuming job {key} and claiming the next") as tx:
                if tx.run(self._sql["consume"], params) != 1:
                    lost = self._lost(tx, key, who, token, "consume")
                else:
                    taken = self._claim_in(tx, who, lease, seen)
        finally:
            self._sightings.saw(seen)
        if lost is not None:
            self._raise_lost(key, lost)
        self._sightings.gone(key)
        return taken

    def consume_and_claim(
        self,
        consumed: Sequence[tuple[Job | str, int]],
        who: str,
        lease: float = DEFAULT_LEASE,
        limit: int = 1,
    ) -> Settled:
        """Consume every finished job of ``consumed`` (pairs of a job and its claim's
        fencing token) whose claim is still current, and claim up to ``limit`` more jobs
        for ``who`` (never one of those): what a conductor that claims ahead pays for a
        batch of jobs. The jobs claimed come back in claim order with the uuids whose
        consume was refused (the claim was lost: their new owner consumes them). On
        PostgreSQL one statement, elsewhere one transaction: all of it happens or none."""
        check_claim_next(who, lease, self.allowed, self.shown)
        pairs = check_consumed(consumed, limit)
        if self._fast is None or not self._schema_ready:
            return self._consume_and_claim_many_pooled(pairs, who, lease, limit)
        uuids = [key for key, _ in pairs]
        params = {
            **self._fast_claim_params(who, lease),
            "uuids": uuids,
            "tokens": [token for _, token in pairs],
            "n": limit,
        }
        doing = f"consuming {len(pairs)} jobs and claiming up to {limit}"
        done = self._fast.run(self._fast_sql["consume_and_claim"], params, doing)
        if done is None:  # every fast connection is held by other threads
            return self._consume_and_claim_many_pooled(pairs, who, lease, limit)
        rows = done[0]
        gone = set(rows[0][0] or ()) if rows else set()
        for key in gone:
            self._sightings.gone(key)
        taken = sorted(
            (dict(zip(_COLUMN_NAMES, row[1:], strict=True)) for row in rows if row[1] is not None),
            key=lambda row: (-int(row["priority"]), int(row["seq"])),
        )
        jobs = [self._job(row) for row in taken]
        self._sightings.saw(jobs)
        claimed = [job for job in jobs if job.state is JobState.CLAIMED]
        if not claimed and len(jobs) > 0:
            # every row it took was a run-out lease's last try (trashed): claim past them
            claimed = self.consume_and_claim((), who, lease, limit).claimed
        lost = [key for key in uuids if key not in gone]
        return Settled(claimed, lost)

    def _consume_and_claim_many_pooled(
        self, pairs: list[tuple[str, int]], who: str, lease: float, limit: int
    ) -> Settled:
        """consume_and_claim in one transaction of the pool."""
        seen: list[Job] = []
        lost: list[str] = []
        claimed: list[Job] = []
        try:
            with self._tx(f"consuming {len(pairs)} jobs and claiming up to {limit}") as tx:
                for key, token in pairs:
                    if tx.run(self._sql["consume"], {"uuid": key, "who": who, "token": token}) != 1:
                        lost.append(key)
                while len(claimed) < limit:
                    job = self._claim_in(tx, who, lease, seen)
                    if job is None:
                        break
                    claimed.append(job)
        finally:
            self._sightings.saw(seen)
        for key, _ in pairs:
            if key not in lost:
                self._sightings.gone(key)
        return Settled(claimed, lost)

    def release(self, job: Job | str, who: str, token: int) -> Job:
        """Give back a job claimed ahead and never started: UNCLAIMED again at once,
        without counting an attempt (nothing of it ran). LeaseLostError if the claim
        was lost. Returns the job as left."""
        found = self._owner_call("release", job, who, token, ("releasing", "release"))
        assert found is not None
        return found

    def abandon(self, job: Job | str, who: str, token: int) -> Job:
        """Give the job back for another claim and count an attempt; the
        ``max_attempts``-th attempt moves it to TRASHED. Returns the job as left."""
        found = self._owner_call("abandon", job, who, token, ("abandoning", "abandon"))
        assert found is not None
        return found

    def trash(self, job: Job | str, who: str, token: int) -> Job:
        """Move the job to TRASHED: kept for inspection, never claimed again."""
        found = self._owner_call("trash", job, who, token, ("trashing", "trash"))
        assert found is not None
        return found

    def _owner_call(
        self,
        name: str,
        job: Job | str,
        who: str,
        token: int,
        doing: tuple[str, str],
        lease: float = 0.0,
    ) -> Job | None:
        """Run the owner statement ``name`` if ``token`` is current; the job as left
        (None once consumed), or LeaseLostError saying what the job is now."""
        key = uuid_of(job)
        params = {
            "uuid": key,
            "who": who,
            "token": token,
            "lease": float(lease),
            "max": self.max_attempts,
        }
        lost: tuple[Exception, str | None] | None = None
        left: Job | None = None
        with self._tx(f"{doing[0]} job {key}") as tx:
            if tx.run(self._sql[name], params) != 1:
                lost = self._lost(tx, key, who, token, doing[1])
            elif name != "consume":
                left = self._job(tx.rows(self._sql["get"], params)[0])
                if (
                    name in ("abandon", "release")
                    and self._listens
                    and left.state is JobState.UNCLAIMED
                ):
                    tx.rows(self._sql["notify"], params)  # wake waiters: it is free again
        if lost is not None:
            self._raise_lost(key, lost)
        if left is None:
            self._sightings.gone(key)
        else:
            self._sightings.saw((left,))
        return left

    def current_token(self, job: Job | str) -> int | None:
        """The fencing token of the job's claim while it is CLAIMED (a run-out lease
        included, until another claim replaces it); None if it is unclaimed, trashed or
        gone. Outside a transaction this is a snapshot: for a write that must commit only
        under a current claim, use :meth:`check_fence` inside that write's transaction."""
        key = uuid_of(job)
        with self._tx(f"reading the fencing token of job {key}", write=False) as tx:
            rows = tx.rows(self._sql["token"], {"uuid": key})
        if not rows or rows[0]["state"] != JobState.CLAIMED:
            return None
        return int(rows[0]["token"])

    def check_fence(self, job_uuid: str, token: int, connection: object) -> None:
        """Inside the caller's open transaction on ``connection`` (a ``sqlite3``
        connection, or a SQLAlchemy one, of the database holding the jobs table), raise
        LeaseLostError unless ``token`` is the job's current claim. On the servers the
        row stays share-locked until that transaction ends, so no claim can replace the
        token before the caller's write commits."""
        params = {"uuid": job_uuid}
        if isinstance(connection, sqlite3.Connection):
            cursor = connection.execute(self._sql["fence"], params)
            found = cursor.fetchone()
        else:
            sa = importlib.import_module("sqlalchemy")
            found = connection.execute(sa.text(self._sql["fence"]), params).first()  # type: ignore[attr-defined]
        if found is None or found[0] != JobState.CLAIMED or int(found[1]) != token:
            now = "gone from the board" if found is None else f"{found[0]} with token {found[1]}"
            raise LeaseLostError(
                f"job {job_uuid} on {self.shown}: the claim with fencing token {token} is no "
                f"longer current (the job is {now}); this write was not committed: stop "
                "working on the job, its new owner resumes it from its record"
            )

    # -- helpers -------------------------------------------------------------------------

    def _job(self, row: Mapping[str, Any]) -> Job:
        loads = self.codec.loads
        expires = row["lease_expires"]
        return Job(
            uuid=row["uuid"],
            name=row["name"],
            factory=row["factory"],
            args=tuple(loads(row["args"])),
            kwargs=loads(row["kwargs"]),
            store=loads(row["store"]),
            priority=int(row["priority"]),
            details=loads(row["details"]),
            state=JobState(row["state"]),
            owner=row["owner"],
            lease_expires=None if expires is None else float(expires),
            token=int(row["token"]),
            attempts=int(row["attempts"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
        )

    def _missing(self, key: str) -> NotFoundError:
        return missing_error(self.shown, key)

    def _unclaimable(self, tx: _Tx, key: str) -> Exception:
        rows = tx.rows(self._sql["peek"], {"uuid": key})
        if not rows:
            return self._missing(key)
        row = rows[0]
        if row["state"] == JobState.TRASHED:
            return trashed_error(self.shown, key)
        if row["state"] == JobState.CLAIMED and row["left"] is not None and row["left"] > 0:
            return held_error(self.shown, key, row["owner"], int(row["token"]), row["left"])
        return JobClaimedError(
            f"job {key} on {self.shown} is being claimed or written by another process right "
            "now; try again in a moment"
        )

    def _raise_lost(self, key: str, lost: tuple[Exception, str | None]) -> NoReturn:
        """Raise the LeaseLostError of a refused owner call (from :meth:`_lost`); a job
        found gone or trashed leaves this board's sightings."""
        error, state = lost
        if state in (None, JobState.TRASHED):
            self._sightings.gone(key)
        raise error

    def _lost(
        self, tx: _Tx, key: str, who: str, token: int, doing: str
    ) -> tuple[Exception, str | None]:
        """The LeaseLostError for a refused owner call, and the job's state (None: gone)."""
        rows = tx.rows(self._sql["peek"], {"uuid": key})
        now = (rows[0]["state"], rows[0]["owner"], int(rows[0]["token"])) if rows else None
        error = lost_error(self.shown, key, who, token, doing, now)
        return error, (now[0] if now else None)


def _statements(dialect: str, table: str) -> dict[str, str]:
    now = _NOW[dialect]
    text, real = _TEXT[dialect], _FLOAT[dialect]
    free = f"(state = 'UNCLAIMED' OR (state = 'CLAIMED' AND lease_expires < {now}))"
    order = "ORDER BY priority DESC, seq"
    mine = "uuid = :uuid AND owner = :who AND token = :token AND state = 'CLAIMED'"
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {table} ({_ID[dialect]}, uuid VARCHAR(64) NOT NULL UNIQUE, "
        f"name VARCHAR(255) NOT NULL, factory VARCHAR(512) NOT NULL, args {text} NOT NULL, "
        f"kwargs {text} NOT NULL, store {text} NOT NULL, details {text} NOT NULL, "
        f"priority INTEGER NOT NULL, state VARCHAR(32) NOT NULL, owner VARCHAR(255), "
        f"lease_expires {real}, token BIGINT NOT NULL, attempts INTEGER NOT NULL, "
        f"created_at {real} NOT NULL, updated_at {real} NOT NULL){_TABLE_OPTIONS[dialect]};\n"
        f"CREATE INDEX IF NOT EXISTS ix_{table}_next ON {table} (priority DESC, seq)"
    )
    return {
        "ddl": ddl,
        "insert": (
            f"INSERT INTO {table} (uuid, name, factory, args, kwargs, store, details, priority, "
            f"state, token, attempts, created_at, updated_at) VALUES (:uuid, :name, :factory, "
            f":args, :kwargs, :store, :details, :priority, 'UNCLAIMED', 0, 0, {now}, {now})"
        ),
        "get": f"SELECT {_COLUMNS} FROM {table} WHERE uuid = :uuid",
        "peek": (
            f"SELECT state, owner, token, lease_expires - {now} AS {_quote('left', dialect)} "
            f"FROM {table} WHERE uuid = :uuid"
        ),
        "listing": f"SELECT {_COLUMNS} FROM {table} WHERE state <> 'TRASHED' {order}",
        "free": f"SELECT {_COLUMNS} FROM {table} WHERE {free} {order}",
        "any_free": f"SELECT 1 AS found FROM {table} WHERE {free} LIMIT 1",
        "lock_one": (
            f"SELECT factory, state, attempts FROM {table} WHERE uuid = :uuid AND {free}"
            f"{_LOCK_CLAIM[dialect]}"
        ),
        "lock_next": (
            f"SELECT uuid, factory, state, attempts FROM {table} WHERE {free} {order} "
            f"LIMIT :n{_LOCK_CLAIM[dialect]}"
        ),
        "take": (
            f"UPDATE {table} SET state = 'CLAIMED', owner = :who, lease_expires = {now} + :lease, "
            f"token = token + 1, attempts = attempts + :extra, updated_at = {now} "
            "WHERE uuid = :uuid"
        ),
        # a claim over a run-out lease that was the job's last attempt
        "exhaust": (
            f"UPDATE {table} SET state = 'TRASHED', attempts = attempts + 1, owner = NULL, "
            f"lease_expires = NULL, updated_at = {now} WHERE uuid = :uuid"
        ),
        "renew": (
            f"UPDATE {table} SET lease_expires = {now} + :lease, updated_at = {now} WHERE {mine}"
        ),
        "consume": f"DELETE FROM {table} WHERE {mine}",
        # state first: MariaDB assigns left to right, so it must see the old attempts
        "abandon": (
            f"UPDATE {table} SET state = CASE WHEN attempts + 1 >= :max THEN 'TRASHED' "
            f"ELSE 'UNCLAIMED' END, attempts = attempts + 1, owner = NULL, "
            f"lease_expires = NULL, updated_at = {now} WHERE {mine}"
        ),
        "release": (
            f"UPDATE {table} SET state = 'UNCLAIMED', owner = NULL, lease_expires = NULL, "
            f"updated_at = {now} WHERE {mine}"
        ),
        "trash": (
            f"UPDATE {table} SET state = 'TRASHED', owner = NULL, lease_expires = NULL, "
            f"updated_at = {now} WHERE {mine}"
        ),
        "fence": f"SELECT state, token FROM {table} WHERE uuid = :uuid{_LOCK_FENCE[dialect]}",
        "token": f"SELECT state, token FROM {table} WHERE uuid = :uuid",
        "notify": f"SELECT pg_notify('{table}', :uuid) AS sent",
        "next_end": (
            f"SELECT MIN(lease_expires) - {now} AS {_quote('left', dialect)} FROM {table} "
            "WHERE state = 'CLAIMED'"
        ),
    }


def _pg_fast_statements(table: str) -> dict[str, str]:
    """The fast path's statements, in psycopg's ``%(name)s`` style (PostgreSQL only)."""
    # the statement's start (each is its own transaction here): computed once per
    # statement, where clock_timestamp() would be computed for every row it looks at
    now = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS DOUBLE PRECISION)"
    free = f"(state = 'UNCLAIMED' OR (state = 'CLAIMED' AND lease_expires < {now}))"
    # the allow-list test of check_factory (module == prefix or under it), in SQL
    allowed = (
        "EXISTS (SELECT 1 FROM json_array_elements_text(%(allowed)s::json) AS a(p) "
        "WHERE left(factory, length(p) + 1) IN (p || ':', p || '.'))"
    )
    last = "j.state = 'CLAIMED' AND j.attempts + 1 >= %(max)s"  # a run-out lease's last try

    def claim(only_if: str = "", besides: str = "", limit: str = "1") -> str:
        # one row: a scalar subquery; several: an array of them, computed once
        pick, close = ("= ", "") if limit == "1" else ("= ANY(ARRAY", ")")
        return (
            f"UPDATE {table} AS j SET "
            f"state = CASE WHEN {last} THEN 'TRASHED' ELSE 'CLAIMED' END, "
            f"owner = CASE WHEN {last} THEN NULL ELSE %(who)s END, "
            f"lease_expires = CASE WHEN {last} THEN NULL ELSE {now} + %(lease)s END, "
            f"token = CASE WHEN {last} THEN j.token ELSE j.token + 1 END, "
            "attempts = j.attempts + CASE WHEN j.state = 'CLAIMED' THEN 1 ELSE 0 END, "
            f"updated_at = {now} "
            f"WHERE {only_if}j.seq {pick}(SELECT seq FROM {table} WHERE {free} AND "
            f"{allowed}{besides} ORDER BY priority DESC, seq LIMIT {limit} "
            f"FOR UPDATE SKIP LOCKED){close} "
            f"RETURNING {', '.join('j.' + name for name in _COLUMN_NAMES)}"
        )

    consume = (
        f"DELETE FROM {table} WHERE uuid = %(uuid)s AND owner = %(who)s "
        "AND token = %(token)s AND state = 'CLAIMED'"
    )
    # The claim runs only if the consume deleted the row, and never takes that row (its
    # lease may have run out: free to the claim's snapshot, which still sees it). One row
    # back either way: how many rows were consumed (0 or 1), then the claimed job's
    # columns (NULL if none was free).
    took = claim("EXISTS (SELECT 1 FROM gone) AND ", " AND uuid <> %(uuid)s")
    # consume_and_claim: the consumes are fenced row by row (a lost one is left alone),
    # the claims never take a row being consumed. One row per job claimed (one with
    # NULLs if none was), each first holding the uuids consumed
    many = (
        f"DELETE FROM {table} AS d USING unnest(%(uuids)s::text[], %(tokens)s::bigint[]) "
        "AS c(uuid, token) WHERE d.uuid = c.uuid AND d.token = c.token "
        "AND d.owner = %(who)s AND d.state = 'CLAIMED' RETURNING d.uuid"
    )
    took_many = claim(besides=" AND uuid <> ALL(%(uuids)s::text[])", limit="%(n)s")
    return {
        "consume_and_claim": (
            f"WITH gone AS ({many}), took AS ({took_many}) "
            f"SELECT (SELECT array_agg(uuid) FROM gone), "
            f"{', '.join('took.' + n for n in _COLUMN_NAMES)} "
            "FROM (SELECT 1) AS one LEFT JOIN took ON true"
        ),
        "claim_next": claim(),
        "consume": consume,
        "consume_and_claim_next": (
            f"WITH gone AS ({consume} RETURNING 1), took AS ({took}) "
            f"SELECT (SELECT count(*) FROM gone), {', '.join('took.' + n for n in _COLUMN_NAMES)} "
            "FROM (SELECT 1) AS one LEFT JOIN took ON true"
        ),
    }


def _quote(name: str, dialect: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def _has_notifies(db: _Db) -> bool:
    """Whether ``db`` reaches PostgreSQL through psycopg 3.2+ (``Connection.notifies``
    with a timeout), which LISTEN needs here."""
    if not isinstance(db, _ServerDb) or db.driver != "psycopg":
        return False
    return psycopg_at_least((3, 2))
