"""TaskFlow's ``taskflow.listeners.printing``: print every state change."""

from __future__ import annotations

from tideflow.listeners.printing import PrintingListener

__all__ = ["PrintingListener"]
