"""TaskFlow's ``taskflow.persistence.models``: log books, flow records and atom records."""

from __future__ import annotations

from typing import Final

from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook, RetryDetail, TaskDetail

__all__ = [
    "ATOM_TYPES",
    "RETRY_DETAIL",
    "TASK_DETAIL",
    "AtomDetail",
    "FlowDetail",
    "LogBook",
    "RetryDetail",
    "TaskDetail",
    "atom_detail_class",
    "atom_detail_type",
]

TASK_DETAIL: Final = "TASK_DETAIL"
RETRY_DETAIL: Final = "RETRY_DETAIL"
_CLASSES: Final[dict[str, type[AtomDetail]]] = {
    TASK_DETAIL: TaskDetail,
    RETRY_DETAIL: RetryDetail,
}
ATOM_TYPES: Final = sorted(_CLASSES)


def atom_detail_class(atom_type: str) -> type[AtomDetail]:
    """The record class for an atom type name (``'TASK_DETAIL'`` or ``'RETRY_DETAIL'``)."""
    try:
        return _CLASSES[atom_type]
    except KeyError:
        raise TypeError(f"Unknown atom type '{atom_type}'") from None


def atom_detail_type(atom_detail: AtomDetail) -> str:
    """The atom type name of a record."""
    for name, cls in _CLASSES.items():
        if isinstance(atom_detail, cls):
            return name
    raise TypeError(f"Unknown atom '{atom_detail}' ({type(atom_detail)})")
