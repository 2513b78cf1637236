"""Logging listeners: state changes as standard ``logging`` records.

:class:`StructuredLoggingListener` reads the typed events and logs one record per
change with its facts as ``extra=`` fields (``run_id``, ``flow``, ``atom``,
``kind``, ``state``, ``old_state``, ``attempt``, ``duration``), so a JSON log
formatter or a log pipeline sees them as fields, not text to parse.
:class:`LoggingListener` and :class:`DynamicLoggingListener` log TaskFlow's lines.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tideflow._compiler import END, START
from tideflow.errors import TideflowError
from tideflow.events import AtomEvent, Event, FlowEvent
from tideflow.failure import ExcInfo, Failure
from tideflow.listeners.base import (
    DEFAULT_LISTEN_FOR,
    FINISH_STATES,
    DumpingListener,
    EventListener,
    Listener,
    ListenFor,
    failure_line,
    failure_text,
)
from tideflow.listeners.timing import Stopwatch
from tideflow.states import AtomState, FlowState, Intention

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = [
    "DynamicLoggingListener",
    "FailFormatter",
    "FailureFormatter",
    "LoggingListener",
    "StructuredLoggingListener",
]

#: Where both listeners log unless given a logger.
LOG = logging.getLogger("tideflow.listeners.logging")

_MASK = "***"

#: States logged at the failure level by StructuredLoggingListener.
_BAD_ATOM_STATES = frozenset(
    {AtomState.FAILURE, AtomState.REVERT_FAILURE, AtomState.REVERTED, AtomState.RETRYING}
)
_BAD_FLOW_STATES = frozenset({FlowState.FAILURE, FlowState.REVERTED})


class StructuredLoggingListener(EventListener):
    """Log each state change as one record with structured ``extra=`` fields.

    Every record has ``run_id``, ``flow``, ``atom`` (None for the flow's own
    changes), ``kind`` (``'flow'``, ``'task'`` or ``'retry'``), ``state``,
    ``old_state``, ``attempt`` and ``duration`` (seconds, when the change ends an
    execute, a revert or a run; else None). A failure adds ``error`` (one line) and
    the exception (``exc_info``) while it is still at hand, else its recorded
    traceback text under the message. Ordinary changes log at ``level`` (INFO);
    failures, reverts and retries at ``failure_level`` (WARNING). ``logger``
    defaults to ``tideflow.events``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        level: int = logging.INFO,
        failure_level: int = logging.WARNING,
    ) -> None:
        super().__init__(engine)
        self._logger = logger if logger is not None else logging.getLogger("tideflow.events")
        self._level = level
        self._failure_level = failure_level
        self._stopwatch = Stopwatch()

    def _extra(self, event: Event, atom: str | None, kind: str, attempt: int) -> dict[str, Any]:
        timing = self._stopwatch.observe(event)
        return {
            "run_id": event.flow_uuid,
            "flow": event.flow_name,
            "atom": atom,
            "kind": kind,
            "state": event.state.value,
            "old_state": event.old_state.value,
            "attempt": attempt,
            "duration": None if timing is None else timing.duration,
        }

    def on_flow(self, event: FlowEvent) -> None:
        extra = self._extra(event, None, "flow", 1)
        level = self._failure_level if event.state in _BAD_FLOW_STATES else self._level
        self._logger.log(
            level,
            "flow %r (%s) %s -> %s",
            event.flow_name,
            event.flow_uuid,
            event.old_state.value,
            event.state.value,
            extra=extra,
        )

    def on_atom(self, event: AtomEvent) -> None:
        extra = self._extra(event, event.atom_name, event.kind, event.attempt)
        level = self._failure_level if event.state in _BAD_ATOM_STATES else self._level
        message = "%s %r %s -> %s (attempt %d)"
        args: tuple[Any, ...] = (
            event.kind,
            event.atom_name,
            event.old_state.value,
            event.state.value,
            event.attempt,
        )
        failure = event.failure
        if failure is None:
            self._logger.log(level, message, *args, extra=extra)
            return
        extra["error"] = failure_line(failure)
        if failure.exc_info is not None:
            self._logger.log(level, message, *args, extra=extra, exc_info=failure.exc_info)
        else:
            # no live exception to hand to logging: the recorded traceback goes in the text
            self._logger.log(level, message + "\n%s", *args, failure_text(failure), extra=extra)


class LoggingListener(DumpingListener):
    """Log each flow and task state change (TaskFlow's lines) at one level.

    ``log`` is the logger (default ``tideflow.listeners.logging``) and ``level``
    the level of every record; a failed task's record carries the exception
    (``exc_info``) while it is still at hand, else its recorded traceback text.
    """

    #: The logger used when ``log=`` is not given.
    default_logger = "tideflow.listeners.logging"

    def __init__(
        self,
        engine: Engine,
        task_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        flow_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        retry_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        level: int = logging.DEBUG,
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._logger = log if log is not None else logging.getLogger(self.default_logger)
        self._level = level

    def _dump(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._logger.log(self._level, message, *args, **kwargs)

    def _dump_failure(self, failure: Failure, message: str, *args: Any) -> None:
        if failure.exc_info is not None:
            self._dump(message, *args, exc_info=failure.exc_info)
        else:
            # No live exception to hand to logging: put the recorded traceback in the text.
            self._dump(message + "\n%s", *args, failure_text(failure))


class FailFormatter(Protocol):
    """Describes a failed atom for :class:`DynamicLoggingListener`."""

    def format(self, failure: Failure, atom_name: str) -> tuple[ExcInfo | None, str]:
        """Return the ``exc_info`` to log (or None) and text to put under the record's line."""
        ...


def _mask(data: Any, keys: frozenset[str]) -> Any:
    """Replace the values of ``keys`` in (nested) dicts and lists with ``'***'``."""
    if not keys:
        return data
    if isinstance(data, Mapping):
        return {k: _MASK if k in keys else _mask(v, keys) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(item, keys) for item in data]
    return data


class FailureFormatter:
    """Describe a failed atom: its traceback when no live exception remains, and what ran before.

    Predecessors are listed once each, nearest first, with their intention, state,
    arguments and result (``hide_inputs_outputs_of`` names atoms whose arguments
    and result are left out; ``mask_*_keys`` blank those keys in them). TaskFlow
    draws them as a tree, which repeats shared ancestors; a flat list stays linear
    in the size of the flow.
    """

    def __init__(
        self,
        engine: Engine,
        hide_inputs_outputs_of: Iterable[str] = (),
        mask_inputs_keys: Iterable[str] = (),
        mask_outputs_keys: Iterable[str] = (),
    ) -> None:
        self._engine = engine
        self._hidden = frozenset(hide_inputs_outputs_of)
        self._mask_inputs = frozenset(mask_inputs_keys)
        self._mask_outputs = frozenset(mask_outputs_keys)

    def format(self, failure: Failure, atom_name: str) -> tuple[ExcInfo | None, str]:
        """Return the failure's live ``exc_info`` (or None) and the text describing it."""
        parts = []
        if failure.exc_info is None:
            parts.append(failure.pformat(traceback=True))
        try:
            parts.extend(self._predecessors(atom_name))
        except Exception:
            # The context is a courtesy; the failure itself must still be logged.
            LOG.debug("could not list the predecessors of atom %r", atom_name, exc_info=True)
        return failure.exc_info, "\n".join(parts)

    def _predecessors(self, atom_name: str) -> list[str]:
        engine = self._engine
        storage = engine.storage
        # What ran before only explains a failure to execute; a failed revert is about
        # what ran after, which the revert order already shows.
        if storage.get_atom_intention(atom_name) != Intention.EXECUTE:
            return []
        plan = engine.compilation
        node = plan.index.get(atom_name)
        if node is None:
            return []
        found: list[int] = []
        seen = {node}
        queue = deque(plan.pred[node])
        while queue:
            pred = queue.popleft()
            if pred in seen:
                continue
            seen.add(pred)
            queue.extend(plan.pred[pred])
            if plan.kinds[pred] != END:  # a flow's end is bookkeeping, not a step
                found.append(pred)
        if not found:
            return []
        lines = [f"{len(found)} predecessors (most recent first):"]
        for pred in found:
            if plan.kinds[pred] == START:
                lines.append(f"  Flow '{plan.flows[plan.flow_of[pred]].name}'")
            else:
                lines.append(f"  {self._describe_atom(pred)}")
        return lines

    def _describe_atom(self, node: int) -> str:
        engine = self._engine
        storage = engine.storage
        atom = engine.compilation.atoms[node]
        assert atom is not None
        name = atom.name
        attrs: dict[str, Any] = {
            "intention": str(storage.get_atom_intention(name)),
            "state": str(storage.get_atom_state(name)),
        }
        if name not in self._hidden:
            try:
                requires = storage.fetch_mapped_args(
                    atom.rebind, atom_name=name, optional_args=atom.optional
                )
            except TideflowError:
                pass
            else:
                attrs["requires"] = _mask(requires, self._mask_inputs)
            try:
                provides = storage.get_execute_result(name)
            except TideflowError:
                pass
            else:
                attrs["provides"] = _mask(provides, self._mask_outputs)
        return f"Atom '{name}' {attrs}"


class DynamicLoggingListener(Listener):
    """Log each flow and task state change at a level chosen by what happened.

    Ordinary changes are logged at ``level`` (DEBUG); failures and what follows
    them (task FAILURE, REVERTED, REVERT_FAILURE, RETRYING; flow FAILURE,
    REVERTED) at ``failure_level`` (WARNING). A failed task's record carries the
    exception (``exc_info``) while it is still at hand, and under its line the
    text of ``fail_formatter`` (by default a :class:`FailureFormatter`: the
    atoms that ran before it). Task results are shown only when ``level`` is
    enabled on the logger and the task is not in ``hide_inputs_outputs_of``.
    """

    #: The logger used when ``log=`` is not given.
    default_logger = "tideflow.listeners.logging"

    def __init__(
        self,
        engine: Engine,
        task_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        flow_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        retry_listen_for: ListenFor = DEFAULT_LISTEN_FOR,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        failure_level: int = logging.WARNING,
        level: int = logging.DEBUG,
        hide_inputs_outputs_of: Iterable[str] = (),
        fail_formatter: FailFormatter | None = None,
        mask_inputs_keys: Iterable[str] = (),
        mask_outputs_keys: Iterable[str] = (),
    ) -> None:
        super().__init__(
            engine,
            task_listen_for=task_listen_for,
            flow_listen_for=flow_listen_for,
            retry_listen_for=retry_listen_for,
        )
        self._logger = log if log is not None else logging.getLogger(self.default_logger)
        self._level = level
        self._failure_level = failure_level
        self._hidden = frozenset(hide_inputs_outputs_of)
        self._task_levels = dict.fromkeys(
            ("FAILURE", "REVERTED", "REVERT_FAILURE", "RETRYING"), failure_level
        )
        self._flow_levels = dict.fromkeys(("FAILURE", "REVERTED"), failure_level)
        self._fail_formatter: FailFormatter = (
            fail_formatter
            if fail_formatter is not None
            else FailureFormatter(
                engine,
                hide_inputs_outputs_of=self._hidden,
                mask_inputs_keys=mask_inputs_keys,
                mask_outputs_keys=mask_outputs_keys,
            )
        )

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self._logger.log(
            self._flow_levels.get(state, self._level),
            "Flow '%s' (%s) transitioned into state '%s' from state '%s'",
            details["flow_name"],
            details["flow_uuid"],
            state,
            details.get("old_state"),
        )

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        name = details["task_name"]
        head = (name, details["task_uuid"], state, details.get("old_state"))
        level = self._task_levels.get(state, self._level)
        line = "Task '%s' (%s) transitioned into state '%s' from state '%s'"
        if state not in FINISH_STATES or "result" not in details:
            self._logger.log(level, line, *head)
            return
        result = details["result"]
        if isinstance(result, Failure):
            exc_info, text = self._fail_formatter.format(result, name)
            if text:
                self._logger.log(self._failure_level, line + "\n%s", *head, text, exc_info=exc_info)
            else:
                self._logger.log(self._failure_level, line, *head, exc_info=exc_info)
            return
        # Results can be large or sensitive: show them only at the verbose level.
        if name not in self._hidden and self._logger.isEnabledFor(self._level):
            self._logger.log(level, line + " with result '%s'", *head, result)
        else:
            self._logger.log(level, line, *head)
