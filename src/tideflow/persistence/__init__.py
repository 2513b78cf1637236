"""Stores for run records, chosen by URL, and the record model they keep.

``fetch("memory://")`` (or ``fetch({"connection": "memory://"})``) returns a store.
Durable stores (SQLite, SQL servers, a directory) plug into this same registry.
"""

from __future__ import annotations

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
    "fetch",
    "register_backend",
]

_REGISTRY: dict[str, Callable[[dict[str, Any]], Any]] = {"memory": MemoryBackend}


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
    factory = _REGISTRY.get(scheme) or _from_entry_points(scheme)
    if factory is None:
        raise NotFoundError(
            f"no store for {url!r}: known schemes are {sorted(_REGISTRY)}; other packages "
            f"add theirs under the {ENTRY_POINT_GROUP!r} entry point group"
        )
    return factory(config)


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
