"""Helpers of the conductor tests: where things live, conductor processes, waiting."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
ALLOWED = "conductor_flows_support"


@dataclasses.dataclass(frozen=True)
class Where:
    """A board URL and a store URL (the same database), and a scratch directory."""

    kind: str
    board: str
    store: str
    tmp: Path
    #: the board's options besides allowed= (Redis: a namespace of the test's own)
    board_options: dict[str, object] = dataclasses.field(default_factory=dict)

    @property
    def board_args(self) -> list[str]:
        """The same options, for a command line."""
        return [f"--board-option={k}={v}" for k, v in self.board_options.items()]

    @property
    def ledger(self) -> str:
        return str(self.tmp / "ledger.txt")


def env() -> dict[str, str]:
    """The environment of a conductor process: the test flows and tideflow importable."""
    paths = [str(HERE), str(SRC), os.environ.get("PYTHONPATH", "")]
    return {
        **{k: v for k, v in os.environ.items() if k not in ("TIDEFLOW_DB", "TIDEFLOW_BOARD")},
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "COLUMNS": "200",
    }


class Running:
    """A conductor process, its stderr read as it comes (so a test can wait for a line)."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self._lines.append(line)

    @property
    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return "".join(self._lines)

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the process to end: its exit code and everything it logged."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"conductor process {self.pid} still running after {timeout} s; its log:\n"
                + self.log
            ) from None
        self._reader.join(timeout)
        return code, self.log


@contextmanager
def conductor_process(where: Where, *args: str) -> Iterator[Running]:
    """``tideflow conductor`` on ``where`` in a process of its own (killed at the end if
    it is still running)."""
    popen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tideflow.cli",
            "conductor",
            "--board",
            where.board,
            "--store",
            where.store,
            "--allow",
            ALLOWED,
            *where.board_args,
            *args,
        ],
        cwd=where.tmp,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(popen)
    try:
        yield running
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait()
        running._reader.join(10)
        if popen.stderr is not None:
            popen.stderr.close()


def wait_for(
    what: str, condition: Callable[[], bool], timeout: float = 30.0, show: Sequence[Running] = ()
) -> None:
    """Poll ``condition`` until it holds (AssertionError naming ``what`` after timeout,
    with the logs of the processes in ``show``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "".join(f"\n-- conductor process {p.pid}:\n{p.log}" for p in show)
            raise AssertionError(f"timed out waiting for {what}{logs}")
        time.sleep(0.02)


def _marks(ledger: str, job: str, atom: str) -> list[str]:
    path = Path(ledger)
    lines = path.read_text().splitlines() if path.exists() else []
    prefix = f"{job}:{atom}:"
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def started(ledger: str, job: str, atom: str) -> list[int]:
    """PIDs of the processes that started ``atom`` of ``job``, in order."""
    return [int(mark) for mark in _marks(ledger, job, atom) if mark != "done"]


def finished(ledger: str, job: str, atom: str) -> int:
    """How many times ``atom`` of ``job`` returned."""
    return _marks(ledger, job, atom).count("done")


def go(ledger: str) -> None:
    """Release every atom paused on this ledger (see conductor_flows_support)."""
    Path(ledger + ".go").touch()


def steps_job(ledger: str, job: str, **extra: object) -> dict[str, object]:
    """The kwargs of a conductor_flows_support.steps job."""
    return {"job": job, "ledger": ledger, **extra}
