"""The SQL-server store: PostgreSQL, MariaDB/MySQL (and SQLite) through SQLAlchemy Core.

``SqlBackend("postgresql+psycopg://user@host/db")`` keeps every log book, flow record
and atom record as one row of the tables below, with the columns of
:mod:`tideflow.persistence._records` (the same rows every copying store writes)::

    tideflow_meta       name PK, value             the schema version lives here
    tideflow_logbooks   uuid PK
    tideflow_flows      uuid PK; book_uuid, updated_at, (state, updated_at) indexed
    tideflow_atoms      uuid PK; (flow_uuid, name) unique (also finds a flow's atoms)

Every call is one transaction on a connection taken from a pool that tests it first
(``pool_pre_ping``), so a connection the server dropped between two calls is replaced
without anyone noticing. A round (:meth:`SqlConnection.save_round`) is two
statements: an UPDATE of the flow row, fenced by its ``owner`` column and checked by
its row count, then one multi-row upsert of the changed atom rows. On PostgreSQL with
psycopg 3 a round and a release are each one autocommit statement
instead, the UPDATE in a ``WITH`` that the upsert depends on, sent without SQLAlchemy on
a connection held per thread (:mod:`tideflow.persistence._pg`): one round trip, not a
``BEGIN``, two statements and a ``COMMIT``. A connection lost
in the middle of a call raises :class:`~tideflow.errors.StoreError`: the server rolls
the transaction back, and the run resumes from what was committed before.

The parts that differ per database are small: the upsert (``ON CONFLICT ... DO
UPDATE`` on PostgreSQL and SQLite, ``ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL),
the lock that lets several processes create the tables at once
(``pg_advisory_xact_lock``, ``GET_LOCK``, SQLite's ``IF NOT EXISTS``), ``LONGTEXT``
for values and a binary collation on MariaDB/MySQL (atom names are case-sensitive).

SQLAlchemy and the drivers are extras (``pip install 'tideflow[postgres]'`` or
``'tideflow[mysql]'``); this module imports them only when a store is opened.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, cast

from tideflow.errors import (
    NotFoundError,
    RunOwnedError,
    StoreError,
    StoreVersionError,
    TideflowError,
)
from tideflow.persistence._pg import PgDirect, direct_for, first_line
from tideflow.persistence._records import (
    ATOM_COLUMNS,
    BOOK_COLUMNS,
    FLOW_COLUMNS,
    SCHEMA_VERSION,
    TOUCH_EVERY,
    atom_from_row,
    atom_row,
    book_from_row,
    book_row,
    describe_owner,
    flow_from_row,
    flow_row,
    may_take_over,
    note_written,
    released,
)
from tideflow.persistence.codec import Codec, codec_named
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection as SaConnection
    from sqlalchemy.engine import Engine, RowMapping
    from sqlalchemy.sql.dml import Insert
else:
    sa = None  # the module, once _require_sqlalchemy() has imported it

__all__ = ["SqlBackend", "SqlConnection"]

#: Keyword options of :class:`SqlBackend` (besides ``connection``, the URL).
OPTIONS: Final = ("codec", "connect_timeout", "echo", "max_overflow", "pool_size", "pool_timeout")

_INSTALL: Final = {
    "postgresql": "pip install 'tideflow[postgres]'",
    "mysql": "pip install 'tideflow[mysql]'",
    "mariadb": "pip install 'tideflow[mysql]'",
}
_INSTALL_ANY: Final = "pip install 'tideflow[postgres]' (or 'tideflow[mysql]')"

#: Flow columns a round rewrites: never owner (claims do), created_at or book_uuid.
_FLOW_ROUND: Final = ("name", "state", "meta", "injected", "updated_at")
#: Atom columns an upsert rewrites (flow_uuid and name are the conflict key).
_ATOM_UPSERT: Final = tuple(c for c in ATOM_COLUMNS if c not in ("flow_uuid", "name"))
#: Atom columns update_atom_details rewrites (it keeps the stored flow and position).
_ATOM_UPDATE: Final = tuple(c for c in ATOM_COLUMNS if c not in ("uuid", "flow_uuid", "position"))

_SCHEMA_KEY: Final = "schema_version"
_PG_LOCK_KEY: Final = 0x7469_6465_666C_6F77 >> 1  # "tideflow", as a positive bigint
_MYSQL_LOCK: Final = "tideflow_schema"
_MYSQL_LOCK_WAIT: Final = 60  # seconds another process may spend creating the tables
_PAGE: Final = 500  # rows per query when iter_runs has no limit


def _require_sqlalchemy(install: str) -> None:
    """Import SQLAlchemy (2.x) into this module, or say which extra to install."""
    global sa
    if sa is not None:
        return
    try:
        module = importlib.import_module("sqlalchemy")
    except ImportError as exc:
        raise ImportError(
            f"the SQL store needs SQLAlchemy 2, which is not installed: {install}"
        ) from exc
    if int(module.__version__.split(".")[0]) < 2:
        raise ImportError(
            f"the SQL store needs SQLAlchemy 2 or later, found {module.__version__}: {install}"
        )
    sa = module


def _hide_password(url: str) -> str:
    """``url`` without its password, for messages written before SQLAlchemy is loaded."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


# -- tables ---------------------------------------------------------------------------


class _Tables(NamedTuple):
    metadata: sa.MetaData
    meta: sa.Table
    books: sa.Table
    flows: sa.Table
    atoms: sa.Table


_tables_made: _Tables | None = None
_tables_lock = threading.Lock()


def _tables() -> _Tables:
    """The four tables (built once, after SQLAlchemy is imported)."""
    global _tables_made
    if _tables_made is None:
        with _tables_lock:
            if _tables_made is None:
                _tables_made = _make_tables()
    return _tables_made


def _make_tables() -> _Tables:
    mysql = importlib.import_module("sqlalchemy.dialects.mysql")
    text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    # Atom names are case-sensitive: a case-folding collation would make 'a' and 'A'
    # one key. utf8mb4 keeps every name a Python string can hold.
    options: dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "mysql_collate": "utf8mb4_bin",
    }
    md = sa.MetaData()

    def uuid(name: str, **kw: Any) -> sa.Column[str]:
        return sa.Column(name, sa.String(64), **kw)

    def name() -> sa.Column[str]:
        return sa.Column("name", sa.String(255), nullable=False)

    def short(column: str, nullable: bool = False) -> sa.Column[str]:
        return sa.Column(column, sa.String(32), nullable=nullable)

    def stamp(column: str) -> sa.Column[float]:
        return sa.Column(column, sa.Double(), nullable=False)

    def value(column: str) -> sa.Column[str]:
        return sa.Column(column, text, nullable=True)

    meta = sa.Table(
        "tideflow_meta",
        md,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        **options,
    )
    books = sa.Table(
        "tideflow_logbooks",
        md,
        uuid("uuid", primary_key=True),
        name(),
        value("meta"),
        stamp("created_at"),
        stamp("updated_at"),
        **options,
    )
    flows = sa.Table(
        "tideflow_flows",
        md,
        uuid("uuid", primary_key=True),
        uuid("book_uuid", nullable=True),
        name(),
        short("state"),
        value("meta"),
        value("injected"),
        sa.Column("owner", sa.String(255), nullable=True),
        stamp("created_at"),
        stamp("updated_at"),
        sa.Index("ix_tideflow_flows_book_uuid", "book_uuid"),
        sa.Index("ix_tideflow_flows_updated_at", "updated_at"),
        sa.Index("ix_tideflow_flows_state_updated_at", "state", "updated_at"),
        **options,
    )
    atoms = sa.Table(
        "tideflow_atoms",
        md,
        uuid("uuid", primary_key=True),
        uuid("flow_uuid", nullable=False),
        name(),
        short("kind"),
        sa.Column("position", sa.Integer(), nullable=False),
        short("state"),
        short("intention"),
        value("results"),
        value("failure"),
        value("revert_results"),
        value("revert_failure"),
        value("meta"),
        sa.Column("version", sa.String(64), nullable=True),
        value("history"),
        short("decision", nullable=True),
        stamp("updated_at"),
        # also how a flow's atoms are found (sorted by position after): an index on
        # (flow_uuid, position) as well cost every round's new atom rows three index
        # entries instead of two, ~7 % of the server's work per job, for nothing
        sa.UniqueConstraint("flow_uuid", "name", name="uq_tideflow_atoms_flow_name"),
        **options,
    )
    assert tuple(flows.c.keys()) == FLOW_COLUMNS
    assert tuple(atoms.c.keys()) == ATOM_COLUMNS
    return _Tables(md, meta, books, flows, atoms)


# -- the backend ----------------------------------------------------------------------


class SqlBackend:
    """A store in a SQL database reached through SQLAlchemy (PostgreSQL, MariaDB, SQLite).

    ``url`` is a SQLAlchemy URL. ``postgresql://`` uses psycopg 3 if installed (else
    psycopg2), ``mysql://`` and ``mariadb://`` use PyMySQL; name a driver to choose
    (``postgresql+psycopg2://``). Options: ``codec`` ('json', or 'pickle' to keep
    any object, trusting whoever writes the database); the pool's ``pool_size``,
    ``max_overflow`` and ``pool_timeout`` (seconds to wait for a free connection);
    ``connect_timeout`` (seconds to wait for the server); ``echo`` logs every statement.
    """

    #: Reads build new records from rows.
    shares_records = False

    def __init__(
        self,
        url: str,
        *,
        codec: str | Codec = "json",
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        echo: bool = False,
    ) -> None:
        scheme = url.partition("://")[0].partition("+")[0]
        install = _INSTALL.get(scheme, _INSTALL_ANY)
        _require_sqlalchemy(install)
        _check_option("pool_size", pool_size, int, minimum=1)
        _check_option("max_overflow", max_overflow, int, minimum=-1)
        _check_option("pool_timeout", pool_timeout, (int, float), minimum=0)
        _check_option("connect_timeout", connect_timeout, (int, float), minimum=1)
        _check_option("echo", echo, bool)
        self.codec = codec_named(codec)
        #: The URL as given (``shown`` is the same without its password).
        self.url = url
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ValueError(f"{_hide_password(url)!r} is not a database URL: {exc}") from exc
        parsed = _with_driver(parsed, install)
        self.shown = parsed.render_as_string(hide_password=True)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._where = self._describe_server(parsed)
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "echo": echo}
        if self._sqlite and parsed.database in (None, "", ":memory:"):
            # one database per connection otherwise: keep a single shared one
            kwargs["poolclass"] = sa.pool.StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout)
            timeout = _connect_timeout_args(parsed.get_driver_name(), connect_timeout)
            if timeout:
                kwargs["connect_args"] = timeout
        try:
            self._engine: Engine = sa.create_engine(parsed, **kwargs)
        except ImportError as exc:
            raise ImportError(
                f"the SQL store {self.shown} needs the driver {parsed.get_driver_name()!r}, "
                f"which is not installed ({exc}): {install}"
            ) from exc
        self._lock = threading.Lock()
        self._schema_checked = False
        self._statements: _Statements | None = None
        #: flow record uuid -> when this store last rewrote its row (direct path)
        self._flow_written: dict[str, float] = {}
        #: PostgreSQL with psycopg 3: a run's rounds and release as single statements
        # (not with echo=True: every statement then goes through SQLAlchemy's log)
        self._direct: PgDirect | None = (
            None
            if echo
            else direct_for(
                self._engine,
                kwargs.get("connect_args", {}),
                self._direct_error,
                limit=None if max_overflow < 0 else pool_size + max_overflow,
            )
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SqlBackend:
        """The store ``config["connection"]`` names, with the other keys as options."""
        options = dict(config)
        url = options.pop("connection", None)
        if not isinstance(url, str) or not url:
            raise ValueError(
                "a SQL store needs its URL as 'connection', e.g. "
                "{'connection': 'postgresql://user@host/db'}"
            )
        for key in options:
            if key not in OPTIONS:
                from tideflow._options import closest  # noqa: PLC0415  # only on errors

                raise TypeError(
                    f"unknown option {key!r} for the SQL store {_hide_password(url)}: "
                    f"{closest(key, OPTIONS)}the options are {list(OPTIONS)}"
                )
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<SqlBackend {self.shown}>"

    def get_connection(self) -> SqlConnection:
        """A connection to this store (cheap: database connections come from the pool)."""
        return SqlConnection(self)

    def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        if self._direct is not None:
            self._direct.close()
        self._engine.dispose()

    def _direct_error(self, exc: Exception, stage: str, doing: str) -> StoreError:
        """The StoreError of a statement sent on the direct path (see ``_pg``)."""
        said = first_line(exc)
        if stage == "connecting":
            return self._cannot_connect(exc, doing, said)
        if stage == "lost":
            return StoreError(
                f"lost the connection to {self.shown} while {doing}: {said}; the write may "
                "or may not have been committed; the run can be resumed from what the store "
                "holds once the database is reachable",
                cause=exc,
            )
        return StoreError(f"{self.shown} failed while {doing}: {said}", cause=exc)

    # -- internals shared by connections ------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, doing: str, *, check: bool = True) -> Iterator[SaConnection]:
        """One transaction, with driver errors turned into StoreError saying what to do."""
        if check and not self._schema_checked:
            self._ensure_schema()
        stage = "connecting"
        try:
            with self._engine.connect() as conn:
                stage = "working"
                with conn.begin():
                    yield conn
                    stage = "committing"
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc, stage, doing) from exc

    def _cannot_connect(self, exc: Exception, doing: str, said: str) -> StoreError:
        return StoreError(
            f"cannot connect to {self._where} ({self.shown}) while {doing}: {said}; "
            "check that the server is running there and accepts this user, then resume "
            "the run",
            cause=exc,
        )

    def _translate(self, exc: sa.exc.SQLAlchemyError, stage: str, doing: str) -> StoreError:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        said = detail[0] if detail else type(exc).__name__
        if self._sqlite and ("not a database" in said or "malformed" in said):
            return StoreVersionError(
                f"{self.shown} is not a tideflow store or is damaged ({said}); nothing was "
                "changed: point the store at another file, or restore this one from a backup",
                cause=exc,
            )
        if isinstance(exc, sa.exc.TimeoutError):
            return StoreError(
                f"no free connection to {self.shown} while {doing} ({said}); raise "
                "pool_size or max_overflow, or close connections you do not use",
                cause=exc,
            )
        if stage == "connecting":
            return self._cannot_connect(exc, doing, said)
        lost = isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
        if lost and stage == "committing":
            return StoreError(
                f"lost the connection to {self.shown} while committing ({doing}): {said}; "
                "the write may or may not have been committed; the run can be resumed from "
                "what the store holds once the database is reachable",
                cause=exc,
            )
        if lost:
            return StoreError(
                f"lost the connection to {self.shown} while {doing}: {said}; this write was "
                "not committed (the database rolled it back); the run can be resumed from "
                "what was committed before, once the database is reachable",
                cause=exc,
            )
        return StoreError(f"{self.shown} failed while {doing}: {said}", cause=exc)

    @staticmethod
    def _describe_server(url: sa.URL) -> str:
        if url.get_backend_name() == "sqlite":
            return f"the SQLite database {url.database or ':memory:'}"
        port = url.port or {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}.get(
            url.get_backend_name()
        )
        return f"the database server at {url.host or 'localhost'}:{port}"

    def _ensure_schema(self) -> None:
        with self._lock:
            if not self._schema_checked:
                self._upgrade()
                self._schema_checked = True

    def _upgrade(self) -> None:
        """Create what is missing and record the version, after checking it is not newer."""
        tables = _tables()
        with self._transaction("creating or checking the tables", check=False) as conn:
            dialect = conn.dialect.name
            if dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            elif dialect in ("mysql", "mariadb"):
                got = conn.execute(
                    sa.text("SELECT GET_LOCK(:name, :wait)"),
                    {"name": _MYSQL_LOCK, "wait": _MYSQL_LOCK_WAIT},
                ).scalar()
                if got != 1:
                    raise StoreError(
                        f"{self.shown}: another process held the schema lock for "
                        f"{_MYSQL_LOCK_WAIT} s while creating the tables; try again"
                    )
            try:
                version = self._stored_version(conn, tables)
                if version is not None and version > SCHEMA_VERSION:
                    raise StoreVersionError(
                        f"{self.shown} holds records of schema version {version}, newer than "
                        f"this tideflow reads ({SCHEMA_VERSION}); nothing was changed: "
                        "upgrade tideflow to use this store"
                    )
                if dialect == "sqlite":
                    # no lock to take: IF NOT EXISTS lets racing processes all succeed
                    for table in tables.metadata.sorted_tables:
                        conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
                        for index in table.indexes:
                            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
                else:
                    tables.metadata.create_all(conn, checkfirst=True)
                if version is None:
                    self._record_version(conn, tables, dialect)
                elif version < SCHEMA_VERSION:  # migrations from older layouts go here
                    conn.execute(
                        tables.meta.update()
                        .where(tables.meta.c.name == _SCHEMA_KEY)
                        .values(value=str(SCHEMA_VERSION))
                    )
            finally:
                if dialect in ("mysql", "mariadb"):
                    with contextlib.suppress(sa.exc.SQLAlchemyError):  # gone with the session
                        conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": _MYSQL_LOCK})

    def _stored_version(self, conn: SaConnection, tables: _Tables) -> int | None:
        if not sa.inspect(conn).has_table(tables.meta.name):
            return None
        text = conn.execute(
            sa.select(tables.meta.c.value).where(tables.meta.c.name == _SCHEMA_KEY)
        ).scalar()
        if text is None:
            return None  # a creation cut short before its version was written
        try:
            return int(text)
        except ValueError:
            raise StoreVersionError(
                f"{self.shown}: its table {tables.meta.name} says schema_version={text!r}, "
                "which tideflow did not write; nothing was changed: point the store at a "
                "database of tideflow's, or remove that table"
            ) from None

    def _record_version(self, conn: SaConnection, tables: _Tables, dialect: str) -> None:
        """Write this version, unless a racing process has just written it. (MariaDB's
        schema lock is the session's, released before this transaction commits: the
        next process may take it, find no version yet and get here too.)"""
        row = {"name": _SCHEMA_KEY, "value": str(SCHEMA_VERSION)}
        if dialect in ("sqlite", "postgresql"):
            module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
            conn.execute(module.insert(tables.meta).on_conflict_do_nothing(), row)
        elif dialect in ("mysql", "mariadb"):
            mysql = importlib.import_module("sqlalchemy.dialects.mysql")
            insert = mysql.insert(tables.meta)
            conn.execute(insert.on_duplicate_key_update(name=insert.inserted.name), row)
        else:
            conn.execute(tables.meta.insert(), row)

    def _stmts(self) -> _Statements:
        if self._statements is None:
            self._statements = _Statements.build(self._engine.dialect.name, _tables(), self.shown)
        return self._statements


def _plain(row: RowMapping) -> Mapping[str, Any]:
    """A row as the mapping of column names _records reads (it is one already)."""
    return cast("Mapping[str, Any]", row)


def _check_option(
    name: str, value: object, kind: type | tuple[type, ...], minimum: float | None = None
) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name}= takes {_kind_name(kind)}, got {value!r}")
    if minimum is not None and value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name}= must be at least {minimum}, got {value!r}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _with_driver(url: sa.URL, install: str) -> sa.URL:
    """Name the driver where the URL names none: psycopg (3) or psycopg2, PyMySQL."""
    if "+" in url.drivername:
        return url
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            try:
                importlib.import_module(module)
            except ImportError:
                continue
            return url.set(drivername=f"postgresql+{driver}")
        raise ImportError(
            f"the SQL store {url.render_as_string(hide_password=True)} needs a PostgreSQL "
            f"driver (psycopg or psycopg2), and neither is installed: {install}"
        )
    if backend in ("mysql", "mariadb"):
        return url.set(drivername=f"{backend}+pymysql")
    return url


def _connect_timeout_args(driver: str, seconds: float) -> dict[str, Any]:
    if driver in ("psycopg", "psycopg2"):
        return {"connect_timeout": max(1, round(seconds))}
    if driver == "pymysql":
        return {"connect_timeout": seconds}
    return {}


class _Statements(NamedTuple):
    """The statements of the hot paths, built once per store (SQLAlchemy caches their SQL)."""

    flow_round: sa.Update
    flow_round_fenced: sa.Update
    flow_upsert: Insert
    atom_upsert: Insert
    book_upsert: Insert
    #: a flow row inserted only if its uuid is new (None on MariaDB/MySQL)
    flow_insert_new: Insert | None

    @classmethod
    def build(cls, dialect: str, tables: _Tables, shown: str) -> _Statements:
        flows = tables.flows
        values: dict[str, Any] = {c: sa.bindparam(f"v_{c}") for c in _FLOW_ROUND}
        round_ = flows.update().where(flows.c.uuid == sa.bindparam("k_uuid")).values(values)
        fenced = round_.where(flows.c.owner == sa.bindparam("k_owner"))
        flow_keep = ("uuid", "owner", "created_at")
        return cls(
            flow_round=round_,
            flow_round_fenced=fenced,
            flow_upsert=_upsert(
                dialect, flows, ("uuid",), [c for c in FLOW_COLUMNS if c not in flow_keep], shown
            ),
            atom_upsert=_upsert(dialect, tables.atoms, ("flow_uuid", "name"), _ATOM_UPSERT, shown),
            book_upsert=_upsert(
                dialect, tables.books, ("uuid",), ("name", "meta", "updated_at"), shown
            ),
            flow_insert_new=(
                importlib.import_module(f"sqlalchemy.dialects.{dialect}")
                .insert(flows)
                .on_conflict_do_nothing(index_elements=["uuid"])
                .returning(flows.c.uuid)
                if dialect in ("postgresql", "sqlite")
                else None
            ),
        )


_RELEASE_SQL: Final = "UPDATE tideflow_flows SET owner = %s WHERE uuid = %s AND owner = %s"
#: A new flow row, owned, and its log book, only if the flow row was new; a row back
#: when it was (direct path).
_CREATE_OWNED_SQL: Final = (
    f"WITH f AS (INSERT INTO tideflow_flows ({', '.join(FLOW_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(FLOW_COLUMNS))}) "
    "ON CONFLICT (uuid) DO NOTHING RETURNING 1) "
    f"INSERT INTO tideflow_logbooks ({', '.join(BOOK_COLUMNS)}) "
    "SELECT %s, %s, %s, %s::double precision, %s::double precision "
    "WHERE EXISTS (SELECT 1 FROM f) ON CONFLICT (uuid) DO UPDATE SET "
    "name = EXCLUDED.name, meta = EXCLUDED.meta, updated_at = EXCLUDED.updated_at "
    "RETURNING 1"
)


#: The atom rows of a round, upserted only if the statement's ``f`` (its flow row's
#: write or fence check) found the row: one JSON array parameter, turned into rows of
#: the atoms table by the server; one row back per atom written.
_ATOMS_IF_F: Final = (
    f"INSERT INTO tideflow_atoms ({', '.join(ATOM_COLUMNS)}) "
    f"SELECT {', '.join(ATOM_COLUMNS)} "
    "FROM json_populate_recordset(NULL::tideflow_atoms, %s::json) "
    "WHERE EXISTS (SELECT 1 FROM f) ON CONFLICT (flow_uuid, name) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _ATOM_UPSERT)
    + " RETURNING 1"
)


@functools.cache
def _round_sql(atoms: bool, fenced: bool, release: bool = False) -> str:
    """A round as one statement (PostgreSQL, direct path): the flow row's UPDATE (fenced
    by its owner) in a WITH, and the upsert of the atom rows only if that UPDATE found
    the row. The atom rows travel as one JSON array of objects named by column, which
    the server turns into rows of the atoms table: the same statement, prepared once,
    for any number of atoms, and one text parameter to send (an array per column cost
    the client about 75 us more a round, in psycopg's array dumpers). Returns one row
    per atom written, so no row (with atoms) or a row count of 0 (without) means the
    round was refused. With ``release`` (fenced only), the UPDATE also sets the owner to
    its tombstone: the run is released in the round's transaction."""
    sets = ", ".join(f"{c} = %s" for c in _FLOW_ROUND) + (", owner = %s" if release else "")
    where = "uuid = %s" + (" AND owner = %s" if fenced else "")
    update = f"UPDATE tideflow_flows SET {sets} WHERE {where}"
    if not atoms:
        return update
    return f"WITH f AS ({update} RETURNING 1) {_ATOMS_IF_F}"


#: A round of atoms only (PostgreSQL, direct path): the flow row, still owned by the
#: round's owner, is locked (FOR NO KEY UPDATE: a takeover waits for this transaction)
#: as the fence check, not rewritten. One row back per atom written; none: refused.
_FENCED_ATOMS_SQL: Final = (
    "WITH f AS (SELECT 1 FROM tideflow_flows WHERE uuid = %s AND owner = %s "
    f"FOR NO KEY UPDATE) {_ATOMS_IF_F}"
)


@functools.cache
def _create_round_sql(atoms: bool) -> str:
    """A job's first round as one statement (PostgreSQL, direct path): the flow row
    inserted owned, or, if it exists, rewritten only if still owned by the same owner
    (the fence); its log book and the atom rows written only if the flow row was. One
    row back per atom written (one in all without atoms): none means refused."""
    round_sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _FLOW_ROUND)
    flow = (
        f"INSERT INTO tideflow_flows ({', '.join(FLOW_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(FLOW_COLUMNS))}) "
        f"ON CONFLICT (uuid) DO UPDATE SET {round_sets} "
        "WHERE tideflow_flows.owner = %s RETURNING 1"
    )
    book = (
        f"INSERT INTO tideflow_logbooks ({', '.join(BOOK_COLUMNS)}) "
        "SELECT %s, %s, %s, %s::double precision, %s::double precision "
        "WHERE EXISTS (SELECT 1 FROM f) ON CONFLICT (uuid) DO UPDATE SET "
        "name = EXCLUDED.name, meta = EXCLUDED.meta, updated_at = EXCLUDED.updated_at"
    )
    if not atoms:
        return f"WITH f AS ({flow}), b AS ({book}) SELECT 1 FROM f"
    return f"WITH f AS ({flow}), b AS ({book}) {_ATOMS_IF_F}"


def _release_stmt(fd_uuid: str, owner: str) -> sa.Update:
    """``owner`` stops owning ``fd_uuid`` (its tombstone, if fenced, takes its place)."""
    flows = _tables().flows
    return (
        flows.update()
        .where(flows.c.uuid == fd_uuid, flows.c.owner == owner)
        .values(owner=released(owner))
    )


def _upsert(
    dialect: str, table: sa.Table, keys: Sequence[str], update: Sequence[str], shown: str
) -> Insert:
    """INSERT that updates ``update`` columns of the row already holding ``keys``."""
    if dialect in ("postgresql", "sqlite"):
        module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        stmt = module.insert(table)
        upsert: Insert = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )
        return upsert
    if dialect in ("mysql", "mariadb"):
        module = importlib.import_module("sqlalchemy.dialects.mysql")
        stmt = module.insert(table)
        mysql_upsert: Insert = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
        return mysql_upsert
    raise StoreError(
        f"{shown}: tideflow's SQL store supports PostgreSQL, MariaDB/MySQL and SQLite, "
        f"not {dialect!r}"
    )


# -- connections ----------------------------------------------------------------------


class SqlConnection:
    """Reads and writes records of a :class:`SqlBackend`, one transaction per call."""

    #: save_round(release=True) releases the run in the round's transaction
    releases_in_round: ClassVar[bool] = True
    #: save_round(create=book) creates a record not stored yet, owned, in the round
    creates_in_round: ClassVar[bool] = True

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        self._codec = backend.codec

    def __enter__(self) -> SqlConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing held between calls: each call takes a pooled connection and gives it back."""

    # -- schema -------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the tables (or bring an older layout up to date); idempotent."""
        with self.backend._lock:
            self.backend._upgrade()
            self.backend._schema_checked = True

    def validate(self) -> None:
        """Check the database answers and holds this version's tables."""
        self.backend._ensure_schema()
        with self.backend._transaction("checking the store") as conn:
            conn.execute(sa.select(sa.literal(1)))

    def clear_all(self) -> None:
        """Delete every log book, flow record and atom record."""
        t = _tables()
        with self.backend._transaction("deleting every record") as conn:
            for table in (t.atoms, t.flows, t.books):
                conn.execute(table.delete())

    # -- log books ------------------------------------------------------------------------

    def save_logbook(self, book: LogBook) -> LogBook:
        """Insert or update ``book`` with its flow and atom records, in one transaction."""
        write = self._book_writer(book)
        with self.backend._transaction(f"saving log book {book.name!r}") as conn:
            write(conn)
        return self.get_logbook(book.uuid)

    def _book_writer(self, book: LogBook) -> Callable[..., None]:
        """What writes ``book``'s rows inside a transaction (encoded before it starts)."""
        stmts = self.backend._stmts()
        codec = self._codec
        book_values = book_row(book, codec)
        flow_rows: list[dict[str, Any]] = []
        atom_rows: list[dict[str, Any]] = []
        for flow_detail in book:
            flow_rows.append(flow_row(flow_detail, book.uuid, codec))
            atom_rows.extend(
                atom_row(a, flow_detail.uuid, i, codec) for i, a in enumerate(flow_detail)
            )

        def write(conn: SaConnection, written: str | None = None) -> None:
            """Write the rows (but the flow row ``written``, already inserted)."""
            conn.execute(stmts.book_upsert, book_values)
            rows = [r for r in flow_rows if r["uuid"] != written] if written else flow_rows
            if rows:
                conn.execute(stmts.flow_upsert, rows)
            if atom_rows:
                conn.execute(stmts.atom_upsert, atom_rows)

        return write

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """The log book ``book_uuid`` (NotFoundError if there is none)."""
        books = _tables().books
        with self.backend._transaction(f"reading log book {book_uuid}") as conn:
            row = conn.execute(sa.select(books).where(books.c.uuid == book_uuid)).mappings().first()
            if row is None:
                raise self._missing("log book", book_uuid)
            return self._book(conn, row, lazy)

    def get_logbooks(self, lazy: bool = False) -> list[LogBook]:
        """Every log book, oldest first."""
        books = _tables().books
        with self.backend._transaction("reading the log books") as conn:
            rows = conn.execute(
                sa.select(books).order_by(books.c.created_at, books.c.uuid)
            ).mappings()
            return [self._book(conn, row, lazy) for row in rows.all()]

    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a log book with its flow and atom records (NotFoundError if missing)."""
        t = _tables()
        flows_of_book = sa.select(t.flows.c.uuid).where(t.flows.c.book_uuid == book_uuid)
        with self.backend._transaction(f"deleting log book {book_uuid}") as conn:
            found = conn.execute(t.books.delete().where(t.books.c.uuid == book_uuid)).rowcount
            if not found:
                raise self._missing("log book", book_uuid)
            uuids = list(conn.execute(flows_of_book).scalars())
            if uuids:
                conn.execute(t.atoms.delete().where(t.atoms.c.flow_uuid.in_(uuids)))
                conn.execute(t.flows.delete().where(t.flows.c.book_uuid == book_uuid))

    # -- flow records -------------------------------------------------------------------

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> list[FlowDetail]:
        """The flow records of log book ``book_uuid``."""
        return list(self.get_logbook(book_uuid, lazy=lazy))

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record ``fd_uuid``, with its atom records unless ``lazy``."""
        flows = _tables().flows
        with self.backend._transaction(f"reading flow record {fd_uuid}") as conn:
            row = conn.execute(sa.select(flows).where(flows.c.uuid == fd_uuid)).mappings().first()
            if row is None:
                raise self._missing("flow record", fd_uuid)
            flow_detail = flow_from_row(_plain(row), self._codec)
            if not lazy:
                self._add_atoms(flow_detail, self._atom_rows(conn, [fd_uuid]))
            return flow_detail

    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Write a stored flow record and all its atom records (NotFoundError if never saved)."""
        self.save_round(flow_detail, list(flow_detail))
        return self.get_flow_details(flow_detail.uuid)

    def iter_runs(self, state: str | None = None, limit: int | None = None) -> Iterator[FlowDetail]:
        """Flow records without atoms, most recently updated first (through an index).

        Read a page at a time, each page in a transaction of its own.
        """
        if limit is not None and limit <= 0:
            return
        flows = _tables().flows
        query = sa.select(flows).order_by(flows.c.updated_at.desc())
        if state is not None:
            query = query.where(flows.c.state == str(state))
        remaining = limit
        page = min(limit, _PAGE) if limit is not None else _PAGE
        last: float | None = None
        seen_at_last: set[str] = set()  # rows already given whose updated_at == last
        while True:
            ask = query if last is None else query.where(flows.c.updated_at <= last)
            # the rows already given at ``last`` come back too: ask for that many more
            size = page + len(seen_at_last)
            with self.backend._transaction("listing runs") as conn:
                rows = conn.execute(ask.limit(size)).mappings().all()
            for row in rows:
                if row["updated_at"] == last and row["uuid"] in seen_at_last:
                    continue
                yield flow_from_row(_plain(row), self._codec)
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
                if row["updated_at"] != last:
                    last = row["updated_at"]
                    seen_at_last = set()
                seen_at_last.add(row["uuid"])
            if len(rows) < size:
                return

    # -- atom records -------------------------------------------------------------------

    def get_atoms_for_flow(self, fd_uuid: str) -> list[AtomDetail]:
        """The atom records of flow record ``fd_uuid``, in the order they were first saved."""
        flows = _tables().flows
        with self.backend._transaction(f"reading the atoms of flow record {fd_uuid}") as conn:
            found = conn.execute(sa.select(flows.c.uuid).where(flows.c.uuid == fd_uuid)).first()
            if found is None:
                raise self._missing("flow record", fd_uuid)
            return [self._atom(row) for row in self._atom_rows(conn, [fd_uuid])]

    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """The atom record ``ad_uuid``."""
        atoms = _tables().atoms
        with self.backend._transaction(f"reading atom record {ad_uuid}") as conn:
            row = conn.execute(sa.select(atoms).where(atoms.c.uuid == ad_uuid)).mappings().first()
        if row is None:
            raise self._missing("atom record", ad_uuid)
        return self._atom(row)

    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Write a stored atom record (NotFoundError if it was never saved)."""
        atoms = _tables().atoms
        row = atom_row(atom_detail, "", atom_detail.position, self._codec)
        values = {c: row[c] for c in _ATOM_UPDATE}
        with self.backend._transaction(f"saving atom {atom_detail.name!r}") as conn:
            updated = conn.execute(
                atoms.update().where(atoms.c.uuid == atom_detail.uuid).values(values)
            )
            if updated.rowcount != 1:
                raise self._missing("atom record", atom_detail.uuid)
        return self.get_atom_details(atom_detail.uuid)

    # -- running durably ----------------------------------------------------------------

    def save_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None = None,
        flow_changed: bool = True,
        release: bool = False,
        create: LogBook | None = None,
    ) -> None:
        """Write the flow row and ``atom_details`` in one transaction, fenced by ``owner``;
        with ``release``, ``owner`` stops owning the run in the same transaction (the
        last round of a run: one commit less). With ``create`` (the record's log book,
        and ``owner``): a record not stored yet is first created from it, owned by
        ``owner``, as ``claim_run(uuid, owner, create)`` would (on PostgreSQL in the
        round's own statement: a job's first round, one commit less).

        The flow row is rewritten every round (its fenced UPDATE is the fence check too),
        but on PostgreSQL's direct path: there a fenced round with ``flow_changed=False``
        only locks the flow row to check the fence (no new row version, no index entry),
        unless this store last rewrote that row ``TOUCH_EVERY`` s ago or more (its
        ``updated_at`` then moves on: a run's record is never more than that stale).
        """
        release = release and owner is not None
        if create is not None and self._created(flow_detail, atom_details, owner, create, release):
            return
        if (
            not flow_changed
            and owner is not None
            and not release
            and atom_details
            and self._fence_only_round(flow_detail, atom_details, owner)
        ):
            return
        stmts = self.backend._stmts()
        codec = self._codec
        fd_uuid = flow_detail.uuid
        # every value encoded before the transaction: an unstorable one writes nothing
        atom_rows = self._encode_atoms(flow_detail, atom_details)
        row = flow_row(flow_detail, None, codec)
        params = {f"v_{c}": row[c] for c in _FLOW_ROUND}
        params["k_uuid"] = fd_uuid
        doing = f"recording a round of flow {flow_detail.name!r}"
        direct = self.backend._direct
        if direct is not None:
            if not self.backend._schema_checked:
                self.backend._ensure_schema()
            args: list[Any] = [row[c] for c in _FLOW_ROUND]
            if release:
                assert owner is not None
                args.append(released(owner))
            args.append(fd_uuid)
            if owner is not None:
                args.append(owner)
            if atom_rows:
                args.append(json.dumps(atom_rows))
            sql = _round_sql(bool(atom_rows), owner is not None, release)
            done = direct.run(sql, args, doing)
            if done is not None:
                returned, count = done
                written = len(returned) if atom_rows else count
                self._refuse_unless(written == (len(atom_rows) or 1), fd_uuid, owner, doing)
                note_written(self.backend._flow_written, fd_uuid, row["updated_at"])
                return
        with self.backend._transaction(doing) as conn:
            if owner is None:
                updated = conn.execute(stmts.flow_round, params)
            else:
                params["k_owner"] = owner
                updated = conn.execute(stmts.flow_round_fenced, params)
            if updated.rowcount != 1:
                raise self._refused(conn, fd_uuid, owner)
            if atom_rows:
                conn.execute(stmts.atom_upsert, atom_rows)
            if release:
                assert owner is not None
                conn.execute(_release_stmt(fd_uuid, owner))

    def _fence_only_round(
        self, flow_detail: FlowDetail, atom_details: Sequence[AtomDetail], owner: str
    ) -> bool:
        """Write the atoms of a round whose flow record is unchanged, the flow row locked
        as the fence check (direct path, and only if its row was rewritten here less
        than TOUCH_EVERY s ago); False if this round must rewrite the row instead."""
        direct = self.backend._direct
        fd_uuid = flow_detail.uuid
        if (
            direct is None
            or not self.backend._schema_checked
            or time.time() - self.backend._flow_written.get(fd_uuid, 0.0) >= TOUCH_EVERY
        ):
            return False
        atom_rows = self._encode_atoms(flow_detail, atom_details)
        doing = f"recording a round of flow {flow_detail.name!r}"
        done = direct.run(_FENCED_ATOMS_SQL, (fd_uuid, owner, json.dumps(atom_rows)), doing)
        if done is None:
            return False  # no direct connection free: the pooled path
        self._refuse_unless(len(done[0]) == len(atom_rows), fd_uuid, owner, doing)
        return True

    def _created(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None,
        book: LogBook,
        release: bool,
    ) -> bool:
        """Create the record from ``book`` if it is new, owned by ``owner``: with the
        round in one statement where it can (then True: the round is written), else by
        claim_run before it (False: the round is still to write)."""
        if owner is None:
            raise ValueError("save_round(create=...) takes the owner that creates the record")
        if (
            release
            or self.backend._direct is None
            or not self.backend._schema_checked
            or len(book) != 1
            or book.find(flow_detail.uuid) is None
        ):
            self.claim_run(flow_detail.uuid, owner, book)
            return False
        self._create_round(flow_detail, atom_details, owner, book)
        return True

    def _create_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str,
        book: LogBook,
    ) -> None:
        """A round that creates the record if it is new (owned by ``owner``, with its
        book), else writes it fenced by ``owner``: one statement (direct path)."""
        direct = self.backend._direct
        assert direct is not None
        codec = self._codec
        fd_uuid = flow_detail.uuid
        atom_rows = self._encode_atoms(flow_detail, atom_details)
        row = flow_row(flow_detail, book.uuid, codec)
        row["owner"] = owner
        book_values = book_row(book, codec)
        args: list[Any] = [row[c] for c in FLOW_COLUMNS]
        args.append(owner)
        args.extend(book_values[c] for c in BOOK_COLUMNS)
        if atom_rows:
            args.append(json.dumps(atom_rows))
        doing = f"recording the first round of flow {flow_detail.name!r}"
        done = direct.run(_create_round_sql(bool(atom_rows)), args, doing)
        if done is None:  # no direct connection free: the same in two transactions
            self.claim_run(fd_uuid, owner, book)
            self.save_round(flow_detail, atom_details, owner)
            return
        self._refuse_unless(len(done[0]) == (len(atom_rows) or 1), fd_uuid, owner, doing)
        note_written(self.backend._flow_written, fd_uuid, row["updated_at"])

    def claim_run(self, fd_uuid: str, owner: str, book: LogBook | None = None) -> None:
        """Make ``owner`` the engine that runs ``fd_uuid`` (RunOwnedError if another is);
        a record not stored yet is saved from ``book`` first, in the same transaction."""
        first = None if book is None else self._new_record(book, fd_uuid, owner)
        direct = self.backend._direct
        doing = f"claiming flow record {fd_uuid}"
        if (
            book is not None
            and first is not None
            and direct is not None
            and self.backend._schema_checked
            and len(book) == 1
            and not len(first[2])
        ):
            # a job's first run, on the direct path: the owned flow row and its book in
            # one statement (the book written only if the flow row was new)
            flow_values, book_values = first[1], book_row(book, self._codec)
            args = [flow_values[c] for c in FLOW_COLUMNS]
            args.extend(book_values[c] for c in BOOK_COLUMNS)
            done = direct.run(_CREATE_OWNED_SQL, args, doing)
            if done is not None and done[0]:
                return
            # the record exists (or no connection was free): the general path below
        flows = _tables().flows
        key = flows.c.uuid == fd_uuid
        create = None if book is None else self._book_writer(book)
        with self.backend._transaction(doing) as conn:
            if first is not None and conn.execute(first[0], first[1]).first() is not None:
                # a new record, inserted owned (a job's first run): the rest of the book
                assert create is not None
                create(conn, written=fd_uuid)
                return
            free = sa.or_(flows.c.owner.is_(None), flows.c.owner == owner)
            if conn.execute(flows.update().where(key, free).values(owner=owner)).rowcount == 1:
                return
            current = conn.execute(sa.select(flows.c.owner).where(key)).first()
            if current is None and create is not None:
                # of several creating one record, the upsert waits for the first; the
                # owner is then set by the same compare-and-set as any takeover
                create(conn)
                if conn.execute(flows.update().where(key, free).values(owner=owner)).rowcount:
                    return
                current = conn.execute(sa.select(flows.c.owner).where(key)).first()
            if current is None:
                raise self._missing("flow record", fd_uuid)
            holder: str | None = current[0]
            if may_take_over(holder, owner):
                # compare-and-set: of two engines taking over one owner, one wins
                took = flows.update().where(key, flows.c.owner == holder).values(owner=owner)
                if conn.execute(took).rowcount == 1:
                    return
                holder = conn.execute(sa.select(flows.c.owner).where(key)).scalar()
            raise RunOwnedError(
                f"flow record {fd_uuid} in {self.backend.shown} is being run by another "
                f"engine ({describe_owner(holder or '?')}); wait for it to finish or suspend "
                "it, or stop that process"
            )

    def _new_record(
        self, book: LogBook, fd_uuid: str, owner: str
    ) -> tuple[Insert, dict[str, Any], FlowDetail] | None:
        """An INSERT of ``fd_uuid``'s row owned by ``owner`` that does nothing if the row
        exists (PostgreSQL and SQLite; None elsewhere, and if the book lacks the record):
        claiming a record that is new then takes one statement, not a failed UPDATE, a
        SELECT and the UPDATE after the creation."""
        insert = self.backend._stmts().flow_insert_new
        flow_detail = next((f for f in book if f.uuid == fd_uuid), None)
        if insert is None or flow_detail is None:
            return None
        row = flow_row(flow_detail, book.uuid, self._codec)
        row["owner"] = owner
        return insert, row, flow_detail

    def release_run(self, fd_uuid: str, owner: str) -> None:
        """Stop owning ``fd_uuid`` (nothing happens if ``owner`` no longer owns it)."""
        doing = f"releasing flow record {fd_uuid}"
        direct = self.backend._direct
        if (
            direct is not None
            and self.backend._schema_checked
            and direct.run(_RELEASE_SQL, (released(owner), fd_uuid, owner), doing) is not None
        ):
            return
        with self.backend._transaction(doing) as conn:
            conn.execute(_release_stmt(fd_uuid, owner))

    # -- helpers ------------------------------------------------------------------------

    def _missing(self, what: str, uuid: str) -> NotFoundError:
        return NotFoundError(f"no {what} with uuid {uuid!r} in the store {self.backend.shown}")

    def _encode_atoms(
        self, flow_detail: FlowDetail, atom_details: Sequence[AtomDetail]
    ) -> list[dict[str, Any]]:
        """The rows of a round's atoms (every value encoded: an unstorable one raises)."""
        fd_uuid, position, codec = flow_detail.uuid, flow_detail.position_of, self._codec
        return [atom_row(a, fd_uuid, position(a), codec) for a in atom_details]

    def _refuse_unless(self, written: bool, fd_uuid: str, owner: str | None, doing: str) -> None:
        """After a round sent as one statement: unless it was ``written``, raise why not
        (the record is missing, or another owner holds it)."""
        if not written:
            with self.backend._transaction(doing) as conn:
                raise self._refused(conn, fd_uuid, owner)

    def _refused(self, conn: SaConnection, fd_uuid: str, owner: str | None) -> TideflowError:
        flows = _tables().flows
        found = conn.execute(sa.select(flows.c.owner).where(flows.c.uuid == fd_uuid)).first()
        if found is None:
            return NotFoundError(
                f"no flow record with uuid {fd_uuid!r} in the store {self.backend.shown}; "
                "save it in a log book (save_logbook) before recording rounds of it"
            )
        holder = found[0]
        taken = f": {describe_owner(holder)} took it over" if holder else ""
        return RunOwnedError(
            f"flow record {fd_uuid} is no longer run by this engine{taken}; nothing of this "
            "round was written"
        )

    def _book(self, conn: SaConnection, row: RowMapping, lazy: bool) -> LogBook:
        flows = _tables().flows
        book = book_from_row(_plain(row), self._codec)
        flow_rows = conn.execute(
            sa.select(flows)
            .where(flows.c.book_uuid == book.uuid)
            .order_by(flows.c.created_at, flows.c.uuid)
        ).mappings()
        details = [flow_from_row(_plain(r), self._codec) for r in flow_rows.all()]
        if details and not lazy:
            by_uuid: dict[str, list[RowMapping]] = {d.uuid: [] for d in details}
            for atom in self._atom_rows(conn, list(by_uuid)):
                by_uuid[atom["flow_uuid"]].append(atom)
            for detail in details:
                self._add_atoms(detail, by_uuid[detail.uuid])
        for detail in details:
            book.add(detail)
        book.updated_at = row["updated_at"]  # add() stamped it with now
        return book

    def _atom_rows(self, conn: SaConnection, fd_uuids: list[str]) -> Sequence[RowMapping]:
        atoms = _tables().atoms
        key = (
            atoms.c.flow_uuid == fd_uuids[0]
            if len(fd_uuids) == 1
            else atoms.c.flow_uuid.in_(fd_uuids)
        )
        return (
            conn.execute(sa.select(atoms).where(key).order_by(atoms.c.flow_uuid, atoms.c.position))
            .mappings()
            .all()
        )

    def _atom(self, row: RowMapping) -> AtomDetail:
        detail = atom_from_row(_plain(row), self._codec)
        detail.position = row["position"]
        return detail

    def _add_atoms(self, flow_detail: FlowDetail, rows: Sequence[RowMapping]) -> None:
        for row in rows:
            detail = self._atom(row)
            flow_detail.add(detail)
            detail.position = row["position"]  # as stored, even if positions have gaps
