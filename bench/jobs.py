"""The job-board benchmark (``python -m bench --only jobs``): queues on PostgreSQL, side by side.

Method (also saved in the JSON):

* One PostgreSQL server (``BENCH_JOBS_POSTGRES_URL``, else ``TIDEFLOW_TEST_POSTGRES_URL``,
  else ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); every measurement gets
  a fresh database ``tideflow_bench_jobs`` on it (``BENCH_JOBS_DATABASE`` names
  another), dropped and created again, so no run inherits another's dead rows.
  ``synchronous_commit`` and ``fsync`` are read from the server and printed: every
  commit that wrote something waits for its WAL flush when both are on.
* A measurement: the system's own setup makes its queue and posts N no-op jobs
  (untimed); then ``WORKERS`` worker processes start, connect and set up, and say they
  are ready; the runner reads the clock and tells them all to go; each drains the
  queue and reports how many jobs it completed and when its last completion was
  committed. Jobs/s = N / (the last worker's end - go). The jobs the workers report
  must add up to N (a job run twice or lost fails the measurement). Commits per job
  come from the server (``pg_stat_database.xact_commit`` of the bench database, from
  go until every worker has exited; read-only ones, such as a pool's ping, count
  too), so they count the same way for every system. CPU per job: the workers'
  own (``time.process_time()`` from go to their end, all threads) and the whole
  machine's (``/proc/stat``: the server's, the workers' and any other work's).
* Rows (``bench/jobs_worker.py``, ``bench/side_pgqueuer.py``,
  ``bench/side_procrastinate.py`` say exactly what each worker does): the floor (a
  bare claim loop: one autocommit ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP
  LOCKED LIMIT 1) RETURNING`` and one autocommit ``DELETE`` per job); tideflow's SQL
  board (``claim_next`` + ``consume``); tideflow's conductors, when they exist, running
  one-task no-op jobs and three-task jobs with full run records in a PostgreSQL store;
  PgQueuer and procrastinate with their own no-op jobs, each from its own venv
  (``bench/.venv-pgqueuer``, ``bench/.venv-procrastinate``; pinned in ``run.VENVS``,
  made on first use, or the interpreters ``BENCH_PGQUEUER_PYTHON`` /
  ``BENCH_PROCRASTINATE_PYTHON`` name). Each row's cost is also given as a ratio to
  the floor's (floor jobs/s / row jobs/s, the median of the rounds' ratios).
* Rounds: every round measures every row once, in turn; the table shows medians over
  rounds (the machine is shared and noisy; the 1-minute load average is kept with
  each sample). One extra, untimed pass of the board at a small N counts what the
  board sends per job (statements, commits, connection checkouts).
* Post-to-start latency (conductors): with every conductor idle, one job is posted at
  a time; its first task appends ``time.monotonic()`` to a file as it starts; latency
  = that time - the time ``post()`` returned. p50 and p99 over the posts.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench._jobs_common import libpq_url
from bench._model import Cell
from bench._targets import Verdict

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORKERS = 4
#: The database every measurement makes afresh (and drops); the test names its own.
DATABASE = os.environ.get("BENCH_JOBS_DATABASE", "tideflow_bench_jobs")
if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", DATABASE):
    raise ValueError(f"BENCH_JOBS_DATABASE={DATABASE!r}: a plain lower-case SQL name, please")
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COUNT_N = 400  # jobs of the untimed pass that counts what the board sends

#: The targets (issue 11).
BOARD_MAX = 1.5  # the board's cost per job, at most this many times the floor's
THREE_MIN = 500.0  # jobs/s of three-atom jobs with full run records, at least
P99_MAX_MS = 50.0  # post-to-start latency p99 of idle conductors, at most


@dataclass(frozen=True)
class JobsMode:
    """How much the jobs group measures in one of the runner's modes."""

    jobs: int  # N, jobs posted per measurement
    rounds: int  # measurements per row
    posts: int  # jobs posted one at a time for the latency row
    timeout_s: float  # one measurement, at most


JOBS_MODES = {
    "full": JobsMode(10_000, 5, 200, 600.0),
    "quick": JobsMode(2_000, 3, 50, 300.0),
    "tiny": JobsMode(20, 1, 5, 120.0),
}


@dataclass(frozen=True)
class Row:
    """One system measured: who runs it, with which script and worker kind."""

    name: str
    label: str
    side: str  # "tideflow" (this interpreter) or a peer of ``run.VENVS``
    script: str  # in bench/
    kind: str = ""  # the worker kind, for bench/jobs_worker.py
    how: str = ""
    share: float = 1.0  # of the mode's N this row posts (a slow row runs fewer jobs)

    def jobs(self, n: int) -> int:
        """How many jobs this row posts when the mode's N is ``n`` (at least 5)."""
        return max(5, round(n * self.share))


ROWS = (
    Row("floor", "floor: bare claim loop", "tideflow", "jobs_worker.py", "floor",
        "1 autocommit UPDATE ... SKIP LOCKED claim + 1 autocommit DELETE per job"),
    Row("board", "tideflow board", "tideflow", "jobs_worker.py", "board",
        "SqlBoard: claim_next(who) + consume(job, who, token)"),
    Row("conductor", "tideflow conductors, no-op", "tideflow", "jobs_worker.py", "conductor",
        "Conductor.run(until_idle=True); 1 no-op task, memory:// run records"),
    Row("conductor3", "tideflow conductors, 3 atoms", "tideflow", "jobs_worker.py", "conductor3",
        "as above; 3 no-op tasks, run records in PostgreSQL (same database)", 0.2),
    Row("pgqueuer", "PgQueuer", "pgqueuer", "side_pgqueuer.py", "",
        "QueueManager, mode=drain, its defaults (batch_size=10)"),
    Row("procrastinate", "procrastinate", "procrastinate", "side_procrastinate.py", "",
        "run_worker_async(wait=False), its defaults (concurrency=1)"),
)  # fmt: skip


ROW = {row.name: row for row in ROWS}


@dataclass
class JobsResults:
    """What the jobs group measured: one cell per row, the server's settings, counts."""

    mode: str
    jobs: int
    server: dict[str, str] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    counted: dict[str, dict[str, float]] = field(default_factory=dict)
    latency: Cell | None = None
    latencies: list[float] = field(default_factory=list)  # seconds, every round's posts
    notes: list[str] = field(default_factory=list)


# -- the database --------------------------------------------------------------------------


def server_url() -> str:
    """The PostgreSQL URL the group uses to reach the server (its ``test`` database)."""
    return (
        os.environ.get("BENCH_JOBS_POSTGRES_URL")
        or os.environ.get("TIDEFLOW_TEST_POSTGRES_URL")
        or DEFAULT_URL
    )


def bench_url(url: str) -> str:
    """``url`` with its database replaced by the benchmark's own."""
    head, _, tail = url.partition("://")
    where, _, _ = tail.partition("/")
    return f"{head}://{where}/{DATABASE}"


class Server:
    """Administration of the bench database: recreate it, read settings and commits."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bench = bench_url(url)

    @contextlib.contextmanager
    def _admin(self, url: str) -> Iterator[Any]:
        import psycopg  # only when the group runs

        with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as conn:
            yield conn

    def recreate(self) -> None:
        """Drop the bench database (ending its sessions) and create it empty."""
        with self._admin(self.url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def drop(self) -> None:
        """Drop the bench database."""
        with self._admin(self.url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")

    def settings(self) -> dict[str, str]:
        """The server settings a commit's cost depends on, and its version."""
        names = ("synchronous_commit", "fsync", "wal_sync_method", "server_version")
        with self._admin(self.url) as conn:
            return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}

    def commits(self) -> int:
        """Transactions committed in the bench database so far (server statistics)."""
        with self._admin(self.url) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            return int(row[0]) if row else 0


# -- running workers -----------------------------------------------------------------------


class MeasureError(Exception):
    """A measurement failed; the message says where (a worker's last stderr line)."""


def _env(side: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if side == "tideflow":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    else:
        env.pop("PYTHONPATH", None)  # a peer sees only its own venv
    return env


def _args(row: Row, command: str, url: str, arg: str) -> list[str]:
    script = str(BENCH / row.script)
    return [script, command, row.kind, url, arg] if row.kind else [script, command, url, arg]


def _tail(log: IO[str]) -> str:
    log.seek(0)
    lines = [line for line in log.read().strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output on stderr"


def _lines(proc: subprocess.Popen[str], deadline: float) -> dict[str, Any]:
    """Read the worker's next protocol line (JSON), skipping anything else it prints."""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise MeasureError(f"worker exited {proc.wait()} before reporting")
        with contextlib.suppress(json.JSONDecodeError):
            found = json.loads(line)
            if isinstance(found, dict):
                return found
    raise MeasureError("worker timed out")


def setup(python: str, row: Row, url: str, n: int, timeout: float) -> None:
    """Run the row's setup: its queue, with ``n`` jobs posted."""
    proc = subprocess.run(
        [python, *_args(row, "setup", url, str(n))],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(row.side),
        cwd=BENCH,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasureError(f"setup exited {proc.returncode}: {tail}")


class Workers:
    """``WORKERS`` worker processes of one row, started and ready; killed at exit if
    they are still running (only the processes this runner started)."""

    def __init__(
        self, python: str, row: Row, url: str, deadline: float, env: dict[str, str]
    ) -> None:
        self.deadline = deadline
        self._stack = contextlib.ExitStack()
        self.procs: list[tuple[subprocess.Popen[str], IO[str]]] = []
        try:
            for i in range(WORKERS):
                log = self._stack.enter_context(tempfile.TemporaryFile("w+"))  # noqa: SIM115
                proc = subprocess.Popen(
                    [python, *_args(row, "work", url, f"w{i}")],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    env=env,
                    cwd=BENCH,
                )
                self._stack.callback(_stop, proc)
                self.procs.append((proc, log))
            self.read()  # each says it is ready
        except BaseException as exc:
            failure = self.failure(exc)
            self._stack.close()
            raise failure from exc

    def tell(self) -> None:
        """Write one line to every worker (go, or stop)."""
        for proc, _ in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def read(self) -> list[dict[str, Any]]:
        """Every worker's next protocol line."""
        return [_lines(proc, self.deadline) for proc, _ in self.procs]

    def finish(self) -> list[dict[str, Any]]:
        """Every worker's result line, once each has exited."""
        results = self.read()
        for proc, _ in self.procs:
            proc.wait(max(1.0, self.deadline - time.monotonic()))
        return results

    def failure(self, exc: BaseException) -> MeasureError:
        """A MeasureError saying what went wrong, with the failed workers' last words."""
        tails = "; ".join(_tail(log) for proc, log in self.procs if proc.poll())
        return MeasureError(f"{exc} ({tails or 'no worker failed'})")

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()


def drain(
    python: str,
    row: Row,
    server: Server,
    n: int,
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Start ``WORKERS`` workers, say go once all are ready, and time the drain of ``n``."""
    env = {**_env(row.side), **(extra_env or {})}
    with Workers(python, row, server.bench, time.monotonic() + timeout, env) as workers:
        try:
            before = server.commits()
            busy = _machine_busy()
            go = time.monotonic()
            workers.tell()
            results = workers.finish()
            busy = _machine_busy() - busy
        except (MeasureError, subprocess.TimeoutExpired) as exc:
            raise workers.failure(exc) from exc
    commits = server.commits() - before
    done = sum(int(r["done"]) for r in results)
    if done != n:
        raise MeasureError(f"the workers completed {done} jobs, not the {n} posted")
    wall = max(float(r["end"]) for r in results) - go
    sample = {
        "jobs_per_s": n / wall,
        "wall_s": wall,
        "commits_per_job": commits / n,
        "client_cpu_us": sum(float(r["cpu"]) for r in results) / n * 1e6,
        "machine_cpu_us": busy / n * 1e6,
        "load1": os.getloadavg()[0],
    }
    for key in ("statements", "commits", "checkouts"):
        if key in results[0]:
            sample[f"{key}_per_job"] = sum(float(r[key]) for r in results) / n
    return sample


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle nor waiting on I/O), from
    ``/proc/stat``: its change over a drain is every process's CPU, the server's and any
    other work's included."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- post-to-start latency -----------------------------------------------------------------

LATENCY = Row(
    "latency", "post-to-start latency", "tideflow", "jobs_worker.py", "idle",
    "4 idle Conductor.run(); stamped 3-task jobs posted one at a time, PostgreSQL store",
)  # fmt: skip
LATENCY_GAP_S = 0.1  # at most this long between a job's end and the next post (random)


def _stamp(mark: Path, seq: int, deadline: float) -> float:
    """Wait for job ``seq``'s line in the file ``mark``; return the time it holds."""
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            for line in mark.read_text().splitlines():
                found, _, stamp = line.partition(" ")
                if found == str(seq):
                    return float(stamp)
        time.sleep(0.0005)
    raise MeasureError(f"latency job {seq} never started")


def measure_latency(
    server: Server, posts: int, timeout: float, seed: int
) -> tuple[dict[str, float], list[float]]:
    """Post ``posts`` jobs one at a time to idle conductors; latency = first task's start
    - ``post()`` returned. The next job is posted when the last one is consumed, after a
    random pause (so posts fall anywhere in the conductors' polling cycle)."""
    import random

    import tideflow.jobs  # the runner posts: only this row needs it
    from tideflow.errors import NotFoundError

    server.recreate()
    setup(sys.executable, LATENCY, server.bench, 0, timeout)
    rng = random.Random(seed)
    latencies: list[float] = []
    deadline = time.monotonic() + timeout
    board = tideflow.jobs.connect(server.bench, allowed=("bench.jobs_flows",))
    with tempfile.TemporaryDirectory() as tmp, contextlib.closing(board):
        mark = Path(tmp) / "started"
        with Workers(sys.executable, LATENCY, server.bench, deadline, _env("tideflow")) as workers:
            try:
                workers.tell()
                time.sleep(1.0)  # every conductor is in its wait loop
                for seq in range(posts):
                    time.sleep(rng.uniform(0.0, LATENCY_GAP_S))
                    job = board.post(
                        "latency",
                        "bench.jobs_flows:stamped",
                        kwargs={"mark": str(mark), "seq": seq},
                    )
                    posted = time.monotonic()
                    latencies.append(_stamp(mark, seq, deadline) - posted)
                    while time.monotonic() < deadline:
                        try:
                            board.get(job)
                        except NotFoundError:
                            break  # consumed: every conductor is idle again
                        time.sleep(0.002)
                workers.tell()  # stop
                results = workers.finish()
            except (MeasureError, subprocess.TimeoutExpired) as exc:
                raise workers.failure(exc) from exc
    done = sum(int(r["done"]) for r in results)
    if done != posts:
        raise MeasureError(f"the conductors completed {done} latency jobs, not {posts}")
    return {**quantiles(latencies), "load1": os.getloadavg()[0]}, latencies


def quantiles(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies in seconds, as milliseconds, and how many."""
    ordered = sorted(latencies)
    return {
        "p50_ms": _quantile(ordered, 0.50) * 1e3,
        "p99_ms": _quantile(ordered, 0.99) * 1e3,
        "max_ms": ordered[-1] * 1e3,
        "posts": float(len(ordered)),
    }


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _stop(proc: subprocess.Popen[str]) -> None:
    """Make sure a worker this runner started is gone (it is killed if still running)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def measure_row(python: str, row: Row, server: Server, n: int, timeout: float) -> dict[str, float]:
    """One measurement of ``row``: a fresh database, its setup, the timed drain."""
    server.recreate()
    setup(python, row, server.bench, n, timeout)
    return drain(python, row, server, n, timeout)


# -- the group -----------------------------------------------------------------------------


def peer_version(python: str, row: Row) -> str:
    """Ask a peer's side script for its library's version."""
    proc = subprocess.run(
        [python, str(BENCH / row.script), "version"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(row.side),
        cwd=BENCH,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if proc.returncode == 0 and lines else "unknown"


def measure_all(mode: str, python_for: Callable[[str], str | None]) -> JobsResults:
    """Measure every row, round by round; ``python_for(side)`` gives each side's
    interpreter (None: that side is skipped)."""
    jm = JOBS_MODES[mode]
    server = Server(server_url())
    results = JobsResults(mode=mode, jobs=jm.jobs)
    try:
        results.server = server.settings()
    except Exception as exc:  # no server: every row says why
        note = f"PostgreSQL at {server.url} unreachable: {exc}"
        results.cells = {row.name: Cell(status="missing", note=note) for row in ROWS}
        return results
    if results.server.get("synchronous_commit") != "on":
        results.notes.append(
            f"synchronous_commit is {results.server.get('synchronous_commit')!r}, not 'on': "
            "commits do not wait for the WAL flush, the figures are not comparable"
        )
    pythons: dict[str, str | None] = {"tideflow": sys.executable}
    for row in ROWS:
        if row.side not in pythons:
            pythons[row.side] = python_for(row.side)
        python = pythons[row.side]
        results.cells[row.name] = Cell(
            status="ok" if python else "missing", note="" if python else "no venv"
        )
        if row.kind.startswith("conductor") and not conductors_exist():
            results.cells[row.name] = Cell(status="not available yet")
        if python and row.side != "tideflow":
            results.versions[row.side] = peer_version(python, row)
    for round_no in range(jm.rounds):
        for row in ROWS if round_no % 2 == 0 else ROWS[::-1]:
            cell, python = results.cells[row.name], pythons[row.side]
            if cell.status != "ok" or python is None:
                continue
            n = row.jobs(jm.jobs)
            _take(cell, functools.partial(measure_row, python, row, server, n, jm.timeout_s))
            print(f"  jobs {row.name:<14} round {round_no + 1}  {cell.status}", file=sys.stderr)
    if conductors_exist():
        results.latency = Cell()
        for round_no in range(jm.rounds):
            try:
                sample, found = measure_latency(server, jm.posts, jm.timeout_s, round_no)
            except (MeasureError, subprocess.TimeoutExpired, OSError) as exc:
                results.latency.status, results.latency.note = "error", str(exc)
                break
            results.latency.samples.append(sample)
            results.latencies += found
            print(f"  jobs latency        round {round_no + 1}  ok", file=sys.stderr)
    board = next(row for row in ROWS if row.name == "board")
    if results.cells["board"].status == "ok":
        with contextlib.suppress(MeasureError, subprocess.TimeoutExpired):
            server.recreate()
            setup(sys.executable, board, server.bench, COUNT_N, jm.timeout_s)
            counted = drain(
                sys.executable, board, server, COUNT_N, jm.timeout_s, {"BENCH_JOBS_COUNT": "1"}
            )
            results.counted["board"] = counted
    with contextlib.suppress(Exception):
        server.drop()
    return results


def conductors_exist() -> bool:
    """Whether this tideflow has conductors (the rows that need them are skipped if not)."""
    return importlib.util.find_spec("tideflow.conductors") is not None


def _take(cell: Cell, measure: Callable[[], dict[str, float]]) -> None:
    """Add one sample to ``cell``, or mark it failed with the reason."""
    try:
        cell.samples.append(measure())
    except (MeasureError, subprocess.TimeoutExpired, OSError) as exc:
        cell.status, cell.note = "error", str(exc)


# -- the report ----------------------------------------------------------------------------


def rate(results: JobsResults, name: str) -> float | None:
    """The median jobs/s of a row, if it was measured."""
    cell = results.cells.get(name)
    return cell.median("jobs_per_s") if cell is not None and cell.status == "ok" else None


def ratio(results: JobsResults, top: str, bottom: str) -> float | None:
    """``top``'s jobs/s over ``bottom``'s: the median of the rounds' ratios when both rows
    ran every round (the rows of one round run minutes apart at most, so the machine's
    load moves less between them than across the run), else the ratio of the medians."""
    a, b = results.cells.get(top), results.cells.get(bottom)
    if a is None or b is None or a.status != "ok" or b.status != "ok":
        return None
    if a.samples and len(a.samples) == len(b.samples):
        pairs = zip(a.samples, b.samples, strict=True)
        return statistics.median(x["jobs_per_s"] / y["jobs_per_s"] for x, y in pairs)
    top_rate, bottom_rate = rate(results, top), rate(results, bottom)
    return top_rate / bottom_rate if top_rate and bottom_rate else None


COLUMNS = "system|how|jobs/s|µs/job|x floor|commits/job|client CPU|all CPU|load|runs"


def table(results: JobsResults) -> list[list[str]]:
    """The rows of the jobs table: each system's rate, cost per job and ratio to the floor."""
    rows = [COLUMNS.split("|")]
    for row in ROWS:
        cell = results.cells.get(row.name)
        if cell is None:
            continue
        jobs_s = rate(results, row.name)
        commits = cell.median("commits_per_job")
        load = cell.median("load1")
        rows.append(
            [
                row.label,
                row.how,
                f"{jobs_s:,.0f}" if jobs_s else cell.status,
                f"{1e6 / jobs_s:,.0f}" if jobs_s else "",
                "" if (x := ratio(results, "floor", row.name)) is None else f"{x:.2f}x",
                "" if commits is None else f"{commits:.2f}",
                *(_us(cell.median(key)) for key in ("client_cpu_us", "machine_cpu_us")),
                "" if load is None else f"{load:.1f}",
                str(len(cell.samples)),
            ]
        )
    return rows


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def report_lines(results: JobsResults) -> list[str]:
    """The jobs section of the report: the header, the table, counts and notes."""
    from bench._report import render  # _report imports nothing of ours

    settings = results.server
    versions = ", ".join(f"{side} {v}" for side, v in results.versions.items()) or "no peers"
    lines = [
        "",
        f"job boards on PostgreSQL {settings.get('server_version', '?')} "
        f"(synchronous_commit={settings.get('synchronous_commit', '?')}, "
        f"fsync={settings.get('fsync', '?')}): {WORKERS} worker processes per system, "
        f"{results.jobs:,} no-op jobs per run, median of runs; {versions}",
        f"(3-atom conductor jobs: {ROW['conductor3'].jobs(results.jobs):,} per run)",
        "x floor = the floor's jobs/s / the row's (its cost per job, relative; the median "
        "of the rounds' ratios); commits/job "
        "from the server; CPU µs per job: client = the workers' processes, all = the "
        "machine's (server and any other work included)",
        render(table(results)),
    ]
    counted = results.counted.get("board")
    if counted:
        lines.append(
            f"  the board sends per job (counted at N={COUNT_N}): "
            f"{counted.get('statements_per_job', 0):.2f} statements, "
            f"{counted.get('commits_per_job', 0):.2f} commits, "
            f"{counted.get('checkouts_per_job', 0):.2f} pool checkouts (each a ping); "
            "the floor: 2 statements, 2 commits, no ping"
        )
    if results.latencies:
        found = quantiles(results.latencies)
        lines.append(
            f"  {LATENCY.label}: p50 {found['p50_ms']:.1f} ms, p99 {found['p99_ms']:.1f} ms, "
            f"max {found['max_ms']:.1f} ms over {found['posts']:.0f} posts ({LATENCY.how})"
        )
    for name, cell in results.cells.items():
        if cell.note:
            lines.append(f"  note: jobs {name}: {cell.status}: {cell.note}")
    lines += [f"  note: {note}" for note in results.notes]
    return lines


def judge(results: JobsResults) -> list[Verdict]:
    """The jobs targets: the board within 1.5x of the floor per job; conductors running
    three-atom jobs at 500/s and starting an idle one's job within 50 ms (p99); the
    peers beaten (by the conductors on no-op jobs, else by the board)."""
    verdicts = []
    floor, board = rate(results, "floor"), rate(results, "board")
    target = f"jobs: board per-job cost <= {BOARD_MAX}x the floor's (4 processes)"
    if floor and board and (x := ratio(results, "floor", "board")):
        value = f"{x:.2f}x ({board:,.0f} vs {floor:,.0f} jobs/s)"
        verdicts.append(Verdict(target, value, _pass(x <= BOARD_MAX)))
    else:
        verdicts.append(_unjudged(results, target, "board"))
    three = rate(results, "conductor3")
    target = f"jobs: conductors, 3-atom jobs with run records >= {THREE_MIN:.0f}/s"
    if three:
        verdicts.append(Verdict(target, f"{three:,.0f} jobs/s", _pass(three >= THREE_MIN)))
    else:
        verdicts.append(_unjudged(results, target, "conductor3"))
    target = f"jobs: post-to-start p99 <= {P99_MAX_MS:.0f} ms, idle conductors"
    if results.latencies:
        found = quantiles(results.latencies)
        value = f"{found['p99_ms']:.1f} ms (p50 {found['p50_ms']:.1f} ms)"
        note = f"{found['posts']:.0f} posts, max {found['max_ms']:.1f} ms"
        verdicts.append(Verdict(target, value, _pass(found["p99_ms"] <= P99_MAX_MS), note))
    elif results.latency is not None:
        verdicts.append(Verdict(target, "", results.latency.status, results.latency.note))
    else:
        verdicts.append(Verdict(target, "", "not available yet", "no tideflow.conductors"))
    name, who = "conductor", "conductors"
    if not rate(results, name):
        name, who = "board", "board claim_next + consume (no conductor row)"
    ours = rate(results, name)
    for peer, label in (("pgqueuer", "PgQueuer"), ("procrastinate", "procrastinate")):
        theirs = rate(results, peer)
        target = f"jobs: tideflow faster than {label} on no-op jobs"
        if ours and theirs and (x := ratio(results, name, peer)):
            value = f"{x:.2f}x ({ours:,.0f} vs {theirs:,.0f} jobs/s)"
            verdicts.append(Verdict(target, value, _pass(x > 1), who))
        else:
            verdicts.append(_unjudged(results, target, peer))
    return verdicts


def _pass(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _unjudged(results: JobsResults, target: str, name: str) -> Verdict:
    cell = results.cells.get(name)
    if cell is None:
        return Verdict(target, "", "no data")
    return Verdict(target, "", cell.status if cell.status != "ok" else "no data", cell.note)


def to_json(results: JobsResults) -> dict[str, Any]:
    """The jobs section of the JSON document."""
    return {
        "mode": results.mode,
        "jobs": results.jobs,
        "workers": WORKERS,
        "server": results.server,
        "versions": results.versions,
        "rows": {
            row.name: {
                "label": row.label,
                "how": row.how,
                "jobs": row.jobs(results.jobs),
                "status": cell.status,
                "note": cell.note,
                "median": {
                    key: cell.median(key) for key in sorted({k for s in cell.samples for k in s})
                },
                "samples": cell.samples,
            }
            for row in ROWS
            if (cell := results.cells.get(row.name)) is not None
        },
        "counted": results.counted,
        "latency": None
        if results.latency is None
        else {
            "status": results.latency.status,
            "note": results.latency.note,
            "rounds": results.latency.samples,
            "all": quantiles(results.latencies) if results.latencies else None,
            "latencies_ms": [x * 1e3 for x in results.latencies],
        },
        "notes": results.notes,
        "method": __doc__,
    }
