"""Ready-made listeners: print, log, time, capture, count or trace a run's state changes.

tideflow's own listeners read the typed events (``engine.subscribe()``:
:class:`~tideflow.events.FlowEvent`, :class:`~tideflow.events.AtomEvent`), each
takes the engine as its only positional argument, and each works as a context
manager around a run::

    with ConsoleListener(engine), StructuredLoggingListener(engine):
        engine.run()

- :class:`ConsoleListener`: one short line per change, with durations and failures.
- :class:`StructuredLoggingListener`: standard ``logging`` records with ``extra=``
  fields (``run_id``, ``flow``, ``atom``, ``state``, ``attempt``, ``duration``...).
- :class:`StopwatchListener`: how long each execute, revert and run took.
- :class:`RecordingListener`: every event, kept in order.
- :class:`ProgressListener`: atoms done of total and the ones running now, with an
  ``on_change`` callback (what a live view needs).
- ``tideflow.listeners.otel.OpenTelemetryListener``: spans per run, execute and
  revert (extra ``tideflow[otel]``; import it from its module).

Subclass :class:`EventListener` and override ``on_flow`` and/or ``on_atom`` to
build your own. TaskFlow's listeners (:class:`Listener` and its subclasses:
``PrintingListener``, ``LoggingListener``, ``DynamicLoggingListener``,
``CaptureListener``, ``DurationListener``, ...) are here too, unchanged, for
TaskFlow programs: they read TaskFlow's ``(state, details)`` notifications.
"""

from __future__ import annotations

from tideflow.listeners.base import DumpingListener, EventListener, Listener
from tideflow.listeners.capturing import CaptureListener, RecordingListener
from tideflow.listeners.logging import (
    DynamicLoggingListener,
    FailFormatter,
    FailureFormatter,
    LoggingListener,
    StructuredLoggingListener,
)
from tideflow.listeners.printing import ConsoleListener, PrintingListener
from tideflow.listeners.progress import Progress, ProgressListener
from tideflow.listeners.timing import (
    DurationListener,
    EventTimeListener,
    PrintingDurationListener,
    StopwatchListener,
    Timing,
    TimingListener,
)

__all__ = [
    "CaptureListener",
    "ConsoleListener",
    "DumpingListener",
    "DurationListener",
    "DynamicLoggingListener",
    "EventListener",
    "EventTimeListener",
    "FailFormatter",
    "FailureFormatter",
    "Listener",
    "LoggingListener",
    "PrintingDurationListener",
    "PrintingListener",
    "Progress",
    "ProgressListener",
    "RecordingListener",
    "StopwatchListener",
    "StructuredLoggingListener",
    "Timing",
    "TimingListener",
]
