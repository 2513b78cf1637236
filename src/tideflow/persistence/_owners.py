"""Owner tokens: which engine runs a flow record now (``host:pid:number``).

Kept apart from the record rows so that the core (memory store, storage) can use them
without importing what durable stores need (json, the codec).
"""

from __future__ import annotations

import itertools
import os
import platform
from typing import Final

__all__ = ["describe_owner", "new_owner", "owner_is_stale", "retire_owner"]


_HOST: Final = os.uname().nodename if hasattr(os, "uname") else platform.node()


_RUN_COUNTER: Final = itertools.count(int.from_bytes(os.urandom(4), "big"))


#: Tokens of this process that still stand for an engine run (until retire_owner()).
_LIVE: Final[set[str]] = set()


def new_owner() -> str:
    """A token naming one engine run: ``host:pid:number``, unique among live processes.

    The number starts at random in each process (so a process that reuses a dead one's
    pid does not reuse its tokens) and counts up: cheaper than fresh randomness per run.
    The token stands for a live run until :func:`retire_owner`.
    """
    token = f"{_HOST}:{os.getpid()}:{next(_RUN_COUNTER)}"
    _LIVE.add(token)
    return token


def retire_owner(owner: str) -> None:
    """Say the run ``owner`` stood for is over in this process, whatever the store knows.

    A claim the store still holds for it (its release failed: the store was down) is
    then stale, so this process can resume the run.
    """
    _LIVE.discard(owner)


def owner_is_stale(owner: str) -> bool:
    """Say whether ``owner`` was an engine of a process on this host that has died, or
    a run of this process that is over.

    An owner on another host cannot be checked from here; it is never stale by this
    test (job boards add leases for that case).
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE  # ours: stale once its run is over
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers kill(0): it is dead all the same."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


def describe_owner(owner: str) -> str:
    """``owner`` in words: the host and process id that hold the run."""
    host, _, rest = owner.partition(":")
    return f"process {rest.partition(':')[0]} on host {host}"
