"""Behaviour that mutation testing of ``_engine.py`` showed no test pinned down
(docs/testing.md lists the survivors and which of them are equivalent).

- ``run_async`` drives the run from a daemon thread named ``tideflow-engine`` (the name
  users see in logs and thread dumps; a daemon, so a forgotten run never keeps the
  interpreter alive).
- An atom that fails before its execute is called (a decider that raises) is reported
  with its Failure to listeners and to later reverts' ``flow_failures``, and is never
  executed afterwards.
- A run whose atom fails while a cancelled ``run_async`` waits for it to stop still
  ends in ``CancelledError``.
- The words of two messages users meet: ``fence=`` without a store, and a progress
  notified by hand that is not a number (logged by ``tideflow.engine``, naming the task).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, Task


class Where(Task):
    """Records which thread ran it."""

    def __init__(self, name: str, seen: list[threading.Thread]) -> None:
        super().__init__(name)
        self.seen = seen

    def execute(self) -> None:
        self.seen.append(threading.current_thread())


def test_run_async_drives_the_run_from_a_named_daemon_thread() -> None:
    seen: list[threading.Thread] = []
    engine = tideflow.load(LinearFlow("f").add(Where("w", seen)))  # serial: the engine thread
    asyncio.run(engine.run_async())
    [thread] = seen
    assert thread is not threading.main_thread()
    assert thread.name == "tideflow-engine"
    assert thread.daemon


class Keep(Task):
    """Returns its name; its revert records the flow failures it was given."""

    def __init__(self, name: str, log: list[Any], **kw: Any) -> None:
        super().__init__(name, **kw)
        self.log = log

    def execute(self, **kwargs: Any) -> str:
        self.log.append(("execute", self.name))
        return self.name

    def revert(self, result: Any, flow_failures: Any, **kwargs: Any) -> None:
        self.log.append(("revert", self.name, dict(flow_failures)))


def _raising_decider(history: Any) -> bool:
    raise LookupError("the decider broke")


@pytest.mark.parametrize("target_is_flow", [False, True], ids=["task", "subflow"])
def test_an_atom_failed_by_its_decider_is_reported_and_never_run(target_is_flow: bool) -> None:
    log: list[Any] = []
    first = Keep("first", log, provides="f")
    if target_is_flow:
        target: Any = LinearFlow("sub").add(Keep("t1", log), Keep("t2", log))
        target_atom = "t1"
    else:
        target = Keep("t1", log)
        target_atom = "t1"
    flow = GraphFlow("g").add(first, target)
    flow.link(first, target, decider=_raising_decider)
    engine = tideflow.load(flow)
    failed: list[Any] = []
    engine.atom_notifier.register(
        "FAILURE", lambda state, details: failed.append((details["task_name"], details["result"]))
    )
    with pytest.raises(LookupError, match="the decider broke"):
        engine.run()

    assert [entry for entry in log if entry[0] == "execute"] == [("execute", "first")]
    [(name, result)] = failed
    assert name == target_atom
    assert isinstance(result, tideflow.Failure)
    assert result.check(LookupError)
    reverts = [entry for entry in log if entry[0] == "revert"]
    assert [entry[1] for entry in reverts] == ["first"]  # nothing else ran to undo
    given = reverts[0][2]
    assert list(given) == [target_atom]
    assert given[target_atom].check(LookupError)
    assert str(engine.storage.get_flow_state()) == "REVERTED"


class FailsSlowly(Task):
    """Waits until told, then raises."""

    def __init__(self, name: str, started: threading.Event, go: threading.Event) -> None:
        super().__init__(name)
        self.started = started
        self.go = go

    def execute(self) -> None:
        self.started.set()
        self.go.wait(5)
        raise RuntimeError("failed while the run was stopping")


def test_a_cancel_still_wins_when_the_run_fails_while_stopping() -> None:
    started, go = threading.Event(), threading.Event()
    flow = LinearFlow("f").add(FailsSlowly("slow", started, go))
    engine = tideflow.load(flow)
    outcome: list[str] = []

    async def main() -> None:
        running = asyncio.create_task(engine.run_async())
        while not started.is_set():
            await asyncio.sleep(0.005)
        running.cancel()
        await asyncio.sleep(0.02)
        go.set()
        try:
            await running
        except asyncio.CancelledError:
            outcome.append("cancelled")
        except RuntimeError:
            outcome.append("failed")
        else:
            outcome.append("returned")

    asyncio.run(main())
    assert outcome == ["cancelled"]


def test_a_fence_without_a_store_says_what_to_give() -> None:
    flow = LinearFlow("f").add(tideflow.FunctorTask(lambda: 1, name="one"))
    with pytest.raises(
        ValueError,
        match=r"^fence= guards a run's records in a store shared with other workers; give "
        r"that store as backend= \(a run without one has nothing to fence\)$",
    ):
        tideflow.load(flow, fence=("job", 1))


def test_a_progress_that_is_not_a_number_is_logged_by_the_engine_naming_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Odd(Task):
        def execute(self) -> None:
            self.notifier.notify("update_progress", {"progress": "half"})

    engine = tideflow.load(LinearFlow("f").add(Odd("odd")))
    with caplog.at_level("WARNING", "tideflow.engine"):
        engine.run()
    said = [(r.name, r.getMessage()) for r in caplog.records if "update_progress" in r.msg]
    assert said == [
        (
            "tideflow.engine",
            "task 'odd' notified update_progress with progress='half', not a number; "
            "it is not recorded",
        )
    ]


class ReportsWhileReverting(Task):
    """Reports progress from its revert."""

    def execute(self) -> int:
        return 1

    def revert(self, **_kwargs: Any) -> None:
        self.update_progress(0.25)


class Fails(Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_progress_reported_by_a_revert_reaches_listeners(kind: str) -> None:
    engine = tideflow.load(
        LinearFlow("f").add(ReportsWhileReverting("undo"), Fails("bad")), engine=kind
    )
    heard: list[tuple[str, float]] = []
    engine.atom_notifier.register(
        "update_progress",
        lambda _event, details: heard.append((details["task_name"], details["progress"])),
    )
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    assert engine.storage.get_atom_state("undo") == "REVERTED"
    assert ("undo", 0.25) in heard


class RevertFails(Task):
    def execute(self) -> int:
        return 1

    def revert(self, **_kwargs: Any) -> None:
        raise ValueError("cannot undo")


class RevertReturnsALock(Task):
    def execute(self) -> int:
        return 1

    def revert(self, **_kwargs: Any) -> Any:
        return threading.Lock()  # no codec can store it


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_a_failed_revert_is_recorded_in_a_durable_store_with_its_failure(
    kind: str, tmp_path: Any
) -> None:
    store = tideflow.connect(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        engine = tideflow.load(
            LinearFlow("f").add(RevertFails("undo"), Fails("bad")), backend=store, engine=kind
        )
        with pytest.raises(ValueError, match="cannot undo"):
            engine.run()
        with store.get_connection() as conn:
            record = conn.get_flow_details(engine.storage.flow_uuid)
        undo = record.find_by_name("undo")
        assert undo is not None
        assert (str(undo.state), str(undo.intention)) == ("REVERT_FAILURE", "REVERT")
        assert undo.revert_failure is not None
        assert undo.revert_failure.check(ValueError) is ValueError
        assert undo.revert_failure.exception_str == "cannot undo"
        assert str(record.state) == "FAILURE"
    finally:
        store.close()


def test_a_revert_result_no_store_can_keep_is_named_as_a_revert_result(tmp_path: Any) -> None:
    store = tideflow.connect(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        engine = tideflow.load(
            LinearFlow("f").add(RevertReturnsALock("undo"), Fails("bad")), backend=store
        )
        with pytest.raises(tideflow.UnstorableValueError, match="the revert result of atom 'undo'"):
            engine.run()
    finally:
        store.close()


def test_a_failing_subscriber_is_logged_with_the_event_it_failed_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = tideflow.load(LinearFlow("f").add(tideflow.FunctorTask(lambda: 1, name="one")))

    def broken(_event: Any) -> None:
        raise RuntimeError("listener bug")

    engine.subscribe(broken)
    with caplog.at_level("ERROR", "tideflow.engine"):
        engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"  # the run went on
    failed = [r for r in caplog.records if r.msg.startswith("subscriber %r failed")]
    assert failed
    assert all(r.args[1] is not None for r in failed)
    assert "failed on None" not in caplog.text
