"""Retry controllers in the engine, on the serial and the parallel engine.

The scenarios of ``retry_scenarios.py`` print every notification in a compact notation
(``r.r RETRYING``, ``t.b FAILURE(F(b fails #1))``) together with what controllers were
asked and decided; each must print exactly what TaskFlow 6.5 printed for the same
program (``retry_scenarios.expected``). The other tests cover what a trace cannot show
in a fixed order (failures that arrive together), where tideflow differs on purpose
(a controller that cannot decide), resuming, and what TaskFlow never had: back-off
waits, ``retry_on``, attempt numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import retry_scenarios
from test_store_write_through import CopyingStore

import tideflow
from tideflow import AtomEvent, LinearFlow, UnorderedFlow, WrappedFailure, retry
from tideflow.errors import NotFoundError
from tideflow.persistence import FlowDetail, LogBook


def _expected() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    lines: list[str] = []
    path = Path(retry_scenarios.__file__).with_suffix(".expected")
    for line in path.read_text().splitlines():
        if line.startswith("== "):
            lines = sections[line[3:]] = []
        else:
            lines.append(line)
    return sections


EXPECTED = _expected()


def test_every_scenario_has_taskflows_output():
    assert sorted(EXPECTED) == sorted(retry_scenarios.SCENARIOS)


@pytest.mark.local_only("the tasks print the trace on this process's stdout")
@pytest.mark.parametrize("name", sorted(retry_scenarios.SCENARIOS))
def test_scenario_prints_what_taskflow_printed(
    name: str, engine_kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    retry_scenarios.SCENARIOS[name](engine_kind)
    assert capsys.readouterr().out.splitlines() == EXPECTED[name]


# -- helpers ------------------------------------------------------------------------------


class Flaky(tideflow.Task):
    """Fails (OSError, or ``error``) on its first ``fails`` executions; counts them."""

    def __init__(self, name: str, fails: int = 0, error: type[Exception] = OSError, **kw: Any):
        super().__init__(name, **kw)
        self.fails = fails
        self.error = error
        self.runs = 0
        self.reverts = 0
        self.lock = threading.Lock()
        self.hook: Callable[[Flaky], None] | None = None

    def execute(self) -> str:
        with self.lock:
            self.runs += 1
            run = self.runs
        if self.hook is not None:
            self.hook(self)
        if run <= self.fails:
            raise self.error(f"{self.name} fails #{run}")
        return self.name

    def revert(self, **kwargs: Any) -> None:
        with self.lock:
            self.reverts += 1


class Recording(retry.Times):
    """Times, noting each on_failure call: (history as plain data, decision)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[list[tuple[Any, list[str]]], retry.Decision]] = []
        self.lock = threading.Lock()

    def on_failure(self, history: retry.History) -> retry.Decision:
        decision = super().on_failure(history)
        with self.lock:
            self.asked.append(([(p, sorted(f)) for p, f in history], decision))
        return decision


def transitions(events: list[AtomEvent], name: str) -> list[str]:
    return [str(e.state) for e in events if e.atom_name == name]


def run_capturing(engine: tideflow.Engine) -> BaseException | None:
    try:
        engine.run()
    except Exception as exc:
        return exc
    return None


# -- failures that arrive together ----------------------------------------------------------


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_each_failure_of_an_attempt_is_put_to_the_controller_and_the_flow_is_retried_once(
    load: Callable[..., tideflow.Engine],
) -> None:
    controller = Recording(2, name="r")
    u1, u2, u3 = Flaky("u1", 1), Flaky("u2", 1), Flaky("u3")
    engine = load(UnorderedFlow("u", retry=controller).add(u1, u2, u3))
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    engine.run()
    # once per failure, as each arrived; the second sees both in the attempt's entry
    assert [decision for _, decision in controller.asked] == [retry.RETRY, retry.RETRY]
    first, second = (history for history, _ in controller.asked)
    assert len(first) == 1
    assert first[0][1] in (["u1"], ["u2"])
    assert second == [(1, ["u1", "u2"])]
    assert transitions(events, "r") == ["RUNNING", "SUCCESS", "RETRYING", "RUNNING", "SUCCESS"]
    for task, states in ((u1, ["FAILURE", "REVERTING"]), (u3, ["SUCCESS", "REVERTING"])):
        assert transitions(events, task.name) == [
            "RUNNING", *states, "REVERTED", "PENDING", "RUNNING", "SUCCESS"
        ]  # fmt: skip
        assert (task.runs, task.reverts) == (2, 1)
    assert engine.storage.get_flow_state() == "SUCCESS"


@pytest.mark.local_only("the two tasks meet at a threading.Barrier")
@pytest.mark.parametrize("revert_all_first", [True, False])
def test_a_retry_and_a_revert_all_at_once_end_in_revert_all(
    engine_kind: str, load: Callable[..., tideflow.Engine], revert_all_first: bool
) -> None:
    both = threading.Barrier(2, timeout=5) if engine_kind == "parallel" else None

    def together(task: Flaky) -> None:
        if both is not None:
            both.wait()  # the two failures reach the engine in the same moment

    s1, s2 = Flaky("s1", 9), Flaky("s2", 9)
    s1.hook = s2.hook = together
    retried = UnorderedFlow("u", retry=retry.Times(3, name="r"))
    everything = LinearFlow("i", retry=retry.AlwaysRevertAll("ra")).add(s2)
    retried.add(*([everything, s1] if revert_all_first else [s1, everything]))
    engine = load(LinearFlow("top").add(Flaky("p"), retried))
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    raised = run_capturing(engine)
    assert isinstance(raised, WrappedFailure)
    assert sorted(str(f.exception_str) for f in raised) == ["s1 fails #1", "s2 fails #1"]
    assert "RETRYING" not in transitions(events, "r")
    assert (s1.runs, s2.runs) == (1, 1)
    assert engine.storage.get_flow_state() == "REVERTED"
    for name in ("p", "r", "s1", "ra", "s2"):
        assert engine.storage.get_atom_state(name) == "REVERTED", name


# -- where tideflow differs on purpose -------------------------------------------------------


class Broken(retry.Times):
    def __init__(self, answer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer = answer

    def on_failure(self, history: retry.History) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (RuntimeError("decider broke"), RuntimeError, "decider broke"),
        ("MAYBE", ValueError, r"retry 'bad': on_failure\(\) returned 'MAYBE'"),
    ],
)
@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_a_controller_that_cannot_decide_reverts_everything_and_raises_why(
    load: Callable[..., tideflow.Engine], answer: Any, error: type[Exception], message: str
) -> None:
    # TaskFlow raises the same exception but leaves the flow FAILURE with nothing undone
    p, b = Flaky("p"), Flaky("b", 1)
    flow = LinearFlow("top").add(p, LinearFlow("f", retry=Broken(answer, 3, name="bad")).add(b))
    engine = load(flow)
    with pytest.raises(error, match=message):
        engine.run()
    assert engine.storage.get_flow_state() == "REVERTED"
    assert {n: str(engine.storage.get_atom_state(n)) for n in ("p", "bad", "b")} == {
        "p": "REVERTED",
        "bad": "REVERTED",
        "b": "REVERTED",
    }
    assert (b.runs, p.reverts) == (1, 1)


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_a_controller_whose_own_execute_fails_is_resolved_outside_it(
    load: Callable[..., tideflow.Engine],
) -> None:
    engine = load(LinearFlow("f", retry=retry.ForEach([], name="r")).add(Flaky("a")))
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    with pytest.raises(NotFoundError, match="retry 'r' has no values left to try"):
        engine.run()
    assert transitions(events, "r") == ["RUNNING", "FAILURE", "REVERTING", "REVERTED"]
    assert transitions(events, "a") == []


# -- retry_on ------------------------------------------------------------------------------------


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
@pytest.mark.parametrize(("error", "runs"), [(KeyError, 3), (ValueError, 1)])
def test_retry_on_retries_only_the_named_exception_types(
    load: Callable[..., tideflow.Engine], error: type[Exception], runs: int
) -> None:
    controller = Recording(5, name="r", retry_on=(KeyError, OSError))
    flaky = Flaky("a", 2, error=error)
    engine = load(LinearFlow("f", retry=controller).add(flaky))
    raised = run_capturing(engine)
    assert flaky.runs == runs
    if error is KeyError:
        assert raised is None
        assert len(controller.asked) == 2
    else:
        assert isinstance(raised, ValueError)
        assert controller.asked == []  # gave up without asking
        assert engine.storage.get_atom_state("r") == "REVERTED"


# -- attempts -----------------------------------------------------------------------------------


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_every_atom_event_carries_the_attempt_of_its_controller(
    load: Callable[..., tideflow.Engine],
) -> None:
    engine = load(
        LinearFlow("top").add(
            Flaky("p"), LinearFlow("f", retry=retry.Times(3, name="r")).add(Flaky("b", 2))
        )
    )
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    engine.run()

    def attempts(name: str) -> list[tuple[str, int]]:
        return [(str(e.state), e.attempt) for e in events if e.atom_name == name]

    assert attempts("p") == [("RUNNING", 1), ("SUCCESS", 1)]
    assert attempts("r") == [
        ("RUNNING", 1), ("SUCCESS", 1), ("RETRYING", 2), ("RUNNING", 2), ("SUCCESS", 2),
        ("RETRYING", 3), ("RUNNING", 3), ("SUCCESS", 3),
    ]  # fmt: skip
    assert attempts("b") == [
        ("RUNNING", 1), ("FAILURE", 1), ("REVERTING", 1), ("REVERTED", 1), ("PENDING", 2),
        ("RUNNING", 2), ("FAILURE", 2), ("REVERTING", 2), ("REVERTED", 2), ("PENDING", 3),
        ("RUNNING", 3), ("SUCCESS", 3),
    ]  # fmt: skip
    assert all(e.delay is None for e in events)


# -- resuming inside a retry ----------------------------------------------------------------------


def _suspending_flow(suspend_at: int, engine_box: list[tideflow.Engine]) -> tuple[Any, Flaky]:
    s = Flaky("s", 3)

    def maybe_suspend(task: Flaky) -> None:
        if task.runs == suspend_at:
            engine_box[0].suspend()

    s.hook = maybe_suspend
    flow = LinearFlow("top").add(
        Flaky("p"), LinearFlow("i", retry=retry.Times(5, name="r")).add(Flaky("a"), s)
    )
    return flow, s


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_a_run_suspended_mid_attempt_resumes_with_its_history_and_attempt_count(
    load: Callable[..., tideflow.Engine],
) -> None:
    box: list[tideflow.Engine] = []
    flow, s = _suspending_flow(2, box)
    backend = tideflow.persistence.fetch("memory://")
    book = LogBook("b")
    flow_detail = FlowDetail("top")
    book.add(flow_detail)
    engine = load(flow, backend=backend, book=book, flow_detail=flow_detail)
    box.append(engine)
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    history = engine.storage.get_retry_history("r")
    assert [p for p, _ in history] == [1, 2]
    assert [sorted(f) for _, f in history] == [["s"], ["s"]]
    assert flow_detail.find_by_name("r").decision == "RETRY"  # carried on when resumed

    resumed = load(flow, backend=backend, book=book, flow_detail=flow_detail)
    events: list[AtomEvent] = []
    resumed.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    resumed.run()
    assert resumed.storage.get_flow_state() == "SUCCESS"
    assert s.runs == 4  # attempts 3 and 4 only: none started over
    assert [p for p, _ in resumed.storage.get_retry_history("r")] == [1, 2, 3, 4]
    # the interrupted revert is finished first, then the next attempt
    assert transitions(events, "s")[:2] == ["REVERTING", "REVERTED"]
    assert transitions(events, "r")[:2] == ["RETRYING", "RUNNING"]
    assert transitions(events, "p") == []


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_a_run_suspended_mid_revert_resumes_the_revert_from_a_copied_record(
    engine_kind: str,
) -> None:
    store = CopyingStore(batch=True)
    a, b, s = Flaky("a"), Flaky("b"), Flaky("s", 1)
    box: list[tideflow.Engine] = []
    b.revert = lambda **kw: box[0].suspend()  # type: ignore[method-assign]  # s, b reverted; not a
    flow = LinearFlow("top").add(
        Flaky("p"), LinearFlow("i", retry=retry.Times(3, name="r")).add(a, b, s)
    )
    engine = tideflow.load(flow, engine=engine_kind, backend=store)
    box.append(engine)
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    record = store.atoms["r"]
    assert record["decision"] == "RETRY"
    assert [entry[0] for entry in record["history"]] == [1]
    assert record["history"][0][1]["s"]["exception_str"] == "s fails #1"

    # a new process would have only the store's copies: rebuild the flow record from them
    copied = FlowDetail.from_dict(
        {**next(iter(store.flows.values())), "atoms": list(store.atoms.values())}
    )
    assert copied.find_by_name("r").history[0][1]["s"].exception_str == "s fails #1"
    book = LogBook("b")
    book.add(copied)
    del b.revert
    resumed = tideflow.load(
        flow, engine=engine_kind, backend=CopyingStore(batch=True), flow_detail=copied, book=book
    )
    events: list[AtomEvent] = []
    resumed.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    resumed.run()
    assert resumed.storage.get_flow_state() == "SUCCESS"
    assert transitions(events, "b") == ["PENDING", "RUNNING", "SUCCESS"]  # reverted before
    assert transitions(events, "a") == ["REVERTING", "REVERTED", "PENDING", "RUNNING", "SUCCESS"]
    assert [p for p, _ in resumed.storage.get_retry_history("r")] == [1, 2]
    assert s.runs == 2


# -- back-off -------------------------------------------------------------------------------------


class Nap(tideflow.Task):
    def __init__(self, name: str, seconds: float, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.seconds = seconds

    def execute(self) -> None:
        time.sleep(self.seconds)


class TimedPool(ThreadPoolExecutor):
    """A thread pool noting when each call it ran started and ended."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers)
        self.calls: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def timed() -> Any:
            began = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.calls.append((began, time.monotonic()))

        return super().submit(timed)


def test_a_back_off_holds_no_worker_and_other_tasks_run_meanwhile() -> None:
    pool = TimedPool(2)
    flaky = Flaky("flaky", 1)
    waits = LinearFlow("w", retry=retry.Times(2, name="r", backoff=retry.FixedBackoff(0.5)))
    others = LinearFlow("others").add(
        Nap("gate", 0.15), UnorderedFlow("twenty").add(*[Nap(f"t{i}", 0.01) for i in range(20)])
    )
    engine = tideflow.load(
        UnorderedFlow("top").add(waits.add(flaky), others), engine="parallel", executor=pool
    )
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    began, offset = time.monotonic(), time.monotonic() - time.time()
    try:
        engine.run()
    finally:
        pool.shutdown()
    took = time.monotonic() - began
    assert engine.storage.get_flow_state() == "SUCCESS"
    at = {(e.atom_name, str(e.state), e.attempt): e.at for e in events}
    waiting_from, waiting_until = at["r", "RETRYING", 2], at["r", "RUNNING", 2]
    assert 0.5 <= waiting_until - waiting_from < 0.8
    done = [at[f"t{i}", "SUCCESS", 1] for i in range(20)]
    # the twenty became ready after the wait began, and all finished during it
    assert at["gate", "SUCCESS", 1] > waiting_from
    assert all(waiting_from < t < waiting_until for t in done)
    # no worker sat out the back-off: no call was long, and none ran between the
    # twenty's end and the next attempt (events carry wall-clock times, the pool
    # monotonic ones: ``offset`` turns the first into the second)
    assert max(end - start for start, end in pool.calls) < 0.3
    idle_from, idle_until = max(done) + offset + 0.02, waiting_until + offset - 0.02
    assert [c for c in pool.calls if c[0] < idle_until and c[1] > idle_from] == []
    assert took < 0.5 + 0.15 + 0.3  # the back-off plus the flaky task's rerun, nothing more
    retrying = next(e for e in events if e.state == "RETRYING")
    assert (retrying.attempt, retrying.delay) == (2, 0.5)


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_the_retrying_notification_says_the_attempt_and_the_planned_delay(
    load: Callable[..., tideflow.Engine],
) -> None:
    controller = retry.Times(3, name="r", backoff=retry.ExponentialBackoff(0.01, 2, cap=0.015))
    engine = load(LinearFlow("f", retry=controller).add(Flaky("b", 2)))
    seen: list[dict[str, Any]] = []
    engine.atom_notifier.register("RETRYING", lambda state, details: seen.append(details))
    engine.run()
    assert [(d["retry_name"], d["attempt"], d["delay"]) for d in seen] == [
        ("r", 2, 0.01),
        ("r", 3, 0.015),
    ]


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_suspend_cuts_a_back_off_short_and_the_resumed_run_goes_on(
    load: Callable[..., tideflow.Engine],
) -> None:
    controller = retry.Times(2, name="r", backoff=retry.FixedBackoff(30))
    flaky = Flaky("b", 1)
    engine = load(LinearFlow("f", retry=controller).add(flaky))
    engine.atom_notifier.register(
        "RETRYING", lambda state, details: threading.Timer(0.05, engine.suspend).start()
    )
    began = time.monotonic()
    engine.run()
    assert time.monotonic() - began < 5
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert engine.storage.get_atom_state("r") == "RETRYING"
    engine.atom_notifier.reset()
    engine.run()  # a resumed wait is not waited again: the attempt starts at once
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert flaky.runs == 2


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_reverting_everything_interrupts_a_back_off(load: Callable[..., tideflow.Engine]) -> None:
    waits = LinearFlow("w", retry=retry.Times(2, name="r", backoff=retry.FixedBackoff(30)))
    waits.add(Flaky("a", 1))
    fatal = LinearFlow("x").add(Nap("n1", 0.02), Nap("n2", 0.02), Flaky("boom", 9))
    engine = load(UnorderedFlow("top").add(waits, fatal))
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    began = time.monotonic()
    with pytest.raises(OSError, match="boom fails #1"):
        engine.run()
    assert time.monotonic() - began < 5
    assert transitions(events, "r") == ["RUNNING", "SUCCESS", "RETRYING", "REVERTING", "REVERTED"]
    assert engine.storage.get_flow_state() == "REVERTED"


# -- engine options -------------------------------------------------------------------------------


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_never_resolve_stops_at_the_first_failure_without_retries_too(
    load: Callable[..., tideflow.Engine],
) -> None:
    p, b, q = Flaky("p"), Flaky("b", 1), Flaky("q")
    engine = load(LinearFlow("f").add(p, b, q), never_resolve=True)
    with pytest.raises(OSError, match="b fails #1"):
        engine.run()
    assert engine.storage.get_flow_state() == "FAILURE"
    assert {n: str(engine.storage.get_atom_state(n)) for n in "pbq"} == {
        "p": "SUCCESS",
        "b": "FAILURE",
        "q": "PENDING",
    }
    assert p.reverts == 0


@pytest.mark.parametrize("option", ["defer_reverts", "never_resolve"])
def test_resolution_options_take_booleans(option: str) -> None:
    with pytest.raises(TypeError, match=f"{option}= takes True or False, got 'yes'"):
        tideflow.load(LinearFlow("f").add(Flaky("a")), **{option: "yes"})


@pytest.mark.parametrize("spelling", ["true", "1", True])
def test_taskflow_spellings_of_the_options_are_understood(spelling: Any) -> None:
    import taskflow.engines

    flow = LinearFlow("top").add(
        Flaky("p"), LinearFlow("i", retry=retry.Times(1, name="r")).add(Flaky("b", 1))
    )
    engine = taskflow.engines.load(flow, defer_reverts=spelling)
    with pytest.raises(OSError, match="b fails #1"):
        engine.run()
    assert engine.storage.get_atom_state("p") == "REVERTED"  # deferred to nobody: all reverted


@pytest.mark.local_only("the task's failures are steered by state in this process")
def test_load_from_detail_resumes_the_attempts_where_they_stopped(engine_kind: str) -> None:
    import retry_factories

    retry_factories.RUNS.clear()
    backend = tideflow.persistence.fetch("memory://")
    factory = retry_factories.guarded
    engine = tideflow.load_from_factory(factory, backend=backend, engine=engine_kind)
    retry_factories.ENGINE = engine
    try:
        engine.run()
    finally:
        retry_factories.ENGINE = None
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert retry_factories.RUNS == [1, 2]
    flow_detail = engine.storage.flow_detail

    resumed = tideflow.load_from_detail(flow_detail, backend=backend, engine=engine_kind)
    resumed.run()
    assert resumed.storage.get_flow_state() == "SUCCESS"
    assert retry_factories.RUNS == [1, 2, 3, 4]  # the attempt count went on from 2
    assert resumed.storage.fetch("attempt") == 4
    assert len(resumed.storage.get_retry_history("times")) == 4


@pytest.mark.local_only("Flaky counts its runs (under a lock) on the task object of this process")
def test_an_argument_that_cannot_be_bound_is_not_retried(
    load: Callable[..., tideflow.Engine],
) -> None:
    class Needs(tideflow.Task):
        def execute(self, item: Any) -> None:
            return None

    controller = Recording(3, name="r")
    maker = tideflow.FunctorTask(lambda: (1,), name="maker", provides=("one", "two"))
    engine = load(
        LinearFlow("top").add(
            maker, LinearFlow("f", retry=controller).add(Needs("needs", rebind={"item": "two"}))
        )
    )
    with pytest.raises(NotFoundError, match="two"):
        engine.run()
    assert controller.asked == []
    assert engine.storage.get_flow_state() == "REVERTED"
    assert engine.storage.get_atom_state("maker") == "REVERTED"
