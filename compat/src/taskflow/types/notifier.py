"""TaskFlow's ``taskflow.types.notifier``: notifiers, listeners and a scoped registration."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tideflow import Notifier, RestrictedNotifier
from tideflow._notifier import Listener

__all__ = ["Listener", "Notifier", "RestrictedNotifier", "register_deregister"]


@contextlib.contextmanager
def register_deregister(
    notifier: Notifier,
    event_type: str,
    callback: Callable[..., Any] | None = None,
    args: Iterable[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    details_filter: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Iterator[Notifier]:
    """Register ``callback`` for the ``with`` block and deregister it on the way out.

    With no callback the block runs and nothing is registered.
    """
    if callback is None:
        yield notifier
        return
    notifier.register(event_type, callback, args=args, kwargs=kwargs, details_filter=details_filter)
    try:
        yield notifier
    finally:
        notifier.deregister(event_type, callback, details_filter=details_filter)
