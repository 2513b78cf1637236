"""TaskFlow's ``taskflow.types.failure``: an exception captured as data."""

from __future__ import annotations

from tideflow import Failure

__all__ = ["Failure"]
