"""Job boards: flows posted as jobs, claimed under leases with fencing tokens.

``connect("postgresql://...", allowed=("myapp.flows",))`` opens a board; see
:mod:`tideflow.jobs.base` for the model (jobs, leases, tokens, states, attempts,
notifications, errors), :mod:`tideflow.jobs.sql` for the SQL board (SQLite, PostgreSQL,
MariaDB) and :mod:`tideflow.jobs.redis` for the Redis one (which needs
``pip install 'tideflow[redis]'``; importing this package does not).
"""

from __future__ import annotations

from typing import Any, Final

from tideflow.jobs.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    EVENTS,
    POSTED,
    REMOVAL,
    Board,
    FactoryNotAllowedError,
    Job,
    JobClaimedError,
    JobState,
    LeaseLostError,
)
from tideflow.jobs.redis import RedisBoard
from tideflow.jobs.sql import SqlBoard

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "EVENTS",
    "POSTED",
    "REMOVAL",
    "Board",
    "FactoryNotAllowedError",
    "Job",
    "JobClaimedError",
    "JobState",
    "LeaseLostError",
    "RedisBoard",
    "SqlBoard",
    "connect",
]

_SQL_SCHEMES: Final = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_REDIS_SCHEMES: Final = ("redis", "rediss")


def connect(url: str, **options: Any) -> SqlBoard | RedisBoard:
    """The job board ``url`` names, with ``options`` (see :class:`SqlBoard` and
    :class:`RedisBoard`)."""
    scheme = url.partition("://")[0].partition("+")[0] if isinstance(url, str) else ""
    if scheme in _REDIS_SCHEMES:
        return RedisBoard(url, **options)
    if scheme in _SQL_SCHEMES:
        return SqlBoard(url, **options)
    schemes = ", ".join(s + "://" for s in (*_SQL_SCHEMES, *_REDIS_SCHEMES))
    raise ValueError(
        f"no job board for {scheme or url!r}: the boards are SQL ones (SQLite, PostgreSQL, "
        f"MariaDB/MySQL) and Redis; their URLs start with {schemes}"
    )
