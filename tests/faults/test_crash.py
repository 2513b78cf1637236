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
from conftest import StoreUrls

#: Trials per store by default (split evenly over the five flows): sized so that the
#: suite fits CI on two busy cores.
DEFAULT_TRIALS = {"sqlite": 100, "dir": 25, "postgresql": 30, "mysql": 30}

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
