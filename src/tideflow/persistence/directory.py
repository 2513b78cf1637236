"""The directory store: one JSON document per record, each written by atomic rename.

``file:///abs/dir`` or ``dir:///abs/dir`` (TaskFlow's ``{'connection': 'dir', 'path':
'/abs/dir'}`` too). The documents are the rows of :mod:`tideflow.persistence._records`
(values inside them are text made by the store's codec), laid out as::

    tideflow-store.json            {"store": "tideflow directory store",
                                    "schema_version": 1, "codec": "json"}
    tideflow-store.lock            the file locked while a connection reads or writes
    books/<book uuid>.json         a log book row
    flows/<flow uuid>.json         a flow row, plus "owner" (the engine running it, or null)
    atoms/<flow uuid>/<atom uuid>.json   an atom row
    journal.json                   a write of several documents under way (see below)

Every document is written to a temporary file beside it, flushed and ``fsync``-ed,
renamed over the old one with ``os.replace``, and its directory ``fsync``-ed: a reader
sees the old document or the new one, never a part, and a crash after a write method
returns loses nothing it wrote.

A write that touches several documents (``save_round``, ``save_logbook``,
``update_flow_details``, ``destroy_logbook``, ``clear_all``) is all-or-nothing: the whole
change is first written as one journal document (atomically, as above), then applied
document by document, then the journal is removed. Whoever takes the store's lock next
(a reader or a writer, in this process or another) and finds a journal applies it
first, so a crash in the middle of applying is repaired on the next use, and nobody
ever reads half a round. The journal is the store's, not a flow's: one write is under
way at a time.

Every read and write holds the store's lock: ``fcntl.flock`` on
``tideflow-store.lock`` (other processes, and other backend objects of this process)
plus a thread lock (threads sharing this backend). Claims and fenced writes compare
the flow document's ``owner`` under that lock.

This store is for small setups (a laptop, tests, a few hundred runs): reads and writes
are serialised, ``iter_runs`` reads every flow document, and finding an atom record by
uuid alone looks in every flow's folder. For many runs or many processes use SQLite,
PostgreSQL or MariaDB.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final

from tideflow.errors import NotFoundError, RunOwnedError, StoreError, StoreVersionError
from tideflow.persistence._records import (
    ATOM_COLUMNS,
    BOOK_COLUMNS,
    FLOW_COLUMNS,
    SCHEMA_VERSION,
    atom_from_row,
    atom_row,
    book_from_row,
    book_row,
    describe_owner,
    flow_from_row,
    flow_row,
    may_take_over,
    released,
)
from tideflow.persistence.codec import Codec, codec_named
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook

__all__ = ["DirBackend", "DirConnection"]

_MARKER: Final = "tideflow-store.json"
_LOCK: Final = "tideflow-store.lock"
_JOURNAL: Final = "journal.json"
_TMP_PREFIX: Final = ".tideflow-tmp-"
_KIND: Final = "tideflow directory store"
_SCHEMES: Final = ("file", "dir")
_OPTIONS: Final = ("connection", "path", "codec")
#: uuids become file names: nothing that could leave the folder or hide the file
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")

_Doc = dict[str, Any]
#: One step of a journal: {"op": "put", "path": rel, "doc": {...}}, {"op": "delete",
#: "path": rel}, {"op": "rmtree", "path": rel} or {"op": "clear"}.
_Op = dict[str, Any]


class DirBackend:
    """A store keeping one JSON document per record in a directory (small setups).

    ``path`` is the directory (created on first use if missing; a directory holding
    other files is refused). ``codec`` is ``'json'`` (the default) or ``'pickle'``.
    """

    #: Reads build new record objects from the documents.
    shares_records = False

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        codec: str | Codec = "json",
        scheme: str = "dir",
    ) -> None:
        if scheme not in _SCHEMES:
            raise ValueError(f"a directory store's scheme is 'file' or 'dir', got {scheme!r}")
        text = os.fspath(path)
        if not text:
            raise ValueError("a directory store needs a path, e.g. 'dir:///var/lib/runs'")
        self.path = os.path.abspath(text)
        self.codec: Codec = codec_named(codec)
        self.url = f"{scheme}://{self.path}"
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lock_pid = 0  # the process that opened _lock_fd

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DirBackend:
        """Open the store a TaskFlow-style configuration names.

        ``config["connection"]`` is ``'file:///abs/dir'`` or ``'dir:///abs/dir'``, or just
        ``'file'`` / ``'dir'`` with the directory in ``config["path"]``; ``codec`` is the
        other option.
        """
        from tideflow._options import closest  # noqa: PLC0415  # only the registry opens stores

        for key in config:
            if key not in _OPTIONS:
                raise TypeError(
                    f"unknown option {key!r} for a directory store: {closest(key, _OPTIONS)}"
                    f"the known ones are {list(_OPTIONS)}"
                )
        url = str(config.get("connection", "dir"))
        scheme, sep, rest = url.partition("://")
        scheme = scheme.rstrip(":")
        if scheme not in _SCHEMES:
            raise ValueError(
                f"{url!r} is not a directory store URL: use 'file:///abs/dir' or 'dir:///abs/dir'"
            )
        url_path = rest.split("?", 1)[0] if sep else ""
        option = config.get("path")
        option_path = os.fspath(option) if option is not None else ""
        if url_path and option_path and os.path.abspath(url_path) != os.path.abspath(option_path):
            raise ValueError(
                f"the directory store URL {url!r} and path={option_path!r} name two "
                "different directories: give one of them"
            )
        path = url_path or option_path
        if not path:
            raise ValueError(
                f"{url!r} names no directory: use 'dir:///abs/dir', or give path='/abs/dir'"
            )
        codec = config.get("codec", "json")
        return cls(path=path, codec=codec, scheme=scheme)

    def get_connection(self) -> DirConnection:
        """A connection to this store (cheap: connections share the backend's lock file)."""
        return DirConnection(self)

    def close(self) -> None:
        """Close the lock file (the store opens it again if used later). Idempotent."""
        with self._thread_lock:
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                os.close(fd)

    def __repr__(self) -> str:
        return f"<DirBackend {self.url!r}>"

    # -- opening -------------------------------------------------------------------------

    def _where(self, rel: str) -> str:
        return os.path.join(self.path, rel)

    def _read_marker(self) -> _Doc | None:
        """The store's marker document, None if absent; StoreVersionError if it is not ours
        or is newer than this tideflow."""
        where = self._where(_MARKER)
        try:
            with open(where, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            return None
        try:
            marker = json.loads(raw)
        except ValueError as exc:
            raise StoreVersionError(
                f"{where} is not a tideflow store marker (not JSON: {exc}); the directory "
                f"{self.path} is damaged or is not a directory store: restore the file or use "
                "another directory",
                cause=exc,
            ) from exc
        version = marker.get("schema_version") if isinstance(marker, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            raise StoreVersionError(
                f"{where} is not a tideflow store marker (no schema_version); the directory "
                f"{self.path} is not a directory store: point the store at another directory"
            )
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"directory store {self.path} was written by a newer tideflow (schema version "
                f"{version}; this tideflow reads version {SCHEMA_VERSION} and older): upgrade "
                "tideflow to open it. Nothing was changed"
            )
        found: _Doc = marker
        return found

    def _refuse_if_not_a_store(self) -> _Doc | None:
        """Refuse (changing nothing) a path that is a file, or a directory of other things."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StoreVersionError(
                f"{self.path} is a file, not a directory store: a directory store is a "
                "directory (use sqlite:///... for a single-file store)"
            )
        marker = self._read_marker()
        if marker is None and os.path.isdir(self.path):
            others = sorted(
                name
                for name in os.listdir(self.path)
                if name != _LOCK and not name.startswith(_TMP_PREFIX)
            )
            if others:
                raise StoreVersionError(
                    f"{self.path} is not a tideflow directory store: it holds {others[:5]} but "
                    f"no {_MARKER}. Nothing was changed; point the store at an empty or new "
                    "directory"
                )
        return marker

    def _open(self) -> int:
        """The lock file's descriptor, creating the store on first use (thread lock held)."""
        if self._lock_fd is not None:
            if self._lock_pid == os.getpid():
                return self._lock_fd
            # a forked child shares the parent's open lock file, and with it the lock
            # itself: it needs a lock file of its own to be kept apart from the parent
            os.close(self._lock_fd)
            self._lock_fd = None
        self._refuse_if_not_a_store()
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self._where(_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._create_layout()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd, self._lock_pid = fd, os.getpid()
        return fd

    def _create_layout(self) -> None:
        """Write the marker and folders if missing (store lock held): idempotent."""
        marker = self._refuse_if_not_a_store()  # again: another process may have raced us
        for folder in ("books", "flows", "atoms"):
            os.makedirs(self._where(folder), exist_ok=True)
        if marker is None or marker.get("schema_version") != SCHEMA_VERSION:
            _write_json(
                self._where(_MARKER),
                {"store": _KIND, "schema_version": SCHEMA_VERSION, "codec": self.codec.name},
            )
        _fsync_dir(self.path)

    @contextmanager
    def _session(self, what: str) -> Iterator[None]:
        """Hold the store's locks for one operation, having applied any pending journal;
        an OSError becomes a StoreError saying what was being done and where."""
        with self._thread_lock:
            try:
                fd = self._open()
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise self._error(what, exc) from exc
            try:
                self._recover()
                yield
            except OSError as exc:
                raise self._error(what, exc) from exc
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _error(self, what: str, exc: OSError) -> StoreError:
        return StoreError(
            f"directory store {self.path}: {what} failed ({type(exc).__name__}: {exc}); check "
            "that the directory is writable and the disk has room, then resume the run",
            cause=exc,
        )

    # -- documents (store lock held) -------------------------------------------------------

    def _read(self, rel: str, columns: Sequence[str]) -> _Doc | None:
        """The document at ``rel``, None if absent; StoreError naming the file if damaged."""
        where = self._where(rel)
        try:
            with open(where, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise StoreError(
                f"directory store {self.path}: record file {where} is not valid JSON ({exc}); "
                "restore it from a backup, or delete it to lose that record",
                cause=exc,
            ) from exc
        if not isinstance(doc, dict) or not all(c in doc for c in columns):
            missing = [c for c in columns if not isinstance(doc, dict) or c not in doc]
            raise StoreError(
                f"directory store {self.path}: record file {where} is not a record (missing "
                f"{missing}); restore it from a backup, or delete it to lose that record"
            )
        return doc

    def _listdir(self, rel: str) -> list[str]:
        """The record uuids in folder ``rel`` (none if it does not exist)."""
        try:
            names = os.listdir(self._where(rel))
        except FileNotFoundError:
            return []
        return [n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")]

    def _commit(self, ops: list[_Op]) -> None:
        """Apply ``ops`` all or nothing: through the journal unless it is one document."""
        if not ops:
            return
        if len(ops) == 1 and ops[0]["op"] == "put":
            self._apply(ops)
            return
        journal = self._where(_JOURNAL)
        _write_json(journal, {"ops": ops})  # the commit point
        self._apply(ops)
        os.unlink(journal)
        _fsync_dir(self.path)

    def _recover(self) -> None:
        """Finish the write a crashed (or failed) writer left in the journal."""
        where = self._where(_JOURNAL)
        try:
            with open(where, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            return
        try:
            ops = json.loads(raw)["ops"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"directory store {self.path}: the journal {where} of an unfinished write is "
                f"damaged ({exc}); the records may hold part of that write: check them, then "
                "delete the journal",
                cause=exc,
            ) from exc
        self._apply(ops)
        os.unlink(where)
        _fsync_dir(self.path)

    def _apply(self, ops: Sequence[_Op]) -> None:
        """Carry out journal steps; each is idempotent, so applying twice is harmless."""
        touched: set[str] = set()
        for op in ops:
            kind = op["op"]
            if kind == "clear":
                for folder in ("books", "flows", "atoms"):
                    where = self._where(folder)
                    if os.path.isdir(where):
                        shutil.rmtree(where)
                    os.makedirs(where, exist_ok=True)
                touched.add(self.path)
                continue
            where = self._where(op["path"])
            if kind == "put":
                os.makedirs(os.path.dirname(where), exist_ok=True)
                _write_json(where, op["doc"], sync_dir=False)
                touched.add(os.path.dirname(where))
            elif kind == "delete":
                with suppress(FileNotFoundError):
                    os.unlink(where)
                touched.add(os.path.dirname(where))
            elif kind == "rmtree":
                if os.path.isdir(where):
                    shutil.rmtree(where)
                touched.add(os.path.dirname(where))
            else:
                raise StoreError(
                    f"directory store {self.path}: unknown journal step {kind!r} (written by "
                    "another version of tideflow?)"
                )
        for folder in sorted(touched, key=len, reverse=True):
            _fsync_dir(folder)


class DirConnection:
    """Reads and writes the records of a :class:`DirBackend` (a context manager)."""

    def __init__(self, backend: DirBackend) -> None:
        self.backend = backend
        self._closed = False

    def __enter__(self) -> DirConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the connection back (it holds nothing open). Idempotent."""
        self._closed = True

    @contextmanager
    def _session(self, what: str) -> Iterator[DirBackend]:
        if self._closed:
            raise StoreError(
                f"this connection to directory store {self.backend.path} is closed: get "
                "another with backend.get_connection()"
            )
        with self.backend._session(what):
            yield self.backend

    # -- schema -------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Create the store's marker and folders (version 1 is the only layout yet)."""
        with self._session("creating the store"):
            self.backend._create_layout()

    def validate(self) -> None:
        """Check that the directory is a store of this version and is readable."""
        with self._session("checking the store") as store:
            marker = store._read_marker()
            if marker is None or marker.get("schema_version") != SCHEMA_VERSION:
                found = None if marker is None else marker.get("schema_version")
                raise StoreVersionError(
                    f"directory store {store.path} has schema version {found}, not "
                    f"{SCHEMA_VERSION}: call upgrade() on a connection to bring it up to date"
                )
            for folder in ("books", "flows", "atoms"):
                os.listdir(store._where(folder))

    def clear_all(self) -> None:
        """Delete every log book, flow record and atom record."""
        with self._session("deleting every record") as store:
            store._commit([{"op": "clear"}])

    # -- log books ------------------------------------------------------------------------

    def save_logbook(self, book: LogBook) -> LogBook:
        """Write a log book with all its flow and atom records, together."""
        with self._session(f"saving log book {book.name!r}") as store:
            self._write_book(store, book)
            return self._book(book.uuid, lazy=False)

    def _write_book(self, store: DirBackend, book: LogBook) -> None:
        """Write ``book`` and its records, all or nothing (the store's lock held)."""
        ops: list[_Op] = [
            {"op": "put", "path": _book_path(book.uuid), "doc": book_row(book, store.codec)}
        ]
        for flow_detail in book:
            stored = store._read(_flow_path(flow_detail.uuid), FLOW_COLUMNS)
            ops.extend(self._flow_ops(flow_detail, list(flow_detail), stored, book.uuid))
        store._commit(ops)

    def get_logbook(self, book_uuid: str, lazy: bool = False) -> LogBook:
        """The log book ``book_uuid`` (its flow records without atoms if ``lazy``)."""
        with self._session(f"reading log book {book_uuid}"):
            return self._book(book_uuid, lazy)

    def get_logbooks(self, lazy: bool = False) -> list[LogBook]:
        """Every log book, oldest first."""
        with self._session("reading the log books") as store:
            rows = [store._read(_book_path(u), BOOK_COLUMNS) for u in store._listdir("books")]
            found = [r for r in rows if r is not None]
            found.sort(key=lambda r: (r["created_at"], r["uuid"]))
            flows = self._flow_rows()
            return [self._book_from(row, flows, lazy) for row in found]

    def destroy_logbook(self, book_uuid: str) -> None:
        """Delete a log book with its flow and atom records."""
        with self._session(f"deleting log book {book_uuid}") as store:
            if store._read(_book_path(book_uuid), BOOK_COLUMNS) is None:
                raise self._missing("log book", book_uuid)
            ops: list[_Op] = []
            for row in self._flow_rows():
                if row["book_uuid"] == book_uuid:
                    ops.append({"op": "rmtree", "path": _atoms_dir(row["uuid"])})
                    ops.append({"op": "delete", "path": _flow_path(row["uuid"])})
            ops.append({"op": "delete", "path": _book_path(book_uuid)})
            store._commit(ops)

    # -- flow records -------------------------------------------------------------------

    def get_flows_for_book(self, book_uuid: str, lazy: bool = False) -> list[FlowDetail]:
        """The flow records of a log book, oldest first."""
        with self._session(f"reading log book {book_uuid}"):
            return list(self._book(book_uuid, lazy))

    def get_flow_details(self, fd_uuid: str, lazy: bool = False) -> FlowDetail:
        """The flow record ``fd_uuid``, with its atom records unless ``lazy``."""
        with self._session(f"reading flow record {fd_uuid}"):
            return self._flow(self._flow_doc(fd_uuid), lazy)

    def update_flow_details(self, flow_detail: FlowDetail) -> FlowDetail:
        """Write a stored flow record and all its atom records, together."""
        with self._session(f"saving flow record {flow_detail.name!r}") as store:
            stored = self._flow_doc(flow_detail.uuid)
            store._commit(self._flow_ops(flow_detail, list(flow_detail), stored, None))
            return self._flow(self._flow_doc(flow_detail.uuid), lazy=False)

    def iter_runs(self, state: str | None = None, limit: int | None = None) -> Iterator[FlowDetail]:
        """Flow records without atoms, most recently updated first (reads every flow
        document: this store is for small setups)."""
        with self._session("listing runs"):
            rows = self._flow_rows()
        if state is not None:
            rows = [r for r in rows if r["state"] == str(state)]
        rows.sort(key=lambda r: (r["updated_at"], r["uuid"]), reverse=True)
        if limit is not None:
            rows = rows[: max(limit, 0)]
        codec = self.backend.codec
        return (flow_from_row(row, codec) for row in rows)

    # -- atom records -------------------------------------------------------------------

    def get_atoms_for_flow(self, fd_uuid: str) -> list[AtomDetail]:
        """The atom records of a flow record, in the order they were first saved."""
        with self._session(f"reading flow record {fd_uuid}"):
            self._flow_doc(fd_uuid)
            return list(self._atoms(fd_uuid))

    def get_atom_details(self, ad_uuid: str) -> AtomDetail:
        """The atom record ``ad_uuid``."""
        with self._session(f"reading atom record {ad_uuid}"):
            return atom_from_row(self._atom_doc(ad_uuid), self.backend.codec)

    def update_atom_details(self, atom_detail: AtomDetail) -> AtomDetail:
        """Write a stored atom record."""
        with self._session(f"saving atom record {atom_detail.name!r}") as store:
            stored = self._atom_doc(atom_detail.uuid)
            flow_uuid = stored["flow_uuid"]
            row = atom_row(atom_detail, flow_uuid, stored["position"], store.codec)
            store._commit(
                [{"op": "put", "path": _atom_path(flow_uuid, atom_detail.uuid), "doc": row}]
            )
            return atom_from_row(row, store.codec)

    # -- running durably ----------------------------------------------------------------

    def save_round(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        owner: str | None = None,
        flow_changed: bool = True,
    ) -> None:
        """Write a flow record and some of its atom records all or nothing; with ``owner``,
        only if ``owner`` still owns the flow record (the flow document is rewritten every
        round, whatever ``flow_changed`` says)."""
        with self._session(f"saving a round of flow {flow_detail.name!r}") as store:
            stored = self._flow_doc(flow_detail.uuid)
            if owner is not None and stored.get("owner") != owner:
                current = stored.get("owner")
                raise RunOwnedError(
                    f"flow record {flow_detail.uuid} ({flow_detail.name!r}) in directory store "
                    f"{store.path} is no longer run by this engine: "
                    + (f"{describe_owner(current)} owns it" if current else "nobody owns it")
                    + "; nothing of this round was written"
                )
            store._commit(self._flow_ops(flow_detail, atom_details, stored, None))

    def claim_run(self, fd_uuid: str, owner: str, book: LogBook | None = None) -> None:
        """Make ``owner`` the engine running ``fd_uuid`` (RunOwnedError if a live one is);
        a record not stored yet is saved from ``book`` first, under the same lock."""
        with self._session(f"claiming flow record {fd_uuid}") as store:
            try:
                doc = self._flow_doc(fd_uuid)
            except NotFoundError:
                if book is None:
                    raise
                self._write_book(store, book)  # under the same lock: nobody slips in
                doc = self._flow_doc(fd_uuid)
            current = doc.get("owner")
            if not may_take_over(current, owner):
                raise RunOwnedError(
                    f"flow record {fd_uuid} ({doc['name']!r}) in directory store {store.path} "
                    f"is being run by {describe_owner(current or '?')}; wait for that run to "
                    "finish or be suspended, then try again"
                )
            if current != owner:
                doc["owner"] = owner
                store._commit([{"op": "put", "path": _flow_path(fd_uuid), "doc": doc}])

    def release_run(self, fd_uuid: str, owner: str) -> None:
        """Stop owning ``fd_uuid`` (nothing happens if ``owner`` does not own it)."""
        with self._session(f"releasing flow record {fd_uuid}") as store:
            if not _SAFE_ID.fullmatch(fd_uuid):
                return
            doc = store._read(_flow_path(fd_uuid), FLOW_COLUMNS)
            if doc is not None and doc.get("owner") == owner:
                doc["owner"] = released(owner)
                store._commit([{"op": "put", "path": _flow_path(fd_uuid), "doc": doc}])

    # -- helpers (store lock held) --------------------------------------------------------

    def _missing(self, what: str, uuid: str) -> NotFoundError:
        return NotFoundError(f"no {what} with uuid {uuid!r} in directory store {self.backend.path}")

    def _flow_doc(self, fd_uuid: str) -> _Doc:
        doc = (
            self.backend._read(_flow_path(fd_uuid), FLOW_COLUMNS)
            if _SAFE_ID.fullmatch(fd_uuid)
            else None
        )
        if doc is None:
            raise self._missing("flow record", fd_uuid)
        return doc

    def _atom_doc(self, ad_uuid: str) -> _Doc:
        store = self.backend
        if _SAFE_ID.fullmatch(ad_uuid):
            name = f"{ad_uuid}.json"
            try:
                folders = os.listdir(store._where("atoms"))
            except FileNotFoundError:
                folders = []
            for folder in folders:
                if os.path.exists(store._where(os.path.join("atoms", folder, name))):
                    doc = store._read(os.path.join("atoms", folder, name), ATOM_COLUMNS)
                    if doc is not None:
                        return doc
        raise self._missing("atom record", ad_uuid)

    def _flow_rows(self) -> list[_Doc]:
        store = self.backend
        rows = (store._read(_flow_path(u), FLOW_COLUMNS) for u in store._listdir("flows"))
        return [r for r in rows if r is not None]

    def _book(self, book_uuid: str, lazy: bool) -> LogBook:
        row = (
            self.backend._read(_book_path(book_uuid), BOOK_COLUMNS)
            if _SAFE_ID.fullmatch(book_uuid)
            else None
        )
        if row is None:
            raise self._missing("log book", book_uuid)
        return self._book_from(row, self._flow_rows(), lazy)

    def _book_from(self, row: _Doc, flows: list[_Doc], lazy: bool) -> LogBook:
        book = book_from_row(row, self.backend.codec)
        mine = sorted(
            (f for f in flows if f["book_uuid"] == row["uuid"]),
            key=lambda f: (f["created_at"], f["uuid"]),
        )
        for flow in mine:
            book.add(self._flow(flow, lazy))
        book.updated_at = row["updated_at"]  # add() stamps the time of this read
        return book

    def _flow(self, doc: _Doc, lazy: bool) -> FlowDetail:
        detail = flow_from_row(doc, self.backend.codec)
        if not lazy:
            for atom in self._atoms(doc["uuid"]):
                detail.add(atom)
        return detail

    def _atoms(self, fd_uuid: str) -> list[AtomDetail]:
        store = self.backend
        folder = _atoms_dir(fd_uuid)
        rows = (
            store._read(os.path.join(folder, f"{u}.json"), ATOM_COLUMNS)
            for u in store._listdir(folder)
        )
        found = sorted((r for r in rows if r is not None), key=lambda r: (r["position"], r["name"]))
        return [atom_from_row(r, store.codec) for r in found]

    def _flow_ops(
        self,
        flow_detail: FlowDetail,
        atom_details: Sequence[AtomDetail],
        stored: _Doc | None,
        book_uuid: str | None,
    ) -> list[_Op]:
        """The journal steps writing a flow row and atom rows, every value encoded first.

        A stored flow keeps its book (unless ``book_uuid`` moves it), owner and creation
        time; a stored atom keeps its position; a new one goes after the flow's others
        (taking the place of a stored atom of the same name, which it replaces).
        """
        store = self.backend
        fd_uuid = _checked_id(flow_detail.uuid, "flow record", store.path)
        row = flow_row(flow_detail, book_uuid, store.codec)
        if stored is not None:
            row["created_at"] = stored["created_at"]
            if book_uuid is None:
                row["book_uuid"] = stored["book_uuid"]
        row["owner"] = stored.get("owner") if stored is not None else None
        folder = _atoms_dir(fd_uuid)
        on_disk = set(store._listdir(folder)) if stored is not None else set()
        by_name: dict[str, _Doc] | None = None  # every stored atom, read only if needed
        next_position = 0
        positions: dict[str, int] = {}
        ops: list[_Op] = []
        rows: list[_Doc] = []
        for detail in atom_details:
            uuid = _checked_id(detail.uuid, f"atom record {detail.name!r}", store.path)
            position = positions.get(uuid)
            if position is None and uuid in on_disk:
                old = store._read(os.path.join(folder, f"{uuid}.json"), ATOM_COLUMNS)
                position = old["position"] if old is not None else None
            if position is None:
                if by_name is None:
                    by_name = {}
                    for u in on_disk:
                        doc = store._read(os.path.join(folder, f"{u}.json"), ATOM_COLUMNS)
                        if doc is not None:
                            by_name[doc["name"]] = doc
                    next_position = 1 + max((d["position"] for d in by_name.values()), default=-1)
                same_name = by_name.get(detail.name)
                if same_name is not None and same_name["uuid"] != uuid:
                    position = same_name["position"]
                    ops.append({"op": "delete", "path": _atom_path(fd_uuid, same_name["uuid"])})
                else:
                    position = next_position
                    next_position += 1
                by_name[detail.name] = {"uuid": uuid, "position": position}
            positions[uuid] = position
            rows.append(atom_row(detail, fd_uuid, position, store.codec))
        ops.append({"op": "put", "path": _flow_path(fd_uuid), "doc": row})
        ops.extend({"op": "put", "path": _atom_path(fd_uuid, r["uuid"]), "doc": r} for r in rows)
        return ops


# -- paths and files ---------------------------------------------------------------------


def _checked_id(uuid: str, what: str, root: str) -> str:
    if not isinstance(uuid, str) or not _SAFE_ID.fullmatch(uuid):
        raise StoreError(
            f"directory store {root}: {what} has uuid {uuid!r}, which cannot be a file name "
            "(letters, digits, '_', '-' and '.' only, not starting with '.')"
        )
    return uuid


def _book_path(uuid: str) -> str:
    return os.path.join("books", f"{uuid}.json")


def _flow_path(uuid: str) -> str:
    return os.path.join("flows", f"{uuid}.json")


def _atoms_dir(flow_uuid: str) -> str:
    return os.path.join("atoms", flow_uuid)


def _atom_path(flow_uuid: str, uuid: str) -> str:
    return os.path.join("atoms", flow_uuid, f"{uuid}.json")


def _write_json(where: str, doc: Any, *, sync_dir: bool = True) -> None:
    """Write ``doc`` to ``where`` atomically and durably (temp file, fsync, rename)."""
    folder, name = os.path.split(where)
    tmp = os.path.join(folder, f"{_TMP_PREFIX}{name}.{os.getpid()}.{threading.get_ident()}")
    data = json.dumps(doc, separators=(",", ":"), allow_nan=True).encode("utf-8")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, where)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    """Make renames and deletions in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
