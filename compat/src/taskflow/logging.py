"""TaskFlow's ``taskflow.logging``: level names and loggers with a ``trace()`` method."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "BLATHER",
    "CRITICAL",
    "DEBUG",
    "ERROR",
    "FATAL",
    "INFO",
    "NOTSET",
    "TRACE",
    "WARN",
    "WARNING",
    "getLogger",
]

#: Below DEBUG: very chatty output.
BLATHER: Final = 5
TRACE: Final = BLATHER
CRITICAL: Final = logging.CRITICAL
DEBUG: Final = logging.DEBUG
ERROR: Final = logging.ERROR
FATAL: Final = logging.FATAL
INFO: Final = logging.INFO
NOTSET: Final = logging.NOTSET
WARN: Final = logging.WARNING
WARNING: Final = logging.WARNING


class _TraceAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that adds ``trace()`` (and ``blather()``) at level TRACE."""

    def trace(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log at TRACE level."""
        self.log(TRACE, msg, *args, **kwargs)

    blather = trace


def getLogger(  # TaskFlow's (and logging's) spelling
    name: str = "taskflow", extra: Mapping[str, Any] | None = None
) -> _TraceAdapter:
    """A logger named ``name`` that also has ``trace()``."""
    return _TraceAdapter(logging.getLogger(name), dict(extra or {}))
