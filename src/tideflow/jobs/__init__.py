"""Job boards: flows posted as jobs, claimed under leases with fencing tokens.

``connect("postgresql://...", allowed=("myapp.flows",))`` opens a board; see
:mod:`tideflow.jobs.base` for the model (jobs, leases, tokens, states, errors) and
:mod:`tideflow.jobs.sql` for the SQL board (SQLite, PostgreSQL, MariaDB).
"""

from __future__ import annotations

from typing import Any

from tideflow.jobs.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    Board,
    FactoryNotAllowedError,
    Job,
    JobClaimedError,
    JobState,
    LeaseLostError,
)
from tideflow.jobs.sql import SqlBoard

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "Board",
    "FactoryNotAllowedError",
    "Job",
    "JobClaimedError",
    "JobState",
    "LeaseLostError",
    "SqlBoard",
    "connect",
]

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def connect(url: str, **options: Any) -> SqlBoard:
    """The job board ``url`` names, with ``options`` (see :class:`SqlBoard`)."""
    scheme = url.partition("://")[0].partition("+")[0] if isinstance(url, str) else ""
    if scheme not in _SQL_SCHEMES:
        raise ValueError(
            f"no job board for {scheme or url!r}: the boards are SQL ones "
            f"({', '.join(s + '://' for s in _SQL_SCHEMES)})"
        )
    return SqlBoard(url, **options)
