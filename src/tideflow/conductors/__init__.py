"""Conductors: processes that claim jobs from a board and run their flows.

A conductor claims the next job it may run (its factory under the board's allow-list),
holds the claim as a lease it renews every third of ``lease`` while the run goes on,
and loads the run with the claim's fencing token, so that once another conductor has
claimed the job (this one paused or cut off past its lease) this one's next write to
the run record fails and it stops. A run recorded by a previous owner is resumed from
its record: atoms recorded SUCCESS are not run again, the one caught running runs
again (at least once). Then the job is consumed (the run finished: SUCCESS, REVERTED
or FAILURE, whose outcome is in the run record), abandoned (for another try: a store
error, a stop), trashed (it can never run: factory refused or not importable, not a
flow, requirements missing) or dropped (the claim was lost: not ours any more).

::

    from tideflow.conductors import Conductor, stop_on_signals

    with Conductor("worker-1", "postgresql://.../app", "postgresql://.../app",
                   allowed=("myapp.flows",)) as conductor, stop_on_signals(conductor):
        conductor.run()

:class:`PooledConductor` runs several jobs at once, on threads or in processes. See
``docs/jobs.md`` for the whole picture.
"""

from __future__ import annotations

from tideflow.conductors._conductors import Conductor, PooledConductor
from tideflow.conductors._signals import stop_on_signals
from tideflow.conductors._work import (
    DEFAULT_CLAIM_AHEAD,
    DEFAULT_GRACE,
    DEFAULT_WAIT_TIMEOUT,
    EVENTS,
    JobOutcome,
    Statistics,
)

__all__ = [
    "DEFAULT_CLAIM_AHEAD",
    "DEFAULT_GRACE",
    "DEFAULT_WAIT_TIMEOUT",
    "EVENTS",
    "Conductor",
    "JobOutcome",
    "PooledConductor",
    "Statistics",
    "stop_on_signals",
]
