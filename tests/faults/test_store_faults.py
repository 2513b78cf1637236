"""Stores that fail under a run: each gives a clear error, and the run resumes afterwards.

- The PostgreSQL connections of a running store killed (``pg_terminate_backend``)
  while a task runs: the engine stops with a StoreError saying so, or (the SQLAlchemy
  store pre-pings its pool and reconnects) the run completes. Either way the record
  agrees with what ran, and a resume finishes the run.
- A SQLite store that runs out of room: SQLite itself reports ``SQLITE_FULL``
  ("database or disk is full") once the file reaches its page budget
  (``PRAGMA max_page_count``, set on each connection the store opens). That is the
  error a full disk gives, raised by SQLite where it allocates pages, without a
  loop-mounted file system that CI could not make. When the budget is lifted ("the
  disk recovers") a resume finishes the run.
- A file that is not a store, a damaged store and a store of a newer schema: a clear
  error naming the file, the file left byte for byte as it was; once the right file
  is back, the run resumes.
- A second engine, in this process or another, asking to run a flow record another
  engine is running: RunOwnedError naming the owner; the record is not touched and
  the first engine finishes the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import crash_flows
import crash_harness
import pytest
from fault_support import StoreUrls, server_url

import tideflow
from tideflow.persistence import LogBook
from tideflow.persistence._records import SCHEMA_VERSION

HERE = Path(__file__).resolve().parent


# -- helpers ------------------------------------------------------------------------------


def ledger_lines(ledger: Path) -> list[str]:
    """The ledger's lines (none if no task wrote yet)."""
    return ledger.read_text().splitlines() if ledger.exists() else []


def wait_for_line(ledger: Path, line: str, timeout: float = 30.0) -> None:
    """Wait until a task wrote ``line`` to the ledger."""
    deadline = time.monotonic() + timeout
    while line not in ledger_lines(ledger):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {line!r} in the ledger after {timeout} s")
        time.sleep(0.005)


def assert_record_agrees(snap: dict[str, Any], lines: list[str]) -> None:
    """Every atom the record says SUCCESS finished its execute in the ledger; nothing the
    record says is ahead of what the tasks did."""
    for name, atom in snap["atoms"].items():
        if atom["kind"] != "task":
            continue
        mine = [line for line in lines if line.split(" ")[1] == name]
        if atom["state"] == "SUCCESS":
            assert mine, (name, atom)
            assert mine[-1] == f"exec-end {name}", (name, atom, mine)
        else:
            assert atom["state"] in ("PENDING", "RUNNING"), (name, atom, mine)


def executed_after(lines: list[str], start: int) -> list[str]:
    """Names of tasks that started an execute at or after line index ``start``."""
    return [line.split(" ")[1] for line in lines[start:] if line.startswith("exec-start ")]


def file_state(path: Path) -> tuple[str, list[str]]:
    """A file's digest and the other names in its directory: to show nothing was changed.

    A database in WAL mode cannot be read without its ``-shm`` index (SQLite makes it,
    with an empty ``-wal``, to read at all): those count as unchanged while the WAL
    holds no frame.
    """
    names = []
    for name in sorted(os.listdir(path.parent)):
        side = path.parent / name
        if name == f"{path.name}-shm" or (name == f"{path.name}-wal" and not side.stat().st_size):
            continue
        names.append(name)
    return hashlib.sha256(path.read_bytes()).hexdigest(), names


def partial_run(url: str, ledger: Path, rounds: int = 3) -> str:
    """Run crash_flows.linear for ``rounds`` rounds, then suspend it; return its run id."""
    backend = tideflow.connect(url)
    try:
        engine = tideflow.load_from_factory(
            crash_flows.linear,
            factory_kwargs={"ledger": str(ledger), "seed": 1},
            backend=backend,
        )
        steps = engine.run_iter()
        seen = 0
        phase = next(steps)
        while True:
            if phase == "ANALYZING":
                seen += 1
            try:
                phase = steps.send(True) if seen == rounds else next(steps)
            except StopIteration:
                break
        run_id = engine.storage.flow_uuid
    finally:
        backend.close()
    snap = crash_harness.snapshot(url, run_id)
    assert snap["state"] == "SUSPENDED", snap
    return run_id


def resume_finishes(url: str, run_id: str, ledger: Path) -> None:
    """Resume the run through a new store object: it ends SUCCESS, and no atom recorded
    SUCCESS before the resume executes again."""
    before = crash_harness.snapshot(url, run_id)
    done = {n for n, a in before["atoms"].items() if a["state"] == "SUCCESS"}
    start = len(ledger_lines(ledger))
    backend = tideflow.connect(url)
    try:
        tideflow.resume(run_id, backend)
    finally:
        backend.close()
    after = crash_harness.snapshot(url, run_id)
    assert after["state"] == "SUCCESS", after
    assert all(a["state"] == "SUCCESS" for a in after["atoms"].values()), after
    again = set(executed_after(ledger_lines(ledger), start)) & done
    assert not again, f"recorded SUCCESS before the resume, executed again: {sorted(again)}"


# -- PostgreSQL: connections killed mid-run ---------------------------------------------------


def terminate_store_connections(ledger: str) -> None:
    """Called by the Cut task: kill the server processes of the store under test.

    ``<ledger>.target`` names the database and the store's application_name; how many
    backends were terminated goes to ``<ledger>.killed``.
    """
    import psycopg

    target = json.loads(Path(ledger + ".target").read_text())
    with psycopg.connect(target["conninfo"], autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (target["app"],),
        ).fetchall()
    Path(ledger + ".killed").write_text(str(sum(1 for (ok,) in rows if ok)))


def test_postgres_connection_killed_mid_run(store_url: StoreUrls, tmp_path: Path) -> None:
    base = server_url("postgresql")
    app = f"tideflow-faults-{os.urandom(4).hex()}"
    url = f"{base}{'&' if '?' in base else '?'}application_name={app}"
    ledger = tmp_path / "cut.ledger"
    Path(f"{ledger}.target").write_text(
        json.dumps({"conninfo": base.replace("postgresql+psycopg://", "postgresql://"), "app": app})
    )
    book = LogBook("tideflow-faults-pg-cut")
    store_url.books.append(book.uuid)
    backend = tideflow.connect(url)
    error: BaseException | None = None
    try:
        engine = tideflow.load_from_factory(
            crash_flows.cut_midway,
            factory_kwargs={
                "ledger": str(ledger),
                "seed": 1,
                "cut": "test_store_faults.terminate_store_connections",
            },
            backend=backend,
            book=book,
        )
        run_id = engine.storage.flow_uuid
        try:
            engine.run()
        except tideflow.StoreError as exc:
            error = exc
    finally:
        backend.close()
    # the cut happened: the store's server processes were terminated while it ran
    assert int(Path(f"{ledger}.killed").read_text()) >= 1
    snap = crash_harness.snapshot(url, run_id)
    lines = ledger_lines(ledger)
    if error is not None:
        # it stopped: the error says so, names the store, and the record is what ran
        text = str(error).lower()
        assert "127.0.0.1" in text or "postgres" in text, text
        assert any(w in text for w in ("connection", "terminat", "closed", "server")), text
        assert snap["state"] != "SUCCESS", snap
        assert_record_agrees(snap, lines)
    else:
        assert snap["state"] == "SUCCESS", snap
    resume_finishes(url, run_id, ledger)
    counts = {name: executed_after(ledger_lines(ledger), 0).count(name) for name in snap["atoms"]}
    # only the atom running when the connection dropped may have run twice
    assert sum(counts.values()) <= len(counts) + 1, counts


class Proxy:
    """A TCP relay between a store and its database server, that can drop every
    connection and refuse new ones (the server "restarting") until restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refusing = False
        self.cuts = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.refusing = True
        with self._lock:
            dropped, self._open = self._open, []
        for end in dropped:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self.cuts += len(dropped) // 2

    def restore(self) -> None:
        """Accept connections again."""
        self.refusing = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


#: ledger path -> the proxy its Cut task drops (tasks find it by their ledger)
PROXIES: dict[str, Proxy] = {}


def cut_through_proxy(ledger: str) -> None:
    """Called by the Cut task: the database goes away under the running store."""
    PROXIES[ledger].cut()


@pytest.mark.parametrize("store", ["postgresql", "mysql"])
def test_the_database_going_away_mid_run_stops_it_and_resume_finishes(
    store: str, store_url: StoreUrls, tmp_path: Path
) -> None:
    direct = server_url(store)
    parts = urllib.parse.urlsplit(direct)
    proxy = Proxy(
        parts.hostname or "127.0.0.1", parts.port or (5432 if store == "postgresql" else 3306)
    )
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    url = urllib.parse.urlunsplit(
        parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host)
    )
    ledger = tmp_path / "gone.ledger"
    PROXIES[str(ledger)] = proxy
    book = LogBook("tideflow-faults-gone")
    store_url.books.append(book.uuid)
    backend = tideflow.connect(url)
    try:
        engine = tideflow.load_from_factory(
            crash_flows.cut_midway,
            factory_kwargs={
                "ledger": str(ledger),
                "seed": 1,
                "cut": "test_store_faults.cut_through_proxy",
            },
            backend=backend,
            book=book,
        )
        run_id = engine.storage.flow_uuid
        with pytest.raises(tideflow.StoreError) as caught:
            engine.run()
    finally:
        backend.close()
        PROXIES.pop(str(ledger))
        proxy.restore()
    assert proxy.cuts >= 1
    message = str(caught.value)
    assert f"127.0.0.1:{proxy.port}" in message or store in message, message
    assert not isinstance(caught.value, tideflow.RunOwnedError)
    try:
        # the record, read straight from the server, is what ran before the cut
        snap = crash_harness.snapshot(direct, run_id)
        lines = ledger_lines(ledger)
        assert snap["atoms"]["c1"]["state"] == "SUCCESS", snap
        assert snap["state"] not in ("SUCCESS", "REVERTED"), snap
        assert_record_agrees(snap, lines)
        # the server is back: the run resumes, through the relay as before
        resume_finishes(url, run_id, ledger)
    finally:
        proxy.close()


# -- SQLite: the disk fills up ------------------------------------------------------------------


class PageBudget:
    """The page budget each SQLite connection the store opens from now on gets."""

    limit: int | None = None


@pytest.fixture
def page_budget(monkeypatch: pytest.MonkeyPatch) -> PageBudget:
    """Give every sqlite3 connection the SQLite store opens ``PRAGMA max_page_count``."""
    from tideflow.persistence import sqlite as sqlite_store

    budget = PageBudget()
    original = sqlite_store._open_db

    def open_db(target: str, busy_timeout: float) -> sqlite3.Connection:
        db = original(target, busy_timeout)
        if budget.limit is not None:
            db.execute(f"PRAGMA max_page_count = {budget.limit}")
        return db

    monkeypatch.setattr(sqlite_store, "_open_db", open_db)
    return budget


def page_count(path: Path) -> int:
    """Pages in the database file, counting what its WAL holds (read-only)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA page_count").fetchone()[0])
    finally:
        db.close()


def test_sqlite_disk_full_stops_the_run_and_resume_finishes(
    page_budget: PageBudget, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    ledger = tmp_path / "full.ledger"
    backend = tideflow.connect(url)
    with backend.get_connection() as conn:
        conn.upgrade()
    backend.close()
    # room for the run's first rounds only: each result is a page of its own
    page_budget.limit = page_count(path) + 4
    backend = tideflow.connect(url)
    try:
        engine = tideflow.load_from_factory(
            crash_flows.padded, factory_kwargs={"ledger": str(ledger), "seed": 1}, backend=backend
        )
        run_id = engine.storage.flow_uuid
        with pytest.raises(tideflow.StoreError) as caught:
            engine.run()
    finally:
        backend.close()
    message = str(caught.value)
    assert "full" in message, message
    assert str(path) in message, message
    assert not isinstance(caught.value, tideflow.RunOwnedError)
    page_budget.limit = None  # the disk has room again
    snap = crash_harness.snapshot(url, run_id)
    lines = ledger_lines(ledger)
    done = [n for n, a in snap["atoms"].items() if a["state"] == "SUCCESS"]
    assert 0 < len(done) < len(snap["atoms"]), snap  # it stopped midway, having recorded some
    assert snap["state"] not in ("SUCCESS", "REVERTED"), snap
    assert_record_agrees(snap, lines)
    resume_finishes(url, run_id, ledger)
    final = crash_harness.snapshot(url, run_id)
    assert all(len(a["results"]) == crash_flows.Padded.size for a in final["atoms"].values())


# -- files that are not (this version's) stores -----------------------------------------------


def run_fresh(url: str, ledger: Path) -> None:
    """Open ``url`` and run crash_flows.linear on it."""
    backend = tideflow.connect(url)
    try:
        tideflow.load_from_factory(
            crash_flows.linear, factory_kwargs={"ledger": str(ledger), "seed": 1}, backend=backend
        ).run()
    finally:
        backend.close()


def resume_in_new_store(url: str, run_id: str) -> None:
    backend = tideflow.connect(url)
    try:
        tideflow.resume(run_id, backend)
    finally:
        backend.close()


def test_a_file_that_is_not_a_store_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = file_state(path)
    ledger = tmp_path / "not-a-store.ledger"
    with pytest.raises(tideflow.StoreError) as caught:
        run_fresh(f"sqlite:///{path}", ledger)
    assert str(path) in str(caught.value), caught.value
    assert file_state(path) == before
    assert ledger_lines(ledger) == []  # nothing ran


def test_a_damaged_store_is_refused_unchanged_and_the_run_resumes_once_restored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    ledger = tmp_path / "damaged.ledger"
    run_id = partial_run(url, ledger)
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    good = path.read_bytes()
    # the first page holds the schema: garbage after the 100-byte header damages it
    damaged = good[:100] + bytes(range(256)) * 15 + good[100 + 256 * 15 :]
    path.write_bytes(damaged)
    before = file_state(path)
    with pytest.raises(tideflow.StoreError) as caught:
        resume_in_new_store(url, run_id)
    message = str(caught.value)
    assert str(path) in message, message
    assert any(w in message for w in ("damaged", "corrupt", "malformed")), message
    assert file_state(path) == before
    for extra in (f"{path}-wal", f"{path}-shm"):
        Path(extra).unlink(missing_ok=True)
    path.write_bytes(good)  # restored from a backup
    resume_finishes(url, run_id, ledger)


def set_schema_version(path: Path, version: int) -> None:
    """Write ``version`` as the store's schema version, with sqlite3 directly."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("UPDATE tideflow_meta SET value = ? WHERE name = 'schema_version'", (version,))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def test_a_store_of_a_newer_version_is_refused_unchanged_and_resumes_with_its_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    ledger = tmp_path / "newer.ledger"
    run_id = partial_run(url, ledger)
    set_schema_version(path, SCHEMA_VERSION + 1)
    before = file_state(path)
    with pytest.raises(tideflow.StoreVersionError) as caught:
        resume_in_new_store(url, run_id)
    message = str(caught.value)
    assert str(path) in message, message
    assert "upgrade" in message.lower(), message
    assert file_state(path) == before
    set_schema_version(path, SCHEMA_VERSION)  # as if tideflow had been upgraded
    resume_finishes(url, run_id, ledger)


# -- one engine per flow record ------------------------------------------------------------------

OWNING_STORES = ["sqlite", "dir", "postgresql", "mysql"]


def start_gated(url: str, ledger: Path, book: LogBook) -> tuple[tideflow.Engine, Any]:
    backend = tideflow.connect(url)
    engine = tideflow.load_from_factory(
        crash_flows.gated,
        factory_kwargs={"ledger": str(ledger), "seed": 1},
        backend=backend,
        book=book,
    )
    return engine, backend


def assert_gated_finished_once(url: str, run_id: str, ledger: Path) -> None:
    snap = crash_harness.snapshot(url, run_id)
    assert snap["state"] == "SUCCESS", snap
    assert {n: a["results"] for n, a in snap["atoms"].items()} == {
        "g0": "g0",
        "gate": "gate(g0)",
        "g2": "g2(gate(g0))",
    }
    assert executed_after(ledger_lines(ledger), 0) == ["g0", "gate", "g2"]


@pytest.mark.parametrize("store", OWNING_STORES)
def test_a_second_engine_in_this_process_is_refused(
    store: str, store_url: StoreUrls, tmp_path: Path
) -> None:
    url = store_url(store)
    ledger = tmp_path / "owned.ledger"
    book = LogBook("tideflow-faults-owned")
    store_url.books.append(book.uuid)
    engine, backend = start_gated(url, ledger, book)
    run_id = engine.storage.flow_uuid
    failed: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as exc:
            failed.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_for_line(ledger, "exec-start gate")
        before = crash_harness.snapshot(url, run_id)
        # through a store object of its own, as another part of a program would
        with pytest.raises(tideflow.RunOwnedError) as caught:
            resume_in_new_store(url, run_id)
        assert str(os.getpid()) in str(caught.value), caught.value
        # and through the very store object the first engine uses
        with backend.get_connection() as conn:
            detail = conn.get_flow_details(run_id)
        with pytest.raises(tideflow.RunOwnedError):
            tideflow.load_from_detail(detail, backend=backend).run()
        assert crash_harness.snapshot(url, run_id) == before  # the refused engines wrote nothing
    finally:
        Path(f"{ledger}.go").touch()
        runner.join(60)
        backend.close()
    assert not failed, failed
    assert_gated_finished_once(url, run_id, ledger)


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    import crash_flows, tideflow
    from tideflow.persistence import LogBook
    backend = tideflow.connect({url!r})
    engine = tideflow.load_from_factory(
        crash_flows.gated, factory_kwargs={{"ledger": {ledger!r}, "seed": 1}},
        backend=backend, book=LogBook("tideflow-faults-owned", {book!r}))
    print(engine.storage.flow_uuid, flush=True)
    engine.run()
    backend.close()
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("store", OWNING_STORES)
def test_a_second_engine_in_another_process_is_refused(
    store: str, store_url: StoreUrls, tmp_path: Path
) -> None:
    url = store_url(store)
    ledger = tmp_path / "owned.ledger"
    book = LogBook("tideflow-faults-owned")
    store_url.books.append(book.uuid)
    script = _CHILD.format(here=str(HERE), url=url, ledger=str(ledger), book=book.uuid)
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=str(tmp_path)
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        wait_for_line(ledger, "exec-start gate")
        before = crash_harness.snapshot(url, run_id)
        with pytest.raises(tideflow.RunOwnedError) as caught:
            resume_in_new_store(url, run_id)
        assert str(child.pid) in str(caught.value), caught.value
        assert crash_harness.snapshot(url, run_id) == before
    finally:
        Path(f"{ledger}.go").touch()
        out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.strip() == "done"
    assert_gated_finished_once(url, run_id, ledger)
