"""The engine kinds the property tests run on: serial, and the parallel engine on threads
and on asyncio (where part of the atoms are ``async def``).

A kind whose executor is not in the registry yet is skipped with the reason. (A module
of its own, not conftest.py: every directory's conftest is a module named ``conftest``.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tideflow import executors

KINDS = ("serial", "threads", "asyncio")


def _unavailable(kind: str) -> str | None:
    if kind == "serial":
        return None
    try:
        executors.factory_for(kind)  # each kind is registered under its own name
    except (KeyError, ValueError):  # not registered; its module cannot be imported
        return f"executor {kind} not available yet"
    return None


#: ``@pytest.mark.parametrize("kind", KIND_PARAMS)``: each kind, skipped where unavailable.
KIND_PARAMS = [
    pytest.param(kind, id=kind, marks=pytest.mark.skipif(why is not None, reason=str(why)))
    for kind, why in ((kind, _unavailable(kind)) for kind in KINDS)
]


def is_parallel(kind: str) -> bool:
    """Whether ``kind`` runs ready atoms at the same time."""
    return kind != "serial"


def load_options(kind: str) -> dict[str, Any]:
    """The ``tideflow.load`` keywords of ``kind``."""
    if kind == "serial":
        return {"engine": "serial"}
    return {"engine": "parallel", "executor": kind, "max_workers": 4}
