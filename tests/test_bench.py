"""The benchmark runner's plumbing: tiny mode end to end, the durable workloads' sides,
the sizes each side runs, the durable targets, the peers' venvs, and the job-board group
(its targets and table, and a tiny run on PostgreSQL). No time is asserted."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "floor",
    "import",
    "linear",
    "unordered",
    "graph",
    "revert",
    "retry",
    "memory",
    "unordered_threads",
}
EXECUTORS = {
    "parallel_sleep",
    "asyncio_sleep32",
    "asyncio_pool_sleep",
    "asyncio_sleep",
    "processes_cpu",
    "dask_unordered",
}
DURABLE = {"durable_linear", "durable_full", "durable_wal", "durable_memory"}


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first run creates TaskFlow's and DBOS's venvs (pip install)
def test_tiny_mode_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    """Run ``python -m bench --tiny`` (the peers' venvs are created on first use)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TaskFlow/tideflow" in proc.stdout
    assert "targets" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data["workloads"]) == WORKLOADS
    assert set(data["executors"]) == EXECUTORS
    assert set(data["durable"]) == DURABLE
    assert {"target", "value", "status", "note"} <= set(data["targets"][0])
    linear = data["workloads"]["linear"]["sizes"]["10"]
    assert linear["tideflow"]["status"] == "ok", linear["tideflow"]
    taskflow_ok = linear["taskflow"]["status"] == "ok"
    assert taskflow_ok or "WARNING: taskflow side unavailable" in proc.stdout, linear["taskflow"]
    # the durable table: tideflow in memory always runs; DBOS in both journal modes
    assert "durable runs" in proc.stdout
    memory = data["durable"]["durable_memory"]["sizes"]["10"]["tideflow"]
    assert memory["status"] == "ok", memory
    assert memory["per_task_us"] > 0
    for name in ("durable_linear", "durable_wal"):
        dbos = data["durable"][name]["sizes"]["10"]["dbos"]
        dbos_ok = dbos["status"] == "ok"
        assert dbos_ok or "WARNING: dbos side unavailable" in proc.stdout, dbos
    targets = {verdict["target"]: verdict for verdict in data["targets"]}
    assert any("DBOS" in target for target in targets)
    # every executor ran on the tideflow side (Dask: when distributed is installed),
    # each against its baseline; TaskFlow has only threads
    assert "executors: each run against its baseline" in proc.stdout
    for name, sizes in data["executors"].items():
        (entry,) = sizes["sizes"].values()
        tide = entry["tideflow"]
        if name == "dask_unordered" and tide["status"] == "n/a":
            assert "tideflow[dask]" in tide["note"]
            continue
        assert tide["status"] == "ok", (name, tide)
        assert tide["median"]["x"] > 0
        assert tide["median"]["baseline"] > 0
        taskflow = entry["taskflow"]["status"]
        threads = name in {"parallel_sleep", "asyncio_sleep32"}
        assert taskflow == ("ok" if threads and taskflow_ok else "n/a") or not taskflow_ok
    executor_targets = [t for t in targets if t.split(":")[0] in {"threads", "asyncio"}]
    assert len(executor_targets) == 4
    assert {targets[t]["status"] for t in executor_targets} <= {"PASS", "MISS"}


# -- the sides' modules, imported as the worker does (bench/ on sys.path) -----------


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The runner's modules, and the tideflow side as a worker imports it."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    names = ("bench._model", "bench._targets", "bench._report", "bench.run", "side_tideflow")
    return {name.rpartition(".")[2]: importlib.import_module(name) for name in names}


def test_durable_run_on_sqlite_leaves_every_atom_success(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    """The tideflow side's durable run records 1,000 SUCCESS atoms in a WAL SQLite file."""
    pytest.importorskip("tideflow.persistence.sqlite", reason="the SQLite store has not landed")
    from tideflow.persistence import connect

    side = bench["side_tideflow"]
    store = connect(side.sqlite_url(str(tmp_path)))
    try:
        timings, flow_uuid = side.durable_run(1000, store)
    finally:
        store.close()
    assert timings["total"] > 0
    side.wal_check(str(tmp_path))  # raises unless the file is in WAL mode
    reopened = connect(side.sqlite_url(str(tmp_path)))
    try:
        with reopened.get_connection() as conn:
            atoms = list(conn.get_atoms_for_flow(flow_uuid))
    finally:
        reopened.close()
    assert len(atoms) == 1000
    assert {atom.state for atom in atoms} == {"SUCCESS"}
    assert [atom.name for atom in atoms] == [f"t{i}" for i in range(1000)]


def test_durable_run_in_memory_leaves_every_atom_success(bench: dict[str, ModuleType]) -> None:
    """The same run on a memory store: the comparison the 'at most 20x memory' target uses."""
    from tideflow.persistence import connect

    side = bench["side_tideflow"]
    store = connect("memory://")
    _, flow_uuid = side.durable_run(1000, store)
    assert side.succeeded(store, flow_uuid) == 1000
    assert bench["side_tideflow"].WORKLOADS["durable_memory"](10)["total"] > 0


class _Forgetful:
    """A memory store whose connection reports no atoms for any run."""

    def __init__(self, config: dict[str, Any]) -> None:
        from tideflow.persistence import MemoryBackend

        self._inner = MemoryBackend(config)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_connection(self) -> Any:
        conn = self._inner.get_connection()
        conn.get_atoms_for_flow = lambda _uuid: []
        return conn


def test_durable_workload_refuses_a_store_that_recorded_nothing(
    bench: dict[str, ModuleType],
) -> None:
    """A store that loses the atoms cannot pass for a fast one: the workload fails."""
    from tideflow.persistence import register_backend

    register_backend("bench-forgetful", _Forgetful)
    workload = bench["side_tideflow"].durable(lambda _tmp: "bench-forgetful://")
    with pytest.raises(AssertionError, match="0 SUCCESS atoms, not 5"):
        workload(5)


def test_wal_check_refuses_a_file_in_another_journal_mode(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    """The WAL workload checks what it measured: a rollback-journal file is refused."""
    import sqlite3

    conn = sqlite3.connect(tmp_path / bench["side_tideflow"].SQLITE_FILE)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(AssertionError, match="'delete', not WAL"):
        bench["side_tideflow"].wal_check(str(tmp_path))


# -- the executors' workloads, at tiny sizes (what they measure, not how fast) ------


@pytest.mark.parametrize(
    ("name", "n", "ideal"),
    [
        ("parallel_sleep", 9, 0.1),  # 8 threads: two waves of 50 ms
        ("asyncio_sleep32", 9, 0.05),  # coroutines: all at once, whatever max_workers
        ("asyncio_pool_sleep", 9, 0.1),  # plain tasks on the asyncio executor's 8 threads
        ("asyncio_sleep", 20, 0.05),  # under run_async(), in a running loop
    ],
)
def test_sleeps_are_set_against_their_ideal(
    bench: dict[str, ModuleType], name: str, n: int, ideal: float
) -> None:
    """Each sleeps workload reports the ideal as its baseline and total / ideal as x;
    the run cannot beat the ideal, so x >= 1 proves the sleeps really ran."""
    timings = bench["side_tideflow"].WORKLOADS[name](n)
    assert timings["baseline"] == pytest.approx(ideal)
    assert timings["x"] == pytest.approx(timings["total"] / ideal)
    assert timings["x"] >= 1.0
    assert timings["total"] == pytest.approx(timings["compile"] + timings["run"])


def test_async_rows_measure_async_def_tasks(bench: dict[str, ModuleType]) -> None:
    """The async rows' task is an ``async def`` (awaited on the loop, not a thread)."""
    from tideflow._task import is_async_method

    side = bench["side_tideflow"]
    assert is_async_method(side.AsyncSleep("a"), "execute")
    assert not is_async_method(side.Sleep("s"), "execute")


def test_cpu_on_processes_runs_in_workers_and_serially(bench: dict[str, ModuleType]) -> None:
    """The processes row: the same flow on the serial engine (in this process) and on
    worker processes, in one call; x = serial / processes, CPU shares reported."""
    timings = bench["side_tideflow"].cpu_on_processes(3, loops=1000)
    assert timings["x"] == pytest.approx(timings["baseline"] / timings["total"])
    assert timings["cpus"] > 0
    assert timings["serial_cpus"] > 0
    assert timings["task_cpu_x"] > 0
    assert timings["pool_x"] > 0


def test_measurements_in_one_call_take_turns(bench: dict[str, ModuleType]) -> None:
    """Measurements taken together start one further along on each call, and always
    come back in the order given."""
    order: list[str] = []

    def mark(label: str) -> Any:
        return lambda: order.append(label) or {"total": float(len(label))}

    side = bench["side_tideflow"]
    results = [side.in_turns(mark("a"), mark("bb"), mark("ccc")) for _ in range(3)]
    assert results == [[{"total": 1.0}, {"total": 2.0}, {"total": 3.0}]] * 3
    firsts = order[::3]
    assert sorted(firsts) == ["a", "bb", "ccc"]  # each went first once
    for i in range(3):  # and each call kept the cyclic order
        call = order[3 * i : 3 * i + 3]
        start = ["a", "bb", "ccc"].index(call[0])
        assert call == (["a", "bb", "ccc"] * 2)[start : start + 3]


def test_dask_flow_is_set_against_dask_alone(bench: dict[str, ModuleType]) -> None:
    """The Dask row on an in-process cluster: the flow's results are checked and x is
    flow / (submit + gather of the same functions)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        timings = bench["side_tideflow"].dask_vs_direct(client, 12)
    assert timings["x"] == pytest.approx(timings["total"] / timings["baseline"])
    assert timings["baseline"] > 0
    assert timings["cpu_x"] > 0


def test_executor_rows_run_several_times_per_process(bench: dict[str, ModuleType]) -> None:
    """Paired rows run all their pairs in each process, whatever the budget; short runs
    get more runs in a longer budget; tiny mode runs each once; the others are as before."""
    run, model = bench["run"], bench["_model"]
    specs = {spec.name: spec for spec in model.SPECS}
    assert run.inner(specs["processes_cpu"], model.MODES["quick"]) == ["3", "inf"]
    assert run.inner(specs["dask_unordered"], model.MODES["full"]) == ["7", "inf"]
    assert run.inner(specs["asyncio_sleep32"], model.MODES["quick"]) == ["15", "1.0"]
    assert run.inner(specs["processes_cpu"], model.MODES["tiny"]) == ["5", "0.0"]
    assert run.inner(specs["linear"], model.MODES["quick"]) == ["5", "0.3"]
    assert run.inner(specs["memory"], model.MODES["full"]) == ["1", "1.0"]
    assert {spec.name for spec in model.SPECS if spec.group == "executors"} == EXECUTORS


# -- sizes, targets, report ---------------------------------------------------------


def test_durable_sizes_per_mode(bench: dict[str, ModuleType]) -> None:
    """Full mode: TaskFlow at 100 (tideflow there too), DBOS and tideflow at 1,000;
    quick mode runs the peers smaller; tideflow-only rows never run a peer."""
    specs = {spec.name: spec for spec in bench["_model"].SPECS}
    linear = specs["durable_linear"]
    assert linear.sizes("full", "tideflow") == (100, 1000)
    assert linear.sizes("full", "taskflow") == (100,)
    assert linear.sizes("full", "dbos") == (1000,)
    assert linear.sizes("quick", "taskflow") == (50,)
    assert linear.sizes("quick", "dbos") == (50,)
    assert linear.sizes("tiny", "dbos") == (10,)
    assert specs["durable_wal"].sizes("full", "tideflow") == ()
    assert specs["durable_full"].sizes("full", "dbos") == ()
    assert specs["linear"].sizes("full", "dbos") == ()


def _results(bench: dict[str, ModuleType], totals: dict[tuple[str, str, int], float]) -> Any:
    """Results holding one sample of ``total`` per (workload, side, N)."""
    cell = bench["_model"].Cell
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for (name, side, n), total in totals.items():
        results.setdefault(name, {}).setdefault(n, {})[side] = cell(samples=[{"total": total}])
    return results


def test_durable_targets_are_per_task_ratios(bench: dict[str, ModuleType]) -> None:
    """Each durable target is judged per task, each side at the largest N it ran."""
    results = _results(
        bench,
        {
            ("durable_linear", "tideflow", 1000): 0.050,  # 50 µs/task
            ("durable_linear", "taskflow", 100): 5.0,  # 50,000 µs/task: 1,000x
            ("durable_linear", "dbos", 1000): 10.0,  # 10 ms/step: 200x
            ("durable_wal", "dbos", 1000): 2.0,  # 2 ms/step: 40x
            ("durable_memory", "tideflow", 1000): 0.005,  # 5 µs/task: WAL is 10x
            ("durable_full", "tideflow", 1000): 1.5,  # 1.5 ms: ahead of 2 ms
        },
    )
    verdicts = bench["_targets"].durable(results)
    assert [v.status for v in verdicts] == ["PASS"] * 5
    assert verdicts[0].value == "50 µs/task"
    assert verdicts[1].value == "1,000x"
    assert verdicts[1].note == "TaskFlow at N=100"
    assert verdicts[2].value == "40x vs WAL, 200x vs default journal"
    assert verdicts[3].value == "10.0x"
    assert verdicts[4].value == "1.33x vs WAL, 6.67x vs default journal"


def test_durable_targets_miss_and_missing_sides(bench: dict[str, ModuleType]) -> None:
    """A slow store misses; a side that did not run is 'no data', not a pass."""
    results = _results(
        bench,
        {
            ("durable_linear", "tideflow", 1000): 0.5,  # 500 µs/task
            ("durable_wal", "dbos", 1000): 2.0,  # 4x only
            ("durable_memory", "tideflow", 1000): 0.005,  # 100x memory
            ("durable_full", "tideflow", 1000): 3.0,  # behind DBOS in WAL mode
        },
    )
    verdicts = bench["_targets"].durable(results)
    assert [v.status for v in verdicts] == ["MISS", "no data", "MISS", "MISS", "MISS"]
    assert "TaskFlow" in verdicts[1].note
    assert bench["_targets"].durable({})[0].status == "not run"  # not selected: not shown
    failed = bench["_model"].Cell(status="error", note="boom")
    verdicts = bench["_targets"].durable({"durable_linear": {1000: {"tideflow": failed}}})
    assert {v.status for v in verdicts} == {"no data"}


def test_durable_table_lists_each_side_store(bench: dict[str, ModuleType]) -> None:
    """The durable table names each side's store and relates its cost to tideflow WAL."""
    results = _results(
        bench,
        {
            ("durable_linear", "tideflow", 1000): 0.050,
            ("durable_linear", "dbos", 1000): 10.0,
            ("durable_wal", "dbos", 1000): 2.0,
        },
    )
    specs = [s for s in bench["_model"].SPECS if s.name in results]
    rows = bench["_report"].durable_rows(specs, results)
    by_store = {row[1]: row for row in rows[1:]}
    assert by_store["SQLite WAL, synchronous=NORMAL (default)"][4:6] == ["50", "1x"]
    assert by_store["SQLite, journal_mode=WAL"][0] == "DBOS"
    assert by_store["SQLite, journal_mode=WAL"][4:6] == ["2,000", "40x"]
    assert by_store["SQLite, its default journal (delete)"][5] == "200x"


def _executor_results(bench: dict[str, ModuleType], samples: dict[tuple[str, str], Any]) -> Any:
    """Results holding one sample per (workload, side), at the target's N."""
    sizes = {"asyncio_sleep": 1000, "processes_cpu": 8, "dask_unordered": 200}
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for (name, side), sample in samples.items():
        cell = bench["_model"].Cell(samples=[sample])
        results.setdefault(name, {}).setdefault(sizes.get(name, 32), {})[side] = cell
    return results


def test_executor_targets(bench: dict[str, ModuleType]) -> None:
    """Each executor target is judged on the median x (or the 1,000 sleeps' total)."""
    sleeps = {"total": 0.208, "baseline": 0.2, "x": 1.04}
    results = _executor_results(
        bench,
        {
            ("parallel_sleep", "tideflow"): sleeps,
            ("parallel_sleep", "taskflow"): {"total": 1.22, "baseline": 0.2, "x": 6.1},
            ("asyncio_sleep32", "tideflow"): {"total": 0.055, "baseline": 0.05, "x": 1.1},
            ("asyncio_pool_sleep", "tideflow"): sleeps,
            ("asyncio_sleep", "tideflow"): {"total": 0.12, "baseline": 0.05, "x": 2.4},
            ("processes_cpu", "tideflow"): {
                "total": 1.0,
                "baseline": 1.6,
                "x": 1.6,
                "cpus": 1.5,
                "serial_cpus": 0.95,
                "task_cpu_x": 1.05,
                "pool_x": 1.65,
            },
            ("dask_unordered", "tideflow"): {"total": 0.25, "baseline": 0.2, "x": 1.25},
        },
    )
    verdicts = bench["_targets"].executors(results)
    assert [v.status for v in verdicts] == ["PASS", "MISS", "PASS", "PASS", "MISS", "PASS"]
    assert verdicts[0].value == "1.040x of 200 ms"
    assert verdicts[0].note == "TaskFlow 6.10x of 200 ms"
    assert verdicts[1].value == "1.100x of 50 ms"
    assert verdicts[3].value == "120 ms"
    assert verdicts[4].value == "1.60x (1.60 s serial, 1.00 s)"
    assert verdicts[4].note == (
        "a plain ProcessPoolExecutor: 1.65x; CPUs the tasks got: 0.95 serial, 1.50 on "
        "processes; their CPU time 1.05x serial's"
    )
    assert verdicts[5].value == "1.25x (250 ms vs 200 ms)"
    assert {v.status for v in bench["_targets"].executors({})} == {"not run"}


def test_executor_table_shows_each_run_against_its_baseline(
    bench: dict[str, ModuleType],
) -> None:
    """One row per executor run: time, baseline, x (a speedup says 'faster'), load."""
    cell = bench["_model"].Cell
    results = _executor_results(
        bench,
        {
            ("processes_cpu", "tideflow"): {"total": 1.0, "baseline": 1.8, "x": 1.8, "load1": 4.5},
            ("processes_cpu", "taskflow"): {},
            ("parallel_sleep", "tideflow"): {"total": 0.21, "baseline": 0.2, "x": 1.05},
            ("parallel_sleep", "taskflow"): {"total": 1.2, "baseline": 0.2, "x": 6.0},
        },
    )
    results["processes_cpu"][8]["taskflow"] = cell(status="n/a", note="removed")
    specs = [s for s in bench["_model"].SPECS if s.name in results]
    rows = {row[0]: row for row in bench["_report"].executor_rows(specs, results)[1:]}
    sleeps = rows["50ms sleeps, 8 threads"]
    assert sleeps[2:8] == ["210 ms", "ideal 200 ms", "1.050x", "1.2 s", "6.000x", "5.71x faster"]
    cpu = rows["CPU-bound, processes"]
    assert cpu[2:6] == ["1 s", "serial 1.8 s", "1.80x faster", "n/a"]
    assert cpu[8:] == ["4.5", "1/0"]


# -- the peers' venvs ---------------------------------------------------------------


def test_a_ready_venv_is_used_as_is(
    bench: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv whose marker lists exactly the requirements is reused; nothing runs."""
    run = bench["run"]
    venv = run.Venv("DBOS", tmp_path / "venv", ("dbos==3.4.0",), "BENCH_TEST_UNSET")
    (venv.path / "bin").mkdir(parents=True)
    (venv.path / "bin" / "python").touch()
    (venv.path / ".bench-ready").write_text("dbos==3.4.0")
    monkeypatch.setitem(run.VENVS, "dbos", venv)
    monkeypatch.delenv("BENCH_TEST_UNSET", raising=False)
    monkeypatch.setattr(run.subprocess, "run", pytest.fail)
    assert run.side_python("dbos") == str(venv.path / "bin" / "python")


def test_a_venv_that_cannot_be_made_skips_its_side(
    bench: dict[str, ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stale marker means reinstall; a failed install warns and skips that side."""
    run = bench["run"]
    venv = run.Venv("DBOS", tmp_path / "venv", ("dbos==3.4.0",), "BENCH_TEST_UNSET")
    (venv.path / "bin").mkdir(parents=True)
    (venv.path / "bin" / "python").touch()
    (venv.path / ".bench-ready").write_text("dbos==3.3.0")
    monkeypatch.setitem(run.VENVS, "dbos", venv)
    monkeypatch.delenv("BENCH_TEST_UNSET", raising=False)
    calls: list[list[str]] = []

    def failing(args: list[str], **_kwargs: Any) -> None:
        calls.append(args)
        raise subprocess.CalledProcessError(1, args)

    monkeypatch.setattr(run.subprocess, "run", failing)
    assert run.side_python("dbos") is None
    assert calls[0][1:3] == ["-m", "venv"]
    out = capsys.readouterr().out
    assert "WARNING: could not create" in out
    assert "DBOS side skipped" in out


# -- the job-board group (python -m bench --only jobs) ---------------------------------


@pytest.fixture
def jobs_bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The job-board group's runner module."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench.jobs")


def _jobs_results(jobs: ModuleType, rates: dict[str, float]) -> Any:
    """Results holding one sample of ``jobs_per_s`` per named row."""
    from bench._model import Cell

    results = jobs.JobsResults(mode="tiny", jobs=100)
    for name, per_s in rates.items():
        sample = {"jobs_per_s": per_s, "commits_per_job": 2.0, "load1": 1.0}
        results.cells[name] = Cell(samples=[sample])
    return results


def test_jobs_targets_are_ratios_to_the_floor_and_the_peers(jobs_bench: ModuleType) -> None:
    """The board passes within 1.5x of the floor; the peers are judged against the
    conductors' no-op row; 3-atom jobs against 500/s; latency p99 against 50 ms."""
    results = _jobs_results(
        jobs_bench,
        {
            "floor": 3000.0,
            "board": 2100.0,  # 1.43x the floor's cost
            "conductor": 1000.0,
            "conductor3": 400.0,
            "pgqueuer": 1200.0,
            "procrastinate": 500.0,
        },
    )
    results.latencies = [i / 1000 for i in range(1, 101)]  # 1..100 ms: p99 = 99 ms
    verdicts = {v.target.split(",")[0].split(" <=")[0]: v for v in jobs_bench.judge(results)}
    board = verdicts["jobs: board per-job cost"]
    assert (board.status, board.value) == ("PASS", "1.43x (2,100 vs 3,000 jobs/s)")
    assert verdicts["jobs: conductors"].status == "MISS"
    assert verdicts["jobs: conductors"].value == "400 jobs/s"
    latency = verdicts["jobs: post-to-start p99"]
    assert (latency.status, latency.value) == ("MISS", "99.0 ms (p50 50.0 ms)")
    pgq = verdicts["jobs: tideflow faster than PgQueuer on no-op jobs"]
    assert (pgq.status, pgq.value) == ("MISS", "0.83x (1,000 vs 1,200 jobs/s)")
    assert pgq.note == "conductors"
    proc = verdicts["jobs: tideflow faster than procrastinate on no-op jobs"]
    assert (proc.status, proc.value) == ("PASS", "2.00x (1,000 vs 500 jobs/s)")


def test_jobs_targets_without_conductors_or_peers(jobs_bench: ModuleType) -> None:
    """Without a conductor row the board stands in against the peers (and says so); a
    peer without a venv is 'missing', and the board over 1.5x the floor misses."""
    from bench._model import Cell

    results = _jobs_results(jobs_bench, {"floor": 3000.0, "board": 1000.0, "pgqueuer": 500.0})
    results.cells["conductor"] = Cell(status="not available yet")
    results.cells["procrastinate"] = Cell(status="missing", note="no venv")
    verdicts = jobs_bench.judge(results)
    by_status = {v.target: (v.status, v.value, v.note) for v in verdicts}
    assert by_status["jobs: board per-job cost <= 1.5x the floor's (4 processes)"] == (
        "MISS",
        "3.00x (1,000 vs 3,000 jobs/s)",
        "",
    )
    pgq = by_status["jobs: tideflow faster than PgQueuer on no-op jobs"]
    assert pgq[:2] == ("PASS", "2.00x (1,000 vs 500 jobs/s)")
    assert "board" in pgq[2]
    assert by_status["jobs: tideflow faster than procrastinate on no-op jobs"][:1] == ("missing",)
    latency = next(v for v in verdicts if "post-to-start" in v.target)
    assert latency.status == "not available yet"


def test_jobs_table_gives_each_row_as_a_ratio_to_the_floor(jobs_bench: ModuleType) -> None:
    """The table: jobs/s, µs per job and the cost relative to the floor, per system."""
    results = _jobs_results(jobs_bench, {"floor": 4000.0, "board": 2000.0})
    rows = {row[0]: row for row in jobs_bench.table(results)[1:]}
    assert rows["floor: bare claim loop"][2:6] == ["4,000", "250", "1.00x", "2.00"]
    assert rows["tideflow board"][2:5] == ["2,000", "500", "2.00x"]
    assert jobs_bench.quantiles([0.003, 0.001, 0.002]) == {
        "p50_ms": 2.0,
        "p99_ms": 3.0,
        "max_ms": 3.0,
        "posts": 3.0,
    }
    assert jobs_bench.bench_url("postgresql+psycopg://u@h:5432/test") == (
        f"postgresql+psycopg://u@h:5432/{jobs_bench.DATABASE}"
    )


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first run creates PgQueuer's and procrastinate's venvs
def test_jobs_group_runs_every_system_on_postgresql(tmp_path: Path) -> None:
    """``python -m bench --only jobs --tiny``: every row drains its jobs (the workers'
    counts must add up to the jobs posted), the latency row runs, the JSON holds it all."""
    import os

    url = os.environ.get("TIDEFLOW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TIDEFLOW_TEST_POSTGRES_URL is not set (see .ci/services)")
    out = tmp_path / "jobs.json"
    env = {**os.environ, "BENCH_JOBS_DATABASE": "tideflow_bench_jobs_test"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "jobs", "--tiny", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "job boards on PostgreSQL" in proc.stdout
    assert "synchronous_commit=on" in proc.stdout
    data = json.loads(out.read_text())["jobs"]
    assert data["server"]["synchronous_commit"] == "on"
    rows = data["rows"]
    assert set(rows) == {"floor", "board", "conductor", "conductor3", "pgqueuer", "procrastinate"}
    for name in ("floor", "board", "conductor", "conductor3"):
        assert rows[name]["status"] == "ok", (name, rows[name])
        assert rows[name]["median"]["jobs_per_s"] > 0
        assert rows[name]["median"]["commits_per_job"] >= 1.0  # every job commits
    for peer in ("pgqueuer", "procrastinate"):
        assert rows[peer]["status"] in {"ok", "missing"}, (peer, rows[peer])
    assert data["latency"]["status"] == "ok", data["latency"]
    assert len(data["latency"]["latencies_ms"]) == 5
    assert data["counted"]["board"]["statements_per_job"] >= 2.0
    targets = [t for t in json.loads(out.read_text())["targets"] if t["target"].startswith("jobs:")]
    assert len(targets) == 5
    assert {t["status"] for t in targets} <= {"PASS", "MISS"}


def test_jobs_ratios_pair_the_rows_round_by_round(jobs_bench: ModuleType) -> None:
    """x floor is the median of each round's ratio (the load moves between rounds), not
    the ratio of the medians; rows with unequal rounds fall back to the medians."""
    from bench._model import Cell

    results = jobs_bench.JobsResults(mode="quick", jobs=100)
    floor = [100.0, 300.0, 200.0]
    board = [100.0, 100.0, 40.0]  # ratios 1, 3, 5; medians 200 / 100 = 2
    for name, rates in (("floor", floor), ("board", board), ("pgqueuer", [50.0])):
        results.cells[name] = Cell(samples=[{"jobs_per_s": r} for r in rates])
    assert jobs_bench.ratio(results, "floor", "board") == 3.0
    assert jobs_bench.ratio(results, "board", "pgqueuer") == 2.0
    results.cells["board"].status = "error"
    assert jobs_bench.ratio(results, "floor", "board") is None
