"""Run every workload for tideflow and TaskFlow 6.5 (and DBOS) side by side; print and save.

Method (also saved in the JSON):

* Every measurement is one fresh process (``bench/_worker.py``) that imports only
  the side it measures: tideflow from this interpreter, each peer from its own
  virtual environment (``bench/.venv-taskflow``, ``bench/.venv-dbos``: created on
  first use, remade when its pinned requirements change; or the interpreter
  named by ``BENCH_TASKFLOW_PYTHON`` / ``BENCH_DBOS_PYTHON``). A peer whose venv
  cannot be made is skipped with a warning.
* The worker first runs the workload once at N=2, untimed, so one-off costs
  (TaskFlow's plugin scan on the first ``load``, lazy imports) are not charged
  to the engine; import time is a workload of its own. It then runs the
  workload up to 5 times within a small time budget and reports the median.
* The headline time (``total``) is ``load() + compile() + run()`` of a flow that
  is already built; ``compile`` (load + compile) and ``build`` (creating the
  tasks and the flow) are kept separately in the JSON. Per-task overhead is
  ``total / N``. Memory is the tracemalloc peak of building and running, per atom.
* A second table times, alone, calls users make around each run: ``fetch_all()``
  of N values (half stored, half one task's results), the library's ``run(flow)``
  of N value-providing tasks (which returns ``fetch_all()``), and building the
  seeded random graph of N nodes (its tasks, then ``add()``). Per-item figures
  are per value or node. They are kept under ``calls`` in the JSON.
* A third table, durable runs: a linear flow of N no-op tasks whose every state
  change is recorded in a fresh SQLite file (schema created untimed), per task:
  tideflow's SQLite store (WAL with synchronous=NORMAL, its default, and FULL)
  and the same run in memory; TaskFlow's SQLAlchemy backend on SQLite at N=100
  (1,000 tasks take about a minute there); DBOS Transact (pinned in ``VENVS``),
  one workflow of N no-op steps, its SQLite system database in its default
  journal mode and in WAL mode (DBOS is launched untimed, in the warm-up). The
  durable targets compare per task, each side at the largest N it ran. Kept
  under ``durable`` in the JSON. ``--only durable`` runs just these.
* An executors table (issue 9; ``--only executors``) sets each run against its own
  baseline, kept in every sample as ``baseline`` with the figure ``x``: N 50 ms
  sleeps against the ideal (8 at a time on threads and on the asyncio executor's
  pool; ``async def`` sleeps all at once on its loop, as its ``max_workers`` sizes only
  the pool for plain atoms; 1,000 of them under ``run_async()``); CPU-bound tasks on
  ``'processes'`` against the serial engine (x = serial / processes; the same work on
  a plain ``ProcessPoolExecutor`` is measured too, as the machine's limit); an unordered
  flow on a Dask ``LocalCluster`` (started untimed) against ``client.submit()`` of the
  same functions and ``gather()``. The paired rows measure both in one worker, in
  turns, several pairs per process (``Spec.runs``), and x is the median of the pairs'
  ratios. TaskFlow runs only the threads rows. Every sample records the 1-minute load
  average, shown per row, and the run prints the load before and after: on a shared
  machine, a speedup depends on the CPU other work leaves.
* A job-board group (issue 11; ``--only jobs``, never in a run that does not name it:
  it needs PostgreSQL) measures queues on PostgreSQL side by side, the floor, tideflow,
  PgQueuer and procrastinate (the last two from ``bench/.venv-pgqueuer`` and
  ``bench/.venv-procrastinate``): its own method is in ``bench/jobs.py``. Kept under
  ``jobs`` in the JSON.
* Sides alternate and rounds interleave all workloads; the table shows the
  median over processes. Ratios are TaskFlow / tideflow at the same N only,
  except the durable targets (per task).
* Modes: full (about 20 minutes on 2 cores, mostly the peers: DBOS spends 2-20 ms
  per step on SQLite here, TaskFlow about 50 ms per durable task), ``--quick``
  (about two minutes; TaskFlow capped near N=200, its and DBOS's durable runs at
  N=50), ``--tiny`` (N=10, for the test).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import jobs
from bench._model import (
    MODES,
    SIDES,
    SPECS,
    Cell,
    Mode,
    Results,
    Spec,
)
from bench._report import report, to_json
from bench._targets import judge

BENCH = Path(__file__).resolve().parent
WORKER = BENCH / "_worker.py"
INNER_RUNS = 5  # runs of a workload inside one process, within the mode's inner budget


@dataclass(frozen=True)
class Venv:
    """A peer library's own virtual environment, created by the runner on first use."""

    label: str
    path: Path
    requirements: tuple[str, ...]
    override: str  # an environment variable naming an interpreter to use instead


VENVS = {
    "taskflow": Venv(
        "TaskFlow",
        BENCH / ".venv-taskflow",
        ("taskflow==6.5.*", "SQLAlchemy", "alembic"),
        "BENCH_TASKFLOW_PYTHON",
    ),
    # DBOS Transact, pinned: its durable workloads compare per step on SQLite
    "dbos": Venv("DBOS", BENCH / ".venv-dbos", ("dbos==3.4.0",), "BENCH_DBOS_PYTHON"),
    # the job-board peers (``--only jobs``, see bench/jobs.py), pinned, on psycopg's C build
    "pgqueuer": Venv(
        "PgQueuer",
        BENCH / ".venv-pgqueuer",
        ("pgqueuer==1.6.0", "psycopg[binary]==3.3.9"),
        "BENCH_PGQUEUER_PYTHON",
    ),
    "procrastinate": Venv(
        "procrastinate",
        BENCH / ".venv-procrastinate",
        ("procrastinate==3.10.0", "psycopg[binary]==3.3.9"),
        "BENCH_PROCRASTINATE_PYTHON",
    ),
}


# -- the peers' environments ----------------------------------------------------------


def side_python(side: str) -> str | None:
    """Return the interpreter that has ``side``'s library, creating its venv if needed.

    A venv is ready when its marker file lists exactly the current requirements; if
    creating it fails, that side is skipped with a warning (``None``).
    """
    venv = VENVS[side]
    override = os.environ.get(venv.override)
    if override:
        return override
    python = venv.path / "bin" / "python"
    marker = venv.path / ".bench-ready"
    wanted = " ".join(venv.requirements)
    if marker.exists() and marker.read_text() == wanted and python.exists():
        return str(python)
    print(f"creating {venv.path} with {wanted} (first run only) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv.path)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *venv.requirements], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(
            f"WARNING: could not create {venv.path} ({exc}); {venv.label} side skipped",
            flush=True,
        )
        return None
    marker.write_text(wanted)
    return str(python)


# -- running workers ---------------------------------------------------------------------


def call_worker(python: str, args: list[str], timeout: float) -> tuple[dict[str, Any], float]:
    """Run the worker once; return its JSON result and the wall time it took."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # Both sides import from bytecode caches, as users do (pip writes TaskFlow's at
    # install; the warm-up writes ours): a machine-wide "don't write bytecode" would
    # charge only tideflow's editable install for compiling its sources each time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args[1] != "tideflow":
        env.pop("PYTHONPATH", None)  # a peer's side sees only its own venv
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, str(WORKER), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=BENCH,
        )
    except subprocess.TimeoutExpired:
        failed = {"status": "error", "error": f"timed out after {timeout:.0f} s"}
        return failed, time.perf_counter() - start
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), wall
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "error", "error": f"worker exited {proc.returncode}: {tail}"}, wall


def probe(python: str | None, side: str) -> dict[str, Any]:
    """Ask a side which workloads it implements (and its version)."""
    if python is None:
        return {"status": "missing", "error": f"no {VENVS[side].label} environment"}
    result, _ = call_worker(python, ["probe", side], 120.0)
    return result


def availability(found: dict[str, Any], name: str) -> tuple[str, str]:
    """Return the (status, note) a side's probe gives a workload before anything runs."""
    if found.get("status") != "ok":
        return "missing", str(found.get("error", ""))
    entry = "ok" if name == "import" else found["workloads"].get(name, "no entry in WORKLOADS")
    if entry is None:
        return "not available yet", ""
    return ("ok", "") if entry == "ok" else ("n/a", str(entry))


def plan(specs: list[Spec], mode: str, probes: dict[str, dict[str, Any]]) -> Results:
    """Create a cell for every (workload, N, side) to run, marking the unavailable ones."""
    results: Results = {}
    for spec in specs:
        sizes = sorted({n for side in SIDES for n in spec.sizes(mode, side)})
        per_n: dict[int, dict[str, Cell]] = {n: {} for n in sizes}
        for side in SIDES:
            status, note = availability(probes[side], spec.name)
            for n in spec.sizes(mode, side):
                per_n[n][side] = Cell(status=status, note=note)
        results[spec.name] = per_n
    return results


def wanted_reps(spec: Spec, cell: Cell, mode: Mode) -> int:
    """Return how many processes this cell should get, given how slow the first was."""
    if spec.once:
        return 1
    if not cell.wall_s:
        return mode.reps
    affordable = int(mode.job_budget_s // cell.wall_s[0])
    return max(mode.min_reps, min(mode.reps, affordable))


def measure_all(results: Results, mode: Mode, pythons: dict[str, str | None]) -> None:
    """Fill the cells round by round, alternating which side goes first."""
    specs = {spec.name: spec for spec in SPECS}
    for round_no in range(mode.reps):
        order = SIDES if round_no % 2 == 0 else SIDES[::-1]
        for name, per_n in results.items():
            for n, cells in per_n.items():
                for side in order:
                    cell, python = cells.get(side), pythons[side]
                    if cell is None or python is None or cell.status != "ok":
                        continue
                    spec = specs[name]
                    if len(cell.wall_s) < wanted_reps(spec, cell, mode):
                        run_once(cell, python, [side, name, str(n), *inner(spec, mode)], mode)


def inner(spec: Spec, mode: Mode) -> list[str]:
    """Return the worker's MAX_RUNS and BUDGET_S for ``spec`` in ``mode``."""
    if mode.name == "tiny" or spec.once:
        return [str(1 if spec.once else INNER_RUNS), str(mode.inner_budget_s)]
    return [str(spec.runs or INNER_RUNS), str(max(spec.budget_s, mode.inner_budget_s))]


def run_once(cell: Cell, python: str, args: list[str], mode: Mode) -> None:
    """Take one measurement (worker ``run`` with ``args``) into ``cell`` and echo it.

    Each sample also holds ``load1``, the machine's 1-minute load average just after it.
    """
    result, wall = call_worker(python, ["run", *args], mode.timeout_s)
    cell.wall_s.append(wall)
    if result.get("status") == "ok":
        cell.samples.append({**result["timings"], "load1": os.getloadavg()[0]})
    else:
        cell.status = str(result.get("status", "error"))
        cell.note = str(result.get("error") or result.get("note") or "")
    side, name, n = args[:3]
    print(f"  {name:<18} N={n:<7} {side:<8} {wall:7.2f} s  {cell.status}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="under two minutes; TaskFlow at smaller N"
    )
    size.add_argument(
        "--tiny", action="store_true", help="tiny sizes, one repetition (used by the tests)"
    )
    parser.add_argument(
        "--json", type=Path, default=BENCH / "results" / "latest.json", help="where to write JSON"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workload names or groups (engine, executors, calls, durable; "
        "jobs, the job boards on PostgreSQL, runs only when named here)",
    )
    parser.add_argument("--no-taskflow", action="store_true", help="skip the TaskFlow side")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS side")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; return 1 if any measurement errored, else 0."""
    args = parse_args(argv)
    mode = MODES["tiny" if args.tiny else "quick" if args.quick else "full"]
    only = {name for name in args.only.split(",") if name}
    specs = [spec for spec in SPECS if not only or {spec.name, spec.group} & only]
    started = time.perf_counter()
    skipped = {"taskflow": args.no_taskflow, "dbos": args.no_dbos}
    # a peer's venv is made (and probed) only when a chosen workload runs on that side
    used = {side for spec in specs for side in SIDES if spec.sizes(mode.name, side)}
    pythons: dict[str, str | None] = {"tideflow": sys.executable}
    for side in VENVS:
        pythons[side] = side_python(side) if side in used and not skipped.get(side) else None
    used.add("tideflow")  # its version heads the report whatever runs
    probes = {
        side: probe(pythons[side], side) if side in used else {"status": "unused"} for side in SIDES
    }
    for side in SIDES:
        if side in used and probes[side].get("status") != "ok":
            print(f"WARNING: {side} side unavailable: {probes[side].get('error', '')}", flush=True)
    results = plan(specs, mode.name, probes)
    load_before = os.getloadavg()
    measure_all(results, mode, pythons)
    jobs_results = jobs.measure_all(mode.name, side_python) if "jobs" in only else None
    load_after = os.getloadavg()
    verdicts = judge(results)
    if jobs_results is not None:
        verdicts += jobs.judge(jobs_results)
    versions = {side: probes[side].get("version", probes[side].get("status")) for side in SIDES}
    extra = [] if jobs_results is None else jobs.report_lines(jobs_results)
    report(specs, results, verdicts, mode, versions, extra)
    elapsed = time.perf_counter() - started
    before, after = ("/".join(f"{v:.2f}" for v in load) for load in (load_before, load_after))
    print(f"\nload average (1/5/15 min): {before} before, {after} after ({os.cpu_count()} CPUs)")
    print(f"finished in {elapsed:.1f} s; JSON: {args.json}")
    meta = {
        "mode": mode.name,
        "seconds": elapsed,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": load_after},
        "versions": versions,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "method": __doc__,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = to_json(specs, results, verdicts, meta)
    if jobs_results is not None:
        document["jobs"] = jobs.to_json(jobs_results)
    args.json.write_text(json.dumps(document, indent=1) + "\n")
    cells = [c for per_n in results.values() for cs in per_n.values() for c in cs.values()]
    if jobs_results is not None:
        cells += list(jobs_results.cells.values())
    return 1 if any(cell.status == "error" for cell in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
