"""TaskFlow's ``taskflow.flow``: the flow base class and the link metadata keys."""

from __future__ import annotations

from typing import Final

from tideflow import Flow

__all__ = [
    "LINK_DECIDER",
    "LINK_DECIDER_DEPTH",
    "LINK_INVARIANT",
    "LINK_MANUAL",
    "LINK_REASONS",
    "LINK_RETRY",
    "Flow",
]

# Keys of the metadata dict that ``flow.iter_links()`` yields with each link.
LINK_INVARIANT: Final = "invariant"
LINK_MANUAL: Final = "manual"
LINK_RETRY: Final = "retry"
LINK_REASONS: Final = "reasons"
LINK_DECIDER: Final = "decider"
LINK_DECIDER_DEPTH: Final = "decider_depth"
