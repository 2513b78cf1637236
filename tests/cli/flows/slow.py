"""Three tasks; the middle one is slow. Each appends its name to the ledger file."""

from __future__ import annotations

import time

import tideflow


def _note(ledger: str, line: str) -> None:
    with open(ledger, "a") as out:
        out.write(line + "\n")


class Step(tideflow.Task):
    def __init__(self, name: str, seconds: float = 0.0) -> None:
        super().__init__(name, provides=name)
        self.seconds = seconds

    def execute(self, ledger: str) -> str:
        _note(ledger, f"{self.name}:start")
        time.sleep(self.seconds)
        _note(ledger, self.name)
        return f"{self.name} done"


def make_flow() -> tideflow.Flow:
    return tideflow.LinearFlow("slow-line").add(
        Step("first"), Step("slow", seconds=3.0), Step("last")
    )
