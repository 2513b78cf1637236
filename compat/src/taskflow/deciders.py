"""TaskFlow's ``taskflow.deciders``: how far a graph-flow decider's "no" reaches."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

__all__ = ["Depth", "pick_widest"]


class Depth(Enum):
    """Which atoms a refused decider IGNOREs, from the widest reach to the narrowest.

    A plain Enum, as TaskFlow's is (a str enum's ``translate`` would clash with
    ``str.translate``); links accept its members or their names.
    """

    ALL = "ALL"  # the target and everything that follows it, anywhere
    FLOW = "FLOW"  # the target and what follows it inside the flow the link is in
    NEIGHBORS = "NEIGHBORS"  # the target and its immediate successors
    ATOM = "ATOM"  # the target's first atom(s) only

    @classmethod
    def translate(cls, desired_depth: Depth | str) -> Depth:
        """Turn a depth or its name (any case) into a Depth."""
        if isinstance(desired_depth, cls):
            return desired_depth
        try:
            return cls(str(desired_depth).upper())
        except ValueError:
            names = sorted(d.value for d in cls)
            raise ValueError(
                f"Unexpected decider depth value, one of {names} (case-insensitive) is "
                f"expected and not '{desired_depth}'"
            ) from None


_WIDTH = {Depth.ALL: 3, Depth.FLOW: 2, Depth.NEIGHBORS: 1, Depth.ATOM: 0}


def pick_widest(depths: Iterable[Depth | str]) -> Depth:
    """The widest-reaching of ``depths``."""
    found = [Depth.translate(d) for d in depths]
    if not found:
        raise ValueError("At least one depth must be given to pick the widest of")
    return max(found, key=_WIDTH.__getitem__)
