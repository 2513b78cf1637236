"""TaskFlow's ``taskflow.persistence.models``: log books, flow records and atom records.

The classes are tideflow's records with TaskFlow's methods added (``pformat``,
``merge``, ``copy``, ``update``, TaskFlow's ``to_dict``/``from_dict``,
``last_results``). Records the engine or a store makes are tideflow's own classes;
they gain these methods when they reach a TaskFlow program through this package
(:func:`adopt`: added to one of these records, or returned by a connection of
``taskflow.persistence.backends``), by switching their class to the subclass here.
Nothing is copied, so the memory store keeps sharing the engine's objects.

Differences kept (docs/taskflow-behaviour.md, section 14): fresh records start
``PENDING`` (TaskFlow ``None``); ``created_at``/``updated_at`` are POSIX timestamps
(TaskFlow: ``datetime``), shown by ``pformat`` as TaskFlow shows them; an atom
record's ``version`` is a tuple such as ``(1, 0)`` (TaskFlow ``'1.0'``), shown as
``1.0`` by ``pformat`` and in ``to_dict``.
"""

from __future__ import annotations

import copy as _copy
import datetime
import os
from collections.abc import Mapping
from typing import Any, Final, TypeVar

from taskflow import exceptions as _exc
from tideflow.errors import NotFoundError
from tideflow.failure import Failure
from tideflow.persistence import models as _models
from tideflow.states import AtomState, FlowState, Intention

__all__ = [
    "ATOM_TYPES",
    "RETRY_DETAIL",
    "TASK_DETAIL",
    "AtomDetail",
    "FlowDetail",
    "LogBook",
    "RetryDetail",
    "TaskDetail",
    "adopt",
    "atom_detail_class",
    "atom_detail_type",
]

TASK_DETAIL: Final = "TASK_DETAIL"
RETRY_DETAIL: Final = "RETRY_DETAIL"


# -- how TaskFlow shows records --------------------------------------------------------


def _timestamp(when: float | None) -> datetime.datetime | None:
    """A POSIX timestamp as TaskFlow's naive UTC ``datetime``."""
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).replace(tzinfo=None)


def _marshal_time(when: float | None) -> dict[str, int] | None:
    """A timestamp as the dict TaskFlow writes for it (``marshal_time=True``)."""
    moment = _timestamp(when)
    if moment is None:
        return None
    return {
        "day": moment.day,
        "month": moment.month,
        "year": moment.year,
        "hour": moment.hour,
        "minute": moment.minute,
        "second": moment.second,
        "microsecond": moment.microsecond,
    }


def _unmarshal_time(when: Any) -> float | None:
    """A timestamp from what :func:`_marshal_time` (or a ``datetime``, or a number) gives."""
    if when is None:
        return None
    if isinstance(when, int | float):
        return float(when)
    if isinstance(when, Mapping):
        when = datetime.datetime(
            when["year"],
            when["month"],
            when["day"],
            when["hour"],
            when["minute"],
            when["second"],
            when.get("microsecond", 0),
        )
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return float(when.timestamp())
    raise TypeError(f"a time must be a timestamp, datetime or time dict, got {when!r}")


def version_string(version: Any) -> str | None:
    """A record's version as TaskFlow writes it: ``(1, 0)`` -> ``'1.0'``."""
    if isinstance(version, list | tuple):
        return ".".join(str(part) for part in version)
    return None if version is None else str(version)


def _version_from(value: Any) -> tuple[int, ...] | None:
    """A version as tideflow records keep it, from TaskFlow's string (or a sequence)."""
    if value is None:
        return None
    parts = value.split(".") if isinstance(value, str) else value
    return tuple(int(part) for part in parts)


def _meta_lines(meta: Mapping[str, Any], indent: int) -> list[str]:
    if not meta:
        return []
    lines = [f"{' ' * indent}- metadata:"]
    for key, value in meta.items():
        shown = value
        if key == "progress" and isinstance(value, int | float) and not isinstance(value, bool):
            shown = f"{value * 100.0:0.2f}%"
        lines.append(f"{' ' * (indent + 2)}+ {key} = {shown}")
    return lines


def _state_text(state: Any) -> Any:
    return None if state is None else str(state)


def _failure_dict(failure: Failure | None) -> dict[str, Any] | None:
    return failure.to_dict() if failure else None


#: The progress TaskFlow's engine writes for a task by the time it reaches each state
#: (0.0 as execute or revert starts, 1.0 as it ends); tideflow's engine derives it from
#: the state instead of writing it, unless the task reported progress itself.
_PROGRESS_BY_STATE: Final = {
    AtomState.RUNNING: 0.0,
    AtomState.FAILURE: 0.0,
    AtomState.REVERTING: 0.0,
    AtomState.REVERT_FAILURE: 0.0,
    AtomState.SUCCESS: 1.0,
    AtomState.REVERTED: 1.0,
}


def taskflow_meta(detail: _models.AtomDetail) -> dict[str, Any]:
    """An atom record's metadata as TaskFlow's would read: a task's progress included."""
    meta = detail.meta
    if isinstance(detail, _models.TaskDetail) and "progress" not in meta:
        progress = _PROGRESS_BY_STATE.get(detail.state)
        if progress is not None:
            return {"progress": progress, **meta}
    return meta


def _pformat_atom(detail: _models.AtomDetail, indent: int, linesep: str) -> str:
    pad = " " * (indent + 1)
    lines = [
        f"{' ' * indent}{type(detail).__name__}: '{detail.name}'",
        f"{pad}- uuid = {detail.uuid}",
        f"{pad}- state = {detail.state}",
        f"{pad}- version = {version_string(detail.version)}",
        f"{pad}- results = {_taskflow_results(detail)}",
        f"{pad}- failure = {bool(detail.failure)}",
        *_meta_lines(taskflow_meta(detail), indent + 1),
    ]
    return linesep.join(lines)


def _pformat_flow(detail: _models.FlowDetail, indent: int, linesep: str) -> str:
    pad = " " * (indent + 1)
    lines = [
        f"{' ' * indent}{type(detail).__name__}: '{detail.name}'",
        f"{pad}- uuid = {detail.uuid}",
        f"{pad}- state = {detail.state}",
        *_meta_lines(detail.meta, indent + 1),
    ]
    lines.extend(_pformat_atom(atom, indent + 1, linesep) for atom in detail)
    return linesep.join(lines)


def _taskflow_results(detail: _models.AtomDetail) -> Any:
    """``results`` as TaskFlow keeps them: a retry's are its history of attempts."""
    if isinstance(detail, _models.RetryDetail):
        return [(provided, dict(failures)) for provided, failures in detail.history]
    return detail.results


def _atom_to_dict(detail: _models.AtomDetail) -> dict[str, Any]:
    results = _taskflow_results(detail)
    if isinstance(detail, _models.RetryDetail):
        results = [
            (provided, {name: f.to_dict() for name, f in failures.items()})
            for provided, failures in results
        ]
    return {
        "failure": _failure_dict(detail.failure),
        "revert_failure": _failure_dict(detail.revert_failure),
        "meta": taskflow_meta(detail),
        "name": detail.name,
        "results": results,
        "revert_results": detail.revert_results,
        "state": _state_text(detail.state),
        "version": version_string(detail.version),
        "intention": _state_text(detail.intention),
        "uuid": detail.uuid,
    }


def _flow_to_dict(detail: _models.FlowDetail) -> dict[str, Any]:
    return {
        "name": detail.name,
        "meta": detail.meta,
        "state": _state_text(detail.state),
        "uuid": detail.uuid,
    }


def _book_to_dict(book: _models.LogBook, marshal_time: bool = False) -> dict[str, Any]:
    show: Any = _marshal_time if marshal_time else _timestamp
    return {
        "name": book.name,
        "meta": book.meta,
        "uuid": book.uuid,
        "updated_at": show(book.updated_at),
        "created_at": show(book.created_at),
    }


def atom_to_taskflow(detail: _models.AtomDetail) -> dict[str, Any]:
    """An atom record as TaskFlow's stores write it: ``{'atom': ..., 'type': ...}``."""
    return {"atom": _atom_to_dict(detail), "type": atom_detail_type(detail)}


def flow_to_taskflow(detail: _models.FlowDetail) -> dict[str, Any]:
    """A flow record as TaskFlow's stores write it (its atoms are not included)."""
    return _flow_to_dict(detail)


def book_to_taskflow(book: _models.LogBook) -> dict[str, Any]:
    """A log book as TaskFlow's stores write it (times as dicts; flows not included)."""
    return _book_to_dict(book, marshal_time=True)


class Version(tuple[int, ...]):
    """An atom record's version: a tuple for tideflow, reading as TaskFlow's ``'1.0'``.

    TaskFlow keeps the version as text; tideflow's engine compares tuples. This tuple
    prints, formats and compares (with text) as the text does.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return ".".join(str(part) for part in self)

    def __repr__(self) -> str:
        return repr(str(self))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str(self) == other
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__


def _get_version(detail: _models.AtomDetail) -> Version | None:
    value = detail.__dict__.get("version", _models.AtomDetail.version)
    return None if value is None else Version(value)


def _set_version(detail: _models.AtomDetail, value: Any) -> None:
    # kept where tideflow's record keeps it, as a plain tuple
    detail.__dict__["version"] = _version_from(value)


# -- the records ------------------------------------------------------------------------

_R = TypeVar("_R")


class AtomDetail(_models.AtomDetail):
    """TaskFlow's atom record methods, for :class:`TaskDetail` and :class:`RetryDetail`."""

    #: The version of the atom recorded (prints as TaskFlow's ``'1.0'``).
    version = property(_get_version, _set_version)

    @property
    def last_results(self) -> Any:
        """The atom's latest result."""
        return self.results

    def update(self, ad: _models.AtomDetail) -> AtomDetail:
        """Take every field of ``ad`` (the same objects, not copies)."""
        if ad is not self:
            self.state = ad.state
            self.intention = ad.intention
            self.meta = ad.meta
            self.failure = ad.failure
            self.results = ad.results
            self.revert_results = ad.revert_results
            self.revert_failure = ad.revert_failure
            self.version = ad.version
        return self

    def merge(self, other: _models.AtomDetail, deep_copy: bool = False) -> AtomDetail:
        """Take ``other``'s fields (copies of meta and version with ``deep_copy``)."""
        if other is self:
            return self
        kind = _models.RetryDetail if isinstance(self, _models.RetryDetail) else _models.TaskDetail
        if not isinstance(other, kind):
            raise _exc.NotImplementedError(f"Can only merge with other {kind.__name__}s")
        take = _copy.deepcopy if deep_copy else _same
        self.state = other.state
        self.intention = other.intention
        self.failure = other.failure or None
        self.revert_failure = other.revert_failure or None
        if self.meta != other.meta:
            self.meta = take(other.meta)
        if self.version != other.version:
            self.version = take(other.version)
        self.results = other.results
        self.revert_results = other.revert_results
        return self

    def copy(self) -> AtomDetail:
        """A shallow copy (its own meta dict; results are the same objects)."""
        clone = _copy.copy(self)
        if self._meta:
            clone._meta = dict(self._meta)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """The record as TaskFlow describes it (failures as dicts, version as text)."""
        return _atom_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AtomDetail:
        """A record from TaskFlow's :meth:`to_dict` output."""
        detail = (TaskDetail if cls is AtomDetail else cls)(data["name"], data["uuid"])
        if data.get("state") is not None:
            detail.state = AtomState(data["state"])
        if data.get("intention") is not None:
            detail.intention = Intention(data["intention"])
        detail.results = data.get("results")
        detail.revert_results = data.get("revert_results")
        detail.version = _version_from(data.get("version"))
        meta = data.get("meta")
        detail.meta = dict(meta) if isinstance(meta, Mapping) else {}
        if data.get("failure"):
            detail.failure = Failure.from_dict(data["failure"])
        if data.get("revert_failure"):
            detail.revert_failure = Failure.from_dict(data["revert_failure"])
        if isinstance(detail, _models.RetryDetail):
            detail.history = [
                (provided, {name: Failure.from_dict(f) for name, f in failures.items()})
                for provided, failures in (data.get("results") or ())
            ]
            detail.results = detail.history[-1][0] if detail.history else None
        return detail

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """The record as indented text: uuid, state, version, results, failure, metadata."""
        return _pformat_atom(self, indent, linesep)


def _same(value: _R) -> _R:
    return value


class TaskDetail(AtomDetail, _models.TaskDetail):
    """The record of a task (TaskFlow's ``TaskDetail``)."""


class RetryDetail(AtomDetail, _models.RetryDetail):
    """The record of a retry controller; TaskFlow's ``results`` is its ``history``."""

    @property
    def last_results(self) -> Any:
        """The value the controller provided for the latest attempt."""
        if not self.history:
            raise NotFoundError("Last results not found")
        return self.history[-1][0]

    @property
    def last_failures(self) -> dict[str, Failure]:
        """The failures of the latest attempt, by atom name."""
        if not self.history:
            raise NotFoundError("Last failures not found")
        return self.history[-1][1]

    def merge(self, other: _models.AtomDetail, deep_copy: bool = False) -> RetryDetail:
        """Take ``other``'s fields and attempt history."""
        super().merge(other, deep_copy)
        if other is not self and isinstance(other, _models.RetryDetail):
            self.history = [(provided, dict(failures)) for provided, failures in other.history]
            self.decision = other.decision
        return self

    def copy(self) -> RetryDetail:
        """A shallow copy with its own history list."""
        clone = super().copy()
        assert isinstance(clone, RetryDetail)
        clone.history = [(provided, dict(failures)) for provided, failures in self.history]
        return clone


class FlowDetail(_models.FlowDetail):
    """The record of one run of a flow (TaskFlow's ``FlowDetail``)."""

    def add(self, atom_detail: _models.AtomDetail) -> None:
        """Add (or replace) an atom record."""
        super().add(adopt(atom_detail))

    def update(self, fd: _models.FlowDetail) -> FlowDetail:
        """Take ``fd``'s state, metadata and atom records (the same objects)."""
        if fd is not self:
            self.state = fd.state
            self.meta = fd.meta
            self.injected = fd.injected
            self._atoms = fd._atoms
        return self

    def merge(self, fd: _models.FlowDetail, deep_copy: bool = False) -> FlowDetail:
        """Take ``fd``'s state and metadata (not its atom records)."""
        if fd is not self:
            if self.meta != fd.meta:
                self.meta = _copy.deepcopy(fd.meta) if deep_copy else fd.meta
            self.state = fd.state
        return self

    def copy(self, retain_contents: bool = True) -> FlowDetail:
        """A shallow copy, holding the same atom records unless ``retain_contents`` is false."""
        clone = _copy.copy(self)
        clone._atoms = dict(self._atoms) if retain_contents else {}
        clone.meta = dict(self.meta)
        clone.injected = dict(self.injected)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """The record as TaskFlow describes it: name, meta, state, uuid (no atoms)."""
        return _flow_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowDetail:
        """A record from TaskFlow's :meth:`to_dict` output."""
        detail = cls(data["name"], data["uuid"])
        if data.get("state") is not None:
            detail.state = FlowState(data["state"])
        meta = data.get("meta")
        detail.meta = dict(meta) if isinstance(meta, Mapping) else {}
        return detail

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """The record and its atom records as indented text."""
        return _pformat_flow(self, indent, linesep)


class LogBook(_models.LogBook):
    """A named collection of flow records (TaskFlow's ``LogBook``)."""

    def add(self, flow_detail: _models.FlowDetail) -> None:
        """Add (or replace) a flow record."""
        super().add(adopt(flow_detail))

    def merge(self, lb: _models.LogBook, deep_copy: bool = False) -> LogBook:
        """Take ``lb``'s metadata and times (not its flow records)."""
        if lb is not self:
            if self.meta != lb.meta:
                self.meta = _copy.deepcopy(lb.meta) if deep_copy else lb.meta
            self.created_at = lb.created_at
            self.updated_at = lb.updated_at
        return self

    def copy(self, retain_contents: bool = True) -> LogBook:
        """A shallow copy, holding the same flow records unless ``retain_contents`` is false."""
        clone = _copy.copy(self)
        clone._flows = dict(self._flows) if retain_contents else {}
        clone.meta = dict(self.meta)
        return clone

    def to_dict(self, marshal_time: bool = False) -> dict[str, Any]:
        """The book as TaskFlow describes it (no flow records); times as ``datetime``,
        or as dicts with ``marshal_time``."""
        return _book_to_dict(self, marshal_time)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], unmarshal_time: bool = False) -> LogBook:
        """A book from TaskFlow's :meth:`to_dict` output."""
        book = cls(data["name"], data["uuid"])
        book.created_at = _unmarshal_time(data.get("created_at")) or book.created_at
        book.updated_at = _unmarshal_time(data.get("updated_at"))
        meta = data.get("meta")
        book.meta = dict(meta) if isinstance(meta, Mapping) else {}
        return book

    def pformat(self, indent: int = 0, linesep: str = os.linesep) -> str:
        """The book, its flow records and their atom records as indented text."""
        pad = " " * (indent + 1)
        lines = [
            f"{' ' * indent}{type(self).__name__}: '{self.name}'",
            f"{pad}- uuid = {self.uuid}",
            *_meta_lines(self.meta, indent + 1),
        ]
        for label, when in (("created_at", self.created_at), ("updated_at", self.updated_at)):
            moment = _timestamp(when)
            if moment is not None:
                lines.append(f"{pad}- {label} = {moment.isoformat()}")
        lines.extend(_pformat_flow(fd, indent + 1, linesep) for fd in self)
        return linesep.join(lines)


# -- giving tideflow's records TaskFlow's methods -------------------------------------

#: tideflow's record classes -> the classes here (exact types only: a program's own
#: subclasses are left alone).
_ADOPT: Final[dict[type, type]] = {
    _models.LogBook: LogBook,
    _models.FlowDetail: FlowDetail,
    _models.TaskDetail: TaskDetail,
    _models.RetryDetail: RetryDetail,
}

_Record = TypeVar("_Record")


def adopt(record: _Record) -> _Record:
    """Give a tideflow record (and the records in it) TaskFlow's methods, in place.

    The object stays the same one (the engine and the memory store may hold it); only
    its class becomes the subclass above, which adds methods and no state.
    """
    target = _ADOPT.get(type(record))
    if target is not None:
        record.__class__ = target
    if isinstance(record, _models.LogBook):
        for flow_detail in record._flows.values():
            adopt(flow_detail)
    elif isinstance(record, _models.FlowDetail):
        for atom_detail in record._atoms.values():
            adopt(atom_detail)
    return record


_CLASSES: Final[dict[str, type[_models.AtomDetail]]] = {
    TASK_DETAIL: TaskDetail,
    RETRY_DETAIL: RetryDetail,
}
ATOM_TYPES: Final = sorted(_CLASSES)


def atom_detail_class(atom_type: str) -> type[_models.AtomDetail]:
    """The record class for an atom type name (``'TASK_DETAIL'`` or ``'RETRY_DETAIL'``)."""
    try:
        return _CLASSES[atom_type]
    except KeyError:
        raise TypeError(f"Unknown atom type '{atom_type}'") from None


def atom_detail_type(atom_detail: _models.AtomDetail) -> str:
    """The atom type name of a record."""
    if isinstance(atom_detail, _models.RetryDetail):
        return RETRY_DETAIL
    if isinstance(atom_detail, _models.TaskDetail):
        return TASK_DETAIL
    raise TypeError(f"Unknown atom '{atom_detail}' ({type(atom_detail)})")
