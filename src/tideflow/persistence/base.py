"""The store contract: what a backend and its connections do, method by method.

A *backend* is a store opened from a URL (``tideflow.connect(url)``); it hands out
*connections*, which read and write records. Every store of tideflow implements these
protocols, and ``tests/contract`` runs one suite against each of them: a third-party
store that passes that suite works with the engine. The methods are TaskFlow's
(``taskflow.persistence.base.Connection``), so TaskFlow programs that talk to a store
directly keep working, plus the few an engine needs to run durably:
:meth:`Connection.save_round`, :meth:`Connection.claim_run`,
:meth:`Connection.release_run` and :meth:`Connection.iter_runs`.

What every store guarantees:

- A write method returns only once what it wrote is committed: a crash after it
  returns loses nothing it wrote. A write that fails raises
  :class:`~tideflow.errors.StoreError` (the driver's error chained as its cause) and
  leaves what was committed before it as it was.
- :meth:`Connection.save_round` writes a flow record and several atom records in one
  transaction: all of them or none. The engine calls it once per scheduling round.
- A value the store's codec cannot keep raises
  :class:`~tideflow.errors.UnstorableValueError` (naming the atom) before anything of
  that write is stored.
- Reads return copies: changing a returned record changes nothing stored until it is
  written back. (The memory store is the exception: ``shares_records`` is true and it
  hands out the very objects the engine updates.)
- A missing record raises :class:`~tideflow.errors.NotFoundError` naming its uuid.
- Atom records of a flow record come back in the order they were first saved.
- Opening a store whose schema is newer than this tideflow, or something that is not a
  store, raises :class:`~tideflow.errors.StoreVersionError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook

__all__ = ["Backend", "Connection"]


@runtime_checkable
class Backend(Protocol):
    """A store: where run records live. Safe to share between threads."""

    #: True if the store holds the engine's own record objects (memory): the engine
    #: then never writes back. Copying stores say False.
    shares_records: bool

    def get_connection(self) -> Connection:
        """A connection to the store; close it when done (it is a context manager)."""
        ...

    def close(self) -> None:
        """Release what the store holds open (pools, files). Idempotent."""
        ...


@runtime_checkable
class Connection(Protocol):
    """Reads and writes records of one backend. Use from one thread at a time."""

    def __enter__(self) -> Connection: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None:
        """Give the connection back. Idempotent."""
        ...

    # -- schema -------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the store's tables (or files), or migrate an older layout to this one.

        Idempotent; safe to call from several processes at once. Stores also upgrade
        themselves on first use, so calling it is never required.
        """
        ...

    def validate(self) -> None:
        """Check the store is reachable and its schema is this version's; raise StoreError
        (StoreVersionError for a schema mismatch) saying what is wrong if not."""
        ...

    def clear_all(self) -> None:
        """Delete every log book, flow record and atom record."""
        ...

    # -- log books ------------------------------------------------------------------------

    def save_logbook(self, book: LogBook) -> LogBook:
        """Insert or update a log book with every flow record and atom record in it.

        Returns the stored book as now recorded.
        """
        ...

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """The log book ``book_uuid``; with ``lazy``, its flow records may hold no atoms
        (copying stores leave them out; memory hands out its own objects, atoms and all)."""
        ...

    def get_logbooks(self, lazy: bool = False) -> Iterable[LogBook]:
        """Every log book."""
        ...

    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a log book with its flow and atom records (NotFoundError if missing)."""
        ...

    # -- flow records -------------------------------------------------------------------

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> Iterable[FlowDetail]:
        """The flow records of a log book."""
        ...

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record ``fd_uuid``, with its atom records unless ``lazy`` (as above)."""
        ...

    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Write an existing flow record and its atom records (new atoms are added).

        NotFoundError if the flow record was never saved in a log book.
        """
        ...

    def iter_runs(self, state: str | None = None, limit: int | None = None) -> Iterable[FlowDetail]:
        """Flow records (without atoms), most recently updated first, optionally only
        those in ``state``: fast however many runs the store holds.

        "Updated" is as precise as a store can afford: a change to the flow record moves
        it at once, a round that changes only atoms may move it at most once a second
        (the SQLite store, to keep rounds cheap).
        """
        ...

    # -- atom records -------------------------------------------------------------------

    def get_atoms_for_flow(self, fd_uuid: str) -> Iterable[AtomDetail]:
        """The atom records of a flow record, in the order they were first saved."""
        ...

    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """The atom record ``ad_uuid``."""
        ...

    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Write an existing atom record (NotFoundError if it was never saved)."""
        ...

    # -- running durably ----------------------------------------------------------------

    def save_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None = None,
        flow_changed: bool = True,
    ) -> None:
        """Write a flow record and some of its atom records in one transaction.

        Atom records not stored yet are added. With ``owner``, the write is fenced: it
        commits only if ``owner`` still owns the flow record, else RunOwnedError and
        nothing is written. ``flow_changed=False`` says the flow record itself (state,
        meta, store values) is as it was at the last round: a store may then skip
        rewriting it (it must still check the fence).

        Two keywords a store may take, each announced by a class attribute of its
        connections (the engine passes them only then): ``release=True``
        (``releases_in_round``) ends ``owner``'s claim in the round's transaction, as
        ``release_run`` would; ``create=book`` (``creates_in_round``) first creates the
        record from its log book if it is not stored yet, owned by ``owner``, as
        ``claim_run(uuid, owner, book)`` would, in the same transaction where it can.
        """
        ...

    def claim_run(self, fd_uuid: str, owner: str, book: LogBook | None = None) -> None:
        """Make ``owner`` the engine that runs ``fd_uuid``.

        Succeeds if nobody owns it, ``owner`` already does, or its owner was a process
        of this host that has died; else RunOwnedError naming the owner. Owners fenced
        by a job claim (``host:pid:n#token@key``, see
        :mod:`tideflow.persistence._owners`) follow ``may_take_over``: a higher token of
        the same key takes the record over even from a live owner, a lower one never
        does. With ``book``, a record the store does not hold yet is first saved from
        it, in the same transaction as the claim (so a stale claimant cannot overwrite
        a record another created meanwhile).
        """
        ...

    def release_run(self, fd_uuid: str, owner: str) -> None:
        """Stop owning ``fd_uuid`` (nothing happens if ``owner`` no longer owns it). A
        fenced owner leaves its tombstone (``released(owner)``) in place of the owner."""
        ...
