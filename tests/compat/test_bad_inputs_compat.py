"""Users' mistakes through the ``taskflow`` API: a clear error where the mistake is made.

The same rule as the native catalogue (tests/engine/test_bad_inputs.py): the exception
type, a message naming the culprit, and the finished run's record left as it was.
Where TaskFlow accepts a mistake that programs rely on (options the serial engine
ignores), the compatibility layer warns instead of refusing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

import taskflow.engines
from taskflow import exceptions as exc
from taskflow import task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf


class Add(task.Task):
    default_provides = "total"

    def execute(self, x: int, y: int) -> int:
        return x + y


def _flow() -> Any:
    return lf.Flow("sums").add(Add("add"))


@pytest.fixture
def done() -> Any:
    engine = taskflow.engines.load(_flow(), store={"x": 1, "y": 2})
    engine.run()
    return engine


def _snapshot(engine: Any) -> tuple[Any, ...]:
    storage = engine.storage
    return (
        str(storage.get_flow_state()),
        {d.name: (str(d.state), d.results) for d in storage.flow_detail},
        storage.fetch_all(),
    )


def _load(done: Any, **options: Any) -> Any:
    return taskflow.engines.load(
        _flow(), flow_detail=done.storage.flow_detail, backend=done.storage.backend, **options
    )


class Case(NamedTuple):
    id: str
    mistake: Callable[[Any], object]
    error: type[BaseException]
    match: str


CASES = [
    Case("engine-misspelled", lambda e: _load(e, engine="paralel"),
         exc.NotFound, r"Could not find engine 'paralel': did you mean 'parallel'"),
    Case("engine-worker-based", lambda e: _load(e, engine="worker-based"),
         exc.NotFound, r"worker-based engine is not available"),
    Case("engine-uri-bad-number", lambda e: _load(e, engine="parallel://?max_workers=abc"),
         ValueError, r"max_workers='abc' must be a whole number"),
    Case("engine-uri-unknown", lambda e: _load(e, engine="workers://host"),
         exc.NotFound, r"Could not find engine 'workers'"),
    Case("executor-misspelled", lambda e: _load(e, engine="parallel", executor="proceses"),
         ValueError, r"Unknown executor string 'proceses': did you mean 'process"),
    Case("executor-unknown", lambda e: _load(e, engine="parallel", executor="thredas"),
         ValueError, r"Unknown executor string 'thredas': did you mean 'threads'"),
    Case("executor-without-submit", lambda e: _load(e, engine="parallel", executor=object()),
         TypeError, r"expected an object with submit\(\)"),
    Case("load-from-detail-none", lambda e: taskflow.engines.load_from_detail(None),
         TypeError, r"takes the FlowDetail record of a run.*None"),
    Case("notifier-typo", lambda e: e.notifier.register("SUCESS", print),
         ValueError, r"no event named 'SUCESS'.*did you mean 'SUCCESS'"),
    Case("atom-notifier-typo", lambda e: e.atom_notifier.register("RUNING", print),
         ValueError, r"no event named 'RUNING'.*did you mean 'RUNNING'"),
    Case("inject-not-taken", lambda e: Add("a2", inject={"z": 1}),
         ValueError, r"atom 'a2': inject= gives \['z'\]"),
    Case("update-progress-text", lambda e: Add("a3").update_progress("half"),
         TypeError, r"task 'a3': update_progress\(\) takes a number"),
    Case("fetch-unknown", lambda e: e.storage.fetch("totl"),
         exc.NotFound, r"no value named 'totl' in flow 'sums': nothing provides it"),
    Case("link-outside", lambda e: gf.Flow("g").add(Add("p")).link(Add("q"), Add("r")),
         exc.NotFound, r"graph flow 'g': .*q==1\.0.* is not in this flow"),
    Case("run-timeout-text", lambda e: e.run(timeout="x"),
         TypeError, r"timeout= takes a number of seconds"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mistake_through_taskflow_api(done: Any, case: Case) -> None:
    before = _snapshot(done)
    with pytest.raises(case.error, match=case.match):
        case.mistake(done)
    assert _snapshot(done) == before


def test_backend_as_a_url_string_is_accepted() -> None:
    engine = taskflow.engines.load(_flow(), store={"x": 2, "y": 2}, backend="memory://")
    engine.run()
    assert engine.storage.fetch("total") == 4


def test_uri_options_as_text_are_taken_as_numbers() -> None:
    engine = taskflow.engines.load(
        _flow(), store={"x": 1, "y": 1}, engine="parallel://?max_workers=2"
    )
    engine.run()
    assert engine.storage.fetch("total") == 2
    assert engine.options["max_workers"] == "2"  # kept as given, as TaskFlow does


def test_serial_engine_with_max_workers_warns_and_runs() -> None:
    with pytest.warns(UserWarning, match=r"ignores \['max_workers'\]"):
        engine = taskflow.engines.load(_flow(), store={"x": 1, "y": 1}, max_workers=3)
    engine.run()
    assert engine.storage.fetch("total") == 2
