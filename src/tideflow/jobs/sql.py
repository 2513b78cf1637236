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
- **Owner calls** (renew, consume, abandon, trash) are single statements whose
  ``WHERE`` names uuid, owner, token and ``state = 'CLAIMED'``; a row count of 0 means
  the claim was lost, and :class:`~tideflow.jobs.base.LeaseLostError` says what
  happened instead.
- **Fencing a run's writes**: :meth:`SqlBoard.check_fence` reads the job's token inside
  the caller's own transaction, under a shared row lock on the servers (a claim then
  skips the row until that write commits) and under SQLite's write lock, so a write
  either commits while its claim is current or not at all. It needs the jobs table in
  the same database as the run records.

``wait()`` polls (every ``poll_interval`` s). LISTEN/NOTIFY on PostgreSQL would wake
waiters at once; it is left for later, as are POSTED/REMOVAL notifications.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import re
import sqlite3
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from tideflow.errors import NotFoundError, StoreError
from tideflow.jobs.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    FactoryNotAllowedError,
    Job,
    JobClaimedError,
    JobState,
    LeaseLostError,
    check_factory,
)
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
    "postgresql": "",
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
        connect_args = store_sql._connect_timeout_args(parsed.get_driver_name(), connect_timeout)
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


# -- the board -----------------------------------------------------------------------------


class SqlBoard:
    """A job board in a SQL database: ``sqlite:///path``, ``postgresql://...``, ``mysql://...``.

    Options (keyword-only): ``allowed``, the module prefixes whose flow factories may be
    posted and claimed (a factory ``'myapp.flows.orders:build'`` needs ``'myapp'``,
    ``'myapp.flows'`` or ``'myapp.flows.orders'``; nothing is allowed by default);
    ``max_attempts`` (abandons before a job is trashed, default 5); ``table`` (default
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
        if isinstance(allowed, str) or not all(isinstance(p, str) and p for p in allowed):
            raise TypeError(
                f"allowed= takes a sequence of module prefixes, e.g. ('myapp.flows',), "
                f"got {allowed!r}"
            )
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts= takes a whole number, 1 or more, got {max_attempts!r}")
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ValueError(
                f"table= takes a plain SQL name (letters, digits, _; at most 51), got {table!r}"
            )
        _check_seconds("poll_interval", poll_interval, positive=True)
        self.url = url
        self.allowed: tuple[str, ...] = tuple(allowed)
        self.max_attempts = max_attempts
        self.table = table
        self.poll_interval = float(poll_interval)
        self.codec: Codec = codec_named(codec)
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

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SqlBoard:
        """The board ``config["connection"]`` names, with the other keys as options."""
        options = dict(config)
        url = options.pop("connection", None)
        if not isinstance(url, str) or not url:
            raise ValueError(
                "a SQL job board needs its URL as 'connection', e.g. "
                "{'connection': 'postgresql://user@host/db', 'allowed': ['myapp.flows']}"
            )
        for key in options:
            if key not in OPTIONS:
                from tideflow._options import closest  # noqa: PLC0415  # only on errors

                raise TypeError(
                    f"unknown option {key!r} for the job board {url.partition('@')[2] or url}: "
                    f"{closest(str(key), OPTIONS)}the options are {list(OPTIONS)}"
                )
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<SqlBoard {self.shown} table={self.table}>"

    def close(self) -> None:
        """Close the board's database connections (a later call opens new ones)."""
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
        if not isinstance(name, str) or not name:
            raise TypeError(f"a job's name is a non-empty str, got {name!r}")
        check_factory(factory, self.allowed, f"the job board {self.shown}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority= takes an int (higher runs sooner), got {priority!r}")
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise TypeError(f"args= takes a sequence of positional arguments, got {args!r}")
        dumps = self.codec.dumps
        params = {
            "uuid": str(uuidlib.uuid4()),
            "name": name,
            "factory": factory,
            "args": dumps(tuple(args), f"args of job {name!r}"),
            "kwargs": dumps(_mapping(kwargs, "kwargs"), f"kwargs of job {name!r}"),
            "store": dumps(_mapping(store, "store"), f"store values of job {name!r}"),
            "details": dumps(_mapping(details, "details"), f"details of job {name!r}"),
            "priority": priority,
        }
        with self._tx(f"posting job {name!r}") as tx:
            tx.run(self._sql["insert"], params)
            return self._job(tx.rows(self._sql["get"], params)[0])

    def get(self, job: Job | str) -> Job:
        """The job as the board holds it now (NotFoundError if it was consumed or never
        posted)."""
        key = _uuid_of(job)
        with self._tx(f"reading job {key}", write=False) as tx:
            rows = tx.rows(self._sql["get"], {"uuid": key})
        if not rows:
            raise self._missing(key)
        return self._job(rows[0])

    def iterjobs(self, only_unclaimed: bool = False) -> Iterator[Job]:
        """Jobs not trashed, highest priority first, then in posting order. With
        ``only_unclaimed``, only those a claim would take now (lease run out included)."""
        statement = self._sql["free" if only_unclaimed else "listing"]
        with self._tx("listing jobs", write=False) as tx:
            rows = tx.rows(statement, {})
        for row in rows:
            yield self._job(row)

    def wait(self, timeout: float | None = None) -> bool:
        """Return True as soon as a job could be claimed, False after ``timeout`` seconds
        (None: wait as long as it takes)."""
        if timeout is not None:
            _check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._tx("waiting for jobs", write=False) as tx:
                if tx.rows(self._sql["any_free"], {}):
                    return True
            if deadline is None:
                time.sleep(self.poll_interval)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.poll_interval, left))

    # -- claims --------------------------------------------------------------------------

    def claim(self, job: Job | str, who: str, lease: float = DEFAULT_LEASE) -> Job:
        """Make ``who`` the owner for ``lease`` seconds; the Job returned holds the new
        fencing token. JobClaimedError if another owner's lease is live (or the job is
        trashed), FactoryNotAllowedError if its factory is outside the allow-list."""
        key = _uuid_of(job)
        _check_who(who)
        _check_seconds("lease", lease, positive=True)
        with self._tx(f"claiming job {key}") as tx:
            rows = tx.rows(self._sql["lock_one"], {"uuid": key})
            if not rows:
                raise self._unclaimable(tx, key)
            check_factory(rows[0]["factory"], self.allowed, f"the job board {self.shown}")
            return self._take(tx, key, who, lease)

    def claim_next(self, who: str, lease: float = DEFAULT_LEASE) -> Job | None:
        """Claim the first job a claim can take (highest priority, then oldest) whose
        factory this board allows; None if there is none."""
        _check_who(who)
        _check_seconds("lease", lease, positive=True)
        if not self.allowed:
            check_factory("nothing:allowed", (), f"the job board {self.shown}")
        with self._tx("claiming the next job") as tx:
            for row in tx.rows(self._sql["lock_next"], {"n": _CLAIM_BATCH}):
                try:
                    check_factory(row["factory"], self.allowed, "")
                except FactoryNotAllowedError:
                    continue  # another conductor's job: leave it to them
                return self._take(tx, row["uuid"], who, lease)
        return None

    def _take(self, tx: _Tx, key: str, who: str, lease: float) -> Job:
        tx.run(self._sql["take"], {"uuid": key, "who": who, "lease": float(lease)})
        return self._job(tx.rows(self._sql["get"], {"uuid": key})[0])

    def renew(self, job: Job | str, who: str, token: int, lease: float = DEFAULT_LEASE) -> Job:
        """Extend the lease to ``lease`` seconds from now, if ``token`` is still the job's
        current claim (LeaseLostError otherwise: stop working on the job)."""
        key = _uuid_of(job)
        _check_seconds("lease", lease, positive=True)
        params = {"uuid": key, "who": who, "token": token, "lease": float(lease)}
        with self._tx(f"renewing the lease of job {key}") as tx:
            if tx.run(self._sql["renew"], params) != 1:
                raise self._lost(tx, key, who, token, "renew the lease of")
            return self._job(tx.rows(self._sql["get"], params)[0])

    def consume(self, job: Job | str, who: str, token: int) -> None:
        """Remove a finished job from the board (LeaseLostError if the claim was lost)."""
        key = _uuid_of(job)
        params = {"uuid": key, "who": who, "token": token}
        with self._tx(f"consuming job {key}") as tx:
            if tx.run(self._sql["consume"], params) != 1:
                raise self._lost(tx, key, who, token, "consume")

    def abandon(self, job: Job | str, who: str, token: int) -> Job:
        """Give the job back for another claim and count an attempt; the
        ``max_attempts``-th abandon moves it to TRASHED. Returns the job as left."""
        key = _uuid_of(job)
        params = {"uuid": key, "who": who, "token": token, "max": self.max_attempts}
        with self._tx(f"abandoning job {key}") as tx:
            if tx.run(self._sql["abandon"], params) != 1:
                raise self._lost(tx, key, who, token, "abandon")
            return self._job(tx.rows(self._sql["get"], params)[0])

    def trash(self, job: Job | str, who: str, token: int) -> Job:
        """Move the job to TRASHED: kept for inspection, never claimed again."""
        key = _uuid_of(job)
        params = {"uuid": key, "who": who, "token": token}
        with self._tx(f"trashing job {key}") as tx:
            if tx.run(self._sql["trash"], params) != 1:
                raise self._lost(tx, key, who, token, "trash")
            return self._job(tx.rows(self._sql["get"], params)[0])

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
        return NotFoundError(
            f"no job with uuid {key!r} on the job board {self.shown} (consumed, or never posted)"
        )

    def _unclaimable(self, tx: _Tx, key: str) -> Exception:
        rows = tx.rows(self._sql["peek"], {"uuid": key})
        if not rows:
            return self._missing(key)
        row = rows[0]
        if row["state"] == JobState.TRASHED:
            return JobClaimedError(f"job {key} on {self.shown} is trashed; it cannot be claimed")
        if row["state"] == JobState.CLAIMED and row["left"] is not None and row["left"] > 0:
            return JobClaimedError(
                f"job {key} on {self.shown} is claimed by {row['owner']!r} (token "
                f"{row['token']}) for {row['left']:.1f} s more unless renewed; claim another "
                "job, or wait for this one's lease to run out"
            )
        return JobClaimedError(
            f"job {key} on {self.shown} is being claimed or written by another process right "
            "now; try again in a moment"
        )

    def _lost(self, tx: _Tx, key: str, who: str, token: int, doing: str) -> Exception:
        rows = tx.rows(self._sql["peek"], {"uuid": key})
        if not rows:
            now = "was consumed (or never posted)"
        elif rows[0]["state"] == JobState.CLAIMED:
            now = f"was claimed by {rows[0]['owner']!r} with token {rows[0]['token']}"
        else:
            now = f"is {rows[0]['state']} (token {rows[0]['token']})"
        return LeaseLostError(
            f"{who!r} cannot {doing} job {key} on {self.shown} with fencing token {token}: "
            f"the job {now}; nothing was changed: stop working on the job"
        )


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
        f"CREATE INDEX IF NOT EXISTS ix_{table}_order ON {table} (priority, seq)"
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
            f"SELECT factory FROM {table} WHERE uuid = :uuid AND {free}{_LOCK_CLAIM[dialect]}"
        ),
        "lock_next": (
            f"SELECT uuid, factory FROM {table} WHERE {free} {order} LIMIT :n{_LOCK_CLAIM[dialect]}"
        ),
        "take": (
            f"UPDATE {table} SET state = 'CLAIMED', owner = :who, lease_expires = {now} + :lease, "
            f"token = token + 1, updated_at = {now} WHERE uuid = :uuid"
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
        "trash": (
            f"UPDATE {table} SET state = 'TRASHED', owner = NULL, lease_expires = NULL, "
            f"updated_at = {now} WHERE {mine}"
        ),
        "fence": f"SELECT state, token FROM {table} WHERE uuid = :uuid{_LOCK_FENCE[dialect]}",
    }


def _quote(name: str, dialect: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def _uuid_of(job: Job | str) -> str:
    if isinstance(job, Job):
        return job.uuid
    if isinstance(job, str) and job:
        return job
    raise TypeError(f"expected a Job or a job's uuid (str), got {job!r}")


def _check_who(who: object) -> None:
    if not isinstance(who, str) or not who:
        raise TypeError(f"who= names the claiming owner as a non-empty str, got {who!r}")


def _check_seconds(option: str, value: object, positive: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
        or (positive and value == 0)
    ):
        more = "more than 0" if positive else "0 or more"
        raise ValueError(f"{option}= takes a number of seconds, {more}, got {value!r}")


def _mapping(value: Mapping[str, Any] | None, option: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{option}= takes a mapping with str keys, got {value!r}")
    return dict(value)
