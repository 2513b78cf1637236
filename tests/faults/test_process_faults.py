"""Faults of the processes executor: workers that die mid-task, tasks that cannot travel.

A dead worker must become a Failure for its atom and a normal revert, never a hang;
the run goes on on a fresh pool, and the engine runs again afterwards. Tasks are
defined at the top level of this module: worker processes import it by name.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

import tideflow
from tideflow import AtomState, LinearFlow, Task, UnorderedFlow, WrappedFailure
from tideflow.errors import InvalidArgumentError

pytestmark = pytest.mark.timeout(90)


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _exit() -> None:
    os._exit(3)


def _segfault() -> None:
    ctypes.string_at(0)


DEATHS: dict[str, Callable[[], None]] = {
    "sigkill": _sigkill,
    "os._exit": _exit,
    "segfault": _segfault,
}


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30.0
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


class DiesOnce(Task):
    """Dies the way it is told the first time it runs (a marker file says it did).

    With ``after``, it first waits until the atom of that name has started.
    """

    def __init__(self, name: str, death: str, after: str | None = None) -> None:
        super().__init__(name)
        self.death = death
        self.after = after

    def execute(self, where: str) -> str:
        marker = Path(where) / f"{self.name}.died"
        if not marker.exists():
            if self.after is not None:
                _wait_for(Path(where) / f"{self.after}.started")
            marker.write_text(str(os.getpid()))
            DEATHS[self.death]()
        return "lived"


class Recorded(Task):
    """Writes a line for each call, in whichever process it runs."""

    def execute(self, where: str) -> int:
        with (Path(where) / "journal").open("a") as journal:
            journal.write(f"execute {self.name} {os.getpid()}\n")
        return os.getpid()

    def revert(self, where: str, **kwargs: Any) -> int:
        with (Path(where) / "journal").open("a") as journal:
            journal.write(f"revert {self.name} {os.getpid()}\n")
        return os.getpid()


class Stuck(Recorded):
    """Runs until ``dies`` has died (and long after): its pool stops it first."""

    def execute(self, where: str) -> int:
        (Path(where) / f"{self.name}.started").write_text(str(os.getpid()))
        _wait_for(Path(where) / "dies.died")
        time.sleep(30.0)
        return super().execute(where)


class HoldsLock(Task):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.guard = threading.Lock()

    def execute(self) -> None:
        return None


def _journal(where: Path) -> list[str]:
    path = where / "journal"
    return (
        [" ".join(line.split()[:2]) for line in path.read_text().splitlines()]
        if path.exists()
        else []
    )


def _load(flow: Any, where: Path, **options: Any) -> tideflow.Engine:
    options.setdefault("executor", "processes")
    options.setdefault("max_workers", 2)
    return tideflow.load(flow, store={"where": str(where)}, engine="parallel", **options)


@pytest.mark.parametrize("death", list(DEATHS))
def test_a_dead_worker_fails_its_atom_reverts_and_the_engine_runs_again(
    tmp_path: Path, death: str
) -> None:
    engine = _load(LinearFlow("f").add(Recorded("before"), DiesOnce("dies", death)), tmp_path)
    began = time.monotonic()
    with pytest.raises(BrokenProcessPool, match="atom 'dies': the worker process running it died"):
        engine.run()
    assert time.monotonic() - began < 60  # never a hang
    storage = engine.storage
    assert storage.get_atom_state("dies") == AtomState.REVERTED
    assert storage.get_atom_state("before") == AtomState.REVERTED
    assert storage.get_execute_failures()["dies"].check(BrokenProcessPool)
    # the revert ran on the fresh pool, in a process other than the dead one
    assert _journal(tmp_path) == ["execute before", "revert before"]
    dead = int((tmp_path / "dies.died").read_text())
    assert storage.get_revert_result("before") not in (dead, os.getpid())
    engine.run()  # the next run on the same engine works
    assert storage.fetch("where") == str(tmp_path)
    assert storage.get_execute_result("dies") == "lived"
    assert _journal(tmp_path)[2:] == ["execute before"]


def test_calls_lost_with_the_pool_are_failures_naming_every_one(tmp_path: Path) -> None:
    # both are surely running when one worker dies: dies waits for slow to start
    flow = UnorderedFlow("f").add(Stuck("slow"), DiesOnce("dies", "sigkill", after="slow"))
    engine = _load(flow, tmp_path)
    began = time.monotonic()
    with pytest.raises(WrappedFailure) as caught:
        engine.run()
    # heard of at once (CPython's pool can miss a worker it started late: tideflow wakes
    # it), not only when slow's 30 s are over
    assert time.monotonic() - began < 20
    messages = sorted(failure.exception_str for failure in caught.value)
    assert len(messages) == 2
    for message in messages:
        assert "a worker process of its pool died" in message
        assert "['dies', 'slow']" in message
    assert messages[0].startswith("atom 'dies'")
    assert messages[1].startswith("atom 'slow'")
    # the slow one never finished (its worker was stopped with the pool): nothing to undo
    # but its revert is still called, as for any failed atom, on a live pool
    assert engine.storage.get_atom_state("slow") == AtomState.REVERTED
    assert "revert slow" in _journal(tmp_path)


def test_a_broken_user_pool_is_replaced_for_the_rest_of_the_run(tmp_path: Path) -> None:
    pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        engine = _load(
            LinearFlow("f").add(Recorded("before"), DiesOnce("dies", "sigkill")),
            tmp_path,
            executor=pool,
        )
        with pytest.raises(BrokenProcessPool):
            engine.run()
        assert engine.storage.get_atom_state("before") == AtomState.REVERTED
        assert _journal(tmp_path) == ["execute before", "revert before"]
        with pytest.raises(BrokenProcessPool):
            pool.submit(os.getpid)  # the user's pool is broken, and left as it is
        engine.run()  # a pool of the engine's own runs what the user's cannot
        assert engine.storage.get_execute_result("dies") == "lived"
    finally:
        pool.shutdown()


def test_a_task_that_cannot_be_pickled_fails_before_anything_runs(tmp_path: Path) -> None:
    engine = _load(LinearFlow("f").add(Recorded("before"), HoldsLock("held")), tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"atom 'held'.*'guard' \(lock\)"):
        engine.run()
    assert _journal(tmp_path) == []  # nothing ran
    assert engine.storage.get_atom_state("before") == AtomState.PENDING
    assert engine.storage.get_flow_state() == tideflow.FlowState.PENDING


def test_a_lambda_task_is_refused_naming_it(tmp_path: Path) -> None:
    functor = tideflow.FunctorTask(lambda where: 1, name="lambda")
    engine = _load(LinearFlow("f").add(Recorded("before"), functor), tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"atom 'lambda'.*'_execute' \(function\)"):
        engine.run()
    assert _journal(tmp_path) == []
