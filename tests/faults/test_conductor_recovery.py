"""Recovery time: a conductor SIGKILLed mid-atom, with default settings (lease 10 s),
has its run resumed by another conductor within 15 s (issue 11).

The lease is renewed every third of it, so a conductor killed at a random moment
(here: a random delay into the atom, up to a third of the lease) leaves between 2/3
and all of a lease to run out; the other conductor, waiting on the
board, claims the job as it ends and runs the atom caught running again. Recovery is
measured from the kill to that atom's start under the new claim (its ledger row).

CI runs one trial per board (about 10 s each); ``TIDEFLOW_RECOVERY_TRIALS=100`` runs
100 per board and prints the distribution.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from pathlib import Path

import chaos_flows
import pytest
from chaos_support import Driver, drivers, place

from tideflow.jobs import DEFAULT_LEASE

TRIALS = int(os.environ.get("TIDEFLOW_RECOVERY_TRIALS") or 1)
#: what issue 11 promises: the run goes on elsewhere within this many seconds of a kill
WITHIN = 15.0


def _start_of(ledger: str, job: str, atom: str, timeout: float) -> list[dict[str, object]]:
    """The ledger's start rows of ``job``'s ``atom`` once there is one (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [
            r
            for r in chaos_flows.read_ledger(ledger)
            if r["kind"] == "start" and r["job"] == job and r["atom"] == atom
        ]
        if rows:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{job}.{atom} did not start within {timeout} s")
        time.sleep(0.01)


def _resumed(ledger: str, job: str, atom: str, dead: int, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in _start_of(ledger, job, atom, timeout) if r["pid"] != dead]
        if rows:
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{job}.{atom} was not resumed within {timeout} s of the kill")
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.timeout(120 + 40 * TRIALS)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "redis"])
def test_a_killed_conductors_run_is_resumed_elsewhere_within_15_s(
    kind: str, tmp_path: Path
) -> None:
    recoveries: list[float] = []
    seed = int(os.environ.get("TIDEFLOW_CHAOS_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    with place(kind, tmp_path) as where, drivers(where, 2, DEFAULT_LEASE) as running:
        board = where.open_board()
        try:
            for trial in range(TRIALS):
                job = f"r{trial}"
                kwargs = {"job": job, "ledger": where.ledger, "delay": 0.0, "hold": "s2"}
                board.post(job, chaos_flows.FACTORY, kwargs=kwargs)
                first = _start_of(where.ledger, job, "s2", timeout=60)[0]
                owner = next(d for d in running if d.pid == first["pid"])
                # at a random moment of the lease's renewal cycle (renewed every third)
                time.sleep(rng.uniform(0, DEFAULT_LEASE / 3))
                killed = time.time()
                owner.signal(signal.SIGKILL)
                owner.popen.wait()
                Path(f"{where.ledger}.{job}.go").touch()  # the run again passes s2
                running.append(Driver(where, f"c{len(running)}", DEFAULT_LEASE))
                again = _resumed(where.ledger, job, "s2", owner.pid, timeout=60)
                assert again["token"] > first["token"]  # type: ignore[operator]
                recoveries.append(again["t"] - killed)  # type: ignore[operator]
                deadline = time.monotonic() + 60
                while list(board.iterjobs()):
                    assert time.monotonic() < deadline, f"{job} was not consumed"
                    time.sleep(0.05)
        finally:
            board.close()
    recoveries.sort()
    shown = (
        f"{kind}, seed {seed}: {len(recoveries)} trial(s), recovery s: min {recoveries[0]:.2f}, "
        f"median {statistics.median(recoveries):.2f}, "
        f"p90 {recoveries[int(0.9 * (len(recoveries) - 1))]:.2f}, max {recoveries[-1]:.2f}"
    )
    print(shown)
    if len(recoveries) > 1:
        print(f"{kind}: every recovery (s): {[round(r, 2) for r in recoveries]}")
    late = [round(r, 2) for r in recoveries if r > WITHIN]
    assert not late, f"{shown}; resumed later than {WITHIN} s: {late}"
