"""Dask workers lost mid-task: the atom fails (and is reverted, or retried), never re-run silently.

One ``LocalCluster`` of two worker processes, each under a nanny that starts a fresh
worker when its worker dies, serves the module; each test waits for both workers to be
back before it starts. A task reports where it runs through files in the test's own
folder (the workers are processes of this machine).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

import tideflow  # noqa: E402
from tideflow import LinearFlow, Task, UnorderedFlow  # noqa: E402
from tideflow.executors.dask import WorkerLostError  # noqa: E402


@pytest.fixture(scope="module")
def cluster_client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture
def client(cluster_client: Any) -> Any:
    """The module's client, with both workers up (a test before may have killed one)."""
    cluster_client.wait_for_workers(2, timeout=60)
    return cluster_client


def load(flow: Any, client: Any, store: dict[str, Any] | None = None) -> Any:
    return tideflow.load(flow, store=store, engine="parallel", executor=client)


def _here() -> str:
    return str(distributed.get_worker().address)


class DiesOnce(Task):
    """The first time, dies mid-task (killed, or closing its worker); after that, succeeds.

    Every start is written down (``<name>.runs``), with the worker it ran on.
    """

    def __init__(self, name: str, how: str = "kill") -> None:
        super().__init__(name, provides=name)
        self.how = how

    def execute(self, where: str) -> str:
        folder = Path(where)
        first = not (folder / f"{self.name}.died").exists()
        with (folder / f"{self.name}.runs").open("a") as runs:
            runs.write(f"{_here()}\n")
        if first:
            (folder / f"{self.name}.died").write_text(_here())
            time.sleep(0.3)  # mid-task: its start has long been announced
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            else:
                worker = distributed.get_worker()
                worker.loop.add_callback(worker.close, reason="closed by the test")
                time.sleep(30)
        return _here()

    def revert(self, where: str, **kwargs: Any) -> None:
        with (Path(where) / f"{self.name}.reverted").open("a") as reverted:
            reverted.write(f"{_here()}\n")


class Fine(Task):
    def execute(self) -> int:
        return os.getpid()

    def revert(self, **kwargs: Any) -> int:
        return os.getpid()


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _settle(client: Any, seconds: float = 1.0) -> None:
    """Let a second start of the lost call (Dask's own retry) finish before looking."""
    time.sleep(seconds)
    client.wait_for_workers(2, timeout=60)


def test_a_worker_killed_mid_task_fails_the_atom_and_the_run_reverts(
    client: Any, tmp_path: Path
) -> None:
    flow = UnorderedFlow("f").add(Fine("fine"), DiesOnce("dies"))
    engine = load(flow, client, {"where": str(tmp_path)})
    with pytest.raises(WorkerLostError, match="atom 'dies': the Dask worker running it"):
        engine.run()
    died_on = (tmp_path / "dies.died").read_text()
    failure = engine.storage.get_execute_failures()["dies"]
    assert died_on in failure.exception_str
    for name in ("fine", "dies"):
        assert engine.storage.get_atom_state(name) == tideflow.AtomState.REVERTED
    assert len(_lines(tmp_path / "dies.reverted")) == 1  # reverted once, on a worker
    _settle(client)
    # Dask's default allowed-failures started it again on another worker: that second
    # start failed the atom at once (its outcome is ignored), it did not go unnoticed
    runs = _lines(tmp_path / "dies.runs")
    assert runs[0] == died_on
    assert len(runs) <= 2


def test_with_no_allowed_failures_dask_gives_up_and_nothing_runs_again(
    client: Any, tmp_path: Path
) -> None:
    before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)

    def allow(count: int) -> None:
        def set_on(dask_scheduler: Any) -> None:
            dask_scheduler.allowed_failures = count

        client.run_on_scheduler(set_on)

    allow(0)
    try:
        engine = load(LinearFlow("f").add(DiesOnce("dies")), client, {"where": str(tmp_path)})
        with pytest.raises(WorkerLostError, match="Dask gave up on it") as caught:
            engine.run()
        assert "KilledWorker" in str(caught.value)
        assert engine.storage.get_atom_state("dies") == tideflow.AtomState.REVERTED
        _settle(client)
        assert len(_lines(tmp_path / "dies.runs")) == 1  # run once, never again
    finally:
        allow(before)


def test_a_retry_controller_retries_a_lost_call_on_another_worker(
    client: Any, tmp_path: Path
) -> None:
    flow = LinearFlow("f", retry=tideflow.Times(3, name="again")).add(
        Fine("fine", provides="pid"), DiesOnce("dies")
    )
    engine = load(flow, client, {"where": str(tmp_path)})
    engine.run()
    died_on = (tmp_path / "dies.died").read_text()
    finished_on = engine.storage.fetch("dies")
    assert finished_on != died_on  # that worker is gone (its nanny started a new one)
    assert len(_lines(tmp_path / "dies.reverted")) == 1  # undone before the retry
    assert engine.storage.get_atom_state("dies") == tideflow.AtomState.SUCCESS
    history = engine.storage.get_retry_history("again")
    assert len(history) == 2
    ((name, failure),) = history.outcomes_iter(0)
    assert name == "dies"
    assert failure.check(WorkerLostError)


def test_a_worker_closed_mid_task_fails_the_atom(client: Any, tmp_path: Path) -> None:
    flow = LinearFlow("f").add(DiesOnce("dies", how="close"))
    engine = load(flow, client, {"where": str(tmp_path)})
    with pytest.raises(WorkerLostError, match="atom 'dies'"):
        engine.run()
    assert engine.storage.get_atom_state("dies") == tideflow.AtomState.REVERTED
    assert len(_lines(tmp_path / "dies.reverted")) == 1
