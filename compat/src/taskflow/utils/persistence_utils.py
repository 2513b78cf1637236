"""TaskFlow's ``persistence_utils``: make log books and flow records, saved to a store if given."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from taskflow.persistence.models import FlowDetail, LogBook
from tideflow.persistence import models as _models
from tideflow.persistence.models import new_uuid

__all__ = ["create_flow_detail", "temporary_flow_detail", "temporary_log_book"]

_LOG = logging.getLogger(__name__)
# as TaskFlow's loggers: its warnings reach only handlers the program configured
_LOG.addHandler(logging.NullHandler())


def _save(backend: Any | None, book: _models.LogBook) -> None:
    if backend is not None:
        with contextlib.closing(backend.get_connection()) as conn:
            conn.save_logbook(book)


def temporary_log_book(backend: Any | None = None) -> LogBook:
    """Make a log book named ``'tmp'``, saved to ``backend`` if given."""
    book = LogBook("tmp")
    _save(backend, book)
    return book


def temporary_flow_detail(
    backend: Any | None = None, meta: Mapping[str, Any] | None = None
) -> tuple[LogBook, FlowDetail]:
    """Make a ``'tmp'`` log book holding one flow record named ``'tmp-flow-detail'``."""
    book = temporary_log_book(backend)
    flow_detail = FlowDetail("tmp-flow-detail", new_uuid())
    if meta is not None:
        flow_detail.meta.update(meta)
    book.add(flow_detail)
    _save(backend, book)
    return book, flow_detail


def create_flow_detail(
    flow: Any,
    book: _models.LogBook | None = None,
    backend: Any | None = None,
    meta: Mapping[str, Any] | None = None,
) -> FlowDetail:
    """Make a flow record named after ``flow``, added to ``book`` and saved to ``backend``.

    With a backend but no book, a ``'tmp'`` book is made to hold the record (and a
    warning logged, as TaskFlow does: the caller never sees that book).
    """
    uuid = new_uuid()
    name = getattr(flow, "name", None)
    if name is None:
        _LOG.warning("No name provided for flow %s (id %s)", flow, uuid)
        name = uuid
    flow_detail = FlowDetail(name, uuid)
    if meta is not None:
        flow_detail.meta.update(meta)
    if backend is not None and book is None:
        _LOG.warning("No logbook provided for flow %s, creating one.", flow)
        book = temporary_log_book(backend)
    if book is not None:
        book.add(flow_detail)
        _save(backend, book)
    return flow_detail
