"""``priority=`` orders ready work: among atoms ready at the same moment, the highest
starts first; equal priorities keep the order they became ready in; dependencies are
never overtaken."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow

_ORDER: list[str] = []
_LOCK = threading.Lock()


class Note(Task):
    """Writes its name to the order list when it runs."""

    def execute(self, **kwargs: Any) -> str:
        with _LOCK:
            _ORDER.append(self.name)
        return self.name


@pytest.fixture(autouse=True)
def _clean() -> Any:
    _ORDER.clear()
    yield
    _ORDER.clear()


def test_the_highest_priority_of_ready_atoms_starts_first() -> None:
    flow = UnorderedFlow("u").add(
        Note("low", priority=-1),
        Note("plain"),
        Note("high", priority=5),
        Note("also-plain"),
        Note("mid", priority=2),
    )
    tideflow.load(flow).run()
    assert _ORDER == ["high", "mid", "plain", "also-plain", "low"]


def test_priorities_never_overtake_a_dependency() -> None:
    flow = GraphFlow("g").add(
        Note("first", provides="x"),
        Note("urgent", requires=["x"], priority=100),
        Note("independent", priority=1),
    )
    tideflow.load(flow).run()
    # 'urgent' needs 'first'; of what is ready at the start, 'independent' outranks 'first'
    assert _ORDER == ["independent", "first", "urgent"]


def test_priority_orders_submission_on_a_single_worker_pool() -> None:
    flow = UnorderedFlow("u").add(*(Note(f"n{i}", priority=i) for i in range(6)))
    tideflow.load(flow, engine="parallel", max_workers=1).run()
    assert _ORDER == ["n5", "n4", "n3", "n2", "n1", "n0"]


def test_without_priorities_the_order_is_unchanged() -> None:
    flow = LinearFlow("l").add(Note("a"), UnorderedFlow("u").add(Note("b"), Note("c")), Note("d"))
    tideflow.load(flow).run()
    assert _ORDER == ["a", "b", "c", "d"]


def test_functor_tasks_and_the_task_decorator_take_a_priority() -> None:
    @tideflow.task(priority=3)
    def urgent() -> None:
        _ORDER.append("urgent")

    def calm() -> None:
        _ORDER.append("calm")

    flow = UnorderedFlow("u").add(tideflow.FunctorTask(calm, name="calm"), urgent())
    tideflow.load(flow).run()
    assert _ORDER == ["urgent", "calm"]
    assert tideflow.FunctorTask(calm, name="x", priority=-2).priority == -2


@pytest.mark.parametrize("bad", ["high", 1.5, True])
def test_a_priority_that_is_not_an_int_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"atom 'n': priority= takes an int"):
        Note("n", priority=bad)
