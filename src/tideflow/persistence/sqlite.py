"""The SQLite store: run records in one file, through the standard library's ``sqlite3``.

``sqlite:///runs.db`` (relative to the working directory when opened),
``sqlite:////abs/runs.db`` (absolute), ``sqlite://`` or ``sqlite:///:memory:`` (a
database in this process's memory, shared by the store's connections).

How it stays fast: each thread has one ``sqlite3`` connection of its own, opened once
with its pragmas; the schema is checked once per store, when the first connection
opens; every statement is a constant string, so ``sqlite3`` prepares it once per
connection; a round of the engine (:meth:`SqliteConnection.save_round`) is one
``BEGIN IMMEDIATE``, one ``UPDATE`` of the flow row, one ``executemany`` upserting
the atom rows and one ``COMMIT``. Values are encoded before the transaction starts.
The flow row is rewritten only when it changed (or its ``updated_at`` is a second
old), so a round that records one atom appends one page to the WAL, not four.

How it stays safe: the file is in WAL mode, so readers never wait for the writer;
writes take the write lock when they begin (``BEGIN IMMEDIATE``), so two writers
queue (for up to ``busy_timeout``) instead of failing on a lock upgrade. Before
anything is written to an existing file it is inspected: a file that is not SQLite,
a database of another program, a store of a newer tideflow or a damaged file is
refused with an error naming the file, and is left byte for byte as it was. A
forked child never uses the connections it inherited; it opens its own.

Schema versions: :data:`~tideflow.persistence._records.SCHEMA_VERSION` is the
version this tideflow writes. A database with no tables is version 0. Each entry of
``_MIGRATIONS`` brings a store from the version before it to its key, all in one
transaction, so a future version 2 adds ``_MIGRATIONS[2]`` and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final

from tideflow.errors import NotFoundError, RunOwnedError, StoreError, StoreVersionError
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

__all__ = ["SqliteBackend", "SqliteConnection"]

_SYNCHRONOUS: Final = ("NORMAL", "FULL", "OFF")
_OPTIONS: Final = ("codec", "synchronous", "busy_timeout")
_HEADER: Final = b"SQLite format 3\x00"
_MEMORY_NAMES: Final = ("", ":memory:")
_TASKFLOW_TABLES: Final = frozenset({"logbooks", "flowdetails", "atomdetails"})
_PAGE: Final = 500  # flow rows iter_runs reads per query

# -- schema ---------------------------------------------------------------------------

_SCHEMA_V1: Final = (
    """CREATE TABLE IF NOT EXISTS tideflow_logbooks (
        uuid VARCHAR(64) NOT NULL PRIMARY KEY,
        name VARCHAR(255),
        meta TEXT,
        created_at DOUBLE,
        updated_at DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS tideflow_flows (
        uuid VARCHAR(64) NOT NULL PRIMARY KEY,
        book_uuid VARCHAR(64),
        name VARCHAR(255),
        state VARCHAR(32),
        meta TEXT,
        injected TEXT,
        owner VARCHAR(255),
        created_at DOUBLE,
        updated_at DOUBLE)""",
    "CREATE INDEX IF NOT EXISTS tideflow_flows_book ON tideflow_flows (book_uuid)",
    "CREATE INDEX IF NOT EXISTS tideflow_flows_updated ON tideflow_flows (updated_at)",
    "CREATE INDEX IF NOT EXISTS tideflow_flows_state ON tideflow_flows (state, updated_at)",
    """CREATE TABLE IF NOT EXISTS tideflow_atoms (
        uuid VARCHAR(64) NOT NULL PRIMARY KEY,
        flow_uuid VARCHAR(64) NOT NULL,
        name VARCHAR(255) NOT NULL,
        kind VARCHAR(32),
        position INTEGER,
        state VARCHAR(32),
        intention VARCHAR(32),
        results TEXT,
        failure TEXT,
        revert_results TEXT,
        revert_failure TEXT,
        meta TEXT,
        version VARCHAR(32),
        history TEXT,
        decision VARCHAR(32),
        updated_at DOUBLE,
        UNIQUE (flow_uuid, name))""",
    "CREATE INDEX IF NOT EXISTS tideflow_atoms_position ON tideflow_atoms (flow_uuid, position)",
)


def _create_v1(db: sqlite3.Connection) -> None:
    """Version 0 (no tables, or an empty ``tideflow_meta``) to 1: create every table."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS tideflow_meta (name VARCHAR(64) PRIMARY KEY, value TEXT)"
    )
    for statement in _SCHEMA_V1:
        db.execute(statement)


#: Schema steps: ``_MIGRATIONS[n]`` brings a store at version ``n - 1`` to ``n``.
_MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {1: _create_v1}

_TABLES: Final = ("tideflow_meta", "tideflow_logbooks", "tideflow_flows", "tideflow_atoms")

# -- statements (constant strings: each is prepared once per connection) -----------------


def _params(columns: Sequence[str]) -> str:
    return ", ".join(f":{c}" for c in columns)


def _assign(columns: Sequence[str]) -> str:
    return ", ".join(f"{c} = excluded.{c}" for c in columns)


_BOOK_COLS: Final = ", ".join(BOOK_COLUMNS)
_FLOW_COLS: Final = ", ".join(FLOW_COLUMNS)
_ATOM_COLS: Final = ", ".join(ATOM_COLUMNS)
# what a later write of a record changes (never uuid, flow_uuid, position or created_at)
_FLOW_DATA: Final = ("name", "state", "meta", "injected", "updated_at")
_ATOM_DATA: Final = tuple(
    c for c in ATOM_COLUMNS if c not in ("uuid", "flow_uuid", "position", "name")
)

_UPSERT_BOOK: Final = (
    f"INSERT INTO tideflow_logbooks ({_BOOK_COLS}) VALUES ({_params(BOOK_COLUMNS)}) "
    f"ON CONFLICT (uuid) DO UPDATE SET {_assign(('name', 'meta', 'updated_at'))}"
)
_UPSERT_BOOK_FLOW: Final = (
    f"INSERT INTO tideflow_flows ({_FLOW_COLS}) VALUES "
    f"({_params(FLOW_COLUMNS).replace(':owner', 'NULL')}) "
    f"ON CONFLICT (uuid) DO UPDATE SET {_assign(('book_uuid', *_FLOW_DATA))}"
)
_UPDATE_FLOW: Final = (
    f"UPDATE tideflow_flows SET {', '.join(f'{c} = :{c}' for c in _FLOW_DATA)} WHERE uuid = :uuid"
)
# A round rewrites the flow row only if it changed, or if its updated_at is older than
# TOUCH_EVERY: an unchanged row costs no page write, while a changed updated_at costs
# three (the row and its two time indexes), about half of a round's commit. When no row
# is written, _round_checked tells why.
_IF_CHANGED: Final = (
    " AND (name IS NOT :name OR state IS NOT :state OR meta IS NOT :meta"
    " OR injected IS NOT :injected OR updated_at IS NULL OR updated_at < :touch_before)"
)
_ROUND_FLOW: Final = _UPDATE_FLOW + _IF_CHANGED
_ROUND_OWNED_FLOW: Final = _UPDATE_FLOW + " AND owner = :owner" + _IF_CHANGED
# An atom row is found by uuid; a record of the same name with another uuid replaces the
# stored one in its place (as FlowDetail.add replaces a record by name). The first clause
# sets no indexed column, so a round's upsert writes the table's page and no index page.
_UPSERT_ATOM: Final = (
    f"INSERT INTO tideflow_atoms ({_ATOM_COLS}) VALUES ({_params(ATOM_COLUMNS)}) "
    f"ON CONFLICT (uuid) DO UPDATE SET {_assign(_ATOM_DATA)} "
    f"ON CONFLICT (flow_uuid, name) DO UPDATE SET {_assign(('uuid', *_ATOM_DATA))}"
)


def _atom_writes(version: tuple[int, ...]) -> tuple[str, ...]:
    """The statements that upsert atom rows with this SQLite library: one from 3.35 on;
    before it (one ON CONFLICT clause only), a delete of a same-named row first."""
    if version >= (3, 35):
        return (_UPSERT_ATOM,)
    return (
        "DELETE FROM tideflow_atoms WHERE flow_uuid = :flow_uuid AND name = :name "
        "AND uuid != :uuid",
        _UPSERT_ATOM[: _UPSERT_ATOM.index(" ON CONFLICT (flow_uuid, name)")],
    )


_ATOM_WRITES: Final = _atom_writes(sqlite3.sqlite_version_info)

_UPDATE_ATOM: Final = (
    f"UPDATE tideflow_atoms SET {', '.join(f'{c} = :{c}' for c in ('name', *_ATOM_DATA))} "
    "WHERE uuid = :uuid"
)

_SELECT_BOOK: Final = f"SELECT {_BOOK_COLS} FROM tideflow_logbooks WHERE uuid = ?"
_SELECT_BOOKS: Final = f"SELECT {_BOOK_COLS} FROM tideflow_logbooks ORDER BY rowid"
_SELECT_FLOW: Final = f"SELECT {_FLOW_COLS} FROM tideflow_flows WHERE uuid = ?"
_SELECT_BOOK_FLOWS: Final = (
    f"SELECT {_FLOW_COLS} FROM tideflow_flows WHERE book_uuid = ? ORDER BY rowid"
)
_SELECT_ATOM: Final = f"SELECT {_ATOM_COLS} FROM tideflow_atoms WHERE uuid = ?"
_SELECT_FLOW_ATOMS: Final = (
    f"SELECT {_ATOM_COLS} FROM tideflow_atoms WHERE flow_uuid = ? ORDER BY position, rowid"
)
_SELECT_OWNER: Final = "SELECT owner FROM tideflow_flows WHERE uuid = ?"
_FLOW_EXISTS: Final = "SELECT 1 FROM tideflow_flows WHERE uuid = ?"
_SET_OWNER: Final = "UPDATE tideflow_flows SET owner = ? WHERE uuid = ?"
_RELEASE: Final = "UPDATE tideflow_flows SET owner = ? WHERE uuid = ? AND owner = ?"

# iter_runs reads pages by (updated_at, rowid), newest first: the updated_at index (and
# the (state, updated_at) one) holds rowid after its columns, so each page is a range
# search in an index, never a scan of the table or a sort.
_RUN_COLS: Final = f"rowid, {_FLOW_COLS}"
_RUN_UPDATED_AT: Final = 1 + FLOW_COLUMNS.index("updated_at")
_RUNS_ORDER: Final = "ORDER BY updated_at DESC, rowid DESC LIMIT ?"
_RUNS_FIRST: Final = f"SELECT {_RUN_COLS} FROM tideflow_flows {_RUNS_ORDER}"
_RUNS_NEXT: Final = (
    f"SELECT {_RUN_COLS} FROM tideflow_flows WHERE (updated_at, rowid) < (?, ?) {_RUNS_ORDER}"
)
_RUNS_STATE_FIRST: Final = f"SELECT {_RUN_COLS} FROM tideflow_flows WHERE state = ? {_RUNS_ORDER}"
_RUNS_STATE_NEXT: Final = (
    f"SELECT {_RUN_COLS} FROM tideflow_flows WHERE state = ? AND (updated_at, rowid) < (?, ?) "
    f"{_RUNS_ORDER}"
)

_DESTROY_ATOMS: Final = (
    "DELETE FROM tideflow_atoms WHERE flow_uuid IN "
    "(SELECT uuid FROM tideflow_flows WHERE book_uuid = ?)"
)
_DESTROY_FLOWS: Final = "DELETE FROM tideflow_flows WHERE book_uuid = ?"
_DESTROY_BOOK: Final = "DELETE FROM tideflow_logbooks WHERE uuid = ?"


# -- the backend ------------------------------------------------------------------------


class _Slot:
    """One ``sqlite3`` connection and the lock its users take (per thread, or shared)."""

    __slots__ = ("__weakref__", "db", "lock")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.lock = threading.RLock()


class SqliteBackend:
    """A store in one SQLite file (``sqlite:///path.db``) or in memory (``sqlite://``).

    Options (keyword-only; ``connect(url, **options)`` passes them):

    ``synchronous``: how durable a commit is. ``'NORMAL'`` (the default) survives the
    process being killed at any moment and the operating system crashing loses at most
    the last commits, never the database; ``'FULL'`` also survives power loss (every
    commit waits for the disk), at a few times the cost per commit; ``'OFF'`` leaves
    flushing to the operating system (a crash of the machine may damage the file).
    The file is always in WAL mode.

    ``busy_timeout``: seconds a write waits for another connection or process holding
    the file's write lock before failing (default 30). Several processes can share one
    file; their writes queue.

    ``codec``: ``'json'`` (the default) or ``'pickle'`` (opt-in: see
    :mod:`tideflow.persistence.codec`).

    Each thread that uses the store gets its own ``sqlite3`` connection (an in-memory
    store has one, shared under a lock); :meth:`close` closes them all. A closed store
    opens new connections when used again (an in-memory one then starts empty).
    """

    #: Reads return copies built from rows.
    shares_records = False

    def __init__(
        self,
        url: str = "sqlite://",
        *,
        codec: str | Codec = "json",
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        if sqlite3.sqlite_version_info < (3, 24):
            raise StoreError(
                f"the SQLite store needs SQLite 3.24 or later; this Python's sqlite3 module "
                f"uses {sqlite3.sqlite_version}: use a Python built with a newer SQLite, or "
                "another store"
            )
        if not isinstance(synchronous, str) or synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(
                f"synchronous= takes one of {list(_SYNCHRONOUS)} (FULL survives power loss, "
                f"NORMAL survives a killed process), got {synchronous!r}"
            )
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, int | float)
            or not busy_timeout >= 0
        ):
            raise ValueError(
                f"busy_timeout= takes a number of seconds, 0 or more, got {busy_timeout!r}"
            )
        self.url = url
        self.codec: Codec = codec_named(codec)
        self.synchronous = synchronous.upper()
        self.busy_timeout = float(busy_timeout)
        self.path: str | None = _path_of(url)
        #: Names the store in messages: its file, or the URL of an in-memory store.
        self.where = f"SQLite store {self.path or url!r}"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._slots: weakref.WeakSet[_Slot] = weakref.WeakSet()
        self._ready = False  # the schema was checked (and created or migrated)
        self._memory: _Slot | None = None  # the one connection of an in-memory store
        #: flow record uuid -> when save_round last wrote its row (see TOUCH_EVERY)
        self._flow_written: dict[str, float] = {}
        _BACKENDS.add(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SqliteBackend:
        """The store a ``{"connection": url, option: value, ...}`` dict describes."""
        options = dict(config)
        try:
            url = options.pop("connection")
        except KeyError:
            raise ValueError(
                "a SQLite store configuration needs a 'connection' key, e.g. "
                "{'connection': 'sqlite:///runs.db'}"
            ) from None
        for key in options:
            if key not in _OPTIONS:
                from tideflow._options import closest  # noqa: PLC0415  # error path only

                raise TypeError(
                    f"unknown option {key!r} for the SQLite store {url!r}: "
                    f"{closest(str(key), _OPTIONS)}it takes {list(_OPTIONS)}"
                )
        return cls(str(url), **options)

    def __repr__(self) -> str:
        return f"<SqliteBackend {self.url!r} synchronous={self.synchronous}>"

    def get_connection(self) -> SqliteConnection:
        """A connection to the store; the first one opens the file and checks its schema."""
        self._slot()
        return SqliteConnection(self)

    def close(self) -> None:
        """Close every ``sqlite3`` connection of this store. Idempotent."""
        with self._lock:
            slots = list(self._slots)
            self._slots = weakref.WeakSet()
            self._local = threading.local()
            if self.path is None:
                self._ready = False  # the in-memory database goes with its connection
                self._memory = None
        for slot in slots:
            with slot.lock:
                slot.db.close()

    def _after_fork(self) -> None:
        """In a child process: never touch the parent's connections (SQLite forbids using
        a connection across fork); this process opens its own when it uses the store."""
        self._lock = threading.Lock()
        self._local = threading.local()
        if self._memory is not None:
            self._memory.lock = threading.RLock()  # the child's own copy of the database
        else:
            _INHERITED.extend(self._slots)  # kept open and unused: closing would touch files
            self._slots = weakref.WeakSet()

    # -- connections ---------------------------------------------------------------------

    def _slot(self) -> _Slot:
        """This thread's connection (opened on first use)."""
        try:
            slot: _Slot = self._local.slot
        except AttributeError:
            slot = self._open_slot()
        return slot

    def _open_slot(self) -> _Slot:
        with self._lock:
            if self.path is None:
                if self._memory is None:
                    memory = _Slot(self._connect(":memory:"))
                    self._prepare_schema(memory.db)
                    self._slots.add(memory)
                    self._memory = memory
                    self._ready = True
                slot = self._memory
            else:
                if not self._ready:
                    db = self._open_store_file(self.path)
                    self._ready = True
                else:
                    db = self._connect(self.path)
                slot = _Slot(db)
                self._slots.add(slot)
            self._local.slot = slot
            return slot

    def _connect(self, target: str) -> sqlite3.Connection:
        """A ``sqlite3`` connection with this store's settings (the seam tests fault)."""
        try:
            db = _open_db(target, self.busy_timeout)
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise _store_error(exc, self.where, "opening it", self.busy_timeout) from exc
        return db

    def _open_store_file(self, path: str) -> sqlite3.Connection:
        """Open ``path``, refusing what is not a store of this version before writing."""
        if os.path.exists(path):
            self._check_header(path)
        else:
            parent = os.path.dirname(path)
            if parent:
                try:
                    os.makedirs(parent, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"{self.where}: cannot create its directory {parent!r} ({exc}); "
                        "create it or choose another path",
                        cause=exc,
                    ) from exc
        db = self._connect(path)
        try:
            self._prepare_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _check_header(self, path: str) -> None:
        try:
            with open(path, "rb") as file:
                head = file.read(len(_HEADER))
        except OSError as exc:
            raise StoreError(f"{self.where}: cannot read the file ({exc})", cause=exc) from exc
        if head and head != _HEADER:
            raise StoreVersionError(
                f"{self.where}: the file is not a SQLite database, so it is not a tideflow "
                "store; nothing was changed. Point the store at another path (a new file "
                "becomes a store), or move this file aside if it is damaged"
            )

    # -- schema --------------------------------------------------------------------------

    def _prepare_schema(self, db: sqlite3.Connection) -> None:
        """Check the store's schema and create or migrate it; refuse before any write.
        A "database is locked" on the way (processes opening a new file at once, one of
        them switching it to WAL) is retried until ``busy_timeout`` has passed: SQLite
        does not wait on every such lock by itself."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._prepare_schema_once(db)
                return
            except StoreError as exc:
                cause = exc.__cause__
                locked = isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause)
                if not locked or time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    def _prepare_schema_once(self, db: sqlite3.Connection) -> None:
        try:
            version = self._stored_version(db)
            if version == SCHEMA_VERSION:
                self._use_wal(db)
                return
            self._use_wal(db)
            db.execute("BEGIN IMMEDIATE")
            try:
                # another process may have created or migrated it since we looked
                version = self._stored_version(db)
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    _MIGRATIONS[step](db)
                    db.execute(
                        "INSERT INTO tideflow_meta (name, value) VALUES ('schema_version', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        (str(step),),
                    )
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        except sqlite3.Error as exc:
            raise _store_error(exc, self.where, "checking its schema", self.busy_timeout) from exc

    def _use_wal(self, db: sqlite3.Connection) -> None:
        if self.path is not None:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")

    def _stored_version(self, db: sqlite3.Connection) -> int:
        """The schema version the database holds (0: none yet); refuse what is no store."""
        tables = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        }
        if "tideflow_meta" not in tables:
            if not tables:
                return 0
            if {t.lower() for t in tables} >= _TASKFLOW_TABLES:
                raise StoreVersionError(
                    f"{self.where}: this is a TaskFlow store (tables logbooks, flowdetails, "
                    "atomdetails); tideflow cannot read TaskFlow's layout. Nothing was "
                    "changed: keep it for TaskFlow, and give tideflow a new file"
                )
            raise StoreVersionError(
                f"{self.where}: this SQLite database belongs to another program (tables "
                f"{sorted(tables)[:5]}, no tideflow_meta), so it is not a tideflow store. "
                "Nothing was changed: give tideflow a new file"
            )
        row = db.execute("SELECT value FROM tideflow_meta WHERE name = 'schema_version'").fetchone()
        text = "0" if row is None else str(row[0])
        if not text.isdigit():
            raise StoreVersionError(
                f"{self.where}: its schema version {text!r} is not a number; the store is "
                "damaged or was written by another program. Nothing was changed"
            )
        version = int(text)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.where}: it was written by a newer tideflow (schema version {version}; "
                f"this one reads up to {SCHEMA_VERSION}). Nothing was changed: upgrade "
                "tideflow to use it"
            )
        return version


# -- the connection ---------------------------------------------------------------------


class SqliteConnection:
    """Reads and writes the records of a :class:`SqliteBackend` (one thread at a time)."""

    #: save_round(release=True) releases the run in the round's transaction
    releases_in_round: ClassVar[bool] = True

    def __init__(self, backend: SqliteBackend) -> None:
        self.backend = backend
        self._codec = backend.codec
        self._where = backend.where
        self._busy = backend.busy_timeout

    def __enter__(self) -> SqliteConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to give back: the store keeps one ``sqlite3`` connection per thread."""

    # -- transactions -------------------------------------------------------------------

    def _write(self, doing: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one write transaction: all of it commits, or none."""
        return self._run("BEGIN IMMEDIATE", doing, work)

    def _read(self, doing: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` on one snapshot of the store."""
        return self._run("BEGIN", doing, work)

    def _run(self, begin: str, doing: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in a transaction opened with ``begin``; a driver error becomes a
        StoreError saying what was being done. (``save_round`` opens its own, inline: it
        is the per-round hot path.)"""
        slot = self.backend._slot()
        with slot.lock:
            db = slot.db
            try:
                db.execute(begin)
                result = work(db)
                db.execute("COMMIT")
            except BaseException as exc:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise _store_error(exc, self._where, doing, self._busy) from exc
                raise
            return result

    # -- schema -------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the tables, or migrate an older store to this version (idempotent)."""
        slot = self.backend._slot()
        with slot.lock:
            self.backend._prepare_schema(slot.db)

    def validate(self) -> None:
        """Check the file is reachable and holds this version's tables."""

        def check(db: sqlite3.Connection) -> None:
            version = self.backend._stored_version(db)
            tables = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            missing = [t for t in _TABLES if t not in tables]
            if version != SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{self._where}: schema version {version}, this tideflow uses "
                    f"{SCHEMA_VERSION}: call upgrade()"
                )
            if missing:
                raise StoreError(
                    f"{self._where}: the store is damaged: tables {missing} are missing; "
                    "restore it from a backup, or move it aside and start a new store"
                )

        self._read("checking its schema", check)

    def clear_all(self) -> None:
        """Delete every log book, flow record and atom record."""

        def clear(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM tideflow_atoms")
            db.execute("DELETE FROM tideflow_flows")
            db.execute("DELETE FROM tideflow_logbooks")

        self._write("deleting every record", clear)

    # -- log books ----------------------------------------------------------------------

    def save_logbook(self, book: LogBook) -> LogBook:
        """Insert or update ``book`` with its flow records and atom records, together."""
        write = self._book_writer(book)

        def save(db: sqlite3.Connection) -> LogBook:
            write(db)
            return self._load_book(db, book.uuid, lazy=False)

        result: LogBook = self._write(f"saving log book {book.name!r}", save)
        return result

    def _book_writer(self, book: LogBook) -> Callable[[sqlite3.Connection], None]:
        """What writes ``book``'s rows inside a transaction (encoded before it starts)."""
        codec = self._codec
        row = book_row(book, codec)
        flows = []
        atoms = []
        for flow_detail in book:
            flows.append(flow_row(flow_detail, book.uuid, codec))
            atoms.extend(_atom_rows(flow_detail, codec))

        def write(db: sqlite3.Connection) -> None:
            db.execute(_UPSERT_BOOK, row)
            db.executemany(_UPSERT_BOOK_FLOW, flows)
            _write_atoms(db, atoms)

        return write

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """The log book ``book_uuid`` (its flows without atoms if ``lazy``)."""
        book: LogBook = self._read(
            "reading a log book", lambda db: self._load_book(db, book_uuid, lazy)
        )
        return book

    def get_logbooks(self, lazy: bool = False) -> list[LogBook]:
        """Every log book, in the order they were first saved."""

        def load(db: sqlite3.Connection) -> list[LogBook]:
            rows = db.execute(_SELECT_BOOKS).fetchall()
            return [self._book_from(db, row, lazy) for row in rows]

        books: list[LogBook] = self._read("reading the log books", load)
        return books

    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a log book with its flow and atom records."""

        def destroy(db: sqlite3.Connection) -> None:
            db.execute(_DESTROY_ATOMS, (book_uuid,))
            db.execute(_DESTROY_FLOWS, (book_uuid,))
            if db.execute(_DESTROY_BOOK, (book_uuid,)).rowcount != 1:
                raise self._missing("log book", book_uuid)

        self._write("deleting a log book", destroy)

    # -- flow records -------------------------------------------------------------------

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> list[FlowDetail]:
        """The flow records of a log book, in the order they were first saved."""
        return list(self.get_logbook(book_uuid, lazy=lazy))

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record ``fd_uuid``, with its atom records unless ``lazy``."""
        flow: FlowDetail = self._read(
            "reading a flow record", lambda db: self._load_flow(db, fd_uuid, lazy)
        )
        return flow

    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Write an existing flow record and its atom records; return it as now stored."""
        codec = self._codec
        row = flow_row(flow_detail, None, codec)
        atoms = _atom_rows(flow_detail, codec)

        def update(db: sqlite3.Connection) -> FlowDetail:
            if db.execute(_UPDATE_FLOW, row).rowcount != 1:
                raise self._missing("flow record", flow_detail.uuid, "save its log book first")
            _write_atoms(db, atoms)
            return self._load_flow(db, flow_detail.uuid, lazy=False)

        result: FlowDetail = self._write(f"saving flow record {flow_detail.name!r}", update)
        return result

    def iter_runs(self, state: str | None = None, limit: int | None = None) -> Iterator[FlowDetail]:
        """Flow records without atoms, most recently updated first (read page by page)."""
        if limit is not None and limit <= 0:
            return iter(())
        return self._runs(None if state is None else str(state), limit)

    def _runs(self, state: str | None, limit: int | None) -> Iterator[FlowDetail]:
        left = limit
        after: tuple[Any, ...] = ()  # (updated_at, rowid) of the last row read
        while True:
            page = _PAGE if left is None else min(left, _PAGE)
            if state is None:
                query = _RUNS_NEXT if after else _RUNS_FIRST
                args: tuple[Any, ...] = (*after, page)
            else:
                query = _RUNS_STATE_NEXT if after else _RUNS_STATE_FIRST
                args = (state, *after, page)
            rows = self._fetch("listing runs", query, args)
            for row in rows:
                yield flow_from_row(dict(zip(FLOW_COLUMNS, row[1:], strict=True)), self._codec)
            if left is not None:
                left -= len(rows)
                if left <= 0:
                    return
            if len(rows) < page:
                return
            after = (rows[-1][_RUN_UPDATED_AT], rows[-1][0])

    def _fetch(self, doing: str, query: str, args: tuple[Any, ...]) -> list[Any]:
        """The rows of one query (one statement reads one snapshot)."""
        slot = self.backend._slot()
        with slot.lock:
            try:
                return slot.db.execute(query, args).fetchall()
            except sqlite3.Error as exc:
                raise _store_error(exc, self._where, doing, self._busy) from exc

    # -- atom records -------------------------------------------------------------------

    def get_atoms_for_flow(self, fd_uuid: str) -> list[AtomDetail]:
        """The atom records of a flow record, in the order they were first saved."""
        return list(self.get_flow_details(fd_uuid))

    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """The atom record ``ad_uuid``."""

        def load(db: sqlite3.Connection) -> AtomDetail:
            row = db.execute(_SELECT_ATOM, (ad_uuid,)).fetchone()
            if row is None:
                raise self._missing("atom record", ad_uuid)
            return _atom_from(row, self._codec)

        atom: AtomDetail = self._read("reading an atom record", load)
        return atom

    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Write an existing atom record; return it as now stored."""
        row = atom_row(atom_detail, "", atom_detail.position, self._codec)

        def update(db: sqlite3.Connection) -> AtomDetail:
            if db.execute(_UPDATE_ATOM, row).rowcount != 1:
                raise self._missing("atom record", atom_detail.uuid, "save its flow record first")
            return _atom_from(db.execute(_SELECT_ATOM, (atom_detail.uuid,)).fetchone(), self._codec)

        atom: AtomDetail = self._write(f"saving atom record {atom_detail.name!r}", update)
        return atom

    # -- running durably ----------------------------------------------------------------

    def save_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None = None,
        flow_changed: bool = True,
        release: bool = False,
    ) -> None:
        """Write the flow row and these atom rows in one transaction (fenced by ``owner``);
        with ``release``, ``owner`` stops owning the run in the same transaction."""
        codec = self._codec
        fd_uuid = flow_detail.uuid
        touched = self.backend._flow_written
        now = time.time()
        # an unchanged flow record is neither encoded nor written (only the fence is
        # checked), unless its updated_at is TOUCH_EVERY old
        flow = (
            flow_row(flow_detail, None, codec)
            if flow_changed or now - touched.get(fd_uuid, 0.0) >= TOUCH_EVERY
            else None
        )
        position = flow_detail.position_of
        atoms = [atom_row(d, fd_uuid, position(d), codec) for d in atom_details]
        slot = self.backend._slot()
        with slot.lock:
            db = slot.db
            try:
                db.execute("BEGIN IMMEDIATE")
                if flow is None:
                    self._round_checked(db, fd_uuid, owner)
                else:
                    flow["touch_before"] = flow["updated_at"] - TOUCH_EVERY
                    if owner is None:
                        written = db.execute(_ROUND_FLOW, flow).rowcount
                    else:
                        flow["owner"] = owner
                        written = db.execute(_ROUND_OWNED_FLOW, flow).rowcount
                    if written != 1:
                        self._round_checked(db, fd_uuid, owner)
                if atoms:
                    for statement in _ATOM_WRITES:
                        db.executemany(statement, atoms)
                if release and owner is not None:
                    db.execute(_RELEASE, (released(owner), fd_uuid, owner))
                db.execute("COMMIT")
                if flow is not None:
                    note_written(touched, fd_uuid, now)
            except BaseException as exc:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise _store_error(
                        exc, self._where, f"saving a round of flow {flow_detail.name!r}", self._busy
                    ) from exc
                raise

    def _round_checked(self, db: sqlite3.Connection, fd_uuid: str, owner: str | None) -> None:
        """No flow row was written: fine if it is unchanged (and still ``owner``'s), else
        NotFoundError or RunOwnedError."""
        found = db.execute(_SELECT_OWNER, (fd_uuid,)).fetchone()
        if found is None:
            raise self._missing("flow record", fd_uuid, "save its log book first")
        current = found[0]
        if owner is None or current == owner:
            return
        raise RunOwnedError(
            f"flow record {fd_uuid} in {self._where} is no longer run by this engine"
            + (f": {describe_owner(current)} took it over" if current else ": it was released")
            + "; nothing of this round was written"
        )

    def claim_run(self, fd_uuid: str, owner: str, book: LogBook | None = None) -> None:
        """Make ``owner`` the engine running ``fd_uuid`` (RunOwnedError if another is);
        a record not stored yet is saved from ``book`` first, in the same transaction."""
        create = None if book is None else self._book_writer(book)

        def claim(db: sqlite3.Connection) -> None:
            found = db.execute(_SELECT_OWNER, (fd_uuid,)).fetchone()
            if found is None:
                if create is None:
                    raise self._missing("flow record", fd_uuid, "save its log book first")
                create(db)
                found = db.execute(_SELECT_OWNER, (fd_uuid,)).fetchone()
                if found is None:
                    raise self._missing("flow record", fd_uuid, "it is not in the log book given")
            current = found[0]
            if not may_take_over(current, owner):
                raise RunOwnedError(
                    f"flow record {fd_uuid} in {self._where} is being run by "
                    f"{describe_owner(current)}; wait for that run to finish or suspend it "
                    "(if that process dies, the run can be claimed again)"
                )
            if current != owner:
                db.execute(_SET_OWNER, (owner, fd_uuid))

        self._write("claiming a run", claim)

    def release_run(self, fd_uuid: str, owner: str) -> None:
        """Stop owning ``fd_uuid`` (nothing happens if ``owner`` no longer owns it)."""
        self._write(
            "releasing a run",
            lambda db: db.execute(_RELEASE, (released(owner), fd_uuid, owner)),
        )

    # -- reading rows into records ------------------------------------------------------

    def _missing(self, what: str, uuid: str, hint: str = "") -> NotFoundError:
        return NotFoundError(
            f"no {what} with uuid {uuid!r} in {self._where}" + (f" ({hint})" if hint else "")
        )

    def _load_book(self, db: sqlite3.Connection, book_uuid: str, lazy: bool) -> LogBook:
        row = db.execute(_SELECT_BOOK, (book_uuid,)).fetchone()
        if row is None:
            raise self._missing("log book", book_uuid)
        return self._book_from(db, row, lazy)

    def _book_from(self, db: sqlite3.Connection, row: Sequence[Any], lazy: bool) -> LogBook:
        codec = self._codec
        book = book_from_row(dict(zip(BOOK_COLUMNS, row, strict=True)), codec)
        created_at, updated_at = book.created_at, book.updated_at
        for flow in db.execute(_SELECT_BOOK_FLOWS, (book.uuid,)).fetchall():
            book.add(self._flow_from(db, flow, lazy))
        book.created_at, book.updated_at = created_at, updated_at  # add() touched them
        return book

    def _load_flow(self, db: sqlite3.Connection, fd_uuid: str, lazy: bool) -> FlowDetail:
        row = db.execute(_SELECT_FLOW, (fd_uuid,)).fetchone()
        if row is None:
            raise self._missing("flow record", fd_uuid)
        return self._flow_from(db, row, lazy)

    def _flow_from(self, db: sqlite3.Connection, row: Sequence[Any], lazy: bool) -> FlowDetail:
        codec = self._codec
        flow = flow_from_row(dict(zip(FLOW_COLUMNS, row, strict=True)), codec)
        if not lazy:
            for atom in db.execute(_SELECT_FLOW_ATOMS, (flow.uuid,)):
                flow.add(_atom_from(atom, codec))
        return flow


# -- helpers ------------------------------------------------------------------------------

#: Every open backend, so that a forked child drops the connections it inherited.
_BACKENDS: Final[weakref.WeakSet[SqliteBackend]] = weakref.WeakSet()
_INHERITED: Final[list[_Slot]] = []


def _after_fork_in_child() -> None:
    for backend in list(_BACKENDS):
        backend._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _write_atoms(db: sqlite3.Connection, atoms: list[dict[str, Any]]) -> None:
    for statement in _ATOM_WRITES:
        db.executemany(statement, atoms)


def _atom_rows(flow_detail: FlowDetail, codec: Codec) -> list[dict[str, Any]]:
    fd_uuid = flow_detail.uuid
    return [atom_row(d, fd_uuid, i, codec) for i, d in enumerate(flow_detail)]


def _atom_from(row: Sequence[Any], codec: Codec) -> AtomDetail:
    data = dict(zip(ATOM_COLUMNS, row, strict=True))
    detail = atom_from_row(data, codec)
    detail.position = data["position"] or 0
    return detail


def _path_of(url: str) -> str | None:
    """The file a ``sqlite://`` URL names (absolute), or None for an in-memory store."""
    if not isinstance(url, str) or not url.startswith("sqlite://"):
        raise ValueError(
            f"a SQLite store URL starts with 'sqlite://' ('sqlite:///runs.db' relative, "
            f"'sqlite:////abs/runs.db' absolute, 'sqlite://' in memory), got {url!r}"
        )
    rest = url[len("sqlite://") :]
    if "?" in rest:
        raise ValueError(
            f"{url!r}: give SQLite store options as keyword arguments "
            f"(connect(url, synchronous='FULL')), not in the URL"
        )
    if rest in _MEMORY_NAMES:
        return None
    if not rest.startswith("/"):
        raise ValueError(
            f"{url!r}: a SQLite URL has three slashes before a relative path "
            f"('sqlite:///runs.db') and four before an absolute one ('sqlite:////tmp/runs.db')"
        )
    path = rest[1:]
    if path in _MEMORY_NAMES:
        return None
    return os.path.abspath(path)


def _open_db(target: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``target`` in autocommit mode (transactions are explicit), usable by any
    thread (each thread gets its own; the backend closes them all from one)."""
    return sqlite3.connect(
        target, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        # the transaction may be gone already (SQLite rolls back itself on some errors)
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


#: What to tell the user for each SQLite error class (primary result code names).
_ADVICE: Final = {
    "SQLITE_FULL": "the disk is full; free some space, then resume the run from its record",
    "SQLITE_IOERR": "the disk reported an I/O error; check the disk and its file system, "
    "then resume the run from its record",
    "SQLITE_BUSY": "another connection held the file's lock for longer than "
    "busy_timeout={busy_timeout:g} s; retry, or raise busy_timeout",
    "SQLITE_LOCKED": "the database is locked by another connection of this process; retry",
    "SQLITE_READONLY": "the file (or its directory) is read-only; make it writable",
    "SQLITE_CANTOPEN": "the file cannot be opened; check that its directory exists and is writable",
    "SQLITE_CORRUPT": "the file is damaged; restore it from a backup, or move it aside and "
    "start a new store",
    "SQLITE_NOTADB": "the file is damaged (or is not a SQLite database); restore it from a "
    "backup, or move it aside and start a new store",
}
_BY_MESSAGE: Final = (
    ("disk is full", "SQLITE_FULL"),
    ("disk i/o error", "SQLITE_IOERR"),
    ("database is locked", "SQLITE_BUSY"),
    ("table is locked", "SQLITE_LOCKED"),
    ("readonly database", "SQLITE_READONLY"),
    ("unable to open", "SQLITE_CANTOPEN"),
    ("malformed", "SQLITE_CORRUPT"),
    ("not a database", "SQLITE_NOTADB"),
)


def _store_error(
    exc: sqlite3.Error, where: str, doing: str, busy_timeout: float = 0.0
) -> StoreError:
    """The StoreError for a ``sqlite3`` error: what happened, while doing what, and what to do."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    kind = name if name in _ADVICE else ""
    if not kind:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            kind = _PRIMARY.get(code & 0xFF, "")
    if not kind:
        text = str(exc).lower()
        kind = next((k for fragment, k in _BY_MESSAGE if fragment in text), "")
    advice = _ADVICE.get(kind, "nothing of this write was committed").format(
        busy_timeout=busy_timeout
    )
    return StoreError(f"{where}: {doing} failed ({exc}): {advice}", cause=exc)


_PRIMARY: Final = {
    13: "SQLITE_FULL",
    10: "SQLITE_IOERR",
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    8: "SQLITE_READONLY",
    14: "SQLITE_CANTOPEN",
    11: "SQLITE_CORRUPT",
    26: "SQLITE_NOTADB",
}
