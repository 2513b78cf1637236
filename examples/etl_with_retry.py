"""Extract, transform, load: a flaky source retried with exponential back-off.

The extract step reads from a source that is down for its first two attempts
(``ConnectionError``). A ``Times(4)`` controller guards it with
``backoff=ExponentialBackoff(initial=0.1)``: the engine waits 0.1 s, then 0.2 s,
between attempts (without holding a worker), and ``retry_on=ConnectionError``
keeps a different error from being retried at all. Transform and load run once
the extract succeeds; the load step is undone if anything after it fails.

The source's failures depend only on the attempt number the controller provides,
so the story is the same in every process and on every executor.

Run it with ``python examples/etl_with_retry.py``, or with the command:
``tideflow run examples/etl_with_retry.py``. The command finds the flow through
this module's ``make_flow()`` function, the convention every example follows.
"""

from __future__ import annotations

from typing import Any

import tideflow
from tideflow import AtomEvent, AtomState

#: Attempts during which the source is down.
OUTAGE = 2

ROWS = [
    {"id": 1, "city": "oslo", "temp_c": "4.5"},
    {"id": 2, "city": "lisbon", "temp_c": "18.0"},
    {"id": 3, "city": "", "temp_c": "n/a"},
    {"id": 4, "city": "kyiv", "temp_c": "-2.25"},
]


class Extract(tideflow.Task):
    """Read rows from the source; it is down for the first OUTAGE attempts."""

    default_provides = "raw"

    def execute(self, attempt: int) -> list[dict[str, str]]:
        if attempt <= OUTAGE:
            print(f"  extract, attempt {attempt}: source unavailable")
            raise ConnectionError("weather API timed out")
        print(f"  extract, attempt {attempt}: {len(ROWS)} rows")
        return [dict(row) for row in ROWS]


class Transform(tideflow.Task):
    """Drop incomplete rows, parse temperatures."""

    default_provides = "clean"

    def execute(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        clean = [
            {"id": row["id"], "city": row["city"].title(), "temp_c": float(row["temp_c"])}
            for row in raw
            if row["city"] and row["temp_c"] != "n/a"
        ]
        print(f"  transform: kept {len(clean)} of {len(raw)} rows")
        return clean


class Load(tideflow.Task):
    """Write the rows to the warehouse; delete them again on revert."""

    default_provides = "loaded"

    def execute(self, clean: list[dict[str, Any]], table: str = "weather") -> int:
        print(f"  load {len(clean)} rows into {table}")
        return len(clean)

    def revert(self, result: Any, table: str = "weather", **kwargs: Any) -> None:
        print(f"  delete the rows loaded into {table}")


def make_flow() -> tideflow.LinearFlow:
    """Extract under a retry with back-off, then transform and load."""
    retry = tideflow.Times(
        4,
        name="retry-extract",
        provides="attempt",
        backoff=tideflow.ExponentialBackoff(initial=0.1, multiplier=2.0),
        retry_on=ConnectionError,
    )
    extract = tideflow.LinearFlow("extract", retry=retry).add(Extract("extract"))
    return tideflow.LinearFlow("etl").add(extract, Transform("transform"), Load("load"))


def show_waits(event: object) -> None:
    """Say how long the controller waits before each new attempt."""
    if isinstance(event, AtomEvent) and event.state is AtomState.RETRYING:
        print(f"  back off {event.delay:.1f}s before attempt {event.attempt}")


if __name__ == "__main__":
    engine = tideflow.load(make_flow())
    engine.subscribe(show_waits)
    engine.run()
    print(f"loaded {engine.storage.fetch('loaded')} rows: {engine.storage.fetch('clean')}")
