"""What the job board tests share (the fixtures are in this folder's conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

#: The variable that enables each server's tests, with an example value.
ENV: Final = {
    "postgresql": (
        "TIDEFLOW_TEST_POSTGRES_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ),
    "mysql": ("TIDEFLOW_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "redis": ("TIDEFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
KINDS: Final = ("sqlite", "postgresql", "mysql", "redis")
SRC: Final = str(Path(__file__).resolve().parents[2] / "src")
ALLOWED: Final = ("myapp.flows",)
FACTORY: Final = "myapp.flows.orders:build"


def skip_reason(kind: str) -> str | None:
    """Why ``kind``'s tests cannot run here (None: they can)."""
    if kind == "sqlite":
        return None
    variable, example = ENV[kind]
    if os.environ.get(variable):
        return None
    return (
        f"{kind} board tests need {variable} set, e.g. {variable}={example} "
        "(bash .ci/services starts the servers and prints the variables)"
    )


class Heard:
    """A notifier callback that keeps what it hears as (event, job name, job state)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def __call__(self, event: str, details: dict[str, object]) -> None:
        job = details["job"]
        self.events.append((event, job.name, str(job.state)))  # type: ignore[attr-defined]

    def take(self) -> list[tuple[str, str, str]]:
        """What was heard since the last take."""
        heard, self.events = self.events, []
        return heard
