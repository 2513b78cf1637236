"""Where tideflow differs from TaskFlow 6.5 on purpose, asserted as tideflow behaves.

Each test names TaskFlow's observed behaviour in its docstring and checks ours, so
a change to either side is a visible, deliberate decision. The README lists them.
Not covered here because the capability is not built yet: retry controllers
(``taskflow.retry``) and the directory/file and SQL stores.
"""

from __future__ import annotations

import pytest

import taskflow.engines
from taskflow import exceptions as exc
from taskflow import task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import models
from taskflow.types import notifier


class T(task.Task):
    def execute(self):
        return self.name


def test_same_task_added_twice_is_an_error() -> None:
    """TaskFlow silently keeps one copy; we refuse, naming the atom."""
    t = T("t")
    with pytest.raises(exc.Duplicate, match="'t' was added twice"):
        lf.Flow("f").add(t, t)


def test_details_is_a_reserved_kwarg() -> None:
    """Same as TaskFlow: 'details' cannot be a bound keyword."""
    with pytest.raises(KeyError, match="reserved"):
        notifier.Notifier().register("e", print, kwargs={"details": 1})


def test_recorded_states_are_string_enums() -> None:
    """TaskFlow returns plain str; ours are StrEnum members that read exactly like them.

    Only ``type()`` tells them apart: ``repr`` (so a list of states, or a ``%r`` in a
    log line), ``str`` and formatting give what TaskFlow's strings give.
    """
    engine = taskflow.engines.load(lf.Flow("f").add(T("a")))
    engine.run()
    state = engine.storage.get_atom_state("a")
    assert isinstance(state, str)
    assert type(state) is not str
    assert state == "SUCCESS"
    assert f"{state}" == "SUCCESS"
    assert repr(state) == "'SUCCESS'"
    assert str([state, engine.storage.get_flow_state()]) == "['SUCCESS', 'SUCCESS']"
    assert engine.storage.get_flow_state() == "SUCCESS"


def test_flow_str_names_the_tideflow_class() -> None:
    """TaskFlow: '"linear_flow.Flow: f(len=1)"'."""
    assert str(lf.Flow("f").add(T("a"))) == "LinearFlow: f(len=1)"


def test_missing_requirements_attribute_at_run() -> None:
    """Same attribute as TaskFlow; our message names atom, value and flow instead."""

    class Needs(task.Task):
        def execute(self, m2, m1):
            return None

    with pytest.raises(
        exc.MissingDependencies, match=r"atom 'n' \(in flow 'l'\) requires 'm1'"
    ) as info:
        taskflow.engines.run(lf.Flow("l").add(Needs("n")))
    assert info.value.missing_requirements == ["m1", "m2"]
    assert "atom 'n' (in flow 'l') requires 'm1'" in str(info.value)


def test_exception_str_shows_its_cause() -> None:
    """Same as TaskFlow."""
    error = exc.TaskFlowException("outer", cause=ValueError("inner"))
    assert str(error) == "outer\n  ValueError: inner"
    assert error.pformat() == "outer\n  ValueError: inner"


def test_link_to_unknown_node_is_not_found() -> None:
    """TaskFlow raises ValueError; ours is NotFound (a TaskFlowException).

    It is to be a ValueError too (``tideflow.errors.NotInFlowError``): see
    ``test_except_clauses.py``.
    """
    a, b = T("a"), T("b")
    with pytest.raises(exc.NotFound, match="not in this flow"):
        gf.Flow("g").add(a).link(a, b)


def test_add_none_is_a_type_error() -> None:
    """TaskFlow raises ValueError('None cannot be a node')."""
    with pytest.raises(TypeError, match="takes atoms"):
        lf.Flow("f").add(None)  # type: ignore[arg-type]


def test_fresh_records_start_pending() -> None:
    """TaskFlow's fresh records have state None."""
    assert models.FlowDetail("f", "u").state == "PENDING"
    assert models.TaskDetail("t", "u").state == "PENDING"


def test_revert_result_of_unreverted_atom_is_not_found() -> None:
    """Same as TaskFlow."""
    engine = taskflow.engines.load(lf.Flow("f").add(T("a")))
    engine.run()
    with pytest.raises(exc.NotFound, match="has not been reverted"):
        engine.storage.get_revert_result("a")


def test_failure_dict_round_trip() -> None:
    """exc_args is a tuple as in TaskFlow; a round-tripped Failure compares equal here."""
    from taskflow.types import failure

    f = failure.Failure.from_exception(ValueError("v"))
    data = f.to_dict()
    assert data["exc_args"] == ("v",)
    copy = failure.Failure.from_dict(data)
    assert copy.matches(f)
    assert copy == f
