"""Notifier: deliver named events to registered callbacks.

A callback is called as ``callback(event_type, *args, details=details, **kwargs)``
where ``args``/``kwargs`` were given at registration (TaskFlow passes ``details`` by
keyword, and so do we). Callbacks registered for
:data:`Notifier.ANY` (``'*'``) receive every event. A callback that raises is
logged and never stops the others or the run. :meth:`Notifier.wants` lets a
producer skip building details nobody will read.

This is also where the TaskFlow-style details are built: the engine makes one
typed record per state change (:mod:`tideflow.events`) and, when a TaskFlow-style
callback listens, turns it into TaskFlow's dictionary with :func:`flow_details`
or :func:`atom_details`. The typed records stay free of any engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, Final

from tideflow._log import logger
from tideflow.events import AtomEvent, FlowEvent
from tideflow.states import AtomState

__all__ = ["Listener", "Notifier", "RestrictedNotifier", "atom_details", "flow_details"]

#: Atom states whose TaskFlow-style details carry a ``result`` key.
_RESULT_STATES = frozenset(
    {AtomState.SUCCESS, AtomState.FAILURE, AtomState.REVERTED, AtomState.REVERT_FAILURE}
)

_LOGGER = "tideflow.notifier"

Callback = Callable[..., Any]
DetailsFilter = Callable[[Mapping[str, Any]], bool]


def flow_details(event: FlowEvent, engine: object) -> dict[str, Any]:
    """The TaskFlow-style details of a flow state change (keys in TaskFlow's order).

    ``engine`` is whatever TaskFlow's callbacks expect under ``'engine'``: the
    engine that made the change.
    """
    return {
        "engine": engine,
        "flow_name": event.flow_name,
        "flow_uuid": event.flow_uuid,
        "old_state": event.old_state.value,
    }


def atom_details(event: AtomEvent) -> dict[str, Any]:
    """The TaskFlow-style details of an atom state change (keys in TaskFlow's order).

    Keys are ``task_*`` or ``retry_*`` by the atom's kind; a finished state adds
    ``result`` (the value, or the Failure). A controller with a back-off adds
    ``attempt`` and ``delay`` to its RETRYING details (TaskFlow's controllers have
    none, so its programs see its keys only).
    """
    prefix = event.kind
    details: dict[str, Any] = {
        f"{prefix}_name": event.atom_name,
        f"{prefix}_uuid": event.atom_uuid,
        "old_state": event.old_state.value,
    }
    if event.state in _RESULT_STATES:
        details["result"] = event.failure if event.failure is not None else event.result
    if event.delay is not None:
        details["attempt"] = event.attempt
        details["delay"] = event.delay
    return details


def _unknown_event(event_type: str, known: Collection[str]) -> str:
    import difflib  # noqa: PLC0415  # only on this error path

    by_folded = {name.casefold(): name for name in known}
    close = difflib.get_close_matches(str(event_type).casefold(), list(by_folded), n=1)
    hint = f"did you mean {by_folded[close[0]]!r}? " if close else ""
    return (
        f"no event named {event_type!r} is ever reported by this notifier, so the callback "
        f"would never be called; {hint}register for one of {sorted(known)} or '*'"
    )


def _key(callback: Callback, details_filter: DetailsFilter | None) -> object | None:
    """A registration's key, or None when the callback or filter cannot be hashed."""
    key = (callback, details_filter)
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Listener:
    """One registration: a callback with its bound arguments and optional details filter."""

    __slots__ = ("args", "callback", "details_filter", "kwargs")

    def __init__(
        self,
        callback: Callback,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        details_filter: DetailsFilter | None = None,
    ) -> None:
        self.callback = callback
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.details_filter = details_filter

    def __call__(self, event_type: str, details: Mapping[str, Any]) -> None:
        if self.details_filter is not None and not self.details_filter(details):
            return
        self.callback(event_type, *self.args, details=details, **self.kwargs)

    def is_equivalent(
        self, callback: Callback, details_filter: DetailsFilter | None = None
    ) -> bool:
        """Say whether this registration is for ``callback`` with ``details_filter``."""
        return bool(self.callback == callback and self.details_filter == details_filter)

    def __repr__(self) -> str:
        return f"Listener({self.callback!r})"


class Notifier:
    """Deliver events to the callbacks registered for them (or for ``'*'``)."""

    ANY: Final = "*"
    #: Event types that may not be registered for (none here; see RestrictedNotifier).
    RESERVED_KEYS: tuple[str, ...] = ()

    def __init__(self, known_events: Callable[[], Collection[str]] | None = None) -> None:
        # event type -> its registrations, in order, keyed by (callback, details filter)
        # so that checking, adding and removing one costs O(1) however many there are
        self._topics: dict[str, dict[object, Listener]] = {}
        #: Event types with a registration whose callback or filter cannot be hashed.
        self._loose: set[str] = set()
        #: When given, the event names this notifier can ever emit: registering for
        #: another name (a typo such as 'SUCESS') is refused rather than never called.
        self._known = known_events

    def __len__(self) -> int:
        return sum(len(listeners) for listeners in self._topics.values())

    def can_be_registered(self, event_type: str) -> bool:
        """Say whether callbacks may be registered for ``event_type``."""
        return isinstance(event_type, str) and event_type not in self.RESERVED_KEYS

    def can_trigger_notification(self, event_type: str) -> bool:
        """Say whether ``event_type`` may be notified (``'*'`` may not: it is a wildcard)."""
        return event_type != self.ANY

    def register(
        self,
        event_type: str,
        callback: Callback,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        details_filter: DetailsFilter | None = None,
    ) -> None:
        """Call ``callback(event_type, *args, details=details, **kwargs)`` on each event."""
        if not callable(callback):
            raise ValueError(f"notifier callback {callback!r} must be callable")
        if details_filter is not None and not callable(details_filter):
            raise ValueError(f"details filter {details_filter!r} must be callable")
        if not self.can_be_registered(event_type):
            raise ValueError(f"event type {event_type!r} cannot be registered on this notifier")
        if self._known is not None and event_type != self.ANY:
            known = self._known()
            if event_type not in known:
                raise ValueError(_unknown_event(event_type, known))
        if kwargs and "details" in kwargs:
            raise KeyError(
                "'details' is reserved: the notifier passes each event's details under that "
                "keyword; rename the bound keyword argument"
            )
        if self.is_registered(event_type, callback, details_filter=details_filter):
            raise ValueError(f"callback {callback!r} is already registered for {event_type!r}")
        listener = Listener(callback, args or (), kwargs, details_filter)
        key = _key(callback, details_filter)
        topic = str(event_type)
        if key is None:
            self._loose.add(topic)  # keyed by itself: found by comparing one by one
        self._topics.setdefault(topic, {})[listener if key is None else key] = listener

    def deregister(
        self, event_type: str, callback: Callback, details_filter: DetailsFilter | None = None
    ) -> bool:
        """Remove one registration; say whether there was one."""
        topic = str(event_type)
        listeners = self._topics.get(topic)
        if not listeners:
            return False
        found = self._find(listeners, callback, details_filter, topic in self._loose)
        if found is None:
            return False
        del listeners[found]
        if not listeners:
            del self._topics[topic]
        return True

    @staticmethod
    def _find(
        listeners: dict[object, Listener],
        callback: Callback,
        details_filter: DetailsFilter | None,
        loose: bool,
    ) -> object | None:
        """The key of ``callback``'s registration among ``listeners``, or None."""
        key = _key(callback, details_filter)
        if key is not None:
            if key in listeners:
                return key
            if not loose:
                return None  # every registration is keyed by value: none is equivalent
        # an unhashable callback or filter somewhere: compare one by one
        for k, listener in listeners.items():
            if listener.is_equivalent(callback, details_filter):
                return k
        return None

    def deregister_event(self, event_type: str) -> int:
        """Remove every registration for ``event_type``; return how many there were."""
        return len(self._topics.pop(str(event_type), []))

    def is_registered(
        self, event_type: str, callback: Callback, details_filter: DetailsFilter | None = None
    ) -> bool:
        """Say whether ``callback`` is registered for ``event_type``."""
        topic = str(event_type)
        listeners = self._topics.get(topic)
        if not listeners:
            return False
        return self._find(listeners, callback, details_filter, topic in self._loose) is not None

    def wants(self, event_type: str) -> bool:
        """Say whether anyone would receive ``event_type`` (so details are worth building)."""
        topics = self._topics
        return bool(topics) and (event_type in topics or self.ANY in topics)

    def wants_by_name(self, event_type: str) -> bool:
        """Say whether anyone registered for ``event_type`` itself (not through ``'*'``)."""
        return event_type in self._topics

    def notify(
        self, event_type: str, details: Mapping[str, Any] | None, *, include_any: bool = True
    ) -> None:
        """Deliver ``event_type`` with ``details`` to ``'*'`` callbacks, then to its own.

        With ``include_any=False`` only callbacks registered for ``event_type`` hear it.
        """
        if not self._topics:
            return
        if not self.can_trigger_notification(event_type):
            logger(_LOGGER).warning(
                "event type %r is a wildcard and cannot be notified", event_type
            )
            return
        if details is None:
            details = {}
        own = self._topics.get(event_type, {}).values()
        listeners = [*self._topics.get(self.ANY, {}).values(), *own] if include_any else list(own)
        for listener in listeners:
            try:
                # each callback gets its own copy: one that edits it cannot change what
                # the next one sees
                listener(event_type, dict(details))
            except Exception:
                logger(_LOGGER).exception(
                    "listener %r failed on event %r; the run goes on", listener.callback, event_type
                )

    def listeners_iter(self) -> Iterator[tuple[str, list[Listener]]]:
        """Yield ``(event_type, listeners)`` for every event type with registrations."""
        for event_type, listeners in self._topics.items():
            if listeners:
                yield event_type, list(listeners.values())

    def copy(self) -> Notifier:
        """Return a notifier with the same registrations."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._topics = {k: dict(v) for k, v in self._topics.items()}
        clone._loose = set(self._loose)
        return clone

    def reset(self) -> None:
        """Forget every registration."""
        self._topics.clear()
        self._loose.clear()


class RestrictedNotifier(Notifier):
    """A notifier that only accepts a fixed set of event types (plus ``'*'``, if allowed)."""

    def __init__(self, watchable_events: Iterable[str], allow_any: bool = True) -> None:
        super().__init__()
        self._watchable = frozenset(watchable_events)
        self._allow_any = allow_any

    @property
    def events(self) -> frozenset[str]:
        """The event types that may be registered and notified."""
        return self._watchable

    def can_be_registered(self, event_type: str) -> bool:
        if event_type == self.ANY:
            return self._allow_any
        return event_type in self._watchable

    def register(
        self,
        event_type: str,
        callback: Callback,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        details_filter: DetailsFilter | None = None,
    ) -> None:
        if not self.can_be_registered(event_type):
            anything = " or '*'" if self._allow_any else ""
            raise ValueError(
                f"event {event_type!r} is not one this notifier reports; register for one of "
                f"{sorted(self._watchable)}{anything} (a task declares its events in TASK_EVENTS)"
            )
        super().register(event_type, callback, args, kwargs, details_filter)
