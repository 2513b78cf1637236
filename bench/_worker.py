"""One measurement in a fresh process; prints one JSON line.

Usage (run as a script, so only ``bench/`` is on ``sys.path``)::

    python bench/_worker.py probe SIDE
    python bench/_worker.py run SIDE WORKLOAD N MAX_RUNS BUDGET_S

``run`` first runs the workload once at N=2, untimed, then repeats it up to
MAX_RUNS times while the time spent stays under BUDGET_S (always at least
once) and reports the median of each timing.
The ``import`` workload times the library's import before anything else of it
is loaded. Only the measured side's module is ever imported.
"""

from __future__ import annotations

import importlib
import sys
import time
from types import ModuleType

IMPORTS = {"tideflow": "tideflow", "taskflow": "taskflow.engines", "dbos": "dbos"}
SIDES = {"tideflow": "side_tideflow", "taskflow": "side_taskflow", "dbos": "side_dbos"}
WARM_UP_N = 2


def _emit(payload: dict[str, object]) -> None:
    """Print ``payload`` as the single JSON result line."""
    import json

    print(json.dumps(payload), flush=True)


def _time_import(side: str) -> dict[str, object]:
    """Time importing the side's library in this still-clean process."""
    start = time.perf_counter()
    importlib.import_module(IMPORTS[side])
    return {"status": "ok", "runs": 1, "timings": {"total": time.perf_counter() - start}}


def _median(values: list[float]) -> float:
    """Return the median of ``values``."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _load_side(side: str) -> ModuleType:
    """Import the side module, or exit with a ``missing`` result."""
    try:
        return importlib.import_module(SIDES[side])
    except ImportError as exc:
        _emit({"status": "missing", "error": f"{type(exc).__name__}: {exc}"})
        sys.exit(0)


def _probe(side: str) -> dict[str, object]:
    """Report the side's version and which workloads it implements."""
    module = _load_side(side)
    table = module.WORKLOADS
    return {
        "status": "ok",
        "version": module.version(),
        "python": sys.version.split()[0],
        "workloads": {name: "ok" if callable(entry) else entry for name, entry in table.items()},
    }


def _measure(side: str, workload: str, n: int, max_runs: int, budget: float) -> dict[str, object]:
    """Run one workload repeatedly within the budget and report median timings."""
    if workload == "import":
        return _time_import(side)
    import _common

    entry = _load_side(side).WORKLOADS.get(workload)
    if entry is None:
        return {"status": "not available yet"}
    if isinstance(entry, str):
        return {"status": "n/a", "note": entry}
    runs: list[dict[str, float]] = []
    try:
        entry(min(n, WARM_UP_N))  # untimed: one-off first-call costs are not the engine's
        deadline = time.perf_counter() + budget
        while not runs or (len(runs) < max_runs and time.perf_counter() < deadline):
            runs.append(entry(n))
    except _common.Unavailable as exc:
        return {"status": "n/a", "note": str(exc)}
    medians = {key: _median([run[key] for run in runs]) for key in runs[0]}
    return {"status": "ok", "runs": len(runs), "timings": medians}


def main(argv: list[str]) -> None:
    """Dispatch ``probe`` or ``run`` and print the result line."""
    try:
        if argv[0] == "probe":
            result = _probe(argv[1])
        else:
            side, workload, n, max_runs, budget = argv[1:6]
            result = _measure(side, workload, int(n), int(max_runs), float(budget))
    except Exception as exc:  # reported, not raised: one broken workload must not stop the run
        status = "missing" if argv[0] == "probe" else "error"
        result = {"status": status, "error": f"{type(exc).__name__}: {exc}"}
    _emit(result)


if __name__ == "__main__":
    main(sys.argv[1:])
