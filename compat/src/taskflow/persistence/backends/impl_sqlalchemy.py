"""TaskFlow's ``impl_sqlalchemy``: stores in SQL databases.

``SQLAlchemyBackend(conf)`` opens, for ``sqlite:///path`` (and ``sqlite://``),
tideflow's SQLite store (standard-library ``sqlite3``, WAL mode) and, for
``postgresql://``, ``mysql://`` and any other SQLAlchemy URL (``sqlite+pysqlite://``
included), tideflow's SQL store through SQLAlchemy Core. TaskFlow's configuration keys
are translated (``RENAMED``) or ignored with a reason (``IGNORED``). The tables are
tideflow's own (``tideflow_*``), not TaskFlow's: a database TaskFlow wrote is not read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from taskflow.persistence.backends._conf import URL_PARTS, as_bool, options_of, translate
from taskflow.persistence.base import StoreBackend, StoreConnection

__all__ = ["Connection", "SQLAlchemyBackend"]

#: TaskFlow keys -> tideflow SQL store options (with their conversion).
_SQL_RENAMED: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "max_pool_size": ("pool_size", int),
    "pool_size": ("pool_size", int),
    "max_overflow": ("max_overflow", int),
    "pool_timeout": ("pool_timeout", float),
    "connect_timeout": ("connect_timeout", float),
    "echo": ("echo", as_bool),
}
#: TaskFlow keys -> tideflow SQLite store options.
_SQLITE_RENAMED: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "sqlite_synchronous": ("synchronous", str),
    "synchronous": ("synchronous", str),
    "busy_timeout": ("busy_timeout", float),
}
_COMMON_IGNORED: Final = {
    **URL_PARTS,
    "idle_timeout": "connections are checked before each use, so one the server dropped "
    "while idle is replaced rather than recycled on a timer",
    "isolation_level": "the store sets the isolation its transactions rely on",
    "isolation_levels": "the store sets the isolation its transactions rely on",
    "engine_args": "the store makes its own SQLAlchemy engine; its options are pool_size, "
    "max_overflow, pool_timeout, connect_timeout and echo",
    "log_statements": "use echo=True or the 'sqlalchemy.engine' logger",
    "log_statements_level": "use echo=True or the 'sqlalchemy.engine' logger",
    "checkin_yield": "an eventlet setting; tideflow does not run on eventlet",
    "checkout_ping": "connections are always checked before use",
    "mysql_sql_mode": "the store's statements do not depend on the session's SQL mode",
    "max_retries": "a failed write stops the run with a StoreError and the run resumes from "
    "what was committed; connections lost between runs are re-established",
}
_SQLITE_IGNORED: Final = {
    **_COMMON_IGNORED,
    "max_pool_size": "the SQLite store opens one connection per thread: there is no pool",
    "pool_size": "the SQLite store opens one connection per thread: there is no pool",
    "max_overflow": "the SQLite store opens one connection per thread: there is no pool",
    "pool_timeout": "the SQLite store opens one connection per thread: there is no pool",
    "connect_timeout": "a SQLite file has no server to wait for (busy_timeout bounds lock waits)",
    "echo": "the standard-library SQLite store has no statement log",
}
_SQL_IGNORED: Final = {
    **_COMMON_IGNORED,
    "sqlite_synchronous": "only the SQLite store has a durability level",
}


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else url.lower()


class SQLAlchemyBackend(StoreBackend):
    """A store in SQLite, PostgreSQL or MariaDB/MySQL, by the URL in ``conf['connection']``."""

    def __init__(self, conf: Mapping[str, Any], engine: Any = None) -> None:
        super().__init__(conf, None)
        if engine is not None:
            raise TypeError(
                "SQLAlchemyBackend(conf, engine=...): tideflow's SQL store makes its own "
                "SQLAlchemy engine from conf['connection']; pass the URL instead"
            )
        url = str(self._conf["connection"])
        if _scheme(url) == "sqlite":
            from tideflow.persistence.sqlite import SqliteBackend  # noqa: PLC0415  # lazily

            options = translate(
                self._conf,
                store=f"SQLite store {url!r}",
                accepted=options_of(SqliteBackend),
                renamed=_SQLITE_RENAMED,
                ignored=_SQLITE_IGNORED,
            )
            self._store = SqliteBackend.from_config({"connection": url, **options})
        else:
            from tideflow.persistence.sql import SqlBackend  # noqa: PLC0415  # driver is an extra

            options = translate(
                self._conf,
                store="SQL store",
                accepted=options_of(SqlBackend),
                renamed=_SQL_RENAMED,
                ignored=_SQL_IGNORED,
            )
            self._store = SqlBackend.from_config({"connection": url, **options})

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (None for the standard-library SQLite store)."""
        return getattr(self._store, "_engine", None)

    def get_connection(self) -> Connection:
        """A connection to the database."""
        return Connection(self, self._store.get_connection())


class Connection(StoreConnection):
    """A connection to a :class:`SQLAlchemyBackend`."""


#: Keys each store ignores, and why (for documentation and tests).
IGNORED: Final = {"sqlite": _SQLITE_IGNORED, "sql": _SQL_IGNORED}
#: Keys each store translates.
RENAMED: Final = {"sqlite": _SQLITE_RENAMED, "sql": _SQL_RENAMED}
