"""A conductor process for the chaos and recovery tests (run as a script).

``python chaos_driver.py LEDGER BOARD_URL STORE_URL NAME LEASE [NAME=VALUE board
options]`` runs a :class:`tideflow.conductors.Conductor` until SIGTERM. On each job's
``compilation_start`` (after the run is loaded, before it runs) it publishes the
claim to :data:`chaos_flows.CLAIM`, so the atoms know the fencing token they run
under, and appends a ``claim`` row to the ledger: the job, the token, this pid, and
the atom states the conductor loaded the run with (what it will skip or run again).
Logs (INFO) go to stderr. A conductor that cannot open its store (the test ended the
database's connections as it started) tries again, up to 20 times.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import chaos_flows

from tideflow.conductors import Conductor, stop_on_signals
from tideflow.errors import StoreError


def _option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    return key, int(value) if value.isdigit() else value


def main(argv: list[str]) -> int:
    ledger, board, store, name, lease, *options = argv
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(process)d %(message)s"
    )

    def claimed(event: str, details: dict[str, Any]) -> None:
        job, engine = details["job"], details["engine"]
        # the atom states the run was loaded with (none yet for a new run)
        seen = {detail.name: str(detail.state) for detail in engine.storage.flow_detail}
        chaos_flows.CLAIM.clear()
        chaos_flows.CLAIM.update(job=job.name, token=job.token)
        chaos_flows.append(
            ledger,
            {
                "kind": "claim",
                "t": time.time(),
                "job": job.name,
                "token": job.token,
                "pid": os.getpid(),
                "seen": seen,
            },
        )

    for attempt in range(1, 21):
        try:
            conductor = Conductor(
                name,
                board,
                store,
                lease=float(lease),
                allowed=chaos_flows.ALLOWED,
                board_options=dict(_option(o) for o in options),
            )
            break
        except StoreError as exc:
            # the database's connections were ended as this one started (a fault of
            # the test): start again, as a supervisor would
            print(f"conductor {name}: start {attempt} failed: {exc}", file=sys.stderr)
            time.sleep(0.2)
    else:
        return 1
    with conductor, stop_on_signals(conductor, grace=0):
        conductor.notifier.register("compilation_start", claimed)
        conductor.run()
        print(f"conductor {name}: {conductor.statistics()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
