"""The in-memory store: records live in this process, as the very objects the engine updates.

Because the store holds the engine's own record objects, every change the engine
makes is visible through the store at once: writing through costs nothing. Durable
stores copy records out at each commit instead.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from tideflow.errors import NotFoundError, RunOwnedError
from tideflow.persistence._owners import describe_owner, may_take_over, released
from tideflow.persistence._tree import RecordTree
from tideflow.persistence.models import AtomDetail, FlowDetail, FlowIndex, LogBook

__all__ = ["MemoryBackend", "MemoryConnection"]


class MemoryBackend:
    """A store that keeps log books in memory (``memory://``)."""

    #: Records are shared, not copied: the engine need not write changes back.
    shares_records = True

    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        self._conf = dict(conf or {"connection": "memory://"})
        unknown = sorted(set(self._conf) - {"connection"})
        if unknown:
            raise TypeError(
                f"the memory store takes no options, got {unknown}: pass just the URL 'memory://'"
            )
        self._books: dict[str, LogBook] = {}
        # flow record uuid -> the log book holding it. Kept in step by LogBook.add()
        # for every book saved here (records are shared: a book gains flows behind the
        # store's back), so a lookup never looks through the books; checked on use
        # all the same (a destroyed book leaves its entries behind)
        self._found_in = FlowIndex()
        self._owners: dict[str, str] = {}  # flow record uuid -> owner token
        # flow record uuid -> when it was last written (a counter: newest is highest)
        self._touched: dict[str, int] = {}
        self._clock = itertools.count()
        self._lock = threading.RLock()

    def _touch(self, fd_uuid: str) -> None:
        self._touched[fd_uuid] = next(self._clock)

    def _flow(self, fd_uuid: str) -> FlowDetail:
        """The flow record ``fd_uuid`` held in some log book (NotFoundError if none).

        Through the index, at once: a store that has run thousands of jobs would
        otherwise look through every book for each. Only an entry the index holds but
        that proves wrong (its book destroyed, or the record taken out of it) makes the
        store look through the books."""
        where = self._found_in.get(fd_uuid)
        if where is None:
            raise NotFoundError(f"no flow record with uuid {fd_uuid!r} in this memory store")
        book = self._books.get(where)
        found = None if book is None else book.find(fd_uuid)
        if found is not None:
            return found
        for book in self._books.values():
            found = book.find(fd_uuid)
            if found is not None:
                self._found_in[fd_uuid] = book.uuid
                return found
        del self._found_in[fd_uuid]
        raise NotFoundError(f"no flow record with uuid {fd_uuid!r} in this memory store")

    def _index(self, book: LogBook) -> None:
        """Index ``book``'s flow records, and have the book keep the index in step."""
        index = self._found_in
        if not any(ref() is index for ref in book._indexes):
            book._indexes = (
                *(ref for ref in book._indexes if ref() is not None),
                weakref.ref(index),
            )
        for fd_uuid in book._flows:
            index[fd_uuid] = book.uuid

    def _unindex(self, book: LogBook) -> None:
        """Forget ``book``'s flow records, and stop the book keeping the index."""
        index = self._found_in
        book._indexes = tuple(ref for ref in book._indexes if ref() not in (index, None))
        for fd_uuid in book._flows:
            if index.get(fd_uuid) == book.uuid:
                del index[fd_uuid]

    @property
    def memory(self) -> RecordTree:
        """The stored records as a read-only tree of paths (``pformat()``, ``ls``, ``ls_r``)."""
        return RecordTree(lambda: (list(self._books.values()), ()))

    def get_connection(self) -> MemoryConnection:
        """A connection to this store (connections share the store's records)."""
        return MemoryConnection(self)

    def close(self) -> None:
        """Nothing to release for memory."""


class MemoryConnection:
    """Reads and writes log books, flow records and atom records of a MemoryBackend."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend

    def __enter__(self) -> MemoryConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release for memory."""

    def upgrade(self) -> None:
        """Nothing to migrate for memory."""

    def validate(self) -> None:
        """Memory is always usable."""

    def clear_all(self) -> None:
        """Forget every log book."""
        with self.backend._lock:
            for book in self.backend._books.values():
                self.backend._unindex(book)
            self.backend._books.clear()
            self.backend._owners.clear()
            self.backend._touched.clear()
            self.backend._found_in.clear()

    def save_logbook(self, book: LogBook) -> LogBook:
        """Store ``book`` (and the flow records in it)."""
        with self.backend._lock:
            self.backend._books[book.uuid] = book
            self.backend._index(book)
            for flow_detail in book:
                self.backend._touch(flow_detail.uuid)
        return book

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """The log book with ``book_uuid``."""
        try:
            return self.backend._books[book_uuid]
        except KeyError:
            raise NotFoundError(
                f"no log book with uuid {book_uuid!r} in this memory store"
            ) from None

    def get_logbooks(self, lazy: bool = False) -> list[LogBook]:
        """Every stored log book."""
        return list(self.backend._books.values())

    def destroy_logbook(self, book_uuid: str) -> None:
        """Remove a log book."""
        with self.backend._lock:
            book = self.backend._books.pop(book_uuid, None)
            if book is None:
                raise NotFoundError(f"no log book with uuid {book_uuid!r} in this memory store")
            self.backend._unindex(book)

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> list[FlowDetail]:
        """The flow records of one log book."""
        return list(self.get_logbook(book_uuid))

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record with ``fd_uuid`` (with its atoms: memory shares the object)."""
        return self.backend._flow(fd_uuid)

    def get_atoms_for_flow(self, fd_uuid: str) -> list[AtomDetail]:
        """The atom records of one flow record."""
        return list(self.get_flow_details(fd_uuid))

    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """The atom record with ``ad_uuid``."""
        for book in self.backend._books.values():
            for flow_detail in book:
                found = flow_detail.find(ad_uuid)
                if found is not None:
                    return found
        raise NotFoundError(f"no atom record with uuid {ad_uuid!r} in this memory store")

    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Nothing to copy (the store holds the same object); NotFoundError if never saved."""
        with self.backend._lock:
            stored = self.backend._flow(flow_detail.uuid)
            if stored is not flow_detail:
                # a copy of a stored record: its atoms and fields replace the stored ones
                stored.state = flow_detail.state
                stored.meta = flow_detail.meta
                stored.injected = flow_detail.injected
                for atom_detail in flow_detail:
                    stored.add(atom_detail)
            self.backend._touch(flow_detail.uuid)
        return stored

    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Nothing to copy (the store holds the same object); NotFoundError if never saved."""
        self.get_atom_details(atom_detail.uuid)
        return atom_detail

    def iter_runs(self, state: str | None = None, limit: int | None = None) -> list[FlowDetail]:
        """Flow records, most recently written first, optionally only those in ``state``."""
        touched = self.backend._touched
        flows = [
            flow_detail
            for book in self.backend._books.values()
            for flow_detail in book
            if state is None or str(flow_detail.state) == state
        ]
        flows.sort(key=lambda f: touched.get(f.uuid, -1), reverse=True)
        return flows if limit is None else flows[:limit]

    def save_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None = None,
        flow_changed: bool = True,
    ) -> None:
        """Nothing to copy; NotFoundError if never saved; with ``owner``, check it owns the run."""
        with self.backend._lock:
            self.backend._flow(flow_detail.uuid)
            if owner is not None:
                self._check_owner(flow_detail.uuid, owner)
            self.backend._touch(flow_detail.uuid)

    def _check_owner(self, fd_uuid: str, owner: str) -> None:
        current = self.backend._owners.get(fd_uuid)
        if current != owner:
            raise RunOwnedError(
                f"flow record {fd_uuid} is no longer run by this engine"
                + (f": {describe_owner(current)} took it over" if current else "")
            )

    def claim_run(self, fd_uuid: str, owner: str, book: LogBook | None = None) -> None:
        """Make ``owner`` the engine running ``fd_uuid`` (RunOwnedError if another is);
        a record not stored yet is saved from ``book`` first."""
        with self.backend._lock:
            try:
                self.backend._flow(fd_uuid)
            except NotFoundError:
                if book is None:
                    raise
                self.save_logbook(book)
                self.backend._flow(fd_uuid)
            current = self.backend._owners.get(fd_uuid)
            if not may_take_over(current, owner):
                raise RunOwnedError(
                    f"flow record {fd_uuid} is being run by another engine in this process "
                    f"({describe_owner(current or '?')}); wait for it to finish or suspend it"
                )
            self.backend._owners[fd_uuid] = owner
            self.backend._touch(fd_uuid)

    def release_run(self, fd_uuid: str, owner: str) -> None:
        """Stop owning ``fd_uuid``."""
        with self.backend._lock:
            if self.backend._owners.get(fd_uuid) == owner:
                tombstone = released(owner)
                if tombstone is None:
                    del self.backend._owners[fd_uuid]
                else:
                    self.backend._owners[fd_uuid] = tombstone
                self.backend._touch(fd_uuid)
