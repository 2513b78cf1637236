"""The crash suite: runs killed with SIGKILL at random moments, resumed until they end.

See ``crash_harness`` for what a trial does, what "caught" means and every rule
checked. Trials are seeded: ``TIDEFLOW_CRASH_TRIALS=N`` runs N per store (thousands
for a long soak), ``TIDEFLOW_CRASH_SEED`` draws another set, and a failure names the
trial's label, which ``TIDEFLOW_CRASH_ONLY=<label>`` replays (same kill delays,
engines and pauses; the moment a kill lands still depends on the machine).
"""

from __future__ import annotations

import math
from pathlib import Path

import crash_flows
import crash_harness
import pytest
from fault_support import StoreUrls

#: Trials per store by default (split evenly over the five flows): sized so that the
#: suite fits CI on two busy cores.
DEFAULT_TRIALS = {"sqlite": 100, "dir": 15, "postgresql": 30, "mysql": 30}

#: Failing trials reported in full in an assertion message (the rest by label).
REPORTED = 3


@pytest.mark.slow
@pytest.mark.parametrize("flow", list(crash_flows.FLOWS))
@pytest.mark.parametrize("store", list(DEFAULT_TRIALS))
def test_killed_runs_resume_to_the_end(
    store: str,
    flow: str,
    store_url: StoreUrls,
    fork_server: crash_harness.ForkServer,
    tmp_path: Path,
) -> None:
    url = store_url(store)
    count = math.ceil(crash_harness.trial_count(DEFAULT_TRIALS[store]) / len(crash_flows.FLOWS))
    expected = crash_harness.expected_results(flow, tmp_path)
    book = crash_harness.new_uuid()
    store_url.books.append(book)
    duration = crash_harness.calibrate(fork_server, url, flow, tmp_path, book)
    failed: list[tuple[crash_harness.Trial, list[str]]] = []
    trials = kills = 0
    for label in crash_harness.labels(store, flow, count):
        trial = crash_harness.run_trial(fork_server, url, store, flow, label, tmp_path, duration)
        store_url.books.append(trial.book_uuid)
        text = trial.ledger.read_text() if trial.ledger.exists() else ""
        events, killed = crash_harness.parse_ledger(text)
        problems = crash_harness.check(trial, events, killed, expected)
        trials += 1
        kills += killed
        if problems:
            failed.append((trial, problems))
            if any("hung" in problem for problem in problems):
                break  # a hung engine thread cannot be stopped: report now
    if failed:
        details = "\n\n".join(
            "\n".join([*(f"- {p}" for p in problems), trial.report()])
            for trial, problems in failed[:REPORTED]
        )
        labels = [trial.label for trial, _ in failed]
        pytest.fail(
            f"{len(failed)} of {trials} trials of {flow} on {store} broke the rules "
            f"({labels}); replay one with TIDEFLOW_CRASH_ONLY=<label>\n\n{details}",
            pytrace=False,
        )
    # the suite proves something only if the kills landed
    assert trials == 0 or kills >= trials // 2, f"only {kills} kills in {trials} trials"


_RESUME = """
import sys
sys.path.insert(0, {here!r})
import tideflow
backend = tideflow.connect({url!r})
try:
    tideflow.resume({run_id!r}, backend)
finally:
    backend.close()
"""


def test_a_run_caught_reverting_for_a_retry_resumes_to_the_end(tmp_path: Path) -> None:
    """The record a kill left in crash trial sqlite-retry-8-3, made directly: the
    controller decided RETRY after attempt 1, flaky's revert is recorded under way and
    before's not yet. Resuming goes on with the retry and finishes the run (it must not
    hang: it runs in a child with a time limit)."""
    import subprocess
    import sys

    import tideflow
    from tideflow.failure import Failure
    from tideflow.states import AtomState, FlowState, Intention

    url = f"sqlite:///{tmp_path}/runs.db"
    ledger = tmp_path / "retry.ledger"
    backend = tideflow.connect(url)
    try:
        engine = tideflow.load_from_factory(
            crash_flows.retrying,
            factory_kwargs={"ledger": str(ledger), "seed": 1},
            backend=backend,
        )
        engine.prepare()
        storage = engine.storage
        fd = storage.flow_detail
        fd.state = FlowState.RUNNING
        atoms = {detail.name: detail for detail in fd}
        failure = Failure.from_exception(crash_flows.Flaky("flaky failed attempt 1"))
        atoms["first"].put(AtomState.SUCCESS, "first")
        atoms["times"].put(AtomState.SUCCESS, 1)
        atoms["times"].history = [(1, {"flaky": failure})]  # type: ignore[attr-defined]
        atoms["times"].decision = "RETRY"  # type: ignore[attr-defined]
        atoms["before"].put(AtomState.SUCCESS, "before(first)")
        atoms["flaky"].put(AtomState.REVERTING, failure)
        atoms["flaky"].intention = Intention.REVERT
        with backend.get_connection() as conn:
            conn.update_flow_details(fd)
        run_id = fd.uuid
    finally:
        backend.close()
    recorded = crash_harness.snapshot(url, run_id)
    assert recorded["atoms"]["times"]["decision"] == "RETRY", recorded
    script = _RESUME.format(here=str(crash_harness.HERE), url=url, run_id=run_id)
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"resuming the run recorded as {recorded} did not end within 15 s; "
            f"ledger so far: {ledger.read_text() if ledger.exists() else '(empty)'}",
            pytrace=False,
        )
    final = crash_harness.snapshot(url, run_id)
    assert final["state"] == "SUCCESS", final
    assert final["atoms"]["times"]["history"] == crash_flows.FAIL_FIRST + 1, final
    lines = ledger.read_text().splitlines()
    assert lines[:2] == ["revert-start flaky", "revert-end flaky"], lines
    assert "exec-start flaky 1" not in lines, lines
