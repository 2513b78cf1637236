"""TaskFlow's ``linear_flow``: children run one after another."""

from __future__ import annotations

from tideflow import LinearFlow as Flow

__all__ = ["Flow"]
