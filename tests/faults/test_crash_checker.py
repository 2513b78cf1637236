"""The crash suite's checker, on made-up ledgers and records: it passes a correct trial
and names each kind of broken one (so a crash trial that passes means something)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import crash_harness
import pytest

LINEAR = ["t0", "t1", "t2", "t3", "t4", "t5"]


def linear_results() -> dict[str, str]:
    value = "t0"
    results = {"t0": value}
    for i in range(1, 6):
        value = f"t{i}({value})"
        results[f"t{i}"] = value
    return results


def snap(flow: str, states: dict[str, str], **retry: Any) -> dict[str, Any]:
    """A record as crash_harness.snapshot returns it."""
    results = linear_results()
    atoms: dict[str, Any] = {}
    for name, state in states.items():
        atoms[name] = {
            "kind": "retry" if name == "times" else "task",
            "state": state,
            "intention": "REVERT" if state.startswith("REVERT") else "EXECUTE",
            "results": results.get(name) if state == "SUCCESS" else None,
            "history": retry.get("history", 0),
            "failed_attempts": retry.get("failed", 0),
            "decision": None,
        }
    return {"state": flow, "atoms": atoms}


def problems_of(
    flow: str,
    ledger: str,
    snapshots: list[dict[str, Any]],
    final: dict[str, Any],
    error: dict[str, Any] | None = None,
    expected: dict[str, Any] | None = None,
) -> list[str]:
    trial = crash_harness.Trial("made-up", flow, 0, "made-up", Path("/nonexistent"))
    trial.snapshots = snapshots
    trial.final = final
    trial.outcome = {"error": error}
    events, kills = crash_harness.parse_ledger(ledger)
    return crash_harness.check(
        trial, events, kills, linear_results() if expected is None else expected
    )


def linear_ledger(*middle: str) -> str:
    """exec lines of t0..t5 with ``middle`` spliced in after t1's."""
    head = ["exec-start t0", "exec-end t0", "exec-start t1", "exec-end t1"]
    tail = [line for i in range(2, 6) for line in (f"exec-start t{i}", f"exec-end t{i}")]
    return "\n".join([*head, *middle, *tail]) + "\n"


ALL_DONE = snap("SUCCESS", dict.fromkeys(LINEAR, "SUCCESS"))


def test_a_caught_atom_may_repeat_its_execute() -> None:
    # t2 finished its execute, but the round was not committed when the kill came
    ledger = linear_ledger("exec-start t2", "exec-end t2", "kill 1")
    at_kill = snap(
        "RUNNING", {"t0": "SUCCESS", "t1": "SUCCESS", **dict.fromkeys(LINEAR[2:], "PENDING")}
    )
    assert problems_of("linear", ledger, [at_kill], ALL_DONE) == []


def test_an_atom_recorded_success_that_executes_again_is_named() -> None:
    ledger = linear_ledger("exec-start t2", "exec-end t2", "kill 1")
    at_kill = snap(
        "RUNNING", {**dict.fromkeys(LINEAR[:3], "SUCCESS"), **dict.fromkeys(LINEAR[3:], "PENDING")}
    )
    problems = problems_of("linear", ledger, [at_kill], ALL_DONE)
    assert any("t2: executed again after kill k=1" in p for p in problems), problems


def test_a_record_ahead_of_the_ledger_is_named() -> None:
    ledger = linear_ledger("exec-start t2", "kill 1")
    at_kill = snap(
        "RUNNING", {**dict.fromkeys(LINEAR[:3], "SUCCESS"), **dict.fromkeys(LINEAR[3:], "PENDING")}
    )
    problems = problems_of("linear", ledger, [at_kill], ALL_DONE)
    assert any("ran ahead of what the task did" in p for p in problems), problems


def test_a_dependent_started_before_its_requirement_was_committed_is_named() -> None:
    # t2 runs while the record still says t1 PENDING: the round was not committed first
    ledger = linear_ledger("exec-start t2", "kill 1")
    at_kill = snap("RUNNING", {"t0": "SUCCESS", **dict.fromkeys(LINEAR[1:], "PENDING")})
    problems = problems_of("linear", ledger, [at_kill], ALL_DONE)
    assert any("t2: executing at kill 1" in p and "t1" in p for p in problems), problems


def test_a_caught_atom_that_never_runs_again_is_named() -> None:
    ledger = "exec-start t0\nkill 1\n"
    at_kill = snap("RUNNING", dict.fromkeys(LINEAR, "PENDING"))
    problems = problems_of("linear", ledger, [at_kill], ALL_DONE)
    assert any("t0: caught mid-execute at kill 1" in p for p in problems), problems


def test_wrong_results_and_an_unfinished_run_are_named() -> None:
    final = snap("RUNNING", dict.fromkeys(LINEAR, "SUCCESS"))
    final["atoms"]["t5"]["results"] = "something else"
    problems = problems_of("linear", linear_ledger(), [], final)
    assert any("ended RUNNING" in p for p in problems), problems
    assert any("differ from an uninterrupted run" in p for p in problems), problems


FAILING = ["f0", "f1", "boom"]
BOOM = {"type": "crash_flows.Boom", "names": [], "message": "boom failed at the end"}


def failing_ledger(*reverts: str) -> str:
    lines = ["exec-start f0", "exec-end f0", "exec-start f1", "exec-end f1"]
    lines += ["exec-start boom", "exec-end boom failed", *reverts]
    return "\n".join(lines) + "\n"


REVERTED = snap("REVERTED", dict.fromkeys(FAILING, "REVERTED"))
ALL_REVERTS = [
    line for name in ("boom", "f1", "f0") for line in (f"revert-start {name}", f"revert-end {name}")
]


def test_a_failing_run_reverted_through_a_kill_passes() -> None:
    ledger = failing_ledger(*ALL_REVERTS[:3], "kill 1", *ALL_REVERTS[2:])
    at_kill = snap("RUNNING", {"f0": "SUCCESS", "f1": "SUCCESS", "boom": "REVERTED"})
    assert problems_of("failing", ledger, [at_kill], REVERTED, BOOM, {}) == []


def test_an_atom_left_unreverted_in_a_failing_run_is_named() -> None:
    ledger = failing_ledger(*ALL_REVERTS[:4])
    final = snap("REVERTED", {"f0": "SUCCESS", "f1": "REVERTED", "boom": "REVERTED"})
    problems = problems_of("failing", ledger, [], final, BOOM, {})
    assert any(p.startswith("f0: ran in a run that failed") for p in problems), problems


def test_a_revert_repeated_although_recorded_is_named() -> None:
    ledger = failing_ledger(*ALL_REVERTS[:4], "kill 1", *ALL_REVERTS[2:])
    at_kill = snap("RUNNING", {"f0": "SUCCESS", "f1": "REVERTED", "boom": "REVERTED"})
    problems = problems_of("failing", ledger, [at_kill], REVERTED, BOOM, {})
    assert any("f1: reverted again after kill 1" in p for p in problems), problems


def test_a_revert_begun_before_the_execute_was_committed_is_named() -> None:
    ledger = failing_ledger("revert-start boom", "kill 1", *ALL_REVERTS)
    at_kill = snap("RUNNING", {"f0": "SUCCESS", "f1": "SUCCESS", "boom": "PENDING"})
    problems = problems_of("failing", ledger, [at_kill], REVERTED, BOOM, {})
    assert any("boom: its revert began" in p for p in problems), problems


def test_a_finished_run_that_runs_again_or_the_wrong_error_is_named() -> None:
    ledger = failing_ledger(*ALL_REVERTS)
    trial = crash_harness.Trial("made-up", "failing", 0, "made-up", Path("/nonexistent"))
    trial.final = REVERTED
    trial.outcome = {"error": {"type": "builtins.KeyError", "names": [], "message": "x"}}
    trial.rerun = {"lines": ["exec-start f0"], "state": "REVERTED", "error": BOOM}
    events, kills = crash_harness.parse_ledger(ledger)
    problems = crash_harness.check(trial, events, kills, {})
    assert any("expected Boom" in p for p in problems), problems
    assert any("resuming the finished run ran again" in p for p in problems), problems


@pytest.mark.parametrize(
    ("recorded", "attempt", "lost"),
    [(1, 1, False), (2, 2, False), (2, 1, True)],  # history entries at the kill
)
def test_retry_attempts_are_checked_against_the_recorded_history(
    recorded: int, attempt: int, lost: bool
) -> None:
    lines = ["exec-start first", "exec-end first", "kill 1"]
    lines += ["exec-start before", "exec-end before", f"exec-start flaky {attempt}"]
    final = snap("SUCCESS", dict.fromkeys(["first", "before", "flaky", "after", "last"], "SUCCESS"))
    final["atoms"]["times"] = snap("SUCCESS", {"times": "SUCCESS"}, history=3, failed=2)["atoms"][
        "times"
    ]
    at_kill = snap(
        "RUNNING",
        {"first": "SUCCESS", "times": "SUCCESS", "before": "PENDING", "flaky": "PENDING"},
        history=recorded,
        failed=recorded - 1,
    )
    trial = crash_harness.Trial("made-up", "retry", 0, "made-up", Path("/nonexistent"))
    trial.snapshots = [at_kill]
    trial.final = final
    trial.outcome = {"error": None}
    events, kills = crash_harness.parse_ledger("\n".join(lines))
    problems = crash_harness.check(trial, events, kills, {})
    assert any("the count was lost" in p for p in problems) is lost, problems
