"""Stores for run records, chosen by URL, and the record model they keep.

``connect(url)`` (also ``fetch(url)`` or ``fetch({"connection": url})``) opens a store:

- ``memory://``: this process only (the default when no store is given);
- ``sqlite:///path/runs.db``: a file, through the standard library (WAL mode);
- ``postgresql://...``, ``mysql+pymysql://...`` (MariaDB), and any SQLAlchemy URL
  (``sqlite+pysqlite:///path`` for SQLite through SQLAlchemy): through SQLAlchemy Core,
  with the ``tideflow[postgres]`` / ``tideflow[mysql]`` extras;
- ``file:///dir`` or ``dir:///dir``: one JSON document per record in a directory.

The contract every store keeps is in :mod:`tideflow.persistence.base`; values are
encoded by :mod:`tideflow.persistence.codec` (JSON unless ``codec='pickle'``).
Third-party stores register under the ``tideflow.stores`` entry point group.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from tideflow.errors import NotFoundError
from tideflow.persistence.memory import MemoryBackend, MemoryConnection
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook, RetryDetail, TaskDetail

__all__ = [
    "ENTRY_POINT_GROUP",
    "AtomDetail",
    "FlowDetail",
    "LogBook",
    "MemoryBackend",
    "MemoryConnection",
    "RetryDetail",
    "TaskDetail",
    "claim_record",
    "connect",
    "fetch",
    "register_backend",
]

_REGISTRY: dict[str, Callable[[dict[str, Any]], Any]] = {"memory": MemoryBackend}

#: Stores of tideflow itself, imported when first asked for (their drivers are extras).
_BUILTIN: dict[str, str] = {
    "sqlite": "tideflow.persistence.sqlite:SqliteBackend.from_config",
    "file": "tideflow.persistence.directory:DirBackend.from_config",
    "dir": "tideflow.persistence.directory:DirBackend.from_config",
    "postgresql": "tideflow.persistence.sql:SqlBackend.from_config",
    "postgres": "tideflow.persistence.sql:SqlBackend.from_config",
    "mysql": "tideflow.persistence.sql:SqlBackend.from_config",
    "mariadb": "tideflow.persistence.sql:SqlBackend.from_config",
}


def register_backend(scheme: str, factory: Callable[[dict[str, Any]], Any]) -> None:
    """Make ``fetch`` build stores for URLs starting with ``scheme://``."""
    _REGISTRY[scheme] = factory


def fetch(conf: str | Mapping[str, Any], **kwargs: Any) -> Any:
    """Build the store a URL (or ``{"connection": URL, ...}``) names."""
    if isinstance(conf, str):
        config: dict[str, Any] = {"connection": conf}
    else:
        config = dict(conf)
        if "connection" not in config:
            raise ValueError(
                "a store configuration needs a 'connection' key, e.g. {'connection': 'memory://'}"
            )
    config.update(kwargs)
    url = str(config["connection"])
    scheme = url.split("://", 1)[0] if "://" in url else url
    factory = _REGISTRY.get(scheme) or _builtin(scheme) or _from_entry_points(scheme)
    if factory is None:
        known = sorted({*_REGISTRY, *_BUILTIN})
        raise NotFoundError(
            f"no store for {url!r}: known schemes are {known} (a SQLAlchemy URL such as "
            f"'postgresql+psycopg://...' also works); other packages add theirs under the "
            f"{ENTRY_POINT_GROUP!r} entry point group"
        )
    return factory(config)


def connect(url: str, **options: Any) -> Any:
    """Open the store ``url`` names, with that store's keyword options.

    ``codec='pickle'`` (every durable store) keeps values JSON cannot, at the price of
    trusting whoever writes the store; ``synchronous='FULL'`` (SQLite) survives power
    loss. See each store's class for its options.
    """
    if not isinstance(url, str):
        raise TypeError(f"connect() takes a store URL such as 'sqlite:///runs.db', got {url!r}")
    return fetch(url, **options)


def _builtin(scheme: str) -> Callable[[dict[str, Any]], Any] | None:
    """The factory of one of tideflow's own stores for ``scheme`` (``base+driver`` too)."""
    target = _BUILTIN.get(scheme) or _BUILTIN.get(scheme.partition("+")[0])
    if target is None:
        return None
    if scheme.startswith("sqlite+"):  # SQLite through SQLAlchemy
        target = _BUILTIN["postgresql"]
    module_name, _, attr = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        found = getattr(found, part)
    factory: Callable[[dict[str, Any]], Any] = found
    return factory


#: Third-party stores register a factory ``(config: dict) -> store`` under this group,
#: named by the URL scheme they serve.
ENTRY_POINT_GROUP = "tideflow.stores"


def _from_entry_points(scheme: str) -> Callable[[dict[str, Any]], Any] | None:
    """Find (and remember) a store factory another package published for ``scheme``."""
    from importlib.metadata import entry_points  # noqa: PLC0415  # only for unknown schemes

    for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        factory: Callable[[dict[str, Any]], Any] = entry.load()
        _REGISTRY[scheme] = factory
        return factory
    return None


def claim_record(
    backend: Any, fd_uuid: str, fence: tuple[str, int], book: LogBook | None = None
) -> FlowDetail:
    """Take the run record ``fd_uuid`` for a job claim and return it as stored then.

    ``fence`` is the claim's ``(job key, fencing token)``. The record is taken from any
    owner fenced with a lower token of the same key (alive or not), so from this call
    on a stale claimant can write nothing to it; one with a higher token refuses with
    ``RunOwnedError``. A record the store does not hold yet is created from ``book``
    (which holds it) in the same transaction. The record returned was read after the
    claim, so it holds everything older owners committed: load it with
    ``tideflow.load_from_detail(record, backend=backend, fence=fence)``, whose engine
    takes the claim over (same fence) when it runs.
    """
    from tideflow.persistence._owners import (  # noqa: PLC0415  # job runs only
        check_fence,
        new_owner,
        retire_owner,
    )

    owner = new_owner(check_fence(fence))
    retire_owner(owner)  # stands for no engine: the run's own claim replaces it
    conn = backend.get_connection()
    try:
        claim_run = getattr(conn, "claim_run", None)
        if claim_run is None:
            raise TypeError(
                f"{type(conn).__name__} cannot fence runs (it has no claim_run()); use one "
                "of tideflow's stores"
            )
        if book is None:
            claim_run(fd_uuid, owner)
        else:
            claim_run(fd_uuid, owner, book)
        record: FlowDetail = conn.get_flow_details(fd_uuid)
        return record
    finally:
        conn.close()
