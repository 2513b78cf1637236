"""TaskFlow's ``taskflow.persistence.base``: what a store and its connection provide.

``Backend`` and ``Connection`` are TaskFlow's abstract classes, for programs that
subclass or check against them. The stores ``taskflow.persistence.backends`` returns
are :class:`StoreBackend`\\ s: one of tideflow's stores (memory, SQLite, SQL through
SQLAlchemy, directory) behind TaskFlow's class names, whose connections hand out
records with TaskFlow's methods (:func:`taskflow.persistence.models.adopt`).
The contract each tideflow store keeps is :mod:`tideflow.persistence.base`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from taskflow.persistence import models
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook

__all__ = ["Backend", "Connection", "StoreBackend", "StoreConnection"]


class Backend(metaclass=abc.ABCMeta):
    """A store of log books, built from a configuration dict (TaskFlow's base class)."""

    def __init__(self, conf: Mapping[str, Any] | None) -> None:
        if conf is None:
            conf = {}
        if not isinstance(conf, Mapping):
            raise TypeError(f"Configuration dictionary expected not '{conf}' ({type(conf)})")
        self._conf = dict(conf)

    @abc.abstractmethod
    def get_connection(self) -> Connection:
        """A connection to the store."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the store holds open."""


class Connection(metaclass=abc.ABCMeta):
    """Reads and writes the records of one store (TaskFlow's base class)."""

    @property
    @abc.abstractmethod
    def backend(self) -> Backend:
        """The store this connection belongs to."""

    @abc.abstractmethod
    def close(self) -> None:
        """Give the connection back."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Create or migrate the store's schema."""

    @abc.abstractmethod
    def clear_all(self) -> None:
        """Delete every record."""

    @abc.abstractmethod
    def validate(self) -> None:
        """Check the store is usable."""

    @abc.abstractmethod
    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Write an atom record."""

    @abc.abstractmethod
    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Write a flow record and its atom records."""

    @abc.abstractmethod
    def save_logbook(self, book: LogBook) -> LogBook:
        """Write a log book and everything in it."""

    @abc.abstractmethod
    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a log book and its records."""

    @abc.abstractmethod
    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """One log book."""

    @abc.abstractmethod
    def get_logbooks(self, lazy: bool = False) -> Iterator[LogBook]:
        """Every log book."""

    @abc.abstractmethod
    def get_flows_for_book(self, book_uuid: str) -> Iterator[FlowDetail]:
        """The flow records of a log book."""

    @abc.abstractmethod
    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """One flow record."""

    @abc.abstractmethod
    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """One atom record."""

    @abc.abstractmethod
    def get_atoms_for_flow(self, fd_uuid: str) -> Iterator[AtomDetail]:
        """The atom records of a flow record."""


def _without_flows(book: LogBook) -> models.LogBook:
    """A lazily read book as TaskFlow returns it: the book alone, without flow records.

    (tideflow's stores return a lazy book's flow records without their atoms; the memory
    store returns its own object, so this is a new one.)
    """
    alone = models.LogBook(book.name, book.uuid)
    alone.meta = dict(book.meta)
    alone.created_at = book.created_at
    alone.updated_at = book.updated_at
    return alone


class StoreBackend(Backend):
    """One of tideflow's stores behind TaskFlow's backend API.

    The engine is given this object: what it needs of the store (``shares_records``,
    ``codec``, the connection's ``save_round``/``claim_run``/...) is passed through.
    """

    def __init__(self, conf: Mapping[str, Any] | None, store: Any) -> None:
        super().__init__(conf)
        self._store = store

    @property
    def store(self) -> Any:
        """The tideflow store behind this backend."""
        return self._store

    @property
    def shares_records(self) -> bool:
        """Whether the store holds the engine's own record objects (memory)."""
        return bool(getattr(self._store, "shares_records", False))

    @property
    def codec(self) -> Any:
        """How the store encodes values (None for memory)."""
        return getattr(self._store, "codec", None)

    @property
    def url(self) -> str | None:
        """The store's URL, where it has one."""
        url: str | None = getattr(self._store, "url", None)
        return url

    def get_connection(self) -> StoreConnection:
        """A connection to the store (a context manager, as TaskFlow's are not)."""
        return StoreConnection(self, self._store.get_connection())

    def close(self) -> None:
        """Close the store (idempotent)."""
        self._store.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._store!r}>"


class StoreConnection(Connection):
    """A connection of a tideflow store; records it returns have TaskFlow's methods."""

    def __init__(self, backend: StoreBackend, conn: Any) -> None:
        self._backend = backend
        self._conn = conn

    @property
    def backend(self) -> StoreBackend:
        """The backend this connection belongs to."""
        return self._backend

    def __enter__(self) -> StoreConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the connection back (idempotent)."""
        self._conn.close()

    def upgrade(self) -> None:
        """Create or migrate the store's schema (idempotent)."""
        self._conn.upgrade()

    def validate(self) -> None:
        """Check the store is reachable and of this version's schema."""
        self._conn.validate()

    def clear_all(self) -> None:
        """Delete every log book, flow record and atom record."""
        self._conn.clear_all()

    # -- writing ----------------------------------------------------------------------

    def save_logbook(self, book: LogBook) -> LogBook:
        """Write a log book with every flow record and atom record in it."""
        saved: LogBook = self._conn.save_logbook(book)
        return models.adopt(saved)

    def update_flow_details(
        self, flow_detail: FlowDetail, ignore_missing: bool = False
    ) -> FlowDetail:
        """Write a flow record that was saved in a log book, and its atom records."""
        del ignore_missing  # durable stores keep flow records only inside log books
        updated: FlowDetail = self._conn.update_flow_details(flow_detail)
        return models.adopt(updated)

    def update_atom_details(
        self, atom_detail: AtomDetail, ignore_missing: bool = False
    ) -> AtomDetail:
        """Write an atom record that was saved before."""
        del ignore_missing
        updated: AtomDetail = self._conn.update_atom_details(atom_detail)
        return models.adopt(updated)

    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a log book with its flow and atom records."""
        self._conn.destroy_logbook(book_uuid)

    # -- reading ----------------------------------------------------------------------

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """The log book ``book_uuid`` (NotFound if there is none); ``lazy``: no flow records."""
        book: LogBook = self._conn.get_logbook(book_uuid, lazy=lazy)
        return _without_flows(book) if lazy else models.adopt(book)

    def get_logbooks(self, lazy: bool = False) -> Iterator[LogBook]:
        """Every log book (``lazy``: without their flow records)."""
        for book in self._conn.get_logbooks(lazy=lazy):
            yield _without_flows(book) if lazy else models.adopt(book)

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> Iterator[FlowDetail]:
        """The flow records of a log book."""
        for flow_detail in self._conn.get_flows_for_book(book_uuid, lazy=lazy):
            yield models.adopt(flow_detail)

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record ``fd_uuid`` (NotFound if there is none)."""
        flow_detail: FlowDetail = self._conn.get_flow_details(fd_uuid, lazy=lazy)
        return models.adopt(flow_detail)

    def get_atoms_for_flow(self, fd_uuid: str) -> Iterator[AtomDetail]:
        """The atom records of a flow record, in the order they were first saved."""
        for atom_detail in self._conn.get_atoms_for_flow(fd_uuid):
            yield models.adopt(atom_detail)

    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """The atom record ``ad_uuid`` (NotFound if there is none)."""
        atom_detail: AtomDetail = self._conn.get_atom_details(ad_uuid)
        return models.adopt(atom_detail)

    # -- what the engine needs to run durably -------------------------------------------

    def iter_runs(self, state: str | None = None, limit: int | None = None) -> Iterator[FlowDetail]:
        """Flow records, most recently updated first (tideflow's addition)."""
        for flow_detail in self._conn.iter_runs(state=state, limit=limit):
            yield models.adopt(flow_detail)

    def save_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None = None,
        flow_changed: bool = True,
    ) -> None:
        """Write a flow record and some atom records in one transaction."""
        self._conn.save_round(flow_detail, atom_details, owner=owner, flow_changed=flow_changed)

    def claim_run(self, fd_uuid: str, owner: str, book: Any = None) -> None:
        """Make ``owner`` the engine running ``fd_uuid`` (creating it from ``book``)."""
        if book is None:
            self._conn.claim_run(fd_uuid, owner)
        else:
            self._conn.claim_run(fd_uuid, owner, book)

    def release_run(self, fd_uuid: str, owner: str) -> None:
        """Stop owning ``fd_uuid``."""
        self._conn.release_run(fd_uuid, owner)
