"""The store contract (``tideflow.persistence.base``), method by method, on every store.

Each test runs once per store of ``conftest.py``. What only copying stores promise
(reads are copies, values go through a codec, a failed write leaves nothing) takes the
``copies`` fixture, which skips the memory store: it hands out the engine's own record
objects.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid as uuid_mod
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tideflow.errors import (
    NotFoundError,
    RunOwnedError,
    StoreError,
    StoreVersionError,
    UnstorableValueError,
)
from tideflow.failure import Failure
from tideflow.persistence import FlowDetail, LogBook, RetryDetail, TaskDetail
from tideflow.persistence._records import SCHEMA_VERSION, new_owner
from tideflow.persistence.base import Backend, Connection
from tideflow.states import AtomState, FlowState, Intention

# -- records to store ----------------------------------------------------------------------

#: Values users return every day, each of which JSON alone would lose or refuse.
VALUES: dict[Any, Any] = {
    "tuple": (1, "two", (3.0,)),
    7: "an int key",
    (1, 2): "a tuple key",
    "when": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
    "naive": dt.datetime(2024, 1, 1, 12, 0),
    "day": dt.date(2024, 2, 29),
    "delta": dt.timedelta(days=1, seconds=2, microseconds=3),
    "price": Decimal("12.30"),
    "raw": b"\x00\xffbytes",
    "set": {1, 2, 3},
    "id": uuid_mod.UUID("12345678-1234-5678-1234-567812345678"),
    "nested": [{"a": None, "b": [True, False]}, (), []],
    "float": 0.1,
    "big": 2**70,
    "text": "h\u00e9llo \u2603",
}


def same(got: Any, want: Any, where: str = "value") -> None:
    """Assert ``got`` equals ``want`` with the same types all the way down."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    assert got == want, where
    if isinstance(want, dict):
        for key, value in want.items():
            match = next(k for k in got if k == key)
            same(match, key, f"{where} key {key!r}")
            same(got[key], value, f"{where}[{key!r}]")
    elif isinstance(want, list | tuple):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{i}]")


def raised_failure(message: str = "outer") -> Failure:
    """A failure with a traceback, arguments and a cause, as a task's raise makes one."""
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError(message, 42) from exc
    except ValueError as exc:
        return Failure.from_exception(exc)


def same_failure(got: Failure | None, want: Failure) -> None:
    assert got is not None
    assert got.exc_type_names == want.exc_type_names
    assert got.exception_str == want.exception_str
    assert got.traceback_str == want.traceback_str
    assert want.traceback_str  # the test is about text that is really there
    assert tuple(got.exc_args) == tuple(want.exc_args)
    assert [c.exception_str for c in got.causes] == [c.exception_str for c in want.causes]
    assert [c.exc_type_names for c in got.causes] == [c.exc_type_names for c in want.causes]
    assert got == want


def task(name: str, state: AtomState = AtomState.PENDING, results: Any = None) -> TaskDetail:
    detail = TaskDetail(name)
    detail.state = state
    detail.results = results
    return detail


def book_with(*flows: FlowDetail, name: str = "book") -> LogBook:
    book = LogBook(name)
    for flow_detail in flows:
        book.add(flow_detail)
    return book


def flow_with(*names: str, name: str = "flow") -> FlowDetail:
    flow_detail = FlowDetail(name)
    for atom_name in names:
        flow_detail.add(task(atom_name))
    return flow_detail


def full_flow() -> FlowDetail:
    """A flow record using every field of every record kind."""
    flow_detail = FlowDetail("everything")
    flow_detail.state = FlowState.REVERTED
    flow_detail.meta = {"owner": "me", "when": dt.date(2024, 1, 2), 3: (4,)}
    flow_detail.injected = {"x": (1, 2), "price": Decimal("0.5"), "blob": b"\x01"}

    ok = task("ok", AtomState.SUCCESS, VALUES)
    ok.meta = {"progress": 1.0, "pair": (1, 2)}
    ok.version = (2, 1)
    flow_detail.add(ok)

    failed = task("failed", AtomState.FAILURE)
    failed.failure = raised_failure("failed to run")
    failed.version = None
    flow_detail.add(failed)

    reverted = task("reverted", AtomState.REVERTED, [1, (2,)])
    reverted.intention = Intention.REVERT
    reverted.revert_results = {"undone": (1,), 2: dt.timedelta(seconds=5)}
    flow_detail.add(reverted)

    revert_failed = task("revert-failed", AtomState.REVERT_FAILURE, "x")
    revert_failed.intention = Intention.REVERT
    revert_failed.revert_failure = raised_failure("failed to revert")
    flow_detail.add(revert_failed)

    retry = RetryDetail("retry")
    retry.state = AtomState.RETRYING
    retry.intention = Intention.RETRY
    retry.results = 3
    retry.history = [
        (1, {"failed": raised_failure("attempt 1")}),
        ((2, "b"), {"failed": raised_failure("attempt 2"), "ok": raised_failure("also")}),
    ]
    retry.decision = "RETRY"
    flow_detail.add(retry)
    return flow_detail


class Point:
    """A value JSON cannot keep (module level, so pickle can find it again)."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


# -- the protocols and the connection's life -----------------------------------------------


def test_stores_implement_the_protocols(backend: Any, conn: Any) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(conn, Connection)
    assert isinstance(backend.shares_records, bool)


def test_a_connection_is_a_context_manager_and_closes_twice(backend: Any) -> None:
    with backend.get_connection() as conn:
        assert isinstance(conn, Connection)
        conn.validate()
        book = conn.save_logbook(book_with(flow_with("a")))
    conn.close()  # again, after __exit__ closed it
    with backend.get_connection() as again:
        assert again.get_logbook(book.uuid).name == "book"


def test_a_backend_closes_twice_and_its_records_stay(open_store: Any, copies: None) -> None:
    first = open_store()
    with first.get_connection() as conn:
        book = conn.save_logbook(book_with(flow_with("a")))
    first.close()
    first.close()
    with open_store().get_connection() as conn:
        assert conn.get_logbook(book.uuid).uuid == book.uuid


def test_upgrade_and_validate_are_idempotent(conn: Any) -> None:
    conn.upgrade()
    conn.upgrade()
    conn.validate()
    conn.validate()


def test_copying_stores_say_where_they_are_and_which_codec(backend: Any, copies: None) -> None:
    assert backend.codec.name == "json"
    assert "://" in backend.url


def test_an_unknown_option_is_refused_by_name(store_url: str) -> None:
    from tideflow import persistence

    # copying stores suggest the option meant; memory takes none at all
    pattern = r"'codek'" if store_url == "memory://" else r"'codek'.*codec"
    with pytest.raises(TypeError, match=pattern):
        persistence.connect(store_url, codek="json")


# -- log books -----------------------------------------------------------------------------


def test_a_log_book_round_trips(conn: Any, reopen: Any) -> None:
    first, second = flow_with("a", "b", name="one"), flow_with("c", name="two")
    book = book_with(first, second, name="my book")
    book.meta = {"purpose": "test", "n": (1, 2)}
    conn.save_logbook(book)

    got = reopen().get_logbook(book.uuid)
    assert (got.name, got.uuid) == ("my book", book.uuid)
    same(got.meta, {"purpose": "test", "n": (1, 2)})
    # times are floats in every store: kept to the microsecond at least
    assert got.created_at == pytest.approx(book.created_at, abs=1e-6)
    assert got.updated_at == pytest.approx(book.updated_at, abs=1e-6)
    assert sorted(f.uuid for f in got) == sorted([first.uuid, second.uuid])
    one = got.find(first.uuid)
    assert one is not None
    assert [a.name for a in one] == ["a", "b"]
    assert [a.uuid for a in one] == [a.uuid for a in first]


def test_a_lazy_log_book_holds_flows_without_atoms(conn: Any, reopen: Any, copies: None) -> None:
    flow_detail = flow_with("a", "b")
    book = conn.save_logbook(book_with(flow_detail))
    lazy = reopen().get_logbook(book.uuid, lazy=True)
    assert [f.uuid for f in lazy] == [flow_detail.uuid]
    assert [len(f) for f in lazy] == [0]
    assert [len(f) for f in reopen().get_flows_for_book(book.uuid, lazy=True)] == [0]
    assert len(reopen().get_flow_details(flow_detail.uuid, lazy=True)) == 0
    assert len(reopen().get_flow_details(flow_detail.uuid)) == 2


def test_saving_a_log_book_again_adds_and_updates_flows(conn: Any, reopen: Any) -> None:
    first = flow_with("a")
    book = book_with(first)
    conn.save_logbook(book)
    first.state = FlowState.RUNNING
    first.find_by_name("a").state = AtomState.RUNNING  # type: ignore[union-attr]
    second = flow_with("b", name="second")
    book.add(second)
    conn.save_logbook(book)

    got = reopen().get_logbook(book.uuid)
    assert sorted(f.uuid for f in got) == sorted([first.uuid, second.uuid])
    stored = got.find(first.uuid)
    assert stored is not None
    assert stored.state == FlowState.RUNNING
    assert [a.state for a in stored] == [AtomState.RUNNING]


def test_get_logbooks_lists_every_book(conn: Any, reopen: Any) -> None:
    books = [book_with(flow_with("a"), name=f"book {i}") for i in range(3)]
    for book in books:
        conn.save_logbook(book)
    got = list(reopen().get_logbooks())
    assert sorted(b.uuid for b in got) == sorted(b.uuid for b in books)
    assert all(len(b) == 1 for b in got)


def test_destroy_logbook_deletes_its_flows_and_atoms(conn: Any, reopen: Any) -> None:
    doomed_flow = flow_with("a", "b")
    doomed = book_with(doomed_flow)
    kept_flow = flow_with("c")
    kept = book_with(kept_flow, name="kept")
    conn.save_logbook(doomed)
    conn.save_logbook(kept)
    atom_uuid = doomed_flow.find_by_name("a").uuid  # type: ignore[union-attr]

    conn.destroy_logbook(doomed.uuid)

    other = reopen()
    with pytest.raises(NotFoundError):
        other.get_logbook(doomed.uuid)
    with pytest.raises(NotFoundError):
        other.get_flow_details(doomed_flow.uuid)
    with pytest.raises(NotFoundError):
        other.get_atom_details(atom_uuid)
    assert [b.uuid for b in other.get_logbooks()] == [kept.uuid]
    assert [f.uuid for f in other.iter_runs()] == [kept_flow.uuid]
    assert [a.name for a in other.get_atoms_for_flow(kept_flow.uuid)] == ["c"]


def test_destroying_a_missing_book_is_not_found(conn: Any) -> None:
    with pytest.raises(NotFoundError, match="no-such-book"):
        conn.destroy_logbook("no-such-book")


@pytest.mark.parametrize(
    "method",
    [
        "get_logbook",
        "get_flows_for_book",
        "get_flow_details",
        "get_atoms_for_flow",
        "get_atom_details",
    ],
)
def test_a_missing_record_is_not_found_by_uuid(conn: Any, method: str) -> None:
    conn.save_logbook(book_with(flow_with("a")))
    missing = "0badc0de-0000-4000-8000-000000000000"

    def read() -> None:
        result = getattr(conn, method)(missing)
        if method in ("get_flows_for_book", "get_atoms_for_flow"):
            list(result)  # a lazy store may look only when iterated

    with pytest.raises(NotFoundError, match=missing):
        read()


# -- flow and atom records -----------------------------------------------------------------


def test_every_field_round_trips(conn: Any, reopen: Any) -> None:
    want = full_flow()
    conn.save_logbook(book_with(want))

    got = reopen().get_flow_details(want.uuid)
    assert (got.name, got.uuid, got.state) == ("everything", want.uuid, FlowState.REVERTED)
    same(got.meta, want.meta, "flow meta")
    same(got.injected, want.injected, "store values")
    assert [a.name for a in got] == ["ok", "failed", "reverted", "revert-failed", "retry"]
    for want_atom in want:
        got_atom = got.find_by_name(want_atom.name)
        assert got_atom is not None
        assert type(got_atom) is type(want_atom)
        assert got_atom.uuid == want_atom.uuid
        assert got_atom.state == want_atom.state, want_atom.name
        assert got_atom.intention == want_atom.intention, want_atom.name
        same(got_atom.results, want_atom.results, f"{want_atom.name} results")
        same(got_atom.revert_results, want_atom.revert_results, f"{want_atom.name} revert")
        same(got_atom.meta, want_atom.meta, f"{want_atom.name} meta")
        assert got_atom.version == want_atom.version, want_atom.name
        for field in ("failure", "revert_failure"):
            wanted = getattr(want_atom, field)
            if wanted is None:
                assert getattr(got_atom, field) is None, f"{want_atom.name} {field}"
            else:
                same_failure(getattr(got_atom, field), wanted)

    retry = got.find_by_name("retry")
    assert isinstance(retry, RetryDetail)
    assert retry.decision == "RETRY"
    want_retry = want.find_by_name("retry")
    assert isinstance(want_retry, RetryDetail)
    assert len(retry.history) == 2
    for (got_value, got_failures), (want_value, want_failures) in zip(
        retry.history, want_retry.history, strict=True
    ):
        same(got_value, want_value, "provided value")
        assert sorted(got_failures) == sorted(want_failures)
        for name, failure in want_failures.items():
            same_failure(got_failures[name], failure)


def test_one_atom_record_reads_back_alone(conn: Any, reopen: Any) -> None:
    want = full_flow()
    conn.save_logbook(book_with(want))
    wanted = want.find_by_name("failed")
    assert wanted is not None
    got = reopen().get_atom_details(wanted.uuid)
    assert (got.name, got.state) == ("failed", AtomState.FAILURE)
    same_failure(got.failure, wanted.failure)  # type: ignore[arg-type]


def test_atoms_come_back_in_the_order_first_saved(conn: Any, reopen: Any) -> None:
    names = ["zeta", "alpha", "mu", "beta", "omega", "delta", "kappa", "gamma"]
    flow_detail = flow_with(*names)
    conn.save_logbook(book_with(flow_detail))
    assert [a.name for a in reopen().get_atoms_for_flow(flow_detail.uuid)] == names

    # updating an early atom does not move it; atoms added later go last
    early = flow_detail.find_by_name("alpha")
    assert early is not None
    early.state = AtomState.SUCCESS
    conn.update_atom_details(early)
    flow_detail.add(task("aardvark"))
    conn.update_flow_details(flow_detail)
    late = task("abacus")
    flow_detail.add(late)
    conn.save_round(flow_detail, [late, early])

    want = [*names, "aardvark", "abacus"]
    assert [a.name for a in reopen().get_atoms_for_flow(flow_detail.uuid)] == want
    assert [a.name for a in reopen().get_flow_details(flow_detail.uuid)] == want


def test_update_flow_details_writes_the_flow_and_its_atoms(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a", "b")
    conn.save_logbook(book_with(flow_detail))
    flow_detail.state = FlowState.SUCCESS
    flow_detail.meta["done"] = True
    for atom in flow_detail:
        atom.state = AtomState.SUCCESS
        atom.results = (atom.name, 1)
    conn.update_flow_details(flow_detail)

    got = reopen().get_flow_details(flow_detail.uuid)
    assert got.state == FlowState.SUCCESS
    assert got.meta == {"done": True}
    assert [(a.state, a.results) for a in got] == [
        (AtomState.SUCCESS, ("a", 1)),
        (AtomState.SUCCESS, ("b", 1)),
    ]


def test_update_atom_details_writes_one_atom(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a", "b")
    conn.save_logbook(book_with(flow_detail))
    atom = flow_detail.find_by_name("b")
    assert atom is not None
    atom.state = AtomState.FAILURE
    atom.failure = raised_failure()
    conn.update_atom_details(atom)

    got = reopen().get_atoms_for_flow(flow_detail.uuid)
    assert [a.state for a in got] == [AtomState.PENDING, AtomState.FAILURE]
    same_failure(got[1].failure, atom.failure)


def test_updating_records_never_saved_is_not_found(conn: Any) -> None:
    conn.save_logbook(book_with(flow_with("a")))
    stray = flow_with("x", name="stray")
    with pytest.raises(NotFoundError, match=stray.uuid):
        conn.update_flow_details(stray)
    atom = task("lonely")
    with pytest.raises(NotFoundError, match=atom.uuid):
        conn.update_atom_details(atom)


def test_reads_return_copies(conn: Any, copies: None) -> None:
    flow_detail = flow_with("a")
    book = conn.save_logbook(book_with(flow_detail))
    read = conn.get_flow_details(flow_detail.uuid)
    read.state = FlowState.FAILURE
    read.meta["changed"] = True
    atom = next(iter(read))
    atom.state = AtomState.SUCCESS
    atom.results = "changed"
    conn.get_logbook(book.uuid).meta["changed"] = True
    single = conn.get_atom_details(atom.uuid)
    single.results = "changed too"

    again = conn.get_flow_details(flow_detail.uuid)
    assert (again.state, again.meta) == (FlowState.PENDING, {})
    assert [(a.state, a.results) for a in again] == [(AtomState.PENDING, None)]
    assert conn.get_logbook(book.uuid).meta == {}
    assert conn.get_atom_details(atom.uuid).results is None


# -- save_round ----------------------------------------------------------------------------


def test_save_round_writes_the_flow_and_the_given_atoms(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a", "b", "c")
    conn.save_logbook(book_with(flow_detail))
    a, b, _ = list(flow_detail)
    flow_detail.state = FlowState.RUNNING
    a.state, a.results = AtomState.SUCCESS, {1: "one"}
    b.state = AtomState.RUNNING
    new = task("d", AtomState.RUNNING)
    flow_detail.add(new)
    conn.save_round(flow_detail, [a, b, new])

    got = reopen().get_flow_details(flow_detail.uuid)
    assert got.state == FlowState.RUNNING
    assert [(x.name, x.state) for x in got] == [
        ("a", AtomState.SUCCESS),
        ("b", AtomState.RUNNING),
        ("c", AtomState.PENDING),
        ("d", AtomState.RUNNING),
    ]
    same(got.find_by_name("a").results, {1: "one"})  # type: ignore[union-attr]


def test_save_round_of_a_flow_never_stored_is_not_found(conn: Any) -> None:
    stray = flow_with("a")
    with pytest.raises(NotFoundError, match=stray.uuid):
        conn.save_round(stray, list(stray))


def test_save_round_is_all_or_nothing(conn: Any, reopen: Any, copies: None) -> None:
    flow_detail = flow_with("first", "second", "third")
    conn.save_logbook(book_with(flow_detail))
    first, second, third = list(flow_detail)
    flow_detail.state = FlowState.RUNNING
    first.state, first.results = AtomState.SUCCESS, 1
    second.state, second.results = AtomState.SUCCESS, object()  # JSON cannot keep it
    third.state, third.results = AtomState.SUCCESS, 3

    with pytest.raises(UnstorableValueError, match="second") as caught:
        conn.save_round(flow_detail, [first, second, third])
    assert caught.value.atom == "second"
    assert "object" in str(caught.value)

    got = reopen().get_flow_details(flow_detail.uuid)
    assert got.state == FlowState.PENDING
    assert [(a.state, a.results) for a in got] == [(AtomState.PENDING, None)] * 3


def test_an_unstorable_store_value_is_refused_before_anything_is_written(
    conn: Any, reopen: Any, copies: None
) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    flow_detail.injected = {"handle": threading.Lock()}
    flow_detail.find_by_name("a").state = AtomState.SUCCESS  # type: ignore[union-attr]
    with pytest.raises(UnstorableValueError, match="transient"):
        conn.save_round(flow_detail, list(flow_detail))
    assert [a.state for a in reopen().get_atoms_for_flow(flow_detail.uuid)] == [AtomState.PENDING]


def test_save_round_is_fenced_by_its_owner(backend: Any, conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    mine, theirs = new_owner(), new_owner()
    atom = flow_detail.find_by_name("a")
    assert atom is not None

    conn.claim_run(flow_detail.uuid, mine)
    atom.state = AtomState.RUNNING
    conn.save_round(flow_detail, [atom], owner=mine)
    conn.release_run(flow_detail.uuid, mine)
    conn.claim_run(flow_detail.uuid, theirs)

    atom.state, atom.results = AtomState.SUCCESS, "late"
    with pytest.raises(RunOwnedError, match=str(os.getpid())):
        conn.save_round(flow_detail, [atom], owner=mine)
    conn.release_run(flow_detail.uuid, theirs)
    with pytest.raises(RunOwnedError):  # nobody owns it: still not this engine's
        conn.save_round(flow_detail, [atom], owner=mine)

    if not backend.shares_records:
        got = reopen().get_atoms_for_flow(flow_detail.uuid)
        assert [(a.state, a.results) for a in got] == [(AtomState.RUNNING, None)]


def test_a_fenced_write_that_loses_writes_nothing(conn: Any, reopen: Any, copies: None) -> None:
    flow_detail = flow_with("a", "b")
    conn.save_logbook(book_with(flow_detail))
    conn.claim_run(flow_detail.uuid, new_owner())
    flow_detail.state = FlowState.RUNNING
    for atom in flow_detail:
        atom.state = AtomState.SUCCESS
    with pytest.raises(RunOwnedError):
        conn.save_round(flow_detail, list(flow_detail), owner=new_owner())
    got = reopen().get_flow_details(flow_detail.uuid)
    assert got.state == FlowState.PENDING
    assert [a.state for a in got] == [AtomState.PENDING] * 2


def test_an_unfenced_round_writes_whoever_owns_the_run(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    conn.claim_run(flow_detail.uuid, new_owner())
    flow_detail.state = FlowState.SUCCESS
    conn.save_round(flow_detail, [])
    assert reopen().get_flow_details(flow_detail.uuid).state == FlowState.SUCCESS


def test_a_round_keeps_the_owner_and_the_book(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a")
    book = conn.save_logbook(book_with(flow_detail))
    owner = new_owner()
    conn.claim_run(flow_detail.uuid, owner)
    conn.save_round(flow_detail, list(flow_detail), owner=owner)
    conn.update_flow_details(flow_detail)
    conn.save_round(flow_detail, list(flow_detail), owner=owner)  # still the owner
    other = reopen()
    assert [f.uuid for f in other.get_flows_for_book(book.uuid)] == [flow_detail.uuid]
    with pytest.raises(RunOwnedError):
        other.claim_run(flow_detail.uuid, new_owner())


# -- claims --------------------------------------------------------------------------------


def test_claim_and_release(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    first, second = new_owner(), new_owner()

    conn.claim_run(flow_detail.uuid, first)
    conn.claim_run(flow_detail.uuid, first)  # again: already its own
    with pytest.raises(RunOwnedError, match=rf"process {os.getpid()} on host") as caught:
        reopen().claim_run(flow_detail.uuid, second)
    assert "wait" in str(caught.value)

    conn.release_run(flow_detail.uuid, second)  # not the owner: nothing happens
    with pytest.raises(RunOwnedError):
        conn.claim_run(flow_detail.uuid, second)

    conn.release_run(flow_detail.uuid, first)
    conn.release_run(flow_detail.uuid, first)  # twice is harmless
    reopen().claim_run(flow_detail.uuid, second)
    with pytest.raises(RunOwnedError):
        conn.claim_run(flow_detail.uuid, first)


def test_claiming_a_missing_run_is_not_found(conn: Any) -> None:
    with pytest.raises(NotFoundError, match="0badc0de"):
        conn.claim_run("0badc0de-0000-4000-8000-000000000000", new_owner())


def test_a_dead_owner_on_this_host_is_taken_over(conn: Any) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    host = new_owner().partition(":")[0]  # this host, as owner tokens name it
    dead = f"{host}:{int(child.stdout)}:0123456789ab"
    conn.claim_run(flow_detail.uuid, dead)
    taker = new_owner()
    conn.claim_run(flow_detail.uuid, taker)
    conn.save_round(flow_detail, [], owner=taker)


def test_an_owner_on_another_host_is_never_taken_over(conn: Any) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    elsewhere = "some-other-host.example:1:0123456789ab"
    conn.claim_run(flow_detail.uuid, elsewhere)
    with pytest.raises(RunOwnedError, match=r"some-other-host\.example"):
        conn.claim_run(flow_detail.uuid, new_owner())


def test_claims_are_exclusive_across_threads(backend: Any, conn: Any) -> None:
    flow_detail = flow_with("a")
    conn.save_logbook(book_with(flow_detail))
    winners: list[str] = []
    start = threading.Barrier(6)

    def contend() -> None:
        owner = new_owner()
        with backend.get_connection() as mine:
            start.wait()
            try:
                mine.claim_run(flow_detail.uuid, owner)
            except RunOwnedError:
                return
            winners.append(owner)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


# -- listing runs --------------------------------------------------------------------------


def _saved_runs(conn: Any, states: list[FlowState]) -> list[FlowDetail]:
    """One run per state, each in its own book, saved in this order (oldest first)."""
    runs = []
    for i, state in enumerate(states):
        flow_detail = flow_with("a", "b", name=f"run {i}")
        flow_detail.state = state
        conn.save_logbook(book_with(flow_detail, name=f"book {i}"))
        runs.append(flow_detail)
        time.sleep(0.002)  # distinct update times, whatever the clock's resolution
    return runs


def test_iter_runs_lists_the_latest_first(conn: Any, reopen: Any) -> None:
    runs = _saved_runs(conn, [FlowState.SUCCESS, FlowState.FAILURE, FlowState.RUNNING])
    got = list(reopen().iter_runs())
    assert [f.uuid for f in got] == [f.uuid for f in reversed(runs)]
    assert [f.state for f in got] == [FlowState.RUNNING, FlowState.FAILURE, FlowState.SUCCESS]


def test_iter_runs_filters_by_state_and_limits(conn: Any, reopen: Any) -> None:
    runs = _saved_runs(
        conn, [FlowState.SUCCESS, FlowState.RUNNING, FlowState.SUCCESS, FlowState.SUCCESS]
    )
    other = reopen()
    assert [f.uuid for f in other.iter_runs(state="SUCCESS")] == [
        runs[3].uuid,
        runs[2].uuid,
        runs[0].uuid,
    ]
    assert [f.uuid for f in other.iter_runs(state=FlowState.RUNNING)] == [runs[1].uuid]
    assert list(other.iter_runs(state="REVERTED")) == []
    assert [f.uuid for f in other.iter_runs(limit=2)] == [runs[3].uuid, runs[2].uuid]
    assert [f.uuid for f in other.iter_runs(state="SUCCESS", limit=1)] == [runs[3].uuid]


def test_iter_runs_holds_flows_without_atoms(conn: Any, reopen: Any, copies: None) -> None:
    _saved_runs(conn, [FlowState.SUCCESS])
    assert [len(f) for f in reopen().iter_runs()] == [0]


def test_a_written_run_moves_to_the_front(conn: Any, reopen: Any) -> None:
    runs = _saved_runs(conn, [FlowState.RUNNING, FlowState.RUNNING, FlowState.RUNNING])
    oldest = runs[0]
    oldest.state = FlowState.SUCCESS
    conn.save_round(oldest, [])
    assert [f.uuid for f in reopen().iter_runs()] == [
        oldest.uuid,
        runs[2].uuid,
        runs[1].uuid,
    ]


# -- clear_all -----------------------------------------------------------------------------


def test_clear_all_deletes_everything(conn: Any, reopen: Any) -> None:
    flow_detail = flow_with("a")
    book = conn.save_logbook(book_with(flow_detail))
    conn.claim_run(flow_detail.uuid, new_owner())
    conn.clear_all()
    other = reopen()
    assert list(other.get_logbooks()) == []
    assert list(other.iter_runs()) == []
    with pytest.raises(NotFoundError):
        other.get_logbook(book.uuid)
    with pytest.raises(NotFoundError):
        other.get_flow_details(flow_detail.uuid)
    # the store is usable afterwards
    again = flow_with("b")
    conn.save_logbook(book_with(again))
    assert [f.uuid for f in other.iter_runs()] == [again.uuid]


# -- codecs --------------------------------------------------------------------------------


def test_the_json_codec_refuses_an_object_naming_the_atom(conn: Any, copies: None) -> None:
    flow_detail = flow_with("a", "point")
    conn.save_logbook(book_with(flow_detail))
    atom = flow_detail.find_by_name("point")
    assert atom is not None
    atom.state, atom.results = AtomState.SUCCESS, Point(1, 2)
    with pytest.raises(UnstorableValueError, match=r"'point'.*Point.*codec='pickle'") as caught:
        conn.update_atom_details(atom)
    assert caught.value.atom == "point"


def test_the_pickle_codec_keeps_objects_json_cannot(open_store: Any, copies: None) -> None:
    flow_detail = flow_with("point")
    atom = flow_detail.find_by_name("point")
    assert atom is not None
    atom.state, atom.results = AtomState.SUCCESS, {"p": Point(1, 2), "t": (1,)}
    trusting = open_store(codec="pickle")
    assert trusting.codec.name == "pickle"
    with trusting.get_connection() as conn:
        conn.save_logbook(book_with(flow_detail))

    with open_store(codec="pickle").get_connection() as conn:
        got = conn.get_atom_details(atom.uuid)
    same(got.results, {"p": Point(1, 2), "t": (1,)})

    with open_store().get_connection() as conn, pytest.raises(StoreError, match="pickle"):
        conn.get_atom_details(atom.uuid)


# -- threads -------------------------------------------------------------------------------


def test_a_backend_serves_several_threads(backend: Any) -> None:
    errors: list[BaseException] = []
    saved: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            with backend.get_connection() as conn:
                flow_detail = flow_with("a", "b", name=f"flow {i}")
                conn.save_logbook(book_with(flow_detail, name=f"book {i}"))
                for atom in flow_detail:
                    atom.state = AtomState.SUCCESS
                    atom.results = i
                conn.save_round(flow_detail, list(flow_detail))
                got = conn.get_flow_details(flow_detail.uuid)
                assert [a.results for a in got] == [i, i]
                with lock:
                    saved.append(flow_detail.uuid)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with backend.get_connection() as conn:
        assert sorted(f.uuid for f in conn.iter_runs()) == sorted(saved)


# -- what is not a store of this version ---------------------------------------------
#
# Made by hand for the stores in a file or directory; a server's database is shared by
# every test run, so these are not played there (tests/persistence covers each server).


def _snapshot(where: Path) -> Any:
    """What is stored at ``where``: every file's bytes (and a SQLite database's content)."""
    if where.is_dir():
        return {str(p.relative_to(where)): p.read_bytes() for p in where.rglob("*") if p.is_file()}
    content = where.read_bytes()
    try:
        with closing(sqlite3.connect(f"file:{where}?mode=ro", uri=True)) as db:
            return content, list(db.iterdump())
    except sqlite3.DatabaseError:
        return content


def _opening_fails(url: str, error: type[Exception], match: str) -> StoreError:
    from tideflow import persistence

    with pytest.raises(error, match=match) as caught:  # noqa: PT012  # open or first use
        store = persistence.connect(url)
        try:
            with store.get_connection() as conn:
                list(conn.get_logbooks())
        finally:
            store.close()
    return caught.value  # type: ignore[return-value]


def test_a_store_of_a_newer_tideflow_is_refused_and_left_alone(
    store_id: str, store_url: str, store_location: Path, backend: Any, conn: Any
) -> None:
    where = store_location
    conn.save_logbook(book_with(flow_with("a")))
    conn.close()
    backend.close()
    if store_id == "directory":
        marker = where / "tideflow-store.json"
        stored = json.loads(marker.read_text())
        marker.write_text(json.dumps({**stored, "schema_version": SCHEMA_VERSION + 1}))
    else:
        with closing(sqlite3.connect(where)) as db, db:
            db.execute(
                "UPDATE tideflow_meta SET value = ? WHERE name = 'schema_version'",
                (str(SCHEMA_VERSION + 1),),
            )
    before = _snapshot(where)

    error = _opening_fails(store_url, StoreVersionError, "newer")
    assert str(where) in str(error)
    assert "upgrade tideflow" in str(error)
    assert _snapshot(where) == before


def test_what_is_not_a_store_is_refused_and_left_alone(
    store_id: str, store_url: str, store_location: Path
) -> None:
    where = store_location.with_name("foreign")
    if store_id == "directory":
        where.mkdir()
        (where / "notes.txt").write_text("somebody else's")
    else:
        where.write_text("somebody else's notes, not a database\n" * 100)
    url = store_url.split("://", 1)[0] + ("://" if store_id == "directory" else ":///") + str(where)
    before = _snapshot(where)

    error = _opening_fails(url, StoreVersionError, "not a")
    assert str(where) in str(error)
    assert _snapshot(where) == before
