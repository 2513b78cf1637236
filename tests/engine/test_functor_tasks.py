"""Tasks made from functions: FunctorTask, @tideflow.task, MapFunctorTask, ReduceFunctorTask."""

from __future__ import annotations

import operator

import pytest

import tideflow
from tideflow import FunctorTask, LinearFlow, MapFunctorTask, ReduceFunctorTask


def add(a, b):
    return a + b


def test_functor_task_takes_name_and_requirements_from_the_function(load):
    task = FunctorTask(add, provides="sum")
    assert task.name == f"{__name__}.add"
    assert task.requires == {"a", "b"}
    engine = load(LinearFlow("f").add(task), store={"a": 1, "b": 2})
    engine.run()
    assert engine.storage.fetch("sum") == 3


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_functor_task_of_a_lambda_and_options(load):
    one = lambda: 1  # noqa: E731
    task = FunctorTask(one, provides="one")
    assert task.name == f"{__name__}.{one.__qualname__}"
    assert task.name.endswith(".<locals>.<lambda>")
    named = FunctorTask(add, name="adder", rebind={"a": "x"}, inject={"b": 10}, provides="s")
    assert named.name == "adder"
    assert named.requires == {"x"}
    engine = load(LinearFlow("f").add(task, named), store={"x": 5})
    engine.run()
    assert engine.storage.fetch_all() == {"x": 5, "one": 1, "s": 15}


@pytest.mark.local_only("the revert function appends to a list of this process")
def test_functor_task_revert(load):
    reverted = []

    def undo(result, flow_failures, **kwargs):
        reverted.append((result, sorted(flow_failures), kwargs))
        return "undone"

    def fail():
        raise OSError("late")

    flow = LinearFlow("f").add(
        FunctorTask(lambda: "made", name="make", revert=undo), FunctorTask(fail, name="fail")
    )
    engine = load(flow)
    with pytest.raises(OSError, match="late"):
        engine.run()
    assert reverted == [("made", ["fail"], {})]
    assert engine.storage.get_revert_result("make") == "undone"


def test_functor_task_needs_a_callable():
    with pytest.raises(
        TypeError, match=r"FunctorTask needs a callable execute, got 'not callable'"
    ):
        FunctorTask("not callable")


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_task_decorator_makes_a_factory(load):
    @tideflow.task
    def multiply(x, y):
        return x * y

    assert isinstance(multiply, tideflow.TaskFactory)
    assert multiply.func(2, 3) == 6
    first, second = multiply(provides="p1"), multiply(name="other", provides="p2")
    assert isinstance(first, FunctorTask)
    assert first is not second
    assert first.name == f"{__name__}.{multiply.func.__qualname__}"
    assert second.name == "other"
    engine = load(LinearFlow("f").add(first, second), store={"x": 2, "y": 5})
    engine.run()
    assert engine.storage.fetch_all() == {"x": 2, "y": 5, "p1": 10, "p2": 10}


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_task_decorator_with_defaults(load):
    @tideflow.task(provides="total", rebind={"a": "left"})
    def total(a, b):
        return a + b

    task = total(name="t")
    assert task.provides == {"total"}
    assert task.requires == {"left", "b"}
    engine = load(LinearFlow("f").add(task), store={"left": 1, "b": 2})
    engine.run()
    assert engine.storage.fetch("total") == 3
    overridden = total(name="t2", provides="other")
    assert overridden.provides == {"other"}


def test_adding_a_factory_without_calling_it_says_to_call_it():
    @tideflow.task
    def forgot():
        return 1

    with pytest.raises(TypeError, match="call"):
        LinearFlow("f").add(forgot)
    with pytest.raises(TypeError, match="call"):
        tideflow.GraphFlow("g").add(forgot)


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_map_functor_task(load):
    task = MapFunctorTask(lambda v: v * 2, requires=["a", "b", "c"], provides="doubled")
    engine = load(LinearFlow("f").add(task), store={"a": 1, "b": 2, "c": 3})
    engine.run()
    assert engine.storage.fetch("doubled") == [2, 4, 6]


def test_reduce_functor_task(load):
    task = ReduceFunctorTask(operator.sub, requires=["a", "b", "c"], provides="diff")
    engine = load(LinearFlow("f").add(task), store={"a": 10, "b": 3, "c": 2})
    engine.run()
    assert engine.storage.fetch("diff") == 5


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_map_and_reduce_chained(load):
    flow = LinearFlow("f").add(
        MapFunctorTask(lambda v: v + 1, name="inc", requires=["a", "b"], provides=("x", "y")),
        ReduceFunctorTask(operator.mul, name="mul", requires=["x", "y"], provides="product"),
    )
    engine = load(flow, store={"a": 1, "b": 2})
    engine.run()
    assert engine.storage.fetch("product") == 6


def test_reduce_needs_two_values():
    with pytest.raises(
        ValueError, match=r"ReduceFunctorTask needs at least two names in requires="
    ):
        ReduceFunctorTask(operator.add, requires=["only"])
