"""Capturing listeners: keep every state change, as typed events or TaskFlow's tuples.

:class:`RecordingListener` keeps the typed events themselves, for tests and for
tools that look at a run afterwards; :class:`CaptureListener` keeps TaskFlow's
``(kind, state, details)`` tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from tideflow.events import AtomEvent, Event, FlowEvent
from tideflow.failure import Failure
from tideflow.listeners.base import DEFAULT_LISTEN_FOR, EventListener, Listener, ListenFor

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["CaptureListener", "RecordingListener"]


class RecordingListener(EventListener):
    """Keep every event of the runs it hears in ``events``, in order.

    ``states(name)`` lists the states an atom went through (``states()`` the
    flow's); ``failures()`` maps each atom that failed to its last Failure.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.events: list[Event] = []

    def on_flow(self, event: FlowEvent) -> None:
        self.events.append(event)

    def on_atom(self, event: AtomEvent) -> None:
        self.events.append(event)

    def states(self, atom_name: str | None = None) -> list[str]:
        """The states ``atom_name`` entered, in order (the flow's when None)."""
        if atom_name is None:
            return [e.state.value for e in self.events if isinstance(e, FlowEvent)]
        return [
            e.state.value
            for e in self.events
            if isinstance(e, AtomEvent) and e.atom_name == atom_name
        ]

    def failures(self) -> dict[str, Failure]:
        """Each atom whose execute or revert failed, with its last Failure."""
        return {
            e.atom_name: e.failure
            for e in self.events
            if isinstance(e, AtomEvent) and e.failure is not None
        }


#: One captured state change: ``(kind, state, details)``.
Capture = tuple[str, str, dict[str, Any]]


class CaptureListener(Listener):
    """Append each state change to ``values`` as ``(kind, state, details)``.

    ``kind`` is :attr:`FLOW`, :attr:`TASK` or :attr:`RETRY`; ``details`` is a copy
    of the notification's details. ``capture_*=False`` leaves a kind out (it is
    then not even registered); ``skip_*`` name flows, tasks or retries to leave
    out. Pass ``values`` to append to a list of your own.
    """

    FLOW: ClassVar[str] = "flow"
    TASK: ClassVar[str] = "task"
    RETRY: ClassVar[str] = "retry"

    def __init__(
        self,
        engine: Engine,
        task_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        flow_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        retry_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        capture_flow: bool = True,
        capture_task: bool = True,
        capture_retry: bool = True,
        skip_tasks: Iterable[str] | None = None,
        skip_retries: Iterable[str] | None = None,
        skip_flows: Iterable[str] | None = None,
        values: list[Capture] | None = None,
    ) -> None:
        # A kind that is not captured is not listened to at all.
        super().__init__(
            engine,
            task_listen_for=task_listen_for if capture_task else (),
            flow_listen_for=flow_listen_for if capture_flow else (),
            retry_listen_for=retry_listen_for if capture_retry else (),
        )
        self._skip_tasks = frozenset(skip_tasks or ())
        self._skip_retries = frozenset(skip_retries or ())
        self._skip_flows = frozenset(skip_flows or ())
        self.values: list[Capture] = values if values is not None else []

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        if details.get("flow_name") not in self._skip_flows:
            self.values.append((self.FLOW, state, dict(details)))

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        if details.get("task_name") not in self._skip_tasks:
            self.values.append((self.TASK, state, dict(details)))

    def _retry_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        if details.get("retry_name") not in self._skip_retries:
            self.values.append((self.RETRY, state, dict(details)))
