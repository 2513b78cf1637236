"""TaskFlow's ``taskflow.listeners.logging``: log every state change.

The classes are tideflow's, logging by default on TaskFlow's logger name
(``taskflow.listeners.logging``), so programs that configure it see the records.
"""

from __future__ import annotations

from tideflow.listeners import logging as _logging

__all__ = ["DynamicLoggingListener", "LoggingListener"]

_NAME = "taskflow.listeners.logging"


class LoggingListener(_logging.LoggingListener):
    """tideflow's LoggingListener on TaskFlow's default logger."""

    default_logger = _NAME


class DynamicLoggingListener(_logging.DynamicLoggingListener):
    """tideflow's DynamicLoggingListener on TaskFlow's default logger."""

    default_logger = _NAME
