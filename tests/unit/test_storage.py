"""Storage's own API (TaskFlow's names): records, progress, values, and its messages.

Engine tests reach Storage through runs; these call it directly, as listeners and
TaskFlow programs do. (Written where mutation testing found Storage unchecked: see
docs/testing.md.)
"""

from __future__ import annotations

from typing import Any

import pytest

import tideflow
from tideflow import LinearFlow, Task
from tideflow._storage import Storage
from tideflow.persistence import FlowDetail
from tideflow.persistence.memory import MemoryBackend


class T(Task):
    def execute(self, **kwargs):
        return kwargs


class Named(Task):
    def execute(self, **kwargs):
        return self.name


class Copying:
    """A store that copies records, counting what it was given."""

    shares_records = False

    def __init__(self) -> None:
        self.atoms: dict[str, dict[str, Any]] = {}
        self.flow_writes = 0

    def get_connection(self):
        return self

    def close(self) -> None:
        pass

    def save_logbook(self, book):
        return book

    def update_flow_details(self, flow_detail):
        self.flow_writes += 1
        return flow_detail

    def update_atom_details(self, atom_detail):
        self.atoms[atom_detail.name] = atom_detail.to_dict()
        return atom_detail


def prepared(*atoms, backend=None, store=None):
    engine = tideflow.load(LinearFlow("f").add(*atoms), backend=backend, store=store)
    engine.prepare()
    return engine, engine.storage


# -- whether records are shared with the store ---------------------------------------


def test_records_are_shared_with_no_store_and_with_the_memory_store_only():
    assert Storage(FlowDetail("f")).shares_records is True
    assert Storage(FlowDetail("f"), MemoryBackend()).shares_records is True
    assert Storage(FlowDetail("f"), Copying()).shares_records is False


def test_record_changes_through_storage_reach_a_copying_store_at_commit():
    store = Copying()
    _, storage = prepared(T("a"), backend=store)
    storage.commit()
    storage.set_atom_state("a", tideflow.states.AtomState.SUCCESS)
    storage.set_atom_intention("a", tideflow.states.Intention.REVERT)
    storage.update_atom_metadata("a", {"k": 1})
    storage.set_task_progress("a", 0.25)
    assert store.atoms["a"]["state"] == "PENDING"  # not before the commit
    storage.commit()
    assert store.atoms["a"]["state"] == "SUCCESS"
    assert store.atoms["a"]["intention"] == "REVERT"
    assert store.atoms["a"]["meta"] == {"k": 1, "progress": 0.25}
    assert storage.get_atoms_states(["a"]) == {"a": ("SUCCESS", "REVERT")}
    storage.reset("a")
    storage.commit()
    assert store.atoms["a"]["state"] == "PENDING"
    assert store.atoms["a"]["intention"] == "EXECUTE"


def test_a_commit_writes_the_flow_record_only_when_it_changed():
    store = Copying()
    Storage(FlowDetail("nothing yet"), store).commit()
    assert store.flow_writes == 0
    _, storage = prepared(T("a"), backend=store)
    storage.commit()
    writes = store.flow_writes
    storage.set_atom_state("a", tideflow.states.AtomState.SUCCESS)
    storage.commit()
    storage.commit()
    assert store.flow_writes == writes + 1  # the atom change (one write per commit)
    storage.update_flow_metadata({"note": 1})
    storage.commit()
    assert store.flow_writes == writes + 2
    storage.commit()
    assert store.flow_writes == writes + 2
    storage.inject({"v": 1})
    storage.commit()
    assert store.flow_writes == writes + 3


def test_unknown_atoms_are_named():
    _, storage = prepared(T("a"), T("b"))
    for call in (storage.get_atom_state, storage.get_atom_uuid, storage.get_task_progress):
        with pytest.raises(
            tideflow.NotFoundError, match=r"unknown atom 'x' in flow 'f'; known atoms: \['a', 'b'\]"
        ):
            call("x")
    with pytest.raises(tideflow.NotFoundError, match="unknown atom 'x'"):
        storage.set_atom_state("x", tideflow.states.AtomState.SUCCESS)


def test_an_unknown_atom_error_lists_twenty_known_names():
    _, storage = prepared(*(T(f"a{i:02}") for i in range(25)))
    with pytest.raises(tideflow.NotFoundError) as info:
        storage.get_atom_state("x")
    assert str(info.value).endswith(f"known atoms: {[f'a{i:02}' for i in range(20)]}")


def test_records_are_known_before_the_engine_prepares():
    engine = tideflow.load(LinearFlow("f").add(T("a")))
    assert engine.storage.get_atom_state("a") == "PENDING"


# -- progress ------------------------------------------------------------------------


def test_progress_reported_wins_over_the_state_and_keeps_its_details():
    _, storage = prepared(T("a"), T("b"))
    assert storage.get_task_progress("a") == 0.0
    storage.set_atom_state("b", tideflow.states.AtomState.SUCCESS)
    assert storage.get_task_progress("b") == 1.0
    storage.set_task_progress("a", 0.5, {"step": 2})
    assert storage.get_task_progress("a") == 0.5
    assert storage.get_task_progress_details("a") == {"step": 2}
    assert storage.get_task_progress_details("b") is None
    storage.set_atom_state("a", tideflow.states.AtomState.SUCCESS)
    assert storage.get_task_progress("a") == 0.5  # what it reported, not what SUCCESS implies


# -- values --------------------------------------------------------------------------


def test_an_atoms_own_arguments_win_over_the_store():
    engine, storage = prepared(T("a", requires=["x"]), store={"x": "store"})
    storage.inject_atom_args("a", {"x": "own"})
    assert storage.injected_atom_args("a") == {"x": "own"}
    assert storage.injected_atom_args("b") == {}
    engine.run()
    assert storage.get("a") == {"x": "own"}
    with pytest.raises(tideflow.NotFoundError, match="unknown atom 'nope'"):
        storage.inject_atom_args("nope", {"x": 1})


def test_transient_values_are_used_and_never_recorded():
    engine, storage = prepared(
        T("a", requires=["x", "y", "w"]), store={"y": "recorded", "w": "stored"}
    )
    storage.inject({"x": "memory", "y": "transient"}, transient=True)
    assert "x" not in storage.flow_detail.injected
    engine.run()
    assert storage.get("a") == {"x": "memory", "y": "transient", "w": "stored"}
    assert storage.fetch_all() == {"y": "transient", "w": "stored", "x": "memory"}
    assert storage.fetch("y") == "transient"


def test_fetch_all_lists_several_values_or_hands_them_over():
    engine, storage = prepared(T("a", provides="v"), T("b", provides="v"), store={"w": 1})
    engine.run()
    assert storage.fetch_all() == {"w": 1, "v": [{}, {}]}
    assert storage.fetch_all(many_handler=len) == {"w": 1, "v": 2}
    assert storage.fetch("v", many_handler=len) == 2


def test_fetch_all_skips_names_without_a_value_and_goes_on():
    _, storage = prepared(Named("a", provides="p"), Named("b", provides="q"))
    record = {d.name: d for d in storage.flow_detail}["b"]
    record.state = tideflow.states.AtomState.SUCCESS
    record.results = "b"
    assert storage.fetch_all() == {"q": "b"}


def test_fetch_mapped_args():
    # v: three providers, the last one's value; s: the store's value before an atom's
    engine, storage = prepared(
        Named("a", provides="v"),
        Named("b", provides="v"),
        Named("c", provides="v"),
        Named("d", provides="s"),
        store={"s": "store"},
    )
    engine.run()
    storage.inject_atom_args("a", {"v": "own"})
    assert storage.fetch_mapped_args({"p": "v", "q": "s"}) == {"p": "c", "q": "store"}
    assert storage.fetch_mapped_args({"p": "v", "q": "s"}, atom_name="a") == {
        "p": "own",
        "q": "store",
    }
    assert storage.fetch_mapped_args({"p": "gone"}, optional_args=["gone"]) == {}
    with pytest.raises(tideflow.NotFoundError, match="no value named 'gone' for parameter 'p'"):
        storage.fetch_mapped_args({"p": "gone", "q": "s"})


def test_why_a_value_is_missing():
    long = "z" * 300
    _, storage = prepared(
        T("short", provides=("one", "two")),
        T("keyed", provides={"k1", "k2"}),
        T("pending", provides="later"),
    )
    with pytest.raises(
        tideflow.NotFoundError, match=r"'pending' has not produced it yet \(it is PENDING\)$"
    ):
        storage.fetch("later")
    with pytest.raises(
        tideflow.NotFoundError,
        match=r"^no value named 'nobody' in flow 'f': nothing provides it \(no atom of the flow "
        r"provides it and the store has no such key\)$",
    ):
        storage.fetch("nobody")
    records = {d.name: d for d in storage.flow_detail}
    records["short"].state = records["keyed"].state = tideflow.states.AtomState.SUCCESS
    records["short"].results = [long]
    records["keyed"].results = {"k1": 1}
    with pytest.raises(tideflow.NotFoundError) as info:
        storage.fetch("two")
    shown = repr([long])[:117] + "..."
    assert (
        str(info.value)
        == f"no value named 'two' in flow 'f': 'short' returned {shown}, which has no index 1"
    )
    with pytest.raises(
        tideflow.NotFoundError, match=r"'keyed' returned \{'k1': 1\}, which has no key 'k2'$"
    ):
        storage.fetch("k2")
    records["pending"].failure = tideflow.Failure.from_exception(OSError("x"))
    records["pending"].state = tideflow.states.AtomState.FAILURE
    with pytest.raises(tideflow.NotFoundError, match=r"in flow 'f': 'pending' failed$"):
        storage.fetch("later")


def test_a_short_result_is_shown_whole():
    _, storage = prepared(T("short", provides=("one", "two")))
    record = next(iter(storage.flow_detail))
    record.state = tideflow.states.AtomState.SUCCESS
    record.results = ["y" * 116]  # its repr is exactly 120 characters
    with pytest.raises(tideflow.NotFoundError) as info:
        storage.fetch("two")
    assert f"returned {record.results!r}, which" in str(info.value)


def test_a_missing_argument_at_bind_time_names_atom_symbol_and_flow():
    engine, storage = prepared(T("a", requires=["x"]))
    node = engine.compilation.index["a"]
    with pytest.raises(
        tideflow.MissingRequirementError,
        match=r"^atom 'a' requires 'x', and nothing provides it: pass it in store= or inject it$",
    ) as info:
        storage.bind(node, None, engine.compilation.args[node])
    assert info.value.atom == "a"
    assert list(info.value.missing) == ["x"]
    assert info.value.flow == "f"


def test_failures_of_revert_alone_count():
    _, storage = prepared(T("a"))
    assert storage.has_failures() is False
    record = next(iter(storage.flow_detail))
    record.revert_failure = tideflow.Failure.from_exception(OSError("x"))
    assert storage.has_failures() is True
    assert storage.get_execute_failures() == {}


def test_revert_result_of_an_atom_never_reverted():
    _, storage = prepared(T("a"))
    with pytest.raises(
        tideflow.NotFoundError,
        match=r"^atom 'a' has not been reverted \(it is PENDING\): it has no revert result$",
    ):
        storage.get_revert_result("a")


class Versioned(T):
    version = (2, 1)


def test_records_carry_a_version_other_than_the_default():
    _, storage = prepared(T("plain"), Versioned("versioned"))
    records = {d.name: d for d in storage.flow_detail}
    assert records["versioned"].version == (2, 1)
    assert records["plain"].version in (None, (1, 0))
