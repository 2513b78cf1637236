"""The persistence model: a LogBook holds FlowDetails, a FlowDetail holds AtomDetails.

These are the records a store keeps for a run: the flow's state and the state,
intention, result (or failure) and revert result (or failure) of every atom. The
engine's storage mutates them as the run goes; a store persists them.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tideflow.failure import Failure
from tideflow.states import AtomState, FlowState, Intention

__all__ = [
    "AtomDetail",
    "FlowDetail",
    "FlowIndex",
    "LogBook",
    "RetryDetail",
    "TaskDetail",
    "new_uuid",
]


def new_uuid() -> str:
    """A fresh random (version 4) uuid, as text."""
    # What uuid.uuid4() makes, without importing uuid (slow to import) for it.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _failure_to_dict(failure: Failure | None) -> dict[str, Any] | None:
    return failure.to_dict() if failure is not None else None


def _failure_from_dict(data: Mapping[str, Any] | None) -> Failure | None:
    return Failure.from_dict(data) if data is not None else None


class AtomDetail:
    """The record of one atom in one run."""

    # No __slots__: most fields keep their class default for most of a run, and an
    # instance pays only for what was set (two fields at creation), which keeps
    # creating 100,000 records cheap.
    state: AtomState = AtomState.PENDING
    intention: Intention = Intention.EXECUTE
    results: Any = None
    failure: Failure | None = None
    revert_results: Any = None
    revert_failure: Failure | None = None
    version: tuple[int, ...] | None = (1, 0)  # the recorded atom's version
    _uuid: str | None = None
    _meta: dict[str, Any] | None = None
    #: Where the record sat in its flow record when a store read it (stores write
    #: ``FlowDetail.position_of``).
    position: int = 0

    #: Which kind of atom this records ("task" or "retry").
    kind: ClassVar[str] = "atom"

    def __init__(self, name: str, uuid: str | None = None) -> None:
        self.name = name
        # uuid and meta are made on first use: a 100,000-atom run in memory may never
        # need them
        if uuid is not None:
            self._uuid = uuid

    @property
    def uuid(self) -> str:
        """The record's unique id."""
        if self._uuid is None:
            self._uuid = new_uuid()
        return self._uuid

    @property
    def meta(self) -> dict[str, Any]:
        """Free-form metadata (progress, durations, ...)."""
        if self._meta is None:
            self._meta = {}
        return self._meta

    @meta.setter
    def meta(self, value: dict[str, Any]) -> None:
        self._meta = value

    def put(self, state: AtomState, result: Any) -> None:
        """Record the outcome of an execution: a value or a Failure."""
        self.state = state
        if isinstance(result, Failure):
            self.failure = result
            self.results = None
        else:
            self.results = result
            self.failure = None

    def reset(self, state: AtomState = AtomState.PENDING) -> None:
        """Forget results and failures and go back to ``state`` (intention EXECUTE)."""
        self.state = state
        self.intention = Intention.EXECUTE
        self.results = None
        self.failure = None
        self.revert_results = None
        self.revert_failure = None

    def to_dict(self) -> dict[str, Any]:
        """Describe the record as data (results are kept as they are)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "uuid": self.uuid,
            "state": str(self.state),
            "intention": str(self.intention),
            "results": self.results,
            "failure": _failure_to_dict(self.failure),
            "revert_results": self.revert_results,
            "revert_failure": _failure_to_dict(self.revert_failure),
            "meta": dict(self.meta),
            "version": list(self.version) if self.version is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AtomDetail:
        """Rebuild a record from :meth:`to_dict` output."""
        kind = data.get("kind", "task")
        detail_cls: type[AtomDetail] = RetryDetail if kind == "retry" else TaskDetail
        detail = detail_cls(data["name"], data["uuid"])
        detail.state = AtomState(data.get("state", AtomState.PENDING))
        detail.intention = Intention(data.get("intention", Intention.EXECUTE))
        detail.results = data.get("results")
        detail.failure = _failure_from_dict(data.get("failure"))
        detail.revert_results = data.get("revert_results")
        detail.revert_failure = _failure_from_dict(data.get("revert_failure"))
        detail.meta = dict(data.get("meta") or {})
        version = data.get("version")
        detail.version = tuple(version) if version is not None else None
        if isinstance(detail, RetryDetail):
            detail.history = [
                (provided, {name: Failure.from_dict(f) for name, f in failures.items()})
                for provided, failures in data.get("history") or ()
            ]
            detail.decision = data.get("decision")
        return detail

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.state}>"


class TaskDetail(AtomDetail):
    """The record of a task."""

    kind: ClassVar[str] = "task"


class RetryDetail(AtomDetail):
    """The record of a retry controller: its attempts so far, and the decision under way.

    ``history`` has one ``(provided value, {atom name: Failure})`` entry per attempt of
    the controller's flow; ``results`` is the value of the current attempt. ``decision``
    is "RETRY" or "REVERT" while the engine carries that decision out for the flow (so a
    resumed run finishes it), None otherwise.
    """

    kind: ClassVar[str] = "retry"
    decision: str | None = None

    def __init__(self, name: str, uuid: str | None = None) -> None:
        super().__init__(name, uuid)
        self.history: list[tuple[Any, dict[str, Failure]]] = []

    def reset(self, state: AtomState = AtomState.PENDING) -> None:
        """Forget results, failures and history and go back to ``state``."""
        super().reset(state)
        self.history = []
        self.decision = None

    def to_dict(self) -> dict[str, Any]:
        """Describe the record as data; history failures as their dicts."""
        data = super().to_dict()
        data["history"] = [
            [provided, {name: f.to_dict() for name, f in failures.items()}]
            for provided, failures in self.history
        ]
        data["decision"] = self.decision
        return data


class FlowDetail:
    """The record of one run of a flow: its state, its store values and its atoms."""

    def __init__(self, name: str, uuid: str | None = None) -> None:
        self.name = name
        self.uuid = uuid or new_uuid()
        self.state: FlowState = FlowState.PENDING
        self.meta: dict[str, Any] = {}
        #: Values given with ``store=`` or ``storage.inject()``.
        self.injected: dict[str, Any] = {}
        self._atoms: dict[str, AtomDetail] = {}
        self._order: dict[str, int] | None = None  # name -> position, made when asked

    def add(self, atom_detail: AtomDetail) -> None:
        """Add (or replace) an atom's record (atom names are unique within a flow)."""
        self._atoms[atom_detail.name] = atom_detail

    def position_of(self, atom_detail: AtomDetail) -> int:
        """Where ``atom_detail`` sits among this flow's atom records (the order they were
        first added; a record replaced by name keeps its place). Stores write it."""
        order = self._order
        if order is None or len(order) != len(self._atoms):
            order = self._order = {name: i for i, name in enumerate(self._atoms)}
        return order[atom_detail.name]

    def find(self, uuid: str) -> AtomDetail | None:
        """The atom record with ``uuid``, or None."""
        for detail in self._atoms.values():
            if detail.uuid == uuid:
                return detail
        return None

    def find_by_name(self, name: str) -> AtomDetail | None:
        """The atom record named ``name``, or None."""
        return self._atoms.get(name)

    def __iter__(self) -> Iterator[AtomDetail]:
        return iter(list(self._atoms.values()))

    def __len__(self) -> int:
        return len(self._atoms)

    def to_dict(self) -> dict[str, Any]:
        """Describe the record (atoms included) as data."""
        return {
            "name": self.name,
            "uuid": self.uuid,
            "state": str(self.state),
            "meta": dict(self.meta),
            "injected": dict(self.injected),
            "atoms": [a.to_dict() for a in self._atoms.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowDetail:
        """Rebuild a record from :meth:`to_dict` output."""
        detail = cls(data["name"], data["uuid"])
        detail.state = FlowState(data.get("state", FlowState.PENDING))
        detail.meta = dict(data.get("meta") or {})
        detail.injected = dict(data.get("injected") or {})
        for atom in data.get("atoms", ()):
            detail.add(AtomDetail.from_dict(atom))
        return detail

    def __repr__(self) -> str:
        return f"<FlowDetail {self.name!r} {self.state} atoms={len(self)}>"


class FlowIndex(dict[str, str]):
    """Flow record uuid -> the uuid of the log book holding it (a memory store's index,
    which the books it holds keep in step; weakly referable)."""

    __slots__ = ("__weakref__",)


class LogBook:
    """A named collection of flow records (one per flow run it tracks)."""

    def __init__(self, name: str, uuid: str | None = None) -> None:
        self.name = name
        self.uuid = uuid or new_uuid()
        self.meta: dict[str, Any] = {}
        self.created_at = time.time()
        self.updated_at: float | None = None
        self._flows: dict[str, FlowDetail] = {}

    #: Indexes (flow record uuid -> this book's uuid) of the memory stores holding this
    #: book, kept in step by add(); held weakly (a store that is gone lets go of its
    #: index, and add() forgets it), not part of the book's state (not pickled or copied).
    _indexes: tuple[weakref.ref[FlowIndex], ...] = ()

    def add(self, flow_detail: FlowDetail) -> None:
        """Add (or replace) a flow record."""
        self._flows[flow_detail.uuid] = flow_detail
        self.updated_at = time.time()
        if self._indexes:
            live = 0
            for ref in self._indexes:
                index = ref()
                if index is not None:
                    index[flow_detail.uuid] = self.uuid
                    live += 1
            if live != len(self._indexes):
                self._indexes = tuple(ref for ref in self._indexes if ref() is not None)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_indexes", None)
        return state

    def find(self, uuid: str) -> FlowDetail | None:
        """The flow record with ``uuid``, or None."""
        return self._flows.get(uuid)

    def __iter__(self) -> Iterator[FlowDetail]:
        return iter(list(self._flows.values()))

    def __len__(self) -> int:
        return len(self._flows)

    def __repr__(self) -> str:
        return f"<LogBook {self.name!r} flows={len(self)}>"
