"""TaskFlow's ``taskflow.listeners.logging``: log every state change."""

from __future__ import annotations

from tideflow.listeners.logging import DynamicLoggingListener, LoggingListener

__all__ = ["DynamicLoggingListener", "LoggingListener"]
