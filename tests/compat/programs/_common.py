"""Printing helpers shared by the TaskFlow-style programs (plain TaskFlow API only)."""

from __future__ import annotations

import uuid
from typing import Any

from taskflow.types import failure


def show(value: Any) -> str:
    """Render a notification value stably: no uuids, engines or object addresses."""
    if isinstance(value, failure.Failure):
        return f"<Failure {value}>"
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            return repr(value)
        return "<UUID>"
    if hasattr(value, "run") and hasattr(value, "notifier"):
        return "<ENGINE>"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {show(value[k])}" for k in sorted(value)) + "}"
    return repr(value)


def flow_watch(state: str, details: dict[str, Any]) -> None:
    """Print a flow notification."""
    print("FLOW", type(state).__name__, state, show(details))


def atom_watch(state: str, details: dict[str, Any]) -> None:
    """Print an atom notification."""
    print("ATOM", type(state).__name__, state, show(details))


def watch(engine: Any) -> None:
    """Print every flow and atom notification of ``engine``."""
    engine.notifier.register("*", flow_watch)
    engine.atom_notifier.register("*", atom_watch)


def states(engine: Any, names: list[str]) -> str:
    """The recorded states of the named atoms, in the order given."""
    return ", ".join(f"{n}={engine.storage.get_atom_state(n)}" for n in names)
