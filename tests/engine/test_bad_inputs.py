"""A catalogue of users' mistakes: each meets a clear error where it is made, and loses nothing.

Every case starts from a run that has finished and been recorded, makes one mistake
against it (or beside it, through the same record), and checks three things: the
exception type, that the message names the culprit (``match``), and that the record
is exactly as it was: flow state, every atom's state, result and failure, and every
stored value. Kinds follow issue 6: options of the entry points, what is given to a
run, storage, notifiers, task and flow definitions, and resumption.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

import tideflow
from tideflow.persistence.models import FlowDetail, LogBook


class Add(tideflow.Task):
    default_provides = "total"

    def execute(self, x: int, y: int) -> int:
        return x + y


class Double(tideflow.Task):
    default_provides = "doubled"

    def execute(self, total: int) -> int:
        return total * 2


def _flow() -> tideflow.LinearFlow:
    return tideflow.LinearFlow("sums").add(Add("add"), Double("double"))


def make_resumable_flow() -> tideflow.LinearFlow:
    """A factory importable by name, for the load_from_* cases."""
    return _flow()


def _snapshot(engine: tideflow.Engine) -> dict[str, Any]:
    storage = engine.storage
    detail = storage.flow_detail
    return {
        "flow": str(storage.get_flow_state()),
        "injected": dict(detail.injected),
        "atoms": {
            a.name: (str(a.state), str(a.intention), a.results, a.failure, a.revert_results)
            for a in detail
        },
        "values": storage.fetch_all(),
        "flow_listeners": len(engine.notifier),
        "atom_listeners": len(engine.atom_notifier),
    }


@pytest.fixture
def done() -> tideflow.Engine:
    """A run that finished: 'total' and 'doubled' are recorded."""
    engine = tideflow.load(_flow(), store={"x": 1, "y": 2})
    engine.run()
    assert engine.storage.fetch("doubled") == 6
    return engine


class Case(NamedTuple):
    id: str
    mistake: Callable[[tideflow.Engine], object]
    error: type[BaseException]
    match: str


def _load_beside(done: tideflow.Engine, **options: Any) -> tideflow.Engine:
    """Load the same flow on the same record and store, with ``options``."""
    return tideflow.load(
        _flow(),
        backend=done.storage.backend,
        flow_detail=done.storage.flow_detail,
        **options,
    )


class NotAnExecutor:
    def run(self, fn: Callable[[], object]) -> object:
        return fn()


class Uninitialised(tideflow.Task):
    def __init__(self, label: str) -> None:  # forgets super().__init__()
        self.label = label

    def execute(self) -> None:
        return None


class GeneratorTask(tideflow.Task):
    def execute(self) -> Any:
        yield 1


class Retryless(tideflow.Task):
    def execute(self) -> None:
        return None


def _register(notifier_name: str, event: object, callback: object = print, **kw: Any) -> Any:
    def mistake(engine: tideflow.Engine) -> None:
        getattr(engine, notifier_name).register(event, callback, **kw)

    return mistake


OPTIONS = [
    Case(
        "engine-misspelled",
        lambda e: _load_beside(e, engine="paralel"),
        tideflow.NotFoundError,
        r"unknown engine 'paralel': did you mean 'parallel'",
    ),
    Case(
        "engine-unknown",
        lambda e: _load_beside(e, engine="distributed"),
        tideflow.NotFoundError,
        r"unknown engine 'distributed'.*\['parallel', 'serial'\]",
    ),
    Case(
        "engine-worker-based",
        lambda e: _load_beside(e, engine="worker-based"),
        tideflow.NotFoundError,
        r"worker-based engine is not available",
    ),
    Case(
        "engine-not-a-name",
        lambda e: _load_beside(e, engine=2),
        TypeError,
        r"engine= takes a name.*got 2 \(int\)",
    ),
    Case(
        "engine-uri",
        lambda e: _load_beside(e, engine="parallel://?max_workers=abc"),
        ValueError,
        r"engine='parallel://\?max_workers=abc'.*options as keywords",
    ),
    Case(
        "executor-string-unknown",
        lambda e: _load_beside(e, engine="parallel", executor="thredas"),
        ValueError,
        r"executor='thredas' is not an executor name; did you mean 'threads'",
    ),
    Case(
        "executor-dask",
        lambda e: _load_beside(e, engine="parallel", executor="dask"),
        ValueError,
        r"executor='dask' does not say which cluster to run on: pass the distributed.Client",
    ),
    Case(
        "executor-without-submit",
        lambda e: _load_beside(e, engine="parallel", executor=NotAnExecutor()),
        TypeError,
        r"executor= takes an object with submit\(\).*NotAnExecutor",
    ),
    Case(
        "executor-on-serial",
        lambda e: _load_beside(e, executor=concurrent.futures.ThreadPoolExecutor(1)),
        ValueError,
        r"executor= would be ignored: the serial engine",
    ),
    Case(
        "executor-name-on-serial",
        lambda e: _load_beside(e, executor="threads"),
        ValueError,
        r"executor='threads' would be ignored: the serial engine",
    ),
    Case(
        "max-workers-text",
        lambda e: _load_beside(e, engine="parallel", max_workers="4"),
        TypeError,
        r"max_workers= takes a whole number, got '4' \(str\)",
    ),
    Case(
        "max-workers-bool",
        lambda e: _load_beside(e, engine="parallel", max_workers=True),
        TypeError,
        r"max_workers= takes a whole number, got True \(bool\)",
    ),
    Case(
        "max-workers-zero",
        lambda e: _load_beside(e, engine="parallel", max_workers=0),
        ValueError,
        r"max_workers must be at least 1, got 0",
    ),
    Case(
        "max-workers-on-serial",
        lambda e: _load_beside(e, max_workers=4),
        ValueError,
        r"max_workers= would be ignored: the serial engine",
    ),
    Case(
        "store-not-a-mapping",
        lambda e: _load_beside(e, store=[("x", 1)]),
        TypeError,
        r"store= takes a mapping of names to values.*got list",
    ),
    Case(
        "store-key-not-a-name",
        lambda e: _load_beside(e, store={1: "one"}),
        TypeError,
        r"store= keys are the names atoms require.*got 1 \(int\)",
    ),
    Case(
        "backend-object",
        lambda e: tideflow.load(_flow(), flow_detail=e.storage.flow_detail, backend=object()),
        TypeError,
        r"backend= takes a store URL such as 'memory://'",
    ),
    Case(
        "backend-unknown-url",
        lambda e: tideflow.load(_flow(), flow_detail=e.storage.flow_detail, backend="nosuch://x"),
        tideflow.NotFoundError,
        r"no store for 'nosuch://x'",
    ),
    Case(
        "book-wrong-type",
        lambda e: tideflow.load(_flow(), book={"name": "b"}),
        TypeError,
        r"book= takes a tideflow LogBook, got \{'name': 'b'\} \(dict\)",
    ),
    Case(
        "flow-detail-wrong-type",
        lambda e: tideflow.load(_flow(), flow_detail=e.storage.flow_uuid),
        TypeError,
        r"flow_detail= takes the FlowDetail record of a run, got '",
    ),
    Case(
        "flow-not-a-flow",
        lambda e: tideflow.load("sums"),
        TypeError,
        r"load\(\) takes a flow \(or a single atom\), got 'sums' \(str\)",
    ),
    Case(
        "atom-never-initialised",
        lambda e: tideflow.load(Uninitialised("u")),
        TypeError,
        r"Uninitialised was never initialised: its __init__ must call super",
    ),
]

RUN = [
    Case(
        "timeout-text",
        lambda e: e.run(timeout="x"),
        TypeError,
        r"timeout= takes a number of seconds.*got 'x' \(str\)",
    ),
    Case(
        "timeout-negative",
        lambda e: e.run(timeout=-1),
        ValueError,
        r"timeout= must be zero or more seconds, got -1",
    ),
    Case(
        "timeout-nan",
        lambda e: e.run(timeout=float("nan")),
        ValueError,
        r"timeout= must be zero or more seconds, got nan",
    ),
    Case(
        "run-iter-timeout-bool",
        lambda e: e.run_iter(timeout=True),
        TypeError,
        r"timeout= takes a number of seconds.*got True \(bool\)",
    ),
    Case(
        "run-generator-task",
        lambda e: tideflow.run(GeneratorTask("gen")),
        tideflow.CompilationError,
        r"atom 'gen': its execute\(\) is a generator function",
    ),
]

STORAGE = [
    Case(
        "inject-not-a-mapping",
        lambda e: e.storage.inject(["x", 5]),
        TypeError,
        r"inject\(\) takes a mapping of names to values, got list",
    ),
    Case(
        "inject-key-not-a-name",
        lambda e: e.storage.inject({("x",): 5}),
        TypeError,
        r"inject\(\) keys are the names atoms require.*\('x',\) \(tuple\)",
    ),
    Case(
        "fetch-unknown",
        lambda e: e.storage.fetch("totl"),
        tideflow.NotFoundError,
        r"no value named 'totl' in flow 'sums': nothing provides it",
    ),
    Case(
        "atom-state-unknown",
        lambda e: e.storage.get_atom_state("dubble"),
        tideflow.NotFoundError,
        r"unknown atom 'dubble' in flow 'sums'.*'double'",
    ),
    Case(
        "revert-result-of-unreverted",
        lambda e: e.storage.get_revert_result("add"),
        tideflow.NotFoundError,
        r"atom 'add' has not been reverted \(it is SUCCESS\)",
    ),
]

NOTIFIERS = [
    Case(
        "flow-event-typo",
        _register("notifier", "SUCESS"),
        ValueError,
        r"no event named 'SUCESS'.*did you mean 'SUCCESS'",
    ),
    Case(
        "atom-event-typo",
        _register("atom_notifier", "REVERTD"),
        ValueError,
        r"no event named 'REVERTD'.*did you mean 'REVERTED'",
    ),
    Case(
        "event-lowercase",
        _register("atom_notifier", "success"),
        ValueError,
        r"no event named 'success'.*did you mean 'SUCCESS'",
    ),
    Case(
        "callback-not-callable",
        _register("notifier", "SUCCESS", callback="print"),
        ValueError,
        r"notifier callback 'print' must be callable",
    ),
    Case(
        "details-filter-not-callable",
        _register("notifier", "SUCCESS", details_filter="yes"),
        ValueError,
        r"details filter 'yes' must be callable",
    ),
    Case(
        "bound-details-keyword",
        _register("notifier", "SUCCESS", kwargs={"details": 1}),
        KeyError,
        r"'details' is reserved",
    ),
    Case(
        "subscribe-not-callable",
        lambda e: e.subscribe("print"),
        TypeError,
        r"subscribe\(\) takes a callable, got 'print'",
    ),
]

DEFINITIONS = [
    Case(
        "inject-key-not-taken",
        lambda e: Add("a2", inject={"z": 1}),
        ValueError,
        r"atom 'a2': inject= gives \['z'\].*it takes \['x', 'y'\]",
    ),
    Case(
        "atom-inject-key-not-a-name",
        lambda e: Add("a3", inject={3: 1}),
        TypeError,
        r"atom 'a3': inject= keys .* must be str; got 3 \(int\)",
    ),
    Case(
        "atom-inject-not-a-mapping",
        lambda e: Add("a4", inject=[("x", 1)]),
        TypeError,
        r"atom 'a4': inject= takes a mapping of names to values, got list",
    ),
    Case(
        "provides-wrong-type",
        lambda e: Add("a5", provides=5),
        TypeError,
        r"atom 'a5': provides must be a name",
    ),
    Case(
        "requires-not-names",
        lambda e: Add("a6", requires=[1]),
        TypeError,
        r"atom 'a6': requires must be names \(str\), got 1",
    ),
    Case(
        "rebind-unknown-parameter",
        lambda e: Add("a7", rebind={"z": "w"}),
        ValueError,
        r"atom 'a7': \['z'\] are not parameters of its callable",
    ),
    Case(
        "update-progress-text",
        lambda e: Add("a8").update_progress("half"),
        TypeError,
        r"task 'a8': update_progress\(\) takes a number.*'half' \(str\)",
    ),
    Case(
        "update-progress-nan",
        lambda e: Add("a9").update_progress(float("nan")),
        ValueError,
        r"task 'a9': update_progress\(\) got NaN",
    ),
    Case(
        "retry-not-a-controller",
        lambda e: tideflow.LinearFlow("r", retry=Retryless("t")),
        TypeError,
        r"flow 'r': retry= takes a retry controller.*Retryless",
    ),
    Case(
        "retry-not-an-atom",
        lambda e: tideflow.LinearFlow("r", retry=3),
        TypeError,
        r"flow 'r': retry= takes a retry controller.*got int 3",
    ),
    Case(
        "add-uninitialised",
        lambda e: tideflow.LinearFlow("f").add(Uninitialised("u")),
        TypeError,
        r"flow 'f': Uninitialised was never initialised",
    ),
    Case(
        "add-none",
        lambda e: tideflow.LinearFlow("f").add(None),
        TypeError,
        r"flow 'f' takes atoms \(tasks, retries\) and flows, got NoneType",
    ),
    Case(
        "add-factory",
        lambda e: tideflow.LinearFlow("f").add(tideflow.task(print)),
        TypeError,
        r"flow 'f': .* is a task factory made by @task; call it",
    ),
    Case(
        "flow-name-not-text",
        lambda e: tideflow.GraphFlow(7),
        TypeError,
        r"a flow name must be a str, got int",
    ),
    Case("atom-name-not-text", lambda e: Add(7), TypeError, r"an atom name must be a str, got int"),
    Case(
        "functor-not-callable",
        lambda e: tideflow.FunctorTask("print"),
        TypeError,
        r"FunctorTask needs a callable execute, got 'print'",
    ),
]

RESUMING = [
    Case(
        "load-from-detail-none",
        lambda e: tideflow.load_from_detail(None),
        TypeError,
        r"load_from_detail\(\) takes the FlowDetail record of a run.*None",
    ),
    Case(
        "load-from-detail-uuid",
        lambda e: tideflow.load_from_detail(e.storage.flow_uuid),
        TypeError,
        r"load_from_detail\(\) takes the FlowDetail record of a run.*\(str\)",
    ),
    Case(
        "load-from-detail-no-factory",
        lambda e: tideflow.load_from_detail(e.storage.flow_detail),
        ValueError,
        r"cannot rebuild the flow of record 'sums'.*no factory was recorded",
    ),
    Case(
        "load-from-factory-not-callable",
        lambda e: tideflow.load_from_factory("sums"),
        TypeError,
        r"load_from_factory\(\) takes a function that builds the flow",
    ),
    Case(
        "load-from-factory-lambda",
        lambda e: tideflow.load_from_factory(lambda: _flow()),  # noqa: PLW0108
        ValueError,
        r"flow factory .*lambda.* is not importable by name",
    ),
    Case(
        "factory-returns-no-flow",
        lambda e: tideflow.load_from_factory(_snapshot, factory_args=[e]),
        TypeError,
        r"flow factory .*_snapshot must return a flow, returned \{",
    ),
]

CATALOGUE = OPTIONS + RUN + STORAGE + NOTIFIERS + DEFINITIONS + RESUMING


def test_the_catalogue_is_large_enough() -> None:
    assert len(CATALOGUE) >= 60
    assert len({case.id for case in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.id for case in CATALOGUE])
def test_mistake_is_named_and_nothing_recorded_changes(done: tideflow.Engine, case: Case) -> None:
    before = _snapshot(done)
    # run_iter() included: it checks its arguments when called, not at the first step
    with pytest.raises(case.error, match=case.match):
        case.mistake(done)
    assert _snapshot(done) == before


def test_the_engine_still_runs_after_each_kind_of_mistake(done: tideflow.Engine) -> None:
    # mistakes made against an engine leave it usable: its next run is an ordinary one
    for case in RUN[:3] + STORAGE + NOTIFIERS:
        with pytest.raises(case.error):
            case.mistake(done)
    done.reset()
    done.run()
    assert done.storage.fetch_all() == {"x": 1, "y": 2, "total": 3, "doubled": 6}


def test_a_fetch_before_the_run_says_the_value_is_not_produced_yet() -> None:
    engine = tideflow.load(_flow(), store={"x": 1, "y": 2})
    with pytest.raises(tideflow.NotFoundError, match=r"'add' has not produced it yet"):
        engine.storage.fetch("total")
    # and the atoms are known before the first prepare()
    assert engine.storage.get_atom_state("double") == "PENDING"
    engine.run()
    assert engine.storage.fetch("doubled") == 6


def test_a_fetch_of_an_item_the_result_lacks_says_what_was_returned() -> None:
    short = tideflow.FunctorTask(lambda: (1,), name="short", provides=("a", "b"))
    engine = tideflow.load(short)
    engine.run()
    with pytest.raises(
        tideflow.NotFoundError, match=r"'short' returned \(1,\), which has no index 1"
    ):
        engine.storage.fetch("b")


def test_a_backend_url_is_accepted_as_a_store() -> None:
    engine = tideflow.load(_flow(), store={"x": 2, "y": 3}, backend="memory://")
    engine.run()
    assert engine.storage.fetch("doubled") == 10
    conn = engine.storage.backend.get_connection()
    assert [fd.uuid for book in conn.get_logbooks() for fd in book] == [engine.storage.flow_uuid]


def test_executor_threads_by_name_runs_on_the_parallel_engine() -> None:
    result = tideflow.run(_flow(), store={"x": 1, "y": 1}, engine="parallel", executor="threads")
    assert result["doubled"] == 4


def test_a_record_loaded_with_good_options_after_a_mistake_is_intact(done: tideflow.Engine) -> None:
    with pytest.raises(TypeError, match="max_workers"):
        _load_beside(done, engine="parallel", max_workers="2")
    again = _load_beside(done)
    assert again.storage.get_flow_state() == "SUCCESS"
    assert again.storage.fetch("doubled") == 6


def test_a_typo_registration_is_not_kept(done: tideflow.Engine) -> None:
    heard: list[str] = []
    with pytest.raises(ValueError, match="SUCESS"):
        done.notifier.register("SUCESS", lambda state, details: heard.append(state))
    assert len(done.notifier) == 0


def test_task_events_declared_by_the_flow_can_be_registered() -> None:
    class Reporting(tideflow.Task):
        TASK_EVENTS = ("update_progress", "half_way")

        def execute(self) -> None:
            self.notifier.notify("half_way", {"at": 0.5})

    engine = tideflow.load(tideflow.LinearFlow("f").add(Reporting("r")))
    heard: list[Any] = []
    engine.atom_notifier.register("half_way", lambda event, details: heard.append(details["at"]))
    with pytest.raises(ValueError, match=r"'half_wya'.*did you mean 'half_way'"):
        engine.atom_notifier.register("half_wya", print)
    engine.run()
    assert heard == [0.5]


def test_book_and_flow_detail_of_the_right_types_are_accepted() -> None:
    book = LogBook("b")
    detail = FlowDetail("sums")
    book.add(detail)
    engine = tideflow.load(_flow(), store={"x": 0, "y": 0}, book=book, flow_detail=detail)
    engine.run()
    assert detail.state == "SUCCESS"
