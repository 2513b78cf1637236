"""TaskFlow's ``taskflow.atom``: the base of everything a flow schedules."""

from __future__ import annotations

from tideflow import Atom

__all__ = ["Atom"]
