"""The examples run and tell the story they claim to."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_travel_booking_books_then_reverts_in_reverse_order():
    lines = run_example("travel_booking.py").splitlines()
    good = lines[: lines.index("trip with a declined card:")]
    bad = lines[lines.index("trip with a declined card:") :]
    assert good[-1] == "booked: receipt for FL-OSL-LIS + HT-LIS-3"
    assert "  [charge-card reverted]" in bad
    # the charge failed after both reservations: it is undone first, then both holds
    charge = bad.index("  [charge-card reverted]")
    assert bad.index("  cancel flight FL-OSL-LIS") > charge
    assert bad.index("  cancel hotel HT-LIS-3") > charge
    assert bad[-1] == "booking failed (card 0000-0000 was declined); flow is REVERTED"


def test_resume_from_record_runs_each_step_once():
    lines = run_example("resume_from_record.py").splitlines()
    assert lines == [
        "first run:",
        "  download sales.csv",
        "  clean rows",
        "  (operator: stop after this step)",
        "stopped: flow SUSPENDED, steps {'download': 'SUCCESS', 'clean': 'SUCCESS', "
        "'load': 'PENDING'}",
        "resumed from the record:",
        "  load [1, 2, 3]",
        "finished: flow SUCCESS, 3 rows loaded",
    ]


def test_every_example_is_tested():
    tested = {"travel_booking.py", "resume_from_record.py", "crash_and_resume.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_crash_and_resume_finishes_a_killed_run_without_repeating_recorded_steps():
    lines = run_example("crash_and_resume.py").splitlines()
    assert lines == [
        "first process:",
        "  run build",
        "  run test",
        "  run deploy",
        "  killed by signal 9",
        "another process (this one) resumes the run:",
        "  run deploy",
        "values: {'artifact': 'build done', 'report': 'test done', 'url': 'deploy done'}",
    ]
