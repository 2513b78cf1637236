"""The job-board benchmark's worker protocol, shared by every side (standard library only).

Each measured system runs as worker processes that the runner (``bench/jobs.py``)
starts together. A worker connects and sets itself up, prints one ``{"ready": ...}``
line, waits for one line on its standard input (the runner writes it to all the
workers at once, just after reading the clock), drains the queue, then prints one
result line::

    {"done": jobs it completed, "end": time.monotonic() when its last completion
     was committed (or when it stopped, for a system that commits completions in
     batches), "cpu": CPU seconds the process used since go, ...anything else}

``time.monotonic()`` is one clock for every process of the machine (Linux's
CLOCK_MONOTONIC), so the runner's start and the workers' ends can be compared.
Side modules are run as scripts with ``bench/`` as ``sys.path[0]``, in their own
virtual environments: this module imports nothing but the standard library.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def say(payload: dict[str, Any]) -> None:
    """Print one protocol line (JSON) and flush it."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


_CPU_AT_GO = [0.0]


def ready_then_wait(**extra: Any) -> float:
    """Tell the runner this worker is set up, block until it says go; return the time."""
    say({"ready": True, **extra})
    if not sys.stdin.readline():
        raise SystemExit("the runner closed standard input before saying go")
    _CPU_AT_GO[0] = time.process_time()
    return time.monotonic()


def finish(done: int, end: float, **extra: Any) -> None:
    """Print the worker's result line, with the CPU time this process used since go
    (``cpu``, seconds, every thread of it)."""
    say({"done": done, "end": end, "cpu": time.process_time() - _CPU_AT_GO[0], **extra})


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy's spelling) as libpq takes it."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError(f"expected a postgresql:// URL, got {url!r}")
    return f"postgresql://{rest}"
