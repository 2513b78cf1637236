"""TaskFlow's ``impl_memory``: the in-memory store, with its tree of paths (``memory``).

``MemoryBackend(conf)`` is tideflow's memory store behind TaskFlow's API. Records are
the engine's own objects (nothing is copied), so ``deep_copy`` is ignored; ``memory``
shows them as TaskFlow's memory store lays them out (``/books``, ``/flow_details``,
``/atom_details``), read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from taskflow.persistence import models
from taskflow.persistence.backends._conf import translate
from taskflow.persistence.base import StoreBackend, StoreConnection
from tideflow.errors import NotFoundError
from tideflow.persistence import memory as _memory
from tideflow.persistence._tree import RecordTree
from tideflow.persistence.models import FlowDetail, LogBook

__all__ = ["Connection", "MemoryBackend"]


class MemoryBackend(StoreBackend):
    """An in-memory store (``'memory'``, ``'memory://'``)."""

    #: TaskFlow keys with no counterpart here, and why.
    IGNORED: Final = {
        "deep_copy": "records are the engine's own objects, never copied",
        "path": "the tree always starts at '/'",
    }

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        super().__init__(conf, None)
        translate(
            self._conf, store="memory store", accepted=frozenset(), renamed={}, ignored=self.IGNORED
        )
        connection = str(self._conf.get("connection", "memory://"))
        self._store = _memory.MemoryBackend({"connection": connection})
        #: Flow records written with ``update_flow_details(..., ignore_missing=True)``
        #: outside any log book (what TaskFlow's engine does for a run without a store).
        self._loose: dict[str, FlowDetail] = {}
        self._tree = RecordTree(
            self._records,
            render_book=models.book_to_taskflow,
            render_flow=models.flow_to_taskflow,
            render_atom=models.atom_to_taskflow,
        )

    @property
    def memory(self) -> RecordTree:
        """The records as a read-only tree of paths: ``pformat()``, ``ls``, ``ls_r``, ``[path]``."""
        return self._tree

    def _records(self) -> tuple[Iterable[LogBook], Iterable[FlowDetail]]:
        with self._store._lock:
            return list(self._store._books.values()), list(self._loose.values())

    def get_connection(self) -> Connection:
        """A connection (connections share the store's records)."""
        return Connection(self, self._store.get_connection())


class Connection(StoreConnection):
    """A connection to a :class:`MemoryBackend`."""

    _backend: MemoryBackend

    def update_flow_details(
        self, flow_detail: FlowDetail, ignore_missing: bool = False
    ) -> FlowDetail:
        """Write a flow record; with ``ignore_missing``, one no log book holds is kept too."""
        try:
            self._conn.get_flow_details(flow_detail.uuid)
        except NotFoundError:
            if flow_detail.uuid not in self._backend._loose:
                if not ignore_missing:
                    raise
                self._backend._loose[flow_detail.uuid] = models.adopt(flow_detail)
            # a record outside every log book: kept as the very object, nothing to write
            loose: FlowDetail = self._backend._loose[flow_detail.uuid]
            return loose
        return super().update_flow_details(flow_detail)

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record ``fd_uuid``, in a log book or not."""
        loose = self._backend._loose.get(fd_uuid)
        if loose is not None:
            return loose
        return super().get_flow_details(fd_uuid, lazy=lazy)

    def claim_run(self, fd_uuid: str, owner: str, book: LogBook | None = None) -> None:
        """Own a run; a record outside every log book belongs to its engine alone."""
        if fd_uuid in self._backend._loose:
            return
        super().claim_run(fd_uuid, owner, book)

    def clear_all(self) -> None:
        """Forget every record."""
        super().clear_all()
        self._backend._loose.clear()
