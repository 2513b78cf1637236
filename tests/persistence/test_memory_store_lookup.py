"""The memory store finds a flow record at once through an index its log books keep in
step, and still finds records that moved between books behind its back (records are
shared objects)."""

from __future__ import annotations

import copy
import gc
import pickle

import pytest

import tideflow
from tideflow.errors import NotFoundError
from tideflow.persistence.memory import MemoryBackend
from tideflow.persistence.models import FlowDetail, LogBook


def test_a_record_is_found_where_it_was_seen_and_wherever_it_moved() -> None:
    store = MemoryBackend()
    conn = store.get_connection()
    first, second = LogBook("first"), LogBook("second")
    flow = FlowDetail("f")
    first.add(flow)
    conn.save_logbook(first)
    conn.save_logbook(second)
    assert conn.get_flow_details(flow.uuid) is flow
    assert store._found_in[flow.uuid] == first.uuid  # the index
    # moved behind the store's back: out of the first book, into the second
    first._flows.pop(flow.uuid)
    second.add(flow)
    assert conn.get_flow_details(flow.uuid) is flow
    assert store._found_in[flow.uuid] == second.uuid
    conn.destroy_logbook(second.uuid)
    with pytest.raises(NotFoundError, match=flow.uuid):
        conn.get_flow_details(flow.uuid)
    assert flow.uuid not in store._found_in


def test_many_books_each_record_found() -> None:
    store = MemoryBackend()
    conn = store.get_connection()
    flows = []
    for n in range(500):
        book = LogBook(f"b{n}")
        flow = FlowDetail(f"f{n}")
        book.add(flow)
        conn.save_logbook(book)
        flows.append(flow)
    for flow in reversed(flows):
        assert conn.get_flow_details(flow.uuid) is flow
    conn.clear_all()
    assert store._found_in == {}
    with pytest.raises(NotFoundError, match=flows[0].uuid):
        conn.get_flow_details(flows[0].uuid)


def test_a_record_added_to_a_saved_book_is_found_and_a_miss_looks_in_no_book(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryBackend()
    conn = store.get_connection()
    books = [LogBook(f"b{n}") for n in range(200)]
    for book in books:
        conn.save_logbook(book)
    late = FlowDetail("late")
    books[150].add(late)  # after the save, behind the store's back
    looked: list[str] = []
    real_find = LogBook.find

    def counting_find(book: LogBook, uuid: str) -> FlowDetail | None:
        looked.append(book.uuid)
        return real_find(book, uuid)

    monkeypatch.setattr(LogBook, "find", counting_find)
    assert conn.get_flow_details(late.uuid) is late
    assert looked == [books[150].uuid]
    looked.clear()
    with pytest.raises(NotFoundError, match="nope"):
        conn.get_flow_details("nope")
    assert looked == []  # a record nobody stored is not looked for book by book


def test_destroyed_or_cleared_books_stop_feeding_the_index() -> None:
    store = MemoryBackend()
    conn = store.get_connection()
    kept, gone = LogBook("kept"), LogBook("gone")
    in_gone = FlowDetail("in-gone")
    gone.add(in_gone)
    conn.save_logbook(kept)
    conn.save_logbook(gone)
    conn.destroy_logbook(gone.uuid)
    assert in_gone.uuid not in store._found_in
    gone.add(FlowDetail("after"))  # the destroyed book no longer writes to the index
    assert len(store._found_in) == 0
    kept.add(FlowDetail("k"))
    assert len(store._found_in) == 1
    conn.clear_all()
    kept.add(FlowDetail("k2"))
    assert store._found_in == {}
    assert kept._indexes == ()
    assert gone._indexes == ()


def test_a_copied_or_pickled_book_carries_no_index() -> None:
    store = MemoryBackend()
    book = LogBook("b")
    book.add(FlowDetail("f"))
    store.get_connection().save_logbook(book)
    assert [ref() for ref in book._indexes] == [store._found_in]
    for twin in (pickle.loads(pickle.dumps(book)), copy.deepcopy(book), copy.copy(book)):
        assert twin._indexes == ()
        assert [f.name for f in twin] == ["f"]
        twin.add(FlowDetail("only-in-the-twin"))
    assert len(store._found_in) == 1


def test_one_book_in_two_stores_feeds_both() -> None:
    one, two = MemoryBackend(), MemoryBackend()
    book = LogBook("shared")
    one.get_connection().save_logbook(book)
    two.get_connection().save_logbook(book)
    one.get_connection().save_logbook(book)  # saved again: indexed once
    assert len(book._indexes) == 2
    flow = FlowDetail("f")
    book.add(flow)
    assert one.get_connection().get_flow_details(flow.uuid) is flow
    assert two.get_connection().get_flow_details(flow.uuid) is flow


def test_a_book_lets_go_of_the_stores_that_are_gone() -> None:
    """A long-lived book saved in many short-lived memory stores (an engine without a
    store makes one per run) keeps none of them alive, and add() forgets them."""
    book = LogBook("kept for long")
    for n in range(50):
        store = MemoryBackend()
        store.get_connection().save_logbook(book)
        book.add(FlowDetail(f"run {n}"))
        assert len(book._indexes) <= 2  # this store's, and at most one not yet forgotten
    del store
    gc.collect()
    book.add(FlowDetail("after"))
    assert book._indexes == ()
    runs = [tideflow.load(tideflow.LinearFlow("f").add(Noop("t")), book=book) for _ in range(20)]
    for engine in runs:
        engine.run()
    assert len(book._indexes) == len(runs)  # each engine's own store, alive with it
    del runs, engine
    gc.collect()
    book.add(FlowDetail("at the end"))
    assert book._indexes == ()


class Noop(tideflow.Task):
    def execute(self) -> None:
        """Nothing."""
