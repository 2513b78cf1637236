"""PgQueuer's side of the job-board benchmark, run only by the interpreter of its own venv.

Usage (as ``bench/jobs.py`` runs it; see ``_jobs_common`` for the protocol)::

    python bench/side_pgqueuer.py setup URL N    # install its schema, enqueue N jobs
    python bench/side_pgqueuer.py work URL WHO   # one worker process: drain the queue

The job is an ``async def`` entrypoint that does nothing (PgQueuer's entrypoints are
coroutines). A worker is one ``QueueManager`` on one psycopg connection, run with
``mode=drain`` and PgQueuer's defaults otherwise: it dequeues up to ``batch_size=10``
jobs per query and writes their completions in batches (a buffer of up to 10 per flush),
so its commits per job are fewer than one claim plus one completion. A worker's ``end``
is when ``run()`` returned: the queue was empty and its last completions were flushed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from importlib import metadata

import psycopg
from _jobs_common import finish, libpq_url, ready_then_wait
from pgqueuer import PsycopgDriver, Queries, QueueManager
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "noop"


def version() -> str:
    """The installed PgQueuer version."""
    return metadata.version("pgqueuer")


async def _connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True)


async def setup(url: str, n: int) -> None:
    """Install PgQueuer's schema and enqueue ``n`` no-op jobs (one batched call)."""
    conn = await _connect(url)
    try:
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        if n:
            await queries.enqueue([ENTRYPOINT] * n, [None] * n, [0] * n)
    finally:
        await conn.close()


async def work(url: str, who: str) -> None:
    """Run one queue manager in drain mode, counting the jobs it ran."""
    del who  # PgQueuer names its managers itself
    conn = await _connect(url)
    done = 0
    try:
        manager = QueueManager(Queries(PsycopgDriver(conn)))

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            nonlocal done
            done += 1

        await asyncio.to_thread(ready_then_wait)
        await manager.run(mode=QueueExecutionMode.drain)
        end = time.monotonic()
    finally:
        await conn.close()
    finish(done, end)


def main(argv: list[str]) -> None:
    """Dispatch ``setup URL N``, ``work URL WHO`` or ``version``."""
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
