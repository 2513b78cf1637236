"""TaskFlow's persistence API through the compat package: fetch() forms and keys, the
backend classes over tideflow's stores, TaskFlow's record methods, ``backend.memory``,
and where we differ from TaskFlow 6.5 on purpose (each named in its docstring; the
table is docs/taskflow-behaviour.md section 14). The programs in ``programs/`` check
the output of whole runs against TaskFlow's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import taskflow.engines
from taskflow import exceptions as exc
from taskflow import states, task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends, models
from taskflow.persistence.backends import impl_dir, impl_memory, impl_sqlalchemy
from taskflow.persistence.base import Backend, Connection
from tideflow.persistence import MemoryBackend as TideflowMemory
from tideflow.persistence.directory import DirBackend as TideflowDir
from tideflow.persistence.sqlite import SqliteBackend


class Give(task.Task):
    def execute(self) -> int:
        return 7


def _flow(name: str = "f") -> lf.Flow:
    return lf.Flow(name).add(Give("give", provides="x"))


# -- fetch() ---------------------------------------------------------------------------


@pytest.mark.parametrize("conf", ["memory", "memory://", {"connection": "memory://"}])
def test_memory_forms(conf: Any) -> None:
    backend = backends.fetch(conf)
    assert isinstance(backend, impl_memory.MemoryBackend)
    assert isinstance(backend, Backend)
    assert isinstance(backend.get_connection(), Connection)
    assert backend.shares_records


def test_sqlite_conf_with_taskflow_keys(tmp_path: Path) -> None:
    """Pool keys mean nothing to a SQLite file (TaskFlow ignores them too); the
    durability key becomes the SQLite store's ``synchronous``."""
    conf = {
        "connection": f"sqlite:///{tmp_path / 'runs.db'}",
        "pool_size": "5",
        "max_overflow": 3,
        "idle_timeout": 30,
        "sqlite_synchronous": "full",
        "codec": "json",
    }
    backend = backends.fetch(conf)
    assert type(backend) is impl_sqlalchemy.SQLAlchemyBackend
    assert isinstance(backend.store, SqliteBackend)
    assert backend.store.synchronous == "FULL"
    assert backend.engine is None  # no SQLAlchemy engine behind the stdlib store
    assert backend._conf == conf
    backend.close()


def test_unknown_key_is_refused_with_a_hint(tmp_path: Path) -> None:
    """TaskFlow ignores any key; a key neither TaskFlow nor tideflow knows is refused."""
    with pytest.raises(TypeError, match="did you mean 'pool_size'"):
        backends.fetch({"connection": "postgresql://u@h/db", "pool_sise": 2})
    with pytest.raises(TypeError, match="'bogus'"):
        backends.fetch({"connection": f"sqlite:///{tmp_path / 'x.db'}", "bogus": 1})


def test_conf_without_connection_and_unknown_scheme() -> None:
    with pytest.raises(KeyError):
        backends.fetch({"path": "/x"})
    with pytest.raises(exc.NotFound):
        backends.fetch("bogus://")


def test_dir_forms(tmp_path: Path) -> None:
    """``path`` wins over the URL's path, as in TaskFlow (``file:////x`` from its
    example_utils included); without ``path`` the URL's is used (TaskFlow: ValueError)."""
    store = tmp_path / "store"
    for conf in (
        {"connection": "dir", "path": str(store), "max_cache_size": 5},
        {"connection": f"file:///{store}", "path": f"/{store}"},
        f"file://{store}",
    ):
        backend = backends.fetch(conf)
        assert type(backend) is impl_dir.DirBackend
        assert isinstance(backend.store, TideflowDir)
        assert os.path.samefile(backend.path, store) if store.exists() else True
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
        assert store.is_dir()


def test_backend_context_manager_makes_the_store(tmp_path: Path) -> None:
    with (
        backends.backend({"connection": f"sqlite:///{tmp_path / 'b.db'}"}) as backend,
        contextlib.closing(backend.get_connection()) as conn,
    ):
        assert list(conn.get_logbooks()) == []
    assert (tmp_path / "b.db").exists()


@pytest.fixture(params=["TIDEFLOW_TEST_POSTGRES_URL", "TIDEFLOW_TEST_MYSQL_URL"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of this test's own on the server (others' tests clear the shared one)."""
    env = str(request.param)
    given_url = os.environ.get(env)
    if not given_url:
        pytest.skip(f"set {env} (see .ci/run) to run this against the server")
    sa = pytest.importorskip("sqlalchemy")
    given = sa.make_url(given_url)
    name = f"tideflow_compat_{os.getpid()}_{os.urandom(3).hex()}"
    admin = sa.create_engine(given, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield given.set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if given.get_backend_name() == "postgresql" else ""
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}{force}"))
        admin.dispose()


def test_server_conf_translated(server_url: str) -> None:
    """TaskFlow's ``max_pool_size``/``pool_timeout`` become the SQL store's pool options."""
    backend = backends.fetch(
        {"connection": server_url, "max_pool_size": "2", "pool_timeout": 5, "idle_timeout": 60}
    )
    try:
        assert type(backend) is impl_sqlalchemy.SQLAlchemyBackend
        pool = backend.engine.pool
        assert pool.size() == 2
        assert pool.timeout() == 5
        engine = taskflow.engines.load(_flow("server"), backend=backend)
        engine.run()
        with contextlib.closing(backend.get_connection()) as conn:
            stored = conn.get_flow_details(engine.storage.flow_uuid)
            assert stored.state == states.SUCCESS
            assert [d.results for d in stored] == [7]
    finally:
        backend.close()


# -- engines with a backend --------------------------------------------------------------


def test_load_with_conf_dict_saves_a_tmp_book(tmp_path: Path) -> None:
    conf = {"connection": f"sqlite:///{tmp_path / 'e.db'}"}
    engine = taskflow.engines.load(_flow("one"), backend=conf)
    engine.run()
    with backends.backend(conf) as backend, contextlib.closing(backend.get_connection()) as conn:
        books = list(conn.get_logbooks())
        assert [(b.name, [f.name for f in b]) for b in books] == [("tmp", ["one"])]
        loaded = books[0].find(engine.storage.flow_uuid)
        assert isinstance(loaded, models.FlowDetail)  # records come with TaskFlow's methods
        assert "TaskDetail: 'give'" in loaded.pformat()


def test_run_without_backend_keeps_its_record_outside_books() -> None:
    """As TaskFlow's storage does: a memory store of its own, no log book in it."""
    engine = taskflow.engines.load(_flow())
    engine.run()
    backend = engine.storage.backend
    assert isinstance(backend, impl_memory.MemoryBackend)
    assert backend.memory.ls("/books") == []
    assert backend.memory.ls("/flow_details") == [engine.storage.flow_uuid]
    with contextlib.closing(backend.get_connection()) as conn:
        assert conn.get_flow_details(engine.storage.flow_uuid) is engine.storage.flow_detail


def test_update_of_an_unsaved_flow_without_ignore_missing_is_not_found() -> None:
    backend = backends.fetch("memory://")
    with contextlib.closing(backend.get_connection()) as conn, pytest.raises(exc.NotFound):
        conn.update_flow_details(models.FlowDetail("f", "u-1"))


# -- records -----------------------------------------------------------------------------


def test_records_round_trip_taskflow_dicts() -> None:
    book = models.LogBook("b")
    book.meta["k"] = 1
    data = book.to_dict(marshal_time=True)
    assert sorted(data) == ["created_at", "meta", "name", "updated_at", "uuid"]
    again = models.LogBook.from_dict(data, unmarshal_time=True)
    assert (again.name, again.uuid, again.meta) == ("b", book.uuid, {"k": 1})
    assert again.created_at == pytest.approx(book.created_at, abs=1e-6)

    flow_detail = models.FlowDetail("f", "u-f")
    flow_detail.state = states.RUNNING
    assert flow_detail.to_dict() == {"name": "f", "meta": {}, "state": "RUNNING", "uuid": "u-f"}
    assert models.FlowDetail.from_dict(flow_detail.to_dict()).state == states.RUNNING

    atom = models.TaskDetail("t", "u-t")
    atom.put(states.SUCCESS, {"v": 1})
    atom.version = "2.1"
    data = atom.to_dict()
    assert (data["version"], data["state"], data["results"]) == ("2.1", "SUCCESS", {"v": 1})
    back = models.TaskDetail.from_dict(data)
    assert (back.version, back.state, back.results) == ((2, 1), states.SUCCESS, {"v": 1})
    assert models.atom_detail_type(back) == "TASK_DETAIL"
    assert models.atom_detail_class("RETRY_DETAIL") is models.RetryDetail


def test_merge_copy_update() -> None:
    a, b = models.TaskDetail("t", "u"), models.TaskDetail("t", "u")
    b.put(states.SUCCESS, 5)
    b.meta["m"] = 1
    assert a.merge(b) is a
    assert (a.state, a.results, a.meta) == (states.SUCCESS, 5, {"m": 1})
    clone = a.copy()
    clone.meta["m"] = 2
    assert a.meta == {"m": 1}
    with pytest.raises(exc.NotImplementedError):
        a.merge(models.RetryDetail("r", "u2"))
    fd = models.FlowDetail("f", "u-f")
    fd.add(a)
    other = models.FlowDetail("f", "u-f").update(fd)
    assert other.find("u") is a
    empty = fd.copy(retain_contents=False)
    assert len(empty) == 0
    assert len(fd) == 1
    book = models.LogBook("b")
    book.add(fd)
    assert len(book.copy(retain_contents=False)) == 0
    assert book.copy().find("u-f") is fd


def test_tideflow_records_are_adopted_in_place() -> None:
    """The engine's records gain TaskFlow's methods without being copied."""
    book = models.LogBook("b")
    engine = taskflow.engines.load(_flow(), backend=backends.fetch("memory"), book=book)
    engine.run()
    (flow_detail,) = list(book)
    (atom,) = list(flow_detail)
    assert isinstance(atom, models.TaskDetail)
    assert atom is engine.storage.flow_detail.find_by_name("give")
    assert atom.last_results == 7
    assert "- results = 7" in book.pformat()


def test_retry_record_results_are_its_history() -> None:
    from taskflow.types.failure import Failure

    detail = models.RetryDetail("r", "u-r")
    detail.history = [(1, {}), (2, {"t": Failure.from_exception(OSError("x"))})]
    detail.state = states.SUCCESS
    assert detail.last_results == 2
    assert list(detail.last_failures) == ["t"]
    data = detail.to_dict()
    assert data["results"][0] == (1, {})
    assert data["results"][1][1]["t"]["exc_type_names"][0].endswith("OSError")
    again = models.RetryDetail.from_dict(data)
    assert [provided for provided, _ in again.history] == [1, 2]
    assert "RetryDetail: 'r'" in detail.pformat()
    with pytest.raises(exc.NotFound):
        _ = models.RetryDetail("r2", "u-2").last_results


# -- the memory tree -------------------------------------------------------------------------


def test_tree_follows_links_and_is_read_only() -> None:
    backend = backends.fetch("memory://")
    book = models.LogBook("b")
    taskflow.engines.load(_flow(), backend=backend, book=book).run()
    tree = backend.memory
    assert tree is backend.memory
    (fd_uuid,) = tree.ls("/books/" + book.uuid)
    link = f"/books/{book.uuid}/{fd_uuid}"
    assert tree[link] == tree["/flow_details/" + fd_uuid]
    assert tree[link]["state"] == "SUCCESS"
    (atom_uuid,) = tree.ls("/flow_details/" + fd_uuid)
    assert tree["/atom_details/" + atom_uuid]["atom"]["results"] == 7
    assert tree.ls_r("/books") == [book.uuid, f"{book.uuid}/{fd_uuid}"]
    for write in (lambda: tree.__setitem__("/x", 1), lambda: tree.delete("/books"), tree.clear):
        with pytest.raises(TypeError, match="read-only"):
            write()


def test_tideflow_memory_store_has_the_tree_with_its_own_dicts() -> None:
    store = TideflowMemory()
    engine = taskflow.engines.load(_flow(), backend=store)
    engine.run()
    tree = store.memory
    assert len(tree.ls("/books")) == 1
    (atom_uuid,) = tree.ls("/atom_details")
    value = tree["/atom_details/" + atom_uuid]
    assert value["kind"] == "task"
    assert value["version"] == [1, 0]
    assert "atoms" not in tree["/flow_details/" + engine.storage.flow_uuid]
    assert tree.pformat().splitlines()[:2] == ["/", "|__books"]


# -- deliberate differences from TaskFlow 6.5 --------------------------------------------------


def test_version_is_a_tuple_that_reads_as_text() -> None:
    """TaskFlow's atom records keep ``'1.0'``; ours keep ``(1, 0)``, shown as ``1.0``."""
    engine = taskflow.engines.load(_flow(), backend=backends.fetch("memory"))
    engine.run()
    (atom,) = list(engine.storage.flow_detail)
    assert atom.version == "1.0"
    assert atom.version == (1, 0)
    assert f"{atom.version}" == "1.0"
    assert repr(atom.version) == "'1.0'"
    assert not isinstance(atom.version, str)


def test_store_values_live_on_the_flow_record() -> None:
    """TaskFlow adds an atom record ``_TaskFlow_INJECTOR`` holding ``store=`` values."""
    engine = taskflow.engines.load(_flow(), store={"a": 1}, backend=backends.fetch("memory"))
    engine.run()
    assert [d.name for d in engine.storage.flow_detail] == ["give"]
    assert engine.storage.flow_detail.injected == {"a": 1}


def test_progress_is_derived_from_the_state() -> None:
    """TaskFlow's engine writes progress 0.0/1.0 into the record's meta; ours derives it,
    so a record marked SUCCESS by hand also shows 100% (TaskFlow: no metadata)."""
    atom = models.TaskDetail("t", "u")
    atom.state = states.SUCCESS
    assert atom.meta == {}
    assert atom.to_dict()["meta"] == {"progress": 1.0}
    assert "+ progress = 100.00%" in atom.pformat()
    atom.state = states.PENDING
    assert atom.to_dict()["meta"] == {}


def test_destroy_logbook_removes_its_atoms(tmp_path: Path) -> None:
    """TaskFlow's SQLite backend leaves the atom rows of a destroyed book behind."""
    with backends.backend({"connection": f"sqlite:///{tmp_path / 'd.db'}"}) as backend:
        book = models.LogBook("b")
        taskflow.engines.load(_flow(), backend=backend, book=book).run()
        with contextlib.closing(backend.get_connection()) as conn:
            (fd,) = list(conn.get_logbook(book.uuid))
            (atom,) = list(fd)
            conn.destroy_logbook(book.uuid)
            with pytest.raises(exc.NotFound):
                conn.get_atom_details(atom.uuid)


def test_schema_is_made_on_first_use(tmp_path: Path) -> None:
    """TaskFlow's SQL backend fails until ``upgrade()`` is called; ours makes its tables."""
    backend = backends.fetch({"connection": f"sqlite:///{tmp_path / 'n.db'}"})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(models.LogBook("b"))
        assert [b.name for b in conn.get_logbooks()] == ["b"]
    backend.close()


def test_book_times_are_timestamps() -> None:
    """TaskFlow's are ``datetime``; ``to_dict()`` and ``pformat()`` show them as TaskFlow."""
    book = models.LogBook("b")
    assert isinstance(book.created_at, float)
    assert type(book.to_dict()["created_at"]).__name__ == "datetime"
    assert " - created_at = 20" in book.pformat()


def test_sqlalchemy_engine_argument_is_refused(tmp_path: Path) -> None:
    """TaskFlow accepts a ready SQLAlchemy engine; our SQL store makes its own."""
    with pytest.raises(TypeError, match="pass the URL"):
        impl_sqlalchemy.SQLAlchemyBackend({"connection": "sqlite://"}, engine=object())
