"""TaskFlow's ``taskflow.listeners.capturing``: keep every state change in a list."""

from __future__ import annotations

from tideflow.listeners.capturing import CaptureListener

__all__ = ["CaptureListener"]
