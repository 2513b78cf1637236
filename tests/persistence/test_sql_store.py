"""The SQL store through SQLAlchemy Core: SQLite always, PostgreSQL and MariaDB when enabled.

Set TIDEFLOW_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)
and TIDEFLOW_TEST_MYSQL_URL (e.g. mysql+pymysql://root@127.0.0.1:3306/test) to run the
server tests. Each test module run creates a database of its own beside the one named
(dropped at the end), so these tests never touch other tests' records and may run
while other suites use the named database.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")

import tideflow  # noqa: E402
from tideflow import persistence  # noqa: E402
from tideflow.errors import (  # noqa: E402
    NotFoundError,
    RunOwnedError,
    StoreError,
    StoreVersionError,
    UnstorableValueError,
)
from tideflow.failure import Failure  # noqa: E402
from tideflow.persistence import sql  # noqa: E402
from tideflow.persistence._records import SCHEMA_VERSION, new_owner  # noqa: E402
from tideflow.persistence.models import (  # noqa: E402
    AtomDetail,
    FlowDetail,
    LogBook,
    RetryDetail,
    TaskDetail,
)
from tideflow.persistence.sql import SqlBackend  # noqa: E402
from tideflow.states import AtomState, FlowState, Intention  # noqa: E402

ENV = {"postgresql": "TIDEFLOW_TEST_POSTGRES_URL", "mysql": "TIDEFLOW_TEST_MYSQL_URL"}
SRC = str(Path(__file__).resolve().parents[2] / "src")


# -- where the records go ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mysql"])
def kind(request):
    name = request.param
    if name != "sqlite" and not os.environ.get(ENV[name]):
        pytest.skip(f"{name} tests need {ENV[name]} set to a database URL (see module doc)")
    return name


@pytest.fixture(scope="module")
def server_url(kind):
    """A database of this module's own on the server (None for SQLite)."""
    if kind == "sqlite":
        yield None
        return
    given = sa.make_url(os.environ[ENV[kind]])
    name = f"tideflow_sqltest_{os.getpid()}_{os.urandom(3).hex()}"
    admin = sa.create_engine(given, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield given.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")
        with admin.connect() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()


@pytest.fixture
def url(kind, server_url, tmp_path):
    return server_url or f"sqlite+pysqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def backend(url):
    store = SqlBackend(url, pool_size=2)
    with store.get_connection() as conn:
        conn.clear_all()
    yield store
    store.close()


@pytest.fixture
def conn(backend):
    with backend.get_connection() as connection:
        yield connection


def admin_engine(url):
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def failure_of(exc):
    try:
        raise exc
    except Exception as caught:
        return Failure.from_exception(caught)


def full_book():
    """A log book with one flow holding every kind of record and value."""
    book = LogBook("book", "b-1")
    book.meta = {"owner": "tests", "n": 1}
    flow = FlowDetail("flow", "f-1")
    flow.state = FlowState.RUNNING
    flow.meta = {"progress": 0.5}
    flow.injected = {"when": datetime.datetime(2024, 5, 1, 12, 30), "pair": (1, 2), "k": {3: "x"}}
    done = TaskDetail("done", "a-1")
    done.put(AtomState.SUCCESS, {"total": Decimal("1.50"), "raw": b"\x00\xff", "t": (1, [2])})
    done.meta = {"progress": 1.0}
    done.version = (2, 1)
    failed = TaskDetail("failed", "a-2")
    failed.put(AtomState.FAILURE, failure_of(ValueError("bad", 3)))
    failed.intention = Intention.REVERT
    failed.revert_results = ["undone"]
    failed.revert_failure = failure_of(RuntimeError("revert broke"))
    retry = RetryDetail("retry", "a-3")
    retry.state = AtomState.RUNNING
    retry.results = 2
    retry.history = [(1, {"failed": failure_of(KeyError("k"))})]
    retry.decision = "RETRY"
    retry.version = None
    for atom in (retry, done, failed):
        flow.add(atom)
    book.add(flow)
    return book


def stored(conn, fd_uuid):
    """The flow record as stored, as data."""
    return conn.get_flow_details(fd_uuid).to_dict()


# -- records ----------------------------------------------------------------------------


def test_every_record_kind_round_trips(conn):
    book = full_book()
    flow = book.find("f-1")
    expected = flow.to_dict()
    saved = conn.save_logbook(book)
    assert saved is not book
    assert (saved.uuid, saved.name, saved.meta) == ("b-1", "book", book.meta)
    assert (saved.created_at, saved.updated_at) == (book.created_at, book.updated_at)
    for loaded in (saved.find("f-1"), conn.get_flow_details("f-1")):
        assert loaded.to_dict() == expected
        assert [a.name for a in loaded] == ["retry", "done", "failed"]
        assert [type(a) for a in loaded] == [RetryDetail, TaskDetail, TaskDetail]
    atom = conn.get_atom_details("a-1")
    assert atom.results == {"total": Decimal("1.50"), "raw": b"\x00\xff", "t": (1, [2])}
    assert atom.version == (2, 1)
    assert conn.get_atom_details("a-3").history[0][1]["failed"].check(KeyError)
    assert [a.to_dict() for a in conn.get_atoms_for_flow("f-1")] == expected["atoms"]
    again = conn.get_logbook("b-1")
    assert again.updated_at == book.updated_at
    assert [b.uuid for b in conn.get_logbooks()] == ["b-1"]


def test_reads_are_copies_and_lazy_reads_hold_no_atoms(conn):
    conn.save_logbook(full_book())
    first = conn.get_flow_details("f-1")
    first.find_by_name("done").results = "changed"
    assert conn.get_atom_details("a-1").results != "changed"
    assert len(conn.get_flow_details("f-1", lazy=True)) == 0
    assert [len(f) for f in conn.get_logbook("b-1", lazy=True)] == [0]
    assert [len(f) for f in conn.get_flows_for_book("b-1")] == [3]


def test_updates_write_existing_records_and_refuse_unknown_ones(conn):
    book = full_book()
    conn.save_logbook(book)
    flow = book.find("f-1")
    flow.state = FlowState.SUCCESS
    flow.add(TaskDetail("late", "a-4"))
    assert [a.name for a in conn.update_flow_details(flow)][-1] == "late"
    assert conn.get_flow_details("f-1").state == FlowState.SUCCESS
    done = flow.find("a-1")
    done.results = 42
    assert conn.update_atom_details(done).results == 42
    assert conn.get_atom_details("a-1").results == 42
    with pytest.raises(NotFoundError, match="'nope'"):
        conn.update_atom_details(TaskDetail("x", "nope"))
    with pytest.raises(NotFoundError, match=r"'f-new'.*save_logbook"):
        conn.update_flow_details(FlowDetail("new", "f-new"))
    for read in (conn.get_logbook, conn.get_flow_details, conn.get_atom_details):
        with pytest.raises(NotFoundError, match=r"'missing' in the store"):
            read("missing")
    with pytest.raises(NotFoundError):
        conn.get_atoms_for_flow("missing")
    with pytest.raises(NotFoundError):
        conn.destroy_logbook("missing")


def test_an_atom_replaced_under_its_name_replaces_its_row(conn):
    book = full_book()
    conn.save_logbook(book)
    flow = book.find("f-1")
    flow.add(TaskDetail("done", "a-1-new"))  # same name, new record
    conn.save_round(flow, [flow.find_by_name("done")])
    names = [(a.name, a.uuid) for a in conn.get_flow_details("f-1")]
    assert names == [("retry", "a-3"), ("done", "a-1-new"), ("failed", "a-2")]
    with pytest.raises(NotFoundError):
        conn.get_atom_details("a-1")


def test_atom_names_are_case_sensitive(conn):
    book = full_book()
    flow = book.find("f-1")
    flow.add(TaskDetail("Done", "a-9"))
    conn.save_logbook(book)
    assert {a.name for a in conn.get_flow_details("f-1")} == {"retry", "done", "failed", "Done"}


def test_destroy_and_clear_delete_records(conn):
    conn.save_logbook(full_book())
    other = LogBook("other", "b-2")
    other.add(FlowDetail("g", "f-2"))
    conn.save_logbook(other)
    conn.destroy_logbook("b-1")
    assert [b.uuid for b in conn.get_logbooks()] == ["b-2"]
    for read, uuid in ((conn.get_flow_details, "f-1"), (conn.get_atom_details, "a-1")):
        with pytest.raises(NotFoundError):
            read(uuid)
    conn.clear_all()
    assert conn.get_logbooks() == []
    assert list(conn.iter_runs()) == []


# -- rounds and owners -----------------------------------------------------------------


def test_save_round_is_fenced_by_the_owner(conn):
    book = full_book()
    conn.save_logbook(book)
    flow = book.find("f-1")
    mine, theirs = new_owner(), "elsewhere:1:1"
    conn.claim_run("f-1", mine)
    conn.claim_run("f-1", mine)  # again: still mine
    before = stored(conn, "f-1")
    flow.state = FlowState.SUCCESS
    done = flow.find("a-1")
    done.results = "fenced"
    with pytest.raises(RunOwnedError, match="no longer run by this engine"):
        conn.save_round(flow, [done], owner=theirs)
    assert stored(conn, "f-1") == before
    conn.save_round(flow, [done], owner=mine)
    assert conn.get_atom_details("a-1").results == "fenced"
    assert conn.get_flow_details("f-1").state == FlowState.SUCCESS
    # saving the book again keeps the claim: only claims and releases write the owner
    conn.save_logbook(book)
    with pytest.raises(RunOwnedError, match=f"process {os.getpid()}"):
        conn.claim_run("f-1", new_owner())
    conn.release_run("f-1", theirs)  # not the owner: nothing happens
    with pytest.raises(RunOwnedError):
        conn.claim_run("f-1", theirs)
    conn.release_run("f-1", mine)
    with pytest.raises(RunOwnedError, match="no longer run"):
        conn.save_round(flow, [done], owner=mine)
    conn.claim_run("f-1", theirs)


def test_save_round_of_a_flow_never_saved_is_not_found(conn):
    flow = FlowDetail("f", "f-9")
    flow.add(TaskDetail("t", "t-9"))
    with pytest.raises(NotFoundError, match="save_logbook"):
        conn.save_round(flow, list(flow))
    with pytest.raises(NotFoundError):
        conn.get_atom_details("t-9")
    with pytest.raises(NotFoundError):
        conn.claim_run("f-9", new_owner())


def test_save_round_keeps_book_created_at_and_adds_new_atoms(conn):
    book = full_book()
    conn.save_logbook(book)
    flows = sa.Table("tideflow_flows", sa.MetaData(), autoload_with=conn.backend._engine)
    with conn.backend._engine.connect() as raw:
        before = raw.execute(sa.select(flows).where(flows.c.uuid == "f-1")).mappings().one()
    flow = book.find("f-1")
    new = TaskDetail("new", "a-5")
    flow.add(new)
    conn.save_round(flow, [new])
    with conn.backend._engine.connect() as raw:
        after = raw.execute(sa.select(flows).where(flows.c.uuid == "f-1")).mappings().one()
    assert (after["book_uuid"], after["created_at"]) == (before["book_uuid"], before["created_at"])
    assert after["updated_at"] >= before["updated_at"]
    assert [a.name for a in conn.get_flow_details("f-1")][-1] == "new"


def test_an_unstorable_value_writes_nothing_of_the_round(conn):
    book = full_book()
    conn.save_logbook(book)
    before = stored(conn, "f-1")
    flow = book.find("f-1")
    flow.state = FlowState.SUCCESS
    good, bad = flow.find("a-1"), flow.find("a-2")
    good.results = "would be written"
    bad.results = object()
    with pytest.raises(UnstorableValueError) as caught:
        conn.save_round(flow, [good, bad])
    assert caught.value.atom == "failed"
    assert stored(conn, "f-1") == before


CHILD_CLAIMS = textwrap.dedent(
    """
    import sys, time
    from tideflow.persistence.sql import SqlBackend
    from tideflow.persistence._records import new_owner
    conn = SqlBackend(sys.argv[1]).get_connection()
    conn.claim_run(sys.argv[2], new_owner())
    print("claimed", flush=True)
    time.sleep(120)
    """
)


def test_a_run_owned_by_a_killed_process_can_be_claimed(conn, url):
    conn.save_logbook(full_book())
    env = {**os.environ, "PYTHONPATH": SRC}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_CLAIMS, url, "f-1"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout.readline().strip() == b"claimed"
        with pytest.raises(RunOwnedError, match=f"process {child.pid} on host .*wait for it"):
            conn.claim_run("f-1", new_owner())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    mine = new_owner()
    conn.claim_run("f-1", mine)  # the dead child's claim is stale
    conn.save_round(conn.get_flow_details("f-1"), [], owner=mine)


# -- faults -----------------------------------------------------------------------------


def server_kill(kind, url, dbapi_connection):
    """End ``dbapi_connection`` from the server side (SQLite: close it under the store)."""
    if kind == "sqlite":
        dbapi_connection.close()
        return
    engine = admin_engine(url)
    try:
        with engine.connect() as admin:
            if kind == "postgresql":
                pid = dbapi_connection.info.backend_pid
                admin.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            else:
                admin.execute(sa.text(f"KILL {int(dbapi_connection.thread_id())}"))
    finally:
        engine.dispose()


def test_a_connection_dropped_between_calls_is_replaced(kind, url):
    store = SqlBackend(url, pool_size=1, max_overflow=0)
    try:
        with store.get_connection() as conn:
            conn.clear_all()
            conn.save_logbook(full_book())
            with store._engine.connect() as raw:  # the pool's one connection
                dbapi = raw.connection.dbapi_connection
            server_kill(kind, url, dbapi)
            assert conn.get_flow_details("f-1").name == "flow"
            with store._engine.connect() as raw:
                assert raw.connection.dbapi_connection is not dbapi
    finally:
        store.close()


def a_round_to_write(conn):
    """A stored flow record, changed (flow SUCCESS, atom a-1's result "half") but not
    yet written: the flow, the atom, and the record as stored before."""
    book = full_book()
    conn.save_logbook(book)
    before = stored(conn, "f-1")
    flow = book.find("f-1")
    flow.state = FlowState.SUCCESS
    done = flow.find("a-1")
    done.results = "half"
    return flow, done, before


def test_a_connection_killed_inside_save_round_writes_nothing(kind, url, backend, conn):
    if backend._direct is not None:
        pytest.skip("PostgreSQL with psycopg sends a round as one statement: see the next test")
    flow, done, before = a_round_to_write(conn)
    armed = []

    @sa.event.listens_for(backend._engine, "before_cursor_execute")
    def kill_before_the_atoms(raw, cursor, statement, parameters, context, executemany):
        if armed and statement.lstrip().upper().startswith("INSERT INTO TIDEFLOW_ATOMS"):
            armed.clear()
            server_kill(kind, url, raw.connection.dbapi_connection)

    armed.append(True)
    with pytest.raises(StoreError, match=r"not committed.*can be resumed") as caught:
        conn.save_round(flow, [done])
    assert backend.shown in str(caught.value)
    assert caught.value.__cause__ is not None
    assert not armed, "the kill was not reached"
    assert stored(conn, "f-1") == before  # the flow row's update was rolled back too
    conn.save_round(flow, [done])  # the store works on: a new connection
    assert conn.get_atom_details("a-1").results == "half"


def test_a_round_sent_as_one_statement_and_killed_on_the_server_writes_nothing(
    kind, url, backend, conn
):
    """PostgreSQL's direct path: the round's UPDATE and upsert are one statement, so a
    backend ended while it runs (here: blocked behind a lock) commits none of it."""
    if backend._direct is None:
        pytest.skip("a round is one statement only on PostgreSQL with psycopg 3")
    flow, done, before = a_round_to_write(conn)
    import psycopg

    pid = backend._direct._conn().info.backend_pid
    dsn = backend._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as locker:
        locker.execute("LOCK TABLE tideflow_atoms IN ACCESS EXCLUSIVE MODE")  # the round waits

        def kill_when_blocked() -> None:
            with psycopg.connect(dsn, autocommit=True) as side:
                blocked = (
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
                )
                while not side.execute(blocked, (pid,)).fetchall():
                    time.sleep(0.01)
                side.execute("SELECT pg_terminate_backend(%s)", (pid,))

        killer = threading.Thread(target=kill_when_blocked)
        killer.start()
        with pytest.raises(StoreError, match=r"lost the connection.*can be resumed") as caught:
            conn.save_round(flow, [done])
        killer.join()
        locker.rollback()
    assert backend.shown in str(caught.value)
    assert stored(conn, "f-1") == before  # the flow row's update was not committed either
    conn.save_round(flow, [done])  # the store works on: a new connection
    assert conn.get_atom_details("a-1").results == "half"
    assert backend._direct._conn().info.backend_pid != pid


def test_direct_connections_are_bounded_like_the_pool_and_closed_with_their_threads(kind, url):
    store = SqlBackend(url, pool_size=1, max_overflow=1)
    if store._direct is None:
        store.close()
        pytest.skip("the direct path is PostgreSQL's with psycopg 3")
    try:
        with store.get_connection() as conn:
            book = full_book()
            conn.save_logbook(book)
        flow = book.find("f-1")
        done = flow.find("a-1")
        gate = threading.Barrier(4)
        errors: list[BaseException] = []

        def save(n: int) -> None:
            try:
                with store.get_connection() as mine:
                    gate.wait(10)  # four threads at once, two connections allowed
                    for i in range(5):
                        done.results = f"t{n}-{i}"
                        mine.save_round(flow, [done])
                        assert store._direct.held() <= 2
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        with store.get_connection() as conn:
            assert conn.get_atom_details("a-1").results.endswith("-4")  # every thread's last
            # the four threads have ended: the next connection closes theirs
            conn.save_round(flow, [done])
            assert store._direct.held() == 1
    finally:
        store.close()
    assert store._direct.held() == 0


def test_a_forked_child_opens_its_own_direct_connection_and_leaves_the_parents(backend, conn):
    if backend._direct is None:
        pytest.skip("the direct path is PostgreSQL's with psycopg 3")
    book = full_book()
    conn.save_logbook(book)
    flow = book.find("f-1")
    done = flow.find("a-1")
    conn.save_round(flow, [done])
    pid = backend._direct._conn().info.backend_pid
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit code is the assertion
        code = 1
        try:
            done.results = "child"
            conn.save_round(flow, [done])
            code = 0 if backend._direct._conn().info.backend_pid != pid else 2
            backend._direct.close()  # forgets the parent's connection, closes its own
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert conn.get_atom_details("a-1").results == "child"
    done.results = "parent"
    conn.save_round(flow, [done])  # the parent's session was not ended by the child
    assert backend._direct._conn().info.backend_pid == pid
    assert conn.get_atom_details("a-1").results == "parent"


def test_echo_shows_every_statement_of_a_run(kind, url, caplog):
    store = SqlBackend(url, echo=True)
    try:
        assert store._direct is None  # no statement bypasses SQLAlchemy's log
        with caplog.at_level(logging.INFO, "sqlalchemy.engine"):
            tideflow.run(tideflow.LinearFlow("echoed").add(_Echo("one")), backend=store)
        assert "UPDATE tideflow_flows" in caplog.text
        assert "INSERT INTO tideflow_atoms" in caplog.text
    finally:
        store.close()


class _Echo(tideflow.Task):
    def execute(self) -> int:
        return 1


def test_a_new_record_claimed_with_its_book_is_created_owned_once(backend, conn):
    """A job's first run: the record (no atoms yet) and its book made under the claim
    (on PostgreSQL one statement); a second claimant with the same book finds it held."""
    record = FlowDetail("job-run", "f-new")
    book = LogBook("job book", "b-new")
    book.add(record)
    first = new_owner(("job-key", 1))
    conn.claim_run("f-new", first, book)
    stored_book = conn.get_logbook("b-new")
    assert stored_book.name == "job book"
    assert [f.uuid for f in stored_book] == ["f-new"]
    assert len(conn.get_flow_details("f-new")) == 0
    engine = admin_engine(backend.url)
    try:
        with engine.connect() as raw:
            owner = raw.execute(sa.text("SELECT owner FROM tideflow_flows WHERE uuid = 'f-new'"))
            assert owner.scalar() == first
    finally:
        engine.dispose()
    other = LogBook("another book", "b-other")
    other.add(FlowDetail("job-run", "f-new"))
    with pytest.raises(RunOwnedError, match="f-new"):
        conn.claim_run("f-new", new_owner(("job-key", 0)), other)  # a stale token
    assert [b.uuid for b in conn.get_logbooks()] == ["b-new"]  # its book was not written
    conn.claim_run("f-new", new_owner(("job-key", 2)), other)  # a newer token takes over
    assert conn.get_logbook("b-new").name == "job book"


def _flow_column(backend, fd_uuid, column):
    """One column of a flow row, read past the store (owner and updated_at are not part
    of a record as the store returns it)."""
    engine = admin_engine(backend.url)
    try:
        with engine.connect() as raw:
            found = raw.execute(
                sa.text(f"SELECT {column} FROM tideflow_flows WHERE uuid = :u"), {"u": fd_uuid}
            )
            return found.scalar()
    finally:
        engine.dispose()


def _owner_column(backend, fd_uuid):
    return _flow_column(backend, fd_uuid, "owner")


def _first_round(name, fd_uuid, book_name, book_uuid, atom_uuid):
    """A job's run record, not stored yet, in a book of its own: RUNNING, with one atom
    "a" RUNNING (what its first round writes)."""
    record = FlowDetail(name, fd_uuid)
    book = LogBook(book_name, book_uuid)
    book.add(record)
    record.state = FlowState.RUNNING
    atom = TaskDetail("a", atom_uuid)
    atom.put(AtomState.RUNNING, None)
    record.add(atom)
    return record, book, atom


def test_a_first_round_creates_its_record_owned_with_its_book(backend, conn):
    """save_round(create=book): a job's first round makes the record, owned, with its
    book and atoms (on PostgreSQL in the round's one statement)."""
    conn.get_logbooks()  # the schema is checked: the direct path is open
    record, book, first = _first_round("job-run", "f-c1", "job book", "b-c1", "a-c1")
    owner = new_owner(("job-c", 1))
    conn.save_round(record, [first], owner=owner, create=book)
    got = conn.get_flow_details("f-c1")
    assert got.state == FlowState.RUNNING
    assert [(d.name, d.state) for d in got] == [("a", AtomState.RUNNING)]
    assert [f.uuid for f in conn.get_logbook("b-c1")] == ["f-c1"]
    assert _owner_column(backend, "f-c1") == owner
    with pytest.raises(RunOwnedError):  # a live owner holds it
        conn.claim_run("f-c1", new_owner())
    # the same call again (the record exists, still ours): a plain fenced round
    first.put(AtomState.SUCCESS, 5)
    record.state = FlowState.SUCCESS
    conn.save_round(record, [first], owner=owner, create=book)
    assert conn.get_atom_details("a-c1").results == 5
    assert conn.get_flow_details("f-c1").state == FlowState.SUCCESS
    # a first round without atoms
    bare = FlowDetail("bare", "f-c2")
    bare_book = LogBook("bare book", "b-c2")
    bare_book.add(bare)
    conn.save_round(bare, [], owner=owner, create=bare_book)
    assert len(conn.get_flow_details("f-c2")) == 0
    assert conn.get_logbook("b-c2").name == "bare book"


def test_a_first_round_finding_its_record_made_by_a_newer_claim_writes_nothing(backend, conn):
    """A stale first claimant (paused past its lease) whose job's next claimant created
    the record first: its creating round is refused, and changes nothing."""
    conn.get_logbooks()
    newer = new_owner(("job-c3", 2))
    theirs = FlowDetail("job-run", "f-c3")
    their_book = LogBook("their book", "b-c3")
    their_book.add(theirs)
    conn.claim_run("f-c3", newer, their_book)
    before = stored(conn, "f-c3")
    mine, my_book, atom = _first_round("job-run", "f-c3", "my book", "b-c3-mine", "a-c3")
    with pytest.raises(RunOwnedError, match="f-c3"):
        conn.save_round(mine, [atom], owner=new_owner(("job-c3", 1)), create=my_book)
    assert stored(conn, "f-c3") == before
    assert _owner_column(backend, "f-c3") == newer
    with pytest.raises(NotFoundError):
        conn.get_logbook("b-c3-mine")


def _updated_at(backend, fd_uuid):
    return _flow_column(backend, fd_uuid, "updated_at")


def test_a_round_of_atoms_only_is_fenced_and_keeps_the_flow_row_fresh_enough(
    kind, backend, conn, monkeypatch
):
    """flow_changed=False: the atoms are written under the fence on every kind; on
    PostgreSQL's direct path the flow row is then only locked, not rewritten, unless
    it was last rewritten TOUCH_EVERY s ago."""
    conn.get_logbooks()
    record, book, atom = _first_round("run", "f-t1", "b", "b-t1", "a-t1")
    owner = new_owner(("job-t", 1))
    conn.save_round(record, [atom], owner=owner, create=book)
    first = _updated_at(backend, "f-t1")
    atom.put(AtomState.SUCCESS, "one")
    conn.save_round(record, [atom], owner=owner, flow_changed=False)
    assert conn.get_atom_details("a-t1").results == "one"
    if backend._direct is not None:
        assert _updated_at(backend, "f-t1") == first  # locked, not rewritten
    with pytest.raises(RunOwnedError, match="no longer run by this engine"):
        conn.save_round(record, [atom], owner=new_owner(("job-t", 0)), flow_changed=False)
    # a newer claim takes the record over: the old owner's atoms-only round is refused
    conn.claim_run("f-t1", new_owner(("job-t", 2)))
    atom.put(AtomState.SUCCESS, "stale")
    with pytest.raises(RunOwnedError, match="no longer run by this engine"):
        conn.save_round(record, [atom], owner=owner, flow_changed=False)
    assert conn.get_atom_details("a-t1").results == "one"
    # past the touch interval the row is rewritten (its updated_at moves on)
    newest = new_owner(("job-t", 3))
    conn.claim_run("f-t1", newest)
    monkeypatch.setattr(sql, "TOUCH_EVERY", 0.0)
    atom.put(AtomState.SUCCESS, "two")
    conn.save_round(record, [atom], owner=newest, flow_changed=False)
    assert conn.get_atom_details("a-t1").results == "two"
    assert _updated_at(backend, "f-t1") > first


def test_a_round_of_thousands_of_atoms_is_written_whole(conn):
    flow = FlowDetail("wide", "f-wide")
    book = LogBook("wide book", "b-wide")
    book.add(flow)
    conn.save_logbook(book)
    details = []
    for n in range(3000):
        detail = TaskDetail(f"t{n}", f"a-wide-{n}")
        detail.put(AtomState.SUCCESS, {"n": n} if n % 2 else None)
        flow.add(detail)
        details.append(detail)
    flow.state = FlowState.SUCCESS
    conn.save_round(flow, details)
    got = conn.get_flow_details("f-wide")
    assert got.state == FlowState.SUCCESS
    assert len(got) == 3000
    assert [(d.name, d.results) for d in got][2999] == ("t2999", {"n": 2999})
    assert got.find("a-wide-10").results is None


def test_a_newer_schema_is_refused_and_left_unchanged(kind, url, backend, conn):
    conn.save_logbook(full_book())
    engine = admin_engine(url)
    try:
        with engine.connect() as raw:
            raw.execute(
                sa.text("UPDATE tideflow_meta SET value = :v WHERE name = 'schema_version'"),
                {"v": str(SCHEMA_VERSION + 1)},
            )
            raw.execute(sa.text("DROP TABLE tideflow_atoms"))  # as if v2 had renamed it
        newer = SqlBackend(url)
        try:
            with pytest.raises(StoreVersionError, match="upgrade tideflow") as caught:
                newer.get_connection().get_logbooks()
            assert f"version {SCHEMA_VERSION + 1}" in str(caught.value)
            assert newer.shown in str(caught.value)
            with pytest.raises(StoreVersionError):
                newer.get_connection().upgrade()
        finally:
            newer.close()
        assert not sa.inspect(engine).has_table("tideflow_atoms")
        with engine.connect() as raw:
            value = raw.execute(sa.text("SELECT value FROM tideflow_meta")).scalar()
        assert value == str(SCHEMA_VERSION + 1)
    finally:
        with engine.connect() as raw:
            raw.execute(sa.text("DROP TABLE IF EXISTS tideflow_meta"))
        engine.dispose()
    conn.upgrade()  # a store of this version again: the missing table is back, empty
    assert [len(f) for f in conn.get_flows_for_book("b-1")] == [0]


def test_tables_are_created_by_several_processes_at_once(kind, url, backend):
    engine = admin_engine(url)
    with engine.connect() as raw:
        for table in ("tideflow_atoms", "tideflow_flows", "tideflow_logbooks", "tideflow_meta"):
            raw.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    script = textwrap.dedent(
        """
        import sys, time
        from tideflow.persistence.sql import SqlBackend
        store = SqlBackend(sys.argv[1])
        while time.time() < float(sys.argv[2]):
            time.sleep(0.001)
        store.get_connection().upgrade()
        store.get_connection().validate()
        """
    )
    start = str(time.time() + 1.5)
    env = {**os.environ, "PYTHONPATH": SRC}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, start], env=env, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    errors = [child.communicate(timeout=60)[1].decode() for child in children]
    assert [child.returncode for child in children] == [0] * 4, errors
    with engine.connect() as raw:
        rows = raw.execute(sa.text("SELECT name, value FROM tideflow_meta")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("schema_version", str(SCHEMA_VERSION))]


def test_a_file_that_is_not_a_database_is_refused_unchanged(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    store = SqlBackend(f"sqlite+pysqlite:///{path}")
    with pytest.raises(StoreVersionError, match=r"notes\.db is not a tideflow store"):
        store.get_connection().get_logbooks()
    store.close()
    assert path.read_bytes() == b"these are my notes, not a database" * 100


@pytest.mark.parametrize(
    ("module", "unreachable"),
    [
        ("psycopg", "postgresql+psycopg://tester:sekret@127.0.0.1:1/test"),
        ("pymysql", "mysql+pymysql://tester:sekret@127.0.0.1:1/test"),
    ],
)
def test_an_unreachable_server_fails_quickly_and_clearly(module, unreachable):
    pytest.importorskip(module)
    store = SqlBackend(unreachable, connect_timeout=3)
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"cannot connect to the database server at 127\.0\.0\.1:1"
    ):
        store.get_connection().get_logbooks()
    assert time.monotonic() - started < 5
    with pytest.raises(StoreError, match="server is running") as caught:
        store.get_connection().save_round(FlowDetail("f"), [])
    assert "sekret" not in str(caught.value)
    assert "***" in str(caught.value)
    store.close()


# -- listing runs ----------------------------------------------------------------------


def test_iter_runs_newest_first_by_state_and_limit(conn, monkeypatch):
    book = LogBook("many", "b-m")
    for i in range(12):
        flow = FlowDetail(f"f{i}", f"f-{i:02}")
        flow.state = FlowState.SUCCESS if i % 3 == 0 else FlowState.RUNNING
        book.add(flow)
    conn.save_logbook(book)
    engine = admin_engine(conn.backend.url)
    with engine.connect() as raw:  # many runs share one time: paging must not lose them
        raw.execute(sa.text("UPDATE tideflow_flows SET updated_at = 100.0 WHERE uuid < 'f-08'"))
        raw.execute(sa.text("UPDATE tideflow_flows SET updated_at = 201.0 WHERE uuid >= 'f-08'"))
    engine.dispose()
    monkeypatch.setattr(sql, "_PAGE", 3)
    runs = list(conn.iter_runs())
    assert sorted(r.uuid for r in runs) == [f"f-{i:02}" for i in range(12)]
    assert {r.uuid for r in runs[:4]} == {"f-08", "f-09", "f-10", "f-11"}
    assert all(len(r) == 0 for r in runs)
    assert {r.uuid for r in conn.iter_runs(state="SUCCESS")} == {"f-00", "f-03", "f-06", "f-09"}
    assert len(list(conn.iter_runs(limit=5))) == 5
    assert len(list(conn.iter_runs(state="RUNNING", limit=100))) == 8
    assert list(conn.iter_runs(limit=0)) == []


def explain(kind, raw, statement, parameters):
    if kind == "sqlite":
        rows = raw.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "\n".join(str(r[-1]) for r in rows)
    if kind == "postgresql":
        return "\n".join(r[0] for r in raw.exec_driver_sql(f"EXPLAIN {statement}", parameters))
    result = raw.exec_driver_sql(f"EXPLAIN {statement}", parameters).mappings().all()
    return "\n".join(f"key={r['key']} type={r['type']} extra={r['Extra']}" for r in result)


@pytest.mark.slow
def test_iter_runs_reads_through_an_index(kind, backend, conn):
    book = LogBook("many", "b-big")
    for i in range(10_500):
        flow = FlowDetail(f"f{i}", f"f-{i:05}")
        flow.state = (FlowState.SUCCESS, FlowState.FAILURE, FlowState.RUNNING)[i % 3]
        book.add(flow)
    conn.save_logbook(book)
    with backend._engine.connect() as raw:
        raw.exec_driver_sql("ANALYZE" if kind != "mysql" else "ANALYZE TABLE tideflow_flows")
        raw.commit()
    seen = []

    @sa.event.listens_for(backend._engine, "before_cursor_execute")
    def remember(raw, cursor, statement, parameters, context, executemany):
        if "tideflow_flows" in statement and "ORDER BY" in statement:
            seen.append((statement, parameters))

    assert len(list(conn.iter_runs(limit=20))) == 20
    assert len(list(conn.iter_runs(state="FAILURE", limit=20))) == 20
    sa.event.remove(backend._engine, "before_cursor_execute", remember)
    assert len(seen) == 2
    plans = []
    with backend._engine.connect() as raw:
        for statement, parameters in seen:
            plans.append(explain(kind, raw, statement, parameters))
    everything, by_state = plans
    if kind == "sqlite":
        assert "USING INDEX ix_tideflow_flows_updated_at" in everything
        assert "USING INDEX ix_tideflow_flows_state_updated_at" in by_state
        assert "TEMP B-TREE" not in everything + by_state
    elif kind == "postgresql":
        assert "Index Scan Backward using ix_tideflow_flows_updated_at" in everything
        # by state: either index serves (the planner picks by how many rows match)
        assert "Index Scan Backward using ix_tideflow_flows_" in by_state
        assert "Seq Scan" not in everything + by_state
        assert "Sort" not in everything + by_state
    else:
        assert "key=ix_tideflow_flows_updated_at type=index" in everything
        assert "key=ix_tideflow_flows_state_updated_at" in by_state
        assert "filesort" not in everything + by_state


@pytest.mark.slow
def test_a_flows_atoms_are_read_through_the_unique_index_alone(kind, backend, conn):
    # one index on the atoms besides their key: (flow, name), which also finds a flow's
    # atoms; they come back in the record's order, not the names'
    book = LogBook("many", "b-atoms")
    for i in range(400):
        flow = FlowDetail(f"f{i}", f"f-{i:03}")
        for name in ("c", "a", "d", "b"):
            flow.add(TaskDetail(name, f"a-{i:03}-{name}"))
        book.add(flow)
    conn.save_logbook(book)
    with backend._engine.connect() as raw:
        raw.exec_driver_sql("ANALYZE" if kind != "mysql" else "ANALYZE TABLE tideflow_atoms")
        raw.commit()
        indexes = {i["name"] for i in sa.inspect(raw).get_indexes("tideflow_atoms")}
    assert "ix_tideflow_atoms_flow_position" not in indexes
    seen = []

    @sa.event.listens_for(backend._engine, "before_cursor_execute")
    def remember(raw, cursor, statement, parameters, context, executemany):
        if "FROM tideflow_atoms" in statement:
            seen.append((statement, parameters))

    loaded = conn.get_flow_details("f-123")
    sa.event.remove(backend._engine, "before_cursor_execute", remember)
    assert [a.name for a in loaded] == ["c", "a", "d", "b"]
    assert len(seen) == 1
    with backend._engine.connect() as raw:
        plan = explain(kind, raw, *seen[0])
    if kind == "sqlite":
        assert "USING INDEX sqlite_autoindex_tideflow_atoms" in plan, plan
    elif kind == "postgresql":
        assert "uq_tideflow_atoms_flow_name" in plan, plan
        assert "Seq Scan" not in plan, plan
    else:
        assert "key=uq_tideflow_atoms_flow_name" in plan, plan


# -- options and drivers ---------------------------------------------------------------


def test_options_from_config_are_checked(tmp_path):
    url = f"sqlite+pysqlite:///{tmp_path / 'r.db'}"
    store = persistence.fetch({"connection": url, "codec": "pickle", "pool_size": 2})
    assert isinstance(store, SqlBackend)
    assert store.codec.name == "pickle"
    assert store.shares_records is False
    assert store.url == url
    store.close()
    store.close()  # idempotent
    with pytest.raises(TypeError, match=r"'pool_sise'.*did you mean 'pool_size'.*'echo'"):
        SqlBackend.from_config({"connection": url, "pool_sise": 3})
    with pytest.raises(TypeError, match="pool_size= takes int"):
        SqlBackend(url, pool_size="3")
    with pytest.raises(ValueError, match="is not a database URL"):
        SqlBackend("not a url")


def test_the_driver_is_chosen_when_the_url_names_none():
    pytest.importorskip("psycopg")
    pytest.importorskip("pymysql")
    cases = {
        "postgresql://u:p@h/db": "postgresql+psycopg",
        "mysql://u@h/db": "mysql+pymysql",
        "mariadb://u@h/db": "mariadb+pymysql",
        "postgresql+psycopg://u@h/db": "postgresql+psycopg",
    }
    for given, driver in cases.items():
        store = persistence.connect(given)
        assert store.shown.startswith(f"{driver}://"), store.shown
        assert "u:p@" not in store.shown
        store.close()


def test_a_missing_driver_or_sqlalchemy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymysql", None)
    with pytest.raises(ImportError, match=r"pip install 'tideflow\[mysql\]'"):
        SqlBackend("mysql+pymysql://root@127.0.0.1/test")
    monkeypatch.setattr(sql, "sa", None)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ImportError, match=r"SQLAlchemy 2.*pip install 'tideflow\[postgres\]'"):
        SqlBackend("postgresql://u@h/db")


def test_tideflow_imports_without_sqlalchemy():
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "import tideflow, tideflow.persistence, tideflow.persistence.sql\n"
        "try:\n    tideflow.persistence.connect('postgresql://u@h/db')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        check=True,
    )
    assert "tideflow[postgres]" in done.stdout


def test_the_store_is_usable_from_several_threads(conn, backend):
    from concurrent.futures import ThreadPoolExecutor

    conn.save_logbook(full_book())

    def read(_):
        with backend.get_connection() as mine:
            return [a.name for a in mine.get_flow_details("f-1")]

    with ThreadPoolExecutor(4) as pool:
        assert set(map(tuple, pool.map(read, range(40)))) == {("retry", "done", "failed")}


def test_atom_positions_are_the_flow_records_order(conn):
    book = full_book()
    flow = book.find("f-1")
    extra: AtomDetail = TaskDetail("z", "a-z")
    flow.add(extra)
    extra.position = 10  # what a record says it was read at does not decide where it goes
    conn.save_logbook(book)
    loaded = conn.get_flow_details("f-1")
    assert [(a.name, a.position) for a in loaded] == [
        ("retry", 0),
        ("done", 1),
        ("failed", 2),
        ("z", 3),
    ]


AWKWARD_TEXTS = (
    "quote ' double \" back \\ slash \\\\ and \\u0000 spelled",
    "nul \x00 byte, tab \t, newline \n, return \r, bell \x07",
    "unicode: é ß 漢字 🌊 a\u0301 \u2028 \u2029 \ufeff",
    '{"looks": ["like", "json"]}',
    "",
)


def test_a_round_keeps_awkward_text_and_numbers_exactly(conn):
    """A round's values reach the store as they were, whatever their characters (the
    direct path sends a round's atoms as one JSON document)."""
    flow = FlowDetail("awkward 'flow' \"name\"", "f-awk")
    book = LogBook("awkward", "b-awk")
    book.add(flow)
    conn.save_logbook(book)
    details = []
    for n, text in enumerate(AWKWARD_TEXTS):
        detail = TaskDetail(f"t{n} {text[:12]!r}", f"a-awk-{n}")
        detail.put(AtomState.SUCCESS, {"text": text, "n": 2**62 + n, "x": 0.1 + n / 3})
        detail.meta["note"] = text
        details.append(detail)
        flow.add(detail)
    failed = TaskDetail("failed \\ 'one'", "a-awk-f")
    failed.put(AtomState.FAILURE, Failure.from_exception(ValueError(AWKWARD_TEXTS[2])))
    details.append(failed)
    flow.add(failed)
    conn.save_round(flow, details)
    got = conn.get_flow_details("f-awk")
    assert got.name == flow.name
    assert [d.name for d in got] == [d.name for d in details]
    for n, text in enumerate(AWKWARD_TEXTS):
        stored = got.find(f"a-awk-{n}")
        assert stored.results == {"text": text, "n": 2**62 + n, "x": 0.1 + n / 3}
        assert stored.meta["note"] == text
    assert got.find("a-awk-f").failure.exception_str == AWKWARD_TEXTS[2]
