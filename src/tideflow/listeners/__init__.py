"""Ready-made listeners: print, log, capture or time an engine's state changes.

Attach one around a run::

    with PrintingListener(engine):
        engine.run()

Subclass :class:`Listener` and override any of its hooks to build your own.
"""

from __future__ import annotations

from tideflow.listeners.base import DumpingListener, Listener
from tideflow.listeners.capturing import CaptureListener
from tideflow.listeners.logging import (
    DynamicLoggingListener,
    FailFormatter,
    FailureFormatter,
    LoggingListener,
)
from tideflow.listeners.printing import PrintingListener
from tideflow.listeners.timing import (
    DurationListener,
    EventTimeListener,
    PrintingDurationListener,
    TimingListener,
)

__all__ = [
    "CaptureListener",
    "DumpingListener",
    "DurationListener",
    "DynamicLoggingListener",
    "EventTimeListener",
    "FailFormatter",
    "FailureFormatter",
    "Listener",
    "LoggingListener",
    "PrintingDurationListener",
    "PrintingListener",
    "TimingListener",
]
