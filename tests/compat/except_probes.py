"""Small TaskFlow programs that make one user mistake each, for the ``except`` clause table.

Every probe uses TaskFlow's public API only, so this module runs unchanged under
TaskFlow 6.5 (``bench/.venv-taskflow/bin/python tests/compat/except_probes.py``) and
under tideflow's compatibility package. Run as a script, it prints one JSON object per
probe: the exception it raised (its class and the classes it derives from, as
``module.Name``) or ``null`` when nothing was raised. ``test_except_clauses.py`` keeps
TaskFlow's answers as data and checks that ours are caught by the same clauses.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import taskflow.engines
from taskflow import exceptions as exc
from taskflow import states, task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.persistence import backends, models
from taskflow.types import failure, notifier

PROBES: dict[str, Callable[[], Any]] = {}


def probe(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Register ``fn`` as a probe under its own name."""
    PROBES[fn.__name__] = fn
    return fn


class T(task.Task):
    def execute(self, **kwargs: Any) -> Any:
        return self.name


class One(task.Task):
    """A task whose execute takes exactly one argument and no ``**kwargs``."""

    def execute(self, a: Any) -> Any:
        return a


class Needs(task.Task):
    def execute(self, missing_value: Any) -> Any:
        return missing_value


class Fails(task.Task):
    def execute(self) -> Any:
        raise RuntimeError(self.name)


def _ran(flow: Any) -> Any:
    engine = taskflow.engines.load(flow)
    engine.run()
    return engine


# --- building flows -------------------------------------------------------------------


@probe
def duplicate_names_linear() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a"), T("a"))).compile()


@probe
def duplicate_names_nested() -> Any:
    flow = lf.Flow("f").add(T("a"), uf.Flow("sub").add(T("a")))
    return taskflow.engines.load(flow).compile()


@probe
def duplicate_names_graph() -> Any:
    return taskflow.engines.load(gf.Flow("g").add(T("a"), T("a"))).compile()


@probe
def same_task_added_twice() -> Any:
    t = T("t")
    return taskflow.engines.run(lf.Flow("f").add(t, t))


@probe
def same_task_in_parent_and_subflow() -> Any:
    t = T("t")
    flow = lf.Flow("f").add(t, lf.Flow("sub").add(t))
    return taskflow.engines.load(flow).compile()


@probe
def same_subflow_added_twice_nested() -> Any:
    sub = lf.Flow("sub").add(T("a"))
    flow = lf.Flow("f").add(sub, uf.Flow("other").add(sub))
    return taskflow.engines.load(flow).compile()


@probe
def flow_added_to_itself() -> Any:
    flow = lf.Flow("f")
    return flow.add(flow)


@probe
def link_cycle() -> Any:
    a, b = T("a"), T("b")
    flow = gf.Flow("g").add(a, b)
    flow.link(a, b)
    return flow.link(b, a)


@probe
def link_to_itself() -> Any:
    a = T("a")
    return gf.Flow("g").add(a).link(a, a)


@probe
def data_cycle_at_add() -> Any:
    return gf.Flow("g").add(
        T("p", provides="x", requires=["y"]), T("q", provides="y", requires=["x"])
    )


@probe
def link_to_unknown_node() -> Any:
    a = T("a")
    return gf.Flow("g").add(a).link(a, T("c"))


@probe
def link_from_unknown_node() -> Any:
    a = T("a")
    return gf.Flow("g").add(a).link(T("c"), a)


@probe
def ambiguous_provider() -> Any:
    flow = gf.Flow("g").add(T("one", provides="x"), T("two", provides="x"))
    return flow.add(T("consumer", requires=["x"]))


@probe
def missing_requirement_at_run() -> Any:
    return taskflow.engines.run(lf.Flow("f").add(Needs("n")))


@probe
def missing_requirement_at_validate() -> Any:
    engine = taskflow.engines.load(lf.Flow("f").add(Needs("n")))
    engine.compile()
    engine.prepare()
    return engine.validate()


@probe
def requires_its_own_output() -> Any:
    return taskflow.engines.run(lf.Flow("f").add(T("t", provides="x", requires=["x"])))


@probe
def unordered_sibling_output() -> Any:
    flow = uf.Flow("u").add(T("a", provides="x"), T("b", requires=["x"]))
    return taskflow.engines.run(flow)


@probe
def add_none_linear() -> Any:
    return lf.Flow("f").add(None)


@probe
def add_none_unordered() -> Any:
    return uf.Flow("f").add(None)


@probe
def add_none_graph() -> Any:
    return gf.Flow("f").add(None)


@probe
def add_int_linear() -> Any:
    return lf.Flow("f").add(1)


@probe
def add_int_graph() -> Any:
    return gf.Flow("f").add(1)


@probe
def add_string_then_run() -> Any:
    return taskflow.engines.run(lf.Flow("f").add("x"))


@probe
def decider_depth_unknown() -> Any:
    a, b = T("a"), T("b")
    return gf.Flow("g").add(a, b).link(a, b, decider=lambda h: True, decider_depth="bogus")


@probe
def decider_depth_without_decider() -> Any:
    a, b = T("a"), T("b")
    return gf.Flow("g").add(a, b).link(a, b, decider_depth="ATOM")


@probe
def decider_not_callable() -> Any:
    a, b = T("a"), T("b")
    return gf.Flow("g").add(a, b).link(a, b, decider=1)


@probe
def target_not_in_flow() -> Any:
    return gf.TargetedFlow("g").add(T("a")).set_target(T("b"))


@probe
def flow_added_to_itself_then_compiled() -> Any:
    flow = lf.Flow("f").add(T("a"))
    flow.add(flow)
    return taskflow.engines.load(flow).compile()


@probe
def decider_depth_not_a_string() -> Any:
    a, b = T("a"), T("b")
    return gf.Flow("g").add(a, b).link(a, b, decider=lambda h: True, decider_depth=1)


@probe
def flow_retry_not_a_retry() -> Any:
    return lf.Flow("f", retry=T("r"))


@probe
def add_unknown_keyword_graph() -> Any:
    return gf.Flow("g").add(T("a"), resolve_bogus=True)


# --- engines --------------------------------------------------------------------------


@probe
def load_unknown_engine() -> Any:
    return taskflow.engines.load(lf.Flow("f"), engine="bogus")


@probe
def load_unknown_executor() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a")), engine="parallel", executor="bogus")


@probe
def load_executor_without_submit() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a")), engine="parallel", executor=1)


@probe
def load_none() -> Any:
    return taskflow.engines.load(None)


@probe
def load_store_not_a_mapping() -> Any:
    return taskflow.engines.run(lf.Flow("f").add(T("a")), store=[1, 2])


@probe
def prepare_before_compile() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a"))).prepare()


@probe
def validate_before_compile() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a"))).validate()


@probe
def validate_before_prepare() -> Any:
    engine = taskflow.engines.load(lf.Flow("f").add(T("a")))
    engine.compile()
    return engine.validate()


@probe
def reset_before_compile() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a"))).reset()


@probe
def two_tasks_fail_at_once() -> Any:
    return taskflow.engines.run(uf.Flow("u").add(Fails("x"), Fails("y")))


@probe
def argument_cannot_be_bound() -> Any:
    class Short(task.Task):
        def execute(self) -> Any:
            return (1,)

    return taskflow.engines.run(
        lf.Flow("f").add(Short("s", provides=("x", "y")), One("u", rebind=["y"]))
    )


@probe
def decider_raises() -> Any:
    def decider(history: Any) -> bool:
        raise KeyError("decider")

    a, b = T("a"), T("b")
    flow = gf.Flow("g").add(a, b)
    flow.link(a, b, decider=decider)
    return taskflow.engines.run(flow)


@probe
def load_from_factory_lambda() -> Any:
    return taskflow.engines.load_from_factory(lambda: lf.Flow("f"))


@probe
def flow_from_detail_without_factory() -> Any:
    from taskflow.utils import persistence_utils

    _, detail = persistence_utils.temporary_flow_detail()
    return taskflow.engines.flow_from_detail(detail)


# --- storage --------------------------------------------------------------------------


@probe
def fetch_unknown_name() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.fetch("nope")


@probe
def fetch_task_name_not_provided() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.fetch("a")


@probe
def fetch_before_provider_ran() -> Any:
    engine = taskflow.engines.load(lf.Flow("f").add(T("a", provides="x")))
    engine.compile()
    engine.prepare()
    return engine.storage.fetch("x")


@probe
def fetch_short_tuple_result() -> Any:
    class Short(task.Task):
        def execute(self) -> Any:
            return (1,)

    return _ran(lf.Flow("f").add(Short("s", provides=("x", "y")))).storage.fetch("y")


@probe
def atom_state_unknown_atom() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.get_atom_state("nope")


@probe
def get_unknown_atom() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.get("nope")


@probe
def get_before_run() -> Any:
    engine = taskflow.engines.load(lf.Flow("f").add(T("a")))
    engine.compile()
    engine.prepare()
    return engine.storage.get("a")


@probe
def revert_result_of_unreverted_atom() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.get_revert_result("a")


@probe
def set_state_of_unknown_atom() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.set_atom_state("nope", states.SUCCESS)


@probe
def progress_of_unknown_atom() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.get_task_progress("nope")


@probe
def inject_atom_args_unknown_atom() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.inject_atom_args("nope", {"x": 1})


@probe
def inject_not_a_mapping() -> Any:
    return _ran(lf.Flow("f").add(T("a"))).storage.inject([1, 2])


# --- tasks ----------------------------------------------------------------------------


@probe
def rebind_dict_extra_name() -> Any:
    return One(rebind={"zz": "y"})


@probe
def rebind_list_too_long() -> Any:
    return One(rebind=["x", "y"])


@probe
def requires_extra_name() -> Any:
    return One(requires=["c"])


@probe
def rebind_not_a_collection() -> Any:
    return One(rebind=1)


@probe
def requires_not_a_collection() -> Any:
    return One(requires=1)


@probe
def provides_not_a_name() -> Any:
    return T("t", provides=1)


@probe
def inject_not_a_mapping_at_construction() -> Any:
    return One(inject=[1])


@probe
def revert_rebind_extra_name() -> Any:
    class R(task.Task):
        def execute(self) -> Any:
            return 1

        def revert(self, x: Any, **kwargs: Any) -> Any:
            return None

    return R(revert_rebind={"zz": "y"})


@probe
def base_task_instantiated() -> Any:
    return task.Task()


@probe
def functor_not_callable() -> Any:
    return task.FunctorTask(1)


@probe
def functor_revert_not_callable() -> Any:
    return task.FunctorTask(lambda: 1, revert=1)


@probe
def map_functor_two_arguments() -> Any:
    return task.MapFunctorTask(lambda a, b: a, requires="xs")


@probe
def map_functor_no_argument() -> Any:
    return task.MapFunctorTask(lambda: 1, requires="xs")


@probe
def map_functor_two_requirements() -> Any:
    return task.MapFunctorTask(lambda a: a, requires=["xs", "ys"])


@probe
def map_functor_no_requirement() -> Any:
    return task.MapFunctorTask(lambda a: a)


@probe
def map_functor_not_callable() -> Any:
    return task.MapFunctorTask(1, requires="xs")


@probe
def reduce_functor_one_argument() -> Any:
    return task.ReduceFunctorTask(lambda a: a, requires=["x", "y"])


@probe
def reduce_functor_one_requirement() -> Any:
    return task.ReduceFunctorTask(lambda a, b: a, requires=["x"])


@probe
def reduce_functor_no_requirement() -> Any:
    return task.ReduceFunctorTask(lambda a, b: a)


@probe
def reduce_functor_not_callable() -> Any:
    return task.ReduceFunctorTask(1, requires=["x", "y"])


@probe
def update_progress_keyword() -> Any:
    return T("t").update_progress(0.5, foo="bar")


@probe
def provides_repeated_name() -> Any:
    return T("t", provides=("x", "x"))


@probe
def provides_not_names() -> Any:
    return T("t", provides=["x", 1])


@probe
def requires_not_names() -> Any:
    return T("t", requires=["x", 1])


@probe
def rebind_value_not_a_name() -> Any:
    return One(rebind={"a": 1})


@probe
def name_not_a_string() -> Any:
    return T(name=1)


@probe
def positional_only_execute() -> Any:
    class P(task.Task):
        def execute(self, a: Any, /) -> Any:
            return a

    return taskflow.engines.run(lf.Flow("f").add(P("p")), store={"a": 1})


@probe
def reduce_functor_requires_a_string() -> Any:
    return task.ReduceFunctorTask(lambda a, b: a, requires="xy")


@probe
def map_functor_requires_not_names() -> Any:
    return task.MapFunctorTask(lambda a: a, requires=1)


@probe
def functor_task_with_two_names() -> Any:
    return task.FunctorTask(lambda x: x, name=1)


# --- notifiers ------------------------------------------------------------------------


@probe
def register_twice() -> Any:
    n = notifier.Notifier()
    n.register("e", print)
    return n.register("e", print)


@probe
def register_not_callable() -> Any:
    return notifier.Notifier().register("e", 1)


@probe
def register_reserved_keyword() -> Any:
    return notifier.Notifier().register("e", print, kwargs={"details": 1})


@probe
def register_undeclared_task_event() -> Any:
    return T("t").notifier.register("undeclared", print)


# --- failures and states --------------------------------------------------------------


@probe
def failure_outside_except() -> Any:
    return failure.Failure()


@probe
def failure_of_keyboard_interrupt() -> Any:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        return failure.Failure()


@probe
def failure_from_bad_dict() -> Any:
    return failure.Failure.from_dict({"version": 1})


@probe
def failure_validate_bad_dict() -> Any:
    return failure.Failure.validate({"version": 1})


@probe
def reraise_of_rebuilt_failure() -> Any:
    try:
        raise ValueError("v")
    except ValueError:
        captured = failure.Failure()
    return failure.Failure.from_dict(captured.to_dict()).reraise()


@probe
def flow_transition_forbidden() -> Any:
    return states.check_flow_transition(states.IGNORE, states.RETRYING)


@probe
def task_transition_forbidden() -> Any:
    return states.check_task_transition(states.SUCCESS, states.RUNNING)


@probe
def job_transition_forbidden() -> Any:
    return states.check_job_transition(states.COMPLETE, states.CLAIMED)


@probe
def engine_run_with_bad_timeout() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a"))).run(timeout="soon")


@probe
def parallel_engine_zero_workers() -> Any:
    flow = lf.Flow("f").add(T("a"))
    return taskflow.engines.run(flow, engine="parallel", max_workers=0)


@probe
def suspend_before_run() -> Any:
    return taskflow.engines.load(lf.Flow("f").add(T("a"))).suspend()


# --- persistence ----------------------------------------------------------------------


@probe
def backend_unknown_scheme() -> Any:
    return backends.fetch("bogus://")


@probe
def backend_conf_without_connection() -> Any:
    return backends.fetch({"nope": 1})


@probe
def memory_logbook_unknown() -> Any:
    with backends.backend("memory://") as backend:
        return backend.get_connection().get_logbook("no-such-uuid")


@probe
def memory_destroy_unknown_logbook() -> Any:
    with backends.backend("memory://") as backend:
        return backend.get_connection().destroy_logbook("no-such-uuid")


@probe
def memory_flow_detail_unknown() -> Any:
    with backends.backend("memory://") as backend:
        return backend.get_connection().get_flow_details("no-such-uuid")


@probe
def memory_atom_detail_unknown() -> Any:
    with backends.backend("memory://") as backend:
        return backend.get_connection().get_atom_details("no-such-uuid")


@probe
def atom_detail_class_unknown() -> Any:
    return models.atom_detail_class("BOGUS")


# --- exceptions a program raises itself -----------------------------------------------


@probe
def construct_missing_dependencies() -> Any:
    raise exc.MissingDependencies("who", ["a", "b"])


@probe
def construct_disallowed_access() -> Any:
    raise exc.DisallowedAccess("no", cause=None, state="PENDING")


@probe
def construct_wrapped_failure() -> Any:
    raise exc.WrappedFailure([failure.Failure.from_exception(ValueError("v"))])


@probe
def raise_with_cause_not_found() -> Any:
    try:
        raise KeyError("k")
    except KeyError:
        exc.raise_with_cause(exc.NotFound, "gone")


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def outcome(name: str) -> dict[str, Any]:
    """Run one probe; say what it raised (class, bases by name, first message line)."""
    try:
        PROBES[name]()
    except BaseException as error:  # the point is to see everything a probe raises
        first = str(error).splitlines()[0] if str(error) else ""
        return {
            "probe": name,
            "raised": _name(type(error)),
            "mro": [_name(c) for c in type(error).__mro__],
            "message": first[:160],
        }
    return {"probe": name, "raised": None, "mro": [], "message": ""}


def main(names: list[str]) -> int:
    """Print one JSON line per probe (all probes when none are named)."""
    for name in names or list(PROBES):
        print(json.dumps(outcome(name)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
