"""Listener bases: typed observers of a run (EventListener), and TaskFlow's (Listener).

:class:`EventListener` is the base of tideflow's own listeners. It subscribes one
callback with ``engine.subscribe()`` and hands each typed record
(:class:`~tideflow.events.FlowEvent`, :class:`~tideflow.events.AtomEvent`) to one
of two optional hooks, ``on_flow(event)`` and ``on_atom(event)``: the shape of
trio's instruments. Every subclass takes the engine alone as its first argument.

:class:`Listener` is TaskFlow's base, kept for TaskFlow programs and its
subclasses. It subscribes to an engine's ``notifier`` (flow states) and
``atom_notifier`` (task and retry states) and hands each event to one of three
hooks, ``_flow_receiver``, ``_task_receiver`` and ``_retry_receiver``. Every hook
is optional: a hook a subclass does not override is never registered, so a
listener costs nothing for the kinds and states it does not watch (the engine
builds an event's details only when someone wants that event).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeAlias

from tideflow._notifier import Notifier
from tideflow.events import AtomEvent, Event, FlowEvent
from tideflow.failure import Failure

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = [
    "DEFAULT_LISTEN_FOR",
    "FINISH_STATES",
    "DumpingListener",
    "EventListener",
    "ListenFor",
    "Listener",
    "failure_line",
    "failure_text",
]

LOG = logging.getLogger("tideflow.listeners")

ANY: Final = Notifier.ANY
#: Listen for every state of a kind.
DEFAULT_LISTEN_FOR: Final = (ANY,)
#: Atom states whose notification carries a ``result`` (a value, or a Failure).
FINISH_STATES: Final = ("FAILURE", "SUCCESS", "REVERTED", "REVERT_FAILURE")

#: What a ``*_listen_for`` argument takes: state names (``'*'`` for all), or one name.
ListenFor: TypeAlias = Iterable[str] | str

_NOTHING: frozenset[str] = frozenset()


def _events(listen_for: ListenFor) -> frozenset[str]:
    """Normalise a listen-for argument to a set of event names; ``'*'`` swallows the rest."""
    # A bare string is one state, not a sequence of one-letter states.
    names = (listen_for,) if isinstance(listen_for, str) else listen_for
    events = frozenset(str(name) for name in names)
    return frozenset({ANY}) if ANY in events else events


def _overrides(cls: type, hook: str) -> bool:
    """Say whether ``cls`` replaces the base class's no-op ``hook``."""
    return getattr(cls, hook) is not getattr(Listener, hook)


def failure_line(failure: Failure) -> str:
    """Say what a failure was in one line: ``'RuntimeError: card declined'``."""
    name = failure.exc_type_names[0] if failure.exc_type_names else "Exception"
    return f"{name}: {failure.exception_str}" if failure.exception_str else name


def failure_text(failure: Failure) -> str:
    """Render a failure the way Python prints an uncaught exception (traceback, then type)."""
    last = failure_line(failure)
    trace = failure.traceback_str
    if not trace:
        return last
    if not trace.endswith("\n"):
        trace += "\n"
    return f"Traceback (most recent call last):\n{trace}{last}"


class EventListener:
    """Watch a run's typed events; override ``on_flow`` and/or ``on_atom``.

    Both hooks are optional and receive the engine's records as they are made, on
    the engine's thread, in the order of the changes. Use ``register()`` and
    ``deregister()`` (both idempotent), or the listener as a context manager
    around ``engine.run()``. A hook that raises is logged by the engine and never
    breaks the run. To add a listener of your own, subclass this one.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def engine(self) -> Engine:
        """The engine this listener watches."""
        return self._engine

    def on_flow(self, event: FlowEvent) -> None:
        """Hear that the run's flow changed state."""

    def on_atom(self, event: AtomEvent) -> None:
        """Hear that an atom (task or retry controller) changed state."""

    def _receive(self, event: Event) -> None:
        if isinstance(event, AtomEvent):
            self.on_atom(event)
        else:
            self.on_flow(event)

    def register(self) -> None:
        """Start listening (a second call does nothing)."""
        if self._unsubscribe is None:
            self._unsubscribe = self._engine.subscribe(self._receive)

    def deregister(self) -> None:
        """Stop listening (a second call does nothing)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def __enter__(self) -> Self:
        self.register()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deregister()

    def __repr__(self) -> str:
        state = "registered" if self._unsubscribe is not None else "not registered"
        return f"<{type(self).__name__} {state} on {self._engine!r}>"


class Listener:
    """Watch an engine's flow, task and retry state changes (TaskFlow's listener base).

    Override any of ``_flow_receiver(state, details)``,
    ``_task_receiver(state, details)`` and ``_retry_receiver(state, details)``;
    the others are not registered at all. ``*_listen_for`` name the states each
    hook hears (``'*'``, the default, is every state). Use ``register()`` and
    ``deregister()`` (both idempotent), or the listener as a context manager
    around ``engine.run()``. A hook that raises is logged by the notifier and
    never breaks the run.
    """

    def __init__(
        self,
        engine: Engine,
        task_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        flow_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        retry_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
    ) -> None:
        self._engine = engine
        cls = type(self)
        self._flow_events = (
            _events(flow_listen_for) if _overrides(cls, "_flow_receiver") else _NOTHING
        )
        self._task_events = (
            _events(task_listen_for) if _overrides(cls, "_task_receiver") else _NOTHING
        )
        self._retry_events = (
            _events(retry_listen_for) if _overrides(cls, "_retry_receiver") else _NOTHING
        )
        self._registered: list[tuple[Notifier, str, Any]] = []
        self._is_registered = False

    @property
    def engine(self) -> Engine:
        """The engine this listener watches."""
        return self._engine

    # -- hooks (all optional) -------------------------------------------------------

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        """Hear a flow state change (details: engine, flow_name, flow_uuid, old_state)."""

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        """Hear a task state change (details: task_name, task_uuid, old_state[, result])."""

    def _retry_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        """Hear a retry state change (details: retry_name, retry_uuid, old_state[, result])."""

    # -- dispatch -------------------------------------------------------------------

    def _on_flow(self, state: str, details: Mapping[str, Any]) -> None:
        # The notifier already filtered by state; calling the hook positionally keeps
        # subclasses free to name its parameters as they like.
        self._flow_receiver(state, details)

    def _on_atom(self, state: str, details: Mapping[str, Any]) -> None:
        # Tasks and retries share one notifier, so one callback routes by the details'
        # shape and re-checks the state against the kind's own listen-for set.
        if "retry_name" in details:
            if ANY in self._retry_events or state in self._retry_events:
                self._retry_receiver(state, details)
        elif ANY in self._task_events or state in self._task_events:
            self._task_receiver(state, details)

    def _subscriptions(self) -> list[tuple[Notifier, str, Any]]:
        engine = self._engine
        subs: list[tuple[Notifier, str, Any]] = [
            (engine.notifier, event, self._on_flow) for event in sorted(self._flow_events)
        ]
        atom_events = self._task_events | self._retry_events
        if ANY in atom_events:
            atom_events = frozenset({ANY})
        subs.extend((engine.atom_notifier, event, self._on_atom) for event in sorted(atom_events))
        return subs

    # -- registration ---------------------------------------------------------------

    def register(self) -> None:
        """Start listening (a second call does nothing)."""
        if self._is_registered:
            return
        done: list[tuple[Notifier, str, Any]] = []
        try:
            for notifier, event, callback in self._subscriptions():
                notifier.register(event, callback)
                done.append((notifier, event, callback))
        except BaseException:
            # Leave the notifiers as they were: half a listener is worse than none.
            for notifier, event, callback in reversed(done):
                notifier.deregister(event, callback)
            raise
        self._registered = done
        self._is_registered = True

    def deregister(self) -> None:
        """Stop listening (a second call does nothing)."""
        while self._registered:
            notifier, event, callback = self._registered.pop()
            notifier.deregister(event, callback)
        self._is_registered = False

    def __enter__(self) -> Self:
        self.register()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.deregister()
        except Exception:
            # An error leaving the block must not hide the one raised inside it.
            LOG.warning("failed to deregister %r from engine %r", self, self._engine, exc_info=True)

    def __repr__(self) -> str:
        state = "registered" if self._is_registered else "not registered"
        return f"<{type(self).__name__} {state} on {self._engine!r}>"


class DumpingListener(Listener, abc.ABC):
    """A listener that turns flow and task state changes into text lines for ``_dump``.

    Lines have TaskFlow's shape::

        <engine> has moved flow 'f' (<uuid>) into state 'RUNNING' from state 'PENDING'
        <engine> has moved task 't' (<uuid>) into state 'SUCCESS' from state 'RUNNING'
            with result '1' (failure=False)

    (the second on one line). Subclasses implement ``_dump(message, *args, **kwargs)``
    with logging's lazy ``message % args`` convention. A failed task's line is
    passed to ``_dump_failure``, which by default dumps it with ``exc_info`` (the
    live exception, when there still is one).
    """

    @abc.abstractmethod
    def _dump(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Write one message (``message % args``) somewhere."""

    def _dump_failure(self, failure: Failure, message: str, *args: Any) -> None:
        """Write the line of a task whose result is ``failure``."""
        self._dump(message, *args, exc_info=failure.exc_info)

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._dump(
            "%s has moved flow '%s' (%s) into state '%s' from state '%s'",
            self._engine,
            details["flow_name"],
            details["flow_uuid"],
            state,
            details.get("old_state"),
        )

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        if state in FINISH_STATES and "result" in details:
            result = details["result"]
            failed = isinstance(result, Failure)
            message = (
                "%s has moved task '%s' (%s) into state '%s' from state '%s'"
                " with result '%s' (failure=%s)"
            )
            args = (
                self._engine,
                details["task_name"],
                details["task_uuid"],
                state,
                details.get("old_state"),
                result,
                failed,
            )
            if isinstance(result, Failure):
                self._dump_failure(result, message, *args)
            else:
                self._dump(message, *args)
            return
        self._dump(
            "%s has moved task '%s' (%s) into state '%s' from state '%s'",
            self._engine,
            details["task_name"],
            details["task_uuid"],
            state,
            details.get("old_state"),
        )
