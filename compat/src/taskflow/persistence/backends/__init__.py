"""TaskFlow's ``taskflow.persistence.backends``: find a store by URL or configuration."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Final

from tideflow import persistence

__all__ = ["BACKEND_NAMESPACE", "backend", "fetch"]

BACKEND_NAMESPACE: Final = "taskflow.persistence"


def fetch(conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any) -> Any:
    """Build the store ``conf`` names: a URL, or a dict with a ``'connection'`` URL.

    ``namespace`` is accepted and ignored: stores come from tideflow's registry.
    """
    if isinstance(conf, Mapping) and "connection" not in conf:
        raise KeyError("connection")  # TaskFlow fails the same way on a conf without it
    return persistence.fetch(conf, **kwargs)


@contextlib.contextmanager
def backend(
    conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any
) -> Iterator[Any]:
    """Fetch a store, bring its schema up to date, and close it when the block ends."""
    store = fetch(conf, namespace=namespace, **kwargs)
    try:
        with contextlib.closing(store.get_connection()) as conn:
            conn.upgrade()
        yield store
    finally:
        store.close()
