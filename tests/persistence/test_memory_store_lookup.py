"""The memory store finds a flow record at once where it last saw it, and still finds
records that moved between log books behind its back (records are shared objects)."""

from __future__ import annotations

import pytest

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
    assert store._found_in[flow.uuid] == first.uuid  # the hint
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
