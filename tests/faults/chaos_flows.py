"""The flows the chaos and recovery tests post as jobs (allowed prefix: this module's name).

A job is a chain of atoms s1, s2, ...; each takes the previous one's result. Every
execution appends two rows to a *ledger*, a JSON-lines file outside the run store:
``start`` when it begins and ``done`` when it returns, each naming the job, the atom,
the conductor's pid and the fencing token of the claim it runs under. Its result,
which the engine commits to the run store, is ``{"token", "pid", "prev"}``: the claim's
token and the token found in the previous atom's result. So the run store says which
claim produced each committed result, and what result it was built on.

The token comes from :data:`CLAIM`, which the chaos driver sets (on the conductor's
``compilation_start`` event) before the job's engine runs: a :class:`Conductor` runs
one job at a time, on its own thread, with the serial engine, so the atom running now
belongs to that job. An atom finding no claim of its job there records token -1 (the
checker refuses it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import tideflow

ALLOWED = ("chaos_flows",)
FACTORY = "chaos_flows:chain"

#: the job this process runs now: ``{"job": name, "token": int}`` (set by the driver)
CLAIM: dict[str, Any] = {}


def append(ledger: str, row: dict[str, Any]) -> None:
    """Append one row to the ledger: one ``write`` on an O_APPEND descriptor, whole
    (a line far under PIPE_BUF), so rows of concurrent processes never interleave."""
    data = (json.dumps(row, sort_keys=True) + "\n").encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_ledger(ledger: str | Path) -> list[dict[str, Any]]:
    """Every row of the ledger, in the order they were written."""
    path = Path(ledger)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class Link(tideflow.Task):
    """One atom of a chain: ledger rows around a short sleep; a result naming its claim."""

    def __init__(
        self, name: str, job: str, ledger: str, delay: float, after: str | None, hold: bool
    ) -> None:
        super().__init__(name=name, provides=name, requires=() if after is None else (after,))
        self.job = job
        self.ledger = ledger
        self.delay = delay
        self.after = after
        self.hold = hold

    def execute(self, **previous: Any) -> dict[str, Any]:
        token = CLAIM.get("token", -1) if CLAIM.get("job") == self.job else -1
        row = {"job": self.job, "atom": self.name, "pid": os.getpid(), "token": token}
        append(self.ledger, {"kind": "start", "t": time.time(), **row})
        time.sleep(self.delay)
        if self.hold:  # the recovery test holds the atom here until it says go
            go = Path(f"{self.ledger}.{self.job}.go")
            while not go.exists():
                time.sleep(0.01)
        append(self.ledger, {"kind": "done", "t": time.time(), **row})
        prev = previous[self.after]["token"] if self.after is not None else None
        return {"token": token, "pid": os.getpid(), "prev": prev}


def chain(
    job: str, ledger: str, atoms: int = 3, delay: float = 0.05, hold: str | None = None
) -> tideflow.LinearFlow:
    """A linear flow of ``atoms`` links s1, s2, ...: each sleeps ``delay`` seconds;
    the one named ``hold`` also waits for the file ``<ledger>.<job>.go``.

    While a file ``<ledger>.<job>.gate`` exists, the factory itself waits (after a
    ``gated`` ledger row): a conductor resuming the job is held after it has read the
    run record and before its engine takes the record over."""
    gate = Path(f"{ledger}.{job}.gate")
    if gate.exists():
        append(ledger, {"kind": "gated", "t": time.time(), "job": job, "pid": os.getpid()})
        while gate.exists():
            time.sleep(0.01)
    flow = tideflow.LinearFlow(f"chain-{job}")
    after: str | None = None
    for n in range(1, atoms + 1):
        name = f"s{n}"
        flow.add(Link(name, job, ledger, delay, after, hold=name == hold))
        after = name
    return flow
