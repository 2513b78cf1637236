"""The engine runs on every store, and what it recorded reads back through a new backend.

A run's records are read through another backend object opened on the same URL, so
what is checked is what the store holds, not what the engine's objects hold (for the
memory store, which lives in its backend object, it is the same backend).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

import tideflow
from tideflow import LinearFlow, Task, Times
from tideflow.persistence import RetryDetail
from tideflow.states import AtomState, FlowState, Intention


class Emit(Task):
    """Returns what it was built with, after adding what it requires."""

    def __init__(self, name: str, value: Any, requires: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(name, requires=list(requires), **kw)
        self.value = value

    def execute(self, **kwargs: Any) -> Any:
        return (self.value, *sorted(kwargs.values(), key=repr)) if kwargs else self.value

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        return {"undid": self.name}


class Boom(Task):
    def execute(self, **kwargs: Any) -> Any:
        raise ValueError("boom", 7)


class FlakyOnce(Task):
    """Fails on its first call, then returns its attempt count."""

    def __init__(self, name: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.calls = 0

    def execute(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("first try fails")
        return self.calls


def _run_id(engine: Any) -> str:
    return str(engine.storage.flow_detail.uuid)


def test_a_linear_flow_records_its_results(backend: Any, reopen: Any) -> None:
    when = dt.datetime(2024, 3, 4, 5, 6, 7)
    flow = LinearFlow("linear").add(
        Emit("first", (1, 2), provides="a"),
        Emit("second", {"when": when, 3: Decimal("1.5")}, requires=("a",), provides="b"),
        Emit("third", b"bytes", requires=("b",)),
    )
    engine = tideflow.load(flow, store={"seed": (9,)}, backend=backend)
    engine.run()

    conn = reopen()
    record = conn.get_flow_details(_run_id(engine))
    assert record.state == FlowState.SUCCESS
    assert [a.name for a in record] == ["first", "second", "third"]
    assert all(a.state == AtomState.SUCCESS for a in record)
    first, second, third = list(record)
    assert first.results == (1, 2)
    assert type(first.results) is tuple
    assert second.results[0] == {"when": when, 3: Decimal("1.5")}
    assert second.results[1] == (1, 2)
    assert third.results[0] == b"bytes"
    assert record.injected == {"seed": (9,)}
    books = [b for b in conn.get_logbooks() if b.find(record.uuid) is not None]
    assert len(books) == 1


def test_a_failing_flow_records_its_revert(backend: Any, reopen: Any) -> None:
    flow = LinearFlow("failing").add(
        Emit("made", [1], provides="made"),
        Emit("used", "x", requires=("made",)),
        Boom("boom"),
    )
    engine = tideflow.load(flow, backend=backend)
    with pytest.raises(ValueError, match="boom"):
        engine.run()

    record = reopen().get_flow_details(_run_id(engine))
    assert record.state == FlowState.REVERTED
    assert [(a.name, a.state, a.intention) for a in record] == [
        ("made", AtomState.REVERTED, Intention.REVERT),
        ("used", AtomState.REVERTED, Intention.REVERT),
        ("boom", AtomState.REVERTED, Intention.REVERT),
    ]
    made, used, boom = list(record)
    assert made.results == [1]
    assert made.revert_results == {"undid": "made"}
    assert used.revert_results == {"undid": "used"}
    assert boom.failure is not None
    assert boom.failure.exc_type_names[0] == "ValueError"
    assert boom.failure.exception_str == "('boom', 7)"
    assert "raise ValueError" in boom.failure.traceback_str
    assert made.failure is None


def test_a_retried_flow_records_the_retry_history(backend: Any, reopen: Any) -> None:
    flow = LinearFlow("retried", retry=Times(3, name="again")).add(FlakyOnce("flaky"))
    engine = tideflow.load(flow, backend=backend)
    engine.run()

    record = reopen().get_flow_details(_run_id(engine))
    assert record.state == FlowState.SUCCESS
    retry = record.find_by_name("again")
    assert isinstance(retry, RetryDetail)
    # the history as the engine holds it: one entry per attempt, failures by atom
    history = [(value, {n: str(f) for n, f in failed.items()}) for value, failed in retry.history]
    assert history == [(1, {"flaky": "Failure: RuntimeError: first try fails"}), (2, {})]
    flaky = record.find_by_name("flaky")
    assert flaky is not None
    assert (flaky.state, flaky.results) == (AtomState.SUCCESS, 2)
