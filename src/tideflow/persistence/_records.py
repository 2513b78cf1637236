"""Records as rows: what every copying store (SQLite, SQL servers, a directory) writes.

One row per log book, flow record and atom record, with the same columns in every
store, so a row means the same thing whichever store holds it. Values (results,
metadata, store values, retry history) are text made by the store's codec; failures
are JSON of :meth:`Failure.to_dict`, with arguments the codec cannot keep written as
their ``repr`` (a failure is always storable). Owner tokens say which engine runs a
flow record now (``host:pid:number``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Final

from tideflow.errors import RecordFormatError, UnstorableValueError
from tideflow.failure import Failure
from tideflow.persistence._owners import (
    describe_owner,
    may_take_over,
    new_owner,
    owner_is_stale,
    released,
)
from tideflow.persistence.codec import Codec, JsonCodec
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook, RetryDetail, TaskDetail
from tideflow.states import AtomState, FlowState, Intention

__all__ = [
    "ATOM_COLUMNS",
    "BOOK_COLUMNS",
    "FLOW_COLUMNS",
    "SCHEMA_VERSION",
    "TOUCH_EVERY",
    "atom_from_row",
    "atom_row",
    "book_from_row",
    "book_row",
    "describe_owner",
    "flow_from_row",
    "flow_row",
    "may_take_over",
    "new_owner",
    "note_written",
    "owner_is_stale",
    "released",
]

#: The version of the record layout (tables, columns, value encoding). A store written
#: by a newer version is refused; an older one is brought up to date by ``upgrade()``.
SCHEMA_VERSION: Final = 1

#: Seconds a round that changed only atoms may leave its flow row unwritten: a changed
#: updated_at costs a new row version and index entries, so a run's updated_at is the
#: time of its last flow-record change, and at most this behind its last atom write.
TOUCH_EVERY: Final = 1.0
_WRITTEN_KEPT: Final = 10_000  # flow records whose last rewrite a store remembers


def note_written(written: dict[str, float], fd_uuid: str, when: float) -> None:
    """Remember in ``written`` that a store rewrote the flow row of ``fd_uuid`` at
    ``when`` (it forgets every other once it remembers too many)."""
    if len(written) > _WRITTEN_KEPT:
        written.clear()
    written[fd_uuid] = when


BOOK_COLUMNS: Final = ("uuid", "name", "meta", "created_at", "updated_at")
FLOW_COLUMNS: Final = (
    "uuid",
    "book_uuid",
    "name",
    "state",
    "meta",
    "injected",
    "owner",
    "created_at",
    "updated_at",
)
ATOM_COLUMNS: Final = (
    "uuid",
    "flow_uuid",
    "name",
    "kind",
    "position",
    "state",
    "intention",
    "results",
    "failure",
    "revert_results",
    "revert_failure",
    "meta",
    "version",
    "history",
    "decision",
    "updated_at",
)


# -- log books ------------------------------------------------------------------------


def book_row(book: LogBook, codec: Codec) -> dict[str, Any]:
    """The row for a log book (its flow records are rows of their own)."""
    return {
        "uuid": book.uuid,
        "name": book.name,
        "meta": codec.dumps(book.meta, f"log book {book.name!r} meta"),
        "created_at": book.created_at,
        "updated_at": book.updated_at if book.updated_at is not None else book.created_at,
    }


def book_from_row(row: Mapping[str, Any], codec: Codec) -> LogBook:
    """The log book a row stands for, without its flow records."""
    book = LogBook(row["name"], row["uuid"])
    book.meta = _loads(codec, row["meta"]) or {}
    book.created_at = row["created_at"]
    book.updated_at = row["updated_at"]
    return book


# -- flow records ---------------------------------------------------------------------


def flow_row(flow_detail: FlowDetail, book_uuid: str | None, codec: Codec) -> dict[str, Any]:
    """The row for a flow record (its atom records are rows of their own).

    ``owner`` is not part of it: only claims and releases write that column.
    """
    name = flow_detail.name
    now = time.time()
    return {
        "uuid": flow_detail.uuid,
        "book_uuid": book_uuid,
        "name": name,
        "state": str(flow_detail.state),
        "meta": codec.dumps(flow_detail.meta, f"flow {name!r} meta"),
        "injected": _dumps_injected(flow_detail, codec),
        "created_at": getattr(flow_detail, "created_at", None) or now,
        "updated_at": now,
    }


def _dumps_injected(flow_detail: FlowDetail, codec: Codec) -> str:
    try:
        return codec.dumps(flow_detail.injected, "store")
    except UnstorableValueError as exc:
        raise UnstorableValueError(
            f"flow {flow_detail.name!r}: {exc.message} (store values given with store= or "
            "inject() are recorded; give this one with inject(..., transient=True) to keep it "
            "in memory only)",
            cause=exc,
        ) from exc


def flow_from_row(row: Mapping[str, Any], codec: Codec) -> FlowDetail:
    """The flow record a row stands for, without its atom records."""
    detail = FlowDetail(row["name"], row["uuid"])
    detail.state = _state(FlowState, row["state"], f"flow {row['name']!r}")
    detail.meta = _loads(codec, row["meta"]) or {}
    detail.injected = _loads(codec, row["injected"]) or {}
    return detail


# -- atom records ---------------------------------------------------------------------


def atom_row(detail: AtomDetail, flow_uuid: str, position: int, codec: Codec) -> dict[str, Any]:
    """The row for an atom record; :class:`UnstorableValueError` names the atom if a value
    cannot be kept."""
    name = detail.name
    try:
        # where a value sits is spelled out only if it cannot be stored (the slow path)
        value = detail.results
        results = "null" if value is None else codec.dumps(value)
        value = detail.revert_results
        revert_results = "null" if value is None else codec.dumps(value)
        meta = codec.dumps(detail._meta) if detail._meta else None
        history = decision = None
        if isinstance(detail, RetryDetail):
            history = _dumps_history(detail, codec) if detail.history else None
            decision = detail.decision
    except UnstorableValueError:
        _explain_unstorable(detail, codec)
        raise
    version = detail.version
    return {
        "uuid": detail.uuid,
        "flow_uuid": flow_uuid,
        "name": name,
        "kind": detail.kind,
        "position": position,
        "state": str(detail.state),
        "intention": str(detail.intention),
        "results": results,
        "failure": None if detail.failure is None else _dumps_failure(detail.failure, codec),
        "revert_results": revert_results,
        "revert_failure": (
            None if detail.revert_failure is None else _dumps_failure(detail.revert_failure, codec)
        ),
        "meta": meta,
        "version": _VERSIONS.get(version) or _dotted(version),
        "history": history,
        "decision": decision,
        "updated_at": time.time(),
    }


_VERSIONS: Final[dict[Any, str]] = {(1, 0): "1.0"}


def _dotted(version: Any) -> str | None:
    return ".".join(map(str, version)) if version is not None else None


def _explain_unstorable(detail: AtomDetail, codec: Codec) -> None:
    """Raise the error of the value of ``detail`` that cannot be stored, saying where it is."""
    name = detail.name
    try:
        codec.dumps(detail.results, f"the result of atom {name!r}")
        codec.dumps(detail.revert_results, f"the revert result of atom {name!r}")
        if detail._meta:
            codec.dumps(detail._meta, f"atom {name!r} meta")
        if isinstance(detail, RetryDetail) and detail.history:
            _dumps_history(detail, codec)
    except UnstorableValueError as exc:
        if exc.atom is None:
            exc.atom = name
        raise


def atom_from_row(row: Mapping[str, Any], codec: Codec) -> AtomDetail:
    """The atom record a row stands for."""
    name = row["name"]
    where = f"atom {name!r}"
    kind = row["kind"]
    if kind not in ("task", "retry"):
        raise RecordFormatError(f"{where}: unknown record kind {kind!r} (task or retry)")
    detail: AtomDetail = (RetryDetail if kind == "retry" else TaskDetail)(name, row["uuid"])
    if row.get("position"):
        detail.position = row["position"]
    detail.state = _state(AtomState, row["state"], where)
    detail.intention = _state(Intention, row["intention"], where)
    if row["results"] is not None:
        detail.results = _loads(codec, row["results"])
    if row["revert_results"] is not None:
        detail.revert_results = _loads(codec, row["revert_results"])
    if row["failure"] is not None:
        detail.failure = _loads_failure(row["failure"], where)
    if row["revert_failure"] is not None:
        detail.revert_failure = _loads_failure(row["revert_failure"], where)
    if row["meta"]:
        detail.meta = _loads(codec, row["meta"])
    version = row["version"]
    detail.version = tuple(int(p) for p in version.split(".")) if version else None
    if isinstance(detail, RetryDetail):
        if row["history"]:
            detail.history = [
                (provided, {n: Failure.from_dict(f) for n, f in failures.items()})
                for provided, failures in _loads(codec, row["history"])
            ]
        detail.decision = row["decision"]
    return detail


def _dumps_history(detail: RetryDetail, codec: Codec) -> str:
    plain = [
        [provided, {n: _failure_data(f, codec) for n, f in failures.items()}]
        for provided, failures in detail.history
    ]
    return codec.dumps(plain, f"the history of retry controller {detail.name!r}")


# -- failures ---------------------------------------------------------------------------

#: Failures are always JSON, whatever the store's codec: they are read by anyone.
_JSON: Final = JsonCodec()


def _failure_data(failure: Failure, codec: Codec) -> dict[str, Any]:
    """``failure.to_dict()``, its arguments kept where the codec can, else as reprs."""
    data = failure.to_dict()
    try:
        _JSON.dumps(data["exc_args"])
    except UnstorableValueError:
        data["exc_args"] = [_repr(a) for a in data["exc_args"]]
    data["causes"] = [_failure_data(c, _JSON) for c in failure.causes]
    return data


def _dumps_failure(failure: Failure | None, codec: Codec) -> str | None:
    if failure is None:
        return None
    return _JSON.dumps(_failure_data(failure, _JSON), "a failure")


def _loads_failure(text: str, where: str) -> Failure:
    try:
        data = json.loads(text, object_hook=_args_hook)
    except ValueError as exc:
        raise RecordFormatError(f"{where}: its stored failure is not JSON ({exc})") from exc
    return Failure.from_dict(data)


def _args_hook(data: dict[str, Any]) -> Any:
    """Failures are read without a codec: tagged values (tuples of arguments) as data."""
    if "$t" in data and "v" in data and len(data) == 2:
        value = data["v"]
        return tuple(value) if data["$t"] == "tuple" else value
    return data


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


# -- small helpers ----------------------------------------------------------------------


def _loads(codec: Codec, text: str | None) -> Any:
    return None if text is None else codec.loads(text)


def _state(kind: Any, value: str, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise RecordFormatError(
            f"{where}: {value!r} is not a {kind.__name__} (the record may come from another "
            "program or be damaged)"
        ) from None
