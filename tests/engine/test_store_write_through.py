"""A store that copies records (as every durable store does) ends up holding what the
engine holds: every atom record and the flow record, after every kind of run.

The memory store shares the engine's own record objects, so it never shows a change
the engine forgot to write; this store keeps copies made at each write, so it does.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, UnorderedFlow
from tideflow.persistence import LogBook


class CopyingStore:
    """Keeps a copy (``to_dict()``) of each record as it was written."""

    shares_records = False

    def __init__(self, *, batch: bool) -> None:
        self.flows: dict[str, dict[str, Any]] = {}
        self.atoms: dict[str, dict[str, Any]] = {}
        self.batch = batch
        self.lock = threading.Lock()

    def get_connection(self) -> Any:
        return BatchConnection(self) if self.batch else Connection(self)


class Connection:
    """Writes one record at a time (``update_*``)."""

    def __init__(self, store: CopyingStore) -> None:
        self.store = store

    def close(self) -> None:
        pass

    def save_logbook(self, book: LogBook) -> LogBook:
        for flow_detail in book:
            self.update_flow_details(flow_detail)
            for atom_detail in flow_detail:
                self.update_atom_details(atom_detail)
        return book

    def update_flow_details(self, flow_detail: Any) -> Any:
        data = flow_detail.to_dict()
        del data["atoms"]
        with self.store.lock:
            self.store.flows[flow_detail.uuid] = data
        return flow_detail

    def update_atom_details(self, atom_detail: Any) -> Any:
        with self.store.lock:
            self.store.atoms[atom_detail.name] = atom_detail.to_dict()
        return atom_detail


class BatchConnection(Connection):
    """Writes a round's changes together (``save_atom_details``)."""

    def save_atom_details(self, flow_detail: Any, atom_details: list[Any]) -> None:
        self.update_flow_details(flow_detail)
        for atom_detail in atom_details:
            self.update_atom_details(atom_detail)


@pytest.fixture(params=[False, True], ids=["one-by-one", "batched"])
def store(request: pytest.FixtureRequest) -> CopyingStore:
    return CopyingStore(batch=request.param)


def assert_store_holds_the_records(engine: tideflow.Engine, store: CopyingStore) -> None:
    flow_detail = engine.storage.flow_detail
    expected_flow = flow_detail.to_dict()
    expected_atoms = {a["name"]: a for a in expected_flow.pop("atoms")}
    assert store.flows[flow_detail.uuid] == expected_flow
    assert store.atoms == expected_atoms


def mixed_flow(make, **options):
    return LinearFlow("f").add(
        make("a", provides="x", value=1, revert_value="a undone"),
        UnorderedFlow("u").add(
            make("b", requires=["x"], provides="y", compute=lambda x: x + 1),
            make("c", revert_value="c undone", **options.get("c", {})),
        ),
        GraphFlow("g").add(
            make("d", requires=["y"], provides="z", compute=lambda y: y * 10),
            make("e", requires=["z"], **options.get("e", {})),
        ),
    )


def test_a_successful_run_is_in_the_store(load, make, store):
    engine = load(mixed_flow(make), backend=store)
    engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.atoms["d"]["state"] == "SUCCESS"
    assert store.atoms["d"]["results"] == 20
    assert store.flows[engine.storage.flow_uuid]["state"] == "SUCCESS"


def test_a_reverted_run_is_in_the_store(load, make, store):
    engine = load(mixed_flow(make, e={"fail": OSError("e failed")}), backend=store)
    with pytest.raises(OSError, match="e failed"):
        engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.atoms["e"]["failure"]["exception_str"] == "e failed"
    assert store.atoms["a"]["revert_results"] == "a undone"
    assert store.atoms["a"]["intention"] == "REVERT"
    assert store.flows[engine.storage.flow_uuid]["state"] == "REVERTED"


def test_a_failed_revert_is_in_the_store(load, make, store):
    flow = mixed_flow(
        make, c={"revert_fail": ValueError("c revert broke")}, e={"fail": OSError("e failed")}
    )
    engine = load(flow, backend=store)
    with pytest.raises(ValueError, match="c revert broke"):
        engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.atoms["c"]["state"] == "REVERT_FAILURE"
    assert store.atoms["c"]["revert_failure"]["exception_str"] == "c revert broke"
    assert store.flows[engine.storage.flow_uuid]["state"] == "FAILURE"


def test_reset_is_in_the_store(load, make, store):
    engine = load(mixed_flow(make, e={"fail": OSError("e failed")}), backend=store)
    with pytest.raises(OSError, match="e failed"):
        engine.run()
    engine.reset()
    assert_store_holds_the_records(engine, store)
    assert {a["state"] for a in store.atoms.values()} == {"PENDING"}
    assert all(a["revert_results"] is None for a in store.atoms.values())
    assert store.flows[engine.storage.flow_uuid]["state"] == "PENDING"


@pytest.mark.local_only("the task calls suspend() on the engine object of this process")
def test_a_suspended_run_is_in_the_store_and_resumes(load, make, store):
    holder: dict[str, tideflow.Engine] = {}
    flow = LinearFlow("f").add(
        make("a", provides="x", value=1),
        make("b", on_execute=lambda task: holder["engine"].suspend()),
        make("c"),
    )
    engine = holder["engine"] = load(flow, backend=store)
    engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.flows[engine.storage.flow_uuid]["state"] == "SUSPENDED"
    assert store.atoms["c"]["state"] == "PENDING"
    engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.atoms["c"]["state"] == "SUCCESS"


@pytest.mark.local_only("the task reads the store object of this process while it runs")
def test_each_round_is_in_the_store_before_the_next_starts(load, make, store):
    # when b runs, a's success (an earlier round) has been written
    seen = {}

    def look(task):
        seen.update(store.atoms["a"])

    flow = LinearFlow("f").add(make("a", value=7), make("b", on_execute=look))
    engine = load(flow, backend=store)
    engine.run()
    assert seen["state"] == "SUCCESS"
    assert seen["results"] == 7


def test_store_values_are_in_the_store(load, make, store):
    engine = load(LinearFlow("f").add(make("a", requires=["k"])), store={"k": 1}, backend=store)
    engine.storage.inject({"extra": 2})
    engine.run()
    assert_store_holds_the_records(engine, store)
    assert store.flows[engine.storage.flow_uuid]["injected"] == {"k": 1, "extra": 2}
