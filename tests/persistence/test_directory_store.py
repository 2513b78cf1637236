"""What the directory store does beyond the contract: its layout, its journal, its locks,
and how it refuses a directory that is not a store (the contract suite covers the rest)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from tideflow import persistence
from tideflow.errors import NotFoundError, RunOwnedError, StoreError, StoreVersionError
from tideflow.persistence import FlowDetail, LogBook, TaskDetail
from tideflow.persistence._records import (
    ATOM_COLUMNS,
    BOOK_COLUMNS,
    FLOW_COLUMNS,
    SCHEMA_VERSION,
    new_owner,
)
from tideflow.persistence.directory import DirBackend
from tideflow.states import AtomState, FlowState


def saved_flow(store: DirBackend, *names: str) -> FlowDetail:
    flow_detail = FlowDetail("flow")
    for name in names:
        flow_detail.add(TaskDetail(name))
    book = LogBook("book")
    book.add(flow_detail)
    with store.get_connection() as conn:
        conn.save_logbook(book)
    return flow_detail


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> Any:
    backend = DirBackend(path=root)
    yield backend
    backend.close()


# -- opening by URL or TaskFlow configuration ---------------------------------------------


_CONFIGURATIONS = {
    "dir URL": lambda root: f"dir://{root}",
    "file URL": lambda root: f"file://{root}",
    "TaskFlow dir": lambda root: {"connection": "dir", "path": str(root)},
    "TaskFlow file": lambda root: {"connection": "file", "path": root},
    "URL and path": lambda root: {"connection": f"dir://{root}", "path": str(root)},
}


@pytest.mark.parametrize("how", list(_CONFIGURATIONS))
def test_opened_by_url_or_configuration(root: Path, how: str) -> None:
    backend = persistence.fetch(_CONFIGURATIONS[how](root))
    assert isinstance(backend, DirBackend)
    assert backend.path == str(root)
    assert backend.url.endswith(f"://{root}")
    saved_flow(backend, "a")
    assert (root / "tideflow-store.json").is_file()
    backend.close()


def test_configuration_mistakes_are_named(root: Path) -> None:
    with pytest.raises(TypeError, match=r"'pth'.*did you mean 'path'"):
        persistence.fetch({"connection": "dir", "pth": str(root)})
    with pytest.raises(ValueError, match="names no directory"):
        persistence.fetch({"connection": "dir"})
    with pytest.raises(ValueError, match="two different directories"):
        persistence.fetch({"connection": f"dir://{root}", "path": str(root / "other")})
    with pytest.raises(ValueError, match="unknown codec"):
        persistence.connect(f"dir://{root}", codec="yaml")
    assert not root.exists()


def test_the_layout_is_the_documented_one(store: DirBackend, root: Path) -> None:
    flow_detail = saved_flow(store, "a", "b")
    with store.get_connection() as conn:
        (book,) = conn.get_logbooks()
        conn.claim_run(flow_detail.uuid, owner := new_owner())

    marker = json.loads((root / "tideflow-store.json").read_text())
    assert marker == {
        "store": "tideflow directory store",
        "schema_version": SCHEMA_VERSION,
        "codec": "json",
    }
    book_doc = json.loads((root / "books" / f"{book.uuid}.json").read_text())
    assert sorted(book_doc) == sorted(BOOK_COLUMNS)
    flow_doc = json.loads((root / "flows" / f"{flow_detail.uuid}.json").read_text())
    assert sorted(flow_doc) == sorted([*FLOW_COLUMNS])
    assert (flow_doc["owner"], flow_doc["book_uuid"]) == (owner, book.uuid)
    for position, atom in enumerate(flow_detail):
        atom_doc = json.loads((root / "atoms" / flow_detail.uuid / f"{atom.uuid}.json").read_text())
        assert sorted(atom_doc) == sorted(ATOM_COLUMNS)
        assert (atom_doc["name"], atom_doc["position"]) == (atom.name, position)
    assert not (root / "journal.json").exists()
    assert not list(root.rglob(".tideflow-tmp-*"))


def test_writes_keep_a_flow_documents_creation_time_book_and_owner(
    store: DirBackend, root: Path
) -> None:
    flow_detail = saved_flow(store, "a")
    where = root / "flows" / f"{flow_detail.uuid}.json"
    first = json.loads(where.read_text())
    owner = new_owner()
    with store.get_connection() as conn:
        conn.claim_run(flow_detail.uuid, owner)
        conn.update_flow_details(flow_detail)
        conn.save_round(flow_detail, list(flow_detail), owner=owner)
    now = json.loads(where.read_text())
    assert now["created_at"] == first["created_at"]
    assert now["updated_at"] > first["updated_at"]
    assert (now["book_uuid"], now["owner"]) == (first["book_uuid"], owner)


def test_a_missing_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "store"
    backend = DirBackend(path=deep)
    with backend.get_connection() as conn:
        conn.upgrade()
        conn.validate()
    assert sorted(p.name for p in deep.iterdir()) == [
        "atoms",
        "books",
        "flows",
        "tideflow-store.json",
        "tideflow-store.lock",
    ]
    backend.close()


# -- refusing what is not a store ------------------------------------------------------------


def _refused(root: Path, match: str, error: type[Exception] = StoreVersionError) -> None:
    before = tree(root) if root.is_dir() else root.read_bytes()
    backend = DirBackend(path=root)
    with pytest.raises(error, match=match), backend.get_connection() as conn:
        conn.get_logbooks()
    with pytest.raises(error, match=match), backend.get_connection() as conn:
        conn.upgrade()
    backend.close()
    assert (tree(root) if root.is_dir() else root.read_bytes()) == before


def test_a_directory_of_other_things_is_not_a_store(root: Path) -> None:
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    _refused(root, r"is not a tideflow directory store.*notes\.txt.*Nothing was changed")


def test_a_file_is_not_a_directory_store(root: Path) -> None:
    root.write_text("a file")
    _refused(root, "is a file, not a directory store")


def test_a_store_of_a_newer_tideflow_is_refused(store: DirBackend, root: Path) -> None:
    saved_flow(store, "a")
    store.close()
    marker = root / "tideflow-store.json"
    marker.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "codec": "json"}))
    _refused(root, rf"{root}.*newer tideflow.*upgrade tideflow")


def test_a_damaged_marker_is_refused(store: DirBackend, root: Path) -> None:
    saved_flow(store, "a")
    store.close()
    (root / "tideflow-store.json").write_text("{not json")
    _refused(root, r"tideflow-store\.json is not a tideflow store marker")


def test_a_damaged_record_names_its_file(store: DirBackend, root: Path) -> None:
    flow_detail = saved_flow(store, "a")
    atom = next(iter(flow_detail))
    damaged = root / "atoms" / flow_detail.uuid / f"{atom.uuid}.json"
    damaged.write_text('{"uuid": "trunc')
    with store.get_connection() as conn:
        with pytest.raises(StoreError, match=rf"{damaged} is not valid JSON"):
            conn.get_flow_details(flow_detail.uuid)
        with pytest.raises(StoreError, match=rf"{damaged} is not valid JSON"):
            conn.get_atom_details(atom.uuid)
        assert len(conn.get_flow_details(flow_detail.uuid, lazy=True)) == 0
    damaged.write_text('{"uuid": "x"}')
    with store.get_connection() as conn, pytest.raises(StoreError, match=r"is not a record"):
        conn.get_atoms_for_flow(flow_detail.uuid)


def test_a_uuid_that_is_no_file_name_is_refused(store: DirBackend) -> None:
    book = LogBook("book")
    book.add(FlowDetail("sneaky", uuid="../../escape"))
    with store.get_connection() as conn:
        with pytest.raises(StoreError, match="cannot be a file name"):
            conn.save_logbook(book)
        with pytest.raises(NotFoundError):
            conn.get_flow_details("../../escape")
        with pytest.raises(NotFoundError):
            conn.get_logbook("../books/x")
    assert list(Path(store.path).parent.glob("escape*")) == []


# -- writes: atomic files, the journal ----------------------------------------------------------


class Crash(BaseException):
    """The process dying: not an error anything catches."""


def test_a_round_cut_short_is_finished_by_the_next_reader(
    store: DirBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_detail = saved_flow(store, "a", "b", "c")
    flow_detail.state = FlowState.RUNNING
    for atom in flow_detail:
        atom.state, atom.results = AtomState.SUCCESS, atom.name
    real_apply = DirBackend._apply

    def apply_then_die(self: DirBackend, ops: Any) -> None:
        real_apply(self, ops[:2])  # the flow and the first atom only
        raise Crash

    monkeypatch.setattr(DirBackend, "_apply", apply_then_die)
    with store.get_connection() as conn, pytest.raises(Crash):
        conn.save_round(flow_detail, list(flow_detail))
    monkeypatch.undo()
    assert (root / "journal.json").exists()
    last = list(flow_detail)[-1]
    half = json.loads((root / "atoms" / flow_detail.uuid / f"{last.uuid}.json").read_text())
    assert half["state"] == "PENDING"  # really cut short

    reader = DirBackend(path=root)
    with reader.get_connection() as conn:
        got = conn.get_flow_details(flow_detail.uuid)
    assert got.state == FlowState.RUNNING
    assert [(a.state, a.results) for a in got] == [
        (AtomState.SUCCESS, "a"),
        (AtomState.SUCCESS, "b"),
        (AtomState.SUCCESS, "c"),
    ]
    assert not (root / "journal.json").exists()
    reader.close()


def test_a_round_cut_short_is_finished_before_the_next_write(
    store: DirBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_detail = saved_flow(store, "a", "b")
    a, b = list(flow_detail)
    a.state = b.state = AtomState.SUCCESS

    def die(self: DirBackend, ops: Any) -> None:
        raise Crash

    monkeypatch.setattr(DirBackend, "_apply", die)
    with store.get_connection() as conn, pytest.raises(Crash):
        conn.save_round(flow_detail, [a, b])
    monkeypatch.undo()

    b.state = AtomState.FAILURE  # a later write of b wins over the journal's
    with store.get_connection() as conn:
        conn.update_atom_details(b)
        assert [x.state for x in conn.get_atoms_for_flow(flow_detail.uuid)] == [
            AtomState.SUCCESS,
            AtomState.FAILURE,
        ]


def test_a_write_that_fails_is_a_store_error_and_changes_nothing(
    store: DirBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_detail = saved_flow(store, "a", "b")
    before = tree(root)
    for atom in flow_detail:
        atom.state = AtomState.SUCCESS

    def disk_full(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with store.get_connection() as conn:
        with pytest.raises(StoreError, match=rf"{root}.*No space left") as caught:
            conn.save_round(flow_detail, list(flow_detail))
        assert isinstance(caught.value.__cause__, OSError)
    monkeypatch.undo()
    assert tree(root) == before  # no journal, no temporary file, no record changed


def test_clear_all_and_destroy_leave_no_files_behind(store: DirBackend, root: Path) -> None:
    flow_detail = saved_flow(store, "a")
    with store.get_connection() as conn:
        (book,) = conn.get_logbooks()
        conn.destroy_logbook(book.uuid)
        assert list((root / "atoms").iterdir()) == []
        assert list((root / "flows").iterdir()) == []
        saved_flow(store, "b")
        conn.clear_all()
    for folder in ("books", "flows", "atoms"):
        assert list((root / folder).iterdir()) == []
    assert not (root / "atoms" / flow_detail.uuid).exists()


def test_a_closed_connection_says_so(store: DirBackend) -> None:
    conn = store.get_connection()
    conn.close()
    with pytest.raises(StoreError, match="is closed"):
        conn.get_logbooks()


def test_a_closed_backend_opens_again_when_used(store: DirBackend) -> None:
    flow_detail = saved_flow(store, "a")
    store.close()
    with store.get_connection() as conn:
        assert conn.get_flow_details(flow_detail.uuid).uuid == flow_detail.uuid


# -- several processes ------------------------------------------------------------------

_CONTENDER = textwrap.dedent(
    """
    import sys, time, os
    from tideflow.persistence.directory import DirBackend
    from tideflow.persistence._records import new_owner
    from tideflow.errors import RunOwnedError
    root, flow, go, done = sys.argv[1:]
    store = DirBackend(path=root)
    while not os.path.exists(go):
        time.sleep(0.001)
    with store.get_connection() as conn:
        try:
            conn.claim_run(flow, new_owner())
            print("won", flush=True)
        except RunOwnedError:
            print("lost", flush=True)
    while not os.path.exists(done):  # stay alive: a dead owner's claim could be taken over
        time.sleep(0.01)
    """
)


def test_one_process_of_several_claims_a_run(store: DirBackend, root: Path, tmp_path: Path) -> None:
    flow_detail = saved_flow(store, "a")
    go, done = tmp_path / "go", tmp_path / "done"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, str(root), flow_detail.uuid, str(go), str(done)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        go.touch()
        answers = [child.stdout.readline().strip() for child in children]  # type: ignore[union-attr]
        assert sorted(answers) == ["lost", "lost", "lost", "won"]
        with store.get_connection() as conn, pytest.raises(RunOwnedError):
            conn.claim_run(flow_detail.uuid, new_owner())
    finally:
        done.touch()
        for child in children:
            child.communicate(timeout=30)
    # every contender has exited: the winner's claim is stale now and can be taken over
    with store.get_connection() as conn:
        conn.claim_run(flow_detail.uuid, new_owner())


_WRITER = textwrap.dedent(
    """
    import sys
    from tideflow.persistence.directory import DirBackend
    from tideflow.persistence import FlowDetail, LogBook, TaskDetail
    from tideflow.states import AtomState
    root, label = sys.argv[1:]
    store = DirBackend(path=root)
    flow = FlowDetail(label)
    for i in range(3):
        flow.add(TaskDetail(f"{label}-{i}"))
    book = LogBook(label)
    book.add(flow)
    with store.get_connection() as conn:
        conn.save_logbook(book)
        for round_ in range(15):
            for atom in flow:
                atom.results = round_
                atom.state = AtomState.SUCCESS
            conn.save_round(flow, list(flow))
    """
)


def test_processes_writing_at_once_leave_every_record_whole(store: DirBackend, root: Path) -> None:
    with store.get_connection() as conn:
        conn.upgrade()
    children = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(root), f"p{i}"]) for i in range(3)
    ]
    for child in children:
        assert child.wait(timeout=60) == 0
    with store.get_connection() as conn:
        runs = list(conn.iter_runs())
        assert sorted(f.name for f in runs) == ["p0", "p1", "p2"]
        for run in runs:
            atoms = conn.get_atoms_for_flow(run.uuid)
            assert [a.results for a in atoms] == [14, 14, 14]
    assert not (root / "journal.json").exists()


def test_a_forked_child_takes_a_lock_of_its_own(store: DirBackend) -> None:
    """A child shares its parent's open lock file, and so the lock: it must open its own,
    or it would write while the parent holds the store."""
    flow_detail = saved_flow(store, "a")
    fd = store._lock_fd
    assert fd is not None
    read, write = os.pipe()
    fcntl.flock(fd, fcntl.LOCK_EX)  # the parent is in the middle of a write
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads about
            pid = os.fork()
        if pid == 0:
            try:
                with store.get_connection() as conn:
                    conn.claim_run(flow_detail.uuid, new_owner())
                os.write(write, b"in")
            finally:
                os._exit(0)
        ready, _, _ = select.select([read], [], [], 0.5)
        assert ready == [], "the child got into the store while the parent held it"
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
    ready, _, _ = select.select([read], [], [], 10)
    assert ready == [read]
    assert os.read(read, 8) == b"in"
    os.waitpid(pid, 0)
    os.close(read)
    os.close(write)
