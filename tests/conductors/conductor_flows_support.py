"""Flow factories the conductor tests post as jobs (allowed prefix: this module's name).

Each atom appends ``JOB:ATOM:PID`` to a ledger file when it starts and ``JOB:ATOM:done``
when it ends, so a test counts executions across processes. ``pause_at`` names an atom
that waits for a file ``<ledger>.go`` to exist before returning (a test holds it there,
then kills, stops or releases the conductor running it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import tideflow

ALLOWED = ("conductor_flows_support",)


class Step(tideflow.Task):
    """One atom: logs itself in the ledger, maybe waits, returns a value."""

    def __init__(self, name: str, job: str, ledger: str, pause: bool, delay: float) -> None:
        super().__init__(name=name, provides=name)
        self.job = job
        self.ledger = ledger
        self.pause = pause
        self.delay = delay

    def execute(self) -> str:
        _append(self.ledger, f"{self.job}:{self.name}:{os.getpid()}")
        if self.delay:
            time.sleep(self.delay)
        if self.pause:
            go = Path(self.ledger + ".go")
            while not go.exists():
                time.sleep(0.02)
        _append(self.ledger, f"{self.job}:{self.name}:done")
        return f"{self.name} of {self.job}"


class Boom(tideflow.Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()


def steps(
    job: str, ledger: str, atoms: int = 3, pause_at: str | None = None, delay: float = 0.0
) -> tideflow.LinearFlow:
    """A linear flow of ``atoms`` steps named s1, s2, ..."""
    flow = tideflow.LinearFlow(f"steps-{job}")
    for n in range(1, atoms + 1):
        name = f"s{n}"
        flow.add(Step(name, job, ledger, pause=name == pause_at, delay=delay))
    return flow


def failing(job: str, ledger: str) -> tideflow.LinearFlow:
    """A step, then one that fails: the run ends REVERTED."""
    return tideflow.LinearFlow(f"failing-{job}").add(
        Step("s1", job, ledger, pause=False, delay=0.0), Boom("boom")
    )


def needs_value() -> tideflow.LinearFlow:
    """A flow requiring 'x' from the store."""
    return tideflow.LinearFlow("needs-x").add(tideflow.FunctorTask(_echo, name="echo"))


def _echo(x: int) -> int:
    return x


def not_a_flow() -> str:
    return "not a flow"


def raising() -> tideflow.LinearFlow:
    raise RuntimeError("the factory fails")


def ledger_lines(ledger: str | Path) -> list[str]:
    path = Path(ledger)
    return path.read_text().splitlines() if path.exists() else []
