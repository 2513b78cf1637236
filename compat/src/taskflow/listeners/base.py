"""TaskFlow's ``taskflow.listeners.base``: the listener base classes and their defaults."""

from __future__ import annotations

from typing import Final

from taskflow import states
from tideflow.listeners.base import DumpingListener, Listener

__all__ = ["DEFAULT_LISTEN_FOR", "FINISH_STATES", "DumpingListener", "Listener"]

#: Listen for every event unless told otherwise.
DEFAULT_LISTEN_FOR: Final = ("*",)
#: The states in which an atom's work is over (successfully or not).
FINISH_STATES: Final = (states.FAILURE, states.SUCCESS, states.REVERTED, states.REVERT_FAILURE)
