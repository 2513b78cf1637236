"""The SQLite store's own guarantees: settings, files it refuses, processes, indexes, faults.

What every store does is tested by ``tests/contract``; this file tests what only the
SQLite store has: its pragmas, its URL forms, how it inspects a file before writing,
several processes on one file, its query plans and its migrations.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tideflow.errors import NotFoundError, RunOwnedError, StoreError, StoreVersionError
from tideflow.persistence import _records, connect
from tideflow.persistence import sqlite as sqlite_store
from tideflow.persistence._records import new_owner
from tideflow.persistence.models import FlowDetail, LogBook, TaskDetail
from tideflow.persistence.sqlite import SqliteBackend
from tideflow.states import AtomState, FlowState

FORK = multiprocessing.get_context("fork")
# Children that only need the file start from a clean process: a fork of this pytest
# process can inherit a lock some other test's thread held at that moment and hang
# (seen once in CI after the job-board tests, which leave listener threads behind).
CLEAN = multiprocessing.get_context("forkserver")


@pytest.fixture
def opened() -> Iterator[Callable[..., SqliteBackend]]:
    """Open SQLite stores that are closed when the test ends."""
    backends: list[SqliteBackend] = []

    def open_(url: str, **options: Any) -> SqliteBackend:
        backend = connect(url, **options)
        assert isinstance(backend, SqliteBackend)
        backends.append(backend)
        return backend

    yield open_
    for backend in backends:
        backend.close()


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute: four slashes in all


def a_run(*names: str, name: str = "run") -> tuple[LogBook, FlowDetail]:
    book = LogBook(f"book of {name}")
    flow_detail = FlowDetail(name)
    for atom_name in names:
        flow_detail.add(TaskDetail(atom_name))
    book.add(flow_detail)
    return book, flow_detail


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pragma(backend: SqliteBackend, name: str) -> Any:
    """A pragma as this thread's connection of ``backend`` sees it."""
    return backend._slot().db.execute(f"PRAGMA {name}").fetchone()[0]


# -- URLs and options ----------------------------------------------------------------------


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert SqliteBackend("sqlite:///runs.db").path == str(tmp_path / "runs.db")
    assert SqliteBackend("sqlite:///sub/runs.db").path == str(tmp_path / "sub" / "runs.db")
    assert SqliteBackend("sqlite:////tmp/abs.db").path == "/tmp/abs.db"
    for memory in ("sqlite://", "sqlite:///:memory:", "sqlite:///"):
        assert SqliteBackend(memory).path is None
    with pytest.raises(ValueError, match="keyword arguments"):
        SqliteBackend("sqlite:///runs.db?timeout=3")
    with pytest.raises(ValueError, match="three slashes"):
        SqliteBackend("sqlite://runs.db")
    with pytest.raises(ValueError, match="starts with 'sqlite://'"):
        SqliteBackend("postgresql://x")


def test_a_relative_path_stays_where_it_was_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = opened("sqlite:///here.db")
    monkeypatch.chdir("/")
    with backend.get_connection() as conn:
        conn.save_logbook(a_run("a")[0])
    assert (tmp_path / "here.db").exists()


def test_options_are_checked_by_name() -> None:
    with pytest.raises(TypeError, match=r"'synchronus'.*did you mean 'synchronous'.*'codec'"):
        SqliteBackend.from_config({"connection": "sqlite://", "synchronus": "FULL"})
    with pytest.raises(ValueError, match=r"synchronous=.*'NORMAL', 'FULL', 'OFF'.*'SOMETIMES'"):
        SqliteBackend("sqlite://", synchronous="SOMETIMES")
    with pytest.raises(ValueError, match="busy_timeout="):
        SqliteBackend("sqlite://", busy_timeout=-1)
    with pytest.raises(ValueError, match="busy_timeout="):
        SqliteBackend("sqlite://", busy_timeout="30")  # type: ignore[arg-type]
    backend = SqliteBackend.from_config(
        {"connection": "sqlite://", "synchronous": "full", "busy_timeout": 2, "codec": "pickle"}
    )
    assert (backend.synchronous, backend.busy_timeout, backend.codec.name) == (
        "FULL",
        2.0,
        "pickle",
    )


# -- pragmas -------------------------------------------------------------------------------


def test_wal_and_normal_by_default(tmp_path: Path, opened: Any) -> None:
    backend = opened(url_of(tmp_path / "runs.db"))
    backend.get_connection()
    assert pragma(backend, "journal_mode") == "wal"
    assert pragma(backend, "synchronous") == 1  # NORMAL
    # WAL is a property of the file: another program sees it too
    other = sqlite3.connect(tmp_path / "runs.db")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


@pytest.mark.parametrize(("level", "number"), [("FULL", 2), ("OFF", 0), ("normal", 1)])
def test_synchronous_is_applied_to_every_connection(
    tmp_path: Path, opened: Any, level: str, number: int
) -> None:
    backend = opened(url_of(tmp_path / "runs.db"), synchronous=level)
    backend.get_connection()
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(pragma(backend, "synchronous")))
    thread.start()
    thread.join()
    assert [pragma(backend, "synchronous"), *seen] == [number, number]


def test_busy_timeout_is_set_and_a_writer_waits_for_the_lock(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "runs.db"
    backend = opened(url_of(path), busy_timeout=10)
    conn = backend.get_connection()
    assert pragma(backend, "busy_timeout") == 10_000
    book, flow_detail = a_run("a")
    conn.save_logbook(book)

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    flow_detail.state = FlowState.RUNNING
    conn.save_round(flow_detail, [])  # waits for the holder instead of failing
    waited = time.monotonic() - started
    release.join()
    holder.close()
    assert waited >= 0.2
    assert conn.get_flow_details(flow_detail.uuid).state == FlowState.RUNNING


def test_a_lock_held_past_busy_timeout_is_a_store_error(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "runs.db"
    conn = opened(url_of(path), busy_timeout=0.05).get_connection()
    book, flow_detail = a_run("a")
    conn.save_logbook(book)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        flow_detail.state = FlowState.RUNNING
        with pytest.raises(StoreError, match=r"runs\.db.*longer than busy_timeout=0.05 s"):
            conn.save_round(flow_detail, [])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    conn.save_round(flow_detail, [])  # usable again once the lock is gone
    assert conn.get_flow_details(flow_detail.uuid).state == FlowState.RUNNING


# -- files and connections -----------------------------------------------------------------


def test_the_parent_directory_is_created(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "a" / "b" / "runs.db"
    opened(url_of(path)).get_connection()
    assert path.is_file()


def test_a_directory_that_cannot_be_made_is_a_store_error(tmp_path: Path, opened: Any) -> None:
    (tmp_path / "plain").write_text("a file, not a directory")
    backend = opened(url_of(tmp_path / "plain" / "runs.db"))
    with pytest.raises(StoreError, match=r"cannot create its directory .*plain"):
        backend.get_connection()


def test_one_connection_per_thread_all_closed_by_close(tmp_path: Path, opened: Any) -> None:
    backend = opened(url_of(tmp_path / "runs.db"))
    mine = backend._slot().db
    assert backend._slot().db is mine
    theirs: list[sqlite3.Connection] = []
    keep = threading.Event()

    def other_thread() -> None:
        theirs.append(backend._slot().db)
        keep.wait(5)

    thread = threading.Thread(target=other_thread)
    thread.start()
    while not theirs:
        time.sleep(0.001)
    assert theirs[0] is not mine
    backend.close()
    keep.set()
    thread.join()
    for db in (mine, theirs[0]):
        with pytest.raises(sqlite3.ProgrammingError):
            db.execute("SELECT 1")
    backend.close()  # idempotent
    # a closed store opens again when used, with what the file holds
    with backend.get_connection() as conn:
        assert list(conn.get_logbooks()) == []


def test_the_memory_store_is_shared_by_threads_until_closed(opened: Any) -> None:
    backend = opened("sqlite:///:memory:")
    book, flow_detail = a_run("a", "b")
    backend.get_connection().save_logbook(book)
    seen: list[Any] = []

    def read() -> None:
        seen.append(backend.get_connection().get_flow_details(flow_detail.uuid))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert [a.name for a in seen[0]] == ["a", "b"]
    backend.close()
    with pytest.raises(NotFoundError):
        backend.get_connection().get_logbook(book.uuid)


# -- files that are not stores are refused and left as they were -------------------------


def _refused(path: Path, opened: Any, error: type[Exception], pattern: str) -> None:
    before = digest(path)
    backend = opened(url_of(path))
    with pytest.raises(error, match=pattern) as caught:
        backend.get_connection()
    assert str(path) in str(caught.value)
    assert "changed" in str(caught.value) or "damaged" in str(caught.value)
    assert digest(path) == before
    # and again: a refused store is refused every time, still without a write
    with pytest.raises(error):
        backend.get_connection()
    assert digest(path) == before


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a database\n" * 100)
    _refused(path, opened, StoreVersionError, "not a SQLite database")


def test_another_programs_database_is_refused_unchanged(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO customers (name) VALUES ('ada')")
    db.commit()
    db.close()
    _refused(path, opened, StoreVersionError, r"another program.*customers.*new file")


def test_a_taskflow_store_is_named_as_such(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "taskflow.db"
    db = sqlite3.connect(path)
    for table in ("logbooks", "flowdetails", "atomdetails", "alembic_version"):
        db.execute(f"CREATE TABLE {table} (uuid VARCHAR(64) PRIMARY KEY)")
    db.commit()
    db.close()
    _refused(path, opened, StoreVersionError, r"TaskFlow store.*cannot read TaskFlow's layout")


def _store_file(path: Path) -> None:
    """A store with one run in it, closed (its WAL folded into the file)."""
    backend = connect(url_of(path))
    backend.get_connection().save_logbook(a_run("a", "b")[0])
    backend.close()


def _set_version(path: Path, value: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE tideflow_meta SET value = ? WHERE name = 'schema_version'", (value,))
    db.close()


def test_a_store_of_a_newer_tideflow_is_refused_unchanged(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "runs.db"
    _store_file(path)
    _set_version(path, "2")
    _refused(
        path, opened, StoreVersionError, r"newer tideflow \(schema version 2.*upgrade tideflow"
    )


def test_a_version_that_is_not_a_number_is_refused(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "runs.db"
    _store_file(path)
    _set_version(path, "one")
    _refused(path, opened, StoreVersionError, r"schema version 'one' is not a number")


def test_a_damaged_file_is_refused_unchanged(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "runs.db"
    _store_file(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(3996)  # the schema page, past the file header
    path.write_bytes(bytes(data))
    _refused(path, opened, StoreError, r"damaged.*backup")


def test_an_empty_file_becomes_a_store(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with opened(url_of(path)).get_connection() as conn:
        conn.validate()


# -- schema versions and migrations --------------------------------------------------------


def _meta_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT value FROM tideflow_meta").fetchone()[0])
    finally:
        db.close()


def test_a_version_0_store_is_migrated_to_this_version(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tideflow_meta (name VARCHAR(64) PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO tideflow_meta VALUES ('schema_version', '0')")
    db.commit()
    db.close()
    with opened(url_of(path)).get_connection() as conn:
        conn.validate()
        conn.save_logbook(a_run("a")[0])
    assert _meta_version(path) == _records.SCHEMA_VERSION


def test_validate_names_a_missing_table_or_an_old_version(tmp_path: Path, opened: Any) -> None:
    path = tmp_path / "runs.db"
    conn = opened(url_of(path)).get_connection()
    conn.validate()
    conn._write("dropping", lambda db: db.execute("DROP TABLE tideflow_atoms"))
    with pytest.raises(StoreError, match=r"damaged: tables \['tideflow_atoms'\] are missing"):
        conn.validate()
    conn._write("version", lambda db: db.execute("UPDATE tideflow_meta SET value = '0'"))
    with pytest.raises(StoreVersionError, match=r"schema version 0.*upgrade\(\)"):
        conn.validate()
    conn.upgrade()  # version 0 to 1 creates what is missing
    conn.validate()


def test_a_later_version_adds_one_migration_step(
    tmp_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runs.db"
    _store_file(path)
    steps: list[int] = []

    def to_v2(db: sqlite3.Connection) -> None:
        steps.append(2)
        db.execute("ALTER TABLE tideflow_flows ADD COLUMN priority INTEGER DEFAULT 0")

    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(sqlite_store._MIGRATIONS, 2, to_v2)
    conn = opened(url_of(path)).get_connection()
    conn.upgrade()  # already done on open: nothing more to do
    assert steps == [2]
    assert _meta_version(path) == 2
    assert len(list(conn.iter_runs())) == 1
    conn.validate()


def _open_and_save(url: str, name: str) -> None:
    backend = connect(url)
    backend.get_connection().save_logbook(a_run("a", name=name)[0])
    backend.close()


def test_processes_creating_one_store_at_once_all_succeed(tmp_path: Path, opened: Any) -> None:
    url = url_of(tmp_path / "new.db")
    children = [CLEAN.Process(target=_open_and_save, args=(url, f"r{i}")) for i in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0] * 4
    runs = opened(url).get_connection().iter_runs()
    assert sorted(f.name for f in runs) == ["r0", "r1", "r2", "r3"]


# -- several processes on one file ----------------------------------------------------------


def _write_runs(url: str, prefix: str, count: int) -> None:
    backend = connect(url)
    with backend.get_connection() as conn:
        for i in range(count):
            book, flow_detail = a_run("a", "b", name=f"{prefix}-{i}")
            conn.save_logbook(book)
            owner = new_owner()
            conn.claim_run(flow_detail.uuid, owner)
            for atom in flow_detail:
                atom.state, atom.results = AtomState.SUCCESS, f"{prefix}-{i}-{atom.name}"
                conn.save_round(flow_detail, [atom], owner=owner)
            flow_detail.state = FlowState.SUCCESS
            conn.save_round(flow_detail, [], owner=owner)
            conn.release_run(flow_detail.uuid, owner)
    backend.close()


def test_two_processes_write_one_file_at_once(tmp_path: Path, opened: Any) -> None:
    url = url_of(tmp_path / "shared.db")
    opened(url).get_connection()  # the schema exists before they start
    children = [CLEAN.Process(target=_write_runs, args=(url, p, 40)) for p in ("p", "q")]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0, 0]
    conn = opened(url).get_connection()
    books = list(conn.get_logbooks())
    assert len(books) == 80
    for book in books:
        (flow_detail,) = book
        assert flow_detail.state == FlowState.SUCCESS
        assert [a.results for a in flow_detail] == [
            f"{flow_detail.name}-a",
            f"{flow_detail.name}-b",
        ]


def _hold_run(url: str, fd_uuid: str, claimed: Any) -> None:
    backend = connect(url)
    backend.get_connection().claim_run(fd_uuid, new_owner())
    claimed.set()
    time.sleep(60)  # until killed


def test_a_run_held_by_another_process_is_refused_until_it_dies(
    tmp_path: Path, opened: Any
) -> None:
    url = url_of(tmp_path / "runs.db")
    conn = opened(url).get_connection()
    book, flow_detail = a_run("a")
    conn.save_logbook(book)
    claimed = CLEAN.Event()
    child = CLEAN.Process(target=_hold_run, args=(url, flow_detail.uuid, claimed))
    child.start()
    try:
        assert claimed.wait(30)
        mine = new_owner()
        with pytest.raises(RunOwnedError, match=rf"process {child.pid} on host .*wait"):
            conn.claim_run(flow_detail.uuid, mine)
        # its rounds are refused too, and write nothing
        flow_detail.state = FlowState.RUNNING
        with pytest.raises(RunOwnedError):
            conn.save_round(flow_detail, [], owner=mine)
        assert conn.get_flow_details(flow_detail.uuid).state == FlowState.PENDING
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
    conn.claim_run(flow_detail.uuid, mine)  # its owner died on this host: stale
    conn.save_round(flow_detail, [], owner=mine)
    assert conn.get_flow_details(flow_detail.uuid).state == FlowState.RUNNING


def _use_inherited(backend: SqliteBackend, parent_db: sqlite3.Connection, name: str) -> None:
    if backend._slot().db is parent_db:
        os._exit(3)  # it would use the parent's connection: SQLite forbids that
    backend.get_connection().save_logbook(a_run("a", name=name)[0])


def test_a_forked_child_opens_its_own_connection(tmp_path: Path, opened: Any) -> None:
    backend = opened(url_of(tmp_path / "runs.db"))
    conn = backend.get_connection()
    conn.save_logbook(a_run("a", name="parent")[0])
    child = FORK.Process(target=_use_inherited, args=(backend, backend._slot().db, "child"))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert sorted(f.name for f in conn.iter_runs()) == ["child", "parent"]


# -- rounds --------------------------------------------------------------------------------


def _stored(conn: Any, flow_detail: FlowDetail) -> tuple[Any, ...]:
    got = conn.get_flow_details(flow_detail.uuid)
    return (got.state, [(a.name, a.state, a.results) for a in got])


def test_a_fenced_round_from_a_non_owner_writes_nothing(tmp_path: Path, opened: Any) -> None:
    conn = opened(url_of(tmp_path / "runs.db")).get_connection()
    book, flow_detail = a_run("a", "b")
    conn.save_logbook(book)
    owner, intruder = new_owner(), new_owner()
    conn.claim_run(flow_detail.uuid, owner)
    before = _stored(conn, flow_detail)
    atom = flow_detail.find_by_name("a")
    assert atom is not None
    atom.state, atom.results = AtomState.SUCCESS, 1
    # atoms only (the flow row unchanged), then with the flow row changed
    with pytest.raises(RunOwnedError, match=r"no longer run by this engine.*nothing"):
        conn.save_round(flow_detail, [atom], owner=intruder)
    flow_detail.state = FlowState.RUNNING
    with pytest.raises(RunOwnedError):
        conn.save_round(flow_detail, [atom], owner=intruder)
    assert _stored(conn, flow_detail) == before
    conn.release_run(flow_detail.uuid, owner)
    with pytest.raises(RunOwnedError, match="released"):
        conn.save_round(flow_detail, [atom], owner=owner)
    assert _stored(conn, flow_detail) == before
    conn.save_round(flow_detail, [atom])  # unfenced
    assert _stored(conn, flow_detail) != before


def test_a_round_of_a_flow_never_stored_writes_nothing(tmp_path: Path, opened: Any) -> None:
    conn = opened(url_of(tmp_path / "runs.db")).get_connection()
    _, flow_detail = a_run("a")
    with pytest.raises(NotFoundError, match="save its log book first"):
        conn.save_round(flow_detail, list(flow_detail))
    with pytest.raises(NotFoundError):
        conn.get_atoms_for_flow(flow_detail.uuid)
    count = conn._read(
        "count", lambda db: db.execute("SELECT count(*) FROM tideflow_atoms").fetchone()[0]
    )
    assert count == 0


def test_rounds_touch_updated_at_when_the_flow_changes_or_once_a_second(
    tmp_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = opened(url_of(tmp_path / "runs.db")).get_connection()
    now = [1000.0]
    monkeypatch.setattr(_records, "time", SimpleNamespace(time=lambda: now[0]))
    book, flow_detail = a_run("a")
    conn.save_logbook(book)
    (atom,) = flow_detail

    def updated_at() -> float:
        read = conn._read(
            "reading",
            lambda db: db.execute(
                "SELECT updated_at FROM tideflow_flows WHERE uuid = ?", (flow_detail.uuid,)
            ).fetchone(),
        )
        return float(read[0])

    now[0] = 1000.5
    atom.state = AtomState.RUNNING
    conn.save_round(flow_detail, [atom])
    assert updated_at() == 1000.0  # only an atom changed, and the row is recent
    flow_detail.meta["progress"] = 0.5
    conn.save_round(flow_detail, [])
    assert updated_at() == 1000.5  # the flow record changed
    now[0] = 1002.0
    conn.save_round(flow_detail, [atom])
    assert updated_at() == 1002.0  # more than a second old


@pytest.mark.parametrize("library", [sqlite3.sqlite_version_info, (3, 34, 1)])
def test_an_atom_record_of_the_same_name_replaces_the_stored_one_in_place(
    tmp_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch, library: tuple[int, ...]
) -> None:
    # SQLite before 3.35 takes one ON CONFLICT clause: the store writes atoms another way
    monkeypatch.setattr(sqlite_store, "_ATOM_WRITES", sqlite_store._atom_writes(library))
    conn = opened(url_of(tmp_path / "runs.db")).get_connection()
    book, flow_detail = a_run("a", "b", "c")
    conn.save_logbook(book)
    fresh = TaskDetail("b")
    fresh.state = AtomState.SUCCESS
    flow_detail.add(fresh)
    conn.save_round(flow_detail, [fresh])
    stored = list(conn.get_flow_details(flow_detail.uuid))
    assert [(a.name, a.uuid, a.state) for a in stored][1] == ("b", fresh.uuid, AtomState.SUCCESS)
    assert [a.name for a in stored] == ["a", "b", "c"]
    fresh.results = "again"
    conn.save_round(flow_detail, [fresh])
    assert [a.results for a in conn.get_atoms_for_flow(flow_detail.uuid)] == [None, "again", None]


# -- listing runs uses the indexes ----------------------------------------------------------


def test_iter_runs_searches_indexes_over_100000_runs(tmp_path: Path, opened: Any) -> None:
    backend = opened(url_of(tmp_path / "runs.db"))
    conn = backend.get_connection()
    states = ("SUCCESS", "RUNNING", "FAILURE", "SUSPENDED")
    rows = [
        (f"uuid-{i:06d}", "book", f"run {i}", states[i % 4], "{}", "{}", float(i), float(i))
        for i in range(100_000)
    ]
    conn._write(
        "filling",
        lambda db: db.executemany(
            "INSERT INTO tideflow_flows (uuid, book_uuid, name, state, meta, injected, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        ),
    )
    db = backend._slot().db
    queries: list[str] = []
    db.set_trace_callback(queries.append)
    try:
        newest = [f.name for f in conn.iter_runs(limit=3)]
        running = [f.name for f in conn.iter_runs(state="RUNNING", limit=2)]
        paged = sum(1 for _ in islice(conn.iter_runs(state=FlowState.FAILURE), 1200))
    finally:
        db.set_trace_callback(None)
    assert newest == ["run 99999", "run 99998", "run 99997"]
    assert running == ["run 99997", "run 99993"]
    assert paged == 1200  # read in pages: the later ones start where the last one ended
    selects = {q for q in queries if "FROM tideflow_flows" in q}
    assert len(selects) >= 4
    for query in selects:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}")]
        text = " | ".join(plan)
        assert "USING INDEX tideflow_flows_" in text, text
        assert "TEMP B-TREE" not in text, text
        for step in plan:
            assert not (step.startswith("SCAN") and "INDEX" not in step), text


# -- faults at the connection seam ----------------------------------------------------------


def _faulty(fail_on: str, message: str) -> tuple[Callable[..., sqlite3.Connection], list[int]]:
    """An ``_open_db`` whose connections raise OperationalError on statements containing
    ``fail_on`` while ``armed[0]`` is true."""
    armed = [0]

    class Faulty(sqlite3.Connection):
        def _check(self, sql: str) -> None:
            if armed[0] and fail_on in sql:
                raise sqlite3.OperationalError(message)

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            self._check(sql)
            return super().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
            self._check(sql)
            return super().executemany(sql, *args)

    def open_db(target: str, busy_timeout: float) -> sqlite3.Connection:
        return sqlite3.connect(
            target,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=Faulty,
        )

    return open_db, armed


@pytest.mark.parametrize(
    ("fail_on", "message", "said"),
    [
        ("INSERT INTO tideflow_atoms", "database or disk is full", "the disk is full"),
        ("COMMIT", "disk I/O error", "I/O error; check the disk"),
    ],
)
def test_a_failing_write_is_a_store_error_and_commits_nothing(
    tmp_path: Path,
    opened: Any,
    monkeypatch: pytest.MonkeyPatch,
    fail_on: str,
    message: str,
    said: str,
) -> None:
    open_db, armed = _faulty(fail_on, message)
    monkeypatch.setattr(sqlite_store, "_open_db", open_db)
    path = tmp_path / "runs.db"
    conn = opened(url_of(path)).get_connection()
    book, flow_detail = a_run("a")
    conn.save_logbook(book)
    before = _stored(conn, flow_detail)
    (atom,) = flow_detail
    atom.state, atom.results = AtomState.SUCCESS, "done"
    flow_detail.state = FlowState.RUNNING
    armed[0] = 1
    with pytest.raises(StoreError, match=rf"runs\.db.*saving a round.*{said}") as caught:
        conn.save_round(flow_detail, [atom])
    assert isinstance(caught.value.cause, sqlite3.OperationalError)
    armed[0] = 0
    assert _stored(conn, flow_detail) == before
    conn.save_round(flow_detail, [atom])  # once the fault is gone, the same round commits
    assert _stored(conn, flow_detail) == (FlowState.RUNNING, [("a", AtomState.SUCCESS, "done")])


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB file system (tmpfs), where mounting one is allowed (root); else skip."""
    where = tmp_path / "tiny"
    where.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"a real full disk needs permission to mount a tmpfs ({made.stderr!r})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_is_a_store_error_and_keeps_what_was_committed(
    tiny_disk: Path, opened: Any
) -> None:
    conn = opened(url_of(tiny_disk / "runs.db")).get_connection()
    book, flow_detail = a_run("a")
    conn.save_logbook(book)
    (atom,) = flow_detail
    committed = None

    def fill() -> None:
        nonlocal committed
        for i in range(1000):
            atom.results = f"{i:04d}" + "x" * 20_000
            conn.save_round(flow_detail, [atom])
            committed = atom.results

    with pytest.raises(StoreError, match=r"tiny/runs\.db.*the disk is full") as caught:
        fill()
    assert isinstance(caught.value.cause, sqlite3.OperationalError)
    assert committed is not None
    assert conn.get_atom_details(atom.uuid).results == committed


def _open_at_once(url: str, barrier: Any) -> None:
    barrier.wait()
    store = connect(url)
    try:
        with store.get_connection() as conn:
            conn.validate()
    finally:
        store.close()


def test_processes_opening_a_new_file_at_once_all_get_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(6)
    procs = [context.Process(target=_open_at_once, args=(url, barrier)) for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * 6
