"""What every job board shares: argument checks, and what it tells its listeners.

:class:`Sightings` is the POSTED/REMOVAL rule (documented in :mod:`tideflow.jobs.base`),
written once: a board reports every job it reads or writes to it, and it tells the
board's :class:`~tideflow._notifier.Notifier` which jobs are new to this board object and
which have left the board.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from tideflow._notifier import Notifier
from tideflow.errors import NotFoundError
from tideflow.jobs.base import (
    EVENTS,
    POSTED,
    REMOVAL,
    Job,
    JobClaimedError,
    JobState,
    LeaseLostError,
    check_factory,
)
from tideflow.persistence.codec import Codec

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Sightings",
    "check_allowed",
    "check_claim_next",
    "check_max_attempts",
    "check_seconds",
    "check_who",
    "config_options",
    "encode_post",
    "exhausted_error",
    "held_error",
    "lost_error",
    "missing_error",
    "new_notifier",
    "trashed_error",
    "uuid_of",
]

#: Priorities fit a signed 32-bit column (PostgreSQL's INTEGER) on every board.
MIN_PRIORITY: Final = -(2**31)
MAX_PRIORITY: Final = 2**31 - 1


def new_notifier() -> Notifier:
    """A notifier that takes registrations for POSTED, REMOVAL and '*' only."""
    return Notifier(known_events=lambda: EVENTS)


class Sightings:
    """The jobs one board object has announced as POSTED and not yet as REMOVAL.

    Kept only while the notifier has a registration: with nobody listening the set is
    emptied and nothing is tracked, so a board that only posts holds no memory per job
    (and a listener registered later hears POSTED for each job the board then reads).
    """

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._seen: dict[str, Job] = {}
        self._lock = threading.Lock()

    def listening(self) -> bool:
        """Say whether anyone listens (and forget what was seen if nobody does)."""
        if len(self.notifier):
            return True
        if self._seen:
            with self._lock:
                self._seen.clear()
        return False

    def saw(self, jobs: Iterable[Job], *, complete: bool = False) -> None:
        """``jobs`` were just read from the board. New ones are POSTED; trashed ones
        this board had announced are REMOVAL; with ``complete`` (the reading listed every
        job not trashed), so is each announced job the reading did not find."""
        if not self.listening():
            return
        posted: list[Job] = []
        removed: list[Job] = []
        with self._lock:
            found: set[str] = set()
            for job in jobs:
                found.add(job.uuid)
                if job.state is JobState.TRASHED:
                    if self._seen.pop(job.uuid, None) is not None:
                        removed.append(job)
                    continue
                if job.uuid not in self._seen:
                    posted.append(job)
                self._seen[job.uuid] = job
            if complete:
                for key in [k for k in self._seen if k not in found]:
                    removed.append(self._seen.pop(key))
        self._tell(posted, removed)

    def gone(self, key: str) -> None:
        """The job ``key`` is no longer on the board (this board consumed it, or found it
        missing): REMOVAL if it had been announced, with the job as last read."""
        if not self.listening():
            return
        with self._lock:
            job = self._seen.pop(key, None)
        if job is not None:
            self._tell((), (job,))

    def _tell(self, posted: Sequence[Job], removed: Sequence[Job]) -> None:
        notify = self.notifier.notify
        for job in posted:
            notify(POSTED, {"job": job})
        for job in removed:
            notify(REMOVAL, {"job": job})


# -- argument checks -----------------------------------------------------------------------


def config_options(
    config: Mapping[str, Any], kind: str, example: str, known: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """A board's ``from_config`` mapping as (URL, options): ValueError without a
    ``connection`` URL (``example`` shows one), TypeError naming an unknown option."""
    options = dict(config)
    url = options.pop("connection", None)
    if not isinstance(url, str) or not url:
        raise ValueError(
            f"a {kind} job board needs its URL as 'connection', e.g. "
            f"{{'connection': {example!r}, 'allowed': ['myapp.flows']}}"
        )
    for key in options:
        if key not in known:
            from tideflow._options import closest  # noqa: PLC0415  # only on errors

            raise TypeError(
                f"unknown option {key!r} for the job board {url.partition('@')[2] or url}: "
                f"{closest(str(key), known)}the options are {list(known)}"
            )
    return url, options


def uuid_of(job: Job | str) -> str:
    """The uuid of ``job`` (a Job, or a uuid already)."""
    if isinstance(job, Job):
        return job.uuid
    if isinstance(job, str) and job:
        return job
    raise TypeError(f"expected a Job or a job's uuid (str), got {job!r}")


def check_who(who: object) -> None:
    """TypeError unless ``who`` names an owner."""
    if not isinstance(who, str) or not who:
        raise TypeError(f"who= names the claiming owner as a non-empty str, got {who!r}")


def check_claim_next(who: object, lease: object, allowed: Sequence[str], shown: str) -> None:
    """What claim_next (and consume_and_claim_next) checks first: the owner, the lease,
    and an allow-list that allows something (FactoryNotAllowedError if it is empty)."""
    check_who(who)
    check_seconds("lease", lease, positive=True)
    if not allowed:
        check_factory("nothing:allowed", (), f"the job board {shown}")


def check_consumed(consumed: object, limit: object) -> list[tuple[str, int]]:
    """What consume_and_claim checks first: ``consumed`` is a sequence of (job or uuid,
    fencing token) pairs, ``limit`` a whole number, 0 or more; the pairs as (uuid, token)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit= takes how many jobs to claim, 0 or more, got {limit!r}")
    if isinstance(consumed, str | bytes) or not isinstance(consumed, Iterable):
        raise TypeError(f"consumed= takes (job, token) pairs, got {type(consumed).__name__}")
    pairs: list[tuple[str, int]] = []
    for pair in consumed:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"consumed= takes (job, token) pairs, got {pair!r}")
        job, token = pair
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError(f"a consumed job's token is its claim's int token, got {token!r}")
        pairs.append((uuid_of(job), token))
    return pairs


def check_seconds(option: str, value: object, positive: bool = False) -> None:
    """ValueError unless ``value`` is a number of seconds (more than 0 if ``positive``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
        or (positive and value == 0)
    ):
        more = "more than 0" if positive else "0 or more"
        raise ValueError(f"{option}= takes a number of seconds, {more}, got {value!r}")


def check_allowed(allowed: object) -> tuple[str, ...]:
    """``allowed`` as a tuple of module prefixes (TypeError if it is not a sequence of them)."""
    if (
        isinstance(allowed, str)
        or not isinstance(allowed, Sequence)
        or not all(isinstance(p, str) and p for p in allowed)
    ):
        raise TypeError(
            f"allowed= takes a sequence of module prefixes, e.g. ('myapp.flows',), got {allowed!r}"
        )
    return tuple(allowed)


def check_max_attempts(max_attempts: object) -> int:
    """``max_attempts`` if it is a whole number, 1 or more."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts= takes a whole number, 1 or more, got {max_attempts!r}")
    return max_attempts


def encode_post(
    codec: Codec,
    allowed: Sequence[str],
    where: str,
    name: str,
    factory: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    store: Mapping[str, Any] | None,
    priority: int,
    details: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A new job's checked fields, its values as ``codec`` text: name, factory, args,
    kwargs, store, details, priority."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a job's name is a non-empty str, got {name!r}")
    check_factory(factory, allowed, where)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority= takes an int (higher runs sooner), got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority= takes an int from {MIN_PRIORITY} to {MAX_PRIORITY} (a 32-bit "
            f"column on every board), got {priority!r}"
        )
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise TypeError(f"args= takes a sequence of positional arguments, got {args!r}")
    dumps = codec.dumps
    return {
        "name": name,
        "factory": factory,
        "args": dumps(tuple(args), f"args of job {name!r}"),
        "kwargs": dumps(_mapping(kwargs, "kwargs"), f"kwargs of job {name!r}"),
        "store": dumps(_mapping(store, "store"), f"store values of job {name!r}"),
        "details": dumps(_mapping(details, "details"), f"details of job {name!r}"),
        "priority": priority,
    }


def _mapping(value: Mapping[str, Any] | None, option: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{option}= takes a mapping with str keys, got {value!r}")
    return dict(value)


# -- the errors' words, the same on every board ---------------------------------------------


def missing_error(shown: str, key: str) -> NotFoundError:
    """No job ``key`` on the board ``shown``."""
    return NotFoundError(
        f"no job with uuid {key!r} on the job board {shown} (consumed, or never posted)"
    )


def held_error(shown: str, key: str, owner: str, token: int, left: float) -> JobClaimedError:
    """A claim refused because ``owner`` holds a live lease."""
    return JobClaimedError(
        f"job {key} on {shown} is claimed by {owner!r} (token {token}) for {left:.1f} s more "
        "unless renewed; claim another job, or wait for this one's lease to run out"
    )


def trashed_error(shown: str, key: str) -> JobClaimedError:
    """A claim refused because the job is trashed."""
    return JobClaimedError(f"job {key} on {shown} is trashed; it cannot be claimed")


def exhausted_error(shown: str, job: Job, max_attempts: int) -> JobClaimedError:
    """A claim that trashed the job: taking over its run-out lease was its last attempt."""
    return JobClaimedError(
        f"job {job.uuid} on {shown} was trashed instead of claimed: its lease had run out, "
        f"which makes {job.attempts} failed attempts (max_attempts={max_attempts}); a job "
        "that keeps killing or hanging its worker stops here. Inspect it with get(), and "
        "post it again once fixed"
    )


def lost_error(
    shown: str,
    key: str,
    who: str,
    token: int,
    doing: str,
    now: tuple[str, str | None, int] | None,
) -> LeaseLostError:
    """An owner call refused: ``now`` is the job's (state, owner, token), None if gone."""
    if now is None:
        where = "was consumed (or never posted)"
    elif now[0] == JobState.CLAIMED:
        where = f"was claimed by {now[1]!r} with token {now[2]}"
    else:
        where = f"is {now[0]} (token {now[2]})"
    return LeaseLostError(
        f"{who!r} cannot {doing} job {key} on {shown} with fencing token {token}: "
        f"the job {where}; nothing was changed: stop working on the job"
    )
