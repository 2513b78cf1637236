"""Stop a run midway and finish it later from its record: nothing done is done twice.

A three-step import job runs in a graph flow. The operator asks it to stop while
the second step is running (``engine.suspend()``); the run ends SUSPENDED with its
record in the store. A second engine, rebuilt from that record alone
(``load_from_detail``), finishes the job: the finished steps are not run again.
Run it with ``python examples/resume_from_record.py``.
"""

from __future__ import annotations

from typing import Any

import tideflow
from tideflow.persistence import fetch

#: Which engine to ask to stop (set while the first run is going).
RUNNING: dict[str, tideflow.Engine] = {}


class Download(tideflow.Task):
    """Fetch the rows."""

    default_provides = "rows"

    def execute(self, source: str) -> list[int]:
        print(f"  download {source}")
        return [3, 1, 2]


class Clean(tideflow.Task):
    """Sort the rows; the first time, the operator stops the job meanwhile."""

    default_provides = "clean"

    def execute(self, rows: list[int]) -> list[int]:
        print("  clean rows")
        engine = RUNNING.pop("engine", None)
        if engine is not None:
            print("  (operator: stop after this step)")
            engine.suspend()
        return sorted(rows)


class Load(tideflow.Task):
    """Store the rows."""

    def execute(self, clean: list[int]) -> str:
        print(f"  load {clean}")
        return f"{len(clean)} rows loaded"


def make_flow() -> tideflow.GraphFlow:
    """The job; a module-level factory, so a record can name it and rebuild the flow."""
    return tideflow.GraphFlow("import-job").add(Download("download"), Clean("clean"), Load("load"))


def states(engine: tideflow.Engine) -> dict[str, Any]:
    """Each step's recorded state."""
    return {
        name: str(engine.storage.get_atom_state(name)) for name in ("download", "clean", "load")
    }


def main() -> None:
    """Run, stop, and resume from the record."""
    store = fetch("memory://")
    first = tideflow.load_from_factory(make_flow, store={"source": "sales.csv"}, backend=store)
    RUNNING["engine"] = first
    print("first run:")
    first.run()
    record = first.storage.flow_detail
    print(f"stopped: flow {record.state}, steps {states(first)}")

    print("resumed from the record:")
    second = tideflow.load_from_detail(record, backend=store)
    second.run()
    print(f"finished: flow {record.state}, {second.storage.get('load')}")


if __name__ == "__main__":
    main()
