"""The ``taskflow`` package's surface: aliases, translated options and the small helpers."""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import threading
from pathlib import Path

import pytest

import taskflow
import taskflow.engines
import tideflow
from taskflow import exceptions as exc
from taskflow import states, task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf
from taskflow.persistence import backends, models
from taskflow.types import notifier
from taskflow.utils import misc, threading_utils

MODULES = [
    "taskflow.atom",
    "taskflow.deciders",
    "taskflow.engines",
    "taskflow.engines.helpers",
    "taskflow.exceptions",
    "taskflow.flow",
    "taskflow.logging",
    "taskflow.patterns.graph_flow",
    "taskflow.patterns.linear_flow",
    "taskflow.patterns.unordered_flow",
    "taskflow.persistence.backends",
    "taskflow.persistence.backends.impl_memory",
    "taskflow.persistence.models",
    "taskflow.states",
    "taskflow.storage",
    "taskflow.task",
    "taskflow.types.failure",
    "taskflow.types.notifier",
    "taskflow.utils.misc",
    "taskflow.utils.persistence_utils",
    "taskflow.utils.threading_utils",
]
LISTENER_MODULES = [
    "taskflow.listeners.base",
    "taskflow.listeners.capturing",
    "taskflow.listeners.logging",
    "taskflow.listeners.printing",
    "taskflow.listeners.timing",
]


class Echo(task.Task):
    def execute(self, value):
        return value


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's __all__ order: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


def test_taskflow_is_the_compat_package() -> None:
    compat_src = Path(__file__).resolve().parents[2] / "compat" / "src"
    assert Path(taskflow.__file__).resolve().is_relative_to(compat_src)


@pytest.mark.parametrize("name", MODULES + LISTENER_MODULES)
def test_module_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    assert module.__doc__.strip()
    exported = module.__all__
    assert list(exported) == sorted(exported, key=_isort_key)
    for attr in exported:
        assert hasattr(module, attr), attr


# -- aliases -----------------------------------------------------------------------------


def test_core_classes_are_tideflow_classes() -> None:
    from taskflow import atom, flow, storage
    from taskflow.types import failure

    assert task.Task is tideflow.Task
    assert task.FunctorTask is tideflow.FunctorTask
    assert task.MapFunctorTask is tideflow.MapFunctorTask
    assert task.ReduceFunctorTask is tideflow.ReduceFunctorTask
    assert atom.Atom is tideflow.Atom
    assert flow.Flow is tideflow.Flow
    assert lf.Flow is tideflow.LinearFlow
    assert uf.Flow is tideflow.UnorderedFlow
    assert gf.Flow is tideflow.GraphFlow
    assert gf.TargetedFlow is tideflow.TargetedFlow
    assert storage.Storage is tideflow.Storage
    assert failure.Failure is tideflow.Failure
    assert notifier.Notifier is tideflow.Notifier
    assert notifier.RestrictedNotifier is tideflow.RestrictedNotifier
    assert task.EVENT_UPDATE_PROGRESS == "update_progress"


def test_exception_aliases() -> None:
    errors = tideflow.errors
    assert exc.TaskFlowException is errors.TideflowError
    assert exc.DependencyFailure is errors.DependencyError
    assert exc.MissingDependencies is errors.MissingRequirementError
    assert exc.AmbiguousDependency is errors.AmbiguousProviderError
    assert exc.Duplicate is errors.DuplicateAtomError
    assert exc.CompilationFailure is errors.CompilationError
    assert exc.ExecutionFailure is errors.ExecutionError
    assert exc.InvalidState is errors.InvalidStateError
    assert exc.NotFound is errors.NotFoundError
    assert exc.StorageFailure is errors.StoreError
    assert exc.WrappedFailure is tideflow.WrappedFailure
    assert not issubclass(exc.WrappedFailure, exc.TaskFlowException)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("Empty", "TaskFlowException"),
        ("MultipleChoices", "TaskFlowException"),
        ("InvalidFormat", "TaskFlowException"),
        ("DisallowedAccess", "TaskFlowException"),
        ("JobFailure", "TaskFlowException"),
        ("UnclaimableJob", "JobFailure"),
        ("ConductorFailure", "TaskFlowException"),
        ("IncompatibleVersion", "TaskFlowException"),
        ("RequestTimeout", "ExecutionFailure"),
    ],
)
def test_exceptions_tideflow_lacks(name: str, base: str) -> None:
    cls = getattr(exc, name)
    assert issubclass(cls, getattr(exc, base))
    error = cls("message", cause=KeyError("k"))
    assert str(error) == "message\n  KeyError: 'k'"  # TaskFlow shows the cause below
    assert error.message == "message"
    assert isinstance(error.cause, KeyError)


def test_disallowed_access_keeps_state_and_not_implemented_is_builtin() -> None:
    assert exc.DisallowedAccess("no", state="PENDING").state == "PENDING"
    assert issubclass(exc.NotImplementedError, NotImplementedError)


def _fail_while_handling() -> None:
    try:
        raise KeyError("inner")
    except KeyError:
        exc.raise_with_cause(exc.StorageFailure, "outer")


def test_raise_with_cause_chains_the_handled_exception() -> None:
    with pytest.raises(exc.StorageFailure, match=r"outer\n  KeyError: 'inner'") as info:
        _fail_while_handling()
    assert isinstance(info.value.cause, KeyError)
    assert info.value.__cause__ is info.value.cause


# -- states --------------------------------------------------------------------------------


def test_state_constants_are_plain_strings_equal_to_tideflows() -> None:
    names = [n for n in states.__all__ if n.isupper() and n != "INTENTIONS"]
    for name in names:
        value = getattr(states, name)
        assert type(value) is str
        assert value == name
        if hasattr(tideflow.states, name):
            assert value == getattr(tideflow.states, name)
    assert states.INTENTIONS == ("EXECUTE", "IGNORE", "REVERT", "RETRY")


@pytest.mark.parametrize(
    ("old", "new", "answer"),
    [
        ("PENDING", "RUNNING", True),
        ("RUNNING", "SUSPENDING", True),
        ("SUSPENDING", "SUSPENDED", True),
        ("SUSPENDED", "RUNNING", True),
        ("REVERTED", "PENDING", True),
        ("RUNNING", "RUNNING", False),
        ("PENDING", "SUSPENDING", False),
        ("SUCCESS", "RESUMING", False),
        ("SUSPENDED", "SUSPENDING", False),
    ],
)
def test_check_flow_transition(old: str, new: str, answer: bool) -> None:
    assert states.check_flow_transition(old, new) is answer


def test_check_flow_transition_raises_invalid_state() -> None:
    with pytest.raises(exc.InvalidState, match="Flow transition from 'PENDING' to 'SUCCESS'"):
        states.check_flow_transition(states.PENDING, states.SUCCESS)


def test_task_and_retry_transitions_never_raise() -> None:
    assert states.check_task_transition(states.PENDING, states.RUNNING)
    assert states.check_task_transition(states.REVERTING, states.REVERT_FAILURE)
    assert not states.check_task_transition(states.SUCCESS, states.RETRYING)
    assert not states.check_task_transition(states.PENDING, states.SUCCESS)
    assert states.check_retry_transition(states.SUCCESS, states.RETRYING)
    assert states.check_retry_transition(states.RETRYING, states.RUNNING)


def test_check_job_transition() -> None:
    assert states.check_job_transition(states.UNCLAIMED, states.CLAIMED)
    assert not states.check_job_transition(states.CLAIMED, states.CLAIMED)
    with pytest.raises(
        exc.InvalidState, match=r"Job transition from 'COMPLETE' to 'CLAIMED' is not allowed"
    ):
        states.check_job_transition(states.COMPLETE, states.CLAIMED)


# -- engines ---------------------------------------------------------------------------


def _flow(name: str = "f") -> tideflow.LinearFlow:
    return lf.Flow(name).add(Echo("echo", provides="out"))


def test_load_takes_taskflow_positional_order() -> None:
    backend = backends.fetch("memory://")
    book = models.LogBook("book")
    engine = taskflow.engines.load(_flow(), {"value": 1}, None, book, backend)
    engine.run()
    assert engine.storage.fetch("out") == 1
    assert [fd.name for fd in book] == ["f"]


@pytest.mark.parametrize("name", ["default", "serial", None])
def test_serial_engine_names(name: str | None) -> None:
    engine = taskflow.engines.load(_flow(), store={"value": 2}, engine=name)
    assert engine.kind == "serial"
    assert engine.options == {}


def test_engine_uri_carries_options_and_keywords_win() -> None:
    engine = taskflow.engines.load(
        _flow(), store={"value": 3}, engine="parallel://?max_workers=2&extra=x", extra="y"
    )
    assert engine.kind == "parallel"
    assert engine.options == {"max_workers": "2", "extra": "y"}
    engine.run()
    assert engine.storage.fetch("out") == 3


def test_unknown_options_are_kept_and_ignored() -> None:
    engine = taskflow.engines.load(
        _flow(),
        store={"value": 4},
        namespace="somewhere.else",
        inject_transient=False,
        defer_reverts=True,
        never_resolve=True,
    )
    assert engine.options == {
        "inject_transient": False,
        "defer_reverts": True,
        "never_resolve": True,
    }
    engine.run()


def test_serial_engine_ignores_executor_like_taskflow() -> None:
    # TaskFlow ignores it silently; programs choosing the engine by configuration rely on
    # that, so the compat layer goes on, but says so
    with pytest.warns(UserWarning, match=r"ignores \['executor'\]"):
        engine = taskflow.engines.load(_flow(), store={"value": 5}, executor=object())
    engine.run()
    assert engine.storage.fetch("out") == 5


def test_parallel_engine_refuses_an_executor_without_submit() -> None:
    with pytest.raises(TypeError, match=r"Unknown executor .* expected an object with submit\(\)"):
        taskflow.engines.load(_flow(), engine="parallel", executor=object())


@pytest.mark.parametrize("word", ["thread", "THREADS", "threaded", "greenthreaded"])
def test_parallel_engine_executor_strings(word: str) -> None:
    engine = taskflow.engines.load(_flow(), store={"value": 6}, engine="parallel", executor=word)
    engine.run()
    assert engine.storage.fetch("out") == 6


def test_parallel_engine_runs_on_a_given_executor() -> None:
    seen: list[str] = []

    class Where(task.Task):
        def execute(self):
            seen.append(threading.current_thread().name)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine") as pool:
        taskflow.engines.run(
            uf.Flow("u").add(Where("w1"), Where("w2")), engine="parallel", executor=pool
        )
    assert len(seen) == 2
    assert all(name.startswith("mine") for name in seen)


def test_worker_based_engine_is_reported_missing() -> None:
    with pytest.raises(exc.NotFound, match="worker-based"):
        taskflow.engines.load(_flow(), engine="worker-based")


def test_backend_may_be_given_as_a_dict() -> None:
    engine = taskflow.engines.load(_flow(), store={"value": 7}, backend={"connection": "memory"})
    engine.run()
    assert engine.storage.fetch("out") == 7


def test_load_from_factory_accepts_a_dotted_name() -> None:
    engine = taskflow.engines.load_from_factory(
        f"{__name__}.make_echo_flow", factory_kwargs={"name": "named"}, store={"value": 8}
    )
    engine.run()
    assert engine.storage.fetch("out") == 8
    assert engine.storage.flow_detail.meta["factory"]["name"] == f"{__name__}.make_echo_flow"


def make_echo_flow(name: str = "made") -> tideflow.LinearFlow:
    """A module-level flow factory for load_from_factory."""
    return _flow(name)


def test_run_returns_store_and_results() -> None:
    assert taskflow.engines.run(_flow(), store={"value": 9}) == {"value": 9, "out": 9}


# -- notifier, persistence, utils ----------------------------------------------------


def test_register_deregister_cleans_up_after_an_error() -> None:
    n = notifier.Notifier()

    def callback(event, details):
        return None

    registered: list[bool] = []

    def scoped() -> None:
        with notifier.register_deregister(n, "e", callback):
            registered.append(n.is_registered("e", callback))
            raise RuntimeError("leaving the scope")

    with pytest.raises(RuntimeError, match="leaving the scope"):
        scoped()
    assert registered == [True]
    assert not n.is_registered("e", callback)
    assert len(n) == 0


def test_notifier_listener_class() -> None:
    listener = notifier.Listener(print, args=[1], kwargs={"k": 2})
    assert listener.callback is print
    assert tuple(listener.args) == (1,)
    assert dict(listener.kwargs) == {"k": 2}
    assert listener.is_equivalent(print)


def test_backend_fetch_forms() -> None:
    assert type(backends.fetch("memory")).__name__ == "MemoryBackend"
    assert type(backends.fetch({"connection": "memory://"})).__name__ == "MemoryBackend"
    with pytest.raises(KeyError, match=r"connection"):
        backends.fetch({"nope": 1})
    with pytest.raises(exc.NotFound, match=r"no store for 'bogus://'"):
        backends.fetch("bogus://")
    assert backends.BACKEND_NAMESPACE == "taskflow.persistence"


def test_backend_context_manager_closes() -> None:
    closed: list[bool] = []
    with backends.backend("memory://") as be:
        be.close = lambda: closed.append(True)
    assert closed == [True]


def test_model_helpers() -> None:
    assert models.ATOM_TYPES == ["RETRY_DETAIL", "TASK_DETAIL"]
    assert models.atom_detail_class("TASK_DETAIL") is models.TaskDetail
    assert models.atom_detail_type(models.RetryDetail("r")) == "RETRY_DETAIL"
    with pytest.raises(TypeError, match=r"Unknown atom type 'BOGUS'"):
        models.atom_detail_class("BOGUS")


def test_daemon_thread() -> None:
    got: list[tuple[int, str]] = []
    thread = threading_utils.daemon_thread(lambda a, b: got.append((a, b)), 1, b="x")
    assert thread.daemon
    assert not thread.is_alive()
    thread.start()
    thread.join()
    assert got == [(1, "x")]
    assert not threading_utils.is_alive(thread)
    assert threading_utils.get_ident() == threading.get_ident()
    assert threading_utils.get_optimal_thread_count() >= 1
    assert threading_utils.no_op(1, k=2) is None


def test_thread_bundle_starts_and_stops_with_hooks() -> None:
    release = threading.Event()
    calls: list[str] = []
    bundle = threading_utils.ThreadBundle()
    for i in range(2):
        bundle.bind(
            lambda: threading_utils.daemon_thread(release.wait, 5),
            before_start=lambda t, i=i: calls.append(f"before_start{i}"),
            after_join=lambda t, i=i: calls.append(f"after_join{i}"),
        )
    assert len(bundle) == 2
    assert bundle.start() == 2
    assert bundle.start() == 0  # already running
    release.set()
    assert bundle.stop() == 2
    assert calls == ["before_start0", "before_start1", "after_join1", "after_join0"]
    with pytest.raises(ValueError, match=r"Provided thread factory must be callable"):
        bundle.bind("not callable")  # type: ignore[arg-type]


def test_misc_helpers() -> None:
    assert misc.as_int("2") == 2
    assert misc.as_int("2.5") == 2
    assert misc.as_int("x", quiet=True) == "x"
    with pytest.raises(ValueError, match=r"Can not translate 'x'"):
        misc.as_int("x")
    clamped: list[bool] = []
    assert misc.clamp(1.7, 0.0, 1.0, on_clamped=lambda: clamped.append(True)) == 1.0
    assert misc.clamp(0.5, 0.0, 1.0) == 0.5
    assert clamped == [True]


def test_taskflow_logging_trace(caplog: pytest.LogCaptureFixture) -> None:
    from taskflow import logging as tf_logging

    log = tf_logging.getLogger("taskflow.compat-test")
    with caplog.at_level(tf_logging.TRACE, logger="taskflow.compat-test"):
        log.trace("tracing %s", "on")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(5, "tracing on")]
    assert tf_logging.WARN == logging.WARNING


def test_listener_base_constants_and_abstract_dumper() -> None:
    from taskflow.listeners import base, timing

    assert base.DEFAULT_LISTEN_FOR == ("*",)
    assert base.FINISH_STATES == ("FAILURE", "SUCCESS", "REVERTED", "REVERT_FAILURE")
    assert {"RUNNING", "REVERTING"} == timing.STARTING_STATES
    assert "PENDING" in timing.WATCH_STATES
    with pytest.raises(TypeError, match=r"abstract class DumpingListener"):
        base.DumpingListener(taskflow.engines.load(_flow()))  # type: ignore[abstract]


# -- behaviour once listed as deviations (now fixed in tideflow) --------------------


def test_each_callback_gets_its_own_details() -> None:
    n = notifier.Notifier()
    seen: list[bool] = []
    n.register("e", lambda event, details: details.update(mutated=True))
    n.register("e", lambda event, details: seen.append("mutated" in details))
    n.notify("e", {})
    assert seen == [False]


def test_run_iter_phases() -> None:
    engine = taskflow.engines.load(lf.Flow("f").add(Echo("a")), store={"value": 1})
    assert list(engine.run_iter()) == ["RESUMING", "SCHEDULING", "WAITING", "ANALYZING", "SUCCESS"]


def test_run_iter_suspend_by_send() -> None:
    engine = taskflow.engines.load(lf.Flow("f").add(Echo("a")), store={"value": 1})
    it = engine.run_iter()
    assert [next(it), next(it)] == ["RESUMING", "SCHEDULING"]
    assert [it.send(True), *it] == ["WAITING", "ANALYZING", "SUSPENDED"]


def test_logging_listeners_log_on_taskflows_logger(caplog: pytest.LogCaptureFixture) -> None:
    import taskflow.engines
    from taskflow import task
    from taskflow.listeners import logging as logging_listeners
    from taskflow.patterns import linear_flow as lf

    class T(task.Task):
        def execute(self):
            return 1

    for listener in (logging_listeners.LoggingListener, logging_listeners.DynamicLoggingListener):
        caplog.clear()
        engine = taskflow.engines.load(lf.Flow("f").add(T("a")))
        with caplog.at_level(10), listener(engine):
            engine.run()
        assert {r.name for r in caplog.records} == {"taskflow.listeners.logging"}


def test_taskflow_programs_can_name_tideflows_own_executors():
    import compat_support

    # TaskFlow 6 has no process or asyncio executor; through the compat layer the names
    # reach tideflow's executors (the task is importable, so a worker process can load it)
    import taskflow.engines
    from taskflow.patterns import linear_flow

    for executor in ("processes", "asyncio", "Threaded"):
        flow = linear_flow.Flow("f").add(compat_support.Seven("a", provides="x"))
        assert taskflow.engines.run(flow, engine="parallel", executor=executor) == {"x": 7}
