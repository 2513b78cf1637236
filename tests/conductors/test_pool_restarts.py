"""When a process pool starts a new worker in place of one that died, and when it stops.

The pool itself is run by tests/conductors/test_conductor_processes.py (a worker killed,
a new one started, the job resumed); these check the rule on its own, with stand-ins for
processes, so that the back-off and the give-up need not be waited for.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from dataclasses import dataclass

import pytest

from tideflow.conductors import _conductors
from tideflow.conductors._conductors import (
    RESTART_FIRST,
    RESTART_GIVE_UP,
    RESTART_MAX,
    RESTART_STABLE,
    _SharedBudget,
    _Slots,
)


@dataclass
class Gone:
    """A worker process that has ended with ``exitcode``."""

    exitcode: int
    name: str = "tideflow-c.1"
    pid: int = 0

    def start(self) -> None:
        pass

    def is_alive(self) -> bool:
        return False

    def join(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_conductors.time, "monotonic", clock)
    return clock


def slots(until_idle: bool = False) -> _Slots:
    return _Slots(2, until_idle, multiprocessing.get_context("spawn"))


def die(pool: _Slots, clock: Clock, slot: int, lived: float, code: int = -9) -> float | None:
    """Start a stand-in in ``slot``, let it live ``lived`` s and die; the restart delay."""
    child = Gone(code)
    pool.restart_at.pop(slot, None)  # its restart came due (as due() would say)
    pool.started(slot, child)
    clock.now += lived
    assert pool.ended() == [(slot, child)]
    pool.crashed(slot, child, "c", restart=True)
    due = pool.restart_at.get(slot)
    return None if due is None else due - clock.now


def test_a_dead_worker_is_restarted_sooner_the_longer_it_had_lived(clock: Clock) -> None:
    pool = slots()
    delays = [die(pool, clock, 0, 1.0) for _ in range(8)]
    assert delays == [min(RESTART_MAX, RESTART_FIRST * 2**n) for n in range(8)]
    assert delays[-1] == RESTART_MAX
    # one that lived past RESTART_STABLE starts the count again
    assert die(pool, clock, 0, RESTART_STABLE + 1) == RESTART_FIRST
    # each slot counts its own deaths
    assert die(pool, clock, 1, 1.0) == RESTART_FIRST


def test_a_restart_is_due_only_at_its_time_and_dropped_when_stopping(clock: Clock) -> None:
    pool = slots()
    die(pool, clock, 0, 1.0)
    assert pool.due(cancel=False) == []
    assert pool.busy()  # a restart to come keeps the pool's loop going
    clock.now += RESTART_FIRST
    assert pool.due(cancel=False) == [0]
    assert not pool.busy()
    die(pool, clock, 1, 1.0)
    assert pool.due(cancel=True) == []
    assert not pool.busy()


def test_until_idle_gives_a_slot_up_after_deaths_in_a_row(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    pool = slots(until_idle=True)
    with caplog.at_level(logging.WARNING, logger="tideflow.conductors"):
        delays = [die(pool, clock, 0, 1.0) for _ in range(RESTART_GIVE_UP)]
    assert None not in delays[:-1]
    assert delays[-1] is None
    assert f"{RESTART_GIVE_UP} of its processes in a row died within" in caplog.text
    assert "not started again" in caplog.text
    # without until_idle, a conductor serving for good keeps trying (at RESTART_MAX)
    serving = slots()
    assert None not in [die(serving, clock, 0, 1.0) for _ in range(RESTART_GIVE_UP + 3)]


def test_no_worker_is_started_or_restarted_once_the_pool_is_told_to_stop(clock: Clock) -> None:
    pool = slots()
    pool.stop(2.5)
    assert (pool.stopping.value, pool.grace.value) == (1, 2.5)
    pool.started(0, Gone(0))
    assert not pool.busy()
    child = Gone(-signal.SIGTERM)
    pool.live[1] = child
    pool.since[1] = clock.now
    assert pool.ended() == [(1, child)]
    pool.crashed(1, child, "c", restart=False)
    assert pool.restart_at == {}


@pytest.mark.parametrize("limit", [0, 3])
def test_a_shared_budget_gives_out_what_it_holds_and_takes_back_what_was_unused(
    limit: int,
) -> None:
    budget = _SharedBudget(multiprocessing.get_context("spawn").Semaphore(limit))
    assert budget.take_up_to(10) == limit
    assert not budget.take()
    budget.give_back(2)
    assert budget.take_up_to(10) == 2
    assert _SharedBudget(None).take_up_to(10) == 10  # no limit
