"""TaskFlow's ``impl_dir``: a store keeping one JSON document per record in a directory.

``DirBackend(conf)`` opens tideflow's directory store at ``conf['path']`` (as TaskFlow
does) or, without one, at the path of a ``'dir:///abs/dir'``/``'file:///abs/dir'``
URL. TaskFlow's ``max_cache_size`` and ``encoding`` are ignored (``IGNORED`` says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from taskflow.persistence.backends._conf import options_of, translate
from taskflow.persistence.base import StoreBackend, StoreConnection

__all__ = ["Connection", "DirBackend"]


class DirBackend(StoreBackend):
    """A store in a directory (``{'connection': 'dir', 'path': '/abs/dir'}``)."""

    #: TaskFlow keys with no counterpart here, and why.
    IGNORED: Final = {
        "max_cache_size": "every read goes to the files: there is no cache to size",
        "encoding": "documents are always UTF-8 JSON",
    }

    def __init__(self, conf: Mapping[str, Any]) -> None:
        super().__init__(conf, None)
        from tideflow.persistence.directory import DirBackend as _Store  # noqa: PLC0415

        url = str(self._conf.get("connection", "dir"))
        scheme = url.partition("://")[0] if "://" in url else url
        path = self._conf.get("path")
        options = translate(
            self._conf,
            store="directory store",
            accepted=options_of(_Store) - {"scheme"},
            renamed={},
            ignored=self.IGNORED,
        )
        if path:
            # TaskFlow reads the directory from conf['path'] only, whatever the URL says
            options["path"] = str(path)
            url = scheme
        self._store = _Store.from_config({"connection": url, **options})

    @property
    def path(self) -> str:
        """The store's directory."""
        path: str = self._store.path
        return path

    def get_connection(self) -> Connection:
        """A connection to the directory."""
        return Connection(self, self._store.get_connection())


class Connection(StoreConnection):
    """A connection to a :class:`DirBackend`."""
