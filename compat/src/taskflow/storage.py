"""TaskFlow's ``taskflow.storage``: the values and records of one flow run."""

from __future__ import annotations

from tideflow import Storage

__all__ = ["Storage"]
