"""Tasks: requirements from signatures, rebind, inject, provides, names."""

import pytest

import tideflow
from tideflow import FunctorTask, MapFunctorTask, ReduceFunctorTask, Task


class T(Task):
    def execute(self, a, b=2, *args, **kwargs):
        return a


class NoKwargs(Task):
    def execute(self, a):
        return a


@pytest.mark.parametrize(
    ("options", "requires", "optional", "rebind"),
    [
        ({}, {"a"}, {"b"}, {"a": "a", "b": "b"}),
        ({"rebind": ["x"]}, {"x"}, {"b"}, {"a": "x", "b": "b"}),
        ({"rebind": ["x", "y"]}, {"x", "y"}, {"b"}, {"a": "x", "y": "y", "b": "b"}),
        ({"rebind": {"a": "x"}}, {"x"}, {"b"}, {"a": "x", "b": "b"}),
        ({"rebind": {"b": "y"}}, {"a", "y"}, set(), {"a": "a", "b": "y"}),
        ({"requires": ["c"]}, {"a", "c"}, {"b"}, {"a": "a", "c": "c", "b": "b"}),
        ({"requires": "c"}, {"a", "c"}, {"b"}, {"a": "a", "c": "c", "b": "b"}),
        ({"inject": {"a": 1}}, set(), {"b"}, {"a": "a", "b": "b"}),
    ],
)
def test_argument_mapping(options, requires, optional, rebind):
    task = T(**options)
    assert task.requires == requires
    assert task.optional == optional
    assert dict(task.rebind) == rebind


def test_extra_names_need_kwargs():
    with pytest.raises(ValueError, match=r"\['c'\] are not parameters"):
        NoKwargs(requires=["c"])
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        NoKwargs(rebind={"zz": "y"})


def test_provides_forms():
    assert T(provides="x").save_as == {"x": None}
    assert T(provides=("x", "y")).save_as == {"x": 0, "y": 1}
    assert T(provides=["x", "y"]).save_as == {"x": 0, "y": 1}
    assert T(provides={"x", "y"}).save_as == {"x": "x", "y": "y"}
    assert T().provides == frozenset()
    with pytest.raises(TypeError, match="provides must be"):
        T(provides=3)  # type: ignore[arg-type]


def test_default_provides_and_name():
    class D(Task):
        default_provides = "dp"

        def execute(self):
            return 1

    assert D().provides == {"dp"}
    assert D(provides="o").provides == {"o"}
    assert D().name == f"{__name__}.test_default_provides_and_name.<locals>.D"
    assert str(D("d")) == '"d==1.0"'


def test_revert_requirements_come_from_the_revert_signature():
    class R(Task):
        def execute(self, a):
            return a

        def revert(self, a, extra, result, flow_failures, **kwargs):
            return None

    task = R()
    assert dict(task.revert_rebind) == {"a": "a", "extra": "extra"}
    assert task.requires == {"a", "extra"}


def test_functor_tasks():
    def add(x, y=1):
        return x + y

    task = FunctorTask(add, provides="sum")
    assert task.name.endswith("add")
    assert task.requires == {"x"}
    assert task.optional == {"y"}
    with pytest.raises(TypeError, match="callable"):
        FunctorTask(3)  # type: ignore[arg-type]
    mapped = MapFunctorTask(lambda v: v * 2, requires=["a", "b"], name="m")
    assert mapped.execute(a=1, b=2) == [2, 4]
    reduced = ReduceFunctorTask(lambda x, y: x + y, requires=["a", "b", "c"], name="r")
    assert reduced.execute(a=1, b=2, c=3) == 6
    with pytest.raises(ValueError, match="at least two"):
        ReduceFunctorTask(lambda x, y: x, requires=["a"])


def test_task_decorator_makes_a_factory():
    @tideflow.task(provides="total")
    def total(a, b):
        return a + b

    first, second = total(name="t1"), total(name="t2", provides="other")
    assert isinstance(first, FunctorTask)
    assert first.provides == {"total"}
    assert second.provides == {"other"}
    assert total.func(1, 2) == 3

    @tideflow.task
    def bare():
        return 1

    assert bare().execute() == 1


def test_update_progress_clamps(caplog):
    class P(Task):
        def execute(self):
            return None

    task = P()
    seen = []
    task.notifier.register("update_progress", lambda e, details: seen.append(details["progress"]))
    task.update_progress(1.7)
    task.update_progress(-1)
    assert seen == [1.0, 0.0]
    assert "using 1.0" in caplog.text


def test_positional_only_parameters_are_refused_at_construction():
    class P(Task):
        def execute(self, a, /):
            return a

    with pytest.raises(TypeError, match=r"positionally only.*remove the '/'"):
        P()
