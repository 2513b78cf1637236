"""TaskFlow's ``taskflow.persistence.backends``: find a store by URL or configuration.

``fetch(conf)`` takes TaskFlow's forms: a URL (``'sqlite:///runs.db'``,
``'memory://'``, ``'memory'``, ``'file:///abs/dir'``, ``'postgresql://...'``,
``'mysql://...'``) or a dict with a ``'connection'`` URL and TaskFlow's keys
(``{'connection': 'dir', 'path': ...}``, ``pool_size``, ``idle_timeout``...). It
returns the backend class TaskFlow would (``MemoryBackend``, ``SQLAlchemyBackend``,
``DirBackend``), each one of tideflow's stores behind TaskFlow's API; other schemes go
to tideflow's registry (stores other packages publish). Extra keywords go to the
backend's constructor, as in TaskFlow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from taskflow.persistence.backends import impl_dir, impl_memory, impl_sqlalchemy
from taskflow.persistence.base import StoreBackend
from tideflow import persistence

__all__ = ["BACKEND_NAMESPACE", "backend", "fetch"]

BACKEND_NAMESPACE: Final = "taskflow.persistence"

#: URL schemes (before any ``+driver``) -> TaskFlow's backend classes.
_CLASSES: Final[dict[str, Callable[..., StoreBackend]]] = {
    "memory": impl_memory.MemoryBackend,
    "dir": impl_dir.DirBackend,
    "file": impl_dir.DirBackend,
    "sqlite": impl_sqlalchemy.SQLAlchemyBackend,
    "postgresql": impl_sqlalchemy.SQLAlchemyBackend,
    "postgres": impl_sqlalchemy.SQLAlchemyBackend,
    "mysql": impl_sqlalchemy.SQLAlchemyBackend,
    "mariadb": impl_sqlalchemy.SQLAlchemyBackend,
}


def fetch(conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any) -> Any:
    """Build the store ``conf`` names: a URL, or a dict with a ``'connection'`` URL.

    ``namespace`` is accepted and ignored: stores come from tideflow's registry.
    """
    del namespace
    config: dict[str, Any] = {"connection": conf} if isinstance(conf, str) else dict(conf)
    url = config["connection"]  # a KeyError without it, as in TaskFlow
    if not isinstance(url, str):
        raise TypeError(f"a store's 'connection' must be a URL string, got {url!r}")
    scheme = url.partition("://")[0] if "://" in url else url
    make = _CLASSES.get(scheme.partition("+")[0].lower())
    if make is None:
        # a store another package registered with tideflow (NotFound if none did)
        return StoreBackend(config, persistence.fetch(config, **kwargs))
    return make(config, **kwargs)


@contextlib.contextmanager
def backend(
    conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any
) -> Iterator[Any]:
    """Fetch a store, bring its schema up to date, and close it when the block ends."""
    with contextlib.closing(fetch(conf, namespace=namespace, **kwargs)) as store:
        with contextlib.closing(store.get_connection()) as conn:
            conn.upgrade()
        yield store
