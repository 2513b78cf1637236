"""procrastinate's side of the job-board benchmark, run only by the interpreter of its venv.

Usage (as ``bench/jobs.py`` runs it; see ``_jobs_common`` for the protocol)::

    python bench/side_procrastinate.py setup URL N    # apply its schema, defer N jobs
    python bench/side_procrastinate.py work URL WHO   # one worker process: drain the queue

The job is an ``async def`` task that does nothing (a plain ``def`` task would run in a
thread). A worker is ``app.run_worker_async(wait=False)`` with procrastinate's defaults
otherwise (concurrency 1, LISTEN/NOTIFY on, finished jobs kept): it fetches one job
per call of its fetch function, and records each job's end in its own statement. With
``wait=False`` it returns once it has caught up with the queue; that is its ``end``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from importlib import metadata

import procrastinate
from _jobs_common import finish, libpq_url, ready_then_wait

DONE = [0]


def version() -> str:
    """The installed procrastinate version."""
    return metadata.version("procrastinate")


def _app(url: str) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=libpq_url(url), min_size=1, max_size=4)
    )

    @app.task(name="noop")
    async def noop() -> None:
        DONE[0] += 1

    return app


async def setup(url: str, n: int) -> None:
    """Apply procrastinate's schema and defer ``n`` no-op jobs (in batches)."""
    app = _app(url)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks["noop"]
        for start in range(0, n, 1000):
            await task.batch_defer_async(*({} for _ in range(min(1000, n - start))))


async def work(url: str, who: str) -> None:
    """Run one worker until it has caught up with the queue."""
    app = _app(url)
    async with app.open_async():
        await app.check_connection_async()
        await asyncio.to_thread(ready_then_wait)
        await app.run_worker_async(wait=False, name=who, install_signal_handlers=False)
        end = time.monotonic()
    finish(DONE[0], end)


def main(argv: list[str]) -> None:
    """Dispatch ``setup URL N``, ``work URL WHO`` or ``version``."""
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    if argv[0] == "version":
        print(version())
    elif argv[0] == "setup":
        asyncio.run(setup(argv[1], int(argv[2])))
    elif argv[0] == "work":
        asyncio.run(work(argv[1], argv[2]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}: setup, work or version")


if __name__ == "__main__":
    main(sys.argv[1:])
