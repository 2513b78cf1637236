"""Retry controllers' own revert, back-off deadlines and resumed decisions, in detail.

Written where mutation testing found ``_retries.py`` unchecked (see docs/testing.md):
what a controller's ``revert`` is given and what its outcome leaves in the record,
a back-off deadline that must end the engine's wait while other atoms run, and the
failure a resumed REVERT decision raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from test_store_write_through import CopyingStore

import tideflow
from tideflow import LinearFlow, UnorderedFlow, WrappedFailure, retry
from tideflow.errors import NotFoundError
from tideflow.persistence import FlowDetail, LogBook


class Flaky(tideflow.Task):
    """Fails (OSError) on its first ``fails`` executions; notes what each revert was given."""

    def __init__(self, name: str, fails: int = 0, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.fails = fails
        self.runs = 0
        self.reverted_with: list[list[str]] = []

    def execute(self) -> str:
        self.runs += 1
        if self.runs <= self.fails:
            raise OSError(f"{self.name} fails #{self.runs}")
        return self.name

    def revert(self, flow_failures: dict[str, Any], **kwargs: Any) -> None:
        self.reverted_with.append(sorted(flow_failures))


class FailsAfter(Flaky):
    """Flaky whose failing runs wait (up to 10 s) for ``gate`` first, and whose reverts
    for ``revert_gate``, when they are given: to order atoms that run at once."""

    def __init__(
        self,
        name: str,
        fails: int,
        *,
        gate: threading.Event | None = None,
        revert_gate: threading.Event | None = None,
    ) -> None:
        super().__init__(name, fails)
        self.gate, self.revert_gate = gate, revert_gate

    def execute(self) -> str:
        if self.gate is not None and self.runs < self.fails:
            assert self.gate.wait(10), f"{self.name}: the gate never opened"
        return super().execute()

    def revert(self, flow_failures: dict[str, Any], **kwargs: Any) -> None:
        if self.revert_gate is not None:
            assert self.revert_gate.wait(10), f"{self.name}: the revert gate never opened"
        super().revert(flow_failures, **kwargs)


def open_on(gates: dict[tuple[str, str], threading.Event], into: list[Any]) -> Any:
    """A listener that keeps atom events in ``into`` and sets the gate of (atom, state)."""

    def listen(event: object) -> None:
        if isinstance(event, tideflow.AtomEvent):
            into.append(event)
            gate = gates.get((event.atom_name, str(event.state)))
            if gate is not None:
                gate.set()

    return listen


class Undoing(retry.Times):
    """Times, whose revert notes what it was given, and returns or raises on request."""

    def __init__(self, attempts: int, *, error: Exception | None = None, **kw: Any) -> None:
        super().__init__(attempts, **kw)
        self.error = error
        self.given: list[tuple[int, Any, list[str]]] = []

    def revert(self, history: retry.History, flow_failures: dict[str, Any]) -> str:
        self.given.append((len(history), history.failure, sorted(flow_failures)))
        if self.error is not None:
            raise self.error
        return f"{self.name} undone"


class NoValues(retry.ForEach):
    """ForEach over nothing: its own execute fails; its revert notes the history's failure."""

    def __init__(self, **kw: Any) -> None:
        super().__init__([], **kw)
        self.failures: list[Any] = []

    def revert(self, history: retry.History, **kwargs: Any) -> None:
        self.failures.append(history.failure)


def run_capturing(engine: tideflow.Engine, **kwargs: Any) -> BaseException | None:
    try:
        engine.run(**kwargs)
    except Exception as exc:
        return exc
    return None


# -- a controller's revert --------------------------------------------------------------------


def test_a_controller_that_gives_up_is_reverted_with_its_history_and_the_flows_failures(
    load: Callable[..., tideflow.Engine],
) -> None:
    controller = Undoing(1, name="r")
    b = Flaky("b", 5)
    engine = load(LinearFlow("top").add(Flaky("p"), LinearFlow("f", retry=controller).add(b)))
    raised = run_capturing(engine)
    assert isinstance(raised, OSError)
    assert str(raised) == "b fails #1"
    assert engine.storage.get_flow_state() == "REVERTED"
    assert controller.given == [(1, None, ["b"])]
    # REVERT reverts the controller's flow only (as in TaskFlow): p stays done
    assert engine.storage.get_atom_state("p") == "SUCCESS"
    assert engine.storage.get_atom_state("r") == "REVERTED"
    assert engine.storage.get_revert_result("r") == "r undone"
    assert engine.storage.get_revert_failures() == {}


def test_a_controller_whose_execute_failed_is_reverted_with_that_failure(
    load: Callable[..., tideflow.Engine],
) -> None:
    controller = NoValues(name="r")
    engine = load(LinearFlow("f", retry=controller).add(Flaky("a")))
    with pytest.raises(NotFoundError, match="retry 'r' has no values left to try"):
        engine.run()
    (failure,) = controller.failures
    assert failure is not None
    assert failure.check(NotFoundError)


@pytest.mark.parametrize("store", ["shared", "copying"])
def test_a_controller_whose_revert_raises_ends_the_run_in_failure(
    load: Callable[..., tideflow.Engine], store: str
) -> None:
    controller = Undoing(1, name="r", error=RuntimeError("cannot undo r"))
    backend = CopyingStore(batch=False) if store == "copying" else None
    engine = load(
        LinearFlow("top").add(Flaky("p"), LinearFlow("f", retry=controller).add(Flaky("b", 5))),
        backend=backend,
    )
    raised = run_capturing(engine)
    assert raised is not None
    assert engine.storage.get_flow_state() == "FAILURE"
    assert engine.storage.get_atom_state("r") == "REVERT_FAILURE"
    (failure,) = engine.storage.get_revert_failures().values()
    assert failure.check(RuntimeError)
    assert failure.exception_str == "cannot undo r"
    assert engine.storage.get_atom_state("p") == "SUCCESS"  # outside the flow reverted
    if backend is not None:
        assert backend.atoms["r"]["state"] == "REVERT_FAILURE"


def test_a_controller_reverted_successfully_is_written_to_a_copying_store(
    load: Callable[..., tideflow.Engine],
) -> None:
    backend = CopyingStore(batch=False)
    engine = load(
        LinearFlow("top").add(LinearFlow("f", retry=Undoing(1, name="r")).add(Flaky("b", 5))),
        backend=backend,
    )
    assert isinstance(run_capturing(engine), OSError)
    assert backend.atoms["r"]["state"] == "REVERTED"


class RevertNeeds(retry.Times):
    """A controller whose revert needs ``two`` (its execute needs nothing)."""

    def revert(self, history: retry.History, two: Any, flow_failures: dict[str, Any]) -> None:
        return None


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_a_controllers_revert_argument_that_cannot_be_bound_is_its_revert_failure(
    load: Callable[..., tideflow.Engine],
) -> None:
    maker = tideflow.FunctorTask(lambda: (1,), name="maker", provides=("one", "two"))
    flow = LinearFlow("top").add(
        maker, LinearFlow("f", retry=RevertNeeds(1, name="r")).add(Flaky("b", 5))
    )
    engine = load(flow)
    assert run_capturing(engine) is not None
    assert engine.storage.get_atom_state("r") == "REVERT_FAILURE"
    failure = engine.storage.get_revert_failures()["r"]
    assert failure.check(NotFoundError)
    assert "'two'" in failure.exception_str
    assert engine.storage.get_flow_state() == "FAILURE"


class ExecuteNeeds(retry.Times):
    """A controller whose execute needs ``two``."""

    def execute(self, history: retry.History, two: Any) -> int:  # type: ignore[override]
        return len(history) + 1


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_a_controller_that_never_executed_is_reverted_without_calling_its_revert(
    load: Callable[..., tideflow.Engine],
) -> None:
    maker = tideflow.FunctorTask(lambda: (1,), name="maker", provides=("one", "two"))
    flow = LinearFlow("top").add(
        maker, LinearFlow("f", retry=ExecuteNeeds(2, name="r")).add(Flaky("b"))
    )
    engine = load(flow)
    with pytest.raises(NotFoundError, match="two"):
        engine.run()
    assert engine.storage.get_flow_state() == "REVERTED"
    assert engine.storage.get_atom_state("r") == "REVERTED"
    assert engine.storage.get_revert_result("r") is None
    assert engine.storage.get_revert_failures() == {}


# -- what reverts are told about failures after a retry ---------------------------------------


@pytest.mark.local_only(
    "Flaky counts its runs on the task object, which a worker gets a fresh copy of for each call"
)
def test_failures_of_an_earlier_attempt_are_not_shown_to_later_reverts(
    load: Callable[..., tideflow.Engine],
) -> None:
    # attempt 1: b fails; attempt 2: b succeeds, c fails; attempt 2 is the last
    controller = Undoing(2, name="r")
    b, c = Flaky("b", 1), Flaky("c", 5)
    engine = load(LinearFlow("f", retry=controller).add(b, c))
    raised = run_capturing(engine)
    assert str(raised) == "c fails #1"  # c first ran in attempt 2
    assert b.reverted_with == [["b"], ["c"]]  # the revert of attempt 2 sees c's failure only
    assert controller.given == [(2, None, ["c"])]


# -- a back-off deadline ends the engine's wait --------------------------------------------------


class WaitsForRetry(tideflow.Task):
    """Runs until ``retried`` is set (at most ``limit`` seconds); says whether it was."""

    def __init__(self, name: str, retried: threading.Event, limit: float) -> None:
        super().__init__(name)
        self.retried = retried
        self.limit = limit

    def execute(self) -> bool:
        return self.retried.wait(self.limit)


class SecondRunSignals(Flaky):
    def __init__(self, name: str, retried: threading.Event) -> None:
        super().__init__(name, 1)
        self.retried = retried

    def execute(self) -> str:
        if self.runs == 1:
            self.retried.set()
        return super().execute()


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_a_back_off_deadline_ends_the_wait_for_atoms_still_running(
    timeout: float | None,
) -> None:
    # the slow branch runs until the flaky branch's second attempt starts: the engine
    # must wake at the back-off deadline, not wait for the slow branch to finish
    retried = threading.Event()
    flaky = LinearFlow(
        "flaky", retry=retry.Times(3, name="r", backoff=retry.FixedBackoff(0.05))
    ).add(SecondRunSignals("a", retried))
    slow = WaitsForRetry("slow", retried, 20.0)
    engine = tideflow.load(UnorderedFlow("top").add(slow, flaky), engine="parallel")
    engine.run(timeout=timeout)
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert engine.storage.get_execute_result("slow") is True  # it saw the retry while it ran


# -- a REVERT decision picked up from a stopped run ----------------------------------------------


@pytest.mark.local_only("a revert calls suspend() on the engine object of this process")
def test_a_resumed_revert_decision_raises_the_failure_that_led_to_it(engine_kind: str) -> None:
    store = CopyingStore(batch=True)
    a, b, s = Flaky("a"), Flaky("b"), Flaky("s", 5)
    box: list[tideflow.Engine] = []
    b.revert = lambda **kw: box[0].suspend()  # type: ignore[method-assign]
    flow = LinearFlow("top").add(
        Flaky("p"), LinearFlow("i", retry=retry.Times(1, name="r")).add(a, b, s)
    )
    engine = tideflow.load(flow, engine=engine_kind, backend=store)
    box.append(engine)
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert store.atoms["r"]["decision"] == "REVERT"

    copied = FlowDetail.from_dict(
        {**next(iter(store.flows.values())), "atoms": list(store.atoms.values())}
    )
    book = LogBook("b")
    book.add(copied)
    del b.revert
    resumed = tideflow.load(
        flow, engine=engine_kind, backend=CopyingStore(batch=True), flow_detail=copied, book=book
    )
    # the failure comes from the record, without its traceback: it is wrapped
    with pytest.raises(WrappedFailure, match=r"OSError: s fails #1") as raised:
        resumed.run()
    assert [f.exception_str for f in raised.value] == ["s fails #1"]
    assert resumed.storage.get_flow_state() == "REVERTED"
    # REVERT reverts the controller's flow only (as in TaskFlow): p stays done
    states = {n: str(resumed.storage.get_atom_state(n)) for n in ("p", "r", "a", "b", "s")}
    assert states == {"p": "SUCCESS", **dict.fromkeys(("r", "a", "b", "s"), "REVERTED")}
    assert s.runs == 1


# -- two failures of one attempt: a RETRY, then a REVERT ----------------------------------------


class Wrong(tideflow.Task):
    def execute(self) -> None:
        raise ValueError(f"{self.name} is wrong")


@pytest.mark.local_only("reads the run count Flaky keeps on the task object of this process")
def test_a_revert_for_a_flow_whose_retry_is_under_way_wins_and_keeps_both_failures(
    load: Callable[..., tideflow.Engine],
) -> None:
    # a's OSError is retried; b's ValueError is not (retry_on): the flow is given up
    a = Flaky("a", 5)
    controller = retry.Times(3, name="r", retry_on=OSError)
    engine = load(
        LinearFlow("top").add(
            LinearFlow("f", retry=controller).add(UnorderedFlow("u").add(a, Wrong("b")))
        )
    )
    with pytest.raises(WrappedFailure) as raised:
        engine.run()
    assert sorted(f.exception_str for f in raised.value) == ["a fails #1", "b is wrong"]
    assert a.runs == 1  # never retried
    assert engine.storage.get_flow_state() == "REVERTED"
    states = {n: str(engine.storage.get_atom_state(n)) for n in ("r", "a", "b")}
    assert states == dict.fromkeys(("r", "a", "b"), "REVERTED")


def test_nothing_is_reverted_after_a_nested_controllers_revert_fails(
    load: Callable[..., tideflow.Engine],
) -> None:
    # q fails, r1 gives up: q, b and r2 are reverted in turn; r2's revert raises, so p
    # (before the inner flow) is left as it is and the run ends in FAILURE
    p, b, q = Flaky("p"), Flaky("b"), Flaky("q", 5)
    inner = LinearFlow("inner", retry=Undoing(1, name="r2", error=RuntimeError("cannot undo")))
    flow = LinearFlow("top", retry=retry.Times(1, name="r1")).add(p, inner.add(b), q)
    engine = load(flow)
    with pytest.raises(RuntimeError, match=r"^cannot undo$"):
        engine.run()
    assert engine.storage.get_flow_state() == "FAILURE"
    states = {n: str(engine.storage.get_atom_state(n)) for n in ("p", "r2", "b", "q")}
    assert states == {"p": "SUCCESS", "r2": "REVERT_FAILURE", "b": "REVERTED", "q": "REVERTED"}
    assert p.reverted_with == []


@pytest.mark.local_only("a revert calls suspend() on the engine object of this process")
def test_a_nested_controllers_decision_is_resumed_and_what_follows_its_flow_runs(
    engine_kind: str,
) -> None:
    # as the mid-revert resume in test_retries.py, inside an outer controller (which
    # has no decision of its own) and with an atom after the inner flow
    store = CopyingStore(batch=True)
    a, b, s, after = Flaky("a"), Flaky("b"), Flaky("s", 1), Flaky("after")
    box: list[tideflow.Engine] = []
    b.revert = lambda **kw: box[0].suspend()  # type: ignore[method-assign]
    flow = LinearFlow("top", retry=retry.Times(2, name="r1")).add(
        Flaky("p"), LinearFlow("i", retry=retry.Times(3, name="r")).add(a, b, s), after
    )
    engine = tideflow.load(flow, engine=engine_kind, backend=store)
    box.append(engine)
    engine.run()
    assert engine.storage.get_flow_state() == "SUSPENDED"
    assert (store.atoms["r1"]["decision"], store.atoms["r"]["decision"]) == (None, "RETRY")

    copied = FlowDetail.from_dict(
        {**next(iter(store.flows.values())), "atoms": list(store.atoms.values())}
    )
    book = LogBook("b")
    book.add(copied)
    del b.revert
    resumed = tideflow.load(
        flow, engine=engine_kind, backend=CopyingStore(batch=True), flow_detail=copied, book=book
    )
    events: list[tideflow.AtomEvent] = []
    resumed.subscribe(lambda e: events.append(e) if isinstance(e, tideflow.AtomEvent) else None)
    resumed.run()
    assert resumed.storage.get_flow_state() == "SUCCESS"
    a_states = [str(e.state) for e in events if e.atom_name == "a"]
    assert a_states == ["REVERTING", "REVERTED", "PENDING", "RUNNING", "SUCCESS"]
    assert [p for p, _ in resumed.storage.get_retry_history("r")] == [1, 2]
    assert (s.runs, after.runs) == (2, 1)


# -- decisions about several flows at once ------------------------------------------------------


@pytest.mark.local_only(
    "Flaky counts its runs on the task object, which a worker gets a fresh copy of for each call"
)
def test_sibling_flows_failing_together_are_each_retried_by_their_own_controller(
    load: Callable[..., tideflow.Engine],
) -> None:
    a, b = Flaky("a", 1), Flaky("b", 1)
    engine = load(
        UnorderedFlow("top").add(
            LinearFlow("f1", retry=retry.Times(2, name="r1")).add(a),
            LinearFlow("f2", retry=retry.Times(2, name="r2")).add(b),
        )
    )
    engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert (a.runs, b.runs) == (2, 2)
    for name in ("r1", "r2"):
        assert [p for p, _ in engine.storage.get_retry_history(name)] == [1, 2]
        assert engine.storage.flow_detail.find_by_name(name).decision is None


@pytest.mark.local_only(
    "Flaky counts its runs on the task object, which a worker gets a fresh copy of for each call"
)
@pytest.mark.parametrize("inner_last", [False, True])
def test_a_retry_of_an_enclosing_flow_takes_over_the_retry_of_a_flow_inside_it(
    engine_kind: str, load: Callable[..., tideflow.Engine], inner_last: bool
) -> None:
    # x (inside r2's flow) and y (beside it, in r1's flow) fail in the same attempt:
    # r1's retry covers r2's flow, so r2 is reverted and runs afresh, never RETRYING
    # (inner_last: the two flows' node ranges end at the same node). Where the two run
    # at once, x fails only once y's failure is recorded: were x's failure handled
    # first, r2 would rightly retry x before y failed (a machine under load did so)
    y_failed = threading.Event()
    x = FailsAfter("x", 1, gate=y_failed if engine_kind == "parallel" else None)
    y = Flaky("y", 1)
    inner = LinearFlow("inner", retry=retry.Times(3, name="r2")).add(x)
    children = [y, inner] if inner_last else [inner, y]
    engine = load(
        LinearFlow("top", retry=retry.Times(3, name="r1")).add(UnorderedFlow("u").add(*children))
    )
    events: list[tideflow.AtomEvent] = []
    engine.subscribe(open_on({("y", "FAILURE"): y_failed}, events))
    engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert (x.runs, y.runs) == (2, 2)
    assert [p for p, _ in engine.storage.get_retry_history("r1")] == [1, 2]
    assert [p for p, _ in engine.storage.get_retry_history("r2")] == [1]  # reverted: afresh
    r2 = [str(e.state) for e in events if e.atom_name == "r2"]
    assert "RETRYING" not in r2
    assert r2[-2:] == ["RUNNING", "SUCCESS"]
    for name in ("r1", "r2"):
        assert engine.storage.flow_detail.find_by_name(name).decision is None


@pytest.mark.local_only(
    "Flaky counts its runs on the task object, which a worker gets a fresh copy of for each call"
)
def test_an_enclosing_flow_given_up_raises_the_failures_of_a_retry_it_took_over(
    engine_kind: str, load: Callable[..., tideflow.Engine]
) -> None:
    # x fails first: r2 decides RETRY; y fails while that is under way: r1 gives up
    # (REVERT), which covers r2's flow, so x's failure is raised with y's. Where atoms
    # run at once, y fails only once r2's retry reverts x, and x's revert waits for
    # y's failure: else x could be retried and pass before y fails (seen under load)
    x_reverting, y_failed = threading.Event(), threading.Event()
    together = engine_kind == "parallel"
    x = FailsAfter("x", 1, revert_gate=y_failed if together else None)
    y = FailsAfter("y", 5, gate=x_reverting if together else None)
    inner = LinearFlow("inner", retry=retry.Times(3, name="r2")).add(x)
    late = LinearFlow("late").add(Flaky("pad"), y)
    engine = load(
        LinearFlow("top", retry=retry.Times(1, name="r1")).add(UnorderedFlow("u").add(inner, late))
    )
    engine.subscribe(open_on({("x", "REVERTING"): x_reverting, ("y", "FAILURE"): y_failed}, []))
    with pytest.raises(WrappedFailure) as raised:
        engine.run()
    assert sorted(f.exception_str for f in raised.value) == ["x fails #1", "y fails #1"]
    assert engine.storage.get_flow_state() == "REVERTED"
    assert (x.runs, y.runs) == (1, 1)


@pytest.mark.local_only(
    "Flaky counts its runs on the task object, which a worker gets a fresh copy of for each call"
)
@pytest.mark.parametrize("with_retries", [False, True])
def test_atoms_no_controller_guards_are_in_their_first_attempt(
    load: Callable[..., tideflow.Engine], with_retries: bool
) -> None:
    flow = LinearFlow("top").add(Flaky("a"))
    if with_retries:
        flow.add(LinearFlow("f", retry=retry.Times(2, name="r")).add(Flaky("b", 1)))
    engine = load(flow)
    events: list[tideflow.AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, tideflow.AtomEvent) else None)
    engine.run()
    assert [(e.state, e.attempt) for e in events if e.atom_name == "a"] == [
        ("RUNNING", 1),
        ("SUCCESS", 1),
    ]
