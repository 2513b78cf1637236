"""TaskFlow's ``unordered_flow``: independent children, run in any order or at once."""

from __future__ import annotations

from tideflow import UnorderedFlow as Flow

__all__ = ["Flow"]
