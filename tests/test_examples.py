"""The examples run and tell the story they claim to."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tideflow
from tideflow.listeners import StopwatchListener

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
    tested = {
        "travel_booking.py",
        "resume_from_record.py",
        "crash_and_resume.py",
        "vm_provisioning.py",
        "etl_with_retry.py",
        "map_reduce.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


#: The examples ``tideflow run`` can load, and the store each needs (none: they have defaults).
FLOW_EXAMPLES = {
    "travel_booking.py": {"origin": "OSL", "destination": "LIS", "card": "4111-1111"},
    "vm_provisioning.py": {},
    "etl_with_retry.py": {},
    "map_reduce.py": {},
}


def import_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name[:-3]}", EXAMPLES / name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing runs nothing: the story is under __main__
    return module


@pytest.mark.parametrize("name", sorted(FLOW_EXAMPLES))
def test_an_example_exposes_make_flow_and_its_flow_runs_as_the_command_would(name, capsys):
    module = import_example(name)
    assert capsys.readouterr().out == ""
    assert "make_flow()" in module.__doc__ or name == "travel_booking.py"
    flow = module.make_flow()
    assert isinstance(flow, tideflow.Flow)
    assert module.make_flow() is not flow  # a factory: a fresh flow for each run
    engine = tideflow.load(flow, store=FLOW_EXAMPLES[name], engine="parallel", max_workers=4)
    engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"


def test_vm_provisioning_runs_branches_at_once_and_the_decider_skips_the_public_address():
    lines = run_example("vm_provisioning.py").splitlines()
    private = lines.index("a private machine:")
    public, private = lines[:private], lines[private:]
    for part in (public, private):
        boot = next(i for i, x in enumerate(part) if x.startswith("  boot "))
        # booting waits for all three branches
        for branch in ("  reserve private address", "  create volume", "  fetch image"):
            assert any(x.startswith(branch) for x in part[:boot]), branch
        assert "  3 branches overlapped: True" in part
    assert "  assign public address 203.0.113.7 to vm-web-1" in public
    assert "  register web-1.example.org -> 203.0.113.7" in public
    assert public[-1] == "done: vm-web-1"
    assert not any(x.startswith(("  assign public", "  register ")) for x in private)
    states = next(x for x in private if x.startswith("  states: "))
    assert "'assign-floating-ip': 'IGNORE'" in states
    assert "'register-dns': 'IGNORE'" in states
    assert "'fetch-image': 'SUCCESS'" in states
    assert private[-1] == "done: vm-db-1"


def test_etl_retries_the_flaky_source_with_growing_waits():
    lines = run_example("etl_with_retry.py").splitlines()
    assert lines[:7] == [
        "  extract, attempt 1: source unavailable",
        "  back off 0.1s before attempt 2",
        "  extract, attempt 2: source unavailable",
        "  back off 0.2s before attempt 3",
        "  extract, attempt 3: 4 rows",
        "  transform: kept 3 of 4 rows",
        "  load 3 rows into weather",
    ]
    assert lines[7].startswith("loaded 3 rows: [{'id': 1, 'city': 'Oslo', 'temp_c': 4.5}")


def test_etl_waits_really_happen(capsys):
    module = import_example("etl_with_retry.py")
    engine = tideflow.load(module.make_flow())
    waits: list[float] = []
    engine.subscribe(
        lambda e: waits.append(e.delay) if getattr(e, "state", None) == "RETRYING" else None
    )
    stopwatch = StopwatchListener(engine)
    with stopwatch:
        engine.run()
    assert waits == [0.1, 0.2]
    assert stopwatch.run_duration is not None
    assert stopwatch.run_duration >= 0.3


def test_map_reduce_counts_every_word_on_the_parallel_engine():
    lines = run_example("map_reduce.py").splitlines()
    assert re.fullmatch(r"2000 documents in 40 chunks, \d+ words", lines[0])
    assert lines[-2] == "same as counting in one loop: True"
    assert lines[-1] == "faster than one worker would be: True"
    top = [line.split(":")[0].strip() for line in lines[1:4]]
    assert len(top) == 3


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
