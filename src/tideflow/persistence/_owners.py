"""Owner tokens: which engine runs a flow record now (``host:pid:number``).

An engine run from a job board's claim carries that claim's *fence* — the job's key
and the claim's fencing token — in its owner token: ``host:pid:number#token@key``.
Fences decide between owners where processes cannot be checked (another host, or a
process paused past its lease): an owner fenced with a higher token of the same key
takes the record over from a lower one, alive or not, and never the other way round.
When a fenced run ends, its owner is replaced by a *tombstone* ``#token@key`` rather
than cleared, so a stale claimant with a lower token cannot claim the finished record
either.

Kept apart from the record rows so that the core (memory store, storage) can use them
without importing what durable stores need (json, the codec).
"""

from __future__ import annotations

import itertools
import os
import platform
from typing import Final

__all__ = [
    "check_fence",
    "describe_owner",
    "fence_of",
    "may_take_over",
    "new_owner",
    "owner_is_stale",
    "released",
    "retire_owner",
]


_HOST: Final = os.uname().nodename if hasattr(os, "uname") else platform.node()


_RUN_COUNTER: Final = itertools.count(int.from_bytes(os.urandom(4), "big"))


#: Tokens of this process that still stand for an engine run (until retire_owner()).
_LIVE: Final[set[str]] = set()


def check_fence(fence: object) -> tuple[str, int]:
    """``fence`` as ``(key, token)``, or TypeError/ValueError naming what is wrong."""
    if (
        not isinstance(fence, tuple)
        or len(fence) != 2
        or not isinstance(fence[0], str)
        or isinstance(fence[1], bool)
        or not isinstance(fence[1], int)
    ):
        raise TypeError(
            "fence= takes a (key, token) pair: the job's uuid (str) and its claim's fencing "
            f"token (int), e.g. fence=(job.uuid, job.token); got {fence!r}"
        )
    key, token = fence
    if not key or "#" in key or "@" in key or ":" in key:
        raise ValueError(
            f"fence= key {key!r} must be a non-empty name without '#', '@' or ':' "
            "(a job's uuid is one)"
        )
    if token < 0:
        raise ValueError(f"fence= token must be 0 or more, got {token}")
    return key, token


def new_owner(fence: tuple[str, int] | None = None) -> str:
    """A token naming one engine run: ``host:pid:number``, unique among live processes,
    with ``#token@key`` after it for a run fenced by a job claim (see the module doc).

    The number starts at random in each process (so a process that reuses a dead one's
    pid does not reuse its tokens) and counts up: cheaper than fresh randomness per run.
    The token stands for a live run until :func:`retire_owner`.
    """
    token = f"{_HOST}:{os.getpid()}:{next(_RUN_COUNTER)}"
    if fence is not None:
        key, number = check_fence(fence)
        token = f"{token}#{number}@{key}"
    _LIVE.add(token)
    return token


def fence_of(owner: str) -> tuple[str, int] | None:
    """The ``(key, token)`` fence an owner token (or tombstone) carries, if any."""
    _, mark, fence = owner.partition("#")
    if not mark:
        return None
    number, _, key = fence.partition("@")
    return (key, int(number)) if number.isdigit() and key else None


def released(owner: str) -> str | None:
    """What a store keeps as the owner once ``owner``'s run has ended: nothing for an
    unfenced run, the fence's tombstone ``#token@key`` for a fenced one."""
    fence = fence_of(owner)
    return None if fence is None else f"#{fence[1]}@{fence[0]}"


def may_take_over(current: str | None, claimant: str) -> bool:
    """Say whether ``claimant`` may own a record whose owner is ``current`` now.

    Free records, the claimant's own, and records of a dead unfenced owner may be
    taken. Between two fences of one key the token decides (a higher or equal token
    wins: a claim's token is held by one process at a time), whether the current owner
    is alive or not, so a stale claimant never wins by finding the newer owner dead.
    An unfenced claimant (someone resuming by hand) may take a tombstone or a dead
    owner, never a live run.
    """
    if current is None or current == claimant:
        return True
    held = fence_of(current)
    wanted = fence_of(claimant)
    if held is not None and wanted is not None and held[0] == wanted[0]:
        return wanted[1] >= held[1]
    if current.startswith("#"):  # tombstone of a finished fenced run
        return wanted is None
    return owner_is_stale(current)


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
    """``owner`` in words: the host and process id that hold the run (and its claim)."""
    fence = fence_of(owner)
    claim = "" if fence is None else f"claim {fence[1]} of job {fence[0]}"
    if owner.startswith("#"):
        return f"no engine (the run of {claim} has ended)"
    host, _, rest = owner.partition(":")
    held = f"process {rest.partition(':')[0]} on host {host}"
    return held if fence is None else f"{held}, under {claim}"
