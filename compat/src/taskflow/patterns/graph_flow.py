"""TaskFlow's ``graph_flow``: children ordered by inferred and explicit links."""

from __future__ import annotations

from tideflow import GraphFlow as Flow
from tideflow import TargetedFlow

__all__ = ["Flow", "TargetedFlow"]
