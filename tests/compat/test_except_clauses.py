"""TaskFlow programs' ``except`` clauses catch what tideflow raises for the same mistake.

Each probe in ``except_probes.py`` makes one user mistake through TaskFlow's API.
``TASKFLOW`` below is what TaskFlow 6.5 raised for each: the exception's class and
every base between it and ``Exception``. It was gathered by running the probes under
TaskFlow itself (``bench/.venv-taskflow/bin/python tests/compat/except_probes.py``),
not written from our side, so the test holds the compat package to TaskFlow's
observed behaviour. Refresh it the same way when a probe is added.
"""

from __future__ import annotations

import builtins
from typing import Any

import pytest
from except_probes import PROBES

import tideflow
from taskflow import exceptions as exc
from tideflow import errors

# probe -> TaskFlow 6.5's exception class and its bases up to Exception ("exc." names
# are taskflow.exceptions, the rest builtins); () when TaskFlow raised nothing.
TASKFLOW: dict[str, tuple[str, ...]] = {
    "duplicate_names_linear": ("exc.Duplicate", "exc.TaskFlowException"),
    "duplicate_names_nested": ("exc.Duplicate", "exc.TaskFlowException"),
    "duplicate_names_graph": ("exc.Duplicate", "exc.TaskFlowException"),
    "same_task_added_twice": (),
    "same_task_in_parent_and_subflow": ("ValueError",),
    "same_subflow_added_twice_nested": ("ValueError",),
    "flow_added_to_itself": (),
    "link_cycle": ("exc.DependencyFailure", "exc.TaskFlowException"),
    "link_to_itself": ("exc.DependencyFailure", "exc.TaskFlowException"),
    "data_cycle_at_add": ("exc.DependencyFailure", "exc.TaskFlowException"),
    "link_to_unknown_node": ("ValueError",),
    "link_from_unknown_node": ("ValueError",),
    "ambiguous_provider": (
        "exc.AmbiguousDependency",
        "exc.DependencyFailure",
        "exc.TaskFlowException",
    ),
    "missing_requirement_at_run": (
        "exc.MissingDependencies",
        "exc.DependencyFailure",
        "exc.TaskFlowException",
    ),
    "missing_requirement_at_validate": (
        "exc.MissingDependencies",
        "exc.DependencyFailure",
        "exc.TaskFlowException",
    ),
    "requires_its_own_output": (
        "exc.MissingDependencies",
        "exc.DependencyFailure",
        "exc.TaskFlowException",
    ),
    "unordered_sibling_output": (
        "exc.MissingDependencies",
        "exc.DependencyFailure",
        "exc.TaskFlowException",
    ),
    "add_none_linear": ("ValueError",),
    "add_none_unordered": ("ValueError",),
    "add_none_graph": ("ValueError",),
    "add_int_linear": (),
    "add_int_graph": ("AttributeError",),
    "add_string_then_run": ("TypeError",),
    "decider_depth_unknown": ("ValueError",),
    "decider_depth_without_decider": ("ValueError",),
    "decider_not_callable": ("ValueError",),
    "target_not_in_flow": ("ValueError",),
    "flow_added_to_itself_then_compiled": ("ValueError",),
    "decider_depth_not_a_string": ("TypeError",),
    "flow_retry_not_a_retry": (),
    "add_unknown_keyword_graph": (),
    "load_unknown_engine": ("exc.NotFound", "exc.TaskFlowException"),
    "load_unknown_executor": ("ValueError",),
    "load_executor_without_submit": ("TypeError",),
    "load_none": (),
    "load_store_not_a_mapping": ("TypeError",),
    "prepare_before_compile": ("exc.InvalidState", "exc.ExecutionFailure", "exc.TaskFlowException"),
    "validate_before_compile": (
        "exc.InvalidState",
        "exc.ExecutionFailure",
        "exc.TaskFlowException",
    ),
    "validate_before_prepare": (
        "exc.InvalidState",
        "exc.ExecutionFailure",
        "exc.TaskFlowException",
    ),
    "reset_before_compile": ("exc.InvalidState", "exc.ExecutionFailure", "exc.TaskFlowException"),
    "two_tasks_fail_at_once": ("exc.WrappedFailure",),
    "argument_cannot_be_bound": ("exc.NotFound", "exc.TaskFlowException"),
    "decider_raises": ("KeyError", "LookupError"),
    "load_from_factory_lambda": ("ValueError",),
    "flow_from_detail_without_factory": ("ValueError",),
    "fetch_unknown_name": ("exc.NotFound", "exc.TaskFlowException"),
    "fetch_task_name_not_provided": ("exc.NotFound", "exc.TaskFlowException"),
    "fetch_before_provider_ran": ("exc.NotFound", "exc.TaskFlowException"),
    "fetch_short_tuple_result": ("exc.NotFound", "exc.TaskFlowException"),
    "atom_state_unknown_atom": ("exc.NotFound", "exc.TaskFlowException"),
    "get_unknown_atom": ("exc.NotFound", "exc.TaskFlowException"),
    "get_before_run": ("exc.NotFound", "exc.TaskFlowException"),
    "revert_result_of_unreverted_atom": ("exc.NotFound", "exc.TaskFlowException"),
    "set_state_of_unknown_atom": ("exc.NotFound", "exc.TaskFlowException"),
    "progress_of_unknown_atom": ("exc.NotFound", "exc.TaskFlowException"),
    "inject_atom_args_unknown_atom": ("exc.NotFound", "exc.TaskFlowException"),
    "inject_not_a_mapping": ("TypeError",),
    "rebind_dict_extra_name": ("ValueError",),
    "rebind_list_too_long": ("ValueError",),
    "requires_extra_name": ("ValueError",),
    "rebind_not_a_collection": ("TypeError",),
    "requires_not_a_collection": ("TypeError",),
    "provides_not_a_name": ("TypeError",),
    "inject_not_a_mapping_at_construction": ("AttributeError",),
    "revert_rebind_extra_name": (),
    "base_task_instantiated": ("TypeError",),
    "functor_not_callable": ("ValueError",),
    "functor_revert_not_callable": ("ValueError",),
    "map_functor_two_arguments": ("ValueError",),
    "map_functor_no_argument": ("ValueError",),
    "map_functor_two_requirements": (),
    "map_functor_no_requirement": ("TypeError",),
    "map_functor_not_callable": ("ValueError",),
    "reduce_functor_one_argument": ("ValueError",),
    "reduce_functor_one_requirement": ("ValueError",),
    "reduce_functor_no_requirement": ("TypeError",),
    "reduce_functor_not_callable": ("ValueError",),
    "update_progress_keyword": ("TypeError",),
    "provides_repeated_name": (),
    "provides_not_names": (),
    "requires_not_names": (),
    "rebind_value_not_a_name": (),
    "name_not_a_string": (),
    "positional_only_execute": ("TypeError",),
    "reduce_functor_requires_a_string": ("TypeError",),
    "map_functor_requires_not_names": ("TypeError",),
    "functor_task_with_two_names": (),
    "register_twice": ("ValueError",),
    "register_not_callable": ("ValueError",),
    "register_reserved_keyword": ("KeyError", "LookupError"),
    "register_undeclared_task_event": ("ValueError",),
    "failure_outside_except": ("TypeError",),
    "failure_of_keyboard_interrupt": ("TypeError",),
    "failure_from_bad_dict": ("TypeError",),
    "failure_validate_bad_dict": ("exc.InvalidFormat", "exc.TaskFlowException"),
    "reraise_of_rebuilt_failure": ("exc.WrappedFailure",),
    "flow_transition_forbidden": (
        "exc.InvalidState",
        "exc.ExecutionFailure",
        "exc.TaskFlowException",
    ),
    "task_transition_forbidden": (),
    "job_transition_forbidden": (
        "exc.InvalidState",
        "exc.ExecutionFailure",
        "exc.TaskFlowException",
    ),
    "engine_run_with_bad_timeout": (),
    "parallel_engine_zero_workers": ("ValueError",),
    "suspend_before_run": ("exc.InvalidState", "exc.ExecutionFailure", "exc.TaskFlowException"),
    "backend_unknown_scheme": ("exc.NotFound", "exc.TaskFlowException"),
    "backend_conf_without_connection": ("KeyError", "LookupError"),
    "memory_logbook_unknown": ("exc.NotFound", "exc.TaskFlowException"),
    "memory_destroy_unknown_logbook": ("exc.NotFound", "exc.TaskFlowException"),
    "memory_flow_detail_unknown": ("exc.NotFound", "exc.TaskFlowException"),
    "memory_atom_detail_unknown": ("exc.NotFound", "exc.TaskFlowException"),
    "atom_detail_class_unknown": ("TypeError",),
    "construct_missing_dependencies": (
        "exc.MissingDependencies",
        "exc.DependencyFailure",
        "exc.TaskFlowException",
    ),
    "construct_disallowed_access": ("exc.DisallowedAccess", "exc.TaskFlowException"),
    "construct_wrapped_failure": ("exc.WrappedFailure",),
    "raise_with_cause_not_found": ("exc.NotFound", "exc.TaskFlowException"),
}

# Where tideflow differs on purpose: probe -> (what it raises instead, or None, and why).
# docs/taskflow-behaviour.md section 12 and the README's "Decisions" list say the same.
DELIBERATE: dict[str, tuple[type[BaseException] | None, str]] = {
    "same_task_added_twice": (
        errors.DuplicateAtomError,
        "refused at add(), naming the atom; TaskFlow silently keeps one copy",
    ),
    "flow_added_to_itself": (
        errors.DefinitionError,
        "refused at add(); TaskFlow accepts it and fails at compile() (probe *_then_compiled)",
    ),
    "add_int_linear": (TypeError, "refused at add(); TaskFlow fails at compile(), also TypeError"),
    "add_int_graph": (
        TypeError,
        "TaskFlow's AttributeError is an accident of reading .requires; an AttributeError "
        "subclass would be swallowed by getattr()/hasattr() fallbacks",
    ),
    "inject_not_a_mapping_at_construction": (
        TypeError,
        "TaskFlow's AttributeError is an accident of calling .keys(); see add_int_graph",
    ),
    "flow_retry_not_a_retry": (TypeError, "checked at construction; TaskFlow accepts anything"),
    "add_unknown_keyword_graph": (TypeError, "a misspelt keyword is refused, not ignored"),
    "load_none": (TypeError, "checked at load(); TaskFlow accepts None"),
    "provides_not_names": (TypeError, "names must be str; TaskFlow accepts anything"),
    "requires_not_names": (TypeError, "names must be str; TaskFlow accepts anything"),
    "rebind_value_not_a_name": (TypeError, "names must be str; TaskFlow accepts anything"),
    "name_not_a_string": (TypeError, "an atom name must be a str; TaskFlow accepts anything"),
    "functor_task_with_two_names": (TypeError, "an atom name must be a str"),
    "engine_run_with_bad_timeout": (TypeError, "timeout= is checked; TaskFlow ignores it"),
    "failure_from_bad_dict": (
        ValueError,
        "an incomplete record is a ValueError; TaskFlow's TypeError comes from building "
        "an exception type out of the missing name",
    ),
    "prepare_before_compile": (None, "prepare() compiles first; TaskFlow raises InvalidState"),
    "validate_before_compile": (None, "validate() compiles and prepares first"),
    "validate_before_prepare": (None, "validate() prepares first"),
    "reset_before_compile": (None, "reset() compiles first"),
    "suspend_before_run": (None, "suspending an engine that is not running does nothing"),
}

# Needs a change outside this package's files (the raise site, or a check that is not
# made yet); reported to the owners of those files. Each is a strict xfail: when the
# change lands the test passes, xfail(strict) fails, and the entry is deleted here.
PENDING: dict[str, str] = {}

_TASKFLOW_NAMES = [n for n in exc.__all__ if isinstance(getattr(exc, n), type)]


def _resolve(name: str) -> type[BaseException]:
    """The class a TaskFlow program names with ``name``, as the compat package has it."""
    if name.startswith("exc."):
        return getattr(exc, name[4:])  # type: ignore[no-any-return]
    return getattr(builtins, name)  # type: ignore[no-any-return]


def _raised(probe: str) -> BaseException | None:
    try:
        PROBES[probe]()
    except Exception as error:  # the probe's whole point is the exception
        return error
    return None


def _params() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=PENDING[name]), id=name)
        if name in PENDING
        else pytest.param(name, id=name)
        for name in TASKFLOW
        if name not in DELIBERATE
    ]


def test_table_covers_every_probe() -> None:
    assert set(TASKFLOW) == set(PROBES)
    assert set(DELIBERATE) <= set(TASKFLOW)
    assert set(PENDING) <= set(TASKFLOW)
    assert not set(PENDING) & set(DELIBERATE)


@pytest.mark.parametrize("probe", _params())
def test_taskflow_except_clauses_catch_ours(probe: str) -> None:
    error = _raised(probe)
    expected = TASKFLOW[probe]
    if not expected:
        assert error is None, f"TaskFlow raised nothing; we raised {error!r}"
        return
    assert error is not None, f"TaskFlow raised {expected[0]}; we raised nothing"
    for name in expected:
        assert isinstance(error, _resolve(name)), f"except {name} misses {type(error)}"
    if expected[0].startswith("exc."):
        # exactly TaskFlow's taskflow.exceptions clauses catch it, so an except chain
        # ordered for TaskFlow (DependencyFailure before Duplicate, ...) takes its branch
        ours = {n for n in _TASKFLOW_NAMES if isinstance(error, getattr(exc, n))}
        assert ours == {n[4:] for n in expected if n.startswith("exc.")}


@pytest.mark.parametrize("probe", sorted(DELIBERATE))
def test_deliberate_differences_hold(probe: str) -> None:
    ours, _why = DELIBERATE[probe]
    error = _raised(probe)
    if ours is None:
        assert error is None
        assert TASKFLOW[probe], "TaskFlow raised nothing either: not a difference"
    else:
        assert isinstance(error, ours), repr(error)
        assert not any(isinstance(error, _resolve(n)) for n in TASKFLOW[probe][:1])


def test_missing_dependencies_built_the_taskflow_way() -> None:
    error = exc.MissingDependencies("loader", ["b", "a"], method="execute")
    assert isinstance(error, tideflow.MissingRequirementError)
    assert error.missing_requirements == ["a", "b"]
    assert error.method == "execute"
    assert "'execute' of 'loader' requires ['a', 'b']" in str(error)
